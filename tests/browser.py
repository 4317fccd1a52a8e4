"""A real browser for tests that check pages as a reader sees them (HTML reports, the documentation site).

``chromium`` is a pytest fixture (registered in ``conftest.py``) yielding a headless Chromium driven by Selenium,
with the browser console captured. It skips, with the reason, only where no Chromium or chromedriver is installed
(Debian: ``apt-get install chromium chromium-driver``; CI's ``.ci/run`` installs both).

Typical use::

    def test_page(chromium, tmp_path):
        page = open_page(chromium, tmp_path / "report.html")
        assert all_images_decoded(page)
        assert console_errors(page) == []
        screenshot(page, tmp_path / "report.png")
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DRIVER_NAMES = ("chromedriver",)
WINDOW = (1280, 1000)


def find_chromium() -> tuple[str, str] | None:
    """The (browser, driver) executables found on PATH (or named by $CHROMIUM / $CHROMEDRIVER), or None."""
    browser = os.environ.get("CHROMIUM") or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    driver = os.environ.get("CHROMEDRIVER") or next(filter(None, map(shutil.which, DRIVER_NAMES)), None)
    return (browser, driver) if browser and driver else None


def start_chromium(browser: str, driver: str, window: tuple[int, int] = WINDOW):
    """A headless Chromium WebDriver that keeps every console message (``console_errors`` reads them)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={window[0]},{window[1]}", "--allow-file-access-from-files"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(driver))


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """A headless Chromium WebDriver shared by the session's tests; skips where none is installed."""
    found = find_chromium()
    if found is None:
        pytest.skip("no Chromium with chromedriver installed (apt-get install chromium chromium-driver)")
    driver = start_chromium(*found)
    try:
        yield driver
    finally:
        driver.quit()


def open_page(driver, path: str | Path):
    """Load a local file (or a URL) and wait until the page and its images have loaded; return the driver."""
    from selenium.webdriver.support.ui import WebDriverWait

    url = str(path) if "://" in str(path) else Path(path).resolve().as_uri()
    driver.get_log("browser")  # drop messages of earlier pages
    driver.get(url)
    WebDriverWait(driver, 120).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"))
    return driver


def images(driver) -> list[dict]:
    """Every <img> of the page: its alt text, source (first 60 characters) and natural size in pixels."""
    return driver.execute_script(
        "return Array.from(document.images).map(i => ({alt: i.alt, src: i.src.slice(0, 60), "
        "width: i.naturalWidth, height: i.naturalHeight}))")


def all_images_decoded(driver) -> bool:
    """Whether the page has images and each decoded (non-zero natural width)."""
    found = images(driver)
    return bool(found) and all(i["width"] > 0 for i in found)


def console_errors(driver) -> list[str]:
    """The console messages of level SEVERE since the page was opened (JavaScript errors, failed loads)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def screenshot(driver, path: str | Path) -> Path:
    """Save a PNG of the whole page (the window is stretched to the page's height first)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    width = driver.execute_script("return document.documentElement.scrollWidth")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(max(width, WINDOW[0]), min(max(height, WINDOW[1]), 16_000))
    driver.save_screenshot(str(path))
    driver.set_window_size(*WINDOW)
    return path
