"""Retrieval over this site's own prose: chunk it, embed it, rank chunks for a question, score.

Simulated exactly: token-window chunking with overlap, counted with the real ``cl100k_base``
encoding; TF-IDF vectors; latent semantic analysis (a truncated SVD of the TF-IDF matrix, an
embedding learned from this corpus alone); cosine similarity; Okapi BM25; a hybrid of the two;
a seeded random ranking as the floor; hit rate@k, mean reciprocal rank and "found within a
token budget" over hand-labelled questions; PCA of the embeddings for a 2-D view.

Not simulated: neural embedding models (LSA stands in for them: linear, count-based, learned
from a few thousand words instead of billions); vector indexes (every chunk is scored by
brute force, which is exact); re-rankers, query rewriting, and the generation step that would
read the retrieved chunks.

Terms are lowercase runs of letters and digits, with a plural "s" folded away ("tokens" and
"token" are one term); no stop words are removed: IDF and BM25 down-weight common words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from generator.grids import RagGrid

ENCODING = "cl100k_base"
METHODS = ("random", "tf-idf", "lsa", "bm25", "hybrid")
_WORD = re.compile(r"[a-z0-9]+")


@dataclass(frozen=True)
class Document:
    name: str  # content file, e.g. "sampling.md"
    text: str  # prose with markup stripped


@dataclass(frozen=True)
class Question:
    text: str
    source: str  # the document that answers it
    passage: str  # the words that answer it, as they stand in the document
    start: int  # character span of the passage in the document's text
    end: int


@dataclass(frozen=True)
class Chunks:
    doc: np.ndarray  # [n_chunk] index into the documents
    start: np.ndarray  # [n_chunk] first character in the document
    end: np.ndarray  # [n_chunk] one past the last character
    n_tokens: np.ndarray  # [n_chunk] tokens in the window
    text: tuple[str, ...]  # [n_chunk]


# ---------------------------------------------------------------------------------------------
# Chunking


def window_starts(n_tokens, size, overlap):  # int, int, int -> [n_window]
    """Starts of windows of `size` tokens, each sharing `overlap` with the last, covering all.

    Example: window_starts(11, 4, 1) -> [0, 3, 6, 9]   (the last window is short: 9..11)
    """
    stride = size - overlap
    n_window = 1 + -(-max(n_tokens - size, 0) // stride)
    return stride * np.arange(n_window)


def tokenize(documents, enc):  # [n_doc] Document, Encoding -> [n_doc] ([n_seq] token ids, [n_seq + 1] char bounds)
    """Every document's tokens in enc (the ENCODING's tiktoken Encoding), and the character
    where each token starts (plus the end)."""
    out = []
    for d in documents:
        ids = enc.encode_ordinary(d.text)
        _, offsets = enc.decode_with_offsets(ids)
        out.append((ids, list(offsets) + [len(d.text)]))
    return out


def chunk(documents, tokens, size, overlap):  # [n_doc] Document, tokenize(...) -> Chunks
    """Cut every document into token windows; a chunk never spans two documents."""
    doc, start, end, n_tokens, text = [], [], [], [], []
    for i, (d, (ids, bounds)) in enumerate(zip(documents, tokens)):
        for s in window_starts(len(ids), size, overlap):
            e = min(s + size, len(ids))
            doc.append(i)
            start.append(bounds[s])
            end.append(bounds[e])
            n_tokens.append(e - s)
            text.append(d.text[bounds[s]:bounds[e]])
    return Chunks(doc=np.array(doc), start=np.array(start), end=np.array(end),
                  n_tokens=np.array(n_tokens), text=tuple(text))


def relevance(chunks, questions, doc_names):  # Chunks, [n_query] -> [n_query, n_chunk] bool
    """A chunk answers a question if it holds at least half of the passage, or is half passage.

    Overlap of at least half the shorter of the two spans: a chunk that merely touches the
    passage does not count; whatever the chunk size, at least one chunk always does.
    """
    relevant = np.zeros((len(questions), len(chunks.text)), dtype=bool)
    for q, question in enumerate(questions):
        same_doc = chunks.doc == doc_names.index(question.source)  # [n_chunk]
        shared = np.minimum(chunks.end, question.end) - np.maximum(chunks.start, question.start)
        shorter = np.minimum(chunks.end - chunks.start, question.end - question.start)
        relevant[q] = same_doc & (shared >= 0.5 * shorter) & (shared > 0)
    return relevant


# ---------------------------------------------------------------------------------------------
# Vectors


def terms(text):  # str -> [n_words] str
    """Lowercase words, plural "s" folded. Example: terms("Top-k keeps tokens") -> ['top', 'k', 'keep', 'token']"""
    return [w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
            for w in _WORD.findall(text.lower())]


def vocabulary(texts):  # [n_text] str -> {term: column}
    """Every term of the texts, in sorted order."""
    return {t: i for i, t in enumerate(sorted({t for text in texts for t in terms(text)}))}


def term_counts(texts, vocab):  # [n_text] str, {term: column} -> [n_text, n_term]
    """How often each vocabulary term occurs in each text; unknown terms are dropped."""
    counts = np.zeros((len(texts), len(vocab)))
    for i, text in enumerate(texts):
        for t in terms(text):
            if t in vocab:
                counts[i, vocab[t]] += 1
    return counts


def inverse_document_frequency(counts):  # [n_chunk, n_term] -> [n_term]
    """Smoothed IDF: log((1 + N) / (1 + df)) + 1, so a term in every chunk still weighs 1."""
    df = (counts > 0).sum(axis=0)  # [n_term]
    return np.log((1 + counts.shape[0]) / (1 + df)) + 1


def tf_idf(counts, idf):  # [n, n_term], [n_term] -> [n, n_term]
    """Term counts times IDF, each row scaled to unit length (an empty row stays zero)."""
    x = counts * idf
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def truncated_svd(x, rank):  # [n_chunk, n_term], int -> [n_term, n_rank]
    """The top `rank` right singular vectors of x: the LSA projection, with x V ~ U S.

    Found through the smaller Gram matrix: x x^T = U S^2 U^T, so V = x^T U / S. Directions
    with no variance are dropped, so n_rank <= min(rank, n_chunk). Signs are fixed so each
    vector's largest entry is positive (an SVD leaves them arbitrary).
    """
    eigenvalues, u = np.linalg.eigh(x @ x.T)  # [n_chunk], [n_chunk, n_chunk] ascending
    top = np.argsort(-eigenvalues, kind="stable")[:rank]
    top = top[eigenvalues[top] > 1e-10 * max(eigenvalues.max(), 1e-300)]  # [n_rank]
    v = x.T @ u[:, top] / np.sqrt(eigenvalues[top])  # [n_term, n_rank]
    return v * np.sign(v[np.abs(v).argmax(axis=0), np.arange(v.shape[1])])


def cosine_similarity(a, b):  # [n_a, d], [n_b, d] -> [n_a, n_b]
    """cos = a.b / (|a| |b|); a zero vector is similar to nothing (0)."""
    na = np.linalg.norm(a, axis=-1, keepdims=True)  # [n_a, 1]
    nb = np.linalg.norm(b, axis=-1, keepdims=True)  # [n_b, 1]
    return (a / np.where(na > 0, na, 1.0)) @ (b / np.where(nb > 0, nb, 1.0)).T


def bm25(query_counts, chunk_counts, k1, b):  # [n_query, n_term], [n_chunk, n_term] -> [n_query, n_chunk]
    """Okapi BM25 with Lucene's IDF: sum over query terms of IDF * tf (k1 + 1) / (tf + k1 (1 - b + b |d| / avgdl)).

    Example: one chunk "a b", one "a", query "b", k1=1.2, b=0 -> [[ln(1 + 1.5/1.5), 0]] = [[0.693, 0]]
    """
    n_chunk = chunk_counts.shape[0]
    df = (chunk_counts > 0).sum(axis=0)  # [n_term]
    idf = np.log(1 + (n_chunk - df + 0.5) / (df + 0.5))  # [n_term]
    length = chunk_counts.sum(axis=-1, keepdims=True)  # [n_chunk, 1]
    norm = k1 * (1 - b + b * length / length.mean())  # [n_chunk, 1]
    saturated = chunk_counts * (k1 + 1) / (chunk_counts + norm)  # [n_chunk, n_term]
    return query_counts @ (saturated * idf).T


def min_max(scores):  # [n_query, n_chunk] -> [n_query, n_chunk]
    """Rescale each query's scores to [0, 1] (all equal -> all 0)."""
    lo = scores.min(axis=-1, keepdims=True)
    span = scores.max(axis=-1, keepdims=True) - lo
    return (scores - lo) / np.where(span > 0, span, 1.0)


