"""Parameter grids: what every simulation is run over, declared once, typed and validated.

One frozen dataclass per chapter. Every field is checked when the dataclass is built (see
generator.validation), so a bad value stops the build before anything is computed or written,
with a message that names the field (``grids.sampling.temperatures[0]``) and the value; ``Grids``
then checks what one grid asks of another. ``load_grids`` builds the whole set from a plain
mapping (``extra.grids`` in mkdocs.yml, or the command line), rejecting unknown keys.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from generator.sims.alignment import fitting_stories
from generator.sims.tool_use import longest_demonstration
from generator.sims.ledger import BYTES_PER_VALUE
from generator.sims.stories import END, World, corpus, next_token_probs
from generator.sims.train import fitting_starts
from generator.validation import (GridError, bounded, check_scalar, content_file, from_mapping,
                                  positive, text, validate)


@dataclass(frozen=True)
class TokenizationGrid:
    """Tokenization: real encodings on chosen texts, a small BPE trained step by step, and
    what sequence length costs in attention."""

    encodings: tuple[str, ...] = field(
        default=("r50k_base", "p50k_base", "cl100k_base", "o200k_base"),
        metadata={**text(40), "min_items": 1, "max_items": 6},
    )
    # (label, text): each chosen to show one thing tokenizers do. The last one must reach the
    # page as text, never as markup.
    examples: tuple[tuple[str, str], ...] = field(
        default=(
            ("English prose", "The quick brown fox jumps over the lazy dog. Tokenizers don't "
                              "split at spaces: they split wherever the vocabulary says."),
            ("Case and spaces", "hello Hello HELLO hello  hello"),
            ("Numbers", "12345 + 678 = 13023; 3.14159 × 2 = 6.28318; 2024-06-01"),
            ("Python code", 'def greet(name):\n    if name:\n        return f"Hello, {name}!"\n'
                            "    return None\n"),
            ("URL", "https://en.wikipedia.org/wiki/Byte-pair_encoding?action=history#Algorithm"),
            ("Whitespace runs", "a b  c   d    e\t\tf\n\n\ng"),
            # Emoji: a heart with a variation selector, a parrot, a thumb with a skin tone, and
            # a woman and a laptop joined by a zero-width joiner.
            ("Emoji", "I \u2764\ufe0f tokens \U0001f99c \U0001f44d\U0001f3fd \U0001f469\u200d\U0001f4bb"),
            ("Markup shown as text", "<script>alert(1)</script> &amp; <b>bold</b>"),
        ),
        metadata={"min_items": 1, "max_items": 20, "unique_first": True},
    )
    # One sentence in many scripts (Article 1 of the Universal Declaration of Human Rights): a
    # JSON list of {"language", "text"} under content/.
    languages: str = field(default="tokenization/languages.json", metadata=content_file())
    reference_language: str = field(default="English", metadata=text(40))
    chat: tuple[tuple[str, str], ...] = field(
        default=(("system", "You are a helpful assistant."),
                 ("user", "How many tokens does this question cost?")),
        metadata={"min_items": 1, "max_items": 8},
    )
    # Byte-level BPE trained on a short ASCII text (the merge-step chart draws one cell per byte).
    # The ASCII text it is trained on, a file under content/.
    bpe_text: str = field(default="tokenization/bpe-text.txt", metadata=content_file())
    # GPT-2's pre-split pattern in Python's re dialect ([^\W\d_] is a letter, \d a digit,
    # (?:[^\s\w]|_) anything else but whitespace): merges never cross the pieces' boundaries.
    bpe_split_pattern: str = field(
        default=r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\s\w]|_)+|\s+(?!\S)|\s+""",
        metadata=text(400),
    )
    bpe_merges: int = field(default=160, metadata=bounded(1, 2000))
    # Context lengths for the attention-cost chart; numpy timings are measured up to
    # max_timed_length (larger ones would slow the build down for no new information).
    seq_lengths: tuple[int, ...] = field(
        default=tuple(2 ** i for i in range(3, 18)), metadata=bounded(1, 10_000_000, grid=True))
    max_timed_length: int = field(default=2048, metadata=bounded(1, 8192))
    d_head: int = field(default=64, metadata=bounded(1, 1024))
    n_head: int = field(default=12, metadata=bounded(1, 256))
    n_layer: int = field(default=12, metadata=bounded(1, 256))
    seed: int = field(default=0, metadata=bounded(0))

    def __post_init__(self) -> None:
        validate(self, "grids.tokenization")
        for name in ("examples", "chat"):
            for i, (label, body) in enumerate(getattr(self, name)):
                where = f"grids.tokenization.{name}[{i}]"
                check_scalar(label, text(80), f"{where}[0]")
                check_scalar(body, text(2000), f"{where}[1]")
        if len(set(self.encodings)) != len(self.encodings):
            raise GridError("grids.tokenization.encodings: an encoding is listed twice")
        try:
            re.compile(self.bpe_split_pattern)
        except re.error as exc:
            raise GridError(f"grids.tokenization.bpe_split_pattern: not a regular expression "
                            f"({exc})") from exc
        for i, n in enumerate(self.seq_lengths):
            if n & (n - 1):
                raise GridError(f"grids.tokenization.seq_lengths[{i}]: {n} is not a power of 2 (the "
                                "chart doubles the length from one point to the next)")
        timed = [n for n in self.seq_lengths if n <= self.max_timed_length]
        if len(timed) < 2:
            raise GridError("grids.tokenization.max_timed_length: fewer than two seq_lengths "
                            "are that short, so no doubling could be timed")


