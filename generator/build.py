"""The whole site's generated part, in memory: grids -> sims -> charts -> pages.

``build_site`` makes every chapter's config first (``grids.load_grids`` has already checked the
grids; the configs read the content files they name), then runs the chapters in order, and
writes nothing: it returns every generated file as {site path: content}; the MkDocs hook hands
them to MkDocs,
and ``python -m generator`` writes the specs to a folder. Simulation results come through the
on-disk cache, so a rebuild after a prose edit recomputes nothing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from generator import assets, checkpoints
from generator.cache import Cache, code_fingerprint, result_key
from generator.chapters import CHAPTERS, Chapter
from generator.grids import Grids
from generator.pages.render import RenderedPage, render_page

log = logging.getLogger("mkdocs.plugins.explorables")

ROOT = Path(__file__).resolve().parent.parent
CONTENT_DIR = ROOT / "content"
SHARED = "shared models"  # the timing of the parts several chapters read (the trained family)


def chart_key(chapter: Chapter, config: Any) -> list[str]:
    """What a chapter's chart specs depend on: its results, its chart code, Altair's version."""
    import altair

    module = chapter.figures.__module__
    return [result_key(chapter.simulate, config), module, chapter.figures.__qualname__,
            code_fingerprint(module, scopes=("generator.charts", "generator.sims")), altair.__version__]


@dataclass
class SiteBuild:
    files: dict[str, str | bytes] = field(default_factory=dict)  # site path -> content
    pages: dict[str, RenderedPage] = field(default_factory=dict)  # page path -> page
    budgets: dict[str, int] = field(default_factory=dict)  # page path -> bytes allowed
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds


def finite_specs(chapter: Chapter, figures: dict) -> dict[str, dict]:
    """Each chart's Vega-Lite spec; a value that is not finite stops the build, naming the chart."""
    specs = {name: figure.to_dict() for name, figure in figures.items()}
    for name, spec in specs.items():
        try:
            json.dumps(spec, allow_nan=False)
        except ValueError as exc:
            raise ValueError(f"chart {chapter.name}/{name} holds a number that is not finite (NaN or "
                             f"infinity): the settings in grids.{chapter.name} ask for values the "
                             "simulation cannot compute") from exc
    return specs


def check_facts_finite(chapter: Chapter, facts: Any) -> None:
    """Stop the build, naming the fact, if a number the prose would quote is NaN or infinite."""
    def walk(value: Any, where: str) -> None:
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name), f"{where}.{f.name}")
        elif isinstance(value, dict):
            for key, item in value.items():
                walk(item, f"{where}[{key!r}]")
        elif isinstance(value, (list, tuple)):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{where} of chapter {chapter.name} is {value}: the settings in "
                             f"grids.{chapter.name} ask for values the simulation cannot compute")

    walk(facts, "facts")


def build_site(grids: Grids, cache: Cache, content_dir: Path = CONTENT_DIR,
               chapters: tuple[Chapter, ...] = CHAPTERS) -> SiteBuild:
    """Run every chapter and render every content page; nothing is written to disk.

    Every chapter's config is made first (reading the content files it names), so a bad one
    stops the build before any simulation runs; only a chapter that reads the rendered pages
    (the knowledge base of retrieval) is configured once the other pages are rendered."""
    site = SiteBuild()
    compiled = cache.directory("templates")
    # Chapters that read the rendered site (retrieval over its prose) come last: their config
    # needs the other pages' text, numbers filled in.
    first = [c for c in chapters if not c.reads_pages]
    last = [c for c in chapters if c.reads_pages]
    configs = {c.name: c.configure(grids, c.name, content_dir) for c in first}
    by_page = {c.page: c for c in chapters}
    parts: dict[str, Any] = {}  # result key -> value: a model several chapters read loads once
    shared_seconds = [0.0]
    shipped = checkpoints.shipped_memo(cache.result)  # the family's models ship trained
    shipped_models = checkpoints.digest()  # so a retrained model is never served from the cache

    def memo(fn: Callable[[Any], Any], config: Any) -> Any:
        key = result_key(fn, config)
        if key not in parts:
            start = time.perf_counter()
            parts[key] = shipped(fn, config)
            shared_seconds[0] += time.perf_counter() - start
        return parts[key]

    def simulate(chapter: Chapter) -> Any:
        # Cached whole as well as by parts: the key covers every sims module it imports, training
        # included, so a warm rebuild neither loads the models nor re-runs them. The time spent in
        # shared parts is counted apart, so each chapter's timing is its own work.
        start, before = time.perf_counter(), shared_seconds[0]
        results = cache.result(chapter.simulate, configs[chapter.name],
                               compute=lambda c: chapter.simulate(c, memo), inputs=shipped_models)
        own = time.perf_counter() - start - (shared_seconds[0] - before)
        site.timings[f"{chapter.page}: simulate"] = own
        return results

    def render(source: str, results: Any = None) -> None:
        chapter = by_page.get(source)
        start = time.perf_counter()
        if chapter is None:
            page = render_page(content_dir, source, compiled_dir=compiled)
        else:
            check_facts_finite(chapter, results.facts)
            specs = cache.json(f"specs-{chapter.name}", chart_key(chapter, configs[chapter.name]),
                               lambda: finite_specs(chapter, chapter.figures(results)))
            widgets = chapter.widgets(results) if chapter.widgets else None
            page = render_page(content_dir, source, specs, results.facts, widgets, compiled_dir=compiled)
            site.budgets[source] = chapter.budget_bytes
        site.timings[source] = time.perf_counter() - start
        site.pages[source] = page
        site.files[source] = page.markdown
        site.files.update(page.specs)

    results = {c.name: simulate(c) for c in first}
    sources = sorted(p.relative_to(content_dir).as_posix() for p in content_dir.rglob("*.md"))
    for source in sources:
        chapter = by_page.get(source)
        if chapter is None or not chapter.reads_pages:
            render(source, results.get(chapter.name) if chapter else None)
    pages = {source: page.reader_text() for source, page in site.pages.items()}
    for chapter in last:
        configs[chapter.name] = chapter.configure(grids, chapter.name, content_dir, pages=pages)
        results[chapter.name] = simulate(chapter)
        if chapter.page in sources:
            render(chapter.page, results[chapter.name])
    site.timings[f"{SHARED}: simulate"] = shared_seconds[0]
    missing = sorted(set(by_page) - set(site.pages))
    if missing:
        raise FileNotFoundError(f"chapter prose missing: content/{missing[0]}")
    start = time.perf_counter()
    site.files.update(assets.vendor_files(cache))
    site.timings["vendor assets"] = time.perf_counter() - start
    for step, seconds in site.timings.items():
        log.info("explorables timing: %s: %.3f s", step, seconds)
    return site
