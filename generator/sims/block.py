"""Inside a transformer block: the residual stream of a trained tiny GPT, read layer by layer.

Simulated: one model of the pretraining family (loaded through `memo`, the same cached weights,
never retrained) run forward on a story prompt. Each pre-LayerNorm block adds an attention
output and then an MLP output to the residual stream; the stream's length (L2 norm) is recorded
at each position after the embeddings and after each of those additions. The "logit lens"
unembeds the stream at each of those points with the model's own final LayerNorm and its tied
unembedding (the token embeddings read backwards), giving the top next-token guess and the
probability of the token that actually comes next, as if the model stopped there. One token's
vector is followed through one block stage by stage (LayerNorm, its query, key and value, each
head's scores and weights over the positions it sees, the heads concatenated, the output
projection, the residual add, the second LayerNorm, the MLP's hidden layer before and after GELU,
its projection back and the second residual add), every number the model's own.
Counted, from the ledger of published models (generator.sims.ledger): how each change from GPT-2's
block to a Llama-style one (RMSNorm, no biases, RoPE, SwiGLU, grouped-query attention, an untied
unembedding) changes the parameter count and the KV cache; and, for every ledger model and this
site's model, the share of parameters and of per-token FLOPs in the blocks and in the embeddings.
Not simulated: the published models themselves, only their sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.sims import ledger
from generator.sims.family import Memo, load_member, model_name, prompt_tokens, uncached
from generator.sims.gpt import BlockTrace, gpt, layer_norm, softmax
from generator.sims.ledger import WithLedger

PARTS = ledger.PARTS


@dataclass(frozen=True)
class Stage:
    name: str
    size: int  # how many numbers the stage has (values may hold only the first ones)
    values: np.ndarray  # [n]  the numbers of this stage (one row per head for scores and weights)
    heads: np.ndarray  # [n] int  the head each number belongs to (-1: no head)
    positions: np.ndarray  # [n] int  for scores and weights: the position attended to (-1: none)


@dataclass(frozen=True)
class StepThrough:
    layer: int  # 1-based
    position: int
    token: str
    n_head: int
    d_head: int
    stages: tuple[Stage, ...]
    gelu_negative: float  # share of the MLP's hidden units whose input is negative (all of them)
    gelu_small: float  # share whose GELU output is within 0.05 of zero


@dataclass(frozen=True)
class Modernising:
    model: str  # the ledger model whose sizes are used
    steps: tuple[str, ...]  # [n_step]  GPT-2's block, then each change
    n_params: np.ndarray  # [n_step]  int64
    kv_bytes_per_token: np.ndarray  # [n_step]  bf16
    by_part: np.ndarray  # [n_step, n_part]  parameters by ledger.PARTS
    published: int  # the model's published total (0 if none)


@dataclass(frozen=True)
class Depth:
    names: tuple[str, ...]  # [n_model]  this site's model first, then the ledger's
    n_layer: np.ndarray  # [n_model]
    d_model: np.ndarray  # [n_model]
    tokens: np.ndarray  # [n_model]  the context the FLOPs are counted at
    params: np.ndarray  # [n_model, n_part]  every parameter, by part
    flops: np.ndarray  # [n_model, n_flop]  per generated token, by FLOP_PARTS (active experts)


FLOP_PARTS = ("attention projections", "attention over the context", "MLP", "unembedding")


@dataclass(frozen=True)
class BlockResults:
    tokens: tuple[str, ...]  # [n_seq] the prompt, END first
    n_layer: int
    n_head: int
    n_embd: int
    heldout_loss: float
    stages: tuple[str, ...]  # [n_stage] "embeddings", then each block's attention and MLP
    norms: np.ndarray  # [n_stage, n_seq]  L2 norm of the residual stream
    top_token: tuple[tuple[str, ...], ...]  # [n_stage][n_seq]  logit lens: most probable next token
    top_prob: np.ndarray  # [n_stage, n_seq]
    next_prob: np.ndarray  # [n_stage, n_seq - 1]  logit lens: probability of the token that comes next
    final_logits: np.ndarray  # [n_seq, n_vocab]  the model's own output, for comparison
    step: StepThrough
    n_params: int  # the chosen model's, counted from its arrays
    modernising: Modernising
    depth: Depth
    facts: BlockFacts


def simulate(config: WithLedger, memo: Memo = uncached) -> BlockResults:
    """Load the chosen model (through memo), trace the prompt, read the stream at every stage."""
    grid, family = config.grid, config.family
    tokens = prompt_tokens(grid.prompt)
    model = load_member(family, grid.n_layer, grid.n_head, memo)
    index = {w: i for i, w in enumerate(model.vocab)}
    ids = np.array([[index[w] for w in tokens]])  # [1, n_seq]
    trace = gpt(ids, model.params, grid.n_head)
    streams = [trace.x[0]] + [s[0] for b in trace.blocks for s in (b.x_attn, b.x_mlp)]  # [n_stage] x [n_seq, n_embd]
    probs = np.stack([logit_lens(s.astype(np.float64), model.params) for s in streams])  # [n_stage, n_seq, n_vocab]
    top = probs.argmax(axis=-1)  # [n_stage, n_seq]
    n_embd = model.params["wte"].shape[1]
    tiny = tiny_model(model, grid.n_head)
    target = next(m for m in config.models if m.name == grid.example_model)
    return with_facts(
        tokens=tokens,
        n_layer=grid.n_layer,
        n_head=grid.n_head,
        n_embd=n_embd,
        heldout_loss=float(model.heldout_loss[-1]),
        stages=("embeddings", *(f"layer {i} {part}" for i in range(1, grid.n_layer + 1)
                                for part in ("attention", "MLP"))),
        norms=np.stack([np.linalg.norm(s.astype(np.float64), axis=-1) for s in streams]),
        top_token=tuple(tuple(model.vocab[i] for i in row) for row in top),
        top_prob=probs.max(axis=-1),
        next_prob=probs[:, np.arange(len(tokens) - 1), ids[0, 1:]],  # [n_stage, n_seq - 1]
        final_logits=trace.logits[0].astype(np.float64),
        step=step_through(trace.blocks[grid.step_layer - 1], grid.step_layer, grid.step_position,
                          tokens[grid.step_position], grid.step_max_values),
        n_params=model.n_params,
        modernising=modernising(target),
        depth=depth((tiny, *config.models), grid.depth_tokens),
    )


def logit_lens(x, params):  # [n_seq, n_embd], params -> [n_seq, n_vocab]
    """Next-token probabilities if the residual stream x went straight to the output."""
    return softmax(layer_norm(x, **params["ln_f"]) @ params["wte"].T.astype(np.float64))


# ---------------------------------------------------------------------------------------------
# One token through one block


def step_through(b: BlockTrace, layer: int, t: int, token: str, max_values: int | None = None) -> StepThrough:
    """The numbers of token t at every stage of one block, from the block's own trace (the first
    max_values of each stage, if given: a wide model's stages are cut so the page keeps its size)."""
    n_head, _, d_head = b.q.shape[1:]  # [n_head, n_seq, d_head]
    d = n_head * d_head

    def vector(name, x, by_head=False):  # [n] -> Stage
        x = np.asarray(x, dtype=np.float64)
        heads = np.repeat(np.arange(n_head), d_head) if by_head else np.full(len(x), -1)
        return cut(Stage(name, len(x), x, heads, np.full(len(x), -1)))

    def per_head(name, m):  # [n_head, t + 1] -> Stage
        return cut(Stage(name, m.size, np.asarray(m, dtype=np.float64).ravel(),
                         np.repeat(np.arange(n_head), t + 1), np.tile(np.arange(t + 1), n_head)))

    def cut(s: Stage) -> Stage:
        n = s.size if max_values is None else max_values
        return Stage(s.name, s.size, s.values[:n], s.heads[:n], s.positions[:n])

    heads_of = lambda a: a[0, :, t].reshape(d)  # noqa: E731  [n_head, d_head] -> [n_embd]
    stages = (
        vector("residual stream in", b.x[0, t]),
        vector("LayerNorm 1", b.ln_1[0, t]),
        vector("query q", heads_of(b.q), True),
        vector("key k", heads_of(b.k), True),
        vector("value v", heads_of(b.v), True),
        per_head("scores q·k/√d", b.scores[0, :, t, :t + 1]),
        per_head("attention weights", b.weights[0, :, t, :t + 1]),
        vector("heads concatenated", heads_of(b.heads), True),
        vector("output projection", b.x_attn[0, t] - b.x[0, t]),
        vector("residual + attention", b.x_attn[0, t]),
        vector("LayerNorm 2", b.ln_2[0, t]),
        vector("MLP up (4d)", b.fc[0, t]),
        vector("GELU", b.act[0, t]),
        vector("MLP down", b.x_mlp[0, t] - b.x_attn[0, t]),
        vector("residual + MLP", b.x_mlp[0, t]),
    )
    fc = b.fc[0, t]
    return StepThrough(layer, t, token, n_head, d_head, stages, float(np.mean(fc < 0)),
                       float(np.mean(np.abs(b.act[0, t]) < 0.05)))


