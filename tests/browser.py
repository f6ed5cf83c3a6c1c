"""Helpers to drive the app in a real browser (Debian's chromium through Playwright)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parent.parent
PREDICTIONS_TABLE = ".st-key-predictions table"  # the top-5 table, in st.container(key="predictions")
CHART = '[data-testid="stVegaLiteChart"] .marks'  # a drawn Vega-Lite chart (Streamlit has Vega draw SVG)


def browser_missing() -> str | None:
    """Why browser tests cannot run here, or None."""
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        return "Debian's chromium is not installed (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(env: dict[str, str] | None = None, port: int | None = None, python: str = sys.executable,
                 script: Path = ROOT / "streamlit_app.py") -> tuple[subprocess.Popen, str, float]:
    """Start ``streamlit run script`` (the app by default, with the interpreter ``python``) on a free
    local port; return (process, url, seconds to healthy)."""
    port = port or free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [python, "-m", "streamlit", "run", str(script), "--server.headless", "true",
         "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=1) as r:
                if r.status == 200:
                    return proc, url, time.perf_counter() - t0
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("streamlit did not become healthy in 60 s")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def wait_ready(page, timeout_ms: int = 120_000) -> None:
    """Wait until the script run finished, every element's code has loaded (no skeleton left where
    Streamlit loads an element type's script lazily: the charts), every image has loaded and every
    chart is drawn."""
    page.wait_for_selector("text=Top-5 predictions", timeout=timeout_ms)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"], [data-testid="stSkeleton"]')
              && document.querySelectorAll('[data-testid="stImage"] img, img[src*="/media/"]').length >= 2
              && Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)
              && Array.from(document.querySelectorAll('[data-testid="stVegaLiteChart"]'))
                      .every(c => c.querySelector('.marks'))""",
        timeout=timeout_ms,
    )


def state(page) -> dict:
    """What the page shows now: model name, predictions table text, the last block's overlay image URL."""
    return page.evaluate(
        """(table) => ({
            model: (Array.from(document.querySelectorAll('strong')).map(e => e.textContent)
                    .find(t => /^(channel|spatial|parallel|plain)/.test(t)) || ''),
            predictions: (document.querySelector(table) || {}).innerText || '',
            overlay: (Array.from(document.images).filter(i => i.src.includes('/media/')).pop() || {}).src || '',
        })""",
        PREDICTIONS_TABLE,
    )


def choose(page, label: str, option: str) -> float:
    """Pick ``option`` in the selectbox labelled ``label``; return the time of the pick (perf_counter)."""
    page.get_by_role("combobox", name=label, exact=True).click()
    pick = page.get_by_role("option", name=option, exact=True)
    pick.wait_for()
    t = time.perf_counter()
    pick.click()
    return t


def change_and_wait(page, label: str, option: str, expected_model: str, before: dict, timeout_ms: int = 60_000) -> dict:
    """Change a control, wait until the new model's predictions, overlay and charts are on screen.

    Returns the new state, with ``seconds`` from the pick of the option (the change itself, not
    opening the list before it) to the page showing the result. Every chart must have been redrawn:
    its markup differs from every chart's before the change (a new model changes every chart).
    """
    page.evaluate("(charts) => { window.cbamVizCharts = Array.from(document.querySelectorAll(charts), c => c.outerHTML); }",
                  CHART)
    picked = choose(page, label, option)
    page.wait_for_function(
        """([model, overlay, charts]) => {
            const strong = Array.from(document.querySelectorAll('strong')).map(e => e.textContent);
            const img = Array.from(document.images).filter(i => i.src.includes('/media/')).pop();
            const drawn = Array.from(document.querySelectorAll(charts), c => c.outerHTML);
            return strong.includes(model) && img && img.src !== overlay && img.complete && img.naturalWidth > 0
                   && !document.querySelector('[data-testid="stStatusWidget"]')
                   && drawn.length > 0 && drawn.every(svg => !window.cbamVizCharts.includes(svg));
        }""",
        arg=[expected_model, before["overlay"], CHART],
        timeout=timeout_ms,
    )
    seconds = time.perf_counter() - picked
    return {**state(page), "seconds": seconds}


# ---------------------------------------------------------------- many sessions at once (async Playwright)
PREDICTIONS_JS = """(table) => {
    const t = document.querySelector(table);
    if (!t) return null;
    return Array.from(t.querySelectorAll('tbody tr')).map(r => {
        const cells = Array.from(r.querySelectorAll('th, td')).map(c => c.innerText.trim());
        const i = cells.findIndex(c => /^[0-9.]+%$/.test(c));
        return [cells[i - 1], cells[i]];
    });
}"""


def expected_rows(top: list[tuple[str, float]]) -> list[list[str]]:
    """The predictions table's (class, probability) cells as the app formats them."""
    return [[c, f"{100 * p:.1f}%"] for c, p in top]


