"""Self-attention in the trained tiny GPTs: who each head looks at, and what length costs.

Simulated: the pretraining chapter's models themselves (loaded through `memo`, the same cached
weights, never retrained), run forward on a story prompt from the grammar; for one chosen model,
every head's scores q.k / sqrt(d_head), its weights under the causal mask, and the weights the
same scores would give without the mask (softmax over every key, later ones too: what a head
would do if it could see the future; the queries and keys themselves still come from the causal
model). Then every head of every model is probed with generator.sims.probes: on held-out
stories, its weight on the previous token, on the tokens that followed earlier occurrences of
the current token (induction), on the first token (END) and on the last few tokens (local), and
its entropy; on repeated random tokens (Olsson et al. 2022: END, random tokens of the model's
vocabulary, the same tokens again), its weight on the token after the first occurrence; and
from those scores its label (induction, previous-token, first-token, local or diffuse, by the
thresholds probes states). Uniform attention's scores are given for comparison. Cost: the FLOPs of Q K^T and of W V at each sequence length,
by formula (generator.sims.attention_cost), per layer of the chosen model and of GPT-2 small.
Not simulated: KV caches, memory-saving kernels, attention variants (multi-query, sliding
windows) and anything the models were not trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.sims import probes
from generator.sims.attention_cost import attention_flops
from generator.sims.family import Memo, WithFamily, load_models, model_configs, model_name, prompt_tokens, uncached
from generator.sims.gpt import gpt, softmax
from generator.sims.stories import END, World, corpus
from generator.sims.train import TrainedModel, fitting_starts, probe_tokens, windows

# A real model to compare cost with: GPT-2 small's attention, 12 heads of 64 dimensions.
REFERENCE_NAME, REFERENCE_N_HEAD, REFERENCE_D_HEAD = "GPT-2 small", 12, 64
PROBE_STREAM = 6  # the repeated-tokens probe's random stream: rng([family seed, PROBE_STREAM])
SCORES = ("previous_token", "previous_probe", "induction", "repeated_tokens", "repeated_any", "first_token", "local", "entropy")


@dataclass(frozen=True)
class HeadScores:
    """Every head of every model in the family, probed by generator.sims.probes (one entry per head)."""

    model_layers: np.ndarray  # [n_heads_total] int  the model's n_layer
    model_heads: np.ndarray  # [n_heads_total] int  the model's n_head
    layer: np.ndarray  # [n_heads_total] int  from 1
    head: np.ndarray  # [n_heads_total] int  from 1
    previous_token: np.ndarray  # [n_heads_total]  mean weight on the key just before the query
    previous_probe: np.ndarray  # [n_heads_total]  the same on the repeated-tokens probe
    induction: np.ndarray  # [n_heads_total]  mean weight on the keys after earlier occurrences
    repeated_tokens: np.ndarray  # [n_heads_total]  repeated random sounds: weight on the token after the first copy
    repeated_any: np.ndarray  # [n_heads_total]  the same probe with tokens from the whole vocabulary
    first_token: np.ndarray  # [n_heads_total]  mean weight on key 0 (END)
    local: np.ndarray  # [n_heads_total]  mean weight on the query and the keys just before it
    entropy: np.ndarray  # [n_heads_total]  bits
    labels: tuple[str, ...]  # [n_heads_total]  probes.label of each head's scores
    uniform: dict  # score name (as in SCORES) -> its value for uniform causal attention
    n_windows: int
    n_induction_queries: int  # query positions whose token occurred before (with a key after it)
    probe_half: int  # random tokens in each copy of the probe


@dataclass(frozen=True)
class Formation:
    """One model's heads along its training, from the probes taken at each checkpoint."""

    n_layer: int
    n_head: int
    steps: np.ndarray  # [n_ckpt] int
    top_repeated: np.ndarray  # [n_ckpt]  strongest repeated-tokens score (sounds) over the heads
    top_repeated_any: np.ndarray  # [n_ckpt]  strongest on tokens from the whole vocabulary
    top_previous: np.ndarray  # [n_ckpt]  strongest previous-token score on the probe
    top_induction: np.ndarray  # [n_ckpt]  strongest induction (prefix-matching) score on held-out text
    loss: np.ndarray  # [n_ckpt]  held-out bits per token
    icl: np.ndarray  # [n_ckpt]  in-context-learning score, bits


