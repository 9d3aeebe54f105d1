"""The attention chapter's results: weights recomputed by hand from the parameters, the mask's
zeros, head scores on hand-worked cases, and FLOPs counted on the numpy attention itself."""

from __future__ import annotations

import math

import numpy as np
import pytest

from generator.grids import AttentionGrid
from generator.sims import attention as a
from generator.sims import gpt, probes
from generator.sims.attention_cost import attention_flops
from generator.sims.family import WithFamily, model_configs
from generator.sims.stories import END, World
from generator.sims.train import probe_tokens
from generator.validation import GridError
from tests.helpers import TINY_FAMILY, RecordingMemo, family_grids

FAMILY = TINY_FAMILY
GRID = AttentionGrid(prompt="Mia was a kind girl who lived near the park . one day , Mia went",
                     n_layer=2, n_head=2, scored_stories=6, seq_lengths=(8, 16, 64, 1000))


@pytest.fixture(scope="module")
def memo(shared_memo):
    return RecordingMemo(shared_memo)


@pytest.fixture(scope="module")
def res(memo):
    return a.simulate(WithFamily(GRID, FAMILY), memo)


@pytest.fixture(scope="module")
def calls(memo, res):
    return memo.calls  # (function name, config, result)


@pytest.fixture(scope="module")
def chosen(calls):
    return next(m for _, cfg, m in calls if (cfg.n_layer, cfg.n_head) == (2, 2))


def test_the_family_is_read_through_the_memo_with_the_pretraining_configs(calls):
    assert [name for name, _, _ in calls] == ["train_model"] * 4
    assert [cfg for _, cfg, _ in calls] == model_configs(FAMILY)


def test_weight_rows_sum_to_one_and_the_mask_zeroes_every_later_key(res):
    n_seq = len(res.tokens)
    assert res.weights.shape == res.scores.shape == res.unmasked.shape == (2, 2, n_seq, n_seq)
    assert np.allclose(res.weights.sum(axis=-1), 1, atol=1e-6)
    assert np.allclose(res.unmasked.sum(axis=-1), 1, atol=1e-12)
    later = np.triu(np.ones((n_seq, n_seq), dtype=bool), k=1)
    assert (res.weights[..., later] == 0).all()
    assert (res.weights[..., ~later] > 0).all()
    assert (res.unmasked[..., later] > 0).all()


def test_first_layer_weights_recomputed_by_hand_from_the_parameters(chosen, res):
    p = chosen.params
    index = {w: i for i, w in enumerate(chosen.vocab)}
    ids = [index[w] for w in res.tokens]
    x = p["wte"][ids].astype(np.float64) + p["wpe"][: len(ids)]  # [n_seq, n_embd]
    block = p["blocks"][0]
    mean = x.mean(axis=1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=1, keepdims=True)
    ln = (x - mean) / np.sqrt(var + 1e-5) * block["ln_1"]["g"] + block["ln_1"]["b"]
    qkv = ln @ block["attn"]["c_attn"]["w"] + block["attn"]["c_attn"]["b"]  # [n_seq, 3 n_embd]
    n_embd, d_head = 16, 8
    for head in range(2):
        cols = slice(head * d_head, (head + 1) * d_head)
        q, k = qkv[:, :n_embd][:, cols], qkv[:, n_embd:2 * n_embd][:, cols]
        for i in range(len(ids)):
            s = [float(q[i] @ k[j]) / math.sqrt(d_head) for j in range(len(ids))]
            assert np.allclose(res.scores[0, head, i], s, rtol=1e-4, atol=1e-5)
            e = [math.exp(v - max(s[: i + 1])) for v in s[: i + 1]]
            assert np.allclose(res.weights[0, head, i, : i + 1], [v / sum(e) for v in e], rtol=1e-4, atol=1e-6)
            e = [math.exp(v - max(s)) for v in s]
            assert np.allclose(res.unmasked[0, head, i], [v / sum(e) for v in e], rtol=1e-9)


def test_every_layer_equals_the_models_own_forward_pass(chosen, res):
    index = {w: i for i, w in enumerate(chosen.vocab)}
    trace = gpt.gpt(np.array([[index[w] for w in res.tokens]]), chosen.params, 2)
    for layer, b in enumerate(trace.blocks):
        assert np.array_equal(res.weights[layer], b.weights[0])
        assert np.array_equal(res.scores[layer], b.scores[0])


