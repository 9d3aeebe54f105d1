"""The GPT's backward pass against finite differences, and its forward pass against a plain
one-sequence, one-head-at-a-time reference written from the formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from generator.sims import gpt as g

N_VOCAB, N_CTX, N_EMBD = 11, 6, 8


def random_model(n_layer, rng, dtype=np.float64):
    """A small model whose weights are far from their initial values (so no gradient is trivially 0)."""
    params = g.init_params(N_VOCAB, N_CTX, N_EMBD, n_layer, rng, dtype)
    return g.tree_map(lambda a: (a + rng.standard_normal(a.shape) * 0.3).astype(dtype), params)


@pytest.mark.parametrize("n_layer,n_head", [(2, 2), (1, 4)])
def test_every_parameter_gradient_matches_central_differences(n_layer, n_head):
    rng = np.random.default_rng(n_layer * 10 + n_head)
    params = random_model(n_layer, rng)
    ids = rng.integers(0, N_VOCAB, (3, N_CTX))
    targets = rng.integers(0, N_VOCAB, (3, N_CTX))

    def loss():
        return g.cross_entropy(g.gpt(ids, params, n_head).logits, targets)[0]

    trace = g.gpt(ids, params, n_head)
    _, dlogits = g.cross_entropy(trace.logits, targets)
    grads = dict(g.leaves(g.gpt_backward(dlogits, trace, params)))
    named = g.leaves(params)
    assert len(named) == 2 + 12 * n_layer + 2 and set(grads) == {name for name, _ in named}
    h = 1e-6
    for name, a in named:
        numeric = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            keep = a[i]
            a[i] = keep + h
            up = loss()
            a[i] = keep - h
            down = loss()
            a[i] = keep
            numeric[i] = (up - down) / (2 * h)
        error = np.linalg.norm(grads[name] - numeric) / max(np.linalg.norm(numeric), np.linalg.norm(grads[name]))
        assert error <= 1e-5, (name, error)


def reference_gpt(ids, params, n_head):  # [n_seq] -> [n_seq, n_vocab]
    """One sequence, one head at a time, the GELU from its definition with erf's tanh form."""
    def norm(x, p):
        return p["g"] * (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-5) + p["b"]

    n = len(ids)
    x = params["wte"][ids] + params["wpe"][:n]
    for p in params["blocks"]:
        h = norm(x, p["ln_1"]) @ p["attn"]["c_attn"]["w"] + p["attn"]["c_attn"]["b"]
        d = N_EMBD // n_head
        heads = []
        for k in range(n_head):
            q, kk, v = (h[:, j * N_EMBD + k * d: j * N_EMBD + (k + 1) * d] for j in range(3))
            out = np.zeros((n, d))
            for t in range(n):
                s = np.array([q[t] @ kk[u] / math.sqrt(d) for u in range(t + 1)])
                w = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
                out[t] = w @ v[: t + 1]
            heads.append(out)
        x = x + np.concatenate(heads, axis=1) @ p["attn"]["c_proj"]["w"] + p["attn"]["c_proj"]["b"]
        f = norm(x, p["ln_2"]) @ p["mlp"]["c_fc"]["w"] + p["mlp"]["c_fc"]["b"]
        f = 0.5 * f * (1 + np.tanh(math.sqrt(2 / math.pi) * (f + 0.044715 * f ** 3)))
        x = x + f @ p["mlp"]["c_proj"]["w"] + p["mlp"]["c_proj"]["b"]
    return norm(x, params["ln_f"]) @ params["wte"].T


def test_forward_matches_the_plain_reference():
    rng = np.random.default_rng(1)
    params = random_model(3, rng)
    ids = rng.integers(0, N_VOCAB, (4, N_CTX))
    logits = g.gpt(ids, params, 2).logits
    for b in range(4):
        np.testing.assert_allclose(logits[b], reference_gpt(ids[b], params, 2), rtol=1e-10, atol=1e-10)


