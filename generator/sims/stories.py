"""Short stories from a small probabilistic grammar, with every token's exact probability.

Simulated: a grammar that tells stories about two children in a small world. The hero is
introduced (as "a little girl named Mia" or "Mia was a kind girl"), meets a friend who has a
thing, and then one to a few events happen before the day ends. Its structure is there to be
learned: agreement (girl/she/her, boy/he/his, "a"/"an" before the next word, "were" after two
names), a small world (you kick a ball and read a book) and names repeated within a story, so
that copying an earlier token is the only way to predict a later one (how induction heads pay
off). Not simulated: anything outside the grammar; its word lists are the whole world.

Every random choice's options start with distinct token sequences (checked), so the story so
far always tells which choices were made. The probability of each token given the story so far
is therefore known exactly, and its average -log2 is the data's true entropy per token: the
floor a language model's loss can approach but not pass.

The tokenizer is word level: one token per word or punctuation mark, split on spaces. That
keeps one token per grammar symbol, so each token's exact probability is a product of choice
probabilities; with subword tokens it would be a sum over the ways words split into pieces.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

END = "\n"  # ends every story; the stream of stories starts with one too


@dataclass(frozen=True)
class World:
    """The grammar's word lists and how long stories run."""

    boys: tuple[str, ...] = ("Tom", "Ben", "Sam", "Max", "Leo", "Jack")
    girls: tuple[str, ...] = ("Mia", "Lily", "Anna", "Zoe", "Ella", "Lucy")
    traits: tuple[str, ...] = ("little", "kind", "brave", "clever", "shy", "old")
    places: tuple[str, ...] = ("park", "beach", "garden", "forest", "lake", "market")
    # What each thing is for: you kick a ball, fly a kite.
    things: tuple[tuple[str, str], ...] = (
        ("ball", "kicked"), ("kite", "flew"), ("book", "read"), ("apple", "ate"),
        ("drum", "played"), ("egg", "painted"), ("umbrella", "opened"), ("boat", "sailed"),
    )
    colours: tuple[str, ...] = ("red", "blue", "green", "yellow", "orange", "old")
    feelings: tuple[str, ...] = ("happy", "sad", "tired", "proud")
    p_another_event: float = 0.6  # after each event, another one comes with this probability
    max_events: int = 4
    # Songs: random sounds, sung again and again from a random sound on. Only the song's first
    # singing tells what comes back, so copying from the context (an induction head: find the
    # sound just sung earlier, predict the one after it) is the one way to predict the rest.
    sounds: tuple[str, ...] = (
        "ba", "bi", "bo", "bu", "da", "de", "di", "du", "ga", "ge", "gi", "gu", "ka", "ke", "ki", "ko",
        "ku", "la", "le", "li", "lo", "lu", "mi", "mo", "na", "ne", "ni", "pe", "pi", "po", "pu", "ra",
    )
    p_song: float = 0.5  # share of the stream's pieces that are songs rather than stories
    song_lengths: tuple[int, int] = (6, 16)  # sounds in a song: uniform over this range
    p_sing_again: float = 0.6  # after the second singing, another one comes with this probability
    max_singings: int = 4


# Every word the templates below say themselves (the World's lists add the rest).
TEMPLATE_WORDS = (
    END, ",", ".", ":", "a", "again", "an", "and", "at", "boy", "day", "end", "felt", "gave", "girl", "had",
    "he", "her", "his", "home", "it", "lived", "met", "named", "near", "of", "once", "one", "rain",
    "ran", "she", "so", "song", "started", "the", "then", "there", "they", "time", "to", "took", "upon",
    "was", "went", "were", "who",
)


def vocabulary(world: World) -> tuple[str, ...]:
    """Every token the grammar can emit, sorted (END first)."""
    words = set(TEMPLATE_WORDS) | set(world.boys) | set(world.girls) | set(world.traits)
    words |= set(world.places) | set(world.colours) | set(world.feelings) | set(world.sounds)
    words |= {w for pair in world.things for w in pair}
    return tuple(sorted(words))


# ---------------------------------------------------------------------------------------------
# A teller: emits tokens and records each token's probability given everything before it


