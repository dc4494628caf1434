"""Every DAG file imports cleanly and only wires (logic lives in plugins/ and media/, imported inside tasks)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((REPO / "dags").glob("*.py"))

# Runs in a fresh interpreter per file: Airflow itself is imported first (not the DAG's cost), then the file
# is parsed by Airflow's own DagBag and timed.
_PARSE = """
import sys, time, json
from airflow.dag_processing.dagbag import DagBag
path = sys.argv[1]
t0 = time.perf_counter()
bag = DagBag(dag_folder=path)
elapsed = time.perf_counter() - t0
heavy = sorted(m for m in ("media", "PIL", "ffmpeg", "bridgecast.channels", "bridgecast.ledger",
                            "bridgecast.launch", "bridgecast.ingest.processing") if m in sys.modules)
errors = {k: str(v) for k, v in bag.import_errors.items()}
from airflow.serialization.serialized_objects import DagSerialization
for dag_id, dag in bag.dags.items():  # as the dag-processor stores it: a DAG it cannot serialize never appears
    try:
        DagSerialization.from_dict(DagSerialization.to_dict(dag))
    except Exception as exc:
        errors[f"{dag_id} (serialization)"] = repr(exc)
print(json.dumps({"seconds": elapsed, "errors": errors, "dags": sorted(bag.dag_ids), "heavy": heavy}))
"""


def test_there_are_dag_files():
    assert DAG_FILES


@pytest.mark.parametrize("path", DAG_FILES, ids=[p.name for p in DAG_FILES])
def test_dag_file_imports_without_errors_and_without_heavy_modules(path, tmp_path):
    """Parse speed is a benchmark (bench/dag_parse.py); here the usual cause of slow parsing is ruled out: task
    code, ffmpeg/Pillow and the channels are imported inside tasks, never when the file is parsed. (boto3 is not
    checked: the amazon provider loads it for `s3://` asset URIs.)"""
    import json

    env = {"PYTHONPATH": f"{REPO}:{REPO / 'plugins'}", "PATH": "/usr/bin:/bin", "AIRFLOW_HOME": str(tmp_path),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
           "AIRFLOW__CORE__UNIT_TEST_MODE": "True"}
    out = subprocess.run([sys.executable, "-c", _PARSE, str(path)], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"{path.name}: parsed in {result['seconds'] * 1000:.0f} ms → {result['dags']}")
    assert not result["errors"], result["errors"]
    assert result["dags"], f"{path.name} defines no DAG"
    assert result["heavy"] == [], f"{path.name} imports {result['heavy']} at parse time: import inside the task"
