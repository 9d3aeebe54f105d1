"""Tokenization: text to token ids with the real OpenAI encodings, BPE learned step by step,
and what the resulting sequence length costs in attention.

Exact: every token id comes from tiktoken with the genuine encoding data (see encodings.py),
special-token names in the examples are encoded as plain text unless a section is about
special tokens, the chat template is ChatML (role markers as tiktoken's README adds them to
cl100k_base), the small BPE is trained by bpe.py, and attention costs are counted in
attention_cost.py. Measured, not computed: the attention timings (see attention_cost.py). Not
simulated: any model that would read the tokens, and the exact chat template a hosted API wraps
around messages (not published), which is why API token counts can differ by a few per message.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.grids import TokenizationGrid
import generator.sims.bpe as bpe
import generator.sims.encodings as encodings
from generator.sims.attention_cost import AttentionCost, attention_cost

ENDOFTEXT = "<|endoftext|>"
IM_START, IM_END = encodings.CHATML_SPECIAL_TOKENS


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


def encode_all(name, texts, bpe_text):  # str, [n_text] str, str -> Encoded
    enc = encodings.get_encoding(name)
    ids = tuple(encode_text(enc, t) for t in texts)
    as_text = encode_text(enc, ENDOFTEXT)
    special = encode_special(enc, ENDOFTEXT)
    bpe_ids = encode_text(enc, bpe_text)
    used = np.unique(np.concatenate([*ids, as_text, special]))
    return Encoded(encoding=name, n_vocab=enc.n_vocab, ids=ids, endoftext_as_text=as_text,
                   endoftext_id=int(special[0]), bpe_text_ids=bpe_ids, pieces=token_hex(enc, used),
                   data_sha256=encodings.data_sha256(name))


def chat_tokens(messages):  # ((role, content), ...) -> Chat
    enc = encodings.get_chatml_encoding()
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
        special_ids=tuple(sorted(enc.encode_single_token(s) for s in encodings.CHATML_SPECIAL_TOKENS)),
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
        joined_at=training.joined_at, tokens=training.tokens, heldout_label=heldout_label,
        heldout_tokens=bpe.token_counts(bpe.split(heldout, pattern), training.merges),
    )


def simulate(grid: TokenizationGrid) -> TokenizationResults:
    """Encode every text with every encoding, train the BPE, count and time attention."""
    labels = tuple(label for label, _ in grid.examples + grid.languages)
    texts = tuple(text for _, text in grid.examples + grid.languages)
    kinds = ("example",) * len(grid.examples) + ("language",) * len(grid.languages)
    reference = dict(grid.languages)[grid.reference_language]
    return TokenizationResults(
        labels=labels, texts=texts, kinds=kinds, reference_language=grid.reference_language,
        encoded=tuple(encode_all(name, texts, grid.bpe_text) for name in grid.encodings),
        chat=chat_tokens(grid.chat),
        bpe=bpe_steps(grid.bpe_text, grid.bpe_split_pattern, grid.bpe_merges,
                      grid.reference_language, reference),
        attention=attention_cost(grid.seq_lengths, grid.max_timed_length, grid.d_head,
                                 grid.n_head, grid.n_layer, grid.seed),
        tiktoken_version=encodings.TIKTOKEN_VERSION,
    )
