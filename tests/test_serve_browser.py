"""The page of `imagen-video serve` in a real browser: headless Chromium from the system packages,
driven by Playwright, against a server on a free loopback port with a tiny random cascade."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

playwright = pytest.importorskip("playwright.sync_api", reason="the browser test needs the 'test' extra")
pytest.importorskip("gradio", reason="the page needs the 'serve' extra")

from serve_helpers import start_server, tiny_cascade_dir  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
VIDEO_LOADED = "id => { const v = document.querySelector(`#${id} video`); return v && v.readyState >= 2; }"


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="no system Chromium: install the Debian package 'chromium' (.ci/run tries apt-get)",
)
def test_page_generates_a_video_offline(tmp_path: Path) -> None:
    process, url = start_server(tiny_cascade_dir(tmp_path), tmp_path / "store")
    requested: list[str] = []
    try:
        with playwright.sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page()
            page.on("request", lambda request: requested.append(request.url))
            page.goto(url + "/", wait_until="networkidle")
            page.locator("#prompt textarea").fill("a red circle moving right")
            page.locator("#generate").click()
            page.wait_for_function(VIDEO_LOADED, arg="video", timeout=90_000)
            page.wait_for_function(VIDEO_LOADED, arg="preview", timeout=10_000)
            source = page.evaluate("document.querySelector('#video video').currentSrc")
            status = page.locator("#status").inner_text()
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            browser.close()
    finally:
        process.terminate()
        process.wait(30)
    assert source.startswith(url) and source.endswith(".mp4")
    assert "job video_" in status
    assert (tmp_path / "page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    outside = [address for address in requested if not address.startswith(url)]
    assert requested and not outside, f"requests left the machine: {outside[:5]}"
    assert len(list((tmp_path / "store" / "videos").glob("video_*/video_0.mp4"))) == 1
