"""Parameter grids: what every simulation is run over, declared once, typed and validated.

One frozen dataclass per simulation. Every field is checked when the dataclass is built, so a
bad value stops the build before anything is computed or written, with a message that names
the field (``grids.sampling.temperatures[0]``) and the value. ``load_grids`` builds the whole
set from a plain mapping (``extra.grids`` in mkdocs.yml, or the command line), rejecting
unknown keys.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping


class GridError(ValueError):
    """A grid value or config key that cannot be simulated; the message names the field."""


# ---------------------------------------------------------------------------------------------
# Field constraints


def positive(lo_exclusive: float = 0.0, hi: float | None = None, *, grid: bool = False) -> dict:
    """Metadata: every number > lo_exclusive (and <= hi); grid=True also asks for a sorted grid."""
    return {"gt": lo_exclusive, "le": hi, "grid": grid}


def bounded(lo: float, hi: float | None = None, *, grid: bool = False) -> dict:
    """Metadata: every number in [lo, hi]; grid=True also asks for a sorted grid."""
    return {"ge": lo, "le": hi, "grid": grid}


def text(max_len: int = 2000, *, non_empty: bool = True) -> dict:
    """Metadata: every string non-empty (unless allowed) and at most max_len characters."""
    return {"max_len": max_len, "non_empty": non_empty}


# ---------------------------------------------------------------------------------------------
# The grids


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
    # One sentence in many scripts: Article 1 of the Universal Declaration of Human Rights.
    languages: tuple[tuple[str, str], ...] = field(
        default=(
            ("English", "All human beings are born free and equal in dignity and rights. They are "
                        "endowed with reason and conscience and should act towards one another "
                        "in a spirit of brotherhood."),
            ("French", "Tous les êtres humains naissent libres et égaux en dignité et en droits. "
                       "Ils sont doués de raison et de conscience et doivent agir les uns envers "
                       "les autres dans un esprit de fraternité."),
            ("Vietnamese", "Tất cả mọi người sinh ra đều được tự do và bình đẳng về nhân phẩm và "
                           "quyền. Mọi con người đều được tạo hóa ban cho lý trí và lương tâm và "
                           "cần phải đối xử với nhau trong tình bằng hữu."),
            ("Russian", "Все люди рождаются свободными и равными в своем достоинстве и правах. "
                        "Они наделены разумом и совестью и должны поступать в отношении друг "
                        "друга в духе братства."),
            ("Greek", "Όλοι οι άνθρωποι γεννιούνται ελεύθεροι και ίσοι στην αξιοπρέπεια και τα "
                      "δικαιώματα. Είναι προικισμένοι με λογική και συνείδηση, και οφείλουν να "
                      "συμπεριφέρονται μεταξύ τους με πνεύμα αδελφοσύνης."),
            ("Arabic", "يولد جميع الناس أحرارًا متساوين في الكرامة والحقوق. وقد وهبوا عقلاً "
                       "وضميرًا وعليهم أن يعامل بعضهم بعضًا بروح الإخاء."),
            ("Hindi", "सभी मनुष्यों को गौरव और अधिकारों के मामले में जन्मजात स्वतन्त्रता और समानता "
                      "प्राप्त है। उन्हें बुद्धि और अन्तरात्मा की देन प्राप्त है और परस्पर उन्हें "
                      "भाईचारे के भाव से बर्ताव करना चाहिए।"),
            ("Chinese", "人人生而自由，在尊严和权利上一律平等。他们赋有理性和良心，并应以兄弟关系的"
                        "精神相对待。"),
            ("Japanese", "すべての人間は、生まれながらにして自由であり、かつ、尊厳と権利とについて平等"
                         "である。人間は、理性と良心とを授けられており、互いに同胞の精神をもって行動"
                         "しなければならない。"),
            ("Korean", "모든 인간은 태어날 때부터 자유로우며 그 존엄과 권리에 있어 동등하다. 인간은 "
                       "천부적으로 이성과 양심을 부여받았으며 서로 형제애의 정신으로 행동하여야 한다."),
        ),
        metadata={"min_items": 1, "max_items": 20, "unique_first": True},
    )
    reference_language: str = field(default="English", metadata=text(40))
    chat: tuple[tuple[str, str], ...] = field(
        default=(("system", "You are a helpful assistant."),
                 ("user", "How many tokens does this question cost?")),
        metadata={"min_items": 1, "max_items": 8},
    )
    # Byte-level BPE trained on a short ASCII text (the merge-step chart draws one cell per byte).
    bpe_text: str = field(
        default=(
            "A tokenizer learns its vocabulary from text. It starts with the 256 possible bytes, "
            "counts every pair of neighbouring tokens, and merges the most frequent pair into a "
            "new token. Then it counts again, and merges again. The first pairs to win are "
            "common letters next to each other or next to a space; soon whole words such as "
            "\"the\", \"token\" and \"pair\" become single tokens. The more merges it learns, the "
            "fewer tokens the same text needs, and the bigger the vocabulary that the model "
            "must learn an embedding for."
        ),
        metadata=text(2000),
    )
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
        for name in ("examples", "languages", "chat"):
            for i, (label, body) in enumerate(getattr(self, name)):
                where = f"grids.tokenization.{name}[{i}]"
                _check_scalar(label, text(80), f"{where}[0]")
                _check_scalar(body, text(2000), f"{where}[1]")
        if self.reference_language not in dict(self.languages):
            raise GridError(f"grids.tokenization.reference_language: {self.reference_language!r} "
                            f"is not one of the languages")
        if len(set(self.encodings)) != len(self.encodings):
            raise GridError("grids.tokenization.encodings: an encoding is listed twice")
        if not self.bpe_text.isascii():
            raise GridError("grids.tokenization.bpe_text: must be ASCII (one chart cell per byte)")
        try:
            re.compile(self.bpe_split_pattern)
        except re.error as exc:
            raise GridError(f"grids.tokenization.bpe_split_pattern: not a regular expression "
                            f"({exc})") from exc
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
        metadata=positive(0.0, 100.0, grid=True),
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
    sampler_temperature: float = field(default=1.0, metadata=positive(0.0, 100.0))
    sample_sizes: tuple[int, ...] = field(
        default=(10, 100, 1000, 10000), metadata=bounded(1, 1_000_000, grid=True)
    )
    seed: int = field(default=0, metadata=bounded(0))

    def __post_init__(self) -> None:
        validate(self, "grids.sampling")
        if max(self.top_k) > len(self.candidates):
            raise GridError(
                f"grids.sampling.top_k: k={max(self.top_k)} exceeds the "
                f"{len(self.candidates)} candidate tokens"
            )


@dataclass(frozen=True)
class PretrainingGrid:
    """Pretraining: a family of tiny GPTs (layers x heads) trained on generated stories."""

    n_layers: tuple[int, ...] = field(default=(1, 2, 4), metadata=bounded(1, 12, grid=True))
    n_heads: tuple[int, ...] = field(default=(1, 2, 4), metadata=bounded(1, 16, grid=True))
    n_embd: int = field(default=32, metadata=bounded(4, 1024))
    n_ctx: int = field(default=64, metadata=bounded(8, 512))
    batch_size: int = field(default=8, metadata=bounded(1, 1024))
    steps: int = field(default=600, metadata=bounded(1, 100_000))
    learning_rate: float = field(default=0.015, metadata=positive(0.0, 1.0))
    warmup_steps: int = field(default=20, metadata=bounded(0, 100_000))
    weight_decay: float = field(default=0.1, metadata=bounded(0.0, 1.0))
    grad_clip: float = field(default=1.0, metadata=positive(0.0, 1000.0))
    eval_every: int = field(default=25, metadata=bounded(1, 100_000))
    # Steps at which weights are kept and stories sampled: dense early, where text changes fastest.
    checkpoints: tuple[int, ...] = field(
        default=(0, 25, 50, 100, 200, 300, 400, 600), metadata=bounded(0, 100_000, grid=True))
    n_samples: int = field(default=2, metadata=bounded(1, 16))
    train_stories: int = field(default=2000, metadata=bounded(1, 1_000_000))
    heldout_stories: int = field(default=64, metadata=bounded(1, 100_000))
    seed: int = field(default=0, metadata=bounded(0))
    # The sampling chapter's real companion: the best model's next token after this prompt
    # (words of the story grammar, separated by spaces).
    prompt: str = field(
        default="once upon a time , there was a kind girl named Mia . one day , she went to the "
                "park . there , she met Tom . Tom had a red ball . Tom gave Mia the ball .",
        metadata=text(2000))
    # Kept small: the figure lives on the sampling page, beside that chapter's own charts.
    companion_tokens: int = field(default=8, metadata=bounded(1, 64))
    temperatures: tuple[float, ...] = field(default=(0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
                                            metadata=positive(0.0, 100.0, grid=True))
    top_p: tuple[float, ...] = field(default=(0.5, 0.9, 1.0), metadata=positive(0.0, 1.0, grid=True))

    def __post_init__(self) -> None:
        validate(self, "grids.pretraining")
        for i, n_head in enumerate(self.n_heads):
            if self.n_embd % n_head:
                raise GridError(f"grids.pretraining.n_heads[{i}]: n_embd = {self.n_embd} does not "
                                f"split into {n_head} heads of equal width")
        if self.warmup_steps >= self.steps:
            raise GridError(f"grids.pretraining.warmup_steps: {self.warmup_steps} must be fewer "
                            f"than the {self.steps} steps")
        if self.checkpoints[-1] > self.steps:
            raise GridError(f"grids.pretraining.checkpoints[{len(self.checkpoints) - 1}]: step "
                            f"{self.checkpoints[-1]} is past the last step ({self.steps})")
        if len(self.prompt.split()) + 1 > self.n_ctx:
            raise GridError(f"grids.pretraining.prompt: {len(self.prompt.split())} words do not "
                            f"fit the context of {self.n_ctx} tokens")


@dataclass(frozen=True)
class AttentionGrid:
    """Self-attention: one trained model's heads on a story, every head scored, and the cost.

    The models are the pretraining family's (grids.pretraining), read from the cache."""

    # Words of the story grammar: a name and a phrase repeat, so copying heads have work to do.
    prompt: str = field(
        default="Mia was a kind girl who lived near the park . one day , Mia went to the park .",
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
    """Inside a transformer block: one trained model's residual stream, read after every
    sub-layer, and parameter counts of larger models. The model is the pretraining family's."""

    prompt: str = field(
        default="once upon a time , there was a kind girl named Mia . one day , Mia went to the park .",
        metadata=text(400))
    n_layer: int = field(default=4, metadata=bounded(1, 12))
    n_head: int = field(default=4, metadata=bounded(1, 16))
    # (name, n_layer, n_embd, n_vocab, n_ctx) of GPT-2-style models whose parameters are counted.
    larger_models: tuple[tuple[str, int, int, int, int], ...] = field(
        default=(("GPT-2 small", 12, 768, 50257, 1024), ("GPT-2 XL", 48, 1600, 50257, 1024),
                 ("32 layers, 4096 wide", 32, 4096, 50257, 4096)),
        metadata={"min_items": 1, "max_items": 6, "unique_first": True})

    def __post_init__(self) -> None:
        validate(self, "grids.block")
        if len(self.prompt.split()) > 31:
            raise GridError(f"grids.block.prompt: {len(self.prompt.split())} words; at most 31 "
                            "keep the charts readable")
        for i, (_, *sizes) in enumerate(self.larger_models):
            if min(sizes) < 1:
                raise GridError(f"grids.block.larger_models[{i}]: sizes must be positive, got {sizes}")


@dataclass(frozen=True)
class RagGrid:
    """Retrieval over this site's own prose (chunk, embed, rank, evaluate) and a tool-call loop."""

    # The knowledge base: content files matching `documents` but none of `exclude` (glob
    # patterns under content/). The chapter's own page is left out: its prose describes the
    # question set, so it would retrieve itself, and every edit to it would re-run the grid.
    documents: tuple[str, ...] = field(default=("*.md",), metadata=text(200))
    exclude: tuple[str, ...] = field(default=("rag.md",), metadata=text(200))
    questions: str = field(default="rag/questions.json", metadata=text(200))
    conversations: str = field(default="rag/conversations.json", metadata=text(200))
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

    def __post_init__(self) -> None:
        validate(self, "grids.rag")
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


# Bytes one cached number takes in each precision a KV cache is commonly stored in.
KV_PRECISION_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}


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
    # Sequence lengths at which one generated token is timed, with and without the cache, on
    # a model of the tiny model's shape (random weights; the time does not depend on them).
    timed_lengths: tuple[int, ...] = field(
        default=(16, 32, 64, 128, 256, 512, 1024), metadata=bounded(2, 4096, grid=True))
    # The memory chart: context lengths, precisions and batch sizes.
    seq_lengths: tuple[int, ...] = field(
        default=tuple(2 ** i for i in range(10, 18)), metadata=bounded(1, 10_000_000, grid=True))
    precisions: tuple[str, ...] = field(default=("fp32", "fp16", "int8"),
                                        metadata={**text(10), "min_items": 1, "max_items": 4})
    batch_sizes: tuple[int, ...] = field(default=(1, 8, 32), metadata=bounded(1, 4096, grid=True))
    # Published configurations (label, n_layer, n_head, n_kv_head, d_head): GPT-2 small
    # (Radford et al. 2019), Llama 2 7B and 70B (Touvron et al. 2023; 70B uses grouped-query
    # attention, 8 key/value heads shared by 64 query heads).
    models: tuple[tuple[str, int, int, int, int], ...] = field(
        default=(("GPT-2 small", 12, 12, 12, 64), ("Llama 2 7B", 32, 32, 32, 128),
                 ("Llama 2 70B (GQA)", 80, 64, 8, 128)),
        metadata={"min_items": 1, "max_items": 8, "unique_first": True})
    seed: int = field(default=0, metadata=bounded(0))

    def __post_init__(self) -> None:
        validate(self, "grids.kvcache")
        for i, precision in enumerate(self.precisions):
            if precision not in KV_PRECISION_BYTES:
                raise GridError(f"grids.kvcache.precisions[{i}]: unknown precision {precision!r} "
                                f"(known: {', '.join(KV_PRECISION_BYTES)})")
        if len(set(self.precisions)) != len(self.precisions):
            raise GridError("grids.kvcache.precisions: a precision is listed twice")
        for i, (label, *sizes) in enumerate(self.models):
            where = f"grids.kvcache.models[{i}]"
            _check_scalar(label, text(40), f"{where}[0]")
            for j, size in enumerate(sizes, start=1):
                _check_scalar(size, bounded(1, 100_000), f"{where}[{j}]")
            if sizes[1] % sizes[2]:
                raise GridError(f"{where}[3]: {sizes[2]} key/value heads do not divide the "
                                f"{sizes[1]} query heads into equal groups")


