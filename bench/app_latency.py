"""App speed in a real browser (Debian's chromium via Playwright) on the built-in family.

Prints: server start -> first complete page (in a browser that is already open: the predictions
shown, every element's script and every image loaded, every chart drawn), and from a sidebar change
(the click on the new option; opening the list before it is not counted) to the updated
predictions, overlay and charts on screen and the script run finished, p50 and p95 over >= 20 changes
that cycle through the trained orders (k=7, r=16) and kernels (channel-first, r=16); then a new
session on the running server to its complete page, two ways: a new tab of the same browser (its
cache holds Streamlit's scripts) and a new visitor (a fresh browser context, empty cache).
The first change is also printed on its own: the first page is drawn from the precomputed gallery
(cbam_viz.app.precomputed) without torch, so the first change that runs a model may wait for torch's
import. Goals: first page <= 6 s after `streamlit run` (cold), <= 2 s for a new session (warm),
a control change p50 <= 0.4 s.

    python bench/app_latency.py [--changes 24] [--family assets/family] [--python VENV/bin/python]

``--python`` runs the server with another interpreter, e.g. a fresh venv holding only
``requirements.txt`` (the README's setup): Streamlit's start scans every installed distribution,
so a development environment with the test dependencies starts it more slowly.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cbam_viz.models.registry import Family, VariantNotFound, default_root, normalise_key  # noqa: E402
from tests.browser import change_and_wait, launch, start_server, state, stop_server, wait_ready  # noqa: E402


def plan(family: Family) -> list[tuple[str, str, str]]:
    """(control label, option, expected model name) cycling through trained configurations."""
    steps = []
    configurations = [("Order", order, normalise_key(order)) for order in ("spatial-first", "parallel", "channel-first")]
    configurations += [("Spatial kernel size k", str(k), normalise_key(kernel_size=k)) for k in (3, 7)]
    for label, option, key in configurations:
        try:  # the model the page shows for it: end-to-end where trained so, else like-for-like
            steps.append((label, option, family.card(family.resolve(key))["name"]))
        except VariantNotFound:
            continue
    if len(steps) < 2:
        raise SystemExit("the family needs at least two trained orders or kernels to measure switching")
    return steps


def new_session(context, url: str) -> tuple[float, float, float]:
    """Open the app in a new page of ``context``: seconds to the page shell, the predictions, the complete page."""
    visitor = context.new_page()
    t = time.perf_counter()
    visitor.goto(url)
    visitor.wait_for_selector('[data-testid="stApp"]', timeout=120_000)
    shell = time.perf_counter() - t
    visitor.wait_for_selector("text=Top-5 predictions", timeout=120_000)
    predictions = time.perf_counter() - t
    wait_ready(visitor)
    complete = time.perf_counter() - t
    visitor.close()
    return shell, predictions, complete


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--changes", type=int, default=24)
    p.add_argument("--family", type=Path, default=default_root())
    p.add_argument("--python", default=sys.executable, help="interpreter that runs the server (default: this one)")
    args = p.parse_args()
    steps = plan(Family(args.family))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = launch(pw)  # open before the server starts, as a user's browser is
        page = browser.new_context(viewport={"width": 1400, "height": 1500}).new_page()
        t0 = time.perf_counter()
        proc, url, healthy = start_server({"CBAM_VIZ_FAMILY": str(args.family)}, python=args.python)
        try:
            page.goto(url)
            page.wait_for_selector('[data-testid="stApp"]', timeout=120_000)
            shell = time.perf_counter() - t0  # the frontend loaded and connected
            page.wait_for_selector("text=What does CBAM attend to?", timeout=120_000)
            titled = time.perf_counter() - t0  # the script's imports done, its first elements shown
            wait_ready(page)
            first = time.perf_counter() - t0
            current = state(page)
            times = []
            # the page starts channel-first k7 r16: begin with a step that changes something
            for label, option, model in itertools.cycle(steps):
                if len(times) == args.changes:
                    break
                if model == current["model"]:
                    continue
                current = change_and_wait(page, label, option, model, current)
                times.append(current["seconds"])
            # a new session on the running server: a new tab of the same browser (its HTTP cache holds
            # Streamlit's scripts), and a new visitor (a fresh browser context: empty cache)
            sessions = {"a new tab": [], "a new visitor": []}
            for _ in range(3):
                sessions["a new tab"].append(new_session(page.context, url))
                visitor = browser.new_context(viewport={"width": 1400, "height": 1500})
                sessions["a new visitor"].append(new_session(visitor, url))
                visitor.close()
        finally:
            stop_server(proc)
        browser.close()
    first_change = times[0]
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    print(f"server healthy after {healthy:.2f} s, page shell {shell:.2f} s, title {titled:.2f} s; "
          f"first complete page {first:.2f} s after start")
    print(f"option picked -> updated predictions, overlay and charts: {len(times)} changes, "
          f"p50 {statistics.median(times):.3f} s, p95 {p95:.3f} s (first visit of each variant included); "
          f"the first change {first_change:.3f} s")
    for kind, runs in sessions.items():
        shell, predictions, complete = (statistics.median(r[i] for r in runs) for i in range(3))
        print(f"{kind} on the running server (a new session): complete page in {complete:.2f} s (median of "
              f"{len(runs)}; page shell {shell:.2f} s, predictions {predictions:.2f} s)")


if __name__ == "__main__":
    main()
