"""The KV cache against the full forward pass, its work against the products actually multiplied,
(the memory of published models is tested in test_ledger.py and test_decoding.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from generator.grids import load_grids
from generator.sims import kvcache as kv
from generator.sims.gpt import causal_mask, gpt, init_params
from generator.validation import GridError

N_VOCAB, N_CTX, N_EMBD, N_LAYER, N_HEAD = 23, 20, 16, 3, 4


def tiny_params(dtype):
    return init_params(N_VOCAB, N_CTX, N_EMBD, N_LAYER, np.random.default_rng(7), dtype)


def random_ids(n):
    return np.random.default_rng(8).integers(N_VOCAB, size=n)


# ---------------------------------------------------------------------------------------------
# Cached decoding equals the full pass


@pytest.mark.parametrize("dtype,tol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_cached_logits_equal_the_full_pass_at_every_step(dtype, tol):
    params = tiny_params(dtype)
    run = kv.greedy_decode(random_ids(5), params, N_HEAD, N_CTX)
    full = kv.uncached_logits(run.ids, params, N_HEAD)
    assert run.logits.dtype == dtype
    assert np.abs(run.logits - full).max() <= tol
    # the greedy choice is the argmax of the previous position's logits
    assert np.array_equal(run.ids[5:], full[4:-1].argmax(axis=-1))


def test_token_by_token_steps_equal_one_prefill():
    params = tiny_params(np.float64)
    ids = random_ids(12)[None]
    one_by_one = kv.empty_cache(params, N_HEAD)
    steps = np.concatenate([kv.gpt_step(ids[:, t:t + 1], params, N_HEAD, one_by_one, t) for t in range(12)], axis=1)
    at_once = kv.empty_cache(params, N_HEAD)
    prefill = kv.gpt_step(ids, params, N_HEAD, at_once, 0)
    assert np.allclose(steps, prefill, atol=1e-12)
    assert np.allclose(one_by_one.k[:, :, :, :12], at_once.k[:, :, :, :12], atol=1e-12)
    assert np.allclose(prefill, gpt(ids, params, N_HEAD).logits, atol=1e-12)


def test_the_cache_holds_the_full_pass_keys_and_values():
    params = tiny_params(np.float64)
    run = kv.greedy_decode(random_ids(3), params, N_HEAD, N_CTX)
    trace = gpt(run.ids[None], params, N_HEAD)
    for layer, block in enumerate(trace.blocks):
        assert np.allclose(run.cache.k[layer], block.k, atol=1e-12)
        assert np.allclose(run.cache.v[layer], block.v, atol=1e-12)
    assert list(run.written_at) == [1, 1, 1] + list(range(2, N_CTX - 1))


def test_causal_mask_after_is_the_full_masks_last_rows():
    assert np.array_equal(kv.causal_mask_after(2, 2), [[0, 0, 0, -1e10], [0, 0, 0, 0]])
    for n_past, n_new in [(0, 5), (3, 1), (4, 3)]:
        assert np.array_equal(kv.causal_mask_after(n_past, n_new), causal_mask(n_past + n_new)[n_past:])


# ---------------------------------------------------------------------------------------------
# Work: the formula against the products numpy actually multiplies


class Counted(np.ndarray):
    """An array that records the multiply-adds of every matrix product it takes part in."""

    madds: list[int] = []

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [x.view(np.ndarray) if isinstance(x, Counted) else x for x in inputs]
        if ufunc is np.matmul:
            a, b = plain
            Counted.madds.append(int(np.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]), dtype=np.int64))
                                 * a.shape[-2] * a.shape[-1] * b.shape[-1])
        if "out" in kwargs:
            kwargs["out"] = tuple(x.view(np.ndarray) if isinstance(x, Counted) else x for x in kwargs["out"])
        out = getattr(ufunc, method)(*plain, **kwargs)
        return out.view(Counted) if isinstance(out, np.ndarray) else out


def _view(tree):
    if isinstance(tree, dict):
        return {k: _view(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [_view(v) for v in tree]
    return tree.view(Counted)


@pytest.mark.parametrize("t", [1, 2, 7, N_CTX])
def test_work_formula_counts_the_products_multiplied(t):
    params = _view(tiny_params(np.float64))
    ids = random_ids(t)[None]
    Counted.madds = []
    gpt(ids, params, N_HEAD)
    assert sum(Counted.madds) == kv.step_madds(t, N_EMBD, N_LAYER, N_VOCAB, cached=False)
    cache = kv.empty_cache(params, N_HEAD)
    if t > 1:
        kv.gpt_step(ids[:, :t - 1], params, N_HEAD, cache, 0)
    Counted.madds = []
    kv.gpt_step(ids[:, t - 1:], params, N_HEAD, cache, t - 1)
    assert sum(Counted.madds) == kv.step_madds(t, N_EMBD, N_LAYER, N_VOCAB, cached=True)


def test_work_hand_worked():
    # n_embd 2, one layer, vocab 3, length 4: projections 12*4*4, attention 2*4*4*2, logits 4*2*3
    assert kv.step_madds(4, 2, 1, 3, cached=False) == 192 + 64 + 24
    # with the cache: one token's projections 12*4, attention over 4 keys 2*4*2, its logits 2*3
    assert kv.step_madds(4, 2, 1, 3, cached=True) == 48 + 16 + 6


def test_work_per_step_grows_linearly_with_the_cache_and_quadratically_without():
    t = np.arange(1, 200)
    cached = kv.step_madds(t, N_EMBD, N_LAYER, N_VOCAB, cached=True)
    uncached = kv.step_madds(t, N_EMBD, N_LAYER, N_VOCAB, cached=False)
    assert np.all(np.diff(cached, 2) == 0) and np.all(np.diff(cached) == 2 * N_LAYER * N_EMBD)
    assert np.all(np.diff(uncached, 3) == 0) and np.all(np.diff(uncached, 2) == 4 * N_LAYER * N_EMBD)
    assert cached[0] == uncached[0]


# ---------------------------------------------------------------------------------------------
# Memory


# ---------------------------------------------------------------------------------------------
# Timing (small, fast) and the grid


def test_step_seconds_are_positive_and_the_cache_is_faster_when_long():
    cached, uncached = kv.step_seconds(kv.TimingConfig(2, 2, 16, 20, (8, 512), seed=0, rounds=1))
    assert all(s > 0 for s in cached + uncached)
    assert uncached[1] > cached[1]


@pytest.mark.parametrize("override,field", [
    ({"fit_precisions": ["fp32", "fp12"]}, "grids.kvcache.fit_precisions[1]"),
    ({"roofline_batches": [8, 4]}, "grids.kvcache.roofline_batches[1]"),
    ({"roofline_batches": [0, 4]}, "grids.kvcache.roofline_batches[0]"),
    ({"timed_lengths": [16, 8192]}, "grids.kvcache.timed_lengths[1]"),
    ({"gpu_memories_gb": [24, 24]}, "grids.kvcache.gpu_memories_gb[1]"),
    ({"models": "/etc/models.json"}, "grids.kvcache.models"),
])
def test_bad_grid_values_name_the_field(override, field):
    with pytest.raises(GridError, match="^" + re.escape(field) + ":"):
        load_grids({"kvcache": override})


def test_a_prompt_outside_the_vocabulary_names_the_field():
    with pytest.raises(GridError, match=r"^grids.kvcache.prompt: .*'dragon'"):
        load_grids({"kvcache": {"prompt": "once upon a dragon"}})


@pytest.mark.parametrize("override,model", [({"model_layers": 3}, "(3, 4)"), ({"model_heads": 3}, "(4, 3)")])
def test_a_model_outside_the_pretraining_family_names_the_field(override, model):
    with pytest.raises(GridError, match="^grids.kvcache.model_layers, model_heads: " + re.escape(model) + " is not a model"):
        load_grids({"kvcache": override})