@dataclass(frozen=True)
class SamplingGrid:
    """Logits to sampling: temperature, top-k, top-p, min-p and repeated sampling."""

    prompt: str = field(default="The cat sat on the", metadata=text(200))
    # Illustrative logits (not from a model): plausible next tokens for the prompt, spread so
    # that temperature visibly matters.
    candidates: tuple[tuple[str, float], ...] = field(
        default=(
            (" mat", 6.2), (" floor", 5.1), (" couch", 4.6), (" bed", 4.4),
            (" sofa", 4.1), (" rug", 3.8), (" chair", 3.5), (" table", 3.1),
            (" windowsill", 2.9), (" ground", 2.6), (" roof", 2.2), (" lap", 1.9),
            (" keyboard", 1.5), (" grass", 1.0), (" car", 0.4), (" moon", -1.5),
        ),
        metadata={"min_items": 2, "max_items": 64, "unique_first": True},
    )
    # Denser at small T, where the distribution changes fastest.
    temperatures: tuple[float, ...] = field(
        default=(
            0.01, 0.02, 0.03, 0.05, 0.07, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45,
            0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.35, 1.5, 1.75, 2.0, 2.5, 3.0,
        ),
        metadata=positive(0.0, 100.0, grid=True, smallest=0.001, why="below 0.001, z / T can overflow to infinity"),
    )
    top_k: tuple[int, ...] = field(default=tuple(range(1, 17)), metadata=bounded(1, grid=True))
    top_p: tuple[float, ...] = field(
        default=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 0.99, 1.0),
        metadata=positive(0.0, 1.0, grid=True),
    )
    min_p: tuple[float, ...] = field(
        default=(0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0),
        metadata=bounded(0.0, 1.0, grid=True),
    )
    sampler_temperature: float = field(default=1.0, metadata=positive(0.0, 100.0, smallest=0.001,
                                                                    why="below 0.001, z / T can overflow to infinity"))
    sample_sizes: tuple[int, ...] = field(
        default=(10, 100, 1000, 10000), metadata=bounded(1, 1_000_000, grid=True)
    )
    seed: int = field(default=0, metadata=bounded(0))
    # A trained model's next token: the pretraining family's best model after this prompt (words
    # of the story grammar, separated by spaces), under the temperatures and top-p below.
    model_prompt: str = field(
        default="once upon a time , there was a kind girl named Mia . one day , she went to the "
                "park . there , she met Tom . Tom had a red ball . Tom gave Mia the ball .",
        metadata=text(2000))
    # Kept small: the figure sits beside the chapter's other charts.
    model_tokens: int = field(default=8, metadata=bounded(1, 64))
    model_temperatures: tuple[float, ...] = field(
        default=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
        metadata=positive(0.0, 100.0, grid=True, smallest=0.001, why="below 0.001, z / T can overflow to infinity"))
    model_top_p: tuple[float, ...] = field(default=(0.5, 0.9, 1.0),
                                           metadata=positive(0.0, 1.0, grid=True))

    def __post_init__(self) -> None:
        validate(self, "grids.sampling")
        for i, (token, logit) in enumerate(self.candidates):
            check_scalar(token, text(40), f"grids.sampling.candidates[{i}][0]")
            check_scalar(logit, bounded(-100.0, 100.0, why="softmax of logits further apart than "
                                        "200 is exactly 0 or 1 in float64"),
                         f"grids.sampling.candidates[{i}][1]")
        if max(self.top_k) > len(self.candidates):
            raise GridError(
                f"grids.sampling.top_k: k={max(self.top_k)} exceeds the "
                f"{len(self.candidates)} candidate tokens"
            )


