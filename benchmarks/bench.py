"""Build-time and page-size budgets, measured: `python benchmarks/bench.py`.

Runs, on a temp copy of the checkout:
1. a clean `mkdocs build` with an empty results cache (every simulation computed),
2. a no-op rebuild (warm cache, nothing changed),
3. the tokenization page's text box in headless Chromium (what it loads, a 100 KB paste),
4. every bound control of every chart in headless Chromium, timing each change's work up to the
   repainted frame (benchmarks/latency.py; `--latency-only SITE_DIR` runs this part alone on a
   built site),
5. every page's load in headless Chromium, desktop and phone: first paint, first chart drawn,
   total blocking time (benchmarks/load.py; `--load-only SITE_DIR`),
and reads each chapter's simulation time from the clean build's log, then prints one table of measurements against their budgets and exits 1 if any is over.
Timings depend on the machine: the budgets are for 2 cores.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# seconds
BUILD_BUDGETS = {
    "clean build, whole site": 90.0,  # the family ships trained (content/checkpoints)
    "no-op rebuild": 3.0,
}
TRAIN_FAMILY_BUDGET = 30 * 60.0  # `python -m generator train`, the whole family on 2 cores
# seconds of simulation per chapter on an empty cache, where an issue set one
SIMULATION_BUDGETS = {
    "shared models": 20.0,  # loading and verifying the shipped family (every chapter reads it)
    "rag.md": 20.0,  # the retrieval grid
    "alignment.md": 20.0,  # fine-tuning and preference tuning on top of a pretrained model
}
ENCODINGS_BUDGET = 2.0  # loading every tiktoken encoding from an empty cache
TYPED_TEXT_BUDGET_MS = 200.0  # the text box, a 100 KB paste in headless Chromium (issue 14)
BUNDLE = "assets/vendor/vega-bundle.js"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the temp checkout")
    parser.add_argument("--latency-only", metavar="SITE_DIR", type=Path,
                        help="only time the chart controls of an already built site")
    parser.add_argument("--load-only", metavar="SITE_DIR", type=Path,
                        help="only time the page loads of an already built site")
    args = parser.parse_args()
    if args.latency_only:
        return print_table(latency_rows(args.latency_only.resolve()))
    if args.load_only:
        return print_table(load_rows(args.load_only.resolve()))

    from generator.chapters import CHAPTERS, DEFAULT_PAGE_BUDGET

    work = Path(tempfile.mkdtemp(prefix="explorables-bench-"))
    checkout = work / "repo"
    shutil.copytree(ROOT, checkout, ignore=shutil.ignore_patterns(
        ".git", ".venv", "site", ".cache", "node_modules", "__pycache__", ".pytest_cache", ".site.staging-*"))
    (checkout / "node_modules").symlink_to(ROOT / "node_modules", target_is_directory=True)
    env = {**os.environ, "EXPLORABLES_CACHE_DIR": str(work / "cache"), "NO_MKDOCS_2_WARNING": "1"}
    rows: list[tuple[str, str, str, bool]] = []

    clean, log = timed_build(checkout, env)
    noop, _ = timed_build(checkout, env)
    rows.append(row("clean build, whole site", clean, BUILD_BUDGETS["clean build, whole site"], "s"))
    rows.append(row("no-op rebuild", noop, BUILD_BUDGETS["no-op rebuild"], "s"))

    timings = {m[0]: float(m[1]) for m in re.findall(r"explorables timing: (.+?): ([0-9.]+) s", log)}
    for key in sorted(k for k in timings if k.endswith(": simulate")):
        page = key.removesuffix(": simulate")
        rows.append(row(f"simulate {page} (empty cache)", timings[key], SIMULATION_BUDGETS.get(page), "s"))
    rows.append(row("load every tiktoken encoding (empty cache)", encodings_time(work / "enc-cache"),
                    ENCODINGS_BUDGET, "s"))
    rows.append(row("train the family, 2 workers (from its manifests)", family_training_seconds(),
                    TRAIN_FAMILY_BUDGET, "s"))

    site = checkout / "site"
    budgets = {c.page.replace(".md", ".html"): c.budget_bytes for c in CHAPTERS}
    for page in sorted(site.glob("*.html")):
        size = page.stat().st_size
        rows.append(row(f"page {page.name} (HTML + embedded specs)", size / 1000,
                        budgets.get(page.name, DEFAULT_PAGE_BUDGET) / 1000, "KB"))
    rows.append((f"shared bundle {BUNDLE}", f"{(site / BUNDLE).stat().st_size / 1000:.0f} KB", "-", True))
    rows += typed_text_rows(site)
    rows += latency_rows(site)
    rows += load_rows(site)

    status = print_table(rows)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return status


def family_training_seconds(workers: int = 2) -> float:
    """The wall time `python -m generator train` took, rebuilt from the manifests' training
    times: models handed out largest first to the first free worker, as the command does."""
    from generator import checkpoints
    from generator.grids import PretrainingGrid
    from generator.sims.family import model_configs

    cfgs = sorted(model_configs(PretrainingGrid()), key=lambda c: -c.n_layer * c.n_head ** 2)
    free = [0.0] * workers
    for cfg in cfgs:
        manifest = checkpoints.read_manifest(cfg)
        i = free.index(min(free))
        free[i] += manifest["wall_seconds"] if manifest else float("inf")
    return max(free)


def print_table(rows: list[tuple[str, str, str, bool]]) -> int:
    """Print the measurements against their budgets; 1 if any is over, else 0."""
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measurement':<{width}}  {'value':>10}  {'budget':>10}  status")
    for name, value, budget, ok in rows:
        print(f"{name:<{width}}  {value:>10}  {budget:>10}  {'ok' if ok else 'OVER'}")
    return 0 if all(r[3] for r in rows) else 1


def row(name: str, value: float, budget: float | None, unit: str) -> tuple[str, str, str, bool]:
    fmt = "{:.1f} " if unit == "s" else "{:.0f} "
    if budget is None:
        return name, fmt.format(value) + unit, "-", True
    return name, fmt.format(value) + unit, fmt.format(budget) + unit, value <= budget


def encodings_time(cache_dir: Path) -> float:
    """Seconds to verify and load every encoding the site uses, in a fresh process."""
    code = ("import time; t = time.perf_counter();"
            "from generator.encodings import ENCODINGS, get_encoding;"
            "[get_encoding(n) for n in ENCODINGS]; print(time.perf_counter() - t)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "EXPLORABLES_CACHE_DIR": str(cache_dir)})
    if done.returncode != 0:
        sys.exit(f"loading the encodings failed:\n{done.stderr[-3000:]}")
    return float(done.stdout.strip().splitlines()[-1])


def typed_text_rows(site: Path) -> list[tuple[str, str, str, bool]]:
    """The text box: what it loads on first use, and how long a 100 KB paste takes to tokenize
    (the median of three fresh pages in headless Chromium)."""
    from generator.assets import GPT_TOKENIZER, TYPED_ENCODINGS

    size = sum((site / GPT_TOKENIZER / f"{name}.js").stat().st_size for name in TYPED_ENCODINGS)
    rows = [(f"text box tokenizers {GPT_TOKENIZER}/*.js (on first use)", f"{size / 1000:.0f} KB", "-", True)]
    from tests.conftest import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        return rows + [("text box timings", "no Chromium", "-", True)]
    from playwright.sync_api import sync_playwright

    from tests.browser.test_typed_text import paste_timing

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        timings = sorted((paste_timing(browser, site) for _ in range(3)), key=lambda t: t[1])
        browser.close()
    loaded = sorted(t[0] for t in timings)[1]
    return rows + [row("text box: load the tokenizers (file://)", loaded, None, "ms"),
                   row("text box: tokenize a 100 KB paste, 3 encodings + ChatML", timings[1][1],
                       TYPED_TEXT_BUDGET_MS, "ms")]


def in_chromium(measure, site: Path):
    """measure(browser, site) in the tests' headless Chromium, or None if it is not installed."""
    from tests.conftest import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        return None
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            return measure(browser, site)
        finally:
            browser.close()


