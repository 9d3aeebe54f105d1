"""Byte-level byte-pair encoding (BPE), trained one merge at a time, minbpe style.

Simulated exactly: training starts from the 256 single-byte tokens, counts every pair of
neighbouring tokens inside each pre-split piece of the text, and merges the most frequent pair
into a new token (ties go to the pair seen first, as in minbpe and tiktoken's educational
trainer); encoding replays the merges in the order they were learned. Also recorded: for every
byte, the merge step that joined it to the byte before it, so a chart can redraw the text's
tokens after any number of merges from one array. Not simulated: special tokens, and the
regular expression dialect of real tokenizers (the pieces come from Python's ``re``, see the
pattern in the grid).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

N_BYTES = 256
NEVER = -1  # joined_at value of a byte that starts a token after every merge


def get_stats(pieces):  # list of [n_seq] id lists -> Counter {(a, b): count}
    """How often each pair of neighbouring tokens occurs, in order of first appearance.

    Example: get_stats([[1, 2, 1, 2], [2, 1]]) -> Counter({(1, 2): 2, (2, 1): 2})
    """
    stats: Counter = Counter()
    for ids in pieces:
        stats.update(zip(ids, ids[1:]))
    return stats


def most_frequent_pair(stats):  # Counter -> (a, b)
    """The pair with the highest count; among equals, the one that appeared first."""
    return max(stats, key=stats.__getitem__)


def merge(ids, pair, new_id):  # [n_seq], (a, b), int -> [n_seq']
    """Replace every non-overlapping occurrence of pair, left to right, with new_id.

    Example: merge([5, 5, 5, 6], (5, 5), 256) -> [256, 5, 6]
    """
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


@dataclass(frozen=True)
class Training:
    merges: np.ndarray  # [n_merges, 2] the pair merged at each step; new id = 256 + step
    pair_counts: np.ndarray  # [n_merges] how often that pair occurred when it was merged
    joined_at: np.ndarray  # [n_bytes] merge step (1-based) that joined byte i to byte i-1, or NEVER
    tokens: np.ndarray  # [n_merges + 1] tokens in the training text after k merges


def train(pieces, n_merges):  # list of bytes, int -> Training
    """Learn up to n_merges merges from pre-split pieces of text (fewer if no pair is left)."""
    offsets = np.cumsum([0] + [len(p) for p in pieces])  # [n_pieces + 1] first byte of each piece
    # Each piece as (token id, index of its first byte) pairs.
    seqs = [[(b, int(start) + i) for i, b in enumerate(p)] for p, start in zip(pieces, offsets)]
    joined_at = np.full(int(offsets[-1]), NEVER, dtype=np.int64)  # [n_bytes]
    merges, counts, tokens = [], [], [int(offsets[-1])]
    for step in range(1, n_merges + 1):
        stats = get_stats([[t for t, _ in seq] for seq in seqs])
        if not stats:
            break
        pair = most_frequent_pair(stats)
        new_id = N_BYTES + step - 1
        seqs = [_merge_tracked(seq, pair, new_id, step, joined_at) for seq in seqs]
        merges.append(pair)
        counts.append(stats[pair])
        tokens.append(sum(len(seq) for seq in seqs))
    return Training(merges=np.array(merges, dtype=np.int64).reshape(-1, 2),
                    pair_counts=np.array(counts, dtype=np.int64), joined_at=joined_at,
                    tokens=np.array(tokens, dtype=np.int64))


def _merge_tracked(seq, pair, new_id, step, joined_at):
    """merge() on (id, first byte) tokens, noting in joined_at where two tokens became one."""
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and (seq[i][0], seq[i + 1][0]) == pair:
            joined_at[seq[i + 1][1]] = step
            out.append((new_id, seq[i][1]))
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


def made_at(joined_at):  # [n_bytes] int -> per byte, a tuple of merge steps
    """Per byte, the merge steps whose new token holds it (ascending), from each byte's join
    step (the merge that joined it to the byte before, or NEVER).

    After merge s a token starts at every byte not yet joined (NEVER, or a join step above s);
    the tokens merge s made are those holding a byte joined at s. Example: bytes a b c joined
    at [NEVER, 2, 1] -> ((2,), (1, 2), (1, 2)) (merge 1 makes "bc", merge 2 makes "abc")."""
    joined = [int(j) for j in joined_at]
    made = [[] for _ in joined]
    for step in sorted({j for j in joined if j > 0}):
        starts = [i for i, j in enumerate(joined) if j < 0 or j > step] + [len(joined)]
        for begin, end in zip(starts, starts[1:]):
            if any(joined[i] == step for i in range(begin, end)):
                for i in range(begin, end):
                    made[i].append(step)
    return tuple(tuple(m) for m in made)


def vocab(merges):  # [n_merges, 2] -> {id: bytes}
    """Every token's bytes: the 256 single bytes, then each merge's two halves joined."""
    table = {i: bytes([i]) for i in range(N_BYTES)}
    for step, (a, b) in enumerate(merges):
        table[N_BYTES + step] = table[int(a)] + table[int(b)]
    return table


def replay(pieces, merges):  # list of bytes, [n_merges, 2] -> iterator of lists of [n_seq]
    """Each piece's ids after 0, 1, ..., n_merges of the merges, replayed in learned order.

    Replaying in order equals greedy lowest-rank-first encoding: a pair that contains a token
    made at step k can only have been learned after step k.
    """
    seqs = [list(p) for p in pieces]
    yield seqs
    for step, (a, b) in enumerate(merges):
        seqs = [merge(s, (int(a), int(b)), N_BYTES + step) for s in seqs]
        yield seqs


def token_counts(pieces, merges):  # list of bytes, [n_merges, 2] -> [n_merges + 1]
    """Tokens in the text after the first k merges, for k = 0 .. n_merges."""
    return np.array([sum(map(len, seqs)) for seqs in replay(pieces, merges)], dtype=np.int64)


def encode(pieces, merges):  # list of bytes, [n_merges, 2] -> [n_seq]
    """Token ids of the text after every merge."""
    *_, final = replay(pieces, merges)
    return [t for seq in final for t in seq]


def split(text, pattern):  # str, str -> list of bytes
    """The text's pre-split pieces as UTF-8 bytes; they must cover the text exactly."""
    pieces = [m.group(0) for m in re.finditer(pattern, text)]
    if "".join(pieces) != text:
        raise ValueError(f"the split pattern {pattern!r} skips part of the text")
    return [p.encode("utf-8") for p in pieces]