@dataclass(frozen=True)
class PretrainingGrid:
    """Pretraining: a family of tiny GPTs (layers, heads) trained on generated stories and songs.

    Width grows with the heads (n_embd = head_width x n_head), so the family varies both depth
    and width. The family is shared: every chapter that runs a trained model (sampling,
    attention, block, KV cache, alignment) reads its models from here (see Grids: each model
    asked for must be one of the family's). The models ship trained (content/checkpoints,
    written by `python -m generator train`); one the grid asks for that is not shipped is
    trained by the build."""

    # The models, smallest first: model i has n_layers[i] layers and n_heads[i] heads. Each step
    # up adds depth or width; a 1-layer model sits beside the 2-layer one of the same width.
    n_layers: tuple[int, ...] = field(default=(1, 2, 2, 4), metadata=bounded(1, 12))
    n_heads: tuple[int, ...] = field(default=(2, 2, 4, 4), metadata=bounded(1, 16))
    head_width: int = field(default=16, metadata=bounded(1, 256))
    n_ctx: int = field(default=64, metadata=bounded(8, 512))
    batch_size: int = field(default=32, metadata=bounded(1, 1024))
    steps: int = field(default=8000, metadata=bounded(1, 100_000))
    learning_rate: float = field(default=0.003, metadata=positive(0.0, 1.0))
    warmup_steps: int = field(default=100, metadata=bounded(0, 100_000))
    weight_decay: float = field(default=0.1, metadata=bounded(0.0, 1.0))
    grad_clip: float = field(default=1.0, metadata=positive(0.0, 1000.0))
    eval_every: int = field(default=100, metadata=bounded(1, 100_000))
    # Steps at which every head is probed and stories sampled: dense where heads form.
    checkpoints: tuple[int, ...] = field(
        default=(0, 100, 250, 500, 750, 1000, 1250, 1500, 1750, 2000, 2250, 2500, 2750, 3000,
                 3500, 4000, 4500, 5000, 6000, 7000, 8000),
        metadata=bounded(0, 100_000, grid=True))
    n_samples: int = field(default=2, metadata=bounded(1, 16))
    train_stories: int = field(default=20_000, metadata=bounded(1, 1_000_000))
    heldout_stories: int = field(default=128, metadata=bounded(1, 100_000))
    seed: int = field(default=0, metadata=bounded(0))

    def __post_init__(self) -> None:
        validate(self, "grids.pretraining")
        if len(self.n_heads) != len(self.n_layers):
            raise GridError(f"grids.pretraining.n_heads: {len(self.n_heads)} values for "
                            f"{len(self.n_layers)} models (one per entry of n_layers)")
        for i, member in enumerate(self.members):
            if member in self.members[:i]:
                raise GridError(f"grids.pretraining.n_layers[{i}], n_heads[{i}]: the model {member} "
                                "is already in the family")
        if self.warmup_steps >= self.steps:
            raise GridError(f"grids.pretraining.warmup_steps: {self.warmup_steps} must be fewer "
                            f"than the {self.steps} steps")
        if self.checkpoints[-1] > self.steps:
            raise GridError(f"grids.pretraining.checkpoints[{len(self.checkpoints) - 1}]: step "
                            f"{self.checkpoints[-1]} is past the last step ({self.steps})")

    @property
    def members(self) -> tuple[tuple[int, int], ...]:
        """(layers, heads) of each model, in the grid's order."""
        return tuple(zip(self.n_layers, self.n_heads))

    def n_embd(self, n_head: int) -> int:
        """The width of the family's models with n_head heads."""
        return self.head_width * n_head


