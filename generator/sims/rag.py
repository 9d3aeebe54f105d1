"""The RAG and tool-calling chapter: retrieval over the site's prose, then the tool-call loop.

The loop's search tool ranks the chunks of the chunking the chapter shows in detail, so both
halves of the chapter search the same index. See retrieval.py and tools.py for what
is and isn't simulated.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

import generator.sims.retrieval as retrieval
import generator.sims.tool_use as tool_use
import generator.sims.tools as tools
from generator.sims.family import Memo, load_member, member_config, model_name, uncached

if TYPE_CHECKING:
    from generator.grids import RagGrid

# How the pages name each ranking method.
LABELS = {"random": "random", "tf-idf": "TF-IDF", "lsa": "LSA", "bm25": "BM25", "hybrid": "hybrid"}
KIND_NAMES = {"total": "a total", "difference": "a difference", "one": "one child's count"}
RANKED_TOP = 8  # chunks the ranking chart shows per method for the chosen question


@dataclass(frozen=True)
class RagInputs:
    """The simulation's config: the grid plus every text it reads (so the cache keys on them)."""

    grid: RagGrid
    documents: tuple[retrieval.Document, ...]
    questions: tuple[retrieval.Question, ...]
    script: tools.Script
    family: Any  # generator.grids.PretrainingGrid: the models the tiny tool-calling model starts from
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
    tool_model: str
    tool_new_tokens: int
    tool_questions: int
    tool_steps: int
    tool_max_count: int
    tool_heldout: int
    tool_kinds: list[str]
    tool_accuracy: dict[str, float]  # kind -> share of right answers, the model that calls
    direct_accuracy: dict[str, float]  # kind -> share of right answers, the model that answers at once
    tool_called: dict[str, float]  # kind -> share of questions on which the calling model called
    tool_n_calls: int
    tool_valid_calls: float
    tool_right_calls: float
    tool_n_refused: int  # calls the runtime refused
    tool_n_wrong: int  # held-out questions the calling model answered wrong
    one_wrong_other: float  # of its wrong answers to one child's count, the share that are the other child's
    tool_margin: float  # the least, over the kinds that need the calculator, of (with tool - without) right
    direct_best_needing: float  # the most the model without the tool gets right on a kind that needs it
    tool_worst_needing: float  # the least the calling model gets right on a kind that needs the tool
    one_is_weakest: bool  # the calling model does worst on the kind that needs no call
    decides_perfectly: bool  # it called on every question that needs the tool and on no other
    generated_titles: list[str]


@dataclass(frozen=True)
class RagResults:
    retrieval: retrieval.RetrievalResults
    tools: tools.ToolResults
    tool_use: tools.ToolUseResults
    facts: RagFacts


def simulate(inputs: RagInputs, memo: Memo = uncached) -> RagResults:
    """Evaluate retrieval over the grid, run the scripted conversations against the best index,
    then measure the tiny model that calls the calculator (its models read through memo)."""
    grid = inputs.grid
    enc = inputs.encoding
    found = retrieval.simulate(grid, inputs.documents, inputs.questions, enc)
    tokens = retrieval.tokenize(inputs.documents, enc)
    index = retrieval.build_index(inputs.documents, tokens, grid.view_chunk_size, grid.view_overlap,
                                  grid.svd_rank)
    loop = tools.simulate(inputs.script, grid, inputs.documents, index, grid.search_method, enc)
    pretrained = load_member(inputs.family, grid.tool_n_layer, grid.tool_n_head, memo)
    with_tool, without = (memo(tool_use.fine_tune, dataclasses.replace(cfg, pretrained=pretrained))
                          for cfg in tool_trainings(grid, inputs.family))
    calculator = [t for t in inputs.script.tools if t.name == "calculator"]
    measured = tools.evaluate_tool_use(
        with_tool, without, tool_use.heldout_questions(grid.tool_heldout, grid.tool_max_count, grid.seed,
                                                       tool_use.training_questions(with_tool.config)),
        calculator, {"calculator": tools.calculate})
    return RagResults(retrieval=found, tools=loop, tool_use=measured,
                      facts=facts(found, loop, measured, grid.tool_max_count))