def hybrid(dense, lexical, weight):  # [n_query, n_chunk] x2, float -> [n_query, n_chunk]
    """Convex mix of min-max-normalised scores: weight * dense + (1 - weight) * lexical."""
    return weight * min_max(dense) + (1 - weight) * min_max(lexical)


# ---------------------------------------------------------------------------------------------
# Ranking and scoring


def ranking(scores):  # [n_query, n_chunk] -> [n_query, n_chunk]
    """Chunk indices from best to worst; ties keep document order (a stable sort)."""
    return np.argsort(-scores, axis=-1, kind="stable")


def first_relevant_rank(scores, relevant):  # [n_query, n_chunk], [n_query, n_chunk] bool -> [n_query]
    """1-based rank of the best-placed chunk that answers each question."""
    order = ranking(scores)  # [n_query, n_chunk]
    hits = np.take_along_axis(relevant, order, axis=-1)  # [n_query, n_chunk]
    return hits.argmax(axis=-1) + 1


def hit_rate(ranks, k):  # [..., n_query], int -> [...]
    """Share of questions answered by one of the top k chunks."""
    return np.mean(ranks <= k, axis=-1)


def mean_reciprocal_rank(ranks):  # [..., n_query] -> [...]
    """Mean of 1 / rank of the first answering chunk (1 if always first, 1/2 if always second)."""
    return np.mean(1.0 / ranks, axis=-1)