@dataclass(frozen=True)
class AlignmentGrid:
    """Fine-tuning and preference tuning: one pretrained model of the family taught a new format
    by supervised fine-tuning, then a preference by DPO (one run per beta)."""

    # The pretrained model (from the pretraining family, read from the cache).
    n_layer: int = field(default=2, metadata=bounded(1, 12))
    n_head: int = field(default=2, metadata=bounded(1, 16))
    # Stories drawn for the demonstrations and preference pairs; only those whose story,
    # recap and END fit the context are kept.
    train_stories: int = field(default=1000, metadata=bounded(1, 100_000))
    heldout_stories: int = field(default=96, metadata=bounded(1, 100_000))
    batch_size: int = field(default=16, metadata=bounded(2, 1024))  # sequences a step (DPO: half as many pairs)
    sft_steps: int = field(default=160, metadata=bounded(1, 100_000))
    sft_learning_rate: float = field(default=0.0015, metadata=positive(0.0, 1.0))
    dpo_steps: int = field(default=60, metadata=bounded(1, 100_000))
    # Small: larger rates push both responses down and drift far from the reference.
    dpo_learning_rate: float = field(default=0.00005, metadata=positive(0.0, 1.0))
    warmup_steps: int = field(default=10, metadata=bounded(0, 100_000))
    grad_clip: float = field(default=1.0, metadata=positive(0.0, 1000.0))
    eval_every: int = field(default=10, metadata=bounded(1, 100_000))
    betas: tuple[float, ...] = field(default=(0.1, 0.5), metadata=positive(0.0, 100.0, grid=True))
    # The preference: endings with this feeling are chosen over endings with any other.
    preferred: str = field(default="happy", metadata=text(20))
    # The held-out story whose next-token distributions the page shows.
    shown_story: int = field(default=0, metadata=bounded(0))
    shown_tokens: int = field(default=6, metadata=bounded(1, 32))
    seed: int = field(default=0, metadata=bounded(0))

    def __post_init__(self) -> None:
        validate(self, "grids.alignment")
        if self.warmup_steps >= min(self.sft_steps, self.dpo_steps):
            raise GridError(f"grids.alignment.warmup_steps: {self.warmup_steps} must be fewer than "
                            f"the {min(self.sft_steps, self.dpo_steps)} steps of each stage")
        if self.shown_story >= self.heldout_stories:
            raise GridError(f"grids.alignment.shown_story: {self.shown_story} is not one of the "
                            f"{self.heldout_stories} held-out stories")


