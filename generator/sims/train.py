"""Training a tiny GPT on generated stories: AdamW, warmup and cosine decay, gradient clipping.

Simulated: next-token prediction on windows of the story stream (each window starts at a
story's beginning, so every token has its whole story before it), minibatches drawn with a
seeded generator, the hand-written gradients of generator.sims.gpt, global-norm gradient
clipping, AdamW (decoupled weight decay on matrices only, not on biases or LayerNorm gains),
and a learning rate that rises linearly for the warmup steps and then follows a cosine down to
a tenth of its peak. Held-out loss is measured every few steps on fixed windows of stories the
model never trains on; at the checkpoint steps every head is probed (generator.sims.probes: its
previous-token, induction and repeated-random-tokens scores, on the first PROBE_WINDOWS
held-out windows), the in-context-learning score is taken, and a few stories are sampled with
the same random numbers each time, so they differ only by what the model learnt. Only the final
weights are kept: the checkpoints' measurements are what the pages show of training.

Everything is seeded: the same config gives bitwise-identical weights on the same machine, and
a run stopped and resumed from its saved TrainingState gives the same weights as one that was
not (the minibatch generator's state is saved with the weights and Adam's moments).
Not simulated: dropout, data parallelism, mixed precision, learning-rate search.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from generator.sims import probes
from generator.sims.gpt import (cross_entropy, generate, gpt, gpt_backward, init_params, leaves, n_params,
                                token_log_probs)
from generator.sims.stories import END, Corpus, World, corpus

log = logging.getLogger("mkdocs.plugins.explorables")

BETA_1, BETA_2, EPSILON = 0.9, 0.99, 1e-8  # AdamW's moment decay rates
FINAL_LR_FRACTION = 0.1  # the cosine ends at this fraction of the peak learning rate
EVAL_BATCH = 64  # held-out windows per forward pass (bounds memory, not results)
PROGRESS_SECONDS = 3.0
PROBE_WINDOWS = 64  # held-out windows the checkpoint probes read
BITS = 1 / math.log(2)  # nats -> bits


@dataclass(frozen=True)
class DataConfig:
    """Which stories: training and held-out ones come from separate seeds."""

    n_ctx: int  # tokens a window holds
    train_stories: int
    heldout_stories: int  # each starts one held-out window
    seed: int


@dataclass(frozen=True)
class TrainConfig:
    """One model and how it is trained; every number that decides the weights is here."""

    data: DataConfig
    n_layer: int
    n_head: int
    n_embd: int
    batch_size: int
    steps: int
    learning_rate: float  # peak
    warmup_steps: int
    weight_decay: float
    grad_clip: float  # largest global gradient norm
    eval_every: int
    checkpoints: tuple[int, ...]  # steps at which heads are probed and stories sampled (at least one)
    n_samples: int  # stories sampled at each checkpoint
    seed: int  # initial weights, minibatches and samples


@dataclass(frozen=True)
class TrainedModel:
    config: TrainConfig
    vocab: tuple[str, ...]  # [n_vocab]
    n_params: int
    params: dict  # the weights after the last step
    train_loss: np.ndarray  # [steps] bits per token, the minibatch each step trained on
    learning_rate: np.ndarray  # [steps]
    grad_norm: np.ndarray  # [steps] before clipping
    eval_steps: np.ndarray  # [n_eval]
    heldout_loss: np.ndarray  # [n_eval] bits per token on the held-out windows
    samples: np.ndarray  # [n_ckpt, n_samples, n_ctx] int  token ids, starting with END
    checkpoint_heads: tuple[probes.HeadScores, ...]  # [n_ckpt] every head's scores at that step
    checkpoint_loss: np.ndarray  # [n_ckpt] held-out bits per token at that step
    checkpoint_icl: np.ndarray  # [n_ckpt] in-context-learning score (bits; negative: context helps)
    wall_seconds: float  # training time (not part of what the config decides)


@dataclass(frozen=True)
class Data:
    vocab: tuple[str, ...]
    train_ids: np.ndarray  # [n_tokens] int
    train_starts: np.ndarray  # [n_windows] int  where the training windows may start
    heldout_x: np.ndarray  # [n_windows, n_seq] int
    heldout_y: np.ndarray  # [n_windows, n_seq] int
    heldout_log2p: np.ndarray  # [n_windows, n_seq]  the grammar's exact log2 P of each target
    heldout: Corpus  # the held-out stories whole


def windows(ids, starts, n_ctx):  # [n_tokens], [n_windows] -> inputs, targets [n_windows, n_ctx]
    """Inputs ids[s:s+n_ctx] and targets ids[s+1:s+n_ctx+1] for each start s."""
    index = starts[:, None] + np.arange(n_ctx + 1)  # [n_windows, n_ctx + 1]
    return ids[index[:, :-1]], ids[index[:, 1:]]


def fitting_starts(starts, n_tokens, n_ctx):  # [n_stories] -> [n_windows]
    """Story starts whose window of n_ctx + 1 tokens lies inside the stream."""
    return starts[starts + n_ctx + 1 <= n_tokens]


def make_data(cfg: DataConfig, world: World = World()) -> Data:
    """Training and held-out stories from separate seeds; held-out windows start at each story."""
    train = corpus(world, cfg.train_stories, [cfg.seed, 0])
    heldout = corpus(world, cfg.heldout_stories, [cfg.seed, 1])
    starts = fitting_starts(heldout.starts, len(heldout.ids), cfg.n_ctx)
    if len(starts) == 0:
        raise ValueError(f"{cfg.heldout_stories} held-out stories do not fill one window of "
                         f"{cfg.n_ctx + 1} tokens")
    x, y = windows(heldout.ids, starts, cfg.n_ctx)
    _, log2p = windows(heldout.log2p, starts, cfg.n_ctx)
    return Data(train.vocab, train.ids, fitting_starts(train.starts, len(train.ids), cfg.n_ctx),
                x, y, log2p, heldout)


# ---------------------------------------------------------------------------------------------
# Optimisation


def learning_rate_at(step, cfg: TrainConfig):  # int -> float
    """Linear warmup to the peak, then a cosine down to FINAL_LR_FRACTION of it."""
    if step < cfg.warmup_steps:
        return cfg.learning_rate * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - 1 - cfg.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return cfg.learning_rate * (FINAL_LR_FRACTION + (1 - FINAL_LR_FRACTION) * cosine)


def global_norm(grads) -> float:  # [(name, array)] -> float
    return math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for _, g in grads))


def decays(name: str) -> bool:
    """Weight decay applies to matrices (and the embeddings), not to biases or LayerNorm gains."""
    return name.endswith(".w") or name in ("wte", "wpe")


class AdamW:
    """Adam's moment estimates with decoupled weight decay; updates the arrays in place."""

    def __init__(self, params, weight_decay, moments=None, t=0):
        """moments: (m, v) lists in the order of leaves(params), to resume; zeros otherwise."""
        self.named = leaves(params)
        self.m = [np.zeros_like(a) for _, a in self.named] if moments is None else moments[0]
        self.v = [np.zeros_like(a) for _, a in self.named] if moments is None else moments[1]
        self.weight_decay = weight_decay
        self.t = t

    def step(self, grads, lr, scale=1.0):  # [(name, array)], float, float
        """One update with gradients multiplied by scale (the clipping factor)."""
        self.t += 1
        fix_1, fix_2 = 1 - BETA_1**self.t, 1 - BETA_2**self.t
        for (name, p), (_, g), m, v in zip(self.named, grads, self.m, self.v):
            g = g * scale
            m *= BETA_1
            m += (1 - BETA_1) * g
            v *= BETA_2
            v += (1 - BETA_2) * g * g
            update = (m / fix_1) / (np.sqrt(v / fix_2) + EPSILON)
            if decays(name):
                update += self.weight_decay * p
            p -= (lr * update).astype(p.dtype)


