"""The teams' links sheet for the real event (64 connection points + 9 teams): a card per point with its name, its
upload link and, for a connection point, OBS's Server and Stream key; QR codes that really decode (rsvg-convert →
zbarimg, and the A4 print from headless Chromium → pdftoppm → zbarimg) to exactly those links; the warning when
teams could not reach the addresses; and `./bridgecast keys sheet|show`, which never print a token or key."""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bridgecast.connections import ConnectionInfo
from bridgecast.event import default_event_path, load_event
from bridgecast.ingest.keys import issue_point_keys
from bridgecast.ingest.sheet import PublicAddresses, links_sheet, write_sheet
from devstack import cli
from devstack.stack.env import connection_fields
from devstack.stack.layout import Layout

REPO = Path(__file__).resolve().parents[3]
ARTIFACTS = REPO / "test-artifacts"
EVENT = load_event(default_event_path())
PUBLIC = {"public_url": "https://upload.bhxh-vinhphuc.example",
          "public_rtmp_url": "rtmp://live.bhxh-vinhphuc.example/live"}
INTERNAL = {"rtmp_url": "rtmp://127.0.0.1:26935/live", "stat_url": "http://127.0.0.1:26081/stat"}
BANNER = "Các đội ở bên ngoài KHÔNG mở được các liên kết trên tờ này"
ZBAR_NS = {"z": "http://zbar.sourceforge.net/2008/barcode"}
needs = pytest.mark.skipif(not (shutil.which("zbarimg") and shutil.which("rsvg-convert")),
                           reason="zbar-tools and librsvg2-bin are needed (scripts/setup.sh installs them)")


def ingest_connection(**extra) -> ConnectionInfo:
    return ConnectionInfo("bridgecast_ingest", conn_type="http", host="http://127.0.0.1:26090",
                          password="admin-token", extra={**INTERNAL, **extra})


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, dict]:
    path = issue_point_keys(tmp_path_factory.mktemp("secrets"), EVENT.id, [p.id for p in EVENT.points])
    return json.loads(path.read_text())["points"]


@pytest.fixture(scope="module")
def public_sheet(keys):
    return links_sheet(EVENT, keys, PublicAddresses.from_connection(ingest_connection(**PUBLIC)))


def cards_of(page: str) -> dict[str, str]:
    """Each card's HTML by point id (a card holds sections of its own: split on the card openings)."""
    chunks = page.split('<section class="card" data-point="')[1:]
    return {chunk.split('"', 1)[0]: chunk for chunk in chunks}


def qr_svgs(card_html: str) -> dict[str, str]:
    return dict(re.findall(r'<figure class="qr" data-qr="(\w+)">(<svg .*?</svg>)', card_html, re.S))


def expected_links(point_id: str, keys: dict[str, dict]) -> dict[str, str]:
    links = {"upload": f"{PUBLIC['public_url']}/u/{keys[point_id]['upload_token']}"}
    if EVENT.point(point_id).streams:
        links["stream"] = f"{PUBLIC['public_rtmp_url']}/{point_id}?key={keys[point_id]['stream_key']}"
    return links


