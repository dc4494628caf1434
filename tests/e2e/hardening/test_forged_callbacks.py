"""nginx's callbacks cannot be forged: they are not on the public upload port, they need the stack's callback
secret, and even a callback with the secret can only make the gateway take nginx's own segment files — no path
outside the recordings directory is read or deleted (absolute paths, `..`, symlinks, /etc/passwd, the key file)."""
from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import pytest
import requests
from hardening_kit import EVENT_ID

pytestmark = [pytest.mark.stack, pytest.mark.timeout(600)]

POINT = "bac-ninh"
SWEEP_WAIT_S = 50  # the gateway's segment sweep runs every 15 s on files older than 30 s: let it have its chance


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _segment_name(stream: str, opened: int | None = None) -> str:
    opened = opened or int(time.time())
    return f"{stream}-{opened}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime(opened))}.flv"


def _form(kit, path: str, name: str = POINT) -> dict:
    return {"app": "live", "flashver": "FMLE/3.0", "swfurl": "", "tcurl": "rtmp://127.0.0.1/live", "pageurl": "",
            "addr": "127.0.0.1", "clientid": "999999", "call": "record_done", "recorder": "", "name": name,
            "path": path, "key": kit.keys(name)["stream_key"]}


def test_forged_record_done_callbacks_touch_no_file_outside_the_recordings_directory(kit, stack, storage_manifests):
    recordings = stack.layout.recordings / "live"
    decoys = stack.layout.var / "hardening-decoys"
    decoys.mkdir(exist_ok=True)
    outside = decoys / _segment_name(POINT, 1700000000)  # named like a segment, but outside
    outside.write_bytes(b"FLV\x01" + os.urandom(4096))
    symlink = recordings / _segment_name(POINT, int(time.time()) - 120)
    symlink.symlink_to(outside)
    os.utime(symlink, (time.time() - 120, time.time() - 120), follow_symlinks=False)  # old enough for the sweep
    keys_file, passwd = kit.keys_file, Path("/etc/passwd")
    watched = {p: _digest(p) for p in (outside, keys_file, passwd)}

    decoy_paths = {
        "absolute path outside": str(outside),
        "dot-dot out of the recordings dir": f"{recordings}/../../hardening-decoys/{outside.name}",
        "symlink inside the recordings dir": str(symlink),
        "the recordings directory itself": str(recordings),
        "relative path": outside.name,
        "NUL byte": f"{symlink}\x00.flv",
    }
    # Real files of the machine and of the stack go last, once the decoys have shown nothing is acted on.
    real_paths = {"/etc/passwd": str(passwd), "the point key file": str(keys_file)}
    public = f"{kit.gateway_url}/rtmp/on_record_done"
    forged_urls = [public, f"{kit.gateway_url}/rtmp/{kit.callback_secret}/on_record_done",
                   f"{kit.callbacks_url}/rtmp/on_record_done",  # no secret
                   f"{kit.callbacks_url}/rtmp/{'x' * 43}/on_record_done"]  # a wrong one
    right_secret = f"{kit.callbacks_url}/rtmp/{kit.callback_secret}/on_record_done"

    try:
        _forge(kit, forged_urls, right_secret, (decoy_paths, real_paths), outside, watched[outside])
        time.sleep(SWEEP_WAIT_S)
        touched = [str(p) for p, digest in watched.items() if not p.exists() or _digest(p) != digest]
        assert symlink.is_symlink()  # neither followed nor removed by the callback or the sweep
        stored = storage_manifests.get(EVENT_ID, POINT, hashlib.sha256(outside.read_bytes()).hexdigest())
    finally:
        symlink.unlink(missing_ok=True)
    print(f"\nfiles outside the recordings directory touched by forged callbacks: {len(touched) + bool(stored)}",
          file=sys.stderr)
    assert touched == [] and stored is None


def _forge(kit, forged_urls, right_secret, path_sets, outside, outside_digest) -> None:
    for paths in path_sets:
        for url in forged_urls:
            for path in paths.values():
                answer = requests.post(url, data=_form(kit, path), timeout=10)
                assert answer.status_code == 404, (url.replace(kit.callback_secret, "<secret>"), path, answer.text)
        for case, path in paths.items():
            answer = requests.post(right_secret, data=_form(kit, path), timeout=10)
            assert answer.status_code == 200, case  # nginx ignores the status; the gateway just does nothing
        time.sleep(3)  # the segment uploader works in the background: give it time to do harm
        assert outside.exists() and _digest(outside) == outside_digest, "a decoy outside was acted on"