def latency_rows(site: Path) -> list[tuple[str, str, str, bool]]:
    """Per page with chart controls: the work per change, the main thread's CPU time (p95
    against one 60 Hz frame, p50 and max beside it), its wall-clock span, and the long tasks
    during the changes, in headless Chromium from file:// (benchmarks/latency.py)."""
    from benchmarks import latency
    from benchmarks.latency import FRAME_BUDGET_MS, LONG_TASK_BUDGET

    pages = in_chromium(latency.measure_site, site)
    if pages is None:
        return [("chart control latency", "no Chromium", "-", True)]
    rows = []
    for r in pages:
        if not r.changes:
            rows.append((f"repaint work p95 {r.page}", "no change", "-", True))
            continue
        rows.append(row(f"repaint work p95 {r.page} ({r.controls} controls, {r.changes} changes)",
                        r.percentile(95), FRAME_BUDGET_MS, "ms"))
        rows.append((f"repaint work p50 / max {r.page}", f"{r.percentile(50):.0f} / {r.percentile(100):.0f} ms", "-", True))
        rows.append((f"  wall clock p50 / p95 {r.page} (with the waits)",
                     f"{r.percentile(50, 'span_ms'):.0f} / {r.percentile(95, 'span_ms'):.0f} ms", "-", True))
        rows.append(row(f"long tasks {r.page} (> 50 ms, during changes)", r.long_tasks, LONG_TASK_BUDGET, "tasks"))
        if r.missed:
            rows.append((f"  actions that changed nothing on {r.page}", str(len(r.missed)), "-", True))
    return rows


def load_rows(site: Path) -> list[tuple[str, str, str, bool]]:
    """Per page and viewport (desktop, phone): first contentful paint, first chart drawn, total
    blocking time during the load and the charts drawn by then, in headless Chromium from
    file://, the median of a few fresh loads (benchmarks/load.py). Reported, not budgeted: the
    issue's targets are Lighthouse's, under its mobile throttling."""
    from benchmarks import load

    loads = in_chromium(load.measure_site, site)
    if loads is None:
        return [("page load", "no Chromium", "-", True)]
    rows = []
    for r in loads:
        first = "none in view" if r.first_chart_ms is None else f"{r.first_chart_ms:.0f} ms"
        rows.append((f"load {r.page} ({r.viewport}): first paint / first chart / blocking",
                     f"{r.fcp_ms:.0f} / {first} / {r.blocking_ms:.0f} ms", "-", True))
        if r.charts:
            rows.append((f"  charts drawn at load {r.page} ({r.viewport})", f"{r.drawn} of {r.charts}", "-", True))
    return rows


def timed_build(checkout: Path, env: dict) -> tuple[float, str]:
    """Seconds taken by `mkdocs build --strict`, and its log."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=checkout,
                          env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"mkdocs build failed:\n{done.stderr[-3000:]}")
    return elapsed, done.stderr


if __name__ == "__main__":
    sys.exit(main())
