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

from generator.grids import BlockGrid, PretrainingGrid
from generator.sims.attention import family_member, prompt_tokens
from generator.sims.gpt import gpt, layer_norm, softmax
from generator.sims.pretraining import Memo, compute
from generator.sims.train import train_model

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


def simulate(config: tuple[BlockGrid, PretrainingGrid], memo: Memo = compute) -> BlockResults:
    """Load the chosen model (through memo), trace the prompt, read the stream at every stage."""
    grid, family = config
    tokens = prompt_tokens(grid.prompt, family.n_ctx, "grids.block")
    model = memo(train_model, family_member(grid.n_layer, grid.n_head, family, "grids.block"))
    index = {w: i for i, w in enumerate(model.vocab)}
    ids = np.array([[index[w] for w in tokens]])  # [1, n_seq]
    trace = gpt(ids, model.params, grid.n_head)
    streams = [trace.x[0]] + [s[0] for b in trace.blocks for s in (b.x_attn, b.x_mlp)]  # [n_stage] x [n_seq, n_embd]
    probs = np.stack([logit_lens(s.astype(np.float64), model.params) for s in streams])  # [n_stage, n_seq, n_vocab]
    top = probs.argmax(axis=-1)  # [n_stage, n_seq]
    return BlockResults(
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
