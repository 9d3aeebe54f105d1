"""Tokenization: text to token ids with the real OpenAI encodings, BPE learned step by step,
and what the resulting sequence length costs in attention.

Exact: every token id comes from tiktoken with the genuine encoding data (loaded and verified by
generator.encodings, outside the simulation, and handed to it in its inputs),
special-token names in the examples are encoded as plain text unless a section is about
special tokens, the chat template is ChatML (role markers as tiktoken's README adds them to
cl100k_base), the small BPE is trained by bpe.py, and attention costs are counted in
attention_cost.py. Measured, not computed: the attention timings, taken by generator.measure and
read from content/measurements.json (they reach the simulation in its inputs). Not
simulated: any model that would read the tokens, and the exact chat template a hosted API wraps
around messages (not published), which is why API token counts can differ by a few per message.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import generator.sims.bpe as bpe
from generator.sims.attention_cost import AttentionCost, Timings, attention_cost
from generator.sims.family import Memo, uncached

ENDOFTEXT = "<|endoftext|>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"  # ChatML's role markers, as cl100k_base specials


def encode_text(enc, text):  # Encoding, str -> [n_seq]
    """Token ids of text read as plain text: a special token's name is just characters here."""
    return np.array(enc.encode(text, disallowed_special=()), dtype=np.int64)


def encode_special(enc, text):  # Encoding, str -> [n_seq]
    """Token ids with every special token's name turned into its single special id."""
    return np.array(enc.encode(text, allowed_special="all"), dtype=np.int64)


def token_hex(enc, ids):  # Encoding, iterable of ids -> {str(id): hex of its bytes}
    """Each token's bytes, hex-encoded (a token may be part of a character's UTF-8 sequence)."""
    return {str(int(i)): enc.decode_single_token_bytes(int(i)).hex() for i in ids}


REPLY_PREFIX = f"{IM_START}assistant\n"  # where the model's answer starts


def chatml_turn(role, content):  # str, str -> str
    """One message in ChatML: marker, role, newline, content, marker, newline."""
    return f"{IM_START}{role}\n{content}{IM_END}\n"


def chatml(messages):  # ((role, content), ...) -> str
    """Messages in ChatML, ending with the prompt for the assistant's reply."""
    return "".join(chatml_turn(role, content) for role, content in messages) + REPLY_PREFIX


# ---------------------------------------------------------------------------------------------
# The chapter's results


@dataclass(frozen=True)
class TokenizationInputs:
    """The simulation's config: the grid plus the texts it names under content/."""

    grid: Any  # generator.grids.TokenizationGrid
    languages: tuple[tuple[str, str], ...]  # (language, text)
    bpe_text: str
    timings: Timings  # attention at the lengths up to grid.max_timed_length
    tiktoken_version: str
    data_sha256: dict[str, dict[str, str]]  # encoding -> file -> sha256 of its verified data
    # The loaded tiktoken Encodings, by name, and cl100k_base with ChatML's markers: not part of
    # the cache key (the names, the version and the data's sha256 above are).
    encodings: dict = field(default_factory=dict, compare=False, repr=False, metadata={"key": False})
    chatml: Any = field(default=None, compare=False, repr=False, metadata={"key": False})


@dataclass(frozen=True)
class Encoded:
    """One encoding applied to every text of the chapter."""

    encoding: str
    n_vocab: int
    ids: tuple[np.ndarray, ...]  # per text: [n_seq]
    endoftext_as_text: np.ndarray  # [n_seq] "<|endoftext|>" typed as characters
    endoftext_id: int  # the single special token
    bpe_text_ids: np.ndarray  # [n_seq] the BPE training text
    pieces: dict[str, str]  # token id -> hex bytes, for every id above
    data_sha256: dict[str, str]  # file name -> sha256 of the verified encoding data


@dataclass(frozen=True)
class Chat:
    """A ChatML conversation in cl100k_base: what the role markers add."""

    encoding: str
    roles: tuple[str, ...]  # [n_msg]
    contents: tuple[str, ...]  # [n_msg]
    template: str  # the whole prompt as text, markers included
    ids: np.ndarray  # [n_seq] the whole prompt
    content_tokens: np.ndarray  # [n_msg] each message's content alone
    message_tokens: np.ndarray  # [n_msg] each message with its markers and role
    reply_prefix_tokens: int  # "<|im_start|>assistant\n"
    special_ids: tuple[int, ...]
    pieces: dict[str, str]  # token id -> hex bytes


@dataclass(frozen=True)
class BpeSteps:
    """A small byte-level BPE trained on one text, merge by merge."""

    text: str
    split_pattern: str
    n_pieces: int
    merges: np.ndarray  # [n_merges, 2] ids merged at each step; the new id is 256 + step
    pair_counts: np.ndarray  # [n_merges]
    pieces: dict[str, str]  # token id -> hex bytes, for every merged token and its halves
    joined_at: np.ndarray  # [n_bytes] merge step that joined byte i to byte i-1, or -1
    made_at: tuple[tuple[int, ...], ...]  # [n_bytes] the merge steps whose new token holds byte i
    tokens: np.ndarray  # [n_merges + 1] training-text tokens after k merges
    heldout_label: str
    heldout_tokens: np.ndarray  # [n_merges + 1] a text it was not trained on


