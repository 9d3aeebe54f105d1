"""The RAG charts carry exactly the simulation's numbers, and their controls span the results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from generator.charts import rag as charts
from generator.sims.rag import shown_generated
from tests.charts.specs import inline_data, nodes, params

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def res(rag_results):
    return rag_results


@pytest.fixture(scope="module")
def specs(res):
    return {name: fig.to_dict() for name, fig in charts.figures(res).items()}  # validates the schema


@pytest.fixture(scope="module")
def r(res):
    return res.retrieval


@pytest.fixture(scope="module")
def v(res):
    return res.retrieval.view


@pytest.fixture(scope="module")
def t(res):
    return res.tools

LABEL_TO_METHOD = {label: m for m, label in charts.LABELS.items()}


def close(a, b, rtol=5e-6):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=1e-12)


def test_every_chart_is_placed_by_the_prose(specs):
    prose = (ROOT / "content" / "rag.md").read_text()
    for name in specs:
        assert prose.count(f'chart("{name}")') == 1, name


def test_quality_heatmap_carries_every_score_of_the_grid(res, r, specs):
    rows = inline_data(specs["quality"])[0]
    assert len(rows) == r.mrr.size
    names = charts.metric_names(res)
    for row in rows:
        m = r.methods.index(LABEL_TO_METHOD[row["method"]])
        i, j = list(r.chunk_sizes).index(row["chunk size"]), list(r.overlaps).index(row["overlap"])
        assert row["chunks"] == r.n_chunks[i, j]
        expected = list(r.hit_rate[m, i, j]) + [r.mrr[m, i, j]] + list(r.found_within[m, i, j])
        assert close([row[n] for n in names], expected)
    p = params(specs["quality"])
    assert p["method"]["bind"]["options"] == [charts.LABELS[m] for m in r.methods]
    assert p["method"]["value"] == charts.LABELS[r.best[0]]
    assert p["metric"]["bind"]["options"] == names
    assert p["metric"]["value"] == f"found within {r.headline_budget} tokens"


def test_ranked_chunks_carry_the_views_ranking_scores_and_packing(r, v, specs):
    rows, chunks = inline_data(specs["ranked"])
    by_id = {c["chunk"]: c for c in chunks}
    assert len(rows) == len(charts.VIEW_METHODS) * len(r.questions)
    for row in rows:
        m, q = r.methods.index(LABEL_TO_METHOD[row["method"]]), row["question"]
        assert row["chunk"] == list(v.order[m, q, :charts.RANKED_TOP])
        assert close(row["score"], v.scores[m, q, row["chunk"]], rtol=5e-4)
        for c, packed_at in zip(row["chunk"], row["packed at budget"]):
            fits = [b for n, b in enumerate(r.budgets) if v.packed[m, q, n, c]]
            assert packed_at == (fits[0] if fits else None)
            assert by_id[c]["text"] == v.chunk_text[c]
            assert by_id[c]["tokens"] == v.chunk_tokens[c]
            assert by_id[c]["_answers"] == [int(x) for x in np.flatnonzero(v.relevant[:, c])]
    p = params(specs["ranked"])
    assert p["question"]["bind"]["options"] == list(range(len(r.questions)))
    assert all(label.endswith(q) for label, q in zip(p["question"]["bind"]["labels"], r.questions))
    assert set(p["budget"]["bind"]["options"]) <= {int(b) for b in r.budgets}


def test_cosine_heatmap_carries_the_lsa_cosines_and_every_answering_chunk(r, v, specs):
    rows, chunks, questions = inline_data(specs["cosine"])
    lsa = r.methods.index("lsa")
    shown = rows[0]["chunk"]
    assert shown == sorted(shown) and len(shown) <= charts.HEATMAP_MAX + v.relevant.any(axis=0).sum()
    assert set(np.flatnonzero(v.relevant.any(axis=0))) <= set(shown)
    for row in rows:
        q = row["question"] - 1
        assert row["chunk"] == shown
        assert close(row["cosine"], v.scores[lsa, q, shown], rtol=5e-4)
        for c, rank in zip(shown, row["rank"]):
            assert v.order[lsa, q, rank - 1] == c
    assert [c["_answers"] for c in chunks] == [[q + 1 for q in np.flatnonzero(v.relevant[:, c])] for c in shown]
    assert [q["asks"] for q in questions] == list(r.questions)


def test_projection_carries_the_pca_coordinates(v, specs):
    chunks, queries = inline_data(specs["projection"])
    assert len(chunks) == len(v.chunk_text)
    assert close([[c["PC 1"], c["PC 2"]] for c in chunks], v.chunk_xy, rtol=5e-4)
    assert close([[q["PC 1"], q["PC 2"]] for q in queries], v.query_xy, rtol=5e-4)


def test_trace_carries_every_token_of_every_conversation(t, specs):
    rows = inline_data(specs["trace"])[0]
    system = [r for r in rows if r["conversation"] == -1]
    assert len(system) == 1 and system[0]["role"] == "system"
    for c, tr in enumerate(t.traces):
        turns = system + [r for r in rows if r["conversation"] == c]
        assert [r["role"] for r in turns] == list(tr.turn_roles)
        ids = [i for r in turns for i in r["id"]]
        assert ids == [int(i) for i in tr.token_ids]
        tokens = [t for r in turns for t in r["token"]]
        assert tokens == [t.replace("\n", "\u21b5") for t in tr.token_text]
        assert [len(r["token"]) for r in turns] == list(tr.turn_tokens)
    p = params(specs["trace"])["conversation"]
    assert p["bind"]["labels"] == [tr.title for tr in t.traces]


@pytest.mark.parametrize("name", ["trace", "generated"])
def test_token_lines_keep_one_height_at_every_choice(specs, name):
    # The y domain is every line of the longest choice, so a change of choice keeps the canvas.
    spec = specs[name]
    rows = inline_data(spec)[0]
    lines = 1 + max(max(r["_line"], default=0) for r in rows)
    assert lines > 1
    assert spec["height"] == lines * charts.LINE_PX
    domains = [n["scale"]["domain"] for n in nodes(spec)
               if isinstance(n.get("scale"), dict) and n.get("field") == "_line"]
    assert domains and all(d == list(range(lines)) for d in domains)


def test_turn_tokens_carry_the_counts_and_the_schemas_cost(t, specs):
    rows = inline_data(specs["turn_tokens"])[0]
    for c, tr in enumerate(t.traces):
        turns = [r for r in rows if r["conversation"] == c and r["part"] == "whole turn"]
        assert [r["tokens"] for r in turns] == list(tr.turn_tokens)
        schemas = [r["tokens"] for r in rows if r["conversation"] == c and r["part"].startswith("schema")]
        assert schemas == list(t.schema_tokens)


def test_generated_carries_every_token_of_the_shown_conversations_and_who_wrote_it(res, specs):
    rows = inline_data(specs["generated"])[0]
    shown = shown_generated(res.tool_use)
    assert params(specs["generated"])["generated"]["bind"]["labels"] == [title for title, _ in shown]
    for c, (_, i) in enumerate(shown):
        g = res.tool_use.generated[i]
        runs = [r for r in rows if r["conversation"] == c]
        assert [t for r in runs for t in r["token"]] == list(g.tokens)
        assert [r["role"] for r in runs for _ in r["token"]] == list(g.authors)
        assert [r["reply"] for r in runs if r["role"] == "runtime"] == list(g.replies)
        assert all(col + len(tok) <= charts.GENERATED_COLUMNS for r in runs for tok, col in zip(r["token"], r["_col"])
                   if col > 0)


def test_tool_accuracy_carries_both_models_share_right_per_kind(res, specs):
    u = res.tool_use
    rows = inline_data(specs["tool_accuracy"])[0]
    assert len(rows) == 2 * len(u.kinds)
    for row in rows:
        j = [charts.KIND_NAMES[k] for k in u.kinds].index(row["kind"])
        m = ["calls the calculator", "answers at once"].index(row["model"])
        assert row["right"] == u.accuracy[m, j] and row["questions"] == u.n_heldout[j]
        assert row["called"] == (u.called[j] if m == 0 else None)


def test_facts_are_read_off_the_results(res, r, v, t):
    f = res.facts
    method, size, overlap = r.best
    m, i, j = r.methods.index(method), list(r.chunk_sizes).index(size), list(r.overlaps).index(overlap)
    h = list(r.budgets).index(r.headline_budget)
    assert (f.best_method, f.best_chunk_size, f.best_overlap) == (charts.LABELS[method], size, overlap)
    assert f.best_found == r.found_within[m, i, j, h] and f.best_mrr == r.mrr[m, i, j]
    assert f.random_found == r.found_within[0, i, j, h]
    assert f.corpus_tokens == r.document_tokens.sum()
    assert f.schema_tokens == t.schema_tokens.sum() and f.system_tokens == t.system_tokens
    assert f.n_questions == len(r.questions) == 30
    if f.example_question is not None:
        q = f.example_question - 1
        assert v.ranks[r.methods.index("bm25"), q] == 1 and v.ranks[r.methods.index("lsa"), q] > 1
    for label, summary in f.per_method.items():
        n = r.methods.index(LABEL_TO_METHOD[label])
        assert summary["found"] == r.found_within[n, :, :, h].max()
        assert summary["mean_found"] == pytest.approx(r.found_within[n, :, :, h].mean())


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
