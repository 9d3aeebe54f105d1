"""Pretraining: a family of tiny GPTs trained on generated stories, beside what the data allows.

Simulated: one model per (layers, heads) pair of the grid, each trained from scratch on the
same stories with the same minibatches (generator.sims.train); the data's entropy floor, the
grammar's exact -log2 P per token averaged over the held-out targets the models are scored on;
and two baselines fitted by counting the training stories: a unigram model (each token's
frequency) and a bigram model (each token's frequency after the token before it). Both add one
pseudo-count (spread evenly for the unigram, spread as the unigram for the bigram) so that a
pair never seen in training still gets a finite loss. For the sampling chapter: one trained
model's actual next-token distribution after a prompt, under temperature and top-p, beside the
grammar's exact distribution.

Models and corpus statistics are computed through `memo(fn, config)`, which the build backs
with its on-disk cache: each model is cached on its own, keyed by its TrainConfig and the code
of generator.sims.train and what it imports, so changing one grid point trains one model, and
editing this module (how results are assembled) retrains nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from generator.grids import GridError, PretrainingGrid
from generator.sims.gpt import next_token_logits
from generator.sims.sampling import entropy_bits, renormalise, softmax_with_temperature, top_p_keep
from generator.sims.stories import World, detokenize, next_token_probs
from generator.sims.train import Data, DataConfig, TrainConfig, TrainedModel, make_data, train_model

Memo = Callable[[Callable[[Any], Any], Any], Any]


def compute(fn: Callable[[Any], Any], config: Any) -> Any:
    """The memo that caches nothing: fn(config)."""
    return fn(config)


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


@dataclass(frozen=True)
class Companion:
    """One model's next-token distribution after a prompt, for the sampling chapter."""

    prompt: str
    n_layer: int
    n_head: int
    tokens: tuple[str, ...]  # [n_shown]  the most probable tokens at T = 1, most probable first
    logits: np.ndarray  # [n_shown]
    grammar_probs: np.ndarray  # [n_shown]  the grammar's exact probabilities
    grammar_other: float  # the grammar's probability of every token not shown
    temperatures: np.ndarray  # [n_T]
    top_p: np.ndarray  # [n_p]
    probs: np.ndarray  # [n_T, n_p, n_shown]  after temperature, top-p and renormalising
    other: np.ndarray  # [n_T, n_p]  probability left to the tokens not shown
    entropy: np.ndarray  # [n_T, n_p] bits, over the whole vocabulary


@dataclass(frozen=True)
class PretrainingResults:
    n_layers: tuple[int, ...]
    n_heads: tuple[int, ...]
    models: tuple[TrainedModel, ...]  # [n_layers * n_heads], layers major
    train_loss_at_eval: tuple[np.ndarray, ...]  # per model [n_eval] mean minibatch loss since the last eval
    sample_texts: tuple[tuple[tuple[str, ...], ...], ...]  # [model][checkpoint][sample]
    corpus: CorpusSummary
    companion: Companion


def model_configs(grid: PretrainingGrid) -> list[TrainConfig]:
    """The family: one TrainConfig per (layers, heads), layers major."""
    data = DataConfig(n_ctx=grid.n_ctx, train_stories=grid.train_stories,
                      heldout_stories=grid.heldout_stories, seed=grid.seed)
    return [
        TrainConfig(data=data, n_layer=n_layer, n_head=n_head, n_embd=grid.n_embd,
                    batch_size=grid.batch_size, steps=grid.steps, learning_rate=grid.learning_rate,
                    warmup_steps=grid.warmup_steps, weight_decay=grid.weight_decay,
                    grad_clip=grid.grad_clip, eval_every=grid.eval_every,
                    checkpoints=grid.checkpoints, n_samples=grid.n_samples, seed=grid.seed)
        for n_layer in grid.n_layers for n_head in grid.n_heads
    ]


def simulate(grid: PretrainingGrid, memo: Memo = compute) -> PretrainingResults:
    """Train the family (through memo), fit the baselines, and read one model's logits."""
    prompt = grid.prompt.split()
    try:
        next_token_probs(World(), prompt)
    except ValueError as exc:
        raise GridError(f"grids.pretraining.prompt: not a story the grammar can tell ({exc})") from exc
    configs = model_configs(grid)
    corpus = memo(summarise_corpus, configs[0].data)
    models = tuple(memo(train_model, cfg) for cfg in configs)
    best = min(models, key=lambda m: m.heldout_loss[-1])
    return PretrainingResults(
        n_layers=grid.n_layers,
        n_heads=grid.n_heads,
        models=models,
        train_loss_at_eval=tuple(train_loss_at_eval(m) for m in models),
        sample_texts=tuple(sample_texts(m) for m in models),
        corpus=corpus,
        companion=companion(best, prompt, grid),
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
    )


def first_story(data: Data) -> str:
    """The first held-out story as text."""
    c = data.heldout
    end = c.starts[1] if len(c.starts) > 1 else len(c.ids) - 1
    return detokenize([c.vocab[i] for i in c.ids[c.starts[0] + 1:end]])


def count_models(ids, n_vocab):  # [n_tokens] int -> unigram [n_vocab], bigram [n_vocab, n_vocab]
    """P(token) and P(token | previous token) by counting, each with one pseudo-count."""
    counts = np.bincount(ids, minlength=n_vocab)  # [n_vocab]
    unigram = (counts + 1) / (counts.sum() + n_vocab)
    pairs = np.zeros((n_vocab, n_vocab))
    np.add.at(pairs, (ids[:-1], ids[1:]), 1)
    bigram = (pairs + unigram) / (pairs.sum(axis=1, keepdims=True) + 1)  # row: previous token
    return unigram, bigram


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


def companion(m: TrainedModel, prompt: list[str], grid: PretrainingGrid) -> Companion:
    """The model's next-token probabilities after the prompt under every temperature and top-p."""
    index = {w: i for i, w in enumerate(m.vocab)}
    ids = np.array([[index["\n"]] + [index[w] for w in prompt]])  # [1, n_seq]
    logits = next_token_logits(ids, m.params, m.config.n_head)[0].astype(np.float64)  # [n_vocab]
    shown = np.argsort(-logits, kind="stable")[: grid.companion_tokens]  # [n_shown]
    grammar = next_token_probs(World(), prompt)
    probs = np.zeros((len(grid.temperatures), len(grid.top_p), len(shown)))
    other = np.zeros(probs.shape[:2])
    entropy = np.zeros(probs.shape[:2])
    for i, t in enumerate(grid.temperatures):
        p = softmax_with_temperature(logits, t)  # [n_vocab]
        for j, top_p in enumerate(grid.top_p):
            q = renormalise(p, top_p_keep(p, top_p))
            probs[i, j] = q[shown]
            other[i, j] = np.delete(q, shown).sum()
            entropy[i, j] = entropy_bits(q)
    return Companion(
        prompt=detokenize(prompt),
        n_layer=m.config.n_layer,
        n_head=m.config.n_head,
        tokens=tuple(m.vocab[i] for i in shown),
        logits=logits[shown],
        grammar_probs=np.array([grammar.get(m.vocab[i], 0.0) for i in shown]),
        grammar_other=sum(q for token, q in grammar.items() if token not in {m.vocab[i] for i in shown}),
        temperatures=np.array(grid.temperatures),
        top_p=np.array(grid.top_p),
        probs=probs,
        other=other,
        entropy=entropy,
    )
