"""Twenty users at once in a real browser: every session sees only its own image's analysis.

Twenty Playwright contexts (separate cookies and sessions) against one server each upload a
different image and change the order and the kernel; at every step the page must show exactly
the predictions a single session computes for that image and configuration. Skipped with the
reason where chromium or Playwright is missing (never in CI, see test_browser.py).
"""

import asyncio
import os

import pytest

from .browser import (
    browser_missing,
    distinct_images,
    many_sessions,
    percentile,
    session_plans,
    start_server,
    stop_server,
)
from .conftest import write_report

REASON = browser_missing()
if REASON and os.environ.get("CBAM_VIZ_REQUIRE_BROWSER") == "1":
    raise RuntimeError(f"browser tests are required here but cannot run: {REASON}")
pytestmark = pytest.mark.skipif(REASON is not None, reason=REASON or "")
USERS = 20


def test_twenty_concurrent_sessions_are_isolated(app_family, tmp_path):
    # Keep images whose every step changes what a correct page shows (else a step would prove nothing)
    # and whose predictions differ from every other user's.
    plans, seen = [], set()
    for image, steps in session_plans(app_family, distinct_images(tmp_path / "uploads", 4 * USERS)):
        if all(a[2] != b[2] for a, b in zip(steps, steps[1:])) and str(steps[0][2]) not in seen:
            seen.add(str(steps[0][2]))
            plans.append((image, steps))
    plans = plans[:USERS]
    assert len(plans) == USERS, "too few test images give distinguishable predictions"
    proc, url, _ = start_server({"CBAM_VIZ_FAMILY": str(app_family)})
    try:
        results = asyncio.run(many_sessions(url, plans, stagger_s=0.5, timeout_s=600, shots=tmp_path))
    finally:
        stop_server(proc)
    errors = [e for r in results for e in r["errors"]]
    latencies = sorted(t for r in results for t in r["latencies"]) or [float("nan")]
    write_report("sessions.txt", [
        f"{USERS} concurrent sessions: {len(latencies)} analyses checked, {len(errors)} errors; "
        f"action -> correct predictions on screen p50 {percentile(latencies, 0.5):.1f} s, "
        f"p95 {percentile(latencies, 0.95):.1f} s (test family, chromium on the same machine as the server)"])
    assert not errors, "\n".join(errors)
    assert len(latencies) == sum(len(steps) for _, steps in plans), "a session did not finish its steps"
