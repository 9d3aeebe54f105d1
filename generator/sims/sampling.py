"""From logits to a sampled token: softmax with temperature and the samplers people use.

Simulated exactly: the softmax with temperature p_i = exp(z_i/T) / sum_j exp(z_j/T) over a
fixed candidate set, its entropy, top-k, top-p (nucleus) and min-p truncation with
renormalisation, and repeated seeded sampling. Not simulated: the model that produced the
logits (the example's logits are illustrative) and the rest of the vocabulary, which is
assumed to carry negligible probability.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.grids import SamplingGrid


def softmax(z):  # [..., n_vocab] -> [..., n_vocab]
    """Numerically stable softmax: shifting by the max changes nothing and never overflows."""
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_with_temperature(z, temperature):  # [n_vocab], float -> [n_vocab]
    """p_i = exp(z_i / T) / sum_j exp(z_j / T), for T > 0.

    Example: softmax_with_temperature(np.array([0.0, np.log(3.0)]), 1.0) -> [0.25, 0.75]
    """
    return softmax(np.asarray(z, dtype=np.float64) / temperature)


def entropy_bits(p):  # [..., n_vocab] -> [...]
    """Shannon entropy in bits, with 0 log 0 = 0."""
    logp = np.log2(np.where(p > 0, p, 1.0))
    return -(p * logp).sum(axis=-1)


def top_k_keep(p, k):  # [n_vocab], int -> [n_vocab] bool
    """Keep the k most probable tokens (ties broken by position, as a stable sort does)."""
    order = np.argsort(-p, kind="stable")
    keep = np.zeros(p.shape, dtype=bool)
    keep[order[:k]] = True
    return keep


def top_p_keep(p, top_p):  # [n_vocab], float -> [n_vocab] bool
    """Nucleus: the smallest most-probable set whose total probability reaches top_p."""
    order = np.argsort(-p, kind="stable")
    before = np.cumsum(p[order]) - p[order]  # mass of the tokens ranked above each one
    keep = np.zeros(p.shape, dtype=bool)
    keep[order[before < top_p]] = True
    return keep


def min_p_keep(p, min_p):  # [n_vocab], float -> [n_vocab] bool
    """Keep tokens whose probability is at least min_p times the most probable one's."""
    return p >= min_p * p.max()


def renormalise(p, keep):  # [n_vocab], [n_vocab] bool -> [n_vocab]
    """Zero the dropped tokens and rescale the survivors to sum to 1."""
    q = np.where(keep, p, 0.0)
    return q / q.sum()


def sample_counts(p, n, rng):  # [n_vocab], int, Generator -> [n_vocab] int
    """Draw n tokens independently from p and count how often each came up."""
    draws = rng.choice(p.shape[-1], size=n, p=p)  # [n]
    return np.bincount(draws, minlength=p.shape[-1])


# ---------------------------------------------------------------------------------------------
# The chapter's results


@dataclass(frozen=True)
class TruncationResult:
    """One sampler over its grid: which tokens survive and their renormalised probabilities."""

    values: np.ndarray  # [n_grid]   the sampler's parameter (k, p or min-p)
    keep: np.ndarray  # [n_grid, n_vocab] bool
    probs: np.ndarray  # [n_grid, n_vocab] renormalised


@dataclass(frozen=True)
class SamplingResults:
    prompt: str
    tokens: tuple[str, ...]  # [n_vocab]
    logits: np.ndarray  # [n_vocab]
    temperatures: np.ndarray  # [n_T]
    probs: np.ndarray  # [n_T, n_vocab]
    entropy: np.ndarray  # [n_T] bits
    sampler_temperature: float
    base_probs: np.ndarray  # [n_vocab]  at sampler_temperature, before truncation
    top_k: TruncationResult
    top_p: TruncationResult
    min_p: TruncationResult
    sample_sizes: np.ndarray  # [n_N]
    counts: np.ndarray  # [n_N, n_vocab]
    seed: int


def truncate(p, values, keep_fn):  # [n_vocab], [n_grid], fn -> TruncationResult
    """Apply one sampler at every value of its grid."""
    keep = np.stack([keep_fn(p, v) for v in values])  # [n_grid, n_vocab]
    probs = np.stack([renormalise(p, m) for m in keep])  # [n_grid, n_vocab]
    return TruncationResult(values=np.asarray(values), keep=keep, probs=probs)


def simulate(grid: SamplingGrid) -> SamplingResults:
    """Run every sampling quantity over the grid."""
    tokens = tuple(token for token, _ in grid.candidates)
    logits = np.array([logit for _, logit in grid.candidates], dtype=np.float64)  # [n_vocab]
    temperatures = np.array(grid.temperatures, dtype=np.float64)  # [n_T]
    probs = np.stack([softmax_with_temperature(logits, t) for t in temperatures])  # [n_T, n_vocab]
    base = softmax_with_temperature(logits, grid.sampler_temperature)  # [n_vocab]
    rng = np.random.default_rng(grid.seed)
    counts = np.stack([sample_counts(base, n, rng) for n in grid.sample_sizes])  # [n_N, n_vocab]
    return SamplingResults(
        prompt=grid.prompt,
        tokens=tokens,
        logits=logits,
        temperatures=temperatures,
        probs=probs,
        entropy=entropy_bits(probs),
        sampler_temperature=grid.sampler_temperature,
        base_probs=base,
        top_k=truncate(base, grid.top_k, top_k_keep),
        top_p=truncate(base, grid.top_p, top_p_keep),
        min_p=truncate(base, grid.min_p, min_p_keep),
        sample_sizes=np.array(grid.sample_sizes),
        counts=counts,
        seed=grid.seed,
    )