def formation(m: TrainedModel) -> Formation:
    heads = m.checkpoint_heads
    return Formation(
        n_layer=m.config.n_layer, n_head=m.config.n_head, steps=np.array(m.config.checkpoints),
        top_repeated=np.array([h.repeated_tokens.max() for h in heads]),
        top_repeated_any=np.array([h.repeated_any.max() for h in heads]),
        top_previous=np.array([h.previous_probe.max() for h in heads]),
        top_induction=np.array([h.induction.max() for h in heads]),
        loss=m.checkpoint_loss, icl=m.checkpoint_icl)


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
    formations: tuple[Formation, ...]  # every model of the family, smallest first
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
    d_head = family.head_width
    lengths = np.asarray(grid.seq_lengths, dtype=np.int64)
    heads = score_heads(models, scored_windows(grid.scored_stories, family), family.seed)
    formations = tuple(formation(m) for m in sorted(models, key=lambda m: m.n_params))
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
        n_embd=family.n_embd(grid.n_head),
        d_head=d_head,
        heldout_loss=float(chosen.heldout_loss[-1]),
        scores=scores,
        weights=weights,
        unmasked=unmasked,
        future_share=future_share(unmasked),
        heads=heads,
        formations=formations,
        cost=cost,
        facts=facts(tokens, weights, unmasked, heads, formations, cost, grid, family,
                    float(chosen.heldout_loss[-1])),
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