@dataclass(frozen=True)
class AttentionGrid:
    """Self-attention: one trained model's heads on a story, every head scored, and the cost.

    The models are the pretraining family's (grids.pretraining), read from the cache."""

    # A song of the grammar, sung again from another sound: only copying predicts the second
    # singing, so the induction head the heatmap opens on has work to do. (Short: every head's
    # n x n weights are drawn, and the page must stay light and quick.)
    prompt: str = field(
        default="song : ba ki lo ne ra pe . again : ne ra pe ba ki lo .",
        metadata=text(400))
    # The model whose heads the heatmap shows: one (layers, heads) pair of the family.
    n_layer: int = field(default=2, metadata=bounded(1, 12))
    n_head: int = field(default=4, metadata=bounded(1, 16))
    scored_stories: int = field(default=64, metadata=bounded(1, 10_000))
    seq_lengths: tuple[int, ...] = field(
        default=(128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072),
        metadata=bounded(1, 10_000_000, grid=True))

    def __post_init__(self) -> None:
        validate(self, "grids.attention")
        if len(self.prompt.split()) > 31:
            raise GridError(f"grids.attention.prompt: {len(self.prompt.split())} words; at most "
                            "31 keep the heatmaps readable and the page small")


@dataclass(frozen=True)
class BlockGrid:
    """Inside a transformer block: one token through one block of a trained model, its residual
    stream after every sub-layer, and the published models' parameters and FLOPs. The model is
    the pretraining family's."""

    prompt: str = field(
        default="once upon a time , there was a kind girl named Mia . one day , Mia went to the park .",
        metadata=text(400))
    n_layer: int = field(default=4, metadata=bounded(1, 12))
    n_head: int = field(default=4, metadata=bounded(1, 16))
    # One token's vector followed through one block: the block (1-based) and the token's
    # position in the prompt (0 is END).
    step_layer: int = field(default=1, metadata=bounded(1, 12))
    step_position: int = field(default=17, metadata=bounded(0, 64))
    # The most numbers the step-through shows for one stage (the first ones): a wider model's
    # stages are cut here so the page keeps its size.
    step_max_values: int = field(default=128, metadata=bounded(1, 4096))
    # The published models counted (content/models.json) and the one GPT-2's block is turned
    # into, change by change.
    models: str = field(default="models.json", metadata=content_file())
    example_model: str = field(default="Llama 3.1 8B", metadata=text(80))
    # One generated token's FLOPs are counted with this many tokens of context (at most each
    # model's own).
    depth_tokens: int = field(default=4096, metadata=bounded(1, 10_000_000))

    def __post_init__(self) -> None:
        validate(self, "grids.block")
        if len(self.prompt.split()) > 31:
            raise GridError(f"grids.block.prompt: {len(self.prompt.split())} words; at most 31 "
                            "keep the charts readable")
        if self.step_layer > self.n_layer:
            raise GridError(f"grids.block.step_layer: {self.step_layer} is past the model's "
                            f"{self.n_layer} layers")


