"""The byte-level BPE trainer: a hand-worked case, tiktoken's educational trainer, properties."""

from __future__ import annotations

import numpy as np
import pytest

from generator.grids import TokenizationGrid
from generator.sims import bpe

GRID = TokenizationGrid()


def test_hand_worked_aaabdaaabac():
    # Pairs of "aaabdaaabac": aa x4 wins. Then "ZabdZabac": Za and ab both x2, Za came first.
    # Then "YbdYbac": Yb x2.
    training = bpe.train([b"aaabdaaabac"], 3)
    a, b = ord("a"), ord("b")
    assert training.merges.tolist() == [[a, a], [256, a], [257, b]]
    assert training.pair_counts.tolist() == [4, 2, 2]
    assert training.tokens.tolist() == [11, 9, 7, 5]
    #                     a   a  a  b  d   a  a  a  b   a   c
    assert training.joined_at.tolist() == [-1, 1, 2, 3, -1, -1, 1, 2, 3, -1, -1]
    assert bpe.vocab(training.merges)[258] == b"aaab"
    assert bpe.encode([b"aaabdaaabac"], training.merges) == [258, ord("d"), 258, a, ord("c")]


def test_merge_is_left_to_right_and_non_overlapping():
    assert bpe.merge([5, 5, 5, 6], (5, 5), 256) == [256, 5, 6]
    assert bpe.merge([5, 5, 5, 5], (5, 5), 256) == [256, 256]


def test_merges_never_cross_pieces():
    # Read as one string, "ababba" has (b, a) twice; inside the pieces it occurs once.
    training = bpe.train([b"ab", b"ab", b"ba"], 10)
    a, b = ord("a"), ord("b")
    assert training.merges.tolist() == [[a, b], [b, a]]  # then no pair is left: it stops early
    assert training.pair_counts.tolist() == [2, 1]
    assert training.tokens.tolist() == [6, 4, 3]
    assert training.joined_at.tolist() == [-1, 1, -1, 1, -1, 2]


@pytest.mark.parametrize("text", [GRID.bpe_text, "naïve café, naïve café: ça va? 東京 東京 🦜🦜"])
def test_equals_tiktokens_educational_trainer(text):
    from tiktoken._educational import bpe_train

    pieces = bpe.split(text, GRID.bpe_split_pattern)
    training = bpe.train(pieces, 60)
    reference = bpe_train(text, 256 + len(training.merges), GRID.bpe_split_pattern, visualise=None)
    ours = {token: rank for rank, token in bpe.vocab(training.merges).items()}
    assert ours == reference


def test_counts_joins_and_replay_agree():
    pieces = bpe.split(GRID.bpe_text, GRID.bpe_split_pattern)
    training = bpe.train(pieces, 80)
    steps = np.arange(len(training.tokens))
    joined = np.array([np.count_nonzero((training.joined_at >= 1) & (training.joined_at <= k))
                       for k in steps])
    # every merge joins exactly as many byte boundaries as it removes tokens
    assert (training.tokens == training.tokens[0] - joined).all()
    assert (bpe.token_counts(pieces, training.merges) == training.tokens).all()
    # a merge removes one token per non-overlapping occurrence: at most its pair count
    assert (0 < -np.diff(training.tokens)).all() and (-np.diff(training.tokens) <= training.pair_counts).all()
    # decoding the encoded ids gives the text back
    table = bpe.vocab(training.merges)
    ids = bpe.encode(pieces, training.merges)
    assert b"".join(table[i] for i in ids).decode() == GRID.bpe_text
    assert len(ids) == training.tokens[-1]


def test_split_must_cover_the_text():
    assert b"".join(bpe.split("a_b c", GRID.bpe_split_pattern)) == b"a_b c"
    with pytest.raises(ValueError, match="skips part of the text"):
        bpe.split("a b", r"[a-z]")
