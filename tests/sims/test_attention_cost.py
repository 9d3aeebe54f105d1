"""Attention cost: numpy attention against a loop, the counts, and the timing harness."""

from __future__ import annotations

import numpy as np

from generator.sims import attention_cost as ac


def test_attention_equals_a_loop_over_queries():
    rng = np.random.default_rng(1)
    q, k, v = rng.standard_normal((3, 5, 4))
    out = ac.attention(q, k, v, ac.causal_mask(5, dtype=np.float64))[0]  # the GPT's own attention
    for i in range(5):
        scores = q[i] @ k[: i + 1].T / 2.0  # sqrt(d_head) = 2: only keys up to i
        w = np.exp(scores - scores.max())
        w /= w.sum()
        assert np.allclose(out[i], w @ v[: i + 1])


def test_causal_mask_hides_the_future_only():
    m = ac.causal_mask(3)
    later = np.triu(np.ones((3, 3), dtype=bool), k=1)
    assert (m[~later] == 0).all() and (m[later] <= -1e9).all()


def test_counts_hand_worked():
    assert ac.score_entries([4]).tolist() == [16]
    assert ac.causal_entries([4]).tolist() == [10]  # 1 + 2 + 3 + 4
    assert ac.score_flops([4], 64).tolist() == [2 * 16 * 64]
    assert ac.attention_flops([4], 64).tolist() == [4 * 16 * 64]
    doubled = ac.attention_flops([1024, 2048], 64)
    assert doubled[1] == 4 * doubled[0]


def test_timings_in_process():
    here = ac.attention_seconds([8, 16], 8, seed=0, rounds=1)
    assert len(here) == 2 and all(0 < t < 1 for t in here)