@dataclass(frozen=True)
class RagGrid:
    """Retrieval over this site's own prose (chunk, embed, rank, evaluate) and a tool-call loop."""

    # The knowledge base: content files matching `documents` but none of `exclude` (glob
    # patterns under content/). The chapter's own page is left out: its prose describes the
    # question set, so it would retrieve itself, and every edit to it would re-run the grid.
    documents: tuple[str, ...] = field(default=("*.md",), metadata=content_file())
    exclude: tuple[str, ...] = field(default=("rag.md",), metadata=content_file())
    questions: str = field(default="rag/questions.json", metadata=content_file())
    conversations: str = field(default="rag/conversations.json", metadata=content_file())
    chunk_sizes: tuple[int, ...] = field(
        default=(32, 48, 64, 96, 128, 192, 256), metadata=bounded(8, 4096, grid=True))
    overlaps: tuple[int, ...] = field(default=(0, 8, 16), metadata=bounded(0, grid=True))
    ks: tuple[int, ...] = field(default=(1, 3, 5, 10), metadata=bounded(1, 100, grid=True))
    budgets: tuple[int, ...] = field(
        default=(128, 256, 512, 1024), metadata=bounded(1, 100_000, grid=True))
    headline_budget: int = field(default=256, metadata=bounded(1, 100_000))
    # The chunking shown in detail (and searched by the tool): small enough to see each chunk.
    view_chunk_size: int = field(default=64, metadata=bounded(8, 4096))
    view_overlap: int = field(default=16, metadata=bounded(0))
    svd_rank: int = field(default=16, metadata=bounded(1, 1000))
    bm25_k1: float = field(default=1.2, metadata=bounded(0.0, 10.0))
    bm25_b: float = field(default=0.75, metadata=bounded(0.0, 1.0))
    hybrid_weight: float = field(default=0.5, metadata=bounded(0.0, 1.0))
    search_method: str = field(default="hybrid", metadata=text(20))  # the search tool's ranking
    seed: int = field(default=0, metadata=bounded(0))
    # The tiny model that really calls the calculator (generator.sims.tool_use): the model of the
    # pretraining family it is fine-tuned from, on how many questions, how long; the counts in
    # the questions run from 1 to tool_max_count. Its two fine-tuned models ship trained
    # (`python -m generator train`), like the family.
    tool_n_layer: int = field(default=2, metadata=bounded(1, 12))
    tool_n_head: int = field(default=4, metadata=bounded(1, 16))
    tool_questions: int = field(default=4000, metadata=bounded(1, 1_000_000))
    tool_max_count: int = field(default=99, metadata=bounded(2, 10 ** 6))
    tool_steps: int = field(default=1500, metadata=bounded(1, 1_000_000))
    tool_learning_rate: float = field(default=0.003, metadata=positive(0.0, 1.0))
    tool_warmup_steps: int = field(default=20, metadata=bounded(0, 1_000_000))
    tool_batch_size: int = field(default=32, metadata=bounded(1, 4096))
    tool_heldout: int = field(default=300, metadata=bounded(1, 100_000))  # questions each model is measured on

    def __post_init__(self) -> None:
        validate(self, "grids.rag")
        if self.tool_warmup_steps >= self.tool_steps:
            raise GridError(f"grids.rag.tool_warmup_steps: {self.tool_warmup_steps} must be fewer than "
                            f"the {self.tool_steps} tool_steps")
        methods = ("tf-idf", "lsa", "bm25", "hybrid")
        if self.search_method not in methods:
            raise GridError(f"grids.rag.search_method: {self.search_method!r} is not one of "
                            f"{', '.join(methods)}")
        for i, overlap in enumerate(self.overlaps):
            if overlap >= min(self.chunk_sizes):
                raise GridError(
                    f"grids.rag.overlaps[{i}]: overlap {overlap} must be smaller than every chunk "
                    f"size (the smallest is {min(self.chunk_sizes)} tokens)")
        for name, grid_name in (("headline_budget", "budgets"), ("view_chunk_size", "chunk_sizes"),
                                ("view_overlap", "overlaps")):
            value, allowed = getattr(self, name), getattr(self, grid_name)
            if value not in allowed:
                raise GridError(f"grids.rag.{name}: {value} is not one of the {grid_name} "
                                f"{list(allowed)}")


