"""Render a run's HTML report in headless Chromium and save screenshots to look at.

    python examples/screenshot_report.py runs/quickstart            # -> runs/quickstart/report/shot_*.png

Needs a `chromium` binary (Debian: `apt-get install -y chromium`). The page is cut into
1400 x 2000 px slices (`--slice`), small enough to view one at a time. Exit code 2 when the page
or the browser is missing.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import cv2


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--height", type=int, default=8000, help="page height to render, px")
    ap.add_argument("--slice", type=int, default=2000, help="height of each saved slice, px")
    args = ap.parse_args()
    page = Path(args.run_dir).resolve() / "report" / "report.html"
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not page.is_file() or browser is None:
        print(f"needs {page} and a chromium binary", file=sys.stderr)
        return 2
    full = page.with_name("shot_full.png")
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={full}", f"--window-size=1400,{args.height}", page.as_uri()],
                   check=True, capture_output=True, timeout=120)
    image = cv2.imread(str(full))
    rows = (image.sum(axis=(1, 2)) < image.shape[1] * 3 * 255).nonzero()[0]  # drop the blank tail
    image = image[: rows.max() + 20 if len(rows) else image.shape[0]]
    for i, top in enumerate(range(0, image.shape[0], args.slice)):
        out = page.with_name(f"shot_{i}.png")
        cv2.imwrite(str(out), image[top:top + args.slice])
        print(out)
    full.unlink()
    return 0


if __name__ == "__main__":
    sys.exit(main())