@dataclass(frozen=True)
class Grids:
    """Every simulation's grid; one field per chapter."""

    tokenization: TokenizationGrid = field(default_factory=TokenizationGrid)
    sampling: SamplingGrid = field(default_factory=SamplingGrid)
    attention: AttentionGrid = field(default_factory=AttentionGrid)
    block: BlockGrid = field(default_factory=BlockGrid)
    pretraining: PretrainingGrid = field(default_factory=PretrainingGrid)
    alignment: AlignmentGrid = field(default_factory=AlignmentGrid)
    rag: RagGrid = field(default_factory=RagGrid)
    kvcache: KVCacheGrid = field(default_factory=KVCacheGrid)


# ---------------------------------------------------------------------------------------------
# Loading from plain data


def load_grids(mapping: Mapping[str, Any] | None = None) -> Grids:
    """Build Grids from nested plain data (overrides of the defaults); unknown keys are errors."""
    return _from_mapping(Grids, mapping or {}, "grids")


def grid_names() -> tuple[str, ...]:
    """The names of the simulations, in chapter order."""
    return tuple(f.name for f in dataclasses.fields(Grids))


def _from_mapping(cls: type, mapping: Any, path: str) -> Any:
    if not isinstance(mapping, Mapping):
        raise GridError(f"{path}: expected a mapping of settings, got {mapping!r}")
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise GridError(f"{path}: unknown key {unknown[0]!r} (known: {', '.join(known)})")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in mapping.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _from_mapping(hint, value, f"{path}.{name}")
        else:
            kwargs[name] = _coerce(value, hint, f"{path}.{name}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, path: str) -> Any:
    """Convert plain data (lists, numbers, strings) to the annotated type, or raise GridError."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise GridError(f"{path}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise GridError(f"{path}: expected {len(args)} items, got {value!r}")
        return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise GridError(f"{path}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise GridError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise GridError(f"{path}: expected an integer, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise GridError(f"{path}: expected text, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise GridError(f"{path}: expected true or false, got {value!r}")
        return value
    raise TypeError(f"{path}: unsupported annotation {hint!r}")  # a bug in a grid declaration


# ---------------------------------------------------------------------------------------------
# Validation of a built dataclass


def validate(grid: Any, path: str) -> None:
    """Check every field of a grid dataclass against its type and metadata; raise GridError."""
    hints = typing.get_type_hints(type(grid))
    for f in dataclasses.fields(grid):
        value = getattr(grid, f.name)
        where = f"{path}.{f.name}"
        _check_type(value, hints[f.name], where)
        _check_constraints(value, f.metadata, where)


def _check_type(value: Any, hint: Any, path: str) -> None:
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, hint):
            raise GridError(f"{path}: expected {hint.__name__}, got {value!r}")
        return
    coerced = _coerce(value, hint, path)
    if isinstance(value, list) or coerced != value:
        raise GridError(f"{path}: expected {_describe(hint)}, got {value!r}")


def _describe(hint: Any) -> str:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return "a tuple"
    return hint.__name__ if isinstance(hint, type) else str(hint)


def _check_constraints(value: Any, meta: Mapping[str, Any], path: str) -> None:
    items = value if isinstance(value, tuple) else (value,)
    if "min_items" in meta and len(items) < meta["min_items"]:
        raise GridError(f"{path}: needs at least {meta['min_items']} items, got {len(items)}")
    if "max_items" in meta and len(items) > meta["max_items"]:
        raise GridError(f"{path}: allows at most {meta['max_items']} items, got {len(items)}")
    if meta.get("unique_first"):
        firsts = [item[0] for item in items]
        dupes = sorted({x for x in firsts if firsts.count(x) > 1})
        if dupes:
            raise GridError(f"{path}: duplicate entry {dupes[0]!r}")
    for i, item in enumerate(items):
        where = f"{path}[{i}]" if isinstance(value, tuple) else path
        _check_scalar(item, meta, where)
    if meta.get("grid"):
        if not items:
            raise GridError(f"{path}: the grid is empty")
        for i, (a, b) in enumerate(zip(items, items[1:])):
            if not a < b:
                raise GridError(
                    f"{path}[{i + 1}]: grid must be strictly increasing, got {b!r} after {a!r}"
                )


def _check_scalar(item: Any, meta: Mapping[str, Any], path: str) -> None:
    if isinstance(item, str):
        if meta.get("non_empty") and not item:
            raise GridError(f"{path}: must not be empty")
        if "max_len" in meta and len(item) > meta["max_len"]:
            raise GridError(f"{path}: longer than {meta['max_len']} characters")
        return
    if isinstance(item, tuple):
        return
    if meta.get("gt") is not None and not item > meta["gt"]:
        raise GridError(f"{path}: {item!r} must be > {meta['gt']}")
    if meta.get("ge") is not None and not item >= meta["ge"]:
        raise GridError(f"{path}: {item!r} must be >= {meta['ge']}")
    if meta.get("le") is not None and not item <= meta["le"]:
        raise GridError(f"{path}: {item!r} must be <= {meta['le']}")


__all__ = ["GridError", "Grids", "KVCacheGrid", "PretrainingGrid", "RagGrid", "SamplingGrid", "TokenizationGrid", "grid_names", "load_grids", "validate"]
