"""Pretraining: a family of tiny GPTs trained on generated stories, beside what the data allows.

Simulated: one model per (layers, heads) pair of the grid, each trained from scratch on the
same stories with the same minibatches (generator.sims.train); the data's entropy floor, the
grammar's exact -log2 P per token averaged over the held-out targets the models are scored on;
and two baselines fitted by counting the training stories: a unigram model (each token's
frequency) and a bigram model (each token's frequency after the token before it). Both add one
pseudo-count (spread evenly for the unigram, spread as the unigram for the bigram) so that a
pair never seen in training still gets a finite loss.

Models and corpus statistics are computed through `memo(fn, config)` (generator.sims.family),
which the build backs with its on-disk cache: each model is cached on its own, keyed by its
TrainConfig and the code of generator.sims.train and what it imports, so changing one grid
point trains one model, and
editing this module (how results are assembled) retrains nothing. The numbers the prose quotes
are computed here too (PretrainingFacts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from generator.sims.family import Memo, best_model, load_models, model_configs, model_name, uncached
from generator.sims.gpt import gpt, token_log_probs
from generator.sims.stories import World, detokenize
from generator.sims.train import Data, DataConfig, TrainedModel, make_data

if TYPE_CHECKING:
    from generator.grids import PretrainingGrid

@dataclass(frozen=True)
class CorpusSummary:
    vocab: tuple[str, ...]  # [n_vocab]
    n_train_tokens: int
    n_train_stories: int
    n_heldout_windows: int
    n_heldout_targets: int
    entropy_floor: float  # bits per token: the grammar's own loss on the held-out targets
    unigram_loss: float  # bits per token on the held-out targets
    bigram_loss: float
    share_certain: float  # of the held-out targets, the share the story so far decides (P = 1)
    example: str  # the first held-out story
    song_example: str  # the first held-out song
    song_share: float  # of the held-out stream's tokens, the share inside songs


@dataclass(frozen=True)
class Excess:
    """Where one model's held-out loss above the floor is paid."""

    total: float  # bits per token above the grammar's own loss
    on_certain: float  # the part paid on targets the story so far decides (P = 1)


@dataclass(frozen=True)
class Frontier:
    """Loss against training compute (FLOPs = 6 N D: N parameters, D tokens trained on) for the
    whole family, and the compute-efficient frontier: at each compute, the lowest loss any model
    reached with that much (each model's held-out curve interpolated in log compute)."""

    flops: tuple[np.ndarray, ...]  # per model [n_eval] FLOPs spent by each evaluation
    grid: np.ndarray  # [n_grid] FLOPs, log-spaced over the compute every curve has passed
    loss: np.ndarray  # [n_grid] the frontier: the lowest loss at that compute
    leader: np.ndarray  # [n_grid] int  index of the model that reaches it
    switches: tuple[tuple[float, int, int], ...]  # (FLOPs, from model, to model) where the lead changes


@dataclass(frozen=True)
class PretrainingResults:
    n_layers: tuple[int, ...]
    n_heads: tuple[int, ...]
    models: tuple[TrainedModel, ...]  # [n_models], in the grid's order
    train_loss_at_eval: tuple[np.ndarray, ...]  # per model [n_eval] mean minibatch loss since the last eval
    sample_texts: tuple[tuple[tuple[str, ...], ...], ...]  # [model][checkpoint][sample]
    corpus: CorpusSummary
    best_excess: Excess  # the best model's
    frontier: Frontier
    facts: PretrainingFacts


def simulate(grid: PretrainingGrid, memo: Memo = uncached) -> PretrainingResults:
    """Train the family (through memo) and fit the baselines."""
    configs = model_configs(grid)
    corpus = memo(summarise_corpus, configs[0].data)
    models = tuple(load_models(grid, memo))
    excess = excess_loss(best_model(list(models)), make_data(configs[0].data))
    front = frontier(models)
    return PretrainingResults(
        n_layers=grid.n_layers,
        n_heads=grid.n_heads,
        models=models,
        train_loss_at_eval=tuple(train_loss_at_eval(m) for m in models),
        sample_texts=tuple(sample_texts(m) for m in models),
        corpus=corpus,
        best_excess=excess,
        frontier=front,
        facts=facts(models, corpus, excess, front, grid),
    )


# ---------------------------------------------------------------------------------------------
# The data and its baselines


