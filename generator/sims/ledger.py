"""The ledger of real models: parameters, FLOPs and KV-cache memory of published configurations.

Counted: every weight tensor of each model from its released configuration (content/models.json),
one function per block layout: the sequential block of GPT-2 (LayerNorm with biases, GELU MLP of
width 4d, learned positions, tied unembedding) and of Llama-style models (RMSNorm, SwiGLU MLP,
grouped-query attention, rotary positions, no biases, untied unembedding; Mistral too), whose
differences are all in the config; Falcon (one LayerNorm read by attention and MLP in parallel,
multi-query attention, rotary positions, no linear biases, tied); mixture of
experts (Mixtral: the Llama block with a router and n experts, k of them active per token); and
multi-head latent attention (DeepSeek-V3: low-rank query and key/value projections, a decoupled
RoPE key, dense MLPs in the first layers and shared plus routed experts after). KV-cache bytes per
token for each attention kind; FLOPs per token for prefill and decode (2 per multiply-add of every
weight matrix the token passes, plus attention over the cached positions); bytes one decode step
must read (the weights a token uses plus every cached key and value).

Not simulated: the models themselves (only their sizes), activation memory, padding and paged
blocks of real servers, the per-group scales of quantised weights, multi-token-prediction heads
(DeepSeek-V3's MTP module is left out of its count), which experts a batch of tokens touches
(MoE weight traffic is counted at batch 1, the active experts only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Callable

# Bytes one stored number takes in each precision weights or a cache are commonly kept in.
BYTES_PER_VALUE = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}

FAMILIES = ("gpt2", "falcon", "llama", "moe", "mla")
ATTENTION_KINDS = ("mha", "gqa", "mqa", "mla", "sliding")
# Where a parameter sits: the input lookups, a block's attention, MLP or norms, or the output head
# (the final norm and an untied unembedding matrix).
PARTS = ("embeddings", "attention", "MLP", "norms", "unembedding")


@dataclass(frozen=True)
class Experts:
    """A mixture-of-experts MLP: n routed experts of hidden width d_ff, `active` used per token."""

    n: int
    active: int
    d_ff: int
    shared: int = 0  # experts every token uses (DeepSeek)
    dense_layers: int = 0  # the first layers keep a dense MLP (of the model's d_ff)
    router_bias: bool = False  # a per-expert bias used only to choose experts (DeepSeek-V3)


@dataclass(frozen=True)
class Latent:
    """Multi-head latent attention's ranks and head widths (DeepSeek-V2/V3)."""

    q_rank: int  # queries go through a rank-q_rank bottleneck
    kv_rank: int  # keys and values are rebuilt from one cached latent of this width
    rope_dim: int  # the decoupled RoPE part of each query and of the one shared key
    nope_dim: int  # the part of each head's query/key without positions
    v_dim: int  # each head's value width


@dataclass(frozen=True)
class Model:
    """One published configuration, as content/models.json states it."""

    name: str
    source: str
    family: str  # one of FAMILIES: which counting function applies
    context: int  # the longest context the released model supports, in tokens
    vocab: int
    n_layer: int
    d_model: int
    n_head: int
    n_kv_head: int
    d_head: int
    norm: str  # "layernorm" (gain and bias) or "rmsnorm" (gain)
    mlp: str  # "gelu" (up, down) or "swiglu" (gate, up, down)
    d_ff: int  # the dense MLP's hidden width
    attention: str  # one of ATTENTION_KINDS
    positions: str  # "learned" or "rope"
    tied: bool  # the unembedding is the token embedding matrix
    biases: bool
    window: int | None = None  # sliding-window attention: positions each query sees
    experts: Experts | None = None
    latent: Latent | None = None
    published_params: int | None = None  # the exact total the model card or paper gives, if any


@dataclass(frozen=True)
class WithLedger:
    """A chapter's config: its grid, the model family it runs and the published models it prices."""

    grid: Any
    family: Any  # generator.grids.PretrainingGrid
    models: tuple[Model, ...]
    # Decode steps timed on a model of the tiny model's shape (generator.measure), where the
    # chapter shows them: attention_cost.Timings with seconds (cached, uncached).
    timings: Any = None


@dataclass(frozen=True)
class Tensor:
    """One kind of weight tensor: its shape, how many the model holds and how many a token uses."""

    name: str
    part: str  # one of PARTS
    shape: tuple[int, ...]
    copies: int  # in the whole model (layers x experts)
    active: int  # used by one token (the routed experts it is sent to)
    matmul: bool  # multiplies the token's vector (not a lookup, norm gain or bias)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


