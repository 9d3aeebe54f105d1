"""The sampling simulation against closed forms, brute force and hand-worked cases."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from generator.grids import SamplingGrid
from generator.sims import sampling as s

GRID = SamplingGrid()
RESULTS = s.simulate(GRID)
LOGITS = np.array([logit for _, logit in GRID.candidates])

logit_vectors = arrays(np.float64, st.integers(2, 10), elements=st.floats(-30, 30))
temperatures = st.floats(0.01, 10.0)


def reference_softmax(z, t):
    """Softmax straight from the formula, in exact rational-free long arithmetic via math.fsum."""
    m = max(z)
    e = [math.exp((zi - m) / t) for zi in z]
    total = math.fsum(e)
    return np.array([x / total for x in e])


# ---- hand-worked cases -----------------------------------------------------------------------

def test_softmax_hand_worked():
    p = s.softmax_with_temperature(np.array([0.0, math.log(3.0)]), 1.0)
    np.testing.assert_allclose(p, [0.25, 0.75], rtol=1e-12)


def test_temperature_two_halves_the_logits():
    # exp(z/2): logits 0 and ln 9 at T=2 behave like 0 and ln 3 at T=1.
    p = s.softmax_with_temperature(np.array([0.0, math.log(9.0)]), 2.0)
    np.testing.assert_allclose(p, [0.25, 0.75], rtol=1e-12)


def test_entropy_hand_worked():
    assert s.entropy_bits(np.array([0.5, 0.5])) == pytest.approx(1.0)
    assert s.entropy_bits(np.array([0.25] * 4)) == pytest.approx(2.0)
    assert s.entropy_bits(np.array([1.0, 0.0, 0.0])) == 0.0


def test_top_p_hand_worked():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    assert s.top_p_keep(p, 0.5).tolist() == [True, False, False, False]
    assert s.top_p_keep(p, 0.6).tolist() == [True, True, False, False]
    assert s.top_p_keep(p, 0.81).tolist() == [True, True, True, False]


def test_min_p_hand_worked():
    p = np.array([0.5, 0.3, 0.15, 0.05])
    assert s.min_p_keep(p, 0.3).tolist() == [True, True, True, False]  # 0.15 >= 0.3 * 0.5


# ---- closed forms at every grid point ----------------------------------------------------------

def test_every_temperature_matches_the_formula_and_sums_to_one():
    for t, p in zip(RESULTS.temperatures, RESULTS.probs):
        assert np.all(np.isfinite(p))
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(p, reference_softmax(LOGITS, t), rtol=1e-9, atol=1e-300)


def test_entropy_matches_log_partition_form_at_every_temperature():
    # H = log2(Z) - sum_i p_i (z_i - max z)/T / ln 2, with Z = sum_j exp((z_j - max z)/T).
    for t, p, h in zip(RESULTS.temperatures, RESULTS.probs, RESULTS.entropy):
        shifted = (LOGITS - LOGITS.max()) / t
        log_z = math.log(math.fsum(math.exp(x) for x in shifted))
        expected = (log_z - math.fsum(pi * x for pi, x in zip(p, shifted))) / math.log(2)
        assert h == pytest.approx(expected, abs=1e-9)
        assert 0.0 <= h <= math.log2(len(LOGITS)) + 1e-12


def test_entropy_rises_with_temperature():
    assert np.all(np.diff(RESULTS.entropy) > -1e-12)


def test_cold_limit_is_greedy_and_stable_with_logits_fifty_apart():
    p = s.softmax_with_temperature(np.array([0.0, 50.0, -50.0]), 0.01)
    assert np.all(np.isfinite(p))
    assert p.tolist() == [0.0, 1.0, 0.0]  # exp(-5000) underflows to exactly 0, never NaN
    close = s.softmax_with_temperature(np.array([50.0, 49.0]), 0.01)
    assert close[1] == pytest.approx(math.exp(-100), rel=1e-9)
    assert RESULTS.probs[0].argmax() == LOGITS.argmax()
    assert RESULTS.probs[0].max() == pytest.approx(1.0, abs=1e-12)


def test_cold_limit_splits_ties_evenly():
    p = s.softmax_with_temperature(np.array([3.0, 3.0, 1.0]), 1e-3)
    np.testing.assert_allclose(p, [0.5, 0.5, 0.0], atol=1e-12)


def test_hot_limit_approaches_uniform():
    p = s.softmax_with_temperature(LOGITS, 1e6)
    np.testing.assert_allclose(p, 1 / len(LOGITS), rtol=1e-4)


@settings(max_examples=200, deadline=None)
@given(logit_vectors, temperatures, st.floats(-1e3, 1e3))
def test_invariant_to_adding_a_constant(z, t, c):
    np.testing.assert_allclose(s.softmax_with_temperature(z + c, t),
                               s.softmax_with_temperature(z, t), rtol=1e-6, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(logit_vectors, temperatures)
def test_softmax_is_a_distribution_matching_the_formula(z, t):
    p = s.softmax_with_temperature(z, t)
    assert p.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(p, reference_softmax(z, t), rtol=1e-9, atol=1e-300)


# ---- samplers against brute force ---------------------------------------------------------------

def brute_top_k(p, k):
    """The k-subset with the largest mass (first in index order among equal masses)."""
    best = max(itertools.combinations(range(len(p)), k), key=lambda c: (sum(p[i] for i in c), [-i for i in c]))
    return set(best)


def brute_top_p(p, top_p):
    """Smallest subset reaching mass top_p; among those of that size, the most massive."""
    n = len(p)
    for size in range(1, n + 1):
        reaching = [c for c in itertools.combinations(range(n), size) if sum(p[i] for i in c) >= top_p - 1e-12]
        if reaching:
            return set(max(reaching, key=lambda c: sum(p[i] for i in c)))
    return set(range(n))


@pytest.mark.parametrize("k", GRID.top_k)
def test_top_k_grid_matches_brute_force(k):
    p = RESULTS.base_probs
    row = list(RESULTS.top_k.values).index(k)
    keep = RESULTS.top_k.keep[row]
    kept = set(np.flatnonzero(keep))
    assert len(kept) == k
    # brute force over all k-subsets is too big for k ~ 8 of 16; compare masses on a reduced check:
    assert sum(p[i] for i in kept) == pytest.approx(np.sort(p)[::-1][:k].sum())
    assert min(p[i] for i in kept) >= max([p[i] for i in range(len(p)) if i not in kept], default=0)
    np.testing.assert_allclose(RESULTS.top_k.probs[row], np.where(keep, p, 0) / p[keep].sum())


@pytest.mark.parametrize("top_p", GRID.top_p)
def test_top_p_grid_matches_definition(top_p):
    p = RESULTS.base_probs
    row = list(RESULTS.top_p.values).index(top_p)
    kept = np.flatnonzero(RESULTS.top_p.keep[row])
    ranked = np.argsort(-p, kind="stable")
    m = len(kept)
    assert set(kept) == set(ranked[:m])                      # a most-probable prefix
    assert p[kept].sum() >= top_p - 1e-12 or m == len(p)      # reaches top_p
    assert m == 1 or p[ranked[: m - 1]].sum() < top_p         # and is the smallest such prefix
    np.testing.assert_allclose(RESULTS.top_p.probs[row].sum(), 1.0)


@pytest.mark.parametrize("min_p", GRID.min_p)
def test_min_p_grid_matches_definition(min_p):
    p = RESULTS.base_probs
    row = list(RESULTS.min_p.values).index(min_p)
    expected = [pi >= min_p * p.max() for pi in p]
    assert RESULTS.min_p.keep[row].tolist() == expected


small_distributions = arrays(np.float64, st.integers(2, 8), elements=st.floats(0.01, 1.0)).map(lambda x: x / x.sum())


@settings(max_examples=150, deadline=None)
@given(small_distributions, st.integers(1, 8))
def test_top_k_equals_brute_force(p, k):
    k = min(k, len(p))
    assert set(np.flatnonzero(s.top_k_keep(p, k))) == brute_top_k(p, k) or \
        math.isclose(sum(p[i] for i in np.flatnonzero(s.top_k_keep(p, k))), sum(p[i] for i in brute_top_k(p, k)))


@settings(max_examples=150, deadline=None)
@given(small_distributions, st.floats(0.01, 1.0))
def test_top_p_equals_brute_force(p, top_p):
    kept = set(np.flatnonzero(s.top_p_keep(p, top_p)))
    brute = brute_top_p(p, top_p)
    assert len(kept) == len(brute)
    assert sum(p[i] for i in kept) == pytest.approx(sum(p[i] for i in brute))


@settings(max_examples=150, deadline=None)
@given(small_distributions, st.floats(0.0, 1.0))
def test_renormalised_survivors_keep_their_ratios(p, min_p):
    keep = s.min_p_keep(p, min_p)
    q = s.renormalise(p, keep)
    assert q.sum() == pytest.approx(1.0)
    i = int(np.argmax(p))
    np.testing.assert_allclose(q[keep] / q[i], p[keep] / p[i], rtol=1e-9)
    assert np.all(q[~keep] == 0)


# ---- repeated sampling --------------------------------------------------------------------------

def test_counts_add_up_and_are_reproducible():
    assert RESULTS.counts.sum(axis=1).tolist() == list(GRID.sample_sizes)
    again = s.simulate(GRID)
    assert np.array_equal(again.counts, RESULTS.counts)


def test_large_sample_frequencies_are_within_five_sigma_of_exact():
    n = RESULTS.sample_sizes[-1]
    freq = RESULTS.counts[-1] / n
    p = RESULTS.base_probs
    sigma = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= 5 * sigma + 1e-12)


def test_counts_follow_the_documented_generator():
    rng = np.random.default_rng(GRID.seed)
    for n, counts in zip(GRID.sample_sizes, RESULTS.counts):
        draws = rng.choice(len(RESULTS.base_probs), size=n, p=RESULTS.base_probs)
        assert np.bincount(draws, minlength=len(counts)).tolist() == counts.tolist()