class Teller:
    """Emits a story token by token; `pick(probs) -> index` makes the random choices."""

    def __init__(self, pick: Callable[[Sequence[float]], int]):
        self.pick = pick
        self.tokens: list[str] = []
        self.log2p: list[float] = []  # log2 P(token | all tokens before it)

    def say(self, *words: str) -> None:
        """Words the grammar leaves no choice about (probability 1)."""
        self.tokens += words
        self.log2p += [0.0] * len(words)

    def choose(self, options: Sequence[tuple[str, ...]], weights: Sequence[float] | None = None) -> int:
        """Emit one of several phrases and return its index.

        A phrase's first token may be shared with other options ("a red", "a blue"); each token
        gets its probability given the phrase so far: the mass of the options still consistent
        with it over the mass consistent before it.
        Example: choose([("a", "red"), ("a", "blue"), ("an", "old")]) emits "a" with p 2/3,
        then "red" with p 1/2.
        """
        probs, alive = start_choice(options, weights)
        chosen = self.pick(probs)
        for j, token in enumerate(options[chosen]):
            alive = self.emit(options, probs, alive, j, token)
        return chosen

    def emit(self, options, probs, alive, j, token) -> list[int]:
        """Emit the j-th token of a phrase; return the options still consistent with it."""
        consistent = [i for i in alive if options[i][j] == token]
        if not consistent:
            raise ValueError(f"the grammar cannot say {token!r} after {' '.join(self.tokens[-8:])!r}")
        self.log2p.append(math.log2(sum(probs[i] for i in consistent) / sum(probs[i] for i in alive)))
        self.tokens.append(token)
        return consistent

    def choose_word(self, words: Sequence[str]) -> str:
        """One word, uniformly."""
        return words[self.choose([(w,) for w in words])]


class NextToken(Exception):
    """A Reader reached the end of its tokens; carries the grammar's next-token distribution."""

    def __init__(self, probs: dict[str, float]):
        super().__init__(probs)
        self.probs = probs


class Reader(Teller):
    """Follows given tokens through the grammar, recording their probabilities; at their end,
    raises NextToken with the distribution of the token that would come next."""

    def __init__(self, tokens: Sequence[str]):
        super().__init__(pick=lambda probs: 0)
        self.given = list(tokens)

    def say(self, *words: str) -> None:
        for word in words:
            self.choose([(word,)])

    def choose(self, options, weights=None) -> int:
        probs, alive = start_choice(options, weights)
        j = 0
        while True:
            if len(self.tokens) == len(self.given):
                raise NextToken(next_token_mass(options, probs, alive, j))
            alive = self.emit(options, probs, alive, j, self.given[len(self.tokens)])
            j += 1
            if len(options[alive[0]]) == j:  # prefix-free: a finished option is the only one left
                return alive[0]


def start_choice(options, weights) -> tuple[list[float], list[int]]:
    """Normalised probabilities and the options that can happen; checks the options first."""
    check_prefix_free(options)
    weights = [1.0] * len(options) if weights is None else list(weights)
    total = sum(weights)
    probs = [w / total for w in weights]
    return probs, [i for i, p in enumerate(probs) if p > 0]


def next_token_mass(options, probs, alive, j) -> dict[str, float]:
    """Distribution of the j-th token among the options still alive."""
    mass: dict[str, float] = {}
    for i in alive:
        mass[options[i][j]] = mass.get(options[i][j], 0.0) + probs[i]
    total = sum(mass.values())
    return {token: m / total for token, m in mass.items()}


def check_prefix_free(options: Sequence[tuple[str, ...]]) -> None:
    """Raise if an option repeats or starts another: the story would not tell which was chosen."""
    whole = set(options)
    if len(whole) != len(options):
        raise ValueError(f"repeated option among {options}")
    starts = {o[:j] for o in options for j in range(1, len(o))}
    clash = whole & starts
    if clash:
        raise ValueError(f"option {sorted(clash)[0]} starts a longer option")


# ---------------------------------------------------------------------------------------------
# The grammar


@dataclass(frozen=True)
class Child:
    name: str
    girl: bool

    @property
    def pronoun(self) -> str:
        return "she" if self.girl else "he"

    @property
    def possessive(self) -> str:
        return "her" if self.girl else "his"