# ---------------------------------------------------------------------------------------------
# Counting parameters, tensor by tensor


def norm_tensors(m: Model, name: str, width: int, copies: int) -> list[Tensor]:
    """A LayerNorm's gain and bias, or an RMSNorm's gain."""
    out = [Tensor(f"{name}.weight", "norms", (width,), copies, copies, False)]
    if m.norm == "layernorm":
        out.append(Tensor(f"{name}.bias", "norms", (width,), copies, copies, False))
    return out


def linear_tensors(name: str, part: str, n_in: int, n_out: int, copies: int, bias: bool,
                   active: int | None = None) -> list[Tensor]:
    """A weight matrix [n_in, n_out] and, if the model has biases, its bias."""
    active = copies if active is None else active
    out = [Tensor(f"{name}.weight", part, (n_in, n_out), copies, active, True)]
    if bias:
        out.append(Tensor(f"{name}.bias", part, (n_out,), copies, active, False))
    return out


def embedding_tensors(m: Model) -> list[Tensor]:
    """Token embeddings, learned positions if any, and an untied unembedding."""
    out = [Tensor("embed_tokens", "embeddings", (m.vocab, m.d_model), 1, 1, False)]
    if m.positions == "learned":
        out.append(Tensor("embed_positions", "embeddings", (m.context, m.d_model), 1, 1, False))
    if not m.tied:
        out.append(Tensor("lm_head", "unembedding", (m.d_model, m.vocab), 1, 1, True))
    head = norm_tensors(m, "final_norm", m.d_model, 1)  # part of the output head, not of a block
    return out + [replace(t, part="unembedding") for t in head]


def attention_tensors(m: Model, layers: int) -> list[Tensor]:
    """Query, key, value and output projections with n_kv_head key/value heads (MHA, GQA, MQA)."""
    d, q, kv = m.d_model, m.n_head * m.d_head, m.n_kv_head * m.d_head
    return [*linear_tensors("attn.q_proj", "attention", d, q, layers, m.biases),
            *linear_tensors("attn.k_proj", "attention", d, kv, layers, m.biases),
            *linear_tensors("attn.v_proj", "attention", d, kv, layers, m.biases),
            *linear_tensors("attn.o_proj", "attention", q, d, layers, m.biases)]


def latent_attention_tensors(m: Model, layers: int) -> list[Tensor]:
    """Multi-head latent attention: low-rank queries, one latent for keys and values, a RoPE key."""
    a, d, h = m.latent, m.d_model, m.n_head
    return [*linear_tensors("attn.q_a_proj", "attention", d, a.q_rank, layers, False),
            *norm_tensors(m, "attn.q_a_norm", a.q_rank, layers),
            *linear_tensors("attn.q_b_proj", "attention", a.q_rank, h * (a.nope_dim + a.rope_dim), layers, False),
            *linear_tensors("attn.kv_a_proj", "attention", d, a.kv_rank + a.rope_dim, layers, False),
            *norm_tensors(m, "attn.kv_a_norm", a.kv_rank, layers),
            *linear_tensors("attn.kv_b_proj", "attention", a.kv_rank, h * (a.nope_dim + a.v_dim), layers, False),
            *linear_tensors("attn.o_proj", "attention", h * a.v_dim, d, layers, False)]


def mlp_tensors(m: Model, name: str, d_ff: int, copies: int, active: int | None = None) -> list[Tensor]:
    """GELU MLP (up, down) or SwiGLU MLP (gate, up, down) of hidden width d_ff."""
    d = m.d_model
    gate = (linear_tensors(f"{name}.gate_proj", "MLP", d, d_ff, copies, m.biases, active)
            if m.mlp == "swiglu" else [])
    return [*gate, *linear_tensors(f"{name}.up_proj", "MLP", d, d_ff, copies, m.biases, active),
            *linear_tensors(f"{name}.down_proj", "MLP", d_ff, d, copies, m.biases, active)]


def router_tensors(m: Model, layers: int) -> list[Tensor]:
    """The router: one score per expert from the token's vector (and DeepSeek-V3's choice bias)."""
    e = m.experts
    out = linear_tensors("mlp.router", "MLP", m.d_model, e.n, layers, False)
    if e.router_bias:
        out.append(Tensor("mlp.router.choice_bias", "MLP", (e.n,), layers, layers, False))
    return out


