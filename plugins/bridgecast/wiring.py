"""The wiring check: every connection point of the event gets one object through S3 and back.

It proves, point by point, that configuration, Airflow mapping, workers and object storage fit together
before anything of consequence runs on them.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone

from bridgecast.event import Event
from bridgecast.storage import Storage


def points_to_check(event: Event) -> list[dict]:
    return [{"event_id": event.id, "id": p.id, "name": p.name} for p in event.connection_points]


def round_trip(storage: Storage, point: dict) -> dict:
    key = f"{point['event_id']}/{point['id']}/wiring/hello.json"
    body = {"point": point["id"], "name": point["name"], "written_at": datetime.now(timezone.utc).isoformat()}
    storage.put_json(key, body)
    back = storage.get_json(key)
    if back != json.loads(json.dumps(body)):
        raise RuntimeError(f"S3 read-back of {key} differs from what was written")
    return {"point": point["id"], "key": key}
