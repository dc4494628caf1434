"""Scheduled posts: the content calendar (`bridgecast_publish`) and the staff form with approval
(`bridgecast_schedule_post`). Both end in the same place — one Publication per channel through the ledger.

Modules: `content` (what a post is; pure), `media` (photos resolved at publish time, frozen once used), `planner`
(calendar vs ledger → what to do now; pure), `publishing` (ledger + channels, under a lock), `form` (the Params form
and its Vietnamese validation), `preview`, `operators` (deferrable publish, approval with a deadline) and `tasks`
(the bodies the DAG files call). DAG files import only `form` and `operators`, which stay light.
"""
