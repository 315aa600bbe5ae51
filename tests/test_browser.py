"""Open every page of the built book in headless Chromium, offline, as a reader would.

Debian's Chromium (`apt-get install -y chromium`, done by `make test` where possible) is driven by
Playwright; every request to any host but the local server is blocked and counted. Screenshots
of each chapter go to `test-artifacts/screenshots/`.
"""
from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest

from scalebook import config

from conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.xdist_group("book")]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
        "--disable-quic", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
SHOTS = REPO / "test-artifacts" / "screenshots"


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server(smoke_book):
    html = smoke_book / "_build" / "html"
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(html)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", html
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (make test installs Debian's chromium where it runs as root)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


def visit(browser, url: str, host: str, screenshot: Path | None = None):
    """Load a page with off-host requests blocked; return (page facts, blocked, console errors)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, service_workers="block")
    blocked, errors = [], []
    context.route("**/*", lambda route: route.continue_() if urlparse(route.request.url).netloc == host
                  or route.request.url.startswith("data:") else (blocked.append(route.request.url), route.abort()))
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    response = page.goto(url, wait_until="networkidle")
    page.wait_for_timeout(300)
    facts = page.evaluate("""() => Array.from(document.querySelectorAll('figure img, img[src$=".svg"]')).map(img => ({
        src: img.getAttribute('src'), complete: img.complete, width: img.naturalWidth,
        visible: img.getBoundingClientRect().width > 50 && img.getBoundingClientRect().height > 50}))""")
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    status = response.status if response else None
    context.close()
    return status, facts, blocked, errors


def test_every_page_loads_offline_with_visible_figures(server, browser):
    base, html = server
    host = urlparse(base).netloc
    pages = sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                   if not p.relative_to(html).as_posix().startswith(("figures/", "runs/", "_static/")))
    assert "index.html" in pages
    chapters = {f"book/_generated/{n}.html" for n in config.load(REPO / "report.yml").notebooks}
    problems = []
    for rel in pages:
        shot = SHOTS / (Path(rel).stem + ".png") if rel in chapters or rel == "index.html" else None
        status, figs, blocked, errors = visit(browser, f"{base}/{rel}", host, shot)
        if status != 200:
            problems.append(f"{rel}: HTTP {status}")
        if blocked:
            problems.append(f"{rel}: tried to load off the machine: {blocked[:3]}")
        if errors:
            problems.append(f"{rel}: console errors: {errors[:3]}")
        for f in figs:
            if not (f["complete"] and f["width"] > 0 and f["visible"]):
                problems.append(f"{rel}: figure {f['src']} is not visible")
            svg_path = (html / Path(rel).parent / f["src"]).resolve()
            text = svg_path.read_text(encoding="utf-8") if svg_path.exists() else ""
            if "<path" not in text and "<text" not in text:
                problems.append(f"{rel}: figure {f['src']} has no marks")
        if rel in chapters and not figs:
            problems.append(f"{rel}: a chapter without figures")
    assert problems == [], "\n".join(problems)


def test_interactive_figures_render_offline(server, browser):
    base, html = server
    host = urlparse(base).netloc
    problems = []
    for fig in config.load(REPO / "report.yml").figure_ids():
        context = browser.new_context()
        blocked, errors = [], []
        context.route("**/*", lambda route: route.continue_() if urlparse(route.request.url).netloc == host
                      or route.request.url.startswith("data:") else (blocked.append(route.request.url), route.abort()))
        page = context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/figures/{fig}.html", wait_until="networkidle")
        page.wait_for_selector("svg, canvas", timeout=15000)
        marks = page.evaluate("() => document.querySelectorAll('svg path, svg text, canvas').length")
        context.close()
        if blocked or errors or marks == 0:
            problems.append(f"{fig}.html: blocked={blocked[:2]} errors={errors[:2]} marks={marks}")
    assert problems == [], "\n".join(problems)
