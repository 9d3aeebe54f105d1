"""The model family every model chapter shares: which tiny GPTs it holds, and loading them.

The pretraining grid declares the family (one model per (layers, heads) pair, all trained the
same way on the same stories). Chapters that run a trained model read it through a `Memo`,
which the build backs with its on-disk cache: each model is trained once, cached on its own
(keyed by its TrainConfig and the training code), and loaded once per build whichever chapters
read it. Nothing here checks a grid: generator.grids has already checked that every model a
chapter asks for is one of the family's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from generator.sims.stories import END
from generator.sims.train import DataConfig, TrainConfig, TrainedModel, train_model

Memo = Callable[[Callable[[Any], Any], Any], Any]  # memo(fn, config) -> fn(config), maybe cached


def uncached(fn: Callable[[Any], Any], config: Any) -> Any:
    """The memo that keeps nothing: fn(config)."""
    return fn(config)


@dataclass(frozen=True)
class WithFamily:
    """A chapter's config: its own grid and the model family it reads."""

    grid: Any
    family: Any  # generator.grids.PretrainingGrid


def model_configs(family) -> list[TrainConfig]:  # PretrainingGrid -> [n_models]
    """The family: one TrainConfig per (layers, heads), in the grid's order."""
    data = DataConfig(n_ctx=family.n_ctx, train_stories=family.train_stories,
                      heldout_stories=family.heldout_stories, seed=family.seed)
    return [
        TrainConfig(data=data, n_layer=n_layer, n_head=n_head, n_embd=family.n_embd(n_head),
                    batch_size=family.batch_size, steps=family.steps,
                    learning_rate=family.learning_rate, warmup_steps=family.warmup_steps,
                    weight_decay=family.weight_decay, grad_clip=family.grad_clip,
                    eval_every=family.eval_every, checkpoints=family.checkpoints,
                    n_samples=family.n_samples, seed=family.seed)
        for n_layer, n_head in family.members
    ]


def member_config(family, n_layer: int, n_head: int) -> TrainConfig:
    """The TrainConfig of the family's model with n_layer layers and n_head heads."""
    return next(c for c in model_configs(family) if (c.n_layer, c.n_head) == (n_layer, n_head))


def load_models(family, memo: Memo) -> list[TrainedModel]:
    """Every model of the family, trained or read from the cache through memo, in the grid's order."""
    return [memo(train_model, cfg) for cfg in model_configs(family)]


def load_member(family, n_layer: int, n_head: int, memo: Memo) -> TrainedModel:
    """One model of the family, trained or read from the cache through memo."""
    return memo(train_model, member_config(family, n_layer, n_head))


def best_index(models) -> int:  # [n_model] TrainedModel -> int
    """Index of the model with the lowest final held-out loss (the first of equals)."""
    return min(range(len(models)), key=lambda i: models[i].heldout_loss[-1])


def best_model(models) -> TrainedModel:  # [n_model] TrainedModel -> TrainedModel
    """The model with the lowest final held-out loss (the first of equals)."""
    return models[best_index(models)]


def prompt_tokens(prompt: str) -> tuple[str, ...]:
    """END and the prompt's words: what a model reads (stories follow END)."""
    return (END, *prompt.split())


def prompt_ids(prompt: str, vocab) -> list[int]:  # str, [n_vocab] -> [n_seq]
    """The ids of END and the prompt's words."""
    index = {w: i for i, w in enumerate(vocab)}
    return [index[w] for w in prompt_tokens(prompt)]


def model_name(n_layer: int, n_head: int) -> str:
    """How the pages name a model of the family. Example: model_name(2, 1) -> '2 layers, 1 head'"""
    return f"{n_layer} layer{'s' * (n_layer > 1)}, {n_head} head{'s' * (n_head > 1)}"
