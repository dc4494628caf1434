"""Results of the month of action: new voluntary participants per district and day, and the report on them.

- `store`     the sign-up reports (counts only) in the ledger's database; corrections kept as history
- `sheet`     reading the social-insurance office's spreadsheet (XLSX/CSV) with errors naming sheet, row, column
- `privacy`   what in a spreadsheet looks like personal data (names, ID and phone numbers): such a file is refused
- `importer`  a spreadsheet into the store, once per file
- `numbers`   the report's figures from the store, the launch summary, manifests, the ledger and the channels
- `charts`    matplotlib charts whose plotted series are kept for checking
- `render`    the Vietnamese HTML report and the PDF for leadership
- `post`      the results post drafted from the figures, handed to `bridgecast_schedule_post` for approval
- `tasks`     the task bodies of `bridgecast_import_signups` and `bridgecast_report`

The team upload page records a team's daily figure with `store.record_team_report`.
"""