def summarise_corpus(cfg: DataConfig) -> CorpusSummary:
    """Sizes, the entropy floor and the unigram and bigram baselines on the held-out targets."""
    data = make_data(cfg)
    unigram, bigram = count_models(data.train_ids, len(data.vocab))
    return CorpusSummary(
        vocab=data.vocab,
        n_train_tokens=len(data.train_ids),
        n_train_stories=cfg.train_stories,
        n_heldout_windows=len(data.heldout_x),
        n_heldout_targets=int(data.heldout_y.size),
        entropy_floor=float(-data.heldout_log2p.mean()),
        unigram_loss=float(-np.log2(unigram[data.heldout_y]).mean()),
        bigram_loss=float(-np.log2(bigram[data.heldout_x, data.heldout_y]).mean()),
        share_certain=float((data.heldout_log2p == 0).mean()),
        example=first_story(data),
        song_example=first_song(data),
        song_share=song_share(data.heldout),
    )


def first_story(data: Data) -> str:
    """The first held-out story (not a song) as text ("" if none)."""
    return next((detokenize(p) for p in pieces(data.heldout) if p[0] != "song"), "")


def pieces(c) -> list[list[str]]:
    """The stream's pieces (stories and songs) as tokens, without the END around them."""
    bounds = list(c.starts) + [len(c.ids) - 1]
    return [[c.vocab[i] for i in c.ids[a + 1:b]] for a, b in zip(bounds[:-1], bounds[1:])]


def first_song(data: Data) -> str:
    """The first held-out song as text ("" if none)."""
    return next((detokenize(p) for p in pieces(data.heldout) if p[0] == "song"), "")


def song_share(c) -> float:
    """Share of the stream's tokens (each piece with its closing END) that belong to songs."""
    parts = pieces(c)
    return sum(len(p) + 1 for p in parts if p[0] == "song") / sum(len(p) + 1 for p in parts)


def count_models(ids, n_vocab):  # [n_tokens] int -> unigram [n_vocab], bigram [n_vocab, n_vocab]
    """P(token) and P(token | previous token) by counting, each with one pseudo-count."""
    counts = np.bincount(ids, minlength=n_vocab)  # [n_vocab]
    unigram = (counts + 1) / (counts.sum() + n_vocab)
    pairs = np.zeros((n_vocab, n_vocab))
    np.add.at(pairs, (ids[:-1], ids[1:]), 1)
    bigram = (pairs + unigram) / (pairs.sum(axis=1, keepdims=True) + 1)  # row: previous token
    return unigram, bigram


def excess_loss(m: TrainedModel, data: Data) -> Excess:
    """The model's held-out loss above the grammar's, and the part of it on decided targets."""
    logits = gpt(data.heldout_x, m.params, m.config.n_head).logits  # [n_windows, n_seq, n_vocab]
    model_bits = -token_log_probs(logits.astype(np.float64), data.heldout_y) / np.log(2)  # [n_windows, n_seq]
    excess = model_bits + data.heldout_log2p  # the grammar's -log2 P is the floor per target
    certain = data.heldout_log2p == 0
    return Excess(total=float(excess.mean()), on_certain=float((excess * certain).sum() / excess.size))


# ---------------------------------------------------------------------------------------------
# Compute


FRONTIER_POINTS = 80


def training_flops(m: TrainedModel):  # -> [n_eval]
    """6 N D at each evaluation: N parameters, D = the tokens trained on by then (Kaplan et al.
    2020's estimate of a forward and backward pass, attention's n_ctx-dependent part left out)."""
    return 6.0 * m.n_params * m.config.batch_size * m.config.data.n_ctx * m.eval_steps.astype(np.float64)


def frontier(models) -> Frontier:
    """Every model's loss against compute, and the lowest of them at each compute."""
    flops = tuple(training_flops(m) for m in models)
    low = max(f[1] for f in flops)  # past every model's first step
    high = max(f[-1] for f in flops)
    grid = np.geomspace(low, high, FRONTIER_POINTS)
    curves = np.full((len(models), len(grid)), np.inf)
    for i, (m, f) in enumerate(zip(models, flops)):
        inside = grid <= f[-1]
        curves[i, inside] = np.interp(np.log(grid[inside]), np.log(f[1:]), m.heldout_loss[1:])
    leader = np.argmin(curves, axis=0)
    switches = tuple((float(grid[j]), int(leader[j - 1]), int(leader[j]))
                     for j in range(1, len(grid)) if leader[j] != leader[j - 1])
    return Frontier(flops=flops, grid=grid, loss=curves[leader, np.arange(len(grid))], leader=leader,
                    switches=switches)


