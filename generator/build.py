"""The whole site's generated part, in memory: grids -> sims -> charts -> pages.

``build_site`` validates nothing itself (``grids.load_grids`` already has) and writes nothing:
it returns every generated file as {site path: content}; the MkDocs hook hands them to MkDocs,
and ``python -m generator`` writes the specs to a folder. Simulation results come through the
on-disk cache, so a rebuild after a prose edit recomputes nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from generator import assets, knowledge_base
from generator.cache import Cache, code_fingerprint, result_key
from generator.charts import alignment as alignment_charts
from generator.charts import attention as attention_charts
from generator.charts import block as block_charts
from generator.charts import kvcache as kvcache_charts
from generator.charts import pretraining as pretraining_charts
from generator.charts import sampling as sampling_charts
from generator.charts import tokenization as tokenization_charts
from generator.charts import rag as rag_charts
from generator.grids import Grids
from generator.pages import tokens as tokens_page
from generator.pages.render import RenderedPage, render_page
from generator.sims import alignment as alignment_sim
from generator.sims import attention as attention_sim
from generator.sims import block as block_sim
from generator.sims import kvcache as kvcache_sim
from generator.sims import pretraining as pretraining_sim
from generator.sims import sampling as sampling_sim
from generator.sims import tokenization as tokenization_sim
from generator.sims import rag as rag_sim

log = logging.getLogger("mkdocs.plugins.explorables")

ROOT = Path(__file__).resolve().parent.parent
CONTENT_DIR = ROOT / "content"
DEFAULT_PAGE_BUDGET = 300_000


@dataclass(frozen=True)
class Borrowed:
    """Figures and facts a page takes from another chapter's results (say, a trained model's)."""

    grid: str  # the other chapter's field of Grids; its facts reach the prose as facts.<grid>
    figures: Callable[[Any], dict]
    facts: Callable[[Any], dict]


@dataclass(frozen=True)
class Chapter:
    """How one chapter is made: its grid, simulation, charts, facts and page budget."""

    page: str  # content file, e.g. "sampling.md"
    grid: str  # field of Grids
    simulate: Callable[[Any], Any]
    figures: Callable[[Any], dict]
    facts: Callable[[Any], dict]
    budget_bytes: int = DEFAULT_PAGE_BUDGET
    # Turns the grid into the simulation's config (say, by reading texts from content/, so
    # the results cache keys on them); None: the grid itself is the config.
    prepare: Callable[[Any, Path], Any] | None = None
    # True: simulate(config, memo) caches its own parts through memo, which works like
    # Cache.result and hands every chapter of one build the same value (each trained model is
    # cached on its own and loaded once, whichever chapters read it); False: the results are
    # cached whole.
    memoised: bool = False
    # Figures and facts this page takes from other chapters' results.
    borrows: tuple[Borrowed, ...] = ()
    # Another chapter's grid the simulation reads too (say, to load the models that chapter
    # trains): the config is then (this grid, that grid), so both key the caches.
    reads: str | None = None


CHAPTERS: tuple[Chapter, ...] = (
    Chapter("tokenization.md", "tokenization", tokenization_sim.simulate,
            tokenization_charts.figures, tokens_page.facts, budget_bytes=400_000),
    Chapter("sampling.md", "sampling", sampling_sim.simulate, sampling_charts.figures,
            sampling_charts.facts, budget_bytes=300_000,
            borrows=(Borrowed("pretraining", pretraining_charts.sampling_figures,
                              pretraining_charts.sampling_facts),)),
    Chapter("pretraining.md", "pretraining", pretraining_sim.simulate, pretraining_charts.figures,
            pretraining_charts.facts, budget_bytes=300_000, memoised=True),
    Chapter("alignment.md", "alignment", alignment_sim.simulate, alignment_charts.figures,
            alignment_charts.facts, budget_bytes=300_000, memoised=True, reads="pretraining"),
    Chapter("kvcache.md", "kvcache", kvcache_sim.simulate, kvcache_charts.figures,
            kvcache_charts.facts, budget_bytes=300_000, memoised=True, reads="pretraining"),
    Chapter("attention.md", "attention", attention_sim.simulate, attention_charts.figures,
            attention_charts.facts, budget_bytes=400_000, memoised=True, reads="pretraining"),
    Chapter("block.md", "block", block_sim.simulate, block_charts.figures, block_charts.facts,
            budget_bytes=300_000, memoised=True, reads="pretraining"),
    Chapter("rag.md", "rag", rag_sim.simulate, rag_charts.figures, rag_charts.facts,
            budget_bytes=500_000, prepare=knowledge_base.load),
)


def chart_key(chapter: Chapter, config: Any, figures: Callable | None = None) -> list[str]:
    """What a chapter's chart specs depend on: its results, its chart code, Altair's version.

    `figures` draws other charts from the same results (a page borrowing them)."""
    import altair

    figures = figures or chapter.figures
    module = figures.__module__
    return [result_key(chapter.simulate, config), module, figures.__qualname__,
            code_fingerprint(module, scopes=("generator.charts", "generator.sims")), altair.__version__]


@dataclass
class SiteBuild:
    files: dict[str, str | bytes] = field(default_factory=dict)  # site path -> content
    pages: dict[str, RenderedPage] = field(default_factory=dict)  # page path -> page
    budgets: dict[str, int] = field(default_factory=dict)  # page path -> bytes allowed
    timings: dict[str, float] = field(default_factory=dict)  # step -> seconds


def build_site(grids: Grids, cache: Cache, content_dir: Path = CONTENT_DIR,
               chapters: tuple[Chapter, ...] = CHAPTERS) -> SiteBuild:
    """Run every chapter and render every content page; nothing is written to disk."""
    site = SiteBuild()
    compiled = cache.directory("templates")
    by_page = {c.page: c for c in chapters}
    by_grid = {c.grid: c for c in chapters}
    done: dict[str, tuple[Any, Any]] = {}  # grid -> (config, results), each chapter run once
    parts: dict[str, Any] = {}  # result key -> value: a model several chapters read loads once

    def memo(fn: Callable[[Any], Any], config: Any) -> Any:
        key = result_key(fn, config)
        if key not in parts:
            parts[key] = cache.result(fn, config)
        return parts[key]

    def run(chapter: Chapter) -> tuple[Any, Any]:
        if chapter.grid not in done:
            # What this chapter reads runs first, so each timing is the chapter's own work.
            for grid in [chapter.reads] + [b.grid for b in chapter.borrows]:
                if grid is not None and grid in by_grid:
                    run(by_grid[grid])
            start = time.perf_counter()
            config = getattr(grids, chapter.grid)
            if chapter.prepare is not None:
                config = chapter.prepare(config, content_dir)
            if chapter.reads is not None:
                config = (config, getattr(grids, chapter.reads))
            if chapter.memoised:
                # Cached whole as well: the key covers every sims module it imports, training
                # included, so a warm rebuild neither loads the models nor re-runs them.
                results = cache.result(chapter.simulate, config,
                                       compute=lambda c: chapter.simulate(c, memo))
            else:
                results = cache.result(chapter.simulate, config)
            done[chapter.grid] = (config, results)
            site.timings[f"{chapter.page}: simulate"] = time.perf_counter() - start
        return done[chapter.grid]

    for source in sorted(p.relative_to(content_dir).as_posix() for p in content_dir.rglob("*.md")):
        chapter = by_page.get(source)
        start = time.perf_counter()
        if chapter is None:
            page = render_page(content_dir, source, compiled_dir=compiled)
        else:
            config, results = run(chapter)
            specs = cache.json(f"specs-{chapter.grid}", chart_key(chapter, config),
                               lambda: {k: v.to_dict() for k, v in chapter.figures(results).items()})
            facts = chapter.facts(results)
            for borrowed in chapter.borrows:
                lender = by_grid[borrowed.grid]
                lent_config, lent = run(lender)
                specs = {**specs, **cache.json(
                    f"specs-{chapter.grid}-{lender.grid}", chart_key(lender, lent_config, borrowed.figures),
                    lambda: {k: v.to_dict() for k, v in borrowed.figures(lent).items()})}
                facts = {**facts, lender.grid: borrowed.facts(lent)}
            page = render_page(content_dir, source, specs, facts, compiled_dir=compiled)
            site.budgets[source] = chapter.budget_bytes
        site.timings[source] = time.perf_counter() - start
        site.pages[source] = page
        site.files[source] = page.markdown
        site.files.update(page.specs)
    missing = sorted(set(by_page) - set(site.pages))
    if missing:
        raise FileNotFoundError(f"chapter prose missing: content/{missing[0]}")
    start = time.perf_counter()
    site.files.update(assets.vendor_files(cache))
    site.timings["vendor assets"] = time.perf_counter() - start
    for step, seconds in site.timings.items():
        log.info("explorables timing: %s: %.3f s", step, seconds)
    return site
