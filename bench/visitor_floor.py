"""How much of a new visitor's wait is Streamlit's own: a bare Streamlit page against the app.

A new visitor (a fresh browser context, empty cache) opens, on running servers, in turn:
- a bare page: a title, the words "Top-5 predictions" (which the timing waits for, as on the app's
  page), two photos and one small Vega-Lite chart: the least a page showing a prediction, its image
  and one interactive chart can be;
- the app on its first page (the built-in family, the default image).
Each is timed to its complete page (every element's script and image loaded, every chart drawn),
alternating, ``--visits`` times each; prints the medians and each visit's figure. The difference is
what the app's own page (its sidebar, tables, charts and overlays) costs the browser.

    python bench/visitor_floor.py [--visits 8] [--python VENV/bin/python]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app_latency import new_session  # noqa: E402  (this folder)
from tests.browser import ROOT, launch, start_server, stop_server  # noqa: E402

BARE_PAGE = f"""import streamlit as st
st.title("A bare Streamlit page")
st.write("Top-5 predictions")
st.image({str(ROOT / "assets/samples/cat.jpg")!r}, width=224)
st.image({str(ROOT / "assets/samples/horse.jpg")!r}, width=224)
st.vega_lite_chart({{"data": {{"values": [{{"channel": i, "weight": i / 16}} for i in range(16)]}}, "mark": "bar",
                    "encoding": {{"x": {{"field": "channel", "type": "ordinal"}},
                                 "y": {{"field": "weight", "type": "quantitative"}}}}}})
"""


def visit(browser, url: str) -> float:
    """Seconds from a new visitor's navigation to its complete page."""
    context = browser.new_context(viewport={"width": 1400, "height": 1500})
    *_, complete = new_session(context, url)
    context.close()
    return complete


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--visits", type=int, default=8)
    p.add_argument("--python", default=sys.executable, help="interpreter that runs the servers (default: this one)")
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as pw:
        bare = Path(tmp) / "bare_page.py"
        bare.write_text(BARE_PAGE)
        browser = launch(pw)
        servers, times = {}, {"a bare Streamlit page": [], "cbam-viz": []}
        try:
            servers["a bare Streamlit page"] = start_server(python=args.python, script=bare)
            servers["cbam-viz"] = start_server(python=args.python)
            for _, url, _ in servers.values():  # the servers' first script runs and caches, not timed
                visit(browser, url)
            for _ in range(args.visits):
                for name, (_, url, _) in servers.items():
                    times[name].append(visit(browser, url))
        finally:
            for proc, _, _ in servers.values():
                stop_server(proc)
        browser.close()
    for name, seconds in times.items():
        print(f"a new visitor, {name}: complete page in {statistics.median(seconds):.2f} s "
              f"(median of {len(seconds)}: {', '.join(f'{s:.2f}' for s in seconds)})")


if __name__ == "__main__":
    main()
