"""When `bridgecast_report` runs: once after the launch (its end plus the wrap-up), then every evening of the month
of action, in the event's zone. Imported when the DAG file is parsed: the event model only, nothing heavy."""
from __future__ import annotations

from datetime import datetime, time, timedelta

from bridgecast.event import Event

AFTER_LAUNCH = timedelta(minutes=45)  # the launch's wrap-up (recap, galleries, publications, summary) is done by then
DAILY_AT = time(17, 30)  # after the teams' end-of-day reports


def report_times(event: Event) -> list[datetime]:
    """Aware datetimes: the after-launch report, then 17:30 local each day to the last day of the month of action."""
    first = event.end + AFTER_LAUNCH
    times = [first]
    day = event.campaign_start
    while day <= event.campaign_last_day:
        moment = datetime.combine(day, DAILY_AT, tzinfo=event.tz)
        if moment > first:
            times.append(moment)
        day += timedelta(days=1)
    return times