@dataclass
class Cast:
    hero: Child
    friend: Child | None = None
    thing: tuple[str, str] | None = None  # (noun, what you do with it)
    events: int = 0


def article_phrases(words: Sequence[str]) -> list[tuple[str, str]]:
    """("a", word) or ("an", word): the article agrees with the sound that follows."""
    return [("an" if w[0] in "aeiou" else "a", w) for w in words]


def opening(t: Teller, w: World) -> int:
    """The first word of a piece: 'song' (index len(names) + 1), 'once' (0), or a hero's name."""
    names = w.girls + w.boys
    story = [len(names)] + [1] * len(names)  # 'once' half the stories, each name the same share
    weights = [(1 - w.p_song) * x / sum(story) for x in story] + [w.p_song]
    return t.choose([("once",)] + [(n,) for n in names] + [("song",)], weights)


def introduce_hero(t: Teller, w: World, opening: int) -> Child:
    """'once upon a time , there was a brave girl named Mia .' or 'Mia was a kind girl who ...'"""
    names = w.girls + w.boys
    if opening == 0:
        t.say("upon", "a", "time", ",", "there", "was")
        t.choose(article_phrases(w.traits))
        girl = t.choose([("girl",), ("boy",)]) == 0
        t.say("named")
        hero = Child(t.choose_word(w.girls if girl else w.boys), girl)
        t.say(".")
        return hero
    hero = Child(names[opening - 1], girl=opening <= len(w.girls))
    t.say("was")
    t.choose(article_phrases(w.traits))
    t.say("girl" if hero.girl else "boy", "who", "lived", "near", "the")
    t.choose_word(w.places)
    t.say(".")
    return hero


def refer(t: Teller, child: Child) -> None:
    """The child's name or the pronoun that agrees with it, even odds."""
    t.choose([(child.name,), (child.pronoun,)])


def meet_friend(t: Teller, w: World, cast: Cast) -> None:
    """'one day , she went to the park . there , she met Tom . Tom had a red ball .'"""
    hero = cast.hero
    t.say("one", "day", ",")
    refer(t, hero)
    t.say("went", "to", "the")
    t.choose_word(w.places)
    t.say(".", "there", ",")
    refer(t, hero)
    t.say("met")
    others = [Child(n, True) for n in w.girls] + [Child(n, False) for n in w.boys]
    others = [c for c in others if c.name != hero.name]
    cast.friend = others[t.choose([(c.name,) for c in others])]
    t.say(".", cast.friend.name, "had")
    t.choose(article_phrases(w.colours))
    cast.thing = w.things[t.choose([(noun,) for noun, _ in w.things])]
    t.say(".")


def event(t: Teller, w: World, cast: Cast) -> bool:
    """One event, or the ending; returns False once the story has ended.

    The events start with distinct words (the hero's name, a pronoun, the friend's name,
    'then', 'it'), so the first word tells which event it is.
    """
    hero, friend, (noun, verb) = cast.hero, cast.friend, cast.thing
    last = cast.events >= w.max_events
    first = 0.0 if cast.events == 0 else 1.0 - w.p_another_event  # at least one event
    go_on = 0.0 if last else (1.0 - first) / 5
    options = [("at",), (hero.name,), (hero.pronoun,), (friend.name,), ("then",), ("it",)]
    kind = t.choose(options, [1.0 if last else first] + [go_on] * 5)
    cast.events += 1
    if kind == 0:
        t.say("the", "end", "of", "the", "day", ",", hero.name, "and", friend.name, "were")
        t.choose_word(w.feelings)
        t.say(".", END)
        return False
    if kind == 1:
        t.say(verb, "the", noun, ".")
    elif kind == 2:
        t.say("felt")
        t.choose_word(w.feelings)
        t.say(".")
    elif kind == 3:
        t.say("gave", hero.name, "the", noun, ".")
    elif kind == 4:
        t.say("they", "ran", "to", "the")
        t.choose_word(w.places)
        t.say(".")
    else:
        t.say("started", "to", "rain", ",", "so")
        refer(t, hero)
        t.say("took", hero.possessive, noun, "home", ".")
    return True