@dataclass(frozen=True)
class KVCacheGrid:
    """KV cache: incremental decoding checked against the full forward pass, its work, time and
    memory."""

    # Which model of the pretraining family decodes (the model the pretraining chapter trains,
    # reused from the cache); both must be in grids.pretraining's n_layers and n_heads.
    model_layers: int = field(default=4, metadata=bounded(1, 12))
    model_heads: int = field(default=4, metadata=bounded(1, 16))
    # The prompt goes into the cache in one step (prefill); the model then decodes greedily,
    # one token per step, until its context is full.
    prompt: str = field(default="once upon a time , there was", metadata=text(2000))
    # Decoding steps the cache-growth chart shows (the prefill is step 1).
    growth_steps: int = field(default=10, metadata=bounded(1, 64))
    # Dimensions of each cached row the growth chart shows (the first ones): a wider model's rows
    # are cut here so the page keeps its size.
    growth_dims: int = field(default=32, metadata=bounded(1, 1024))
    # Sequence lengths at which one generated token is timed, with and without the cache, on
    # a model of the tiny model's shape (random weights; the time does not depend on them).
    timed_lengths: tuple[int, ...] = field(
        default=(16, 32, 64, 128, 256, 512, 1024), metadata=bounded(2, 4096, grid=True))
    # The published models the memory charts price: a JSON list under content/ (see
    # generator.content_files.ledger_model for its keys), each with its source.
    models: str = field(default="models.json", metadata=content_file())
    # "How much fits": GPU memories (GB = 1e9 bytes) and the precisions weights and cache are
    # stored in.
    gpu_memories_gb: tuple[int, ...] = field(default=(16, 24, 48, 80, 141),
                                             metadata=bounded(1, 10_000, grid=True))
    fit_precisions: tuple[str, ...] = field(default=("bf16", "int8", "int4"),
                                            metadata={**text(10), "min_items": 1, "max_items": 5})
    # The model and GPU memory the prose works through (the model is a name in `models`; its
    # bf16 weights must fit gpu_memory_gb, the roofline's GPU).
    example_model: str = field(default="Llama 3.1 8B", metadata=text(80))
    example_gpu_gb: int = field(default=24, metadata=bounded(1, 10_000))
    # The roofline's GPU: NVIDIA's H100 SXM datasheet (HBM3 bandwidth 3.35 TB/s, dense BF16
    # tensor throughput 989 TFLOP/s, 80 GB).
    gpu_name: str = field(default="NVIDIA H100 SXM", metadata=text(60))
    gpu_bandwidth_tb_s: float = field(default=3.35, metadata=positive(0.0, 1000.0))
    gpu_tflop_s: float = field(default=989.0, metadata=positive(0.0, 100_000.0))
    gpu_memory_gb: int = field(default=80, metadata=bounded(1, 10_000))
    # Each sequence of the roofline's batch holds this many tokens (capped at a model's context).
    roofline_tokens: int = field(default=4096, metadata=bounded(1, 10_000_000))
    roofline_batches: tuple[int, ...] = field(
        default=tuple(2 ** i for i in range(11)), metadata=bounded(1, 100_000, grid=True))
    # The cache stored in fewer bits (per-vector absmax scales), measured on the decoding model.
    quant_bits: tuple[int, ...] = field(default=(8, 4), metadata=bounded(2, 16, grid=False))
    # Speculative decoding: the family model that drafts for the decoding model, the draft
    # lengths tried, and the held-out stories whose first words are the prompts.
    draft_layers: int = field(default=1, metadata=bounded(1, 12))
    draft_heads: int = field(default=2, metadata=bounded(1, 16))
    draft_lengths: tuple[int, ...] = field(default=(1, 2, 3, 4, 5, 6, 8),
                                           metadata=bounded(1, 32, grid=True))
    speculative_prompts: int = field(default=12, metadata=bounded(1, 64))
    speculative_prompt_tokens: int = field(default=6, metadata=bounded(1, 64))
    speculative_new_tokens: int = field(default=40, metadata=bounded(1, 512))
    seed: int = field(default=0, metadata=bounded(0))

    def __post_init__(self) -> None:
        validate(self, "grids.kvcache")
        for i, precision in enumerate(self.fit_precisions):
            if precision not in BYTES_PER_VALUE:
                raise GridError(f"grids.kvcache.fit_precisions[{i}]: unknown precision {precision!r} "
                                f"(known: {', '.join(BYTES_PER_VALUE)})")
        if len(set(self.fit_precisions)) != len(self.fit_precisions):
            raise GridError("grids.kvcache.fit_precisions: a precision is listed twice")
        if self.example_gpu_gb not in self.gpu_memories_gb:
            raise GridError(f"grids.kvcache.example_gpu_gb: {self.example_gpu_gb} is not one of the "
                            f"gpu_memories_gb {list(self.gpu_memories_gb)}")
        if "bf16" not in self.fit_precisions:
            raise GridError("grids.kvcache.fit_precisions: the prose compares with bf16; keep it")
        if len(set(self.quant_bits)) != len(self.quant_bits):
            raise GridError("grids.kvcache.quant_bits: a width is listed twice")
        if (self.draft_layers, self.draft_heads) == (self.model_layers, self.model_heads):
            raise GridError("grids.kvcache.draft_layers, draft_heads: the draft model must differ "
                            "from the decoding model")