@dataclass(frozen=True)
class TokenizationResults:
    labels: tuple[str, ...]  # [n_text] examples, then languages
    texts: tuple[str, ...]  # [n_text]
    kinds: tuple[str, ...]  # [n_text] "example" or "language"
    reference_language: str
    encoded: tuple[Encoded, ...]  # [n_enc]
    chat: Chat
    bpe: BpeSteps
    attention: AttentionCost
    tiktoken_version: str
    facts: TokenizationFacts | None = None


def encode_all(name, enc, texts, bpe_text, sha256):  # str, Encoding, [n_text] str, str, {file: hex} -> Encoded
    ids = tuple(encode_text(enc, t) for t in texts)
    as_text = encode_text(enc, ENDOFTEXT)
    special = encode_special(enc, ENDOFTEXT)
    bpe_ids = encode_text(enc, bpe_text)
    used = np.unique(np.concatenate([*ids, as_text, special]))
    return Encoded(encoding=name, n_vocab=enc.n_vocab, ids=ids, endoftext_as_text=as_text,
                   endoftext_id=int(special[0]), bpe_text_ids=bpe_ids, pieces=token_hex(enc, used),
                   data_sha256=sha256)


def chat_tokens(messages, enc):  # ((role, content), ...), Encoding -> Chat
    template = chatml(messages)
    ids = encode_special(enc, template)
    return Chat(
        encoding="cl100k_base",
        roles=tuple(r for r, _ in messages), contents=tuple(c for _, c in messages),
        template=template, ids=ids,
        content_tokens=np.array([len(encode_text(enc, c)) for _, c in messages], dtype=np.int64),
        message_tokens=np.array([len(encode_special(enc, chatml_turn(r, c))) for r, c in messages],
                                dtype=np.int64),
        reply_prefix_tokens=len(encode_special(enc, REPLY_PREFIX)),
        special_ids=tuple(sorted(enc.encode_single_token(s) for s in (IM_START, IM_END))),
        pieces=token_hex(enc, np.unique(ids)),
    )


def bpe_steps(text, pattern, n_merges, heldout_label, heldout):  # -> BpeSteps
    pieces = bpe.split(text, pattern)
    training = bpe.train(pieces, n_merges)
    table = bpe.vocab(training.merges)
    used = set(training.merges.ravel().tolist()) | {i for i in table if i >= bpe.N_BYTES}
    return BpeSteps(
        text=text, split_pattern=pattern, n_pieces=len(pieces), merges=training.merges,
        pair_counts=training.pair_counts, pieces={str(i): table[i].hex() for i in sorted(used)},
        joined_at=training.joined_at, made_at=bpe.made_at(training.joined_at), tokens=training.tokens,
        heldout_label=heldout_label,
        heldout_tokens=bpe.token_counts(bpe.split(heldout, pattern), training.merges),
    )


def simulate(inputs: TokenizationInputs, memo: Memo = uncached) -> TokenizationResults:
    """Encode every text with every encoding, train the BPE, count and time attention."""
    grid, languages, bpe_text = inputs.grid, inputs.languages, inputs.bpe_text
    labels = tuple(label for label, _ in grid.examples + languages)
    texts = tuple(text for _, text in grid.examples + languages)
    kinds = ("example",) * len(grid.examples) + ("language",) * len(languages)
    reference = dict(languages)[grid.reference_language]
    res = TokenizationResults(
        labels=labels, texts=texts, kinds=kinds, reference_language=grid.reference_language,
        encoded=tuple(encode_all(name, inputs.encodings[name], texts, bpe_text, inputs.data_sha256[name])
                      for name in grid.encodings),
        chat=chat_tokens(grid.chat, inputs.chatml),
        bpe=bpe_steps(bpe_text, grid.bpe_split_pattern, grid.bpe_merges,
                      grid.reference_language, reference),
        attention=attention_cost(grid.seq_lengths, grid.d_head, grid.n_head, grid.n_layer,
                                 inputs.timings),
        tiktoken_version=inputs.tiktoken_version,
    )
    return dataclasses.replace(res, facts=facts(res))


# ---------------------------------------------------------------------------------------------
# What the prose quotes


