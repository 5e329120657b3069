"""What a researcher sees on opening ``report.html``: a PNG of its first 1400×1000 pixels, rendered by
headless Chromium, written as ``report.png`` beside the report (committed with it, so a reviewer can check
that the verdict and the forest plot sit above the fold without opening a browser).

    python -m steerbench.analysis.compare.screenshot REPORT_DIR_OR_HTML [--out PNG]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from steerbench.errors import UsageError

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL = "apt-get install -y chromium"
SIZE = (1400, 1000)


def find_browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(html: Path, png: Path | None = None, size: tuple[int, int] = SIZE) -> Path:
    """Render ``html`` at ``size`` (width, height) and write the visible part to ``png`` (default:
    ``report.png`` beside it). Raises UsageError when no Chromium is installed or it fails."""
    html = Path(html).resolve()
    png = Path(png).resolve() if png else html.with_suffix(".png")
    if not html.is_file():
        raise UsageError(f"{html} is not a file; give report.html or the folder that holds it")
    browser = find_browser()
    if browser is None:
        raise UsageError(f"no headless Chromium found (tried {', '.join(BROWSERS)}); install it: {INSTALL}")
    # a throwaway profile: no state from earlier runs, nothing left in the user's home
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",  # needed as root (containers, CI); the page is our own file
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}",
            f"--screenshot={png}",
            html.as_uri(),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not png.is_file():
        raise UsageError(f"{browser} could not render {html} (exit {proc.returncode}): {proc.stderr[-500:]}")
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="report.html, or the folder that holds it")
    parser.add_argument("--out", type=Path, default=None, help="PNG to write (default: report.png beside it)")
    args = parser.parse_args(argv)
    html = args.report / "report.html" if args.report.is_dir() else args.report
    try:
        print(screenshot(html, args.out))
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
