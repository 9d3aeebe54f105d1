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
from generator.sims.family import WithFamily, load_models
from generator.sims.gpt import next_token_logits
from generator.sims.stories import World, next_token_probs
from tests.helpers import TINY_FAMILY

# The default illustrative logits; the trained model's section reads the tiny family.
GRID = SamplingGrid(model_prompt="once upon a time , there was", model_tokens=5,
                    model_temperatures=(0.5, 1.0, 2.0), model_top_p=(0.5, 1.0))
LOGITS = np.array([logit for _, logit in GRID.candidates])



@pytest.fixture(scope="module")
def results(shared_memo):
    return s.simulate(WithFamily(GRID, TINY_FAMILY), shared_memo)


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

def test_every_temperature_matches_the_formula_and_sums_to_one(results):
    for t, p in zip(results.temperatures, results.probs):
        assert np.all(np.isfinite(p))
        assert p.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(p, reference_softmax(LOGITS, t), rtol=1e-9, atol=1e-300)


def test_entropy_matches_log_partition_form_at_every_temperature(results):
    # H = log2(Z) - sum_i p_i (z_i - max z)/T / ln 2, with Z = sum_j exp((z_j - max z)/T).
    for t, p, h in zip(results.temperatures, results.probs, results.entropy):
        shifted = (LOGITS - LOGITS.max()) / t
        log_z = math.log(math.fsum(math.exp(x) for x in shifted))
        expected = (log_z - math.fsum(pi * x for pi, x in zip(p, shifted))) / math.log(2)
        assert h == pytest.approx(expected, abs=1e-9)
        assert 0.0 <= h <= math.log2(len(LOGITS)) + 1e-12


def test_entropy_rises_with_temperature(results):
    assert np.all(np.diff(results.entropy) > -1e-12)


def test_cold_limit_is_greedy_and_stable_with_logits_fifty_apart(results):
    p = s.softmax_with_temperature(np.array([0.0, 50.0, -50.0]), 0.01)
    assert np.all(np.isfinite(p))
    assert p.tolist() == [0.0, 1.0, 0.0]  # exp(-5000) underflows to exactly 0, never NaN
    close = s.softmax_with_temperature(np.array([50.0, 49.0]), 0.01)
    assert close[1] == pytest.approx(math.exp(-100), rel=1e-9)
    assert results.probs[0].argmax() == LOGITS.argmax()
    assert results.probs[0].max() == pytest.approx(1.0, abs=1e-12)


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
def test_top_k_grid_matches_brute_force(results, k):
    p = results.base_probs
    row = list(results.top_k.values).index(k)
    keep = results.top_k.keep[row]
    kept = set(np.flatnonzero(keep))
    assert len(kept) == k
    # brute force over all k-subsets is too big for k ~ 8 of 16; compare masses on a reduced check:
    assert sum(p[i] for i in kept) == pytest.approx(np.sort(p)[::-1][:k].sum())
    assert min(p[i] for i in kept) >= max([p[i] for i in range(len(p)) if i not in kept], default=0)
    np.testing.assert_allclose(results.top_k.probs[row], np.where(keep, p, 0) / p[keep].sum())


@pytest.mark.parametrize("top_p", GRID.top_p)
def test_top_p_grid_matches_definition(results, top_p):
    p = results.base_probs
    row = list(results.top_p.values).index(top_p)
    kept = np.flatnonzero(results.top_p.keep[row])
    ranked = np.argsort(-p, kind="stable")
    m = len(kept)
    assert set(kept) == set(ranked[:m])                      # a most-probable prefix
    assert p[kept].sum() >= top_p - 1e-12 or m == len(p)      # reaches top_p
    assert m == 1 or p[ranked[: m - 1]].sum() < top_p         # and is the smallest such prefix
    np.testing.assert_allclose(results.top_p.probs[row].sum(), 1.0)


@pytest.mark.parametrize("min_p", GRID.min_p)
def test_min_p_grid_matches_definition(results, min_p):
    p = results.base_probs
    row = list(results.min_p.values).index(min_p)
    expected = [pi >= min_p * p.max() for pi in p]
    assert results.min_p.keep[row].tolist() == expected


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

def test_counts_add_up_and_are_reproducible(results, shared_memo):
    assert results.counts.sum(axis=1).tolist() == list(GRID.sample_sizes)
    again = s.simulate(WithFamily(GRID, TINY_FAMILY), shared_memo)
    assert np.array_equal(again.counts, results.counts)


def test_large_sample_frequencies_are_within_five_sigma_of_exact(results):
    n = results.sample_sizes[-1]
    freq = results.counts[-1] / n
    p = results.base_probs
    sigma = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= 5 * sigma + 1e-12)


def test_counts_follow_the_documented_generator(results):
    rng = np.random.default_rng(GRID.seed)
    for n, counts in zip(GRID.sample_sizes, results.counts):
        draws = rng.choice(len(results.base_probs), size=n, p=results.base_probs)
        assert np.bincount(draws, minlength=len(counts)).tolist() == counts.tolist()


# ---- the trained model's next token ----------------------------------------------------------

def test_model_section_is_the_best_models_logits_through_the_sampling_functions(results, shared_memo):
    c = results.model
    best = min(load_models(TINY_FAMILY, shared_memo), key=lambda m: m.heldout_loss[-1])
    assert (c.n_layer, c.n_head) == (best.config.n_layer, best.config.n_head)
    ids = np.array([[best.vocab.index(w) for w in ["\n"] + GRID.model_prompt.split()]])
    logits = next_token_logits(ids, best.params, best.config.n_head)[0].astype(np.float64)
    order = np.argsort(-logits, kind="stable")[:5]
    assert c.tokens == tuple(best.vocab[i] for i in order)
    np.testing.assert_allclose(c.logits, logits[order])
    for i, temperature in enumerate(GRID.model_temperatures):
        for j, top_p in enumerate(GRID.model_top_p):
            full = s.softmax_with_temperature(logits, temperature)
            q = s.renormalise(full, s.top_p_keep(full, top_p))
            np.testing.assert_allclose(c.probs[i, j], q[order])
            assert c.probs[i, j].sum() + c.other[i, j] == pytest.approx(1.0)
            assert c.entropy[i, j] == pytest.approx(s.entropy_bits(q))
    grammar = next_token_probs(World(), GRID.model_prompt.split())  # {"a": 5/6, "an": 1/6}
    np.testing.assert_allclose(c.grammar_probs, [grammar.get(t, 0.0) for t in c.tokens])


def test_model_facts_are_read_off_the_model_section(results):
    assert results.facts.model.top_token == results.model.tokens[0]