async def wait_rows(page, expected: list[list[str]], timeout_s: float = 180.0) -> list[list[str]] | None:
    """Poll the page until its predictions table shows ``expected``; None when it does, else what it showed last."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    rows = None
    while loop.time() < deadline:
        rows = await page.evaluate(PREDICTIONS_JS, PREDICTIONS_TABLE)
        if rows == expected:
            return None
        await asyncio.sleep(0.05)
    status = await page.evaluate("() => (document.querySelector('[data-testid=\"stStatusWidget\"]') || {}).innerText")
    return {"rows": rows, "status widget": status}


async def session(browser, url: str, image: Path, steps: list[tuple[str, str, list[list[str]]]],
                  delay_s: float = 0.0, timeout_s: float = 300.0, shots: Path | None = None) -> dict:
    """One user: open the app after ``delay_s``, upload ``image``, then make each (control label,
    option, expected rows) change. The first step's label is ``"upload"``.

    Returns per-step latencies (s) and any mismatch seen (with a screenshot in ``shots`` if given).
    """
    import asyncio
    import time as _time

    await asyncio.sleep(delay_s)
    context = await browser.new_context(viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(timeout_s * 1000)
    page = await context.new_page()
    out = {"image": image.name, "latencies": [], "errors": []}
    try:
        await page.goto(url)
        await page.wait_for_selector("text=Top-5 predictions")
        for label, option, expected in steps:
            t = _time.perf_counter()
            if label == "upload":
                await page.get_by_text("Upload", exact=True).click()
                await page.locator('input[type="file"]').first.set_input_files(str(image))
            else:
                await page.get_by_role("combobox", name=label, exact=True).click()
                await page.get_by_role("option", name=option, exact=True).click()
            seen = await wait_rows(page, expected, timeout_s)
            if seen is not None:
                out["errors"].append(f"{image.name} after {label}={option}: expected {expected}, page shows {seen}")
                if shots is not None:
                    await page.screenshot(path=str(shots / f"failed-{image.stem}.png"), full_page=True)
                break
            out["latencies"].append(_time.perf_counter() - t)
    except Exception as e:  # a timeout or a page error is a failed session, reported with the others
        out["errors"].append(f"{image.name}: {type(e).__name__}: {str(e).splitlines()[0]}")
    finally:
        await context.close()
    return out


async def many_sessions(url: str, plans: list[tuple[Path, list]], stagger_s: float = 0.25,
                        timeout_s: float = 300.0, shots: Path | None = None) -> list[dict]:
    """Run one :func:`session` per (image, steps) plan at the same time, in one chromium; user i
    arrives ``i * stagger_s`` seconds after the first, as a class does."""
    import asyncio

    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            return await asyncio.gather(*(session(browser, url, image, steps, i * stagger_s, timeout_s, shots)
                                          for i, (image, steps) in enumerate(plans)))
        finally:
            await browser.close()


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


ROUTES = (  # what each user does after the upload: (control label, option, configuration reached)
    [("Order", "spatial-first", ("spatial-first", 7)), ("Spatial kernel size k", "3", ("spatial-first", 3))],
    [("Spatial kernel size k", "3", ("channel-first", 3)), ("Order", "spatial-first", ("spatial-first", 3))],
)


def session_plans(family_root: Path, images: list[Path]) -> list[tuple[Path, list]]:
    """For each image, the steps of one user and the rows a single session would show at each step.

    The references come from the library on the same weights, one image at a time.
    """
    from cbam_viz.explain.analysis import analyse
    from cbam_viz.app.images import load_image
    from cbam_viz.models.registry import Family

    fam = Family(family_root)

    def rows(image: Path, order: str, kernel: int) -> list[list[str]]:
        model, card = fam.load_variant(order, kernel, 16)
        return expected_rows(analyse(model, load_image(image.read_bytes()), card).top)

    plans = []
    for i, image in enumerate(images):
        steps = [("upload", "", rows(image, "channel-first", 7))]
        steps += [(label, option, rows(image, *config)) for label, option, config in ROUTES[i % len(ROUTES)]]
        plans.append((image, steps))
    return plans


def distinct_images(folder: Path, n: int, size: int = 48, seed: int = 0) -> list[Path]:
    """``n`` PNG photos of random colour mixes and shapes, written to ``folder``."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        pixels = rng.integers(0, 80, (size, size + 8, 3), dtype=np.uint8)
        pixels += rng.integers(0, 170, 3, dtype=np.uint8)
        y, x = rng.integers(0, size // 2, 2)
        pixels[y : y + size // 2, x : x + size // 2] = rng.integers(0, 255, 3, dtype=np.uint8)
        path = folder / f"user-{i:02d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(path)
    return paths