def test_trace_keeps_every_intermediate_with_its_shape():
    rng = np.random.default_rng(2)
    params = random_model(2, rng)
    ids = rng.integers(0, N_VOCAB, (3, 5))
    t = g.gpt(ids, params, 4)
    assert t.logits.shape == (3, 5, N_VOCAB) and len(t.blocks) == 2
    b = t.blocks[1]
    assert b.q.shape == b.k.shape == b.v.shape == b.heads.shape == (3, 4, 5, 2)
    assert b.scores.shape == b.weights.shape == (3, 4, 5, 5)
    assert b.fc.shape == b.act.shape == (3, 5, 4 * N_EMBD)
    np.testing.assert_array_equal(t.blocks[1].x, t.blocks[0].x_mlp)  # the residual stream flows on
    np.testing.assert_allclose(b.weights.sum(-1), 1.0)
    assert np.all(np.triu(b.weights, k=1) == 0)  # no position attends to a later one
    np.testing.assert_allclose(b.scores, b.q @ b.k.swapaxes(-1, -2) / math.sqrt(2))


def test_a_later_token_never_changes_earlier_logits():
    rng = np.random.default_rng(3)
    params = random_model(2, rng)
    ids = rng.integers(0, N_VOCAB, (1, N_CTX))
    changed = ids.copy()
    changed[0, -1] = (ids[0, -1] + 1) % N_VOCAB
    a, b = g.gpt(ids, params, 2).logits, g.gpt(changed, params, 2).logits
    np.testing.assert_array_equal(a[0, :-1], b[0, :-1])
    assert not np.allclose(a[0, -1], b[0, -1])


def test_gelu_close_to_its_exact_erf_form():
    x = np.linspace(-5, 5, 101)
    exact = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    np.testing.assert_allclose(g.gelu(x), exact, atol=1e-3)


def test_cross_entropy_hand_worked():
    logits = np.array([[0.0, math.log(3.0)]])  # probabilities 1/4, 3/4
    loss, d = g.cross_entropy(logits, np.array([1]))
    assert loss == pytest.approx(-math.log(0.75))
    np.testing.assert_allclose(d, [[0.25, -0.25]])


def test_float32_model_stays_float32():
    rng = np.random.default_rng(4)
    params = g.init_params(N_VOCAB, N_CTX, N_EMBD, 1, rng)
    t = g.gpt(rng.integers(0, N_VOCAB, (2, N_CTX)), params, 2)
    assert t.logits.dtype == np.float32 and t.blocks[0].weights.dtype == np.float32
    grads = g.gpt_backward(np.ones_like(t.logits), t, params)
    assert all(a.dtype == np.float32 for _, a in g.leaves(grads))


def test_parameter_count_and_tied_unembedding():
    params = g.init_params(N_VOCAB, N_CTX, N_EMBD, 2, np.random.default_rng(0))
    per_block = 2 * 2 * N_EMBD + N_EMBD * 3 * N_EMBD + 3 * N_EMBD + N_EMBD * N_EMBD + N_EMBD \
        + N_EMBD * 4 * N_EMBD + 4 * N_EMBD + 4 * N_EMBD * N_EMBD + N_EMBD
    assert g.n_params(params) == N_VOCAB * N_EMBD + N_CTX * N_EMBD + 2 * per_block + 2 * N_EMBD
    assert not any("lm_head" in name for name, _ in g.leaves(params))


def test_generate_is_seeded_and_extends_the_prompt():
    params = random_model(1, np.random.default_rng(5))
    start = np.zeros((2, 1), dtype=np.int64)
    a = g.generate(start, params, 2, 4, np.random.default_rng(9))
    b = g.generate(start, params, 2, 4, np.random.default_rng(9))
    assert a.shape == (2, 5) and np.array_equal(a, b) and np.all(a[:, 0] == 0)
    greedy = g.generate(start, params, 2, 1, np.random.default_rng(0), temperature=1e-4)
    assert greedy[0, 1] == np.argmax(g.next_token_logits(start, params, 2)[0])
