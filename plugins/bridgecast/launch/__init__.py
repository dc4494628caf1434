"""The launch day (`bridgecast_launch`), by stage of the morning.

Modules: `plan` (the typed `LaunchPlan`, small XCom in and out), `preflight` (go/no-go per point, channels and
infrastructure checks), `live` (the fanpage live video: created through the ledger, relay, go-live at T0, end),
`monitor` (who is live, who dropped), `wrapup` (highlights, recap, galleries), `publications` (every publication's
key, channel, title and texts — defined once; pure), `publishing` (publications through the ledger; the wrap-up's
publishing tasks), `summary` (the morning in figures) and `observe` (what the ingest sees). The DAG file imports
none of them at parse time (its stage waits are the core's `stage_waits`): each task body imports its function.
What staff steer from the board (T0, the end, the program point: `bridgecast.steering`) every task reads through
`LaunchPlan.in_force()`.
"""