def score_heads(models: list[TrainedModel], ids, seed: int) -> HeadScores:  # [n_windows, n_ctx] int
    """Every head of every model probed on the story windows ids and on repeated random tokens
    (the same probe for every model: each draws it from rng([seed, PROBE_STREAM]))."""
    pool, half = probe_tokens(models[0].vocab, ids.shape[1])
    per_model = [probes.score_heads(m.params, m.config.n_head, ids, half,
                                    np.random.default_rng([seed, PROBE_STREAM]), m.vocab.index(END), pool)
                 for m in models]
    joined = {name: np.concatenate([getattr(s, name) for s in per_model]) for name in ("layer", "head") + SCORES}
    return HeadScores(
        model_layers=np.concatenate([np.full(len(s.layer), m.config.n_layer) for m, s in zip(models, per_model)]),
        model_heads=np.concatenate([np.full(len(s.layer), m.config.n_head) for m, s in zip(models, per_model)]),
        labels=tuple(label for s in per_model for label in s.labels),
        uniform=per_model[0].uniform,  # the same windows and probe positions for every model
        n_windows=len(ids), n_induction_queries=int(probes.induction_targets(ids).any(axis=-1).sum()),
        probe_half=half, **joined,
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
    strongest_next_token: str  # the token after the query (what it helps predict); "" at the end
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
    top_previous_probe: float  # the strongest previous-token score on the probe
    uniform_previous_probe: float
    top_previous_probe_model: str
    top_previous_probe_layer: int
    top_previous_probe_head: int
    one_layer_top_induction: float
    deeper_top_induction: float
    one_layer_top_repeated: float  # the strongest repeated-tokens score of a 1-layer model's head
    deeper_top_repeated: float
    top_repeated_any: float  # the strongest repeated-tokens head's score on tokens of the whole vocabulary
    uniform_repeated_any: float
    n_sounds: int  # the probe's pool
    open_layer: int  # the heatmap opens on the shown model's strongest repeated-tokens head
    open_head: int
    open_repeated: float
    open_previous_layer: int  # and its strongest previous-token head
    open_previous_head: int
    open_previous: float
    formed: bool  # the shown model's strongest repeated-tokens score reached INDUCTION_MIN in training
    formed_step: int  # the first checkpoint at which it did (0 if never)
    rise_from: int  # the checkpoints between which that score rose most
    rise_to: int
    rise_score_from: float
    rise_score_to: float
    rise_loss_from: float  # held-out bits per token at those checkpoints
    rise_loss_to: float
    rise_icl_from: float
    rise_icl_to: float
    n_checkpoints: int
    one_layer_formation_top: float  # the most the 1-layer model's strongest repeated-tokens score reached
    formation_models: str  # the models in the formation chart
    probe_half: int  # random tokens in each copy of the repeated-tokens probe
    probe_length: int  # END and both copies
    uniform_repeated: float
    uniform_first: float
    uniform_local: float
    top_repeated: float
    top_repeated_ratio: float
    top_repeated_model: str
    top_repeated_layer: int
    top_repeated_head: int
    top_first: float
    top_local: float
    mean_first: float  # over every head of every model
    mean_entropy: float  # bits, over every head of every model
    uniform_entropy: float
    n_induction_heads: int
    n_previous_token_heads: int
    n_first_token_heads: int
    n_local_heads: int
    n_diffuse_heads: int
    any_induction_head: bool
    any_previous_token_head: bool
    induction_min: float  # the labels' thresholds (generator.sims.probes)
    previous_min: float
    first_min: float
    local_min: float
    local_window: int
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


def facts(tokens, weights, unmasked, h: HeadScores, formations, c: Cost, grid, family,
          heldout_loss: float) -> AttentionFacts:
    """The numbers the chapter's prose quotes."""
    shown = (h.model_layers == grid.n_layer) & (h.model_heads == grid.n_head)
    open_i = int(np.flatnonzero(shown)[np.argmax(h.repeated_tokens[shown])])
    prev_i = int(np.flatnonzero(shown)[np.argmax(h.previous_probe[shown])])
    f = next(x for x in formations if (x.n_layer, x.n_head) == (grid.n_layer, grid.n_head))
    reached = np.flatnonzero(f.top_repeated >= probes.INDUCTION_MIN)
    rise = int(np.argmax(np.diff(f.top_repeated)))
    one_layer = [x for x in formations if x.n_layer == 1]
    top_induction = int(np.argmax(h.induction))
    top_previous = int(np.argmax(h.previous_token))
    top_probe_prev = int(np.argmax(h.previous_probe))
    top_repeated = int(np.argmax(h.repeated_tokens))
    count = {label: h.labels.count(label) for label in probes.LABELS}
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
        strongest_next_token=tokens[query + 1] if query + 1 < n_seq else "",
        n_seq=n_seq, model=model_name(grid.n_layer, grid.n_head),
        n_layer=grid.n_layer, n_head=grid.n_head, n_embd=family.n_embd(grid.n_head),
        d_head=family.head_width, heldout_loss=heldout_loss,
        future_share_mean=float(shares.mean()), future_share_max=float(shares.max()),
        masked_weight_total=float(np.triu(weights.sum(axis=(0, 1)), k=1).sum()),
        n_heads_scored=len(h.layer), n_windows=h.n_windows,
        n_induction_queries=h.n_induction_queries,
        uniform_induction=h.uniform["induction"], uniform_previous=h.uniform["previous_token"],
        top_induction=float(h.induction[top_induction]),
        top_induction_ratio=float(h.induction[top_induction] / h.uniform["induction"]),
        top_induction_model=model_name(int(h.model_layers[top_induction]), int(h.model_heads[top_induction])),
        top_induction_layer=int(h.layer[top_induction]), top_induction_head=int(h.head[top_induction]),
        top_previous=float(h.previous_token[top_previous]),
        top_previous_ratio=float(h.previous_token[top_previous] / h.uniform["previous_token"]),
        top_previous_model=model_name(int(h.model_layers[top_previous]), int(h.model_heads[top_previous])),
        top_previous_layer=int(h.layer[top_previous]), top_previous_head=int(h.head[top_previous]),
        top_previous_probe=float(h.previous_probe[top_probe_prev]), uniform_previous_probe=h.uniform["previous_probe"],
        top_previous_probe_model=model_name(int(h.model_layers[top_probe_prev]), int(h.model_heads[top_probe_prev])),
        top_previous_probe_layer=int(h.layer[top_probe_prev]), top_previous_probe_head=int(h.head[top_probe_prev]),
        one_layer_top_induction=float(h.induction[h.model_layers == 1].max()),
        deeper_top_induction=(float(h.induction[h.model_layers > 1].max())
                              if (h.model_layers > 1).any() else 0.0),
        one_layer_top_repeated=float(h.repeated_tokens[h.model_layers == 1].max()),
        deeper_top_repeated=(float(h.repeated_tokens[h.model_layers > 1].max())
                             if (h.model_layers > 1).any() else 0.0),
        top_repeated_any=float(h.repeated_any[top_repeated]), uniform_repeated_any=h.uniform["repeated_any"],
        n_sounds=len(World().sounds),
        open_layer=int(h.layer[open_i]), open_head=int(h.head[open_i]),
        open_repeated=float(h.repeated_tokens[open_i]),
        open_previous_layer=int(h.layer[prev_i]), open_previous_head=int(h.head[prev_i]),
        open_previous=float(h.previous_probe[prev_i]),
        formed=len(reached) > 0, formed_step=int(f.steps[reached[0]]) if len(reached) else 0,
        rise_from=int(f.steps[rise]), rise_to=int(f.steps[rise + 1]),
        rise_score_from=float(f.top_repeated[rise]), rise_score_to=float(f.top_repeated[rise + 1]),
        rise_loss_from=float(f.loss[rise]), rise_loss_to=float(f.loss[rise + 1]),
        rise_icl_from=float(f.icl[rise]), rise_icl_to=float(f.icl[rise + 1]),
        n_checkpoints=len(f.steps),
        one_layer_formation_top=float(one_layer[0].top_repeated.max()) if one_layer else 0.0,
        formation_models=", ".join(model_name(x.n_layer, x.n_head) for x in formations),
        probe_half=h.probe_half, probe_length=1 + 2 * h.probe_half,
        uniform_repeated=h.uniform["repeated_tokens"], uniform_first=h.uniform["first_token"],
        uniform_local=h.uniform["local"],
        top_repeated=float(h.repeated_tokens[top_repeated]),
        top_repeated_ratio=float(h.repeated_tokens[top_repeated] / h.uniform["repeated_tokens"]),
        top_repeated_model=model_name(int(h.model_layers[top_repeated]), int(h.model_heads[top_repeated])),
        top_repeated_layer=int(h.layer[top_repeated]), top_repeated_head=int(h.head[top_repeated]),
        top_first=float(h.first_token.max()), top_local=float(h.local.max()),
        mean_first=float(h.first_token.mean()),
        mean_entropy=float(h.entropy.mean()), uniform_entropy=h.uniform["entropy"],
        n_induction_heads=count["induction"], n_previous_token_heads=count["previous-token"],
        n_first_token_heads=count["first-token"], n_local_heads=count["local"],
        n_diffuse_heads=count["diffuse"],
        any_induction_head=count["induction"] > 0, any_previous_token_head=count["previous-token"] > 0,
        induction_min=probes.INDUCTION_MIN, previous_min=probes.PREVIOUS_MIN,
        first_min=probes.FIRST_MIN, local_min=probes.LOCAL_MIN, local_window=probes.LOCAL_WINDOW,
        reference=c.reference, reference_n_head=c.reference_n_head,
        reference_d_head=c.reference_d_head, shortest=lengths[0], longest=lengths[-1],
        flops_model_shortest=int(c.flops_model[0]),
        flops_reference_shortest=int(c.flops_reference[0]),
        flops_reference_longest=int(c.flops_reference[-1]),
        doubling_ratio=c.doubling_ratio, length_ratio=lengths[-1] // lengths[0],
        flops_ratio=float(c.flops_reference[-1] / c.flops_reference[0]),
    )
