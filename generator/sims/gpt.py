"""A GPT-style decoder in numpy: the forward pass with every intermediate, and its backward pass.

Simulated: token + position embeddings; n_layer pre-LayerNorm blocks, each a causal
multi-head self-attention (Q, K, V from one projection, per-head softmax under the causal
mask, heads concatenated, output projection c_proj) and an MLP (4x expansion, GELU in its tanh
form, projection back), each added to the residual stream; a final LayerNorm; and a tied
unembedding: logits = x @ wte.T, the token embedding matrix read backwards, as in GPT-2.
Parameter names follow GPT-2's checkpoints. The backward pass is written out by hand, one
function per operation, and works in any float dtype (tests check it in float64 against finite
differences). Not simulated: dropout, a KV cache, mixed precision, and anything beyond one
machine's numpy.

Shapes use n_batch (sequences side by side), n_seq, n_embd, n_head, d_head, n_vocab, n_layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# ---------------------------------------------------------------------------------------------
# Parameters


def init_params(n_vocab, n_ctx, n_embd, n_layer, rng, dtype=np.float32):  # -> params
    """GPT-2's initialisation: N(0, 0.02) weights, residual projections scaled by 1/sqrt(2 n_layer)."""
    def normal(*shape, std=0.02):
        return (rng.standard_normal(shape) * std).astype(dtype)

    def linear_params(n_in, n_out, std=0.02):
        return {"w": normal(n_in, n_out, std=std), "b": np.zeros(n_out, dtype)}

    def norm_params():
        return {"g": np.ones(n_embd, dtype), "b": np.zeros(n_embd, dtype)}

    residual_std = 0.02 / np.sqrt(2 * n_layer)
    blocks = [
        {
            "ln_1": norm_params(),
            "attn": {"c_attn": linear_params(n_embd, 3 * n_embd),
                     "c_proj": linear_params(n_embd, n_embd, std=residual_std)},
            "ln_2": norm_params(),
            "mlp": {"c_fc": linear_params(n_embd, 4 * n_embd),
                    "c_proj": linear_params(4 * n_embd, n_embd, std=residual_std)},
        }
        for _ in range(n_layer)
    ]
    return {"wte": normal(n_vocab, n_embd), "wpe": normal(n_ctx, n_embd), "blocks": blocks,
            "ln_f": norm_params()}


def leaves(tree, prefix=""):  # params -> [(name, array)]
    """Every array of a parameter tree with a dotted name, in a fixed order."""
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in leaves(tree[key], f"{prefix}{key}.")]
    if isinstance(tree, (list, tuple)):
        return [leaf for i, sub in enumerate(tree) for leaf in leaves(sub, f"{prefix}{i}.")]
    return [(prefix[:-1], tree)]


def tree_map(fn, *trees):  # fn, params... -> params
    """Apply fn leaf by leaf to trees of the same structure."""
    first = trees[0]
    if isinstance(first, dict):
        return {key: tree_map(fn, *(t[key] for t in trees)) for key in first}
    if isinstance(first, (list, tuple)):
        return [tree_map(fn, *subs) for subs in zip(*trees)]
    return fn(*trees)


def n_params(params) -> int:
    """Number of parameters (the tied unembedding is the embedding, counted once)."""
    return sum(a.size for _, a in leaves(params))


# ---------------------------------------------------------------------------------------------
# Operations, each with its backward


# Python floats, not numpy scalars, so float32 arrays stay float32; x * x * x, not x**3, which
# numpy computes through a slow general power for float32.
SQRT_2_OVER_PI = math.sqrt(2 / math.pi)


def gelu(x):  # [...] -> [...]
    """GELU, tanh approximation (GPT-2's)."""
    return 0.5 * x * (1 + np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))


def gelu_backward(dy, x):  # [...], [...] -> [...]
    t = np.tanh(SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
    dt = SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
    return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dt)


def normalise(x, eps=1e-5):  # [..., n_embd] -> [..., n_embd], [..., 1]
    """(x - mean) / std over the last axis, and 1 / std."""
    centred = x - x.mean(axis=-1, keepdims=True)
    rstd = 1 / np.sqrt((centred * centred).mean(axis=-1, keepdims=True) + eps)
    return centred * rstd, rstd