# ---------------------------------------------------------------------------------------------
# What the charts show of each model


def train_loss_at_eval(m: TrainedModel):  # -> [n_eval]
    """Mean minibatch loss over the steps since the previous evaluation (at step 0: none yet)."""
    out = np.full(len(m.eval_steps), np.nan)
    for i in range(1, len(m.eval_steps)):
        out[i] = m.train_loss[m.eval_steps[i - 1]:m.eval_steps[i]].mean()
    return out


def sample_texts(m: TrainedModel) -> tuple[tuple[str, ...], ...]:
    """Each checkpoint's samples as text, cut after the first story."""
    texts = []
    for checkpoint in m.samples:
        stories = []
        for ids in checkpoint:
            tokens = [m.vocab[i] for i in ids[1:]]
            end = tokens.index("\n") if "\n" in tokens else len(tokens)
            stories.append(detokenize(tokens[:end]))
        texts.append(tuple(stories))
    return tuple(texts)


# ---------------------------------------------------------------------------------------------
# What the prose quotes


@dataclass(frozen=True)
class PretrainingFacts:
    n_models: int
    n_layers: list[int]
    n_heads: list[int]
    n_embds: list[int]  # the width of the models with each head count
    n_ctx: int
    steps: int
    batch_size: int
    tokens_per_step: int
    learning_rate: float
    warmup_steps: int
    train_stories: int
    train_tokens: int
    heldout_windows: int
    heldout_targets: int
    example: str
    song_example: str
    song_share: float
    n_sounds: int
    song_shortest: int
    song_longest: int
    head_width: int
    train_minutes: float  # the family's training time, every model's added up
    share_certain: float
    n_vocab: int
    uniform_loss: float
    floor: float
    unigram: float
    bigram: float
    initial_loss: float  # the best model's, before training
    best_label: str
    best_loss: float
    best_params: int
    best_gap_closed: float  # share of the gap between the bigram baseline and the floor
    worst_label: str
    worst_loss: float
    params_min: int
    params_max: int
    unigram_step: int | None  # the first evaluation at which the best model beats the unigram model
    bigram_step: int | None  # ... and the bigram model
    mid_step: int  # the evaluation nearest half way through training
    mid_loss: float  # the best model's held-out loss there
    excess: float  # the best model's final loss above the floor (bits per token)
    excess_on_certain_share: float  # the share of it paid on targets the story so far decides
    worst_tail_drop: float  # how much the worst model's loss fell over the last quarter of training
    checkpoints: list[int]
    # Scaling: the models by size, and whether each step up in size lowered the final loss
    sizes: list[str]  # model names, by parameter count
    size_params: list[int]
    size_losses: list[float]
    monotone: bool  # every step up in size lowered the final loss
    size_exceptions: list[str]  # "A (N parameters) ends above B (M parameters)" for each step that did not
    smallest_label: str
    largest_label: str
    smallest_loss: float
    largest_loss: float
    size_gain: float  # smallest's final loss minus largest's (bits per token)
    size_ratio: float  # largest's parameters over smallest's
    # Compute: who leads the frontier at the least and the most compute, and where that changes
    flops_low: float
    flops_high: float
    leader_low: str
    leader_high: str
    leader_low_params: int
    leader_high_params: int
    curves_cross: bool  # the leader at low compute is smaller than the leader at high compute
    final_switch_flops: float  # from here on the high-compute leader leads
    n_switches: int
    frontier_models: list[str]  # every model that leads somewhere, in order of compute


def first_step_below(m: TrainedModel, level: float) -> int | None:
    """The first evaluation step at which the model's held-out loss is below level, if any."""
    below = np.flatnonzero(m.heldout_loss < level)
    return int(m.eval_steps[below[0]]) if len(below) else None


def loss_at(m: TrainedModel, step: float) -> tuple[int, float]:
    """The evaluation nearest `step`: its step and the held-out loss there."""
    i = int(np.argmin(np.abs(m.eval_steps - step)))
    return int(m.eval_steps[i]), float(m.heldout_loss[i])