@dataclass(frozen=True)
class AlignmentGrid:
    """Fine-tuning and alignment: one pretrained model of the family taught a new format by
    supervised fine-tuning (one run per learning rate), then a preference learnt from noisy
    pairs three ways: a reward model, RLHF against it (one run per KL coefficient) and DPO (one
    run per beta)."""

    # The pretrained model (from the pretraining family).
    n_layer: int = field(default=2, metadata=bounded(1, 12))
    n_head: int = field(default=2, metadata=bounded(1, 16))
    # Pieces drawn for the demonstrations and preference pairs (stories and songs, about half
    # each); the songs, and the stories whose story, recap and END do not fit the context, are
    # left out.
    train_stories: int = field(default=2000, metadata=bounded(1, 100_000))
    heldout_stories: int = field(default=192, metadata=bounded(1, 100_000))
    batch_size: int = field(default=16, metadata=bounded(2, 1024))  # sequences a step (pairs: half as many)
    sft_steps: int = field(default=300, metadata=bounded(1, 100_000))
    # The trade-off: a larger rate learns the recap sooner and forgets more of ordinary text.
    sft_learning_rates: tuple[float, ...] = field(default=(0.0003, 0.001, 0.003),
                                                  metadata=positive(0.0, 1.0, grid=True))
    # The hidden reward of each ending feeling, in the grammar's order (happy, sad, tired, proud),
    # and how sharply the labeller follows it: P(a over b) = sigmoid(label_scale (r(a) - r(b))).
    rewards: tuple[float, ...] = field(default=(1.0, -1.0, -0.5, 0.5), metadata=bounded(-10.0, 10.0))
    label_scale: float = field(default=1.0, metadata=positive(0.0, 100.0))
    rm_steps: int = field(default=150, metadata=bounded(1, 100_000))
    rm_learning_rate: float = field(default=0.001, metadata=positive(0.0, 1.0))
    rl_steps: int = field(default=150, metadata=bounded(1, 100_000))
    rl_learning_rate: float = field(default=0.0001, metadata=positive(0.0, 1.0))
    kl_coefs: tuple[float, ...] = field(default=(0.03, 0.3, 3.0), metadata=positive(0.0, 100.0, grid=True))
    dpo_steps: int = field(default=300, metadata=bounded(1, 100_000))
    dpo_learning_rate: float = field(default=0.0001, metadata=positive(0.0, 1.0))
    betas: tuple[float, ...] = field(default=(0.03, 0.1, 0.3, 1.0), metadata=positive(0.0, 100.0, grid=True))
    # The chosen responses' negative log-likelihood added to DPO's loss (as Llama 3 does),
    # weighted by this times beta, so that it keeps the same share of DPO's gradient at every
    # beta: without it the probability of every feeling can fall together and leak to words
    # that are no ending at all.
    dpo_nll_weight: float = field(default=0.05, metadata=bounded(0.0, 100.0))
    warmup_steps: int = field(default=10, metadata=bounded(0, 100_000))
    grad_clip: float = field(default=1.0, metadata=positive(0.0, 1000.0))
    eval_every: int = field(default=15, metadata=bounded(1, 100_000))
    # The held-out story whose next-token distributions the page shows.
    shown_story: int = field(default=0, metadata=bounded(0))
    shown_tokens: int = field(default=6, metadata=bounded(1, 32))
    seed: int = field(default=0, metadata=bounded(0))

    def __post_init__(self) -> None:
        validate(self, "grids.alignment")
        shortest = min(self.sft_steps, self.rm_steps, self.rl_steps, self.dpo_steps)
        if self.warmup_steps >= shortest:
            raise GridError(f"grids.alignment.warmup_steps: {self.warmup_steps} must be fewer than "
                            f"the {shortest} steps of each stage")
        if self.shown_story >= self.heldout_stories:
            raise GridError(f"grids.alignment.shown_story: {self.shown_story} is not one of the "
                            f"{self.heldout_stories} held-out stories")