def layer_norm(x, g, b):  # [..., n_embd], [n_embd], [n_embd] -> [..., n_embd]
    """Normalise each vector to mean 0, variance 1, then scale by g and shift by b."""
    return g * normalise(x)[0] + b


def layer_norm_backward(dy, x, g):  # [..., n_embd], [..., n_embd], [n_embd] -> dx, dg, db
    xhat, rstd = normalise(x)
    dxhat = dy * g
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                 - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, sum_leading(dy * xhat), sum_leading(dy)


def linear(x, w, b):  # [..., n_in], [n_in, n_out], [n_out] -> [..., n_out]
    return x @ w + b


def linear_backward(dy, x, w):  # [..., n_seq, n_out], [..., n_seq, n_in], [n_in, n_out] -> dx, dw, db
    return dy @ w.T, outer_sum(x, dy), sum_leading(dy)


def outer_sum(a, b):  # [..., n_seq, n], [..., n_seq, m] -> [n, m]
    """sum over every position of outer(a, b): a weight's gradient.

    Summed sequence by sequence: each product is then small enough for BLAS to run on one
    thread, where one product over all positions at once would start threads that cost more
    than the work (many times more on a busy machine).
    """
    a3 = a.reshape(-1, *a.shape[-2:])  # [n_batch, n_seq, n]
    b3 = b.reshape(-1, *b.shape[-2:])  # [n_batch, n_seq, m]
    return (a3.swapaxes(-1, -2) @ b3).sum(axis=0)


def sum_leading(x):  # [..., n] -> [n]
    return x.reshape(-1, x.shape[-1]).sum(axis=0)


def softmax(x):  # [..., n] -> [..., n]
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def softmax_backward(dy, y):  # [..., n], [..., n] -> [..., n]
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


def causal_mask(n_seq, dtype=np.float32):  # -> [n_seq, n_seq]
    """0 where a position may attend (itself and earlier), -1e10 where it may not (later)."""
    return (np.triu(np.ones((n_seq, n_seq), dtype), k=1) * -1e10).astype(dtype)