def pack(order, n_tokens, budget):  # [n_chunk], [n_chunk], int -> [n_chunk] bool
    """Whole chunks in rank order until the next one would overflow the budget; the rest is cut."""
    total = np.cumsum(n_tokens[order])  # [n_chunk]
    packed = np.zeros(order.shape, dtype=bool)
    packed[order[: int(np.searchsorted(total, budget, side="right"))]] = True
    return packed


def pca(x, n_components=2):  # [n, d] -> [d], [d, n_components], [n_components]
    """Mean, principal axes (largest entry positive) and the share of variance each explains."""
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    axes = vt[:n_components].T  # [d, n_components]
    axes = axes * np.sign(axes[np.abs(axes).argmax(axis=0), np.arange(axes.shape[1])])
    return mean, axes, (s[:n_components] ** 2) / (s ** 2).sum()


# ---------------------------------------------------------------------------------------------
# An index over one chunking, and all the ways of scoring it


@dataclass(frozen=True)
class Index:
    chunks: Chunks
    vocab: dict
    counts: np.ndarray  # [n_chunk, n_term]
    idf: np.ndarray  # [n_term]
    tfidf: np.ndarray  # [n_chunk, n_term]
    projection: np.ndarray  # [n_term, n_rank]
    embeddings: np.ndarray  # [n_chunk, n_rank]


def build_index(documents, tokens, size, overlap, rank):  # -> Index
    """Chunk the tokenised documents and fit TF-IDF and LSA on the chunks."""
    chunks = chunk(documents, tokens, size, overlap)
    vocab = vocabulary(chunks.text)
    counts = term_counts(chunks.text, vocab)  # [n_chunk, n_term]
    idf = inverse_document_frequency(counts)
    x = tf_idf(counts, idf)  # [n_chunk, n_term]
    projection = truncated_svd(x, rank)  # [n_term, n_rank]
    return Index(chunks=chunks, vocab=vocab, counts=counts, idf=idf, tfidf=x,
                 projection=projection, embeddings=x @ projection)


def embed_queries(index, queries):  # Index, [n_query] str -> [n_query, n_term], [n_query, n_rank]
    """Queries' term counts and their LSA embeddings (folded in with the chunks' projection)."""
    counts = term_counts(queries, index.vocab)
    return counts, tf_idf(counts, index.idf) @ index.projection


def score(index, queries, grid, rng):  # Index, [n_query] str, RagGrid, Generator -> [n_method, n_query, n_chunk]
    """Every method's scores of every chunk for every query, in METHODS order."""
    counts, embedded = embed_queries(index, queries)
    dense = cosine_similarity(embedded, index.embeddings)
    lexical = bm25(counts, index.counts, grid.bm25_k1, grid.bm25_b)
    by_method = {
        "random": rng.random(dense.shape),
        "tf-idf": cosine_similarity(tf_idf(counts, index.idf), index.tfidf),
        "lsa": dense,
        "bm25": lexical,
        "hybrid": hybrid(dense, lexical, grid.hybrid_weight),
    }
    return np.stack([by_method[m] for m in METHODS])


