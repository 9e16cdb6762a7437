"""Headless Chromium from the command line: a page's screenshot and its DOM after
rendering. Used by scripts/screenshots.py (the README's pictures) and by the tests of
the feedback page and the class report.

Chromium's own `--screenshot` and `--dump-dom` switches are enough for static pages,
so neither selenium nor chromedriver is needed. Debian's package is `chromium`
(scripts/install.sh installs it as root).
"""

import os
import shutil
import subprocess
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium():
    """The path of a Chromium executable, or None."""
    return next(filter(None, map(shutil.which, NAMES)), None)


def _run(page, *switches, timeout=120):
    command = [find_chromium() or "chromium", "--headless", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", "--allow-file-access-from-files", *switches,
               Path(page).resolve().as_uri()]
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)


def screenshot(page, png, width=1100, height=1600):
    """Render the HTML file `page` in a window of width x height pixels into `png`."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run(page, f"--window-size={width},{height}", f"--screenshot={png}")
    return png


def dump_dom(page):
    """The page's DOM, serialised after Chromium rendered it."""
    return _run(page, "--dump-dom").stdout