@dataclass(frozen=True)
class TokenizationFacts:
    encodings: list[str]
    first_encoding: str
    last_encoding: str
    n_vocab: dict[str, int]
    n_examples: int
    n_languages: int
    reference_language: str
    tokens: dict[str, dict[str, int]]
    ratio: dict[str, dict[str, float]]
    costliest: dict[str, str]
    costliest_ratio: dict[str, float]
    reference_tokens: dict[str, int]
    endoftext_as_text: dict[str, int]
    endoftext_id: dict[str, int]
    chat_tokens: int
    chat_content_tokens: int
    chat_messages: int
    chat_overhead_per_message: list[int]
    chat_reply_prefix: int
    bpe_bytes: int
    bpe_pieces: int
    bpe_merges: int
    bpe_tokens_end: int
    bpe_heldout_start: int
    bpe_heldout_end: int
    bpe_heldout_label: str
    bpe_first_merges: list[tuple[str, str, str]]  # (left, right, merged)
    bpe_real_tokens: dict[str, int]
    d_head: int
    n_head: int
    n_layer: int
    timed_max: int
    timed_min: int
    seconds_top: float
    ratio_top: float
    ratio_small: float
    measured_on: str
    max_length: int
    tiktoken_version: str
    data_sha256: dict[str, dict[str, str]]
    p50k_same_as_r50k: int | None = None  # texts both encode alike, when both are shown


def facts(res: TokenizationResults) -> TokenizationFacts:
    """The numbers the chapter's prose quotes."""
    names = [e.encoding for e in res.encoded]
    by_name = {e.encoding: e for e in res.encoded}
    index = {label: i for i, label in enumerate(res.labels)}
    first, last = res.encoded[0], res.encoded[-1]
    languages = [label for label, kind in zip(res.labels, res.kinds) if kind == "language"]

    def tokens(e, label):
        return int(len(e.ids[index[label]]))

    def ratio(e, label):
        return tokens(e, label) / tokens(e, res.reference_language)

    costliest = {e.encoding: max(languages, key=lambda lang: ratio(e, lang)) for e in res.encoded}
    a, b, chat = res.attention, res.bpe, res.chat
    seconds = dict(zip(a.timed_lengths.tolist(), a.seconds.tolist()))
    top = int(a.timed_lengths[-1])
    out = {
        "encodings": names,
        "first_encoding": first.encoding, "last_encoding": last.encoding,
        "n_vocab": {e.encoding: e.n_vocab for e in res.encoded},
        "n_examples": res.kinds.count("example"), "n_languages": len(languages),
        "reference_language": res.reference_language,
        "tokens": {e.encoding: {label: tokens(e, label) for label in res.labels} for e in res.encoded},
        "ratio": {e.encoding: {lang: ratio(e, lang) for lang in languages} for e in res.encoded},
        "costliest": costliest,
        "costliest_ratio": {e.encoding: ratio(e, costliest[e.encoding]) for e in res.encoded},
        "reference_tokens": {e.encoding: tokens(e, res.reference_language) for e in res.encoded},
        "endoftext_as_text": {e.encoding: int(len(e.endoftext_as_text)) for e in res.encoded},
        "endoftext_id": {e.encoding: e.endoftext_id for e in res.encoded},
        "chat_tokens": int(chat.ids.size),
        "chat_content_tokens": int(chat.content_tokens.sum()),
        "chat_messages": len(chat.roles),
        "chat_overhead_per_message": [int(m - c) for m, c in zip(chat.message_tokens, chat.content_tokens)],
        "chat_reply_prefix": chat.reply_prefix_tokens,
        "bpe_bytes": int(b.tokens[0]), "bpe_pieces": b.n_pieces, "bpe_merges": int(len(b.merges)),
        "bpe_tokens_end": int(b.tokens[-1]), "bpe_heldout_start": int(b.heldout_tokens[0]),
        "bpe_heldout_end": int(b.heldout_tokens[-1]), "bpe_heldout_label": b.heldout_label,
        "bpe_first_merges": first_merges(b, 5),
        "bpe_real_tokens": {e.encoding: int(len(e.bpe_text_ids)) for e in res.encoded},
        "d_head": a.d_head, "n_head": a.n_head, "n_layer": a.n_layer,
        "timed_max": top, "timed_min": int(a.timed_lengths[0]),
        "seconds_top": seconds[top], "ratio_top": seconds[top] / seconds[top // 2],
        "ratio_small": seconds[int(a.timed_lengths[1])] / seconds[int(a.timed_lengths[0])],
        "measured_on": a.measured_on,
        "max_length": int(a.seq_lengths[-1]),
        "tiktoken_version": res.tiktoken_version,
        "data_sha256": {e.encoding: e.data_sha256 for e in res.encoded},
    }
    if "r50k_base" in by_name and "p50k_base" in by_name:
        same = [label for i, label in enumerate(res.labels)
                if np.array_equal(by_name["r50k_base"].ids[i], by_name["p50k_base"].ids[i])]
        out["p50k_same_as_r50k"] = len(same)
    return TokenizationFacts(**out)


def first_merges(b: BpeSteps, n: int) -> list[tuple[str, str, str]]:
    """The first n merges as (left, right, merged) text pieces."""
    piece = {int(k): bytes.fromhex(v).decode("utf-8", "replace") for k, v in b.pieces.items()}
    return [(piece[int(left)], piece[int(right)], piece[256 + k])
            for k, (left, right) in enumerate(b.merges[:n])]