# ---------------------------------------------------------------------------------------------
# Parameters and FLOPs, from the ledger


def tiny_model(model, n_head) -> ledger.Model:
    """This site's trained model in the ledger's terms (GPT-2's layout)."""
    n_ctx, d = model.params["wpe"].shape
    return ledger.Model(
        name="this site's model", source="generator.sims.train", family="gpt2", context=n_ctx,
        vocab=model.params["wte"].shape[0], n_layer=len(model.params["blocks"]), d_model=d,
        n_head=n_head, n_kv_head=n_head, d_head=d // n_head, norm="layernorm", mlp="gelu",
        d_ff=model.params["blocks"][0]["mlp"]["c_fc"]["w"].shape[1], attention="mha",
        positions="learned", tied=True, biases=True)


def modernising(m: ledger.Model) -> Modernising:
    """Parameters and cache per token at each step from GPT-2's layout to the model's own."""
    steps = ledger.modernising_steps(m)
    return Modernising(
        model=m.name, steps=tuple(label for label, _ in steps),
        n_params=np.array([ledger.n_params(s) for _, s in steps], dtype=np.int64),
        kv_bytes_per_token=np.array([ledger.kv_bytes_per_token(s) for _, s in steps]),
        by_part=np.array([list(ledger.params_by_part(s).values()) for _, s in steps], dtype=np.int64),
        published=m.published_params or 0)