def zbar(pngs: list[Path]) -> dict[str, set[str]]:
    """What zbarimg reads in each image: {file name: decoded texts}."""
    run = subprocess.run(["zbarimg", "--nodbus", "--xml", "-q", *map(str, pngs)], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode in (0, 4), run.stderr  # 4: some image held no code (then the comparison below says which)
    found = {Path(p).name: set() for p in pngs}
    for source in ET.fromstring(run.stdout).iterfind("z:source", ZBAR_NS):
        found[Path(source.get("href")).name] = {d.text for d in source.iterfind(".//z:data", ZBAR_NS)}
    return found


# --- the cards --------------------------------------------------------------------------------------------------
def test_every_point_has_a_card_with_its_vietnamese_name_upload_link_and_obs_fields(public_sheet, keys):
    cards = cards_of(public_sheet.html)
    assert list(cards) == [p.id for p in EVENT.points] and len(cards) == 73
    assert public_sheet.counts == {"cards": 73, "streaming": 64, "teams": 9}
    for point in EVENT.points:
        card, links = cards[point.id], expected_links(point.id, keys)
        assert point.name in card
        assert f'<p class="value link">{links["upload"]}</p>' in card
        if point.streams:
            assert ">Điểm cầu" in card
            assert f'<p class="value">{PUBLIC["public_rtmp_url"]}</p>' in card  # OBS "Server"
            assert f'<p class="value">{point.id}?key={keys[point.id]["stream_key"]}</p>' in card  # "Stream key"
            assert sorted(qr_svgs(card)) == ["stream", "upload"]
        else:
            assert ">Đội lưu động<" in card and "Stream key" not in card and keys[point.id]["stream_key"] not in card
            assert list(qr_svgs(card)) == ["upload"]
    assert "<h2>Điểm cầu Hà Nội</h2>" in cards["ha-noi"] and "<h2>Điểm cầu Bà Rịa - Vũng Tàu</h2>" in cards[
        "ba-ria-vung-tau"]
    assert "<h2>Đội tuyên truyền lưu động Vĩnh Tường</h2>" in cards["vinh-tuong"]
    page = public_sheet.html
    assert EVENT.short_title in page and "08:00 Thứ Bảy, ngày 23/05/2020" in page
    assert "127.0.0.1" not in page and "<script" not in page and 'src="http' not in page  # self-contained


@needs
def test_the_qr_codes_decode_to_exactly_each_cards_links(public_sheet, keys, tmp_path):
    expected, pngs = {}, []
    for point_id, card in cards_of(public_sheet.html).items():
        for what, svg in qr_svgs(card).items():
            src, png = tmp_path / f"{point_id}.{what}.svg", tmp_path / f"{point_id}.{what}.png"
            src.write_text(svg, encoding="utf-8")
            subprocess.run(["rsvg-convert", "-b", "white", "-w", "330", "-o", str(png), str(src)], check=True,
                           timeout=30)
            expected[png.name] = {expected_links(point_id, keys)[what]}
            pngs.append(png)
    assert len(pngs) == 64 * 2 + 9
    assert zbar(pngs) == expected


@needs
@pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("pdftoppm")), reason="chromium, poppler-utils")
def test_printed_from_chromium_it_is_one_a4_page_per_point_and_each_page_scans(public_sheet, keys, tmp_path):
    path = write_sheet(public_sheet, tmp_path / "sheet.html")
    browser = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={tmp_path / 'profile'}"]
    pdf = tmp_path / "sheet.pdf"
    subprocess.run([*browser, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", path.as_uri()], check=True,
                   capture_output=True, timeout=120)
    info = subprocess.run(["pdfinfo", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert re.search(r"^Pages:\s+73$", info, re.M) and "(A4)" in info, info
    # 72 dpi, grey: about 4 pixels per QR module, coarser than any printer or phone camera sees them.
    subprocess.run(["pdftoppm", "-r", "72", "-gray", "-png", str(pdf), str(tmp_path / "page")], check=True,
                   timeout=300)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert zbar(pages) == {page.name: set(expected_links(point.id, keys).values())
                           for page, point in zip(pages, EVENT.points)}

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "keys-sheet.png"
    subprocess.run([*browser, "--window-size=1000,1400", f"--screenshot={shot}", path.as_uri()], check=True,
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000
    subprocess.run(["pdftoppm", "-r", "100", "-png", "-f", "2", "-l", "2", "-singlefile", str(pdf),
                    str(ARTIFACTS / "keys-sheet-print-ha-noi")], check=True, timeout=60)  # a printed page to look at


# --- the addresses ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("extra", [
    pytest.param({"public_url": "http://127.0.0.1:26090", "public_rtmp_url": "rtmp://127.0.0.1:26935/live"},
                 id="the embedded stack's own (loopback)"),
    pytest.param({}, id="no public addresses (the internal ones stand in)"),
    pytest.param({**PUBLIC, "public_rtmp_url": "rtmp://10.20.0.5/live"}, id="RTMP on a private network"),
    pytest.param({**PUBLIC, "public_url": "http://ingest-gateway:8090"}, id="a compose service name"),
    pytest.param({**PUBLIC, "public_url": "https://[::1]:8443"}, id="IPv6 loopback"),
])
def test_the_sheet_still_renders_but_warns_when_teams_cannot_reach_its_addresses(keys, extra):
    addresses = PublicAddresses.from_connection(ingest_connection(**extra))
    sheet = links_sheet(EVENT, keys, addresses)
    assert addresses.unreachable and addresses.warnings
    assert f'<div class="warning" role="alert"><p class="warning-title">⚠ {BANNER}' in sheet.html
    assert sheet.html.count('<p class="card-warning">') == 73  # also on every printed page
    assert "public_url" in sheet.html and "public_rtmp_url" in sheet.html  # how to fix it
    assert len(cards_of(sheet.html)) == 73


def test_no_warning_on_public_https_addresses_and_a_softer_one_on_plain_http(keys, public_sheet):
    assert PublicAddresses.from_connection(ingest_connection(**PUBLIC)).warnings == ()
    assert '<div class="warning"' not in public_sheet.html and '<p class="card-warning">' not in public_sheet.html
    plain = PublicAddresses.from_connection(ingest_connection(**{**PUBLIC, "public_url": "http://upload.example.vn"}))
    assert not plain.unreachable and "https" in plain.warnings[0]
    page = links_sheet(EVENT, keys, plain).html
    assert '<div class="warning"' in page and BANNER not in page and '<p class="card-warning">' not in page


def test_a_point_without_keys_is_refused_not_left_off(keys):
    keys = {pid: entry for pid, entry in keys.items() if pid != "vinh-yen"}
    with pytest.raises(ValueError, match="vinh-yen"):
        links_sheet(EVENT, keys, PublicAddresses.from_connection(ingest_connection(**PUBLIC)))


def test_the_embedded_stack_sets_its_own_addresses_as_the_public_ones(tmp_path):
    layout = Layout.from_env(var=tmp_path, port_base=26000)
    secrets = {name: "x" for name in ("s3_access_key", "s3_secret_key", "portal_app_password", "fanpage_page_token",
                                      "fanpage_page_id", "gateway_admin_token", "airflow_service_password")}
    ingest = connection_fields(layout, secrets)["bridgecast_ingest"]
    assert ingest["extra"]["public_url"] == ingest["host"] == f"http://127.0.0.1:{layout.ports.gateway}"
    assert ingest["extra"]["public_rtmp_url"] == ingest["extra"]["rtmp_url"]


# --- the command line -------------------------------------------------------------------------------------------
@pytest.fixture
def stack_var(tmp_path, monkeypatch) -> Layout:
    monkeypatch.setenv("BRIDGECAST_VAR", str(tmp_path / "var"))
    monkeypatch.setenv("BRIDGECAST_PORT_BASE", "26000")
    monkeypatch.delenv("AIRFLOW_CONN_BRIDGECAST_INGEST", raising=False)
    monkeypatch.delenv("BRIDGECAST_EVENT", raising=False)
    return Layout.from_env()


def secrets_in(layout: Layout) -> list[str]:
    """Every token and key the sheet shows: the upload tokens, and the connection points' stream keys."""
    points = json.loads((layout.secrets / "points" / f"{EVENT.id}.json").read_text())["points"]
    return [points[p.id]["upload_token"] for p in EVENT.points] + [points[p.id]["stream_key"] for p in EVENT.points
                                                                    if p.streams]


def test_keys_sheet_writes_a_private_file_and_prints_only_its_path_counts_and_the_warning(stack_var, capsys):
    assert cli.main(["keys", "sheet"]) == 0
    out, err = capsys.readouterr()
    path = stack_var.secrets / f"keys-sheet-{EVENT.id}.html"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in out and "73 cards (64 connection points, 9 teams)" in out
    assert BANNER in err and "127.0.0.1:26090" in err  # the embedded stack's loopback addresses
    tokens = secrets_in(stack_var)
    assert len(tokens) == 73 + 64 and not [t for t in tokens if t in out or t in err]
    assert all(t in path.read_text(encoding="utf-8") for t in tokens)


def test_keys_sheet_takes_the_public_addresses_from_the_connection_and_writes_out(stack_var, tmp_path, capsys,
                                                                                 monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BRIDGECAST_INGEST", json.dumps({
        "conn_type": "http", "host": "http://ingest-gateway:8090", "password": "admin-token",
        "extra": {"rtmp_url": "rtmp://nginx-rtmp:1935/live", **PUBLIC}}))
    out_path = tmp_path / "print" / "sheet.html"
    out_path.parent.mkdir()
    out_path.write_text("old")
    os.chmod(out_path, 0o644)
    assert cli.main(["keys", "sheet", "--out", str(out_path)]) == 0
    out, err = capsys.readouterr()
    assert stat.S_IMODE(out_path.stat().st_mode) == 0o600 and str(out_path) in out
    assert err == "" and PUBLIC["public_url"] in out
    page = out_path.read_text(encoding="utf-8")
    assert "ingest-gateway" not in page and "nginx-rtmp" not in page and BANNER not in page
    assert not [t for t in secrets_in(stack_var) if t in out]


def test_keys_show_prints_upload_links_and_publish_urls_on_the_public_addresses(stack_var, capsys, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_BRIDGECAST_INGEST", json.dumps({
        "conn_type": "http", "host": "http://ingest-gateway:8090", "extra": {"rtmp_url": "rtmp://nginx:1935/live",
                                                                            **PUBLIC}}))
    assert cli.main(["keys", "show"]) == 0
    out = capsys.readouterr().out
    points = json.loads((stack_var.secrets / "points" / f"{EVENT.id}.json").read_text())["points"]
    assert f"{PUBLIC['public_url']}/u/{points['vinh-yen']['upload_token']}" in out
    assert f"{PUBLIC['public_rtmp_url']}/ha-noi?key={points['ha-noi']['stream_key']}" in out
    assert "127.0.0.1" not in out and "nginx:1935" not in out
