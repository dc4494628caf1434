"""Bridgecast: the Airflow-facing library (event model, storage, channels, ledger, ingest, sandboxes).

Imports stay light here: DAG files import from this package at parse time.
"""