def block_tensors(m: Model) -> list[Tensor]:
    """GPT-2 and Llama-style models: a norm before attention and a norm before the MLP in each block.

    What differs between them is in the config, read by the parts: LayerNorm or RMSNorm, biases
    or none, learned or rotary positions, a GELU or SwiGLU MLP, KV heads, a tied unembedding.
    """
    L = m.n_layer
    return [*embedding_tensors(m), *norm_tensors(m, "attn_norm", m.d_model, L), *attention_tensors(m, L),
            *norm_tensors(m, "mlp_norm", m.d_model, L), *mlp_tensors(m, "mlp", m.d_ff, L)]


def falcon_tensors(m: Model) -> list[Tensor]:
    """Falcon: one LayerNorm per block read by attention and the MLP side by side."""
    L = m.n_layer
    return [*embedding_tensors(m), *norm_tensors(m, "input_norm", m.d_model, L),
            *attention_tensors(m, L), *mlp_tensors(m, "mlp", m.d_ff, L)]


def moe_tensors(m: Model) -> list[Tensor]:
    """Mixtral: the Llama block with its MLP replaced by a router and n experts, k used per token."""
    L, e = m.n_layer, m.experts
    return [*embedding_tensors(m), *norm_tensors(m, "attn_norm", m.d_model, L), *attention_tensors(m, L),
            *norm_tensors(m, "mlp_norm", m.d_model, L), *router_tensors(m, L),
            *mlp_tensors(m, "mlp.experts", e.d_ff, L * e.n, L * e.active)]


def mla_tensors(m: Model) -> list[Tensor]:
    """DeepSeek-V3: latent attention in every layer; dense MLPs first, then shared + routed experts."""
    L, e = m.n_layer, m.experts
    moe = L - e.dense_layers
    return [*embedding_tensors(m), *norm_tensors(m, "attn_norm", m.d_model, L),
            *latent_attention_tensors(m, L), *norm_tensors(m, "mlp_norm", m.d_model, L),
            *mlp_tensors(m, "mlp.dense", m.d_ff, e.dense_layers),
            *router_tensors(m, moe),
            *mlp_tensors(m, "mlp.shared_experts", e.d_ff, moe * e.shared),
            *mlp_tensors(m, "mlp.experts", e.d_ff, moe * e.n, moe * e.active)]


COUNTERS: dict[str, Callable[[Model], list[Tensor]]] = {
    "gpt2": block_tensors, "falcon": falcon_tensors, "llama": block_tensors, "moe": moe_tensors,
    "mla": mla_tensors}


def tensors(m: Model) -> list[Tensor]:
    """Every kind of weight tensor of the model, by its family's layout."""
    return [t for t in COUNTERS[m.family](m) if t.copies]


def n_params(m: Model) -> int:
    """Every parameter of the model. Example: GPT-2 small -> 124439808"""
    return sum(t.size * t.copies for t in tensors(m))


def n_active_params(m: Model) -> int:
    """The parameters one token uses (all of them, except the experts it is not routed to)."""
    return sum(t.size * t.active for t in tensors(m))


def params_by_part(m: Model, active: bool = False) -> dict[str, int]:
    """Parameters by part (PARTS), all of them or the active ones."""
    out = dict.fromkeys(PARTS, 0)
    for t in tensors(m):
        out[t.part] += t.size * (t.active if active else t.copies)
    return out


# ---------------------------------------------------------------------------------------------
# KV cache


def kv_values_per_token(m: Model) -> int:
    """Numbers cached per token: K and V of every KV head in every layer, or MLA's latent + RoPE key."""
    if m.attention == "mla":
        return m.n_layer * (m.latent.kv_rank + m.latent.rope_dim)
    return 2 * m.n_layer * m.n_kv_head * m.d_head


def mha_kv_values_per_token(m: Model) -> int:
    """Numbers per token if every query head cached its own full key and value (MLA: nope + rope, v)."""
    if m.attention == "mla":
        a = m.latent
        return m.n_layer * m.n_head * (a.nope_dim + a.rope_dim + a.v_dim)
    return 2 * m.n_layer * m.n_head * m.d_head


