"""Fixtures the product's fast tests share."""
from __future__ import annotations

from types import SimpleNamespace

import pytest


class MemoryStorage:
    """The S3 behaviours small records rely on (`Storage`'s names): JSON objects, create-only puts (S3's
    If-None-Match: `created` False when the key exists) and listing by prefix."""

    def __init__(self):
        self.objects = {}

    def put_json(self, key, data, if_absent=False):
        if if_absent and key in self.objects:
            return SimpleNamespace(key=key, created=False)
        self.objects[key] = data
        return SimpleNamespace(key=key, created=True)

    def exists(self, key):
        return key in self.objects

    def get_json(self, key):
        return self.objects[key]

    def list_keys(self, prefix):
        return [{"Key": k} for k in sorted(self.objects) if k.startswith(prefix)]


@pytest.fixture
def memory_storage() -> MemoryStorage:
    return MemoryStorage()
