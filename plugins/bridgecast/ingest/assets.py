"""The Airflow assets raw media is announced on. Plain strings here: DAG files wrap them in `Asset`."""
from __future__ import annotations

RAW_KINDS = ("photo", "video", "recording")


def raw_asset_uri(kind: str) -> str:
    if kind not in RAW_KINDS:
        raise ValueError(f"unknown raw media kind {kind!r}; expected one of {RAW_KINDS}")
    return f"s3://bridgecast/raw/{kind}"


def raw_asset_name(kind: str) -> str:
    return f"bridgecast_raw_{kind}"