# ---------------------------------------------------------------------------------------------
# The grid's results


@dataclass(frozen=True)
class RetrievalView:
    """One chunking in detail: the chunks, every method's scores, and the 2-D projection."""

    chunk_size: int
    overlap: int
    chunk_doc: np.ndarray  # [n_chunk] index into the documents
    chunk_text: tuple[str, ...]  # [n_chunk]
    chunk_tokens: np.ndarray  # [n_chunk]
    relevant: np.ndarray  # [n_query, n_chunk] bool
    scores: np.ndarray  # [n_method, n_query, n_chunk]
    order: np.ndarray  # [n_method, n_query, n_chunk] chunks from best to worst
    ranks: np.ndarray  # [n_method, n_query] first relevant rank
    packed: np.ndarray  # [n_method, n_query, n_budget, n_chunk] bool: fits the budget
    chunk_xy: np.ndarray  # [n_chunk, 2] PCA of the unit-length LSA embeddings
    query_xy: np.ndarray  # [n_query, 2]
    explained: np.ndarray  # [2] share of the chunks' variance on each axis
    rank: int  # the LSA rank used (at most the number of chunks)
    best_method: str  # the method that finds most answers within the headline budget here


@dataclass(frozen=True)
class RetrievalResults:
    documents: tuple[str, ...]  # [n_doc]
    document_tokens: np.ndarray  # [n_doc]
    questions: tuple[str, ...]  # [n_query]
    question_source: tuple[str, ...]  # [n_query]
    passages: tuple[str, ...]  # [n_query]
    methods: tuple[str, ...]  # [n_method]
    chunk_sizes: np.ndarray  # [n_size]
    overlaps: np.ndarray  # [n_overlap]
    ks: np.ndarray  # [n_k]
    budgets: np.ndarray  # [n_budget]
    n_chunks: np.ndarray  # [n_size, n_overlap]
    ranks: np.ndarray  # [n_method, n_size, n_overlap, n_query] first relevant rank
    hit_rate: np.ndarray  # [n_method, n_size, n_overlap, n_k]
    mrr: np.ndarray  # [n_method, n_size, n_overlap]
    found_within: np.ndarray  # [n_method, n_size, n_overlap, n_budget]
    headline_budget: int
    best: tuple[str, int, int]  # (method, chunk size, overlap) best within the headline budget
    view: RetrievalView
    settings: dict  # the grid's scalar settings, for the prose


def evaluate(documents, tokens, questions, grid, size, overlap, rng):  # -> Index, scores, relevant, ranks
    """Score every method on one chunking against the labelled questions."""
    index = build_index(documents, tokens, size, overlap, grid.svd_rank)
    scores = score(index, [q.text for q in questions], grid, rng)  # [n_method, n_query, n_chunk]
    relevant = relevance(index.chunks, questions, [d.name for d in documents])
    ranks = np.stack([first_relevant_rank(s, relevant) for s in scores])  # [n_method, n_query]
    return index, scores, relevant, ranks


def packing(scores, n_tokens, budgets):  # [n_method, n_query, n_chunk], [n_chunk], [n_budget] -> [n_method, n_query, n_budget, n_chunk]
    """Which chunks each method packs into each budget, for each query."""
    order = ranking(scores.reshape(-1, scores.shape[-1]))  # [n_method * n_query, n_chunk]
    packed = np.stack([[pack(o, n_tokens, b) for b in budgets] for o in order])
    return packed.reshape(scores.shape[:2] + packed.shape[1:])


def found(packed, relevant):  # [..., n_query, n_budget, n_chunk], [n_query, n_chunk] -> [..., n_budget]
    """Share of questions with an answering chunk among the packed ones, per budget."""
    return (packed & relevant[:, None, :]).any(axis=-1).mean(axis=-2)