def kv_bytes_per_token(m: Model, precision: str = "bf16") -> float:
    """Cache bytes each token adds. Example: Llama 2 7B in bf16 -> 524288 (2 x 32 x 32 x 128 x 2)"""
    return kv_values_per_token(m) * BYTES_PER_VALUE[precision]


def cached_positions(m: Model, n_tokens: int) -> int:
    """Positions whose keys and values are kept after n_tokens: all, or the last `window`."""
    return n_tokens if m.window is None else min(n_tokens, m.window)


def kv_bytes(m: Model, n_tokens: int, precision: str = "bf16", n_batch: int = 1) -> float:
    """The cache of n_batch sequences of n_tokens each (a sliding window caps the positions kept)."""
    return kv_bytes_per_token(m, precision) * cached_positions(m, n_tokens) * n_batch


def weight_bytes(m: Model, precision: str = "bf16") -> float:
    """Every weight stored at the precision."""
    return n_params(m) * BYTES_PER_VALUE[precision]


# ---------------------------------------------------------------------------------------------
# FLOPs and bytes per token


def matmul_params(m: Model) -> int:
    """Weights a token's vector is multiplied by (active ones; a tied unembedding counts once)."""
    used = sum(t.size * t.active for t in tensors(m) if t.matmul)
    return used + (m.vocab * m.d_model if m.tied else 0)


def read_params(m: Model) -> int:
    """Weights one token's step reads: every active tensor but the lookup tables (one row each)."""
    used = sum(t.size * t.active for t in tensors(m) if t.part != "embeddings")
    return used + (m.vocab * m.d_model if m.tied else 0)


def attention_flops_per_position(m: Model) -> int:
    """FLOPs of one query against one cached position, all layers: q.k (d_qk) and w.v (d_v) per head."""
    if m.attention == "mla":
        a = m.latent
        return 2 * m.n_layer * m.n_head * (a.nope_dim + a.rope_dim + a.v_dim)
    return 2 * m.n_layer * m.n_head * 2 * m.d_head


def decode_flops(m: Model, n_past: int) -> float:
    """FLOPs to generate one token after n_past cached ones: 2 per weight used, plus attention."""
    return 2 * matmul_params(m) + attention_flops_per_position(m) * cached_positions(m, n_past + 1)


def prefill_flops(m: Model, n_tokens: int) -> float:
    """FLOPs to read a prompt of n_tokens at once: every token's weights and causal attention.

    Token t (1-based) attends to min(t, window) positions; summed in closed form.
    """
    w = n_tokens if m.window is None else min(m.window, n_tokens)
    positions = w * (w + 1) // 2 + (n_tokens - w) * w
    return 2 * matmul_params(m) * n_tokens + attention_flops_per_position(m) * positions


def decode_bytes(m: Model, n_past: int, precision: str = "bf16", n_batch: int = 1) -> float:
    """Bytes one decode step reads: the weights a token uses (once for the batch) and every cache."""
    return read_params(m) * BYTES_PER_VALUE[precision] + kv_bytes(m, n_past + 1, precision, n_batch)


# ---------------------------------------------------------------------------------------------
# From GPT-2's block to a modern one, one change at a time


def as_gpt2(m: Model) -> Model:
    """The model's sizes in GPT-2's layout: LayerNorm, biases, learned positions, GELU MLP of 4d,
    one KV head per query head, tied unembedding."""
    return replace(m, name=f"{m.name} as GPT-2", family="gpt2", norm="layernorm", biases=True,
                   positions="learned", mlp="gelu", d_ff=4 * m.d_model, n_kv_head=m.n_head,
                   attention="mha", window=None, tied=True, experts=None, latent=None,
                   published_params=None)


def modernising_steps(m: Model) -> list[tuple[str, Model]]:
    """GPT-2's layout at m's sizes, then each change toward m's own layout (a Llama-style model)."""
    steps = [("GPT-2's block", as_gpt2(m))]
    changes = [("RMSNorm instead of LayerNorm", {"norm": m.norm}),
               ("no biases", {"biases": m.biases}),
               ("RoPE instead of learned positions", {"positions": m.positions}),
               ("SwiGLU MLP", {"mlp": m.mlp, "d_ff": m.d_ff}),
               ("grouped-query attention", {"n_kv_head": m.n_kv_head, "attention": m.attention,
                                            "window": m.window}),
               ("untied unembedding", {"tied": m.tied})]
    for label, change in changes:
        steps.append((label, replace(steps[-1][1], **change)))
    return steps
