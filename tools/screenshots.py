"""Make the README's pictures: docs/digits_cnn.png (the diagram of specs/digits_cnn.yaml) and
docs/report.png (the report page of a short digits-cnn run), with the browser tests' headless
Chromium command (tests/browser.py).

    python tools/screenshots.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from browser import png_pixels_vary, screenshot  # noqa: E402


def layerctl(*args: str, cwd: Path = ROOT) -> None:
    subprocess.run([sys.executable, "-m", "layerctl", *args], cwd=cwd, check=True,
                   env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})


def main() -> None:
    docs = ROOT / "docs"
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        layerctl("plot", str(ROOT / "specs/digits_cnn.yaml"), "-o", str(work / "model.html"))
        layerctl("train", str(ROOT / "specs/digits_cnn.yaml"), "--out", str(work / "digits-cnn"),
                 "--epochs", "12", "-q")
        pictures = ((work / "model.html", docs / "digits_cnn.png", (460, 1150)),
                    (work / "digits-cnn/report.html", docs / "report.png", (980, 1500)))
        for page, png, size in pictures:
            errors = screenshot(page, png, size)
            if errors or not png_pixels_vary(png):
                raise SystemExit(f"{page}: blank or console errors {errors}")
            print(png)


if __name__ == "__main__":
    main()
