"""When a served certificate's expiry needs a person: a warning at 21 days left, a failure at 7.

Let's Encrypt no longer e-mails before a certificate expires, so `status` and `infra verify`
are what tells. A scheduled `dynia cert renew` renews at 30 days left: 21 means it has not
succeeded for nine days (the job is off, or failing), 7 is an outage within a week.
"""
from __future__ import annotations

import datetime as dt

WARN_DAYS = 21
FAIL_DAYS = 7


def expiry_level(not_after: dt.datetime, now: dt.datetime) -> str:
    """"failed" with FAIL_DAYS or fewer left, "warning" with WARN_DAYS or fewer, else "ok"."""
    left = not_after - now
    if left <= dt.timedelta(days=FAIL_DAYS):
        return "failed"
    if left <= dt.timedelta(days=WARN_DAYS):
        return "warning"
    return "ok"


def expiry_detail(not_after: dt.datetime, now: dt.datetime) -> str:
    """The sentence for a certificate that is not "ok": its date, the days left, what to run."""
    days = max((not_after - now).days, 0)
    limit = FAIL_DAYS if expiry_level(not_after, now) == "failed" else WARN_DAYS
    return (f"expires {not_after:%Y-%m-%d} ({days} days left, {limit} or fewer): run `dynia cert renew` "
            "and check the scheduled job that runs it")