def tool_trainings(grid: RagGrid, family) -> list[tool_use.ToolTraining]:
    """The two fine-tuning runs of the tiny tool model: with calls, then without."""
    base = member_config(family, grid.tool_n_layer, grid.tool_n_head)
    return [tool_use.ToolTraining(base=base, calls=calls, n_questions=grid.tool_questions,
                                  max_count=grid.tool_max_count, steps=grid.tool_steps,
                                  learning_rate=grid.tool_learning_rate, warmup_steps=grid.tool_warmup_steps,
                                  batch_size=grid.tool_batch_size, seed=grid.seed)
            for calls in (True, False)]


# ---------------------------------------------------------------------------------------------
# What the prose quotes


def facts(r: retrieval.RetrievalResults, t: tools.ToolResults, u: tools.ToolUseResults,
          max_count: int) -> RagFacts:
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
        **tool_facts(u, max_count),
    })


def tool_facts(u: tools.ToolUseResults, max_count: int) -> dict:
    """What the prose quotes of the tiny model that calls the calculator."""
    needing = [j for j, k in enumerate(u.kinds) if k != "one"]  # the kinds whose answer takes arithmetic
    one = [g for g in u.generated if g.question.kind == "one" and not g.correct]
    other = [g for g in one if g.answer is not None and g.answer in g.question.counts
             and g.answer != g.question.answer]
    return {
        "tool_model": model_name(u.n_layer, u.n_head),
        "tool_new_tokens": u.n_new_tokens,
        "tool_questions": u.n_questions,
        "tool_steps": u.steps,
        "tool_max_count": max_count,
        "tool_heldout": int(u.n_heldout.sum()),
        "tool_kinds": list(u.kinds),
        "tool_accuracy": {k: float(a) for k, a in zip(u.kinds, u.accuracy[0])},
        "direct_accuracy": {k: float(a) for k, a in zip(u.kinds, u.accuracy[1])},
        "tool_called": {k: float(c) for k, c in zip(u.kinds, u.called)},
        "tool_n_calls": u.n_calls,
        "tool_valid_calls": u.valid_calls,
        "tool_right_calls": u.right_calls,
        "tool_n_refused": sum(len(g.replies) - g.ran for g in u.generated),
        "tool_n_wrong": sum(not g.correct for g in u.generated),
        "one_wrong_other": len(other) / len(one) if one else 0.0,
        "tool_margin": float(min(u.accuracy[0, j] - u.accuracy[1, j] for j in needing)),
        "direct_best_needing": float(max(u.accuracy[1, j] for j in needing)),
        "tool_worst_needing": float(min(u.accuracy[0, j] for j in needing)),
        "one_is_weakest": bool(u.accuracy[0, u.kinds.index("one")] < min(u.accuracy[0, j] for j in needing)),
        "decides_perfectly": bool(all(u.called[j] == 1.0 for j in needing) and u.called[u.kinds.index("one")] == 0.0),
        "generated_titles": [title for title, _ in shown_generated(u)],
    }


def shown_generated(u: tools.ToolUseResults) -> list[tuple[str, int]]:
    """The conversations the page shows: the first held-out question of each kind, then the
    first the model got wrong and the first call the runtime refused, if there are any."""
    gs = u.generated
    shown = [(KIND_NAMES[k], next(i for i, g in enumerate(gs) if g.question.kind == k))
             for k in u.kinds if any(g.question.kind == k for g in gs)]
    wrong = [i for i, g in enumerate(gs) if not g.correct]
    refused = [i for i, g in enumerate(gs) if g.ran < len(g.replies)]
    if wrong:
        shown.append(("a wrong answer", wrong[0]))
    if refused:
        shown.append(("a refused call", refused[0]))
    return shown


def _errors(tr) -> list[str]:
    return [json.loads(text)["error"] for role, text in zip(tr.turn_roles, tr.turn_texts)
            if role == "runtime" and "error" in json.loads(text)]