def facts(models: tuple[TrainedModel, ...], c: CorpusSummary, excess: Excess, front: Frontier,
          grid: PretrainingGrid) -> PretrainingFacts:
    """The numbers the chapter's prose quotes, read off the trained family and the corpus."""
    first = models[0].config
    by_size = sorted(models, key=lambda m: m.n_params)
    names = [model_name(m.config.n_layer, m.config.n_head) for m in by_size]
    losses = [float(m.heldout_loss[-1]) for m in by_size]
    exceptions = [f"{names[i + 1]} ({by_size[i + 1].n_params:,} parameters) ends above {names[i]} "
                  f"({by_size[i].n_params:,})" for i in range(len(by_size) - 1) if losses[i + 1] >= losses[i]]
    lead_lo, lead_hi = models[int(front.leader[0])], models[int(front.leader[-1])]
    later = [j for j in range(len(front.leader)) if front.leader[j] != front.leader[-1]]
    order = list(dict.fromkeys(int(i) for i in front.leader))
    final = np.array([m.heldout_loss[-1] for m in models])
    b, worst = best_model(list(models)), models[int(np.argmax(final))]

    mid_step, mid_loss = loss_at(b, first.steps / 2)
    _, worst_three_quarters = loss_at(worst, 0.75 * first.steps)

    return PretrainingFacts(
        n_models=len(models), n_layers=sorted(set(grid.n_layers)), n_heads=sorted(set(grid.n_heads)),
        n_embds=[grid.n_embd(h) for h in sorted(set(grid.n_heads))], n_ctx=first.data.n_ctx, steps=first.steps,
        batch_size=first.batch_size, tokens_per_step=first.batch_size * first.data.n_ctx,
        learning_rate=first.learning_rate, warmup_steps=first.warmup_steps,
        train_stories=c.n_train_stories, train_tokens=c.n_train_tokens,
        heldout_windows=c.n_heldout_windows, heldout_targets=c.n_heldout_targets,
        example=c.example, song_example=c.song_example, song_share=c.song_share,
        n_sounds=len(World().sounds), song_shortest=World().song_lengths[0], song_longest=World().song_lengths[1],
        head_width=grid.head_width, train_minutes=sum(m.wall_seconds for m in models) / 60,
        share_certain=c.share_certain, n_vocab=len(c.vocab),
        uniform_loss=float(np.log2(len(c.vocab))), floor=c.entropy_floor,
        unigram=c.unigram_loss, bigram=c.bigram_loss,
        initial_loss=float(b.heldout_loss[0]),
        best_label=model_name(b.config.n_layer, b.config.n_head),
        best_loss=float(b.heldout_loss[-1]), best_params=b.n_params,
        best_gap_closed=float((c.bigram_loss - b.heldout_loss[-1]) / (c.bigram_loss - c.entropy_floor)),
        worst_label=model_name(worst.config.n_layer, worst.config.n_head),
        worst_loss=float(worst.heldout_loss[-1]),
        params_min=min(m.n_params for m in models), params_max=max(m.n_params for m in models),
        unigram_step=first_step_below(b, c.unigram_loss), bigram_step=first_step_below(b, c.bigram_loss),
        mid_step=mid_step, mid_loss=mid_loss, excess=excess.total,
        excess_on_certain_share=excess.on_certain / excess.total,
        worst_tail_drop=worst_three_quarters - float(worst.heldout_loss[-1]),
        checkpoints=[int(s) for s in first.checkpoints],
        sizes=names, size_params=[m.n_params for m in by_size], size_losses=losses,
        monotone=not exceptions, size_exceptions=exceptions,
        smallest_label=names[0], largest_label=names[-1], smallest_loss=losses[0], largest_loss=losses[-1],
        size_gain=losses[0] - losses[-1], size_ratio=by_size[-1].n_params / by_size[0].n_params,
        flops_low=float(front.grid[0]), flops_high=float(front.grid[-1]),
        leader_low=model_name(lead_lo.config.n_layer, lead_lo.config.n_head),
        leader_high=model_name(lead_hi.config.n_layer, lead_hi.config.n_head),
        leader_low_params=lead_lo.n_params, leader_high_params=lead_hi.n_params,
        curves_cross=lead_lo.n_params < lead_hi.n_params,
        final_switch_flops=float(front.grid[later[-1] + 1]) if later else float(front.grid[0]),
        n_switches=len(front.switches),
        frontier_models=[model_name(models[i].config.n_layer, models[i].config.n_head) for i in order],
    )
