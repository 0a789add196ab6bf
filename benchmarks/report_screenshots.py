"""Screenshots of an ``eval.html`` in headless Chromium at desktop and phone widths.

    .venv/bin/python benchmarks/report_screenshots.py REPORT_DIR/eval.html benchmarks/report

writes ``benchmarks/report-desktop.png`` (1280 px wide) and ``benchmarks/report-phone.png`` (390 px),
each the top ``--height`` CSS pixels of the page (the warnings, the baselines and the first plots),
with the blank space below a short page trimmed. Needs a Chromium (``chromium`` or
``chromium-browser`` on the PATH); ``--full`` keeps the whole page instead of its top.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

WIDTHS = {"desktop": 1280, "phone": 390}


def screenshot(chromium: str, page: Path, out: Path, width: int, height: int) -> None:
    with tempfile.TemporaryDirectory() as profile:
        flags = ["--headless", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={profile}"]
        if os.geteuid() == 0:
            flags.append("--no-sandbox")  # Chromium refuses its sandbox as root
        size, url = f"--window-size={width},{height}", page.resolve().as_uri()
        subprocess.run([chromium, *flags, f"--screenshot={out}", size, url], check=True, timeout=180)


def trim_blank_bottom(path: Path) -> None:
    """Cut the rows below the last one that is not plain white (a page shorter than the window)."""
    image = Image.open(path).convert("RGB")
    pixels = np.asarray(image)
    inked = np.nonzero((pixels < 250).any(axis=(1, 2)))[0]
    if inked.size:
        image.crop((0, 0, image.width, min(image.height, int(inked[-1]) + 24))).save(path, optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("prefix", help="output prefix: PREFIX-desktop.png and PREFIX-phone.png")
    parser.add_argument("--height", type=int, default=1700, help="CSS pixels of the page kept (default 1700)")
    parser.add_argument("--full", action="store_true", help="keep the whole page (a tall window, trimmed)")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("no chromium on the PATH (apt-get install -y chromium)")
    for name, width in WIDTHS.items():
        out = Path(f"{args.prefix}-{name}.png")
        height = 16000 if args.full else args.height
        screenshot(chromium, args.page, out, width, height)
        trim_blank_bottom(out)
        print(f"{out}: {Image.open(out).size[0]}×{Image.open(out).size[1]} px")


if __name__ == "__main__":
    main()
