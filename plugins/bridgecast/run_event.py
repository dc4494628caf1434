"""Which event a run works on. Every DAG reads its event through here, so a rehearsal's event (a file in S3)
and the configured event (config/event.yaml) are handled alike on any worker."""
from __future__ import annotations

from pathlib import Path

from bridgecast.event import Event, default_event_path, load_event, load_event_bytes
from bridgecast.objects import launch_key
from bridgecast.storage import Storage


def event_for_run(conf: dict | None) -> tuple[Event, bytes]:
    """The event a run works on and its YAML: `conf.event_key` (an event file in S3, e.g. a rehearsal's),
    `conf.event_file` (a path readable by the worker, e.g. in the repo's config/) or the configured event."""
    conf = conf or {}
    if conf.get("event_key"):
        storage = Storage.from_connection()
        data = storage.get_bytes(conf["event_key"])
        return load_event_bytes(data, f"s3://{storage.bucket}/{conf['event_key']}"), data
    path = Path(conf.get("event_file") or default_event_path())
    return load_event(path), path.read_bytes()


def run_event_key(event_id: str) -> str:
    """Where a launch run keeps the copy of the event it started with."""
    return launch_key(event_id, "event.yaml")


def save_run_event(event: Event, event_yaml: bytes) -> str:
    key = run_event_key(event.id)
    Storage.from_connection().put_bytes(key, event_yaml, content_type="application/yaml; charset=utf-8")
    return key


def load_run_event(event_key: str) -> Event:
    """The run's event, from its copy in S3."""
    storage = Storage.from_connection()
    return load_event_bytes(storage.get_bytes(event_key), f"s3://{storage.bucket}/{event_key}")
