"""Retrieval against references: brute force, hand-worked tiny cases, numpy's SVD, tiktoken."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from generator.grids import RagGrid
from generator.sims import retrieval as rt
from generator.encodings import get_encoding

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results(rag_results):
    return rag_results.retrieval

GRID = RagGrid()


# ---------------------------------------------------------------------------------------------
# Chunking


@pytest.mark.parametrize("n,size,overlap,expected", [
    (11, 4, 1, [0, 3, 6, 9]),
    (10, 4, 1, [0, 3, 6]),
    (3, 4, 1, [0]),
    (0, 4, 0, [0]),
    (8, 4, 0, [0, 4]),
])
def test_window_starts_cover_every_token(n, size, overlap, expected):
    assert list(rt.window_starts(n, size, overlap)) == expected


@pytest.mark.parametrize("size,overlap", [(32, 0), (48, 8), (64, 16), (256, 16)])
def test_chunks_hold_the_windows_tokens_as_tiktoken_counts_them(size, overlap, rag_inputs):
    enc = get_encoding("cl100k_base")
    docs = rag_inputs.documents
    chunks = rt.chunk(docs, rt.tokenize(docs, get_encoding("cl100k_base")), size, overlap)
    for d, doc in enumerate(docs):
        ids = enc.encode_ordinary(doc.text)
        mine = np.flatnonzero(chunks.doc == d)
        assert len(mine) == len(rt.window_starts(len(ids), size, overlap))
        # every chunk but the last of a document is a full window
        assert all(chunks.n_tokens[c] == size for c in mine[:-1])
        assert chunks.n_tokens[mine[-1]] <= size
        # the windows tile the document: the first starts it, the last ends it
        assert chunks.start[mine[0]] == 0 and chunks.end[mine[-1]] == len(doc.text)
        for c in mine:
            assert chunks.text[c] == doc.text[chunks.start[c]:chunks.end[c]]
            # re-encoding a chunk on its own gives its window's tokens (a window that starts
            # inside a multi-byte character may differ by one)
            assert abs(len(enc.encode_ordinary(chunks.text[c])) - chunks.n_tokens[c]) <= 1
    exact = [len(enc.encode_ordinary(t)) == n for t, n in zip(chunks.text, chunks.n_tokens)]
    assert np.mean(exact) > 0.95


def test_relevance_needs_half_the_passage_or_half_the_chunk():
    docs = (rt.Document("a.md", "x" * 100),)
    chunks = rt.Chunks(doc=np.array([0, 0, 0, 0]), start=np.array([0, 30, 60, 45]),
                       end=np.array([30, 60, 100, 55]), n_tokens=np.ones(4, int), text=("",) * 4)
    passage = rt.Question(text="q", source="a.md", passage="", start=25, end=55)  # 30 characters
    got = rt.relevance(chunks, [passage], [d.name for d in docs])[0]
    # chunk 0 holds 5 of 30: no; chunk 1 holds 25 of 30: yes; chunk 2 none; chunk 3 is all passage
    assert list(got) == [False, True, False, True]


def test_every_question_has_an_answering_chunk_at_every_setting(rag_inputs):
    docs, questions = rag_inputs.documents, rag_inputs.questions
    tokens = rt.tokenize(docs, get_encoding("cl100k_base"))
    for size in GRID.chunk_sizes:
        for overlap in GRID.overlaps:
            chunks = rt.chunk(docs, tokens, size, overlap)
            relevant = rt.relevance(chunks, questions, [d.name for d in docs])
            assert relevant.any(axis=1).all(), (size, overlap)
            for q, question in enumerate(questions):
                for c in np.flatnonzero(relevant[q]):
                    assert docs[chunks.doc[c]].name == question.source


# ---------------------------------------------------------------------------------------------
# Vectors and scores


def test_terms_lowercase_and_fold_plurals():
    assert rt.terms("Top-k keeps Tokens; class glass is") == ["top", "k", "keep", "token", "class", "glass", "is"]


def test_tf_idf_hand_worked():
    counts = np.array([[2.0, 0.0], [1.0, 1.0]])
    idf = rt.inverse_document_frequency(counts)
    assert idf == pytest.approx([1.0, math.log(3 / 2) + 1])
    x = rt.tf_idf(counts, idf)
    assert x[0] == pytest.approx([1.0, 0.0])
    w = np.array([1.0, math.log(1.5) + 1])
    assert x[1] == pytest.approx(w / np.linalg.norm(w))
    assert rt.tf_idf(np.zeros((1, 2)), idf).tolist() == [[0.0, 0.0]]


def test_cosine_ranking_equals_a_brute_force_recompute():
    rng = np.random.default_rng(3)
    queries, chunks = rng.normal(size=(7, 12)), rng.normal(size=(40, 12))
    scores = rt.cosine_similarity(queries, chunks)
    for q, query in enumerate(queries):
        brute = [sum(a * b for a, b in zip(query, chunk))
                 / math.sqrt(sum(a * a for a in query)) / math.sqrt(sum(b * b for b in chunk))
                 for chunk in chunks]
        assert scores[q] == pytest.approx(brute, abs=1e-12)
        assert list(rt.ranking(scores)[q]) == sorted(range(len(chunks)), key=lambda c: -brute[c])


def test_cosine_ranking_of_the_real_index_equals_a_brute_force_recompute(rag_inputs):
    docs = rag_inputs.documents
    index = rt.build_index(docs, rt.tokenize(docs, get_encoding("cl100k_base")), 64, 16, GRID.svd_rank)
    queries = [q.text for q in rag_inputs.questions]
    _, embedded = rt.embed_queries(index, queries)
    scores = rt.score(index, queries, GRID, np.random.default_rng(0))[rt.METHODS.index("lsa")]
    for q in range(len(queries)):
        brute = [float(np.dot(embedded[q], e) / (np.linalg.norm(embedded[q]) * np.linalg.norm(e)))
                 for e in index.embeddings]
        assert scores[q] == pytest.approx(brute, abs=1e-9)
        assert rt.ranking(scores)[q][0] == int(np.argmax(brute))


def test_bm25_hand_worked_tiny_case():
    # vocabulary [cat, mat, sat]; chunk 0 "cat sat cat" (3 terms), chunk 1 "mat" (1 term)
    chunks = np.array([[2.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    query = np.array([[1.0, 1.0, 0.0]])  # "cat mat"
    k1, b = 1.2, 0.75
    idf = math.log(1 + (2 - 1 + 0.5) / (1 + 0.5))  # each term is in one of two chunks: ln 2
    avgdl = 2.0
    cat_in_0 = idf * 2 * (k1 + 1) / (2 + k1 * (1 - b + b * 3 / avgdl))
    mat_in_1 = idf * 1 * (k1 + 1) / (1 + k1 * (1 - b + b * 1 / avgdl))
    assert rt.bm25(query, chunks, k1, b) == pytest.approx(np.array([[cat_in_0, mat_in_1]]))
    # by hand: ln 2 * 4.4 / (2 + 1.2 * 1.375) = 0.8356 and ln 2 * 2.2 / (1 + 1.2 * 0.625) = 0.8714
    assert cat_in_0 == pytest.approx(0.8356, abs=1e-4) and mat_in_1 == pytest.approx(0.8714, abs=1e-4)


def test_bm25_docstring_example_and_no_length_normalisation_at_b_zero():
    chunks = np.array([[1.0, 1.0], [1.0, 0.0]])  # "a b", "a"
    assert rt.bm25(np.array([[0.0, 1.0]]), chunks, 1.2, 0.0) == pytest.approx(np.array([[math.log(2), 0.0]]))


def test_hybrid_mixes_min_max_normalised_scores():
    dense, lexical = np.array([[0.2, 0.6, 0.4]]), np.array([[10.0, 0.0, 5.0]])
    assert rt.hybrid(dense, lexical, 0.25) == pytest.approx(np.array([[0.75, 0.25, 0.5]]))
    assert rt.min_max(np.array([[3.0, 3.0]])).tolist() == [[0.0, 0.0]]


def test_truncated_svd_matches_numpy_svd():
    rng = np.random.default_rng(1)
    x = rng.random((30, 80)) * (rng.random((30, 80)) < 0.2)
    v = rt.truncated_svd(x, 8)
    _, s, vt = np.linalg.svd(x, full_matrices=False)
    assert v.shape == (80, 8)
    for i in range(8):  # the same directions, up to sign
        assert abs(float(v[:, i] @ vt[i])) == pytest.approx(1.0, abs=1e-9)
    assert np.linalg.norm(x @ v, axis=0) == pytest.approx(s[:8])


def test_truncated_svd_drops_directions_without_variance():
    x = np.array([[1.0, 0.0, 0.0], [2.0, 0.0, 0.0]])  # rank one
    assert rt.truncated_svd(x, 5).shape == (3, 1)


def test_pca_axes_are_orthonormal_and_explain_variance_in_order():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 6)) * [5, 3, 1, 1, 1, 1]
    mean, axes, explained = rt.pca(x)
    assert axes.T @ axes == pytest.approx(np.eye(2), abs=1e-12)
    projected = (x - mean) @ axes
    total = ((x - mean) ** 2).sum()
    assert explained == pytest.approx((projected ** 2).sum(axis=0) / total)
    assert explained[0] > explained[1]


# ---------------------------------------------------------------------------------------------
# Ranking quality


def test_hit_rate_and_mrr_hand_worked():
    # 3 questions x 4 chunks; the answers are ranked 2nd, 1st and 4th
    scores = np.array([[0.9, 0.5, 0.1, 0.0], [0.2, 0.8, 0.3, 0.1], [0.4, 0.3, 0.2, 0.1]])
    relevant = np.array([[False, True, False, False], [False, True, False, True], [False, False, False, True]])
    ranks = rt.first_relevant_rank(scores, relevant)
    assert list(ranks) == [2, 1, 4]
    assert rt.hit_rate(ranks, 1) == pytest.approx(1 / 3)
    assert rt.hit_rate(ranks, 2) == pytest.approx(2 / 3)
    assert rt.hit_rate(ranks, 4) == 1.0
    assert rt.mean_reciprocal_rank(ranks) == pytest.approx((1 / 2 + 1 + 1 / 4) / 3)


def test_ties_keep_document_order():
    assert list(rt.ranking(np.array([[0.5, 0.7, 0.5, 0.7]]))[0]) == [1, 3, 0, 2]


def test_pack_keeps_whole_chunks_until_the_next_overflows():
    order, tokens = np.array([2, 0, 1, 3]), np.array([64, 64, 40, 64])
    assert list(rt.pack(order, tokens, 104)) == [True, False, True, False]   # 40 + 64
    assert list(rt.pack(order, tokens, 103)) == [False, False, True, False]  # 40, then 64 overflows
    assert not rt.pack(order, tokens, 39).any()


def test_results_agree_with_their_own_ranks(results):
    r = results
    for n, k in enumerate(r.ks):
        assert r.hit_rate[..., n] == pytest.approx((r.ranks <= k).mean(axis=-1))
    assert r.mrr == pytest.approx((1.0 / r.ranks).mean(axis=-1))
    assert r.found_within.shape == (len(rt.METHODS), len(r.chunk_sizes), len(r.overlaps), len(r.budgets))
    # found within a budget only grows with the budget
    assert (np.diff(r.found_within, axis=-1) >= -1e-12).all()


def test_the_best_setting_is_the_arg_max_of_the_headline_score(results):
    r = results
    h = list(r.budgets).index(r.headline_budget)
    method, size, overlap = r.best
    m, i, j = rt.METHODS.index(method), list(r.chunk_sizes).index(size), list(r.overlaps).index(overlap)
    non_random = r.found_within[1:, :, :, h]
    assert method != "random"
    assert r.found_within[m, i, j, h] == non_random.max()
    tied = r.found_within[:, :, :, h] == non_random.max()
    tied[0] = False
    assert r.mrr[m, i, j] == r.mrr[tied].max()


def test_the_view_repeats_the_grid_cell_it_details(results):
    r, v = results, results.view
    i, j = list(r.chunk_sizes).index(v.chunk_size), list(r.overlaps).index(v.overlap)
    assert len(v.chunk_text) == r.n_chunks[i, j]
    assert (v.ranks == r.ranks[:, i, j]).all()
    assert (np.take_along_axis(v.relevant[None], v.order, axis=-1).argmax(axis=-1) + 1 == v.ranks).all()
    packed_found = (v.packed & v.relevant[None, :, None, :]).any(axis=-1).mean(axis=-2)
    assert packed_found == pytest.approx(r.found_within[:, i, j])


def test_methods_beat_the_random_floor_on_average(results):
    r = results
    assert all(r.mrr[m].mean() > r.mrr[0].mean() for m in range(1, len(rt.METHODS)))
