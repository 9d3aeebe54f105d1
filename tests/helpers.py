"""Helpers several test modules share: the tiny model family, grids that agree with it, a memo
that trains each model once per session and records what a simulation asked of it, and
tolerant comparison of chart numbers with the sims'."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from generator.grids import (AlignmentGrid, AttentionGrid, BlockGrid, Grids, KVCacheGrid,
                             PretrainingGrid, RagGrid, SamplingGrid)
from tests.charts.specs import inline_data

ROOT = Path(__file__).resolve().parent.parent
CONTENT = ROOT / "content"

# Four tiny GPTs (1-2 layers x 1-2 heads), trained for 20 steps: enough for shapes and wiring.
TINY_FAMILY = PretrainingGrid(n_layers=(1, 1, 2, 2), n_heads=(1, 2, 1, 2), head_width=8, n_ctx=32, batch_size=4, steps=20,
                              warmup_steps=5, eval_every=10, checkpoints=(0, 20), train_stories=100,
                              heldout_stories=8)


def family_grids(family: PretrainingGrid = TINY_FAMILY, **grids: Any) -> Grids:
    """Grids around a tiny family: every model chapter asks for its (2, 2) model and a short
    prompt; `grids` replace those defaults (and are cross-checked like the site's)."""
    defaults = {
        "sampling": SamplingGrid(model_prompt="once upon a time , there was"),
        "attention": AttentionGrid(n_layer=2, n_head=2, scored_stories=6),
        "block": BlockGrid(prompt="once upon a time , there was a kind girl named Mia .", n_layer=2, n_head=2,
                           step_position=5),
        "alignment": AlignmentGrid(train_stories=120, heldout_stories=48, batch_size=8, sft_steps=20,
                                   sft_learning_rates=(0.01,), rm_steps=20, rl_steps=20, kl_coefs=(1.0,),
                                   dpo_steps=20, betas=(0.1,), eval_every=10),
        "kvcache": KVCacheGrid(model_layers=2, model_heads=2, growth_steps=6, draft_layers=1, draft_heads=1,
                               draft_lengths=(1, 2, 4), speculative_prompts=3, speculative_new_tokens=12),
        # (a tool model's demonstrations need a context of 64: with a smaller one, Grids' last
        # check fails, after every other chapter's)
        "rag": RagGrid(tool_n_layer=2, tool_n_head=2),
    }
    return Grids(pretraining=family, **{**defaults, **grids})


def chapter_grids(family: PretrainingGrid = TINY_FAMILY, **grids: Any):
    """The grids one chapter's configure step reads (its own and the family), as Grids has them
    but without the checks of the other chapters (alignment's stories cannot fit a tiny context)."""
    from types import SimpleNamespace

    return SimpleNamespace(pretraining=family, **grids)


class SharedMemo:
    """A memo that computes each (function, config) once per test session."""

    def __init__(self) -> None:
        self.results: dict[tuple[str, Any], Any] = {}

    def __call__(self, fn: Callable[[Any], Any], config: Any) -> Any:
        key = (f"{fn.__module__}.{fn.__qualname__}", config)
        if key not in self.results:
            self.results[key] = fn(config)
        return self.results[key]


class RecordingMemo:
    """A memo that records (function name, config, result) of every call, in order."""

    def __init__(self, inner: Callable = None) -> None:
        self.inner = inner or (lambda fn, config: fn(config))
        self.calls: list[tuple[str, Any, Any]] = []

    def __call__(self, fn: Callable[[Any], Any], config: Any) -> Any:
        result = self.inner(fn, config)
        self.calls.append((fn.__name__, config, result))
        return result


def tokenization_inputs(grid):  # TokenizationGrid -> TokenizationInputs
    """The tokenization grid with the texts it names under content/."""
    from generator import content_files

    return content_files.tokenization_inputs(Grids(tokenization=grid), "tokenization", CONTENT)


def close(a, b, digits: int | None = None, rtol: float = 5e-6, atol: float = 0.0) -> bool:
    """a and b agree elementwise: to `digits` significant digits if given, else within rtol."""
    if digits is not None:
        rtol = 0.51 * 10 ** (1 - digits)
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=rtol, atol=atol)


def spec_rows(site: Path, chapter: str, name: str, field: str | None = None) -> list[dict]:
    """The first inline dataset of a built chart (the first whose rows have `field`, if given)."""
    spec = json.loads((site / "specs" / chapter / f"{name}.vl.json").read_text())
    return next(rows for rows in inline_data(spec) if field is None or (rows and field in rows[0]))