def view(index, scores, relevant, ranks, queries, grid):  # -> RetrievalView
    """The detailed view of one evaluated chunking."""
    _, embedded = embed_queries(index, queries)
    unit = index.embeddings / np.maximum(np.linalg.norm(index.embeddings, axis=-1, keepdims=True), 1e-12)
    q_unit = embedded / np.maximum(np.linalg.norm(embedded, axis=-1, keepdims=True), 1e-12)
    mean, axes, explained = pca(unit)
    packed = packing(scores, index.chunks.n_tokens, grid.budgets)
    headline = found(packed, relevant)[:, list(grid.budgets).index(grid.headline_budget)]  # [n_method]
    mrr = mean_reciprocal_rank(ranks)  # [n_method]
    m = max((m for m, name in enumerate(METHODS) if name != "random"),
            key=lambda m: (headline[m], mrr[m], -m))
    return RetrievalView(
        chunk_size=grid.view_chunk_size, overlap=grid.view_overlap, chunk_doc=index.chunks.doc,
        chunk_text=index.chunks.text, chunk_tokens=index.chunks.n_tokens, relevant=relevant,
        scores=scores, order=np.stack([ranking(s) for s in scores]), ranks=ranks, packed=packed, chunk_xy=(unit - mean) @ axes,
        query_xy=(q_unit - mean) @ axes, explained=explained,
        rank=int(index.projection.shape[1]), best_method=METHODS[m],
    )


def simulate(grid: RagGrid, documents, questions, enc) -> RetrievalResults:
    """Evaluate every method over every chunk size x overlap, chunking by enc's tokens; detail
    the grid's view chunking."""
    rng = np.random.default_rng(grid.seed)
    tokens = tokenize(documents, enc)
    queries = [q.text for q in questions]
    sizes, overlaps = np.array(grid.chunk_sizes), np.array(grid.overlaps)
    shape = (len(METHODS), len(sizes), len(overlaps))
    ranks = np.zeros(shape + (len(questions),), dtype=int)
    found_share = np.zeros(shape + (len(grid.budgets),))
    n_chunks = np.zeros(shape[1:], dtype=int)
    for i, size in enumerate(sizes):
        for j, overlap in enumerate(overlaps):
            index, scores, relevant, r = evaluate(documents, tokens, questions, grid, size, overlap, rng)
            n_chunks[i, j] = len(index.chunks.text)
            ranks[:, i, j] = r
            found_share[:, i, j] = found(packing(scores, index.chunks.n_tokens, grid.budgets), relevant)
            if (size, overlap) == (grid.view_chunk_size, grid.view_overlap):
                detail = view(index, scores, relevant, r, queries, grid)
    hits = np.stack([hit_rate(ranks, k) for k in grid.ks], axis=-1)  # [n_method, n_size, n_overlap, n_k]
    mrr = mean_reciprocal_rank(ranks)  # [n_method, n_size, n_overlap]
    headline = found_share[..., list(grid.budgets).index(grid.headline_budget)]
    m, i, j = best_setting(headline, mrr, sizes)
    return RetrievalResults(
        documents=tuple(d.name for d in documents),
        document_tokens=np.array([len(ids) for ids, _ in tokens]),
        questions=tuple(queries), question_source=tuple(q.source for q in questions),
        passages=tuple(q.passage for q in questions), methods=METHODS, chunk_sizes=sizes,
        overlaps=overlaps, ks=np.array(grid.ks), budgets=np.array(grid.budgets),
        n_chunks=n_chunks, ranks=ranks, hit_rate=hits, mrr=mrr, found_within=found_share,
        headline_budget=grid.headline_budget, best=(METHODS[m], int(sizes[i]), int(overlaps[j])),
        view=detail,
        settings={"svd_rank": grid.svd_rank, "bm25_k1": grid.bm25_k1, "bm25_b": grid.bm25_b,
                  "hybrid_weight": grid.hybrid_weight, "seed": grid.seed},
    )


def best_setting(headline, mrr, sizes):  # [n_method, n_size, n_overlap] x2, [n_size] -> (m, i, j)
    """The setting (random ranking aside) that finds most answers within the budget; ties go
    to the higher MRR, then to smaller chunks and less overlap."""
    return max(((m, i, j) for m in range(len(METHODS)) if METHODS[m] != "random"
                for i in range(headline.shape[1]) for j in range(headline.shape[2])),
               key=lambda mij: (headline[mij], mrr[mij], -sizes[mij[1]], -mij[2], -mij[0]))
