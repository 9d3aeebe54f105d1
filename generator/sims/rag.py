"""The RAG and tool-calling chapter: retrieval over the site's prose, then the tool-call loop.

The loop's search tool ranks the chunks of the chunking the chapter shows in detail, so both
halves of the chapter search the same index. See retrieval.py and tools.py for what
is and isn't simulated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

import generator.sims.retrieval as retrieval
import generator.sims.tools as tools
from generator.sims.family import Memo, uncached

if TYPE_CHECKING:
    from generator.grids import RagGrid

# How the pages name each ranking method.
LABELS = {"random": "random", "tf-idf": "TF-IDF", "lsa": "LSA", "bm25": "BM25", "hybrid": "hybrid"}
RANKED_TOP = 8  # chunks the ranking chart shows per method for the chosen question


@dataclass(frozen=True)
class RagInputs:
    """The simulation's config: the grid plus every text it reads (so the cache keys on them)."""

    grid: RagGrid
    documents: tuple[retrieval.Document, ...]
    questions: tuple[retrieval.Question, ...]
    script: tools.Script
    encoding_sha256: dict[str, str]  # file -> sha256 of the verified retrieval.ENCODING data
    # The loaded tiktoken Encoding of retrieval.ENCODING: not part of the cache key (the name
    # and the data's sha256 above are).
    encoding: Any = field(default=None, compare=False, repr=False, metadata={"key": False})


@dataclass(frozen=True)
class RagFacts:
    documents: list[str]
    n_documents: int
    corpus_tokens: int
    n_questions: int
    n_settings: int
    chunk_sizes: list[int]
    overlaps: list[int]
    ks: list[int]
    k_top: int
    headline_budget: int
    best_method: str
    best_chunk_size: int
    best_overlap: int
    best_found: float
    best_mrr: float
    best_hit_1: float
    best_n_chunks: int
    best_chunks_in_budget: int
    random_found: float
    per_method: dict[str, dict[str, float]]
    smallest_hit_top: float
    largest_hit_top: float
    smallest_found: float
    largest_found: float
    smallest_size: int
    size_ratio: float
    one_question: float
    example_question: int | None
    largest_size: int
    view_chunk_size: int
    view_overlap: int
    view_n_chunks: int
    view_best_method: str
    view_best_mrr: float
    lsa_rank: int
    explained: float
    ranked_top: int
    svd_rank: int
    bm25_k1: float
    bm25_b: float
    hybrid_weight: float
    seed: int
    system_tokens: int
    schema_tokens: int
    schema_share: float
    tools: list[str]
    conversation_tokens: dict[str, int]
    errors: list[str]
    conversation_titles: list[str]
    search_question_tokens: int
    search_result_tokens: int
    search_method: str


@dataclass(frozen=True)
class RagResults:
    retrieval: retrieval.RetrievalResults
    tools: tools.ToolResults
    facts: RagFacts


def simulate(inputs: RagInputs, memo: Memo = uncached) -> RagResults:
    """Evaluate retrieval over the grid, then run the scripted conversations against the best index."""
    grid = inputs.grid
    enc = inputs.encoding
    found = retrieval.simulate(grid, inputs.documents, inputs.questions, enc)
    tokens = retrieval.tokenize(inputs.documents, enc)
    index = retrieval.build_index(inputs.documents, tokens, grid.view_chunk_size, grid.view_overlap,
                                  grid.svd_rank)
    loop = tools.simulate(inputs.script, grid, inputs.documents, index, grid.search_method, enc)
    return RagResults(retrieval=found, tools=loop, facts=facts(found, loop))


# ---------------------------------------------------------------------------------------------
# What the prose quotes


