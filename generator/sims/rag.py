"""The RAG and tool-calling chapter: retrieval over the site's prose, then the tool-call loop.

The loop's search tool ranks the chunks of the chunking the chapter shows in detail, so both
halves of the chapter search the same index. See retrieval.py and tools.py for what
is and isn't simulated.
"""

from __future__ import annotations

from dataclasses import dataclass

from generator.grids import RagGrid
import generator.sims.retrieval as retrieval
import generator.sims.tools as tools


@dataclass(frozen=True)
class RagInputs:
    """The simulation's config: the grid plus every text it reads (so the cache keys on them)."""

    grid: RagGrid
    documents: tuple[retrieval.Document, ...]
    questions: tuple[retrieval.Question, ...]
    script: tools.Script


@dataclass(frozen=True)
class RagResults:
    retrieval: retrieval.RetrievalResults
    tools: tools.ToolResults


def simulate(inputs: RagInputs) -> RagResults:
    """Evaluate retrieval over the grid, then run the scripted conversations against the best index."""
    grid = inputs.grid
    found = retrieval.simulate(grid, inputs.documents, inputs.questions)
    tokens = retrieval.tokenize(inputs.documents)
    index = retrieval.build_index(inputs.documents, tokens, grid.view_chunk_size, grid.view_overlap,
                                  grid.svd_rank)
    return RagResults(
        retrieval=found,
        tools=tools.simulate(inputs.script, grid, inputs.documents, index, grid.search_method),
    )