def flops_by_part(m: ledger.Model, n_past: int) -> list[float]:
    """One generated token's FLOPs by FLOP_PARTS; they add up to ledger.decode_flops."""
    active = {part: 0 for part in PARTS}
    for t in ledger.tensors(m):
        if t.matmul:
            active[t.part] += t.size * t.active
    unembedding = active["unembedding"] + (m.vocab * m.d_model if m.tied else 0)
    context = ledger.decode_flops(m, n_past) - 2 * ledger.matmul_params(m)
    return [2 * active["attention"], context, 2 * active["MLP"], 2 * unembedding]


def depth(models, n_tokens: int) -> Depth:
    """Every model's parameters by part and one token's FLOPs by part, at n_tokens of context."""
    tokens = np.array([min(n_tokens, m.context) for m in models])
    return Depth(
        names=tuple(m.name for m in models), n_layer=np.array([m.n_layer for m in models]),
        d_model=np.array([m.d_model for m in models]), tokens=tokens,
        params=np.array([list(ledger.params_by_part(m).values()) for m in models], dtype=np.int64),
        flops=np.array([flops_by_part(m, int(t) - 1) for m, t in zip(models, tokens)]))


# ---------------------------------------------------------------------------------------------
# What the prose quotes


@dataclass(frozen=True)
class BlockFacts:
    model: str
    n_layer: int
    n_embd: int
    n_seq: int
    n_stages: int
    heldout_loss: float
    norm_embeddings: float  # mean norm of the residual stream over positions
    norm_final: float
    norm_growth: float
    norm_first_final: float  # at the first position (END)
    norm_rest_final: float
    embeddings_self_share: float  # positions where the embeddings' top guess is the token itself
    next_prob_embeddings: float  # mean probability of the true next token at each stage
    next_prob_first_attention: float
    next_prob_first_block: float
    next_prob_final: float
    agree_first_block: float
    first_full_agreement: str  # the first stage from which every top guess is the final one
    n_params: int
    # one token through one block
    step_layer: int
    step_position: int
    step_token: str
    step_n_stages: int
    step_n_head: int
    step_d_head: int
    step_d_ff: int
    step_all_shown: bool  # every number of every stage is in the chart
    step_max_values: int  # the most numbers the chart shows for one stage
    step_in_norm: float
    step_ln_mean: float
    step_ln_std: float
    step_top_head: int  # 1-based: the head with the largest single weight
    step_top_weight: float
    step_top_token: str  # the token it attends to
    step_top_position: int
    step_attn_norm: float  # the output projection's length
    step_mid_norm: float  # the stream after the attention add
    step_gelu_small: float  # share of hidden units GELU leaves within 0.05 of zero
    step_gelu_negative: float  # share of hidden units whose input is negative
    step_mlp_norm: float
    step_out_norm: float
    # GPT-2's block to a Llama-style one
    mod_model: str
    mod_gpt2: int
    mod_final: int
    mod_published: int
    mod_matches: bool
    mod_norm_delta: int
    mod_bias_delta: int
    mod_rope_delta: int
    mod_swiglu_delta: int
    mod_gqa_delta: int
    mod_untie_delta: int
    mod_kv_gpt2_kib: float
    mod_kv_final_kib: float
    # depth
    depth_models: int
    tiny_block_share: float  # parameters in the blocks
    small_name: str  # the smallest ledger model
    small_block_share: float
    small_unembedding_flop_share: float
    big_name: str  # the ledger model with the most layers
    big_layers: int
    big_block_share: float
    big_unembedding_flop_share: float
    big_per_block: int
    block_share_min: float  # over the ledger's models
    block_share_max: float
    layers_min: int
    layers_max: int


