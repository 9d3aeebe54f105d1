"""The RAG charts carry exactly the simulation's numbers, and their controls span the results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from generator import knowledge_base
from generator.charts import rag as charts
from generator.grids import RagGrid
from generator.sims import rag
from tests.charts.specs import inline_data, params

ROOT = Path(__file__).resolve().parents[2]
RES = rag.simulate(knowledge_base.load(RagGrid(), ROOT / "content"))
R, V, T = RES.retrieval, RES.retrieval.view, RES.tools
SPECS = {name: fig.to_dict() for name, fig in charts.figures(RES).items()}  # validates the schema
LABEL_TO_METHOD = {label: m for m, label in charts.LABELS.items()}


def close(a, b, rtol=5e-6):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=1e-12)


def test_every_chart_is_placed_by_the_prose():
    prose = (ROOT / "content" / "rag.md").read_text()
    for name in SPECS:
        assert prose.count(f'chart("{name}")') == 1, name


def test_quality_heatmap_carries_every_score_of_the_grid():
    rows = inline_data(SPECS["quality"])[0]
    assert len(rows) == R.mrr.size
    names = charts.metric_names(RES)
    for row in rows:
        m = R.methods.index(LABEL_TO_METHOD[row["method"]])
        i, j = list(R.chunk_sizes).index(row["chunk size"]), list(R.overlaps).index(row["overlap"])
        assert row["chunks"] == R.n_chunks[i, j]
        expected = list(R.hit_rate[m, i, j]) + [R.mrr[m, i, j]] + list(R.found_within[m, i, j])
        assert close([row[n] for n in names], expected)
    p = params(SPECS["quality"])
    assert p["method"]["bind"]["options"] == [charts.LABELS[m] for m in R.methods]
    assert p["method"]["value"] == charts.LABELS[R.best[0]]
    assert p["metric"]["bind"]["options"] == names
    assert p["metric"]["value"] == f"found within {R.headline_budget} tokens"


def test_ranked_chunks_carry_the_views_ranking_scores_and_packing():
    rows, chunks = inline_data(SPECS["ranked"])
    by_id = {c["chunk"]: c for c in chunks}
    assert len(rows) == len(charts.VIEW_METHODS) * len(R.questions)
    for row in rows:
        m, q = R.methods.index(LABEL_TO_METHOD[row["method"]]), row["question"]
        assert row["chunk"] == list(V.order[m, q, :charts.RANKED_TOP])
        assert close(row["score"], V.scores[m, q, row["chunk"]], rtol=5e-4)
        for c, packed_at in zip(row["chunk"], row["packed at budget"]):
            fits = [b for n, b in enumerate(R.budgets) if V.packed[m, q, n, c]]
            assert packed_at == (fits[0] if fits else None)
            assert by_id[c]["text"] == V.chunk_text[c]
            assert by_id[c]["tokens"] == V.chunk_tokens[c]
            assert by_id[c]["_answers"] == [int(x) for x in np.flatnonzero(V.relevant[:, c])]
    p = params(SPECS["ranked"])
    assert p["question"]["bind"]["options"] == list(range(len(R.questions)))
    assert all(label.endswith(q) for label, q in zip(p["question"]["bind"]["labels"], R.questions))
    assert set(p["budget"]["bind"]["options"]) <= {int(b) for b in R.budgets}


def test_cosine_heatmap_carries_the_lsa_cosines_and_every_answering_chunk():
    rows, chunks, questions = inline_data(SPECS["cosine"])
    lsa = R.methods.index("lsa")
    shown = rows[0]["chunk"]
    assert shown == sorted(shown) and len(shown) <= charts.HEATMAP_MAX + V.relevant.any(axis=0).sum()
    assert set(np.flatnonzero(V.relevant.any(axis=0))) <= set(shown)
    for row in rows:
        q = row["question"] - 1
        assert row["chunk"] == shown
        assert close(row["cosine"], V.scores[lsa, q, shown], rtol=5e-4)
        for c, rank in zip(shown, row["rank"]):
            assert V.order[lsa, q, rank - 1] == c
    assert [c["_answers"] for c in chunks] == [[q + 1 for q in np.flatnonzero(V.relevant[:, c])] for c in shown]
    assert [q["asks"] for q in questions] == list(R.questions)


def test_projection_carries_the_pca_coordinates():
    chunks, queries = inline_data(SPECS["projection"])
    assert len(chunks) == len(V.chunk_text)
    assert close([[c["PC 1"], c["PC 2"]] for c in chunks], V.chunk_xy, rtol=5e-4)
    assert close([[q["PC 1"], q["PC 2"]] for q in queries], V.query_xy, rtol=5e-4)


def test_trace_carries_every_token_of_every_conversation():
    rows = inline_data(SPECS["trace"])[0]
    system = [r for r in rows if r["conversation"] == -1]
    assert len(system) == 1 and system[0]["role"] == "system"
    for c, tr in enumerate(T.traces):
        turns = system + [r for r in rows if r["conversation"] == c]
        assert [r["role"] for r in turns] == list(tr.turn_roles)
        ids = [i for r in turns for i in r["id"]]
        assert ids == [int(i) for i in tr.token_ids]
        tokens = [t for r in turns for t in r["token"]]
        assert tokens == [t.replace("\n", "\u21b5") for t in tr.token_text]
        assert [len(r["token"]) for r in turns] == list(tr.turn_tokens)
    p = params(SPECS["trace"])["conversation"]
    assert p["bind"]["labels"] == [tr.title for tr in T.traces]


def test_turn_tokens_carry_the_counts_and_the_schemas_cost():
    rows = inline_data(SPECS["turn_tokens"])[0]
    for c, tr in enumerate(T.traces):
        turns = [r for r in rows if r["conversation"] == c and r["part"] == "whole turn"]
        assert [r["tokens"] for r in turns] == list(tr.turn_tokens)
        schemas = [r["tokens"] for r in rows if r["conversation"] == c and r["part"].startswith("schema")]
        assert schemas == list(T.schema_tokens)


def test_facts_are_read_off_the_results():
    f = charts.facts(RES)
    method, size, overlap = R.best
    m, i, j = R.methods.index(method), list(R.chunk_sizes).index(size), list(R.overlaps).index(overlap)
    h = list(R.budgets).index(R.headline_budget)
    assert (f["best_method"], f["best_chunk_size"], f["best_overlap"]) == (charts.LABELS[method], size, overlap)
    assert f["best_found"] == R.found_within[m, i, j, h] and f["best_mrr"] == R.mrr[m, i, j]
    assert f["random_found"] == R.found_within[0, i, j, h]
    assert f["corpus_tokens"] == R.document_tokens.sum()
    assert f["schema_tokens"] == T.schema_tokens.sum() and f["system_tokens"] == T.system_tokens
    assert f["n_questions"] == len(R.questions) == 30
    if f["example_question"] is not None:
        q = f["example_question"] - 1
        assert V.ranks[R.methods.index("bm25"), q] == 1 and V.ranks[R.methods.index("lsa"), q] > 1
    for label, summary in f["per_method"].items():
        n = R.methods.index(LABEL_TO_METHOD[label])
        assert summary["found"] == R.found_within[n, :, :, h].max()
        assert summary["mean_found"] == pytest.approx(R.found_within[n, :, :, h].mean())


def test_heatmap_columns_keep_answering_chunks_first_when_capped():
    rank_of = np.array([[1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1]])
    relevant = np.array([[False, False, False, True, False, False], [False] * 6])
    assert charts.heatmap_chunks(rank_of, relevant) == [0, 1, 2, 3, 4, 5]
    old = charts.HEATMAP_MAX
    try:
        charts.HEATMAP_MAX = 3
        # must: chunk 3 (answers) and chunks 0 and 5 (ranked first); then the best-placed other
        assert charts.heatmap_chunks(rank_of, relevant) == [0, 3, 5]
    finally:
        charts.HEATMAP_MAX = old
