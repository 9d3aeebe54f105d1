"""The story grammar against exact enumeration of a tiny world, and its agreement rules."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest

from generator.sims import stories as s

TINY = s.World(boys=("Tom",), girls=("Mia",), traits=("kind", "old"), places=("park",),
               things=(("ball", "kicked"), ("egg", "painted")), colours=("red", "old"),
               feelings=("happy",), max_events=2, sounds=("ba", "bi"), song_lengths=(1, 2),
               max_singings=3)


def enumerate_stories(world):
    """Every story the grammar can tell, with its probability: the product of its choices.

    Depth first over the grammar's choices, replaying the story with scripted picks; this
    never looks at the per-token probabilities the Teller records.
    """
    out = []
    paths = [[]]
    while paths:
        path = paths.pop()
        seen: list[list[float]] = []
        picked: list[int] = []

        def pick(probs):
            k = len(seen)
            seen.append(list(probs))
            picked.append(path[k] if k < len(path) else next(i for i, p in enumerate(probs) if p > 0))
            return picked[-1]

        teller = s.Teller(pick)
        s.tell(teller, world)
        for k in range(len(path), len(seen)):
            for j, p in enumerate(seen[k]):
                if p > 0 and j != picked[k]:
                    paths.append(picked[:k] + [j])
        out.append((tuple(teller.tokens), math.prod(seen[k][i] for k, i in enumerate(picked)),
                    teller.log2p))
    return out


STORIES = enumerate_stories(TINY)


def test_enumeration_is_a_distribution_over_distinct_texts():
    texts = [t for t, _, _ in STORIES]
    # stories: 8 openings x 16 meetings x 42 event runs; songs: 2 of one sound, 2 of two, each
    # sung again from any of its sounds once (2 + 2 x 2 ways) or twice (2 + 2 x 4 ways)
    assert len(texts) == len(set(texts)) == 8 * 16 * 42 + 6 + 10
    assert math.fsum(p for _, p, _ in STORIES) == pytest.approx(1.0, abs=1e-12)


def test_each_tokens_probability_is_its_exact_conditional_given_the_story_so_far():
    mass = defaultdict(float)  # prefix -> probability that a story starts with it
    for tokens, p, _ in STORIES:
        for n in range(len(tokens) + 1):
            mass[tokens[:n]] += p
    for tokens, p, log2p in STORIES:
        assert len(log2p) == len(tokens)
        assert sum(log2p) == pytest.approx(math.log2(p), abs=1e-9)
        for n, lp in enumerate(log2p):
            assert 2.0 ** lp == pytest.approx(mass[tokens[:n + 1]] / mass[tokens[:n]], rel=1e-9)


def test_sampled_entropy_per_token_matches_exact_enumeration():
    exact = -math.fsum(p * math.log2(p) for _, p, _ in STORIES) / math.fsum(p * len(t) for t, p, _ in STORIES)
    c = s.corpus(TINY, 20_000, seed=1)
    lengths = np.diff(np.append(c.starts, len(c.ids) - 1))
    per_story = np.add.reduceat(-c.log2p[1:], c.starts)  # bits of each story
    # the ratio estimator's standard error, by the delta method
    se = np.std(per_story - exact * lengths) / lengths.mean() / math.sqrt(len(lengths))
    assert abs(s.entropy_per_token(c) - exact) < 4 * se
    assert se < 0.005


def test_next_token_probs_are_the_exact_conditionals():
    mass = defaultdict(float)
    for tokens, p, _ in STORIES:
        for n in range(len(tokens) + 1):
            mass[tokens[:n]] += p
    rng = np.random.default_rng(0)
    for i in rng.choice(len(STORIES), 40, replace=False):
        tokens = STORIES[i][0]
        n = int(rng.integers(0, len(tokens) - 1))
        prefix = tokens[:n]
        expected = {t[n]: 0.0 for t, _, _ in STORIES if t[:n] == prefix}
        for t in expected:
            expected[t] = mass[prefix + (t,)] / mass[prefix]
        assert s.next_token_probs(TINY, prefix) == pytest.approx(expected, rel=1e-9)


def test_next_token_probs_hand_worked():
    w = s.World()
    assert s.next_token_probs(w, ["once", "upon", "a"]) == {"time": 1.0}
    assert s.next_token_probs(w, "once upon a time , there was".split()) == pytest.approx({"a": 5 / 6, "an": 1 / 6})
    met = "Mia was a kind girl who lived near the park . one day , she went to the lake . there , Mia met Tom ."
    assert s.next_token_probs(w, met.split()) == {"Tom": 1.0}
    song = "song : ba ki lo mu ra pe".split()
    assert s.next_token_probs(w, song[:2]) == pytest.approx({x: 1 / 32 for x in w.sounds})
    assert s.next_token_probs(w, song[:3]) == pytest.approx({x: 1 / 31 for x in w.sounds if x != "ba"})
    assert s.next_token_probs(w, ["song", ":"] + list(w.sounds[:16])) == pytest.approx({".": 1.0})
    sung = "song : ba ki lo ku ra pe . again : lo ku".split()
    assert s.next_token_probs(w, sung) == {"ra": 1.0}
    assert s.next_token_probs(w, sung[:11]) == pytest.approx({x: 1 / 6 for x in sung[2:8]})
    assert s.next_token_probs(w, sung[:9]) == {"again": 1.0}
    assert s.next_token_probs(w, sung[:8])["."] == pytest.approx(1 / 11)  # 11 lengths, 6..16, left
    with pytest.raises(ValueError, match="cannot say 'dog'"):
        s.next_token_probs(w, ["once", "upon", "a", "dog"])


def test_corpus_is_seeded_and_within_the_vocabulary():
    a, b = s.corpus(s.World(), 300, seed=7), s.corpus(s.World(), 300, seed=7)
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.log2p, b.log2p)
    assert not np.array_equal(a.ids, s.corpus(s.World(), 300, seed=8).ids)
    assert set(a.vocab[i] for i in a.ids) <= set(s.vocabulary(s.World()))
    assert [a.vocab[i] for i in a.ids[a.starts]] == [s.END] * 300


def test_agreement_holds_in_every_sampled_story():
    w = s.World()
    c = s.corpus(w, 500, seed=3)
    tokens = [c.vocab[i] for i in c.ids]
    for i, (word, nxt) in enumerate(zip(tokens, tokens[1:])):
        if word in ("a", "an"):
            assert (word == "an") == (nxt[0] in "aeiou"), tokens[i - 5:i + 3]
        if word == "named":
            assert (nxt in w.girls) == (tokens[i - 1] == "girl")
        if word == "took":
            hero_is_girl = tokens[i - 1] == "she" or tokens[i - 1] in w.girls
            assert nxt == ("her" if hero_is_girl else "his")
        if word in ("kicked", "flew", "read", "ate", "played", "painted", "opened", "sailed"):
            assert (tokens[i + 2], word) in w.things


def test_options_that_start_one_another_are_refused():
    with pytest.raises(ValueError, match="starts a longer option"):
        s.check_prefix_free([("a",), ("a", "red")])
    with pytest.raises(ValueError, match="repeated"):
        s.check_prefix_free([("a",), ("a",)])


def test_detokenize_hand_worked():
    assert s.detokenize(["Mia", "had", "a", "kite", ".", "\n", "Tom", ",", "hi"]) == "Mia had a kite.\nTom, hi"
