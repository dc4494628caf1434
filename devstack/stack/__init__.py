"""The embedded stack: every server Bridgecast needs, started and stopped on one machine by our own commands."""