def split_heads(x, n_head):  # [n_batch, n_seq, n_embd] -> [n_batch, n_head, n_seq, d_head]
    n_batch, n_seq, n_embd = x.shape
    return x.reshape(n_batch, n_seq, n_head, n_embd // n_head).transpose(0, 2, 1, 3)


def merge_heads(x):  # [n_batch, n_head, n_seq, d_head] -> [n_batch, n_seq, n_embd]
    n_batch, n_head, n_seq, d_head = x.shape
    return x.transpose(0, 2, 1, 3).reshape(n_batch, n_seq, n_head * d_head)


def cross_entropy(logits, targets):  # [..., n_vocab], [...] int -> loss (nats), dlogits
    """Mean of -log softmax(logits)[target], and its gradient with respect to the logits."""
    dlogits = softmax(logits)  # [..., n_vocab]
    np.put_along_axis(dlogits, targets[..., None],
                      np.take_along_axis(dlogits, targets[..., None], axis=-1) - 1, axis=-1)
    return float(-token_log_probs(logits, targets).mean()), dlogits / targets.size


def token_log_probs(logits, targets):  # [..., n_vocab], [...] int -> [...] nats
    """log P(target) under softmax(logits), computed without overflow."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=-1))
    return np.take_along_axis(shifted, targets[..., None], axis=-1)[..., 0] - log_z


# ---------------------------------------------------------------------------------------------
# The forward pass, keeping every intermediate


@dataclass(frozen=True)
class BlockTrace:
    """Everything one block computed, for the backward pass and for charts."""

    x: np.ndarray  # [n_batch, n_seq, n_embd]  residual stream entering the block
    ln_1: np.ndarray  # [n_batch, n_seq, n_embd]
    q: np.ndarray  # [n_batch, n_head, n_seq, d_head]
    k: np.ndarray  # [n_batch, n_head, n_seq, d_head]
    v: np.ndarray  # [n_batch, n_head, n_seq, d_head]
    scores: np.ndarray  # [n_batch, n_head, n_seq, n_seq]  q.k / sqrt(d_head), before the mask
    weights: np.ndarray  # [n_batch, n_head, n_seq, n_seq]  after the causal mask and softmax
    heads: np.ndarray  # [n_batch, n_head, n_seq, d_head]  weights @ v
    x_attn: np.ndarray  # [n_batch, n_seq, n_embd]  residual stream after the attention add
    ln_2: np.ndarray  # [n_batch, n_seq, n_embd]
    fc: np.ndarray  # [n_batch, n_seq, 4 n_embd]  the MLP's hidden layer before GELU
    act: np.ndarray  # [n_batch, n_seq, 4 n_embd]  after GELU
    x_mlp: np.ndarray  # [n_batch, n_seq, n_embd]  residual stream after the MLP add


@dataclass(frozen=True)
class Trace:
    ids: np.ndarray  # [n_batch, n_seq] int
    x: np.ndarray  # [n_batch, n_seq, n_embd]  token + position embeddings
    blocks: list[BlockTrace]  # [n_layer]
    ln_f: np.ndarray  # [n_batch, n_seq, n_embd]
    logits: np.ndarray  # [n_batch, n_seq, n_vocab]


def attention(q, k, v, mask):  # [..., n_seq, d_head] x3, [n_seq, n_seq] -> out, scores, weights
    scores = q @ k.swapaxes(-1, -2) / math.sqrt(q.shape[-1])  # [..., n_seq, n_seq]
    weights = softmax(scores + mask)  # [..., n_seq, n_seq]
    return weights @ v, scores, weights


def block(x, p, n_head):  # [n_batch, n_seq, n_embd], block params, int -> BlockTrace
    """x + mha(ln_1(x)), then + mlp(ln_2(.)): one pre-LN transformer block."""
    ln_1 = layer_norm(x, **p["ln_1"])
    qkv = linear(ln_1, **p["attn"]["c_attn"])  # [n_batch, n_seq, 3 n_embd]
    q, k, v = (split_heads(m, n_head) for m in np.split(qkv, 3, axis=-1))  # [n_batch, n_head, n_seq, d_head]
    heads, scores, weights = attention(q, k, v, causal_mask(x.shape[1], x.dtype))
    x_attn = x + linear(merge_heads(heads), **p["attn"]["c_proj"])  # [n_batch, n_seq, n_embd]
    ln_2 = layer_norm(x_attn, **p["ln_2"])
    fc = linear(ln_2, **p["mlp"]["c_fc"])  # [n_batch, n_seq, 4 n_embd]
    act = gelu(fc)
    x_mlp = x_attn + linear(act, **p["mlp"]["c_proj"])  # [n_batch, n_seq, n_embd]
    return BlockTrace(x, ln_1, q, k, v, scores, weights, heads, x_attn, ln_2, fc, act, x_mlp)


def gpt(ids, params, n_head) -> Trace:  # [n_batch, n_seq] int, params, int -> Trace
    """The forward pass; trace.logits[b, t] scores the token after ids[b, :t + 1]."""
    x = params["wte"][ids] + params["wpe"][: ids.shape[1]]  # [n_batch, n_seq, n_embd]
    traces = []
    h = x
    for p in params["blocks"]:
        traces.append(block(h, p, n_head))
        h = traces[-1].x_mlp
    ln_f = layer_norm(h, **params["ln_f"])
    logits = ln_f @ params["wte"].T  # [n_batch, n_seq, n_vocab]
    return Trace(ids, x, traces, ln_f, logits)


# ---------------------------------------------------------------------------------------------
# The backward pass


def block_backward(dx_mlp, t: BlockTrace, p):  # [n_batch, n_seq, n_embd], trace, params -> dx, grads
    """Gradients of one block, from the gradient of its output."""
    d_act, dw, db = linear_backward(dx_mlp, t.act, p["mlp"]["c_proj"]["w"])
    g_mlp_proj = {"w": dw, "b": db}
    d_ln_2, dw, db = linear_backward(gelu_backward(d_act, t.fc), t.ln_2, p["mlp"]["c_fc"]["w"])
    g_fc = {"w": dw, "b": db}
    dx, dg, db = layer_norm_backward(d_ln_2, t.x_attn, p["ln_2"]["g"])
    g_ln_2 = {"g": dg, "b": db}
    dx_attn = dx_mlp + dx  # the residual passes the gradient straight through

    d_heads, dw, db = linear_backward(dx_attn, merge_heads(t.heads), p["attn"]["c_proj"]["w"])
    g_attn_proj = {"w": dw, "b": db}
    d_heads = split_heads(d_heads, t.q.shape[1])  # [n_batch, n_head, n_seq, d_head]
    d_weights = d_heads @ t.v.swapaxes(-1, -2)  # [n_batch, n_head, n_seq, n_seq]
    dv = t.weights.swapaxes(-1, -2) @ d_heads
    d_scores = softmax_backward(d_weights, t.weights) / math.sqrt(t.q.shape[-1])
    dq = d_scores @ t.k
    dk = d_scores.swapaxes(-1, -2) @ t.q
    dqkv = np.concatenate([merge_heads(dq), merge_heads(dk), merge_heads(dv)], axis=-1)
    d_ln_1, dw, db = linear_backward(dqkv, t.ln_1, p["attn"]["c_attn"]["w"])
    g_attn = {"w": dw, "b": db}
    dx, dg, db = layer_norm_backward(d_ln_1, t.x, p["ln_1"]["g"])
    grads = {
        "ln_1": {"g": dg, "b": db},
        "attn": {"c_attn": g_attn, "c_proj": g_attn_proj},
        "ln_2": g_ln_2,
        "mlp": {"c_fc": g_fc, "c_proj": g_mlp_proj},
    }
    return dx_attn + dx, grads


def gpt_backward(dlogits, trace: Trace, params):  # [n_batch, n_seq, n_vocab], Trace, params -> grads
    """Gradients of every parameter, from the gradient of the logits."""
    wte = params["wte"]
    n_embd = wte.shape[1]
    dwte = outer_sum(dlogits, trace.ln_f)  # [n_vocab, n_embd]
    h = trace.blocks[-1].x_mlp if trace.blocks else trace.x
    dh, dg, db = layer_norm_backward(dlogits @ wte, h, params["ln_f"]["g"])
    g_ln_f = {"g": dg, "b": db}
    g_blocks = []
    for t, p in zip(reversed(trace.blocks), reversed(params["blocks"])):
        dh, g = block_backward(dh, t, p)
        g_blocks.insert(0, g)
    np.add.at(dwte, trace.ids.reshape(-1), dh.reshape(-1, n_embd))  # the embedding lookup
    dwpe = np.zeros_like(params["wpe"])
    dwpe[: dh.shape[1]] = dh.sum(axis=0)
    return {"wte": dwte, "wpe": dwpe, "blocks": g_blocks, "ln_f": g_ln_f}


# ---------------------------------------------------------------------------------------------
# Using a model


def next_token_logits(ids, params, n_head):  # [n_batch, n_seq] int -> [n_batch, n_vocab]
    """Logits for the token after each sequence."""
    return gpt(ids, params, n_head).logits[:, -1]


def generate(ids, params, n_head, n_new, rng, temperature=1.0):  # [n_batch, n_seq] int -> [n_batch, n_seq + n_new]
    """Sample n_new tokens, one at a time, each from softmax(logits / T) (no KV cache)."""
    n_ctx = params["wpe"].shape[0]
    for _ in range(n_new):
        logits = next_token_logits(ids[:, -n_ctx:], params, n_head).astype(np.float64)  # [n_batch, n_vocab]
        p = softmax(logits / temperature)
        u = rng.random((ids.shape[0], 1))  # [n_batch, 1]
        nxt = np.minimum((p.cumsum(axis=-1) < u).sum(axis=-1), p.shape[-1] - 1)  # [n_batch]
        ids = np.concatenate([ids, nxt[:, None]], axis=1)
    return ids