def facts(r: retrieval.RetrievalResults, t: tools.ToolResults) -> RagFacts:
    """The numbers the chapter's prose quotes."""
    v = r.view
    method, size, overlap = r.best
    m, i, j = list(r.methods).index(method), list(r.chunk_sizes).index(size), list(r.overlaps).index(overlap)
    h = list(r.budgets).index(r.headline_budget)
    rnd = list(r.methods).index("random")
    per_method = {}
    for n, name in enumerate(r.methods):
        a, b = np.unravel_index(np.argmax(r.found_within[n, :, :, h]), r.found_within.shape[1:3])
        per_method[LABELS[name]] = {"found": float(r.found_within[n, a, b, h]),
                                    "chunk_size": int(r.chunk_sizes[a]), "overlap": int(r.overlaps[b]),
                                    "mean_found": float(r.found_within[n, :, :, h].mean()),
                                    "mean_mrr": float(r.mrr[n].mean())}
    k_top = int(r.ks[-1])
    lsa, bm = list(r.methods).index("lsa"), list(r.methods).index("bm25")
    lexical_wins = np.flatnonzero((v.ranks[bm] == 1) & (v.ranks[lsa] > 1))
    search = next(tr for tr in t.traces if "search" in tr.name)
    vm = list(r.methods).index(v.best_method)
    return RagFacts(**{
        "documents": list(r.documents),
        "n_documents": len(r.documents),
        "corpus_tokens": int(r.document_tokens.sum()),
        "n_questions": len(r.questions),
        "n_settings": int(r.n_chunks.size),
        "chunk_sizes": [int(s) for s in r.chunk_sizes],
        "overlaps": [int(o) for o in r.overlaps],
        "ks": [int(k) for k in r.ks],
        "k_top": k_top,
        "headline_budget": r.headline_budget,
        "best_method": LABELS[method],
        "best_chunk_size": size,
        "best_overlap": overlap,
        "best_found": float(r.found_within[m, i, j, h]),
        "best_mrr": float(r.mrr[m, i, j]),
        "best_hit_1": float(r.hit_rate[m, i, j, 0]),
        "best_n_chunks": int(r.n_chunks[i, j]),
        "best_chunks_in_budget": r.headline_budget // size,
        "random_found": float(r.found_within[rnd, i, j, h]),
        "per_method": per_method,
        "smallest_hit_top": float(r.hit_rate[m, 0, 0, -1]),
        "largest_hit_top": float(r.hit_rate[m, -1, 0, -1]),
        "smallest_found": float(r.found_within[m, 0, 0, h]),
        "largest_found": float(r.found_within[m, -1, 0, h]),
        "smallest_size": int(r.chunk_sizes[0]),
        "size_ratio": float(r.chunk_sizes[-1] / r.chunk_sizes[0]),
        "one_question": 1 / len(r.questions),
        "example_question": int(lexical_wins[0]) + 1 if len(lexical_wins) else None,
        "largest_size": int(r.chunk_sizes[-1]),
        "view_chunk_size": v.chunk_size,
        "view_overlap": v.overlap,
        "view_n_chunks": len(v.chunk_text),
        "view_best_method": LABELS[v.best_method],
        "view_best_mrr": float((1.0 / v.ranks[vm]).mean()),
        "lsa_rank": v.rank,
        "explained": float(v.explained.sum()),
        "ranked_top": RANKED_TOP,
        **{k: r.settings[k] for k in ("svd_rank", "bm25_k1", "bm25_b", "hybrid_weight", "seed")},
        "system_tokens": t.system_tokens,
        "schema_tokens": int(t.schema_tokens.sum()),
        "schema_share": float(t.schema_tokens.sum() / t.system_tokens),
        "tools": list(t.tools),
        "conversation_tokens": {tr.title: int(tr.turn_tokens.sum()) for tr in t.traces},
        "errors": [e for tr in t.traces for e in _errors(tr)],
        "conversation_titles": [tr.title for tr in t.traces],
        "search_question_tokens": int(search.turn_tokens[list(search.turn_roles).index("user")]),
        "search_result_tokens": int(search.turn_tokens[list(search.turn_roles).index("runtime")]),
        "search_method": LABELS[t.search_method],
    })


def _errors(tr) -> list[str]:
    return [json.loads(text)["error"] for role, text in zip(tr.turn_roles, tr.turn_texts)
            if role == "runtime" and "error" in json.loads(text)]