def test_prompt_starts_after_end_and_is_checked_against_the_grammar(res):
    assert res.tokens == (END, *GRID.prompt.split())
    with pytest.raises(GridError, match="grids.attention.prompt"):
        family_grids(FAMILY, attention=AttentionGrid(prompt="Mia was a kind boy", n_layer=2, n_head=2))
    with pytest.raises(GridError, match="grids.attention.n_layer"):
        family_grids(FAMILY, attention=AttentionGrid(n_layer=4, n_head=2))
    with pytest.raises(GridError, match="31"):
        AttentionGrid(prompt=" ".join(["Mia"] * 32))


# ---------------------------------------------------------------------------------------------
# Head scores


def test_uniform_attention_scores_match_closed_forms(res):
    h = res.heads
    n_ctx = FAMILY.n_ctx
    assert h.uniform["previous_token"] == pytest.approx(np.mean([1 / (i + 1) for i in range(1, n_ctx)]))
    assert h.uniform["first_token"] == pytest.approx(np.mean([1 / (i + 1) for i in range(1, n_ctx)]))
    assert h.uniform["local"] == pytest.approx(np.mean([4 / (i + 1) for i in range(4, n_ctx)]))
    assert h.uniform["entropy"] == pytest.approx(np.mean([math.log2(i + 1) for i in range(n_ctx)]))
    half = h.probe_half
    assert h.uniform["repeated_tokens"] == pytest.approx(np.mean([1 / (q + 1) for q in range(1 + half, 1 + 2 * half)]))
    ids = a.scored_windows(GRID.scored_stories, FAMILY)
    shares = []  # uniform attention's weight on the keys after every earlier occurrence
    for row in ids.tolist():
        for i, token in enumerate(row):
            keys = {j + 1 for j in range(i - 1) if row[j] == token}
            if keys:
                shares.append(len(keys) / (i + 1))
    assert h.n_induction_queries == len(shares)
    assert h.uniform["induction"] == pytest.approx(np.mean(shares))


