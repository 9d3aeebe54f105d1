"""What sequence length costs: causal self-attention's n x n score matrix, counted and timed.

Counted exactly: a head scores every query against every key, n_seq^2 entries, of which a causal
model uses n_seq (n_seq + 1) / 2; computing the scores Q K^T takes 2 n_seq^2 d_head floating-point
operations (a multiply and an add per term) and weighting the values W V another 2 n_seq^2 d_head,
per head and per layer. Measured: the wall-clock time of one head's attention in numpy (float32,
random inputs from a seed), on the machine that builds the site, in a fresh single-threaded
process so that BLAS's thread pool and other work on the machine distort it less. The times are
real measurements, not a model: they differ from machine to machine and run to run. Not
simulated: the projections, the MLP, batching, and the memory-saving kernels (FlashAttention)
that compute the same n_seq^2 scores without storing them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from generator.sims.gpt import attention, causal_mask


def score_entries(n_seq):  # [n] -> [n]
    """Entries of the score matrix: every query against every key."""
    return np.asarray(n_seq, dtype=np.int64) ** 2


def causal_entries(n_seq):  # [n] -> [n]
    """Entries a causal model uses: the diagonal and below."""
    n = np.asarray(n_seq, dtype=np.int64)
    return n * (n + 1) // 2


def score_flops(n_seq, d_head):  # [n], int -> [n]
    """FLOPs of Q K^T for one head: n_seq^2 dot products of length d_head, 2 FLOPs per term."""
    return 2 * score_entries(n_seq) * d_head


def attention_flops(n_seq, d_head):  # [n], int -> [n]
    """FLOPs of Q K^T and of W V for one head in one layer (softmax's O(n^2) left out)."""
    return 2 * score_flops(n_seq, d_head)


def seconds_per_call(fn, min_seconds=2e-3):  # fn, float -> float
    """Average time of fn() over enough back-to-back calls to last at least min_seconds."""
    reps = 1
    while True:
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return elapsed / reps
        reps *= 2


def attention_seconds(lengths, d_head, seed, rounds=5):  # [n_t], int, int, int -> [n_t]
    """Fastest of `rounds` timings of attention() at each length, taken round-robin so that a
    burst of other work on the machine slows one round of every length, not one length."""
    rng = np.random.default_rng(seed)
    inputs = []
    for n in lengths:
        q, k, v = rng.standard_normal((3, n, d_head), dtype=np.float32)  # 3 x [n_seq, d_head]
        inputs.append((q, k, v, causal_mask(n)))
    best = [np.inf] * len(lengths)
    for _ in range(rounds):
        for i, args in enumerate(inputs):
            best[i] = min(best[i], seconds_per_call(lambda: attention(*args)))
    return best


# ---------------------------------------------------------------------------------------------
# The chapter's results


@dataclass(frozen=True)
class Timings:
    """Seconds measured at each length (by generator.measure, outside the simulation)."""

    lengths: tuple[int, ...]
    seconds: tuple[float, ...]
    measured_on: str  # the machine, its numpy and BLAS, the date


@dataclass(frozen=True)
class AttentionCost:
    d_head: int
    n_head: int
    n_layer: int
    seq_lengths: np.ndarray  # [n_n]
    entries: np.ndarray  # [n_n] n_seq^2
    causal_entries: np.ndarray  # [n_n]
    score_flops: np.ndarray  # [n_n] per head per layer
    attention_flops: np.ndarray  # [n_n] per head per layer
    timed_lengths: np.ndarray  # [n_t]
    seconds: np.ndarray  # [n_t] measured, one head, one thread
    measured_on: str


def attention_cost(seq_lengths, d_head, n_head, n_layer, timings: Timings):  # -> AttentionCost
    """Count every length's cost, beside the measured timings."""
    lengths = np.asarray(seq_lengths, dtype=np.int64)  # [n_n]
    return AttentionCost(
        d_head=d_head, n_head=n_head, n_layer=n_layer, seq_lengths=lengths,
        entries=score_entries(lengths), causal_entries=causal_entries(lengths),
        score_flops=score_flops(lengths, d_head), attention_flops=attention_flops(lengths, d_head),
        timed_lengths=np.array(timings.lengths, dtype=np.int64),
        seconds=np.array(timings.seconds, dtype=np.float64),
        measured_on=timings.measured_on,
    )