def sing(t: Teller, w: World) -> None:
    """'song : ba ki lo mu ra . again : lo mu ra ba ki . again : mu ra ba ki lo .' then END.

    A song is distinct sounds, its length uniform over w.song_lengths: after the shortest
    length, each next token ends the song ('.') with the hazard of that uniform draw, else is
    one of the sounds not yet sung. Each singing again starts at a sound drawn uniformly from
    the song and goes round it once; from its second sound on, every token is decided by the
    first singing (probability 1), but only for a reader that finds the sound it has just seen
    there and copies the one after it: the song gives no position to count from.
    """
    t.say(":")
    shortest, longest = w.song_lengths
    song: list[str] = []
    while True:
        left = [s for s in w.sounds if s not in song]
        if len(song) >= shortest:
            p_end = 1 / (longest - len(song) + 1)  # of the lengths still possible, this one
            chosen = t.choose([(".",)] + [(s,) for s in left], [p_end] + [(1 - p_end) / max(1, len(left))] * len(left))
            if chosen == 0:
                break
            song.append(left[chosen - 1])
        else:
            song.append(t.choose_word(left))
    for singing in range(2, w.max_singings + 1):
        p_again = 1.0 if singing == 2 else w.p_sing_again
        if t.choose([("again",), (END,)], [p_again, 1 - p_again]) == 1:
            return
        t.say(":")
        first = t.choose([(s,) for s in song])
        t.say(*song[first + 1:], *song[:first], ".")
    t.say(END)


def tell(t: Teller, w: World) -> None:
    """One whole piece, a story or a song, ending with END."""
    first = opening(t, w)
    if first == len(w.girls + w.boys) + 1:
        sing(t, w)
        return
    cast = Cast(hero=introduce_hero(t, w, first))
    meet_friend(t, w, cast)
    while event(t, w, cast):
        pass


# ---------------------------------------------------------------------------------------------
# Corpora


@dataclass(frozen=True)
class Corpus:
    """Stories as one stream of token ids, each token with its exact probability."""

    vocab: tuple[str, ...]  # [n_vocab]
    ids: np.ndarray  # [n_tokens] int  starts with END, then each story ending with END
    log2p: np.ndarray  # [n_tokens]  log2 P(token | its story so far); 0 for the first END
    starts: np.ndarray  # [n_stories] int  index of the END before each story


def sampler(rng: np.random.Generator) -> Callable[[Sequence[float]], int]:
    """Picks an index with the given probabilities, one uniform draw per choice."""
    def pick(probs: Sequence[float]) -> int:
        cumulative = list(itertools.accumulate(probs))
        return min(bisect.bisect_right(cumulative, rng.random()), len(probs) - 1)
    return pick


def corpus(world: World, n_stories: int, seed: int) -> Corpus:
    """n_stories sampled stories, seeded."""
    vocab = vocabulary(world)
    teller = Teller(sampler(np.random.default_rng(seed)))
    teller.say(END)
    starts = []
    for _ in range(n_stories):
        starts.append(len(teller.tokens) - 1)
        tell(teller, world)
    index = {w: i for i, w in enumerate(vocab)}
    return Corpus(
        vocab=vocab,
        ids=np.array([index[w] for w in teller.tokens], dtype=np.int64),
        log2p=np.array(teller.log2p),
        starts=np.array(starts, dtype=np.int64),
    )


def next_token_probs(world: World, prompt: Sequence[str]) -> dict[str, float]:
    """The grammar's exact distribution of the token after a prompt that starts a story.

    Raises ValueError if the grammar cannot tell the prompt.
    Example: next_token_probs(World(), ["once", "upon", "a"]) -> {"time": 1.0}
    """
    reader = Reader([END, *prompt])
    try:
        reader.say(END)
        while True:
            tell(reader, world)
    except NextToken as end:
        return end.probs


def entropy_per_token(c: Corpus) -> float:
    """Average -log2 P(token | story so far) over the stories' tokens, in bits."""
    return float(-c.log2p[1:].mean())


def detokenize(tokens: Sequence[str]) -> str:
    """Words joined by spaces, punctuation attached to the word before it.

    Example: detokenize(["Mia", "had", "a", "kite", ".", "\\n"]) -> "Mia had a kite.\\n"
    """
    out = ""
    for token in tokens:
        if token in (",", ".", END) or not out or out.endswith(END):
            out += token
        else:
            out += " " + token
    return out
