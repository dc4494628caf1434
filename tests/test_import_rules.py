"""The direction of imports (DESIGN.md): media ← product ← dags; the workshop may import the product, never the
other way; features import the shared core (and the channels), never each other."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRODUCT = REPO / "plugins" / "bridgecast"
# The publishing layer and the alerts every feature may use; they import only the core (and the channels).
SHARED_SUBPACKAGES = {"channels", "alerts"}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (imports inside functions count: they run on the day too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(root: Path):
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def features() -> set[str]:
    return {p.name for p in PRODUCT.iterdir() if p.is_dir() and (p / "__init__.py").exists()} - SHARED_SUBPACKAGES


def area_of(path: Path) -> str | None:
    """The feature (or shared subpackage) a product file belongs to; None for the core's top-level modules."""
    rel = path.relative_to(PRODUCT)
    return rel.parts[0] if len(rel.parts) > 1 else None


def violations() -> list[str]:
    found = []
    for path in python_files(REPO / "media"):
        for name in imported_modules(path):
            if name.split(".")[0] in ("airflow", "bridgecast", "devstack"):
                found.append(f"{path.relative_to(REPO)} imports {name}: media/ stays free of Airflow and the product")
    for root in (PRODUCT, REPO / "dags"):
        for path in python_files(root):
            for name in imported_modules(path):
                if name.split(".")[0] == "devstack":
                    found.append(f"{path.relative_to(REPO)} imports {name}: the product never imports the workshop")
    feature_names = features()
    for path in python_files(PRODUCT):
        mine = area_of(path)
        for name in imported_modules(path):
            parts = name.split(".")
            if parts[0] != "bridgecast" or len(parts) < 2 or parts[1] not in feature_names:
                continue
            target = parts[1]
            if mine is None or mine in SHARED_SUBPACKAGES:
                found.append(f"{path.relative_to(REPO)} imports {name}: the core and channels never import a feature")
            elif target != mine:
                found.append(f"{path.relative_to(REPO)} imports {name}: feature {mine!r} imports feature {target!r}")
    return found


def test_imports_follow_the_layering():
    assert violations() == []


def test_the_rule_sees_what_it_must(tmp_path):
    """The check itself can fail: a planted cross-feature import and a workshop import are both reported."""
    product = tmp_path / "plugins" / "bridgecast"
    for pkg in ("ingest", "launch", "channels"):
        (product / pkg).mkdir(parents=True)
        (product / pkg / "__init__.py").write_text("")
    (product / "launch" / "tasks.py").write_text("def f():\n    from bridgecast.ingest import x\n")
    (product / "storage.py").write_text("import devstack.stack\n")
    (product / "channels" / "base.py").write_text("from bridgecast.launch.plan import make_plan\n")
    (tmp_path / "media").mkdir()
    (tmp_path / "media" / "probe.py").write_text("from airflow.sdk import task\n")
    (tmp_path / "dags").mkdir()
    globals_ = globals()
    saved = globals_["REPO"], globals_["PRODUCT"]
    globals_["REPO"], globals_["PRODUCT"] = tmp_path, product
    try:
        found = violations()
    finally:
        globals_["REPO"], globals_["PRODUCT"] = saved
    assert any("feature 'launch' imports feature 'ingest'" in v for v in found)
    assert any("never imports the workshop" in v for v in found)
    assert any("channels never import a feature" in v for v in found)
    assert any("media/ stays free" in v for v in found)
