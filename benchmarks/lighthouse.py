"""Lighthouse on every page of a built site, served gzip-compressed as GitHub Pages serves it:
`python benchmarks/lighthouse.py SITE_DIR [--runs 3]` (issue 12's targets: performance >= 90 and
accessibility 100 on every page, under Lighthouse's default mobile profile).

Lighthouse is not one of the project's dependencies (it is some 200 npm packages): this runs it
with `npx --yes lighthouse@LIGHTHOUSE`, which fetches it from the npm registry on first use, and
points it at Debian's Chromium. Each page is run `--runs` times and the median of each metric is
printed; the scores of every run are printed beside, as they vary from run to run on a busy
machine by 10 points or more.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import http.server
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

LIGHTHOUSE = "12"
CHROMIUM = "/usr/bin/chromium"
COMPRESSED = ("text/", "javascript", "json", "svg")
METRICS = {"first-contentful-paint": "FCP", "largest-contentful-paint": "LCP",
           "total-blocking-time": "TBT", "speed-index": "SI", "cumulative-layout-shift": "CLS"}


class GzipHandler(http.server.SimpleHTTPRequestHandler):
    """Static files, text compressed with gzip when the client accepts it (as GitHub Pages does)."""

    def log_message(self, *args) -> None:
        pass

    def send_head(self):
        path = Path(self.translate_path(self.path))
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file():
            return super().send_head()
        data, ctype = path.read_bytes(), self.guess_type(str(path))
        compress = "gzip" in self.headers.get("Accept-Encoding", "") and any(t in ctype for t in COMPRESSED)
        if compress:
            data = gzip.compress(data, 6)
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "max-age=600")  # GitHub Pages' own
        if compress:
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        return io.BytesIO(data)


def run(url: str, out: Path) -> dict:
    """One Lighthouse run (mobile, performance and accessibility); its JSON report."""
    subprocess.run(["npx", "--yes", f"lighthouse@{LIGHTHOUSE}", url, "--quiet", "--output=json",
                    f"--output-path={out}", "--only-categories=performance,accessibility",
                    "--chrome-flags=--headless=new --no-sandbox --disable-gpu"],
                   check=True, env={**os.environ, "CHROME_PATH": CHROMIUM}, capture_output=True)
    return json.loads(out.read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("site", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(GzipHandler, directory=str(args.site.resolve())))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    below = 0
    with tempfile.TemporaryDirectory() as tmp:
        for page in sorted(p.name for p in args.site.glob("*.html") if p.name != "404.html"):
            reports = [run(f"{base}/{page}", Path(tmp) / f"{page}-{i}.json") for i in range(args.runs)]
            scores = {c: [round(r["categories"][c]["score"] * 100) for r in reports]
                      for c in ("performance", "accessibility")}
            medians = {short: statistics.median(r["audits"][audit]["numericValue"] for r in reports)
                       for audit, short in METRICS.items()}
            perf, a11y = statistics.median(scores["performance"]), statistics.median(scores["accessibility"])
            below += perf < 90 or a11y < 100
            print(f"{page:18} performance {perf:3.0f} {scores['performance']}  accessibility "
                  f"{a11y:3.0f} {scores['accessibility']}  " +
                  " ".join(f"{k} {v / 1000:.1f} s" if k in ("FCP", "LCP", "SI") else
                           f"{k} {v:.0f} ms" if k == "TBT" else f"{k} {v:.3f}" for k, v in medians.items()),
                  flush=True)
    server.shutdown()
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