@dataclass(frozen=True)
class Grids:
    """Every simulation's grid, one field per chapter, in the chapters' order.

    What one grid asks of another is checked here, before anything runs: each model a chapter
    runs is one of the pretraining family's, and each prompt a model reads is a story the
    grammar can tell that fits the models' context."""

    tokenization: TokenizationGrid = field(default_factory=TokenizationGrid)
    sampling: SamplingGrid = field(default_factory=SamplingGrid)
    attention: AttentionGrid = field(default_factory=AttentionGrid)
    block: BlockGrid = field(default_factory=BlockGrid)
    pretraining: PretrainingGrid = field(default_factory=PretrainingGrid)
    alignment: AlignmentGrid = field(default_factory=AlignmentGrid)
    kvcache: KVCacheGrid = field(default_factory=KVCacheGrid)
    rag: RagGrid = field(default_factory=RagGrid)

    def __post_init__(self) -> None:
        family = self.pretraining
        for name in ("attention", "block", "alignment"):
            grid = getattr(self, name)
            family_member(grid.n_layer, grid.n_head, family, f"grids.{name}.n_layer, n_head")
        family_member(self.kvcache.model_layers, self.kvcache.model_heads, family,
                      "grids.kvcache.model_layers, model_heads")
        family_member(self.kvcache.draft_layers, self.kvcache.draft_heads, family,
                      "grids.kvcache.draft_layers, draft_heads")
        kv = self.kvcache
        if kv.speculative_prompt_tokens + kv.speculative_new_tokens > family.n_ctx:
            raise GridError(f"grids.kvcache.speculative_new_tokens: {kv.speculative_prompt_tokens} "
                            f"prompt tokens and {kv.speculative_new_tokens} new ones do not fit the "
                            f"models' context of {family.n_ctx} tokens")
        story_prompt(self.sampling.model_prompt, family.n_ctx, "grids.sampling.model_prompt")
        story_prompt(self.attention.prompt, family.n_ctx, "grids.attention.prompt")
        n_block = len(story_prompt(self.block.prompt, family.n_ctx, "grids.block.prompt"))
        if self.block.step_position >= n_block:
            raise GridError(f"grids.block.step_position: {self.block.step_position} is past the "
                            f"prompt's {n_block} tokens (END and its words)")
        n_prompt = len(story_prompt(self.kvcache.prompt, family.n_ctx, "grids.kvcache.prompt"))
        if n_prompt + self.kvcache.growth_steps - 1 > family.n_ctx:
            raise GridError(f"grids.kvcache.growth_steps: the prompt and {self.kvcache.growth_steps} "
                            f"steps do not fit the models' context of {family.n_ctx} tokens")
        if not fitting_starts_exist(self.attention.scored_stories, (family.seed, 1), family.n_ctx):
            raise GridError(f"grids.attention.scored_stories: {self.attention.scored_stories} stories "
                            f"do not fill one window of {family.n_ctx + 1} tokens")
        a = self.alignment
        if len(a.rewards) != len(World().feelings) or len(set(a.rewards)) != len(a.rewards):
            raise GridError(f"grids.alignment.rewards: give one distinct reward to each of the "
                            f"grammar's feelings {World().feelings}, got {list(a.rewards)}")
        n_train = n_fitting_stories(a.train_stories, (a.seed, 10), family.n_ctx)
        n_heldout = n_fitting_stories(a.heldout_stories, (a.seed, 11), family.n_ctx)
        if n_train < a.batch_size or a.shown_story >= n_heldout:
            raise GridError(f"grids.alignment.train_stories: {n_train} training and {n_heldout} "
                            f"held-out stories fit the context of {family.n_ctx} tokens; too few")
        family_member(self.rag.tool_n_layer, self.rag.tool_n_head, family, "grids.rag.tool_n_layer, tool_n_head")
        longest = longest_demonstration(self.rag.tool_max_count)
        if longest > family.n_ctx + 1:
            raise GridError(f"grids.rag.tool_max_count: with counts up to {self.rag.tool_max_count} a "
                            f"demonstration runs to {longest} tokens, more than the models' context of "
                            f"{family.n_ctx} (and the one it predicts)")


def load_grids(mapping: Mapping[str, Any] | None = None) -> Grids:
    """Build Grids from nested plain data (overrides of the defaults); unknown keys are errors."""
    return from_mapping(Grids, mapping or {}, "grids")


def grid_names() -> tuple[str, ...]:
    """The names of the simulations, in chapter order."""
    return tuple(f.name for f in dataclasses.fields(Grids))


# ---------------------------------------------------------------------------------------------
# Checks one grid makes against another, or against the story grammar


def family_member(n_layer: int, n_head: int, family: PretrainingGrid, where: str) -> None:
    """Raise GridError unless the family has a model with n_layer layers and n_head heads."""
    if (n_layer, n_head) not in family.members:
        raise GridError(f"{where}: ({n_layer}, {n_head}) is not a model of the pretraining family "
                        f"{list(family.members)} (layers, heads)")


def story_prompt(prompt: str, n_ctx: int, where: str) -> tuple[str, ...]:
    """END and the prompt's words, checked: a story the grammar can tell, within the context."""
    words = prompt.split()
    try:
        next_token_probs(World(), words)
    except ValueError as exc:
        raise GridError(f"{where}: not a story the grammar can tell ({exc})") from exc
    if len(words) + 1 > n_ctx:
        raise GridError(f"{where}: {len(words)} words and END exceed the models' context of "
                        f"{n_ctx} tokens")
    return (END, *words)


@functools.cache
def fitting_starts_exist(n_stories: int, seed: tuple[int, int], n_ctx: int) -> bool:
    """Whether n_stories stories drawn with seed fill at least one window of n_ctx + 1 tokens."""
    stories = corpus(World(), n_stories, list(seed))
    return len(fitting_starts(stories.starts, len(stories.ids), n_ctx)) > 0


@functools.cache
def n_fitting_stories(n_stories: int, seed: tuple[int, int], n_ctx: int) -> int:
    """How many of n_stories stories drawn with seed fit, with their recap and END, in n_ctx + 1."""
    return len(fitting_stories(corpus(World(), n_stories, list(seed)), n_ctx))
