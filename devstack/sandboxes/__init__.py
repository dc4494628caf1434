"""Local stand-ins for external systems (portal, fanpage, SMTP) used by rehearsals and contract tests."""