# ---------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainingState:
    """Everything a run needs to go on from `step` exactly as if it had not stopped."""

    config: TrainConfig
    step: int  # steps taken
    params: dict
    adam_m: tuple[np.ndarray, ...]  # in the order of leaves(params)
    adam_v: tuple[np.ndarray, ...]
    batches: dict  # the minibatch generator's bit_generator.state
    train_loss: np.ndarray  # [steps] filled up to step
    learning_rate: np.ndarray  # [steps]
    grad_norm: np.ndarray  # [steps]
    eval_steps: list
    heldout_loss: list
    samples: list  # per checkpoint reached [n_samples, n_ctx] int
    checkpoint_heads: list
    checkpoint_loss: list
    checkpoint_icl: list
    seconds: float  # training time so far


def heldout_loss(params, data: Data, n_head) -> float:  # -> bits per token
    """Mean -log2 P(target) over every held-out window."""
    total = 0.0
    for i in range(0, len(data.heldout_x), EVAL_BATCH):
        logits = gpt(data.heldout_x[i:i + EVAL_BATCH], params, n_head).logits
        total -= float(token_log_probs(logits, data.heldout_y[i:i + EVAL_BATCH]).sum())
    return total / data.heldout_y.size * BITS


def start_state(cfg: TrainConfig, data: Data) -> TrainingState:
    """Step 0: initial weights, zero moments, the minibatch generator seeded."""
    params = init_params(len(data.vocab), cfg.data.n_ctx, cfg.n_embd, cfg.n_layer,
                         np.random.default_rng([cfg.seed, 2]))
    zeros = tuple(np.zeros_like(a) for _, a in leaves(params))
    return TrainingState(
        config=cfg, step=0, params=params, adam_m=zeros, adam_v=tuple(np.zeros_like(a) for a in zeros),
        batches=np.random.default_rng([cfg.seed, 3]).bit_generator.state,
        train_loss=np.zeros(cfg.steps), learning_rate=np.zeros(cfg.steps), grad_norm=np.zeros(cfg.steps),
        eval_steps=[], heldout_loss=[], samples=[], checkpoint_heads=[], checkpoint_loss=[],
        checkpoint_icl=[], seconds=0.0)


