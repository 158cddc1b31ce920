"""Zero failed requests while infra and a service are re-applied on every node under load."""
from __future__ import annotations

import threading
import time

import pytest

from .conftest import record

pytestmark = pytest.mark.root

MIN_REQUESTS, MAX_REQUESTS, MAX_SECONDS = 2000, 8000, 120.0


def test_rolling_reapply_under_load_fails_no_request(applied_lab):
    lc = applied_lab
    hosts = ["lab.example", "api.lab.example"]
    done = threading.Event()
    stats = {"ok": 0, "failed": 0, "errors": [], "during_roll": 0}
    rolling = threading.Event()

    def load():
        # Bounded by count and time; a new connection per request, so every reload is crossed.
        started = time.monotonic()
        i = 0
        while i < MAX_REQUESTS and time.monotonic() - started < MAX_SECONDS:
            if done.is_set() and i >= MIN_REQUESTS:
                break
            host = hosts[i % 2]
            try:
                status, body = lc.get(host, timeout=5)
                good = status == 200 and body in (b"web\n", b"api\n")
            except OSError as exc:
                good, status = False, repr(exc)
            if rolling.is_set() and not done.is_set():
                stats["during_roll"] += 1
            if good:
                stats["ok"] += 1
            else:
                stats["failed"] += 1
                if len(stats["errors"]) < 10:
                    stats["errors"].append((i, host, status))
            i += 1

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(0.5)
        rolling.set()
        result = lc.roll(lc.bundles(force=True), layers=["infra", "service:api"])
    finally:
        done.set()
        worker.join(timeout=MAX_SECONDS + 10)
    assert result.ok, [(r.node, r.layer, r.reason) for r in result.results if not r.ok]
    assert all(r.report["reloaded"] for r in result.results)  # forced: every node really reloaded
    total = stats["ok"] + stats["failed"]
    record("zero_downtime_failed_of_total", f"{stats['failed']} of {total}")
    record("zero_downtime_requests_while_rolling", stats["during_roll"])
    assert total >= MIN_REQUESTS
    assert stats["failed"] == 0, stats["errors"]
