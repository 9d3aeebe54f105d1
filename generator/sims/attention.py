"""Self-attention in the trained tiny GPTs: who each head looks at, and what length costs.

Simulated: the pretraining chapter's models themselves (loaded through `memo`, the same cached
weights, never retrained), run forward on a story prompt from the grammar; for one chosen model,
every head's scores q.k / sqrt(d_head), its weights under the causal mask, and the weights the
same scores would give without the mask (softmax over every key, later ones too: what a head
would do if it could see the future; the queries and keys themselves still come from the causal
model). Then every head of every model is scored on held-out stories: how much weight it puts
on the previous token, and how much on the token that followed the previous occurrence of the
current token (an induction score: where the story went on last time). Uniform attention's
scores are given for comparison. Cost: the FLOPs of Q K^T and of W V at each sequence length,
by formula (generator.sims.attention_cost), per layer of the chosen model and of GPT-2 small.
Not simulated: KV caches, memory-saving kernels, attention variants (multi-query, sliding
windows) and anything the models were not trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.sims.attention_cost import attention_flops
from generator.sims.family import Memo, WithFamily, load_models, model_configs, model_name, prompt_tokens, uncached
from generator.sims.gpt import gpt, softmax
from generator.sims.stories import World, corpus
from generator.sims.train import TrainedModel, fitting_starts, windows

# A real model to compare cost with: GPT-2 small's attention, 12 heads of 64 dimensions.
REFERENCE_NAME, REFERENCE_N_HEAD, REFERENCE_D_HEAD = "GPT-2 small", 12, 64


@dataclass(frozen=True)
class HeadScores:
    """Every head of every model in the family, scored on held-out stories (one entry per head)."""

    model_layers: np.ndarray  # [n_heads_total] int  the model's n_layer
    model_heads: np.ndarray  # [n_heads_total] int  the model's n_head
    layer: np.ndarray  # [n_heads_total] int  from 1
    head: np.ndarray  # [n_heads_total] int  from 1
    previous_token: np.ndarray  # [n_heads_total]  mean weight on the key just before the query
    induction: np.ndarray  # [n_heads_total]  mean weight on the key after the query's last occurrence
    uniform_previous_token: float  # the same scores for uniform causal attention
    uniform_induction: float
    n_windows: int
    n_induction_queries: int  # query positions whose token occurred before


@dataclass(frozen=True)
class Cost:
    seq_lengths: np.ndarray  # [n_n]
    flops_model: np.ndarray  # [n_n] Q K^T and W V, every head of one layer of the chosen model
    flops_reference: np.ndarray  # [n_n] the same for GPT-2 small
    reference: str
    reference_n_head: int
    reference_d_head: int
    doubling_ratio: float  # FLOPs at twice the shortest length over FLOPs at the shortest


@dataclass(frozen=True)
class AttentionResults:
    tokens: tuple[str, ...]  # [n_seq] the prompt, END first (the models read stories after END)
    n_layer: int
    n_head: int
    n_embd: int
    d_head: int
    heldout_loss: float  # bits per token, the chosen model's
    scores: np.ndarray  # [n_layer, n_head, n_seq, n_seq]  q.k / sqrt(d_head), before the mask
    weights: np.ndarray  # [n_layer, n_head, n_seq, n_seq]  softmax(scores + M)
    unmasked: np.ndarray  # [n_layer, n_head, n_seq, n_seq]  softmax(scores)
    future_share: np.ndarray  # [n_layer, n_head]  unmasked weight on later keys, mean over queries
    heads: HeadScores
    cost: Cost
    facts: AttentionFacts


def simulate(config: WithFamily, memo: Memo = uncached) -> AttentionResults:
    """Load the family (through memo), trace the chosen model on the prompt, score every head."""
    grid, family = config.grid, config.family
    configs = model_configs(family)
    tokens = prompt_tokens(grid.prompt)
    models = load_models(family, memo)
    chosen = next(m for m, c in zip(models, configs) if (c.n_layer, c.n_head) == (grid.n_layer, grid.n_head))
    index = {w: i for i, w in enumerate(chosen.vocab)}
    trace = gpt(np.array([[index[w] for w in tokens]]), chosen.params, grid.n_head)
    scores = np.stack([b.scores[0] for b in trace.blocks]).astype(np.float64)  # [n_layer, n_head, n_seq, n_seq]
    weights = np.stack([b.weights[0] for b in trace.blocks]).astype(np.float64)
    unmasked = softmax(scores)
    d_head = family.n_embd // grid.n_head
    lengths = np.asarray(grid.seq_lengths, dtype=np.int64)
    heads = score_heads(models, scored_windows(grid.scored_stories, family))
    cost = Cost(
        seq_lengths=lengths,
        flops_model=grid.n_head * attention_flops(lengths, d_head),
        flops_reference=REFERENCE_N_HEAD * attention_flops(lengths, REFERENCE_D_HEAD),
        reference=REFERENCE_NAME, reference_n_head=REFERENCE_N_HEAD,
        reference_d_head=REFERENCE_D_HEAD,
        doubling_ratio=float(attention_flops(2 * lengths[0], d_head) / attention_flops(lengths[0], d_head)),
    )
    return AttentionResults(
        tokens=tokens,
        n_layer=grid.n_layer,
        n_head=grid.n_head,
        n_embd=family.n_embd,
        d_head=d_head,
        heldout_loss=float(chosen.heldout_loss[-1]),
        scores=scores,
        weights=weights,
        unmasked=unmasked,
        future_share=future_share(unmasked),
        heads=heads,
        cost=cost,
        facts=facts(tokens, weights, unmasked, heads, cost, grid, family, float(chosen.heldout_loss[-1])),
    )


def future_share(weights):  # [..., n_seq, n_seq] -> [...]
    """Weight on keys after the query, averaged over the queries that have any (all but the last)."""
    n_seq = weights.shape[-1]
    later = np.triu(np.ones((n_seq, n_seq), dtype=bool), k=1)  # [n_seq, n_seq]
    return (weights * later).sum(axis=-1)[..., :-1].mean(axis=-1)


# ---------------------------------------------------------------------------------------------
# Scoring heads


def scored_windows(n_stories: int, family):  # int, PretrainingGrid -> [n_windows, n_ctx] int
    """Windows of held-out stories (the seed the held-out data uses), one starting at each story."""
    stories = corpus(World(), n_stories, [family.seed, 1])
    starts = fitting_starts(stories.starts, len(stories.ids), family.n_ctx)
    return windows(stories.ids, starts, family.n_ctx)[0]


def previous_token_targets(ids):  # [n_batch, n_seq] int -> mask [n_batch, n_seq, n_seq]
    """True at (query i, key i - 1) for every query after the first."""
    n_batch, n_seq = ids.shape
    return np.broadcast_to(np.eye(n_seq, k=-1, dtype=bool), (n_batch, n_seq, n_seq))


def induction_targets(ids):  # [n_batch, n_seq] int -> mask [n_batch, n_seq, n_seq]
    """True at (query i, key j + 1) where j < i - 1 is the last earlier position holding ids[i].

    Example: ids [[7, 8, 9, 7]] -> True only at (3, 1): the 7 at 3 last occurred at 0, then came 8.
    """
    n_batch, n_seq = ids.shape
    out = np.zeros((n_batch, n_seq, n_seq), dtype=bool)
    for b in range(n_batch):
        last: dict[int, int] = {}
        for i, token in enumerate(ids[b].tolist()):
            j = last.get(token)
            if j is not None and j + 1 < i:
                out[b, i, j + 1] = True
            last[token] = i
    return out


def target_weight(weights, targets):  # [n_batch, n_head, n_seq, n_seq], [n_batch, n_seq, n_seq] -> [n_head]
    """Mean weight a head puts on the target key, over the queries that have one."""
    return weights.transpose(1, 0, 2, 3)[:, targets].mean(axis=-1)


def uniform_weights(n_seq):  # int -> [1, 1, n_seq, n_seq]
    """Causal attention that spreads evenly over itself and every earlier key."""
    return (np.tril(np.ones((n_seq, n_seq))) / np.arange(1, n_seq + 1)[:, None])[None, None]


def score_heads(models: list[TrainedModel], ids) -> HeadScores:  # [n_windows, n_ctx] int -> HeadScores
    """Previous-token and induction scores of every head of every model."""
    previous, induction = previous_token_targets(ids), induction_targets(ids)
    rows = []
    for m in models:
        trace = gpt(ids, m.params, m.config.n_head)
        for layer, b in enumerate(trace.blocks, start=1):
            w = b.weights.astype(np.float64)
            for head, (p, s) in enumerate(zip(target_weight(w, previous), target_weight(w, induction)), start=1):
                rows.append((m.config.n_layer, m.config.n_head, layer, head, p, s))
    n_batch, n_seq = ids.shape
    uniform = np.broadcast_to(uniform_weights(n_seq), (n_batch, 1, n_seq, n_seq))
    columns = list(zip(*rows))
    return HeadScores(
        model_layers=np.array(columns[0]), model_heads=np.array(columns[1]),
        layer=np.array(columns[2]), head=np.array(columns[3]),
        previous_token=np.array(columns[4]), induction=np.array(columns[5]),
        uniform_previous_token=float(target_weight(uniform, previous)[0]),
        uniform_induction=float(target_weight(uniform, induction)[0]),
        n_windows=len(ids), n_induction_queries=int(induction.sum()),
    )


# ---------------------------------------------------------------------------------------------
# What the prose quotes


@dataclass(frozen=True)
class AttentionFacts:
    strongest_weight: float  # the largest weight on an earlier key other than the first (END)
    strongest_layer: int
    strongest_head: int
    strongest_query: int
    strongest_query_token: str
    strongest_key: int
    strongest_key_token: str
    n_seq: int
    model: str
    n_layer: int
    n_head: int
    n_embd: int
    d_head: int
    heldout_loss: float
    future_share_mean: float
    future_share_max: float
    masked_weight_total: float
    n_heads_scored: int
    n_windows: int
    n_induction_queries: int
    uniform_induction: float
    uniform_previous: float
    top_induction: float
    top_induction_ratio: float
    top_induction_model: str
    top_induction_layer: int
    top_induction_head: int
    top_previous: float
    top_previous_ratio: float
    top_previous_model: str
    top_previous_layer: int
    top_previous_head: int
    one_layer_top_induction: float
    deeper_top_induction: float
    reference: str
    reference_n_head: int
    reference_d_head: int
    shortest: int
    longest: int
    flops_model_shortest: int
    flops_reference_shortest: int
    flops_reference_longest: int
    doubling_ratio: float
    length_ratio: int
    flops_ratio: float


def facts(tokens, weights, unmasked, h: HeadScores, c: Cost, grid, family, heldout_loss: float) -> AttentionFacts:
    """The numbers the chapter's prose quotes."""
    top_induction = int(np.argmax(h.induction))
    top_previous = int(np.argmax(h.previous_token))
    lengths = [int(n) for n in c.seq_lengths]
    # The strongest single weight on an earlier token other than the first (END, where heads
    # with nothing to look at park their weight).
    n_seq = len(tokens)
    elsewhere = np.tril(np.ones((n_seq, n_seq), dtype=bool), k=-1) & (np.arange(n_seq) > 0)
    layer, head, query, key = np.unravel_index(np.argmax(np.where(elsewhere, weights, -1)), weights.shape)
    shares = future_share(unmasked)
    return AttentionFacts(
        strongest_weight=float(weights[layer, head, query, key]),
        strongest_layer=int(layer) + 1, strongest_head=int(head) + 1,
        strongest_query=int(query), strongest_query_token=tokens[query],
        strongest_key=int(key), strongest_key_token=tokens[key],
        n_seq=n_seq, model=model_name(grid.n_layer, grid.n_head),
        n_layer=grid.n_layer, n_head=grid.n_head, n_embd=family.n_embd,
        d_head=family.n_embd // grid.n_head, heldout_loss=heldout_loss,
        future_share_mean=float(shares.mean()), future_share_max=float(shares.max()),
        masked_weight_total=float(np.triu(weights.sum(axis=(0, 1)), k=1).sum()),
        n_heads_scored=len(h.layer), n_windows=h.n_windows,
        n_induction_queries=h.n_induction_queries,
        uniform_induction=h.uniform_induction, uniform_previous=h.uniform_previous_token,
        top_induction=float(h.induction[top_induction]),
        top_induction_ratio=float(h.induction[top_induction] / h.uniform_induction),
        top_induction_model=model_name(int(h.model_layers[top_induction]), int(h.model_heads[top_induction])),
        top_induction_layer=int(h.layer[top_induction]), top_induction_head=int(h.head[top_induction]),
        top_previous=float(h.previous_token[top_previous]),
        top_previous_ratio=float(h.previous_token[top_previous] / h.uniform_previous_token),
        top_previous_model=model_name(int(h.model_layers[top_previous]), int(h.model_heads[top_previous])),
        top_previous_layer=int(h.layer[top_previous]), top_previous_head=int(h.head[top_previous]),
        one_layer_top_induction=float(h.induction[h.model_layers == 1].max()),
        deeper_top_induction=(float(h.induction[h.model_layers > 1].max())
                              if (h.model_layers > 1).any() else 0.0),
        reference=c.reference, reference_n_head=c.reference_n_head,
        reference_d_head=c.reference_d_head, shortest=lengths[0], longest=lengths[-1],
        flops_model_shortest=int(c.flops_model[0]),
        flops_reference_shortest=int(c.flops_reference[0]),
        flops_reference_longest=int(c.flops_reference[-1]),
        doubling_ratio=c.doubling_ratio, length_ratio=lengths[-1] // lengths[0],
        flops_ratio=float(c.flops_reference[-1] / c.flops_reference[0]),
    )
