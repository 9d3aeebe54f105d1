"""The chapters, in reading order: each one's grid, simulation, charts and page budget.

Every chapter follows one contract. Its grid is the field of generator.grids.Grids with the
chapter's name; its prose is content/<name>.md; its simulation is
``simulate(config, memo) -> results`` in generator.sims.<name>, where ``config`` is what
``configure(grids, content_dir)`` makes of the grids (the chapter's grid, with the model family
or the content files it reads) and ``results.facts`` holds the numbers its prose quotes; its
charts are ``figures(results) -> {name: chart}`` in generator.charts.<name>. The MkDocs nav
lists the chapters in this order (a test checks that nav, this list and the grids agree).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from generator import content_files, knowledge_base
from generator.charts import alignment as alignment_charts
from generator.charts import attention as attention_charts
from generator.charts import block as block_charts
from generator.charts import kvcache as kvcache_charts
from generator.charts import pretraining as pretraining_charts
from generator.charts import rag as rag_charts
from generator.charts import sampling as sampling_charts
from generator.charts import tokenization as tokenization_charts
from generator.grids import Grids
from generator.pages import tokens as token_views
from generator.sims import alignment, attention, block, kvcache, pretraining, rag, sampling, tokenization
from generator.sims.family import Memo, WithFamily

DEFAULT_PAGE_BUDGET = 300_000  # bytes of HTML with the embedded specs (the shared bundle apart)

Configure = Callable[[Grids, str, Path], Any]  # (grids, chapter name, content dir) -> config


def own_grid(grids: Grids, name: str, content_dir: Path) -> Any:
    """The chapter's config is its grid."""
    return getattr(grids, name)


def with_family(grids: Grids, name: str, content_dir: Path) -> WithFamily:
    """The chapter's grid and the model family it reads."""
    return WithFamily(getattr(grids, name), grids.pretraining)


def with_knowledge_base(grids: Grids, name: str, content_dir: Path,
                        pages: dict[str, str] | None = None) -> rag.RagInputs:
    """The chapter's grid and the texts it retrieves from: the site's pages as rendered (their
    numbers filled in), the questions and the conversations from content/."""
    return knowledge_base.load(getattr(grids, name), content_dir, pages, grids.pretraining)


@dataclass(frozen=True)
class Chapter:
    name: str  # its grid (a field of Grids), its prose (content/<name>.md), its page
    simulate: Callable[[Any, Memo], Any]  # (config, memo) -> results with .facts
    figures: Callable[[Any], dict]  # results -> {chart name: alt.Chart}
    configure: Configure = own_grid
    budget_bytes: int = DEFAULT_PAGE_BUDGET
    # HTML the prose places with {{ widget("name") }}: results -> {name: Markup}
    widgets: Callable[[Any], dict] | None = None
    # True: configure also takes pages={content file: its rendered Markdown} of every other page
    reads_pages: bool = False

    @property
    def page(self) -> str:
        return f"{self.name}.md"


CHAPTERS: tuple[Chapter, ...] = (
    Chapter("tokenization", tokenization.simulate, tokenization_charts.figures,
            content_files.tokenization_inputs, widgets=token_views.widgets),
    Chapter("sampling", sampling.simulate, sampling_charts.figures, with_family),
    Chapter("attention", attention.simulate, attention_charts.figures, with_family),
    Chapter("block", block.simulate, block_charts.figures, content_files.ledger_inputs),
    Chapter("pretraining", pretraining.simulate, pretraining_charts.figures),
    Chapter("alignment", alignment.simulate, alignment_charts.figures, with_family),
    Chapter("kvcache", kvcache.simulate, kvcache_charts.figures, content_files.kvcache_inputs),
    Chapter("rag", rag.simulate, rag_charts.figures, with_knowledge_base,
            reads_pages=True),
)
