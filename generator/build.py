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
from generator.charts import pretraining as pretraining_charts
from generator.charts import sampling as sampling_charts
from generator.charts import tokenization as tokenization_charts
from generator.charts import rag as rag_charts
from generator.grids import Grids
from generator.pages import tokens as tokens_page
from generator.pages.render import RenderedPage, render_page
from generator.sims import pretraining as pretraining_sim
from generator.sims import sampling as sampling_sim
from generator.sims import tokenization as tokenization_sim
from generator.sims import rag as rag_sim

log = logging.getLogger("mkdocs.plugins.explorables")

ROOT = Path(__file__).resolve().parent.parent
CONTENT_DIR = ROOT / "content"
DEFAULT_PAGE_BUDGET = 300_000


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
    # True: simulate(config, memo) caches its own parts through memo = Cache.result (each
    # trained model on its own, shared by the chapters that read it); False: the results are
    # cached whole.
    memoised: bool = False


CHAPTERS: tuple[Chapter, ...] = (
    Chapter("tokenization.md", "tokenization", tokenization_sim.simulate,
            tokenization_charts.figures, tokens_page.facts, budget_bytes=400_000),
    Chapter("sampling.md", "sampling", sampling_sim.simulate, sampling_charts.figures,
            sampling_charts.facts, budget_bytes=300_000),
    Chapter("pretraining.md", "pretraining", pretraining_sim.simulate, pretraining_charts.figures,
            pretraining_charts.facts, budget_bytes=300_000, memoised=True),
    Chapter("rag.md", "rag", rag_sim.simulate, rag_charts.figures, rag_charts.facts,
            budget_bytes=500_000, prepare=knowledge_base.load),
)


def chart_key(chapter: Chapter, config: Any) -> list[str]:
    """What a chapter's chart specs depend on: its results, its chart code, Altair's version."""
    import altair

    module = chapter.figures.__module__
    return [result_key(chapter.simulate, config), module,
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
    by_page = {c.page: c for c in chapters}
    for source in sorted(p.relative_to(content_dir).as_posix() for p in content_dir.rglob("*.md")):
        chapter = by_page.get(source)
        start = time.perf_counter()
        if chapter is None:
            page = render_page(content_dir, source)
        else:
            config = getattr(grids, chapter.grid)
            if chapter.prepare is not None:
                config = chapter.prepare(config, content_dir)
            if chapter.memoised:
                results = chapter.simulate(config, cache.result)
            else:
                results = cache.result(chapter.simulate, config)
            site.timings[f"{source}: simulate"] = time.perf_counter() - start
            specs = cache.json(f"specs-{chapter.grid}", chart_key(chapter, config),
                               lambda: {k: v.to_dict() for k, v in chapter.figures(results).items()})
            page = render_page(content_dir, source, specs, chapter.facts(results))
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
