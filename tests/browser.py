"""Headless Chromium for the page tests: a screenshot of a page and the console errors it
logged. Used by tests/test_report.py (marked `browser`) and tools/screenshots.py."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
# Chromium's stderr log prints every console message as `...:CONSOLE:N] "text", source: ...`
# without its level; the pages hold no script, so any console line (an error, a resource that
# failed to load) is a failure.
CONSOLE_LINE = re.compile(r":CONSOLE(:\d+)?\]")


def screenshot(page: Path, png: Path, size: tuple[int, int] = (1200, 900)) -> list[str]:
    """Write `png`, a screenshot of `page`; return the console lines Chromium logged."""
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
             f"--window-size={size[0]},{size[1]}", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120)
    if not png.exists():
        raise RuntimeError(f"chromium wrote no screenshot ({done.returncode}): "
                           f"{done.stderr[-2000:]}")
    return [line for line in done.stderr.splitlines() if CONSOLE_LINE.search(line)]


def png_pixels_vary(png: Path, at_least: int = 16) -> bool:
    """Whether a PNG is not blank: its decompressed scanlines hold at least `at_least`
    distinct byte values (a one-colour page, whatever the row filters, holds a handful)."""
    import struct
    import zlib

    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{png} is not a PNG"
    position, chunks = 8, []
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        if kind == b"IDAT":
            chunks.append(data[position + 8:position + 8 + length])
        position += 12 + length
    return len(set(zlib.decompress(b"".join(chunks)))) >= at_least
