"""Inside a transformer block: the residual stream of a trained tiny GPT, read layer by layer.

Simulated: one model of the pretraining family (loaded through `memo`, the same cached weights,
never retrained) run forward on a story prompt. Each pre-LayerNorm block adds an attention
output and then an MLP output to the residual stream; the stream's length (L2 norm) is recorded
at each position after the embeddings and after each of those additions. The "logit lens"
unembeds the stream at each of those points with the model's own final LayerNorm and its tied
unembedding (the token embeddings read backwards), giving the top next-token guess and the
probability of the token that actually comes next, as if the model stopped there. Parameter
counts per component (embeddings, attention, MLP, final LayerNorm) come from one formula for
GPT-2's architecture, applied to the tiny models and to larger configurations.
Not simulated: models other than GPT-2's layout (no RMSNorm, gated MLPs or grouped-query
attention), and the larger models themselves: only their parameter counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.sims.family import Memo, WithFamily, load_member, model_name, prompt_tokens, uncached
from generator.sims.gpt import gpt, layer_norm, softmax

COMPONENTS = ("embeddings", "attention", "MLP", "final LayerNorm")


@dataclass(frozen=True)
class ParamCount:
    name: str
    n_layer: int
    n_embd: int
    n_vocab: int
    n_ctx: int
    counts: tuple[int, ...]  # [len(COMPONENTS)]


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
    params: tuple[ParamCount, ...]  # the chosen tiny model first, then the larger configurations
    facts: BlockFacts


def simulate(config: WithFamily, memo: Memo = uncached) -> BlockResults:
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
    return with_facts(
        tokens=tokens,
        n_layer=grid.n_layer,
        n_head=grid.n_head,
        n_embd=family.n_embd,
        heldout_loss=float(model.heldout_loss[-1]),
        stages=("embeddings", *(f"layer {i} {part}" for i in range(1, grid.n_layer + 1)
                                for part in ("attention", "MLP"))),
        norms=np.stack([np.linalg.norm(s.astype(np.float64), axis=-1) for s in streams]),
        top_token=tuple(tuple(model.vocab[i] for i in row) for row in top),
        top_prob=probs.max(axis=-1),
        next_prob=probs[:, np.arange(len(tokens) - 1), ids[0, 1:]],  # [n_stage, n_seq - 1]
        final_logits=trace.logits[0].astype(np.float64),
        params=(count_params(f"this chapter's model ({grid.n_layer} layers)", grid.n_layer, family.n_embd,
                             len(model.vocab), family.n_ctx),
                *(count_params(*c) for c in grid.larger_models)),
    )


def logit_lens(x, params):  # [n_seq, n_embd], params -> [n_seq, n_vocab]
    """Next-token probabilities if the residual stream x went straight to the output."""
    return softmax(layer_norm(x, **params["ln_f"]) @ params["wte"].T.astype(np.float64))


def count_params(name, n_layer, n_embd, n_vocab, n_ctx) -> ParamCount:
    """GPT-2's parameters by component (the unembedding is tied to the token embedding).

    Example: count_params("tiny", 1, 4, 10, 8).counts -> (72, 88, 156, 8)
    """
    d = n_embd
    layer_norm_params = 2 * d  # gain and bias
    attention = layer_norm_params + (d * 3 * d + 3 * d) + (d * d + d)  # ln_1, c_attn, c_proj
    mlp = layer_norm_params + (d * 4 * d + 4 * d) + (4 * d * d + d)  # ln_2, c_fc, c_proj
    return ParamCount(name, n_layer, n_embd, n_vocab, n_ctx,
                      (n_vocab * d + n_ctx * d, n_layer * attention, n_layer * mlp, layer_norm_params))


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
    tiny_total: int
    tiny_mlp_share: float
    tiny_attention_share: float
    tiny_embedding_share: float
    small_total: int
    small_layers: int
    small_embd: int
    small_mlp_share: float
    small_embedding_share: float
    xl_total: int
    xl_layers: int
    xl_embd: int
    xl_mlp_share: float
    xl_embedding_share: float
    big_name: str
    big_total: int
    big_layers: int
    big_embd: int
    big_block_share: float
    big_per_block: int


# Larger configurations the prose names (generator.grids.BlockGrid requires both).
SMALL, XL = "GPT-2 small", "GPT-2 XL"


def with_facts(**fields) -> BlockResults:
    """BlockResults with the facts its prose quotes."""
    tokens, stages, norms, top_token = fields["tokens"], fields["stages"], fields["norms"], fields["top_token"]
    mean_next = fields["next_prob"].mean(axis=1)  # [n_stage]
    agree = [float(np.mean([a == b for a, b in zip(row, top_token[-1])])) for row in top_token]
    tiny, *larger = fields["params"]
    by_name = {p.name: p for p in larger}
    small, xl, big = by_name[SMALL], by_name[XL], larger[-1]

    def share(p: ParamCount, i: int) -> float:
        return p.counts[i] / sum(p.counts)

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
        tiny_total=sum(tiny.counts), tiny_mlp_share=share(tiny, 2),
        tiny_attention_share=share(tiny, 1), tiny_embedding_share=share(tiny, 0),
        small_total=sum(small.counts), small_layers=small.n_layer, small_embd=small.n_embd,
        small_mlp_share=share(small, 2), small_embedding_share=share(small, 0),
        xl_total=sum(xl.counts), xl_layers=xl.n_layer, xl_embd=xl.n_embd,
        xl_mlp_share=share(xl, 2), xl_embedding_share=share(xl, 0),
        big_name=big.name, big_total=sum(big.counts), big_layers=big.n_layer, big_embd=big.n_embd,
        big_block_share=(big.counts[1] + big.counts[2]) / sum(big.counts),
        big_per_block=(big.counts[1] + big.counts[2]) // big.n_layer,
    )
    return BlockResults(**fields, facts=facts)
