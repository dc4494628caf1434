"""Ingest: stream keys and upload tokens, the gateway (nginx callbacks + uploads), manifests, asset events."""
