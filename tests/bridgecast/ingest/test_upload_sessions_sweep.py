"""The resumable-upload spool's sweep: what it removes, what it keeps, and that it is one pass over the spool."""
from __future__ import annotations

import os
import time

from bridgecast.ingest.resumable import DEFAULT_TTL_S, SessionStore

DAY = 86400


def _open(store: SessionStore, name: str):
    return store.open(event_id="ev", point_id="tam-dao", filename=name, size=10, content_type="image/jpeg",
                      fingerprint=name)


def _age(path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_the_sweep_removes_what_nobody_touched_for_a_day_and_keeps_the_rest(tmp_path):
    store = SessionStore(tmp_path)
    abandoned, finished, live, resumed = (_open(store, n) for n in ("a.mp4", "b.jpg", "c.mp4", "d.mp4"))
    store.finish(finished, {"accepted": True})  # its bytes are gone, its result stays for a day
    for session in (abandoned, finished, resumed):
        _age(store._meta(session.id), 2 * DAY)
    for session in (abandoned, resumed):
        _age(store.data_path(session.id), 2 * DAY)
    store.data_path(resumed.id).write_bytes(b"12345")  # a chunk arrived just now: the session is alive
    orphan_bytes, crashed_write = tmp_path / f"{'e' * 32}.part", tmp_path / f"{'f' * 32}.tmp"
    for path in (orphan_bytes, crashed_write):
        path.write_bytes(b"x")
        _age(path, 2 * DAY)
    (tmp_path / "README").write_text("not ours")

    removed = store.sweep(DEFAULT_TTL_S)

    assert sorted(removed) == sorted([abandoned.id, finished.id])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["README", f"{live.id}.json", f"{live.id}.part", f"{resumed.id}.json", f"{resumed.id}.part"])
    assert store.get(resumed.id) is not None and store.get(abandoned.id) is None


def test_the_sweep_reads_the_spool_in_one_pass(tmp_path, monkeypatch):
    """No stat per session beside the directory scan's own: the spool holds a day of finished sessions, and the
    sweep used to stat each one twice (and ran on every new upload, making each slower than the one before)."""
    store = SessionStore(tmp_path)
    for index in range(50):
        store.finish(_open(store, f"{index}.jpg"), {"accepted": True})
    calls = []
    real_stat = os.stat
    monkeypatch.setattr(os, "stat", lambda *a, **kw: calls.append(a[0]) or real_stat(*a, **kw))
    scans = []
    real_scandir = os.scandir
    monkeypatch.setattr(os, "scandir", lambda *a: scans.append(a) or real_scandir(*a))

    assert store.sweep(DEFAULT_TTL_S) == []
    assert calls == [] and len(scans) == 1
    assert len(list(tmp_path.iterdir())) == 50  # finished sessions' results are kept for the day