def measure(state: TrainingState, data: Data) -> None:
    """The held-out loss (every eval_every steps and at the end), and at a checkpoint the probes
    and the samples, at state.step; appended to the state's records."""
    cfg, step, params = state.config, state.step, state.params
    if step % cfg.eval_every == 0 or step == cfg.steps:
        state.eval_steps.append(step)
        state.heldout_loss.append(heldout_loss(params, data, cfg.n_head))
    if step in cfg.checkpoints:
        pool, half = probe_tokens(data.vocab, cfg.data.n_ctx)
        state.checkpoint_heads.append(probes.score_heads(
            params, cfg.n_head, data.heldout_x[:PROBE_WINDOWS], half, np.random.default_rng([cfg.seed, 5]),
            data.vocab.index(END), pool))
        by_position = probes.loss_by_position(params, cfg.n_head, data.heldout_x, data.heldout_y)
        state.checkpoint_loss.append(float(by_position.mean()))
        state.checkpoint_icl.append(probes.in_context_learning_score(by_position))
        state.samples.append(sample_stories(params, cfg, data.vocab))


def probe_tokens(vocab, n_ctx, world: World = World()):  # -> [n_pool] int, int
    """The repeated-tokens probe's pool (the songs' sounds: the tokens the stream repeats at
    random) and its half length: the longest song, or what fits the context."""
    pool = np.array([vocab.index(s) for s in world.sounds])
    return pool, min(world.song_lengths[1], (n_ctx - 1) // 2, len(pool))


def train_model(cfg: TrainConfig, state: TrainingState | None = None,
                save: Callable[[TrainingState], None] | None = None, save_seconds: float = 60.0,
                progress: Callable[[TrainingState], None] | None = None) -> TrainedModel:
    """Train one model from its config (or go on from a saved state), recording losses, probes
    at the checkpoints and samples. save(state) is called every save_seconds of training and
    progress(state) every PROGRESS_SECONDS (default: a log line)."""
    data = make_data(cfg.data)
    state = start_state(cfg, data) if state is None else state
    if state.config != cfg:
        raise ValueError("the saved training state is for another config")
    n_ctx = cfg.data.n_ctx
    params = state.params
    batches = np.random.default_rng()
    batches.bit_generator.state = state.batches
    optimiser = AdamW(params, cfg.weight_decay, (list(state.adam_m), list(state.adam_v)), t=state.step)
    name = f"{cfg.n_layer} layer(s), {cfg.n_head} head(s), n_embd {cfg.n_embd}"
    if state.step == 0:
        log.info("pretraining: training %s, %d parameters, %d steps", name, n_params(params), cfg.steps)
    else:
        log.info("pretraining: %s: resuming at step %d of %d", name, state.step, cfg.steps)
    report = progress or (lambda s: log.info("pretraining: %s: step %d/%d, loss %.3f bits/token, %.0f s",
                                             name, s.step, cfg.steps, s.train_loss[s.step - 1], s.seconds))
    clock = time.monotonic()
    last_report = last_save = clock
    while True:
        measure(state, data)
        if state.step == cfg.steps:
            break
        step = state.step
        x, y = windows(data.train_ids, batches.choice(data.train_starts, cfg.batch_size), n_ctx)
        trace = gpt(x, params, cfg.n_head)
        loss, dlogits = cross_entropy(trace.logits, y)
        grads = leaves(gpt_backward(dlogits, trace, params))
        state.grad_norm[step] = global_norm(grads)
        state.learning_rate[step] = learning_rate_at(step, cfg)
        state.train_loss[step] = loss * BITS
        optimiser.step(grads, state.learning_rate[step],
                       scale=min(1.0, cfg.grad_clip / max(state.grad_norm[step], 1e-12)))
        state.step += 1
        now = time.monotonic()
        state.seconds += now - clock
        clock = now
        if now - last_report >= PROGRESS_SECONDS:
            last_report = now
            report(state)
        if save is not None and now - last_save >= save_seconds and state.step < cfg.steps:
            last_save = now
            state.batches = batches.bit_generator.state
            state.adam_m, state.adam_v = tuple(optimiser.m), tuple(optimiser.v)
            save(state)
    log.info("pretraining: %s done in %.1f s, held-out loss %.3f bits/token",
             name, state.seconds, state.heldout_loss[-1])
    return TrainedModel(
        config=cfg, vocab=data.vocab, n_params=n_params(params), params=params,
        train_loss=state.train_loss, learning_rate=state.learning_rate, grad_norm=state.grad_norm,
        eval_steps=np.array(state.eval_steps), heldout_loss=np.array(state.heldout_loss),
        samples=np.array(state.samples), checkpoint_heads=tuple(state.checkpoint_heads),
        checkpoint_loss=np.array(state.checkpoint_loss), checkpoint_icl=np.array(state.checkpoint_icl),
        wall_seconds=state.seconds,
    )


def sample_stories(params, cfg: TrainConfig, vocab):  # -> [n_samples, n_ctx] int
    """n_samples continuations of END at temperature 1, with the same random numbers every time."""
    start = np.full((cfg.n_samples, 1), vocab.index(END))
    return generate(start, params, cfg.n_head, cfg.data.n_ctx - 1, np.random.default_rng([cfg.seed, 4]))
