"""Fault rules shared by the sandboxes: what a test asks a sandbox to get wrong, and how many times.

Each sandbox says how a rule is written (`parse`) and which calls it matches (`matches`); taking a rule — skip the
first `skip` matches, then fire `count` times — is the same everywhere.
"""
from __future__ import annotations

import threading
from abc import ABC, abstractmethod


class FaultRules(ABC):
    def __init__(self, rules: list[dict] | None = None):
        self.lock = threading.Lock()
        self.rules: list[dict] = []
        for rule in rules or []:
            self.add(rule)

    @abstractmethod
    def parse(self, raw: dict) -> dict:
        """A rule as this sandbox writes it, validated."""

    @abstractmethod
    def matches(self, rule: dict, *call) -> bool:
        """Whether `rule` applies to this call."""

    def add(self, raw: dict) -> dict:
        rule = self.parse(raw)
        with self.lock:
            self.rules.append(rule)
        return rule

    def take(self, *call) -> dict | None:
        """The first live rule matching this call (spent by one), or None."""
        with self.lock:
            for rule in self.rules:
                if rule["count"] <= 0 or not self.matches(rule, *call):
                    continue
                if rule.get("skip", 0) > 0:
                    rule["skip"] -= 1
                    continue
                rule["count"] -= 1
                return dict(rule)
        return None

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()
