"""The Airflow assets raw media is announced on, and the one ingest updates when photos are processed (the staff
form's photo list follows it). Plain strings here: DAG files wrap them in `Asset`."""
from __future__ import annotations

RAW_KINDS = ("photo", "video", "recording")


def raw_asset_uri(kind: str) -> str:
    if kind not in RAW_KINDS:
        raise ValueError(f"unknown raw media kind {kind!r}; expected one of {RAW_KINDS}")
    return f"s3://bridgecast/raw/{kind}"


def raw_asset_name(kind: str) -> str:
    return f"bridgecast_raw_{kind}"


# Updated by each ingest batch that ends (new processed photos may be in storage): consumers list storage.
PROCESSED_PHOTOS_URI = "s3://bridgecast/processed/photo"
PROCESSED_PHOTOS_NAME = "bridgecast_processed_photos"
