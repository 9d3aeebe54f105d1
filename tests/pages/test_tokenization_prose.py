"""The tokenization chapter's qualitative claims, written as prose, re-derived with tiktoken."""

from __future__ import annotations

import pytest

from generator.encodings import get_encoding

CHAPTER_ENCODINGS = ("r50k_base", "p50k_base", "cl100k_base", "o200k_base")


def pieces(name, text):
    enc = get_encoding(name)
    return [enc.decode_single_token_bytes(t) for t in enc.encode(text)]


@pytest.mark.parametrize("name", CHAPTER_ENCODINGS)
def test_every_encoding_reads_12345_as_123_and_45(name):
    assert pieces(name, "12345") == [b"123", b"45"]


def test_newer_encodings_keep_digits_apart_from_the_space_older_ones_do_not():
    for name in ("cl100k_base", "o200k_base"):
        assert pieces(name, " 678") == [b" ", b"678"]
    for name in ("r50k_base", "p50k_base"):
        assert pieces(name, " 678") == [b" 6", b"78"]


@pytest.mark.parametrize("name", CHAPTER_ENCODINGS)
def test_the_parrot_is_four_bytes_over_three_tokens_the_first_with_the_space(name):
    assert "\U0001f99c".encode() == bytes.fromhex("f09fa69c")
    assert pieces(name, " \U0001f99c") == [b" \xf0\x9f", b"\xa6", b"\x9c"]


@pytest.mark.parametrize("name", CHAPTER_ENCODINGS)
def test_case_and_spaces_make_different_tokens(name):
    enc = get_encoding(name)
    assert enc.encode("hello") != enc.encode(" Hello")
    assert len(enc.encode(" HELLO")) > 1


def test_the_chapter_still_makes_these_claims():
    from tests.conftest import ROOT

    prose = (ROOT / "content" / "tokenization.md").read_text()
    assert "`12345` as `123` and `45`" in prose
    assert "f0 9f a6 9c" in prose
