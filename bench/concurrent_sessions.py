"""Many users at once: N browser sessions (Playwright contexts) against one server.

Each user opens the app, uploads its own image, then changes the order and the kernel (two routes
through the family, see tests/browser.py). Every step waits until the page shows exactly the
predictions a single session computes for that image and configuration, so a figure here is also
an isolation check. Prints the errors and the latency per analysis (action -> correct predictions
on screen), p50 and p95, for uploads and for control changes.

    python bench/concurrent_sessions.py [--users 20] [--family assets/family]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cbam_viz.models.registry import default_root  # noqa: E402
from tests.browser import (  # noqa: E402
    distinct_images,
    many_sessions,
    percentile,
    session_plans,
    start_server,
    stop_server,
)


def summary(label: str, values: list[float]) -> str:
    if not values:
        return f"{label}: none"
    return (f"{label}: {len(values)}, p50 {statistics.median(values):.2f} s, p95 {percentile(values, 0.95):.2f} s, "
            f"max {max(values):.2f} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=20)
    p.add_argument("--family", type=Path, default=default_root())
    p.add_argument("--stagger", type=float, default=0.25, help="seconds between two users' arrivals")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plans = session_plans(args.family, distinct_images(Path(tmp), args.users, size=96))
        proc, url, _ = start_server({"CBAM_VIZ_FAMILY": str(args.family)})
        t0 = time.perf_counter()
        try:
            results = asyncio.run(many_sessions(url, plans, args.stagger))
        finally:
            stop_server(proc)
    wall = time.perf_counter() - t0
    errors = [e for r in results for e in r["errors"]]
    uploads = [r["latencies"][0] for r in results if r["latencies"]]
    changes = [t for r in results for t in r["latencies"][1:]]
    print(f"{args.users} concurrent sessions on {args.family.name}: {len(uploads) + len(changes)} analyses, "
          f"{len(errors)} errors, {wall:.1f} s in all")
    print(summary("upload -> its predictions on screen", uploads))
    print(summary("control change -> new predictions on screen", changes))
    print(summary("every analysis", uploads + changes))
    for e in errors:
        print("error:", e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
