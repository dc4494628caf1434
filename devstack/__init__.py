"""The workshop: what only runs on a laptop or in CI — the embedded stack, the sandboxes that stand in for
Facebook and the press mailbox, the rehearsal driver, synthetic media and the `./bridgecast` CLI.

It may import the product (`bridgecast`, `media`); the product never imports it (tests/test_import_rules.py).
"""
