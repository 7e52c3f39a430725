"""Headless Chromium for the browser tests: Playwright (PyPI) driving the system ``chromium``
(Debian's package; ``.ci/run`` installs it with ``fonts-noto-cjk``). Playwright's own browser
download is never used.

Without a browser the tests skip, unless ``CUMED_REQUIRE_BROWSER=1`` (set by ``.ci/run``), where
they fail instead. ``CUMED_CHROMIUM`` overrides the executable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest


def chromium_path() -> str | None:
    explicit = os.environ.get("CUMED_CHROMIUM")
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _missing(why: str):
    if os.environ.get("CUMED_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{why} (CUMED_REQUIRE_BROWSER=1)")
    pytest.skip(why)


@contextmanager
def browser():
    """A headless Chromium (Playwright ``Browser``), closed on exit."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright not installed (pip install -e '.[test]')")
    exe = chromium_path()
    if not exe:
        _missing("no chromium on PATH (apt-get install chromium fonts-noto-cjk)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield b
        finally:
            b.close()


def cjk_font_installed() -> bool | None:
    """True/False from fontconfig (``fc-list :lang=zh``); None when fc-list is missing."""
    if not shutil.which("fc-list"):
        return None
    out = subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True, timeout=30).stdout
    return bool(out.strip())


def assert_not_blank(png: Path, min_colours: int = 16) -> dict:
    """The screenshot is a real rendering: a non-trivial PNG with many colours and real contrast."""
    from PIL import Image, ImageStat

    assert png.is_file() and png.stat().st_size > 5_000, f"{png}: missing or tiny ({png.stat().st_size if png.is_file() else 0} bytes)"
    with Image.open(png) as im:
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20)
        n_colours = len(colours) if colours is not None else 1 << 20
        lo, hi = rgb.convert("L").getextrema()
        stddev = ImageStat.Stat(rgb.convert("L")).stddev[0]
    info = {"bytes": png.stat().st_size, "colours": n_colours, "luma_range": (lo, hi), "luma_std": round(stddev, 2)}
    assert n_colours >= min_colours and hi - lo >= 100 and stddev > 5, f"{png} looks blank: {info}"
    return info


def login(page, url: str, username: str, password: str) -> None:
    """Log in to Label Studio through its real login form."""
    page.goto(f"{url.rstrip('/')}/user/login/")
    page.fill('input[name="email"]', username)
    page.fill('input[name="password"]', password)
    page.click('button[type="submit"]')
    page.wait_for_url(lambda u: "/user/login" not in u)


def in_viewport(box: dict | None, viewport: dict) -> bool:
    """A bounding box (Playwright's, page coordinates of the current scroll) lies wholly inside the
    viewport: visible without scrolling."""
    return (box is not None and box["width"] > 0 and box["height"] > 0
            and box["x"] >= 0 and box["y"] >= 0
            and box["x"] + box["width"] <= viewport["width"] and box["y"] + box["height"] <= viewport["height"])


def y_overlap(a: dict, b: dict) -> float:
    """How many pixels two bounding boxes share vertically (<= 0: one is wholly above the other)."""
    return min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