def test_probe_is_end_then_random_sounds_twice_as_long_as_the_longest_song(res, chosen):
    half = res.heads.probe_half
    assert half == min(World().song_lengths[1], (FAMILY.n_ctx - 1) // 2) == 15  # the tiny context's limit
    assert probe_tokens(chosen.vocab, 64)[1] == World().song_lengths[1] == 16


def probe_weights(model, half, pooled=True):  # -> [n_layer, n_windows, n_head, 1 + 2 half, 1 + 2 half], ids
    n_windows = len(a.scored_windows(GRID.scored_stories, FAMILY))
    rng = np.random.default_rng([FAMILY.seed, a.PROBE_STREAM])
    pool = [model.vocab.index(x) for x in World().sounds]
    ids = probes.repeated_tokens(len(model.vocab), half, n_windows, model.vocab.index(END), rng, pool)
    if not pooled:  # the second probe, drawn next, from the whole vocabulary
        ids = probes.repeated_tokens(len(model.vocab), half, n_windows, model.vocab.index(END), rng)
    blocks = gpt.gpt(ids, model.params, model.config.n_head).blocks
    return np.stack([b.weights for b in blocks]).astype(np.float64), ids


def test_head_scores_cover_every_head_of_every_model_and_match_a_recount(res, chosen):
    h = res.heads
    assert list(zip(h.model_layers.tolist(), h.model_heads.tolist(), h.layer.tolist(), h.head.tolist())) == [
        (1, 1, 1, 1), (1, 2, 1, 1), (1, 2, 1, 2), (2, 1, 1, 1), (2, 1, 2, 1),
        (2, 2, 1, 1), (2, 2, 1, 2), (2, 2, 2, 1), (2, 2, 2, 2)]
    ids = a.scored_windows(GRID.scored_stories, FAMILY)
    w = gpt.gpt(ids, chosen.params, 2).blocks[1].weights.astype(np.float64)[:, 1]  # layer 2, head 2
    n_seq = ids.shape[1]
    prev = [w[b, i, i - 1] for b in range(len(ids)) for i in range(1, n_seq)]
    assert h.previous_token[-1] == pytest.approx(np.mean(prev), rel=1e-9)
    first = [w[b, i, 0] for b in range(len(ids)) for i in range(1, n_seq)]
    assert h.first_token[-1] == pytest.approx(np.mean(first), rel=1e-9)
    local = [w[b, i, i - 3:i + 1].sum() for b in range(len(ids)) for i in range(4, n_seq)]
    assert h.local[-1] == pytest.approx(np.mean(local), rel=1e-9)
    entropy = [-sum(x * math.log2(x) for x in w[b, i, :i + 1]) for b in range(len(ids)) for i in range(n_seq)]
    assert h.entropy[-1] == pytest.approx(np.mean(entropy), rel=1e-6)
    induction = []
    for b, row in enumerate(ids.tolist()):
        for i in range(len(row)):
            keys = {j + 1 for j in range(i - 1) if row[j] == row[i]}
            if keys:
                induction.append(sum(w[b, i, k] for k in keys))
    assert h.induction[-1] == pytest.approx(np.mean(induction), rel=1e-9)


def test_repeated_tokens_probe_recounted_on_every_model(res, calls):
    h = res.heads
    half = h.probe_half
    models = [m for _, _, m in calls]
    for index, model in enumerate(models):
        weights, ids = probe_weights(model, half)
        assert (ids[:, 0] == model.vocab.index(END)).all() and (ids[:, 1:] != model.vocab.index(END)).all()
        assert (ids[:, 1:1 + half] == ids[:, 1 + half:]).all()
        rows = np.flatnonzero((h.model_layers == model.config.n_layer) & (h.model_heads == model.config.n_head))
        for row in rows:
            w = weights[h.layer[row] - 1, :, h.head[row] - 1]  # [n_windows, n_seq, n_seq]
            on_next = [w[b, q, q - half + 1] for b in range(len(ids)) for q in range(1 + half, 1 + 2 * half)]
            assert h.repeated_tokens[row] == pytest.approx(np.mean(on_next), rel=1e-9), (index, row)
            on_previous = [w[b, q, q - 1] for b in range(len(ids)) for q in range(1, 1 + half)]  # first copy
            assert h.previous_probe[row] == pytest.approx(np.mean(on_previous), rel=1e-9), (index, row)
        assert set(ids[:, 1:].ravel()) <= {model.vocab.index(x) for x in World().sounds}
        weights, ids = probe_weights(model, half, pooled=False)
        assert not set(ids[:, 1:].ravel()) <= {model.vocab.index(x) for x in World().sounds}
        for row in rows:
            w = weights[h.layer[row] - 1, :, h.head[row] - 1]
            on_next = [w[b, q, q - half + 1] for b in range(len(ids)) for q in range(1 + half, 1 + 2 * half)]
            assert h.repeated_any[row] == pytest.approx(np.mean(on_next), rel=1e-9), (index, row)


def test_every_heads_label_follows_its_scores(res):
    h = res.heads
    assert len(h.labels) == len(h.layer)
    assert h.labels == tuple(probes.label(p, r, f, lo) for p, r, f, lo in zip(
        h.previous_probe, h.repeated_tokens, h.first_token, h.local))
    assert set(h.labels) <= set(probes.LABELS)


def test_future_share_hand_worked(res):
    uniform = np.full((3, 3), 1 / 3)
    assert a.future_share(uniform) == pytest.approx((2 / 3 + 1 / 3) / 2)
    assert res.future_share.shape == (2, 2)
    later = np.triu(np.ones(res.unmasked.shape[-2:], dtype=bool), k=1)
    assert res.future_share[1, 0] == pytest.approx(np.mean([res.unmasked[1, 0, i, later[i]].sum()
                                                            for i in range(len(res.tokens) - 1)]))


# ---------------------------------------------------------------------------------------------
# Cost


class Counting(np.ndarray):
    """An array that counts the FLOPs of every matrix product it takes part in."""

    flops = 0

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        plain = [np.asarray(x) for x in inputs]
        if ufunc is np.matmul:
            x, y = plain
            batch = int(np.prod(np.broadcast_shapes(x.shape[:-2], y.shape[:-2])))
            Counting.flops += 2 * batch * x.shape[-2] * x.shape[-1] * y.shape[-1]  # a multiply and an add per term
        out = getattr(ufunc, method)(*plain, **kwargs)
        return out.view(Counting) if isinstance(out, np.ndarray) else out


@pytest.mark.parametrize("n_seq,d_head", [(1, 1), (3, 2), (7, 8), (24, 8), (50, 64)])
def test_flops_formula_equals_the_multiply_adds_of_the_numpy_attention(n_seq, d_head):
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((n_seq, d_head)).view(Counting) for _ in range(3))
    Counting.flops = 0
    gpt.attention(q, k, v, gpt.causal_mask(n_seq, np.float64))
    assert Counting.flops == attention_flops(n_seq, d_head) == 4 * n_seq**2 * d_head


def test_cost_per_layer_and_doubling(res):
    c = res.cost
    n = np.array(GRID.seq_lengths)
    assert c.flops_model.tolist() == (4 * n**2 * FAMILY.n_embd(2)).tolist()
    assert c.flops_reference.tolist() == (4 * n**2 * 768).tolist()
    assert c.doubling_ratio == 4.0
