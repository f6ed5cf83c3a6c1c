"""Memory: RSS growth over 500 consecutive analyses with changing configurations and images.

Runs the real app script headless (Streamlit's AppTest, in this process, as the server would run
it), cycling through every trained configuration of the family and several uploaded images. The
warm-up is one pass over every (configuration, image) pair, which fills every bounded cache (all
variants loaded, the analysis cache full); it then prints the process RSS before and after 500
more analyses. Goal: growth < 5%.

    python bench/memory.py [--analyses 500] [--family assets/family]
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cbam_viz.models.registry import Family  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--analyses", type=int, default=500)
    p.add_argument("--warmup", type=int, default=0, help="analyses before the first reading; default one pass")
    p.add_argument("--family", default="")
    args = p.parse_args()
    if args.family:
        os.environ["CBAM_VIZ_FAMILY"] = args.family
    family = Family(args.family or Family().root)
    settings = [dict(ca=k.attention in ("both", "channel"), sa=k.attention in ("both", "spatial"),
                     order=k.order or "channel-first", kernel=k.kernel_size or 7, ratio=k.reduction or 16)
                for k in family.keys()]
    rng = np.random.default_rng(0)
    images = []
    for i in range(7):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (120 + 10 * i, 160, 3), dtype=np.uint8)).save(buf, "PNG")
        images.append(buf.getvalue())
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=300)
    at.run()
    at.radio(key="source").set_value("upload").run()
    before, runs = None, []
    pairs = list(itertools.product(settings, range(len(images))))
    warmup = args.warmup or len(pairs)
    combos = itertools.cycle(pairs)
    for n in range(1, warmup + args.analyses + 1):
        setting, image = next(combos)
        for key in ("ca", "sa"):
            at.sidebar.toggle(key=key).set_value(setting[key])
        # the controls this configuration uses (order needs both gates, kernel the spatial, ratio the channel one)
        used = [k for k, on in (("order", setting["ca"] and setting["sa"]), ("kernel", setting["sa"]),
                                ("ratio", setting["ca"])) if on]
        if any(at.sidebar.selectbox(key=k).disabled for k in used):
            at.run()  # the toggles enable them first, as in a browser
        for key in used:
            at.sidebar.selectbox(key=key).set_value(setting[key])
        at.file_uploader(key="upload").set_value((f"img{image}.png", images[image], "image/png"))
        t = time.perf_counter()
        at.run()
        if n > warmup:
            runs.append(time.perf_counter() - t)
        if at.exception or at.error:
            raise SystemExit(f"analysis {n} failed: {at.exception or at.error[0].value}")
        if n == warmup:
            before = rss_mb()
    after = rss_mb()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(settings)} configurations x {len(images)} images: {warmup} analyses of warm-up, then {args.analyses}")
    print(f"RSS after the warm-up: {before:.1f} MB; after {args.analyses} more: {after:.1f} MB; "
          f"growth {100 * (after - before) / before:+.2f}%; peak {peak:.1f} MB")
    runs.sort()
    print(f"server time per analysis (one script run, one thread): p50 {statistics.median(runs):.3f} s, "
          f"p95 {runs[round(0.95 * (len(runs) - 1))]:.3f} s")


if __name__ == "__main__":
    main()
