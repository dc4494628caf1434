"""The Airflow assets raw media is announced on, the ingest lanes (DAGs) they schedule, and the asset ingest updates
when photos are processed (the staff form's photo list follows it). Plain strings here: DAG files wrap them in
`Asset`."""
from __future__ import annotations

RAW_KINDS = ("photo", "video", "recording")


def raw_asset_uri(kind: str) -> str:
    if kind not in RAW_KINDS:
        raise ValueError(f"unknown raw media kind {kind!r}; expected one of {RAW_KINDS}")
    return f"s3://bridgecast/raw/{kind}"


def raw_asset_name(kind: str) -> str:
    return f"bridgecast_raw_{kind}"


def assets_in(extra: dict) -> list[dict]:
    """The raw assets one asset event announces. The gateway puts the assets queued together into one event
    (`{"assets": [{event, point, kind, key, sha256}, …]}`, see notify.py); a lone asset, and the sweep's
    re-offer, is an event of the asset's own fields."""
    batch = extra.get("assets")
    if isinstance(batch, list):
        return [item for item in batch if isinstance(item, dict)]
    return [extra]


# Updated by each batch of the photo lane that ends (new processed photos may be in storage): consumers list storage.
PROCESSED_PHOTOS_URI = "s3://bridgecast/processed/photo"
PROCESSED_PHOTOS_NAME = "bridgecast_processed_photos"


# The ingest lanes: DAG id → the raw kinds its runs take. Photos (seconds each, what staff wait for) have a lane of
# their own, so a team video or recording segment in work (minutes) never holds them; each lane runs one run at a
# time. The sweep re-announces a stuck asset on its raw asset, which schedules its lane.
INGEST_LANES = {"bridgecast_ingest": ("photo",), "bridgecast_ingest_video": ("video", "recording")}


def ingest_dag_of(kind: str) -> str:
    """The ingest DAG that processes raw assets of `kind`."""
    raw_asset_uri(kind)  # an unknown kind says so
    return next(dag_id for dag_id, kinds in INGEST_LANES.items() if kind in kinds)
