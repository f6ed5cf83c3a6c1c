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


def start_server(env: dict[str, str] | None = None, port: int | None = None) -> tuple[subprocess.Popen, str, float]:
    """Start ``streamlit run streamlit_app.py`` on a free local port; return (process, url, seconds to healthy)."""
    port = port or free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.headless", "true",
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
    """Wait until the script run finished and every image on the page has loaded."""
    page.wait_for_selector("text=Top-5 predictions", timeout=timeout_ms)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
              && document.querySelectorAll('[data-testid="stImage"] img, img[src*="/media/"]').length >= 2
              && Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)""",
        timeout=timeout_ms,
    )


def state(page) -> dict:
    """What the page shows now: model name, predictions table text, overlay image URL."""
    return page.evaluate(
        """() => ({
            model: (Array.from(document.querySelectorAll('strong')).map(e => e.textContent)
                    .find(t => /^(channel|spatial|parallel|plain)/.test(t)) || ''),
            predictions: (document.querySelector('[data-testid="stTable"]') || {}).innerText || '',
            overlay: (Array.from(document.images).find(i => i.src.includes('/media/')) || {}).src || '',
        })"""
    )


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the selectbox labelled ``label``."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()


def change_and_wait(page, label: str, option: str, expected_model: str, before: dict, timeout_ms: int = 60_000) -> dict:
    """Change a control, wait until the new model's predictions and overlay are on screen; return the new state."""
    choose(page, label, option)
    page.wait_for_function(
        """([model, overlay]) => {
            const strong = Array.from(document.querySelectorAll('strong')).map(e => e.textContent);
            const img = Array.from(document.images).find(i => i.src.includes('/media/'));
            return strong.includes(model) && img && img.src !== overlay && img.complete && img.naturalWidth > 0
                   && !document.querySelector('[data-testid="stStatusWidget"]');
        }""",
        arg=[expected_model, before["overlay"]],
        timeout=timeout_ms,
    )
    return state(page)
