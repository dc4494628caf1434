"""The launch day: plan, preflight, live setup, go-live at T0, monitoring and wrap-up (used by bridgecast_launch)."""
