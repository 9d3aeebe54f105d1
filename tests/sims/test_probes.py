"""Head probes on attention patterns built by hand, whose scores are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from generator.sims import probes as p
from generator.sims.gpt import init_params


def pattern(n_seq, key_of_query):  # [n_seq] key per query -> [1, 1, n_seq, n_seq]
    """Every query puts all its weight on one key."""
    w = np.zeros((1, 1, n_seq, n_seq))
    w[0, 0, np.arange(n_seq), key_of_query] = 1.0
    return w


def test_a_head_on_the_previous_token_scores_exactly_one():
    n = 6
    w = pattern(n, np.maximum(np.arange(n) - 1, 0))
    assert p.previous_token_score(w)[0] == 1.0
    assert p.first_token_score(w)[0] == pytest.approx(1 / 5)  # only query 1's previous token is key 0
    assert p.local_score(w)[0] == 1.0
    assert p.label(p.previous_token_score(w)[0], 0.0, 0.0, 1.0) == "previous-token"


def test_uniform_attention_hand_worked():
    w = p.uniform_weights(4)  # query i spreads 1 / (i + 1) over keys 0..i
    assert p.previous_token_score(w)[0] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3)
    assert p.first_token_score(w)[0] == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3)
    assert p.attention_entropy(w)[0] == pytest.approx((0 + 1 + np.log2(3) + 2) / 4)
    assert p.local_score(p.uniform_weights(6))[0] == pytest.approx((4 / 5 + 4 / 6) / 2)  # queries 4, 5


def test_induction_targets_count_every_earlier_occurrence():
    targets = p.induction_targets(np.array([[7, 8, 7, 9, 7]]))
    assert sorted(zip(*np.nonzero(targets[0]))) == [(2, 1), (4, 1), (4, 3)]
    # a token repeated at once points at the query itself: not counted
    assert not p.induction_targets(np.array([[5, 5]])).any()


def test_induction_targets_of_single_earlier_occurrences_hand_worked():
    targets = p.induction_targets(np.array([[7, 8, 9, 7], [5, 5, 6, 6], [1, 2, 1, 2]]))
    assert [tuple(map(int, t)) for t in np.argwhere(targets[0])] == [(3, 1)]
    assert not targets[1].any()  # a token right after itself: its "next" is the query itself
    assert [tuple(map(int, t)) for t in np.argwhere(targets[2])] == [(2, 1), (3, 2)]


def test_target_score_averages_the_weight_on_each_target():
    w = np.zeros((1, 2, 3, 3))  # [n_batch, n_head, n_seq, n_seq]
    w[0, 0, 1, 0], w[0, 0, 2, 1] = 0.2, 0.6
    w[0, 1, 1, 0], w[0, 1, 2, 1] = 1.0, 0.0
    assert p.target_score(w, p.previous_token_targets(3)).tolist() == pytest.approx([0.4, 0.5])


def test_a_head_that_follows_the_earlier_occurrence_scores_one_on_both_probes():
    ids = np.array([[0, 3, 4, 5, 3, 4, 5]])  # query 4 (a 3) -> key 2, 5 -> 3, 6 -> 4
    w = pattern(7, [0, 0, 0, 0, 2, 3, 4])
    assert p.induction_score(w, ids)[0] == 1.0
    assert p.repeated_tokens_score(w, 3)[0] == 1.0
    half = pattern(7, [0, 0, 0, 0, 2, 0, 0])
    assert p.repeated_tokens_score(half, 3)[0] == pytest.approx(1 / 3)
    assert p.label(0.0, 1.0, 0.0, 0.0) == "induction"


def test_labels_follow_the_stated_order_and_thresholds():
    assert p.label(0.9, p.INDUCTION_MIN, 0.9, 0.9) == "induction"
    assert p.label(p.PREVIOUS_MIN, 0.39, 0.9, 0.9) == "previous-token"
    assert p.label(0.49, 0.39, p.FIRST_MIN, 0.9) == "first-token"
    assert p.label(0.49, 0.39, 0.49, p.LOCAL_MIN) == "local"
    assert p.label(0.49, 0.39, 0.49, 0.49) == "diffuse"


def test_repeated_tokens_are_two_copies_of_distinct_tokens_after_end():
    ids = p.repeated_tokens(20, 8, 5, end_id=0, rng=np.random.default_rng(0))
    assert ids.shape == (5, 17) and np.all(ids[:, 0] == 0)
    np.testing.assert_array_equal(ids[:, 1:9], ids[:, 9:])
    assert all(len(set(row[1:9])) == 8 and 0 not in row[1:] for row in ids.tolist())
    targets = p.repeated_tokens_targets(8)
    for q, k in zip(*np.nonzero(targets)):
        assert ids[0, k - 1] == ids[0, q]  # the key follows the query's first occurrence


def test_in_context_learning_score_hand_worked():
    assert p.in_context_learning_score(np.array([3.0, 3.0, 1.0, 1.0]), early=1, late=2) == -2.0
    losses = np.r_[np.full(11, 2.0), np.zeros(39), np.full(14, 0.5)]
    assert p.in_context_learning_score(losses) == -1.5  # positions >= 50 minus positions <= 10


def test_score_heads_on_a_model_gives_one_row_per_head_and_the_uniform_baselines():
    params = init_params(30, 33, 8, 2, np.random.default_rng(0))
    stories = np.random.default_rng(1).integers(0, 30, (4, 33))
    s = p.score_heads(params, 2, stories, probe_half=16, rng=np.random.default_rng(2), end_id=0)
    assert list(s.layer) == [1, 1, 2, 2] and list(s.head) == [1, 2, 1, 2] and len(s.labels) == 4
    # at initialisation every head is close to uniform attention
    np.testing.assert_allclose(s.previous_token, s.uniform["previous_token"], atol=0.02)
    np.testing.assert_allclose(s.repeated_tokens, s.uniform["repeated_tokens"], atol=0.02)
    assert s.labels == ("diffuse",) * 4
    losses = p.loss_by_position(params, 2, stories, stories, batch=3)
    assert losses.shape == (33,) and np.all(losses > 4)  # log2(30) = 4.9 bits at initialisation