def with_facts(**fields) -> BlockResults:
    """BlockResults with the facts its prose quotes."""
    tokens, stages, norms, top_token = fields["tokens"], fields["stages"], fields["norms"], fields["top_token"]
    mean_next = fields["next_prob"].mean(axis=1)  # [n_stage]
    agree = [float(np.mean([a == b for a, b in zip(row, top_token[-1])])) for row in top_token]
    st, mod, dep = fields["step"], fields["modernising"], fields["depth"]
    by = {s.name: s for s in st.stages}
    weights = by["attention weights"]
    top = int(np.argmax(weights.values))
    delta = np.diff(mod.n_params)
    blocks = dep.params[:, [PARTS.index("attention"), PARTS.index("MLP"), PARTS.index("norms")]].sum(1) / dep.params.sum(1)
    unembed_flops = dep.flops[:, FLOP_PARTS.index("unembedding")] / dep.flops.sum(1)
    real = np.arange(1, len(dep.names))
    small = int(real[np.argmin(dep.params[real].sum(1))])
    big = int(real[np.argmax(dep.n_layer[real])])
    ln = by["LayerNorm 1"].values
    facts = BlockFacts(
        model=model_name(fields["n_layer"], fields["n_head"]), n_layer=fields["n_layer"],
        n_embd=fields["n_embd"], n_seq=len(tokens), n_stages=len(stages),
        heldout_loss=fields["heldout_loss"],
        norm_embeddings=float(norms[0].mean()), norm_final=float(norms[-1].mean()),
        norm_growth=float(norms[-1].mean() / norms[0].mean()),
        norm_first_final=float(norms[-1, 0]), norm_rest_final=float(norms[-1, 1:].mean()),
        embeddings_self_share=float(np.mean([a == b for a, b in zip(top_token[0], tokens)])),
        next_prob_embeddings=float(mean_next[0]), next_prob_first_attention=float(mean_next[1]),
        next_prob_first_block=float(mean_next[2]), next_prob_final=float(mean_next[-1]),
        agree_first_block=agree[2],
        first_full_agreement=stages[len(agree) - next(i for i, a in enumerate(reversed(agree)) if a < 1.0)
                                    if min(agree) < 1.0 else 0],
        n_params=fields["n_params"],
        step_layer=st.layer, step_position=st.position, step_token=st.token, step_n_stages=len(st.stages),
        step_n_head=st.n_head, step_d_head=st.d_head, step_d_ff=by["MLP up (4d)"].size,
        step_all_shown=all(len(s.values) == s.size for s in st.stages), step_max_values=max(len(s.values) for s in st.stages),
        step_in_norm=float(np.linalg.norm(by["residual stream in"].values)),
        step_ln_mean=float(ln.mean()), step_ln_std=float(ln.std()),
        step_top_head=int(weights.heads[top]) + 1, step_top_weight=float(weights.values[top]),
        step_top_token=fields["tokens"][int(weights.positions[top])], step_top_position=int(weights.positions[top]),
        step_attn_norm=float(np.linalg.norm(by["output projection"].values)),
        step_mid_norm=float(np.linalg.norm(by["residual + attention"].values)),
        step_gelu_small=st.gelu_small, step_gelu_negative=st.gelu_negative,
        step_mlp_norm=float(np.linalg.norm(by["MLP down"].values)),
        step_out_norm=float(np.linalg.norm(by["residual + MLP"].values)),
        mod_model=mod.model, mod_gpt2=int(mod.n_params[0]), mod_final=int(mod.n_params[-1]),
        mod_published=mod.published, mod_matches=bool(mod.n_params[-1] == mod.published),
        mod_norm_delta=int(delta[0]), mod_bias_delta=int(delta[1]), mod_rope_delta=int(delta[2]),
        mod_swiglu_delta=int(delta[3]), mod_gqa_delta=int(delta[4]), mod_untie_delta=int(delta[5]),
        mod_kv_gpt2_kib=float(mod.kv_bytes_per_token[0] / 1024),
        mod_kv_final_kib=float(mod.kv_bytes_per_token[-1] / 1024),
        depth_models=len(real), tiny_block_share=float(blocks[0]),
        small_name=dep.names[small], small_block_share=float(blocks[small]),
        small_unembedding_flop_share=float(unembed_flops[small]),
        big_name=dep.names[big], big_layers=int(dep.n_layer[big]), big_block_share=float(blocks[big]),
        big_unembedding_flop_share=float(unembed_flops[big]),
        big_per_block=int(dep.params[big, [PARTS.index("attention"), PARTS.index("MLP"), PARTS.index("norms")]].sum()
                          // dep.n_layer[big]),
        block_share_min=float(blocks[real].min()), block_share_max=float(blocks[real].max()),
        layers_min=int(dep.n_layer[real].min()), layers_max=int(dep.n_layer[real].max()),
    )
    return BlockResults(**fields, facts=facts)
