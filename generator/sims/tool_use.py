"""A tiny GPT taught to call a calculator: questions about counts, answered through a tool call.

Simulated: a small world of questions about two children's things, "Tom had 12 balls and Mia
had 35 balls . how many balls did they have ?", of three kinds: the total, the difference ("how
many more balls did Tom have than Mia ?", asked of the one with more) and one child's count
("how many balls did Mia have ?", read straight from the question). Demonstrations put each in a
chat format of role tokens: the user's turn, then the assistant's. For a total or a difference
the assistant first emits a call to the calculator, one JSON object spelt in tokens,
`<|call|> { "name" : "calculator" , "arguments" : { "expression" : " 1 2 + 3 5 " } } <|end|>`;
the runtime's reply follows as a turn of its own, `<|tool|> { "result" : 4 7 } <|end|>`, and
then the assistant answers from it, "they had 4 7 balls .". One child's count needs no call.

The model is one of the pretraining family, its vocabulary extended by the tokens the format
needs (digits, operators, JSON punctuation and keys, role markers, plural nouns: real chat
models add special tokens the same way), the new rows of the token embedding drawn as GPT-2
initialises them. It is fine-tuned by SFT with the loss on the assistant's tokens only (its
calls and answers, not the user's words or the runtime's replies). A second model fine-tuned
from the same base on the same questions answers at once, without calls: the baseline that
shows what the tool is worth.

Not simulated here: running the calls (generator.sims.tools is the runtime that validates and
runs them when the models are evaluated); a call's text is its tokens concatenated, so a
malformed sequence of tokens is a malformed call. Not simulated at all: real chat templates,
multi-turn dialogue, more than one tool.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from generator.sims.finetune import Schedule, Sequences, optimise, sft_gradient
from generator.sims.gpt import tree_map
from generator.sims.stories import END, World
from generator.sims.train import BITS, TrainConfig

KINDS = ("total", "difference", "one")  # what a question asks; the first two need the calculator
DIGITS = tuple(str(d) for d in range(10))
OPERATORS = ("+", "-")
JSON_TOKENS = ("{", "}", ":", ",", '"', '"name"', '"calculator"', '"arguments"', '"expression"',
               '"result"', '"error"')
ROLES = ("<|user|>", "<|assistant|>", "<|tool|>")
CALL, CLOSE = "<|call|>", "<|end|>"  # a call opens with CALL; every turn ends with CLOSE
QUESTION_WORDS = ("how", "many", "did", "have", "?", "more", "than", "they", "had", "and", ".")


def plural(thing: str) -> str:
    """Example: plural("ball") -> "balls" """
    return thing + "s"


def new_tokens(base_vocab) -> tuple[str, ...]:  # [n_vocab] -> [n_new]
    """The tokens the format needs that the pretrained vocabulary lacks, in a fixed order."""
    wanted = (*DIGITS, *OPERATORS, *JSON_TOKENS, *ROLES, CALL, CLOSE, *QUESTION_WORDS,
              *(plural(t) for t, _ in World().things))
    have = set(base_vocab)
    return tuple(dict.fromkeys(t for t in wanted if t not in have))


def extend_vocabulary(params, base_vocab, rng):  # -> params, [n_vocab + n_new] vocab
    """The pretrained params with one N(0, 0.02) embedding row per new token (logits are tied)."""
    added = new_tokens(base_vocab)
    wte = params["wte"]
    rows = (rng.standard_normal((len(added), wte.shape[1])) * 0.02).astype(wte.dtype)
    return {**tree_map(np.copy, params), "wte": np.concatenate([wte, rows])}, (*base_vocab, *added)


# ---------------------------------------------------------------------------------------------
# The questions and their demonstrations


@dataclass(frozen=True)
class Question:
    kind: str  # one of KINDS
    tokens: tuple[str, ...]  # the user's words
    expression: str | None  # the calculator expression a total or difference needs, else None
    answer: int
    answer_tokens: tuple[str, ...]  # the demonstrated answer, e.g. ("they", "had", "4", "7", "balls", ".")
    counts: tuple[int, int] = (0, 0)  # the two counts, in the order the question says them


def number(n: int) -> tuple[str, ...]:
    """A number as digit tokens (and a leading "-"). Example: number(-47) -> ("-", "4", "7")"""
    return tuple(str(n))


def question(rng, max_count: int, world: World = World()) -> Question:
    """One question of a uniformly drawn kind: two different children, one thing, two counts."""
    kind = KINDS[rng.integers(len(KINDS))]
    a, b = (str(x) for x in rng.choice([*world.boys, *world.girls], 2, replace=False))
    things = plural(world.things[rng.integers(len(world.things))][0])
    m, n = (int(x) for x in rng.choice(np.arange(1, max_count + 1), 2, replace=False))  # different counts
    said = (a, "had", *number(m), things, "and", b, "had", *number(n), things, ".")
    if kind == "total":
        return Question(kind, (*said, "how", "many", things, "did", "they", "have", "?"), f"{m}+{n}",
                        m + n, ("they", "had", *number(m + n), things, "."), (m, n))
    if kind == "difference":
        more, fewer, hi, lo = (a, b, m, n) if m > n else (b, a, n, m)
        return Question(kind, (*said, "how", "many", "more", things, "did", more, "have", "than", fewer, "?"),
                        f"{hi}-{lo}", hi - lo, (more, "had", *number(hi - lo), "more", things, "."), (m, n))
    who, count = (a, m) if rng.random() < 0.5 else (b, n)
    return Question(kind, (*said, "how", "many", things, "did", who, "have", "?"), None, count,
                    (who, "had", *number(count), things, "."), (m, n))


def questions(n: int, max_count: int, seed) -> list[Question]:
    rng = np.random.default_rng(seed)
    return [question(rng, max_count) for _ in range(n)]


def prompt(q: Question) -> tuple[str, ...]:
    """What the model reads before it writes: END, the user's turn, the assistant's role token."""
    return (END, "<|user|>", *q.tokens, CLOSE, "<|assistant|>")


def call_tokens(expression: str) -> tuple[str, ...]:
    """The call as the demonstrations spell it: every character of the expression a token."""
    return (CALL, "{", '"name"', ":", '"calculator"', ",", '"arguments"', ":", "{", '"expression"', ":",
            '"', *expression, '"', "}", "}", CLOSE)


def call_text(tokens) -> str:
    """The text a call's tokens spell (between CALL and CLOSE): the tokens concatenated.

    Example: call_text(["{", '"name"', ":", "}"]) -> '{"name":}'
    """
    return "".join(tokens)


def reply_tokens(reply: dict) -> tuple[str, ...]:
    """The runtime's reply as the model reads it: an integer result spelt out, else only that an
    error happened (the error's words are not in the model's vocabulary)."""
    result = reply.get("result")
    if isinstance(result, int) and not isinstance(result, bool):
        body = ("{", '"result"', ":", *number(result), "}")
    else:
        body = ("{", '"error"', "}")
    return ("<|tool|>", *body, CLOSE, "<|assistant|>")


def demonstration(q: Question, calls: bool) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The demonstration's tokens and, per token, 1 where the assistant wrote it (its loss counts)."""
    tokens, mine = list(prompt(q)), [0] * len(prompt(q))
    if calls and q.expression is not None:
        call = call_tokens(q.expression)
        reply = reply_tokens({"result": q.answer})
        tokens += [*call, *reply]
        mine += [1] * len(call) + [0] * len(reply)
    answer = (*q.answer_tokens, CLOSE)
    return (*tokens, *answer), (*mine, *[1] * len(answer))


def longest_demonstration(max_count: int) -> int:
    """An upper bound on the tokens of any demonstration with counts up to max_count: a total
    and a difference whose counts, and answers, have the most digits any can have."""
    big = number(max_count)
    said = ("Tom", "had", *big, "umbrellas", "and", "Mia", "had", *big, "umbrellas", ".")
    total = Question("total", (*said, "how", "many", "umbrellas", "did", "they", "have", "?"),
                     f"{max_count}+{max_count}", 2 * max_count, ("they", "had", *number(2 * max_count), "umbrellas", "."))
    difference = Question("difference", (*said, "how", "many", "more", "umbrellas", "did", "Tom", "have", "than",
                                         "Mia", "?"), f"{max_count}-{max_count}", max_count,
                          ("Tom", "had", *big, "more", "umbrellas", "."))
    return max(len(demonstration(q, calls=True)[0]) for q in (total, difference))


def sequences(qs: list[Question], vocab, n_ctx: int, calls: bool) -> Sequences:
    """Demonstrations padded with END to n_ctx + 1 tokens; the mask marks the assistant's targets."""
    index = {w: i for i, w in enumerate(vocab)}
    ids = np.full((len(qs), n_ctx + 1), index[END], dtype=np.int64)  # [n_batch, n_ctx + 1]
    mask = np.zeros((len(qs), n_ctx))
    for b, q in enumerate(qs):
        tokens, mine = demonstration(q, calls)
        if len(tokens) > n_ctx + 1:
            raise ValueError(f"a demonstration of {len(tokens)} tokens does not fit a context of {n_ctx}")
        ids[b, :len(tokens)] = [index[t] for t in tokens]
        mask[b, :len(tokens) - 1] = mine[1:]  # target t is token t + 1
    return Sequences(ids[:, :-1], ids[:, 1:], mask)


# ---------------------------------------------------------------------------------------------
# Fine-tuning


@dataclass(frozen=True)
class ToolTraining:
    """One fine-tuning run: which pretrained model, whether its demonstrations call the calculator."""

    base: TrainConfig  # the pretrained model of the family
    calls: bool  # True: totals and differences go through a call; False: every answer at once
    n_questions: int = 4000
    max_count: int = 99
    steps: int = 1500
    learning_rate: float = 0.003
    warmup_steps: int = 20
    batch_size: int = 32
    grad_clip: float = 1.0
    seed: int = 0
    # The base model itself (a TrainedModel): `base` names which it is, so it is not part of the
    # cache key, nor of a shipped model's manifest.
    pretrained: Any = field(default=None, compare=False, repr=False, metadata={"key": False})

    @property
    def eval_every(self) -> int:  # what finetune.optimise reads: no evaluation along the way
        return self.steps


@dataclass(frozen=True)
class ToolModel:
    config: ToolTraining  # without the pretrained model
    vocab: tuple[str, ...]  # [n_vocab] the base's vocabulary and then the new tokens
    n_base_vocab: int  # how many of them are the base's
    params: dict
    train_loss: np.ndarray  # [steps] bits per assistant token of each step's minibatch
    wall_seconds: float

    @property
    def n_head(self) -> int:
        return self.config.base.n_head


def training_questions(cfg: ToolTraining) -> list[Question]:
    return questions(cfg.n_questions, cfg.max_count, [cfg.seed, 30])


def heldout_questions(n: int, max_count: int, seed: int, training: list[Question]) -> list[Question]:
    """n questions from another stream of the seed than training's, none of them a training question."""
    seen = {q.tokens for q in training}
    rng = np.random.default_rng([seed, 31])
    out: list[Question] = []
    while len(out) < n:
        q = question(rng, max_count)
        if q.tokens not in seen:
            out.append(q)
    return out


def fine_tune(cfg: ToolTraining) -> ToolModel:
    """SFT of cfg.pretrained on the demonstrations (calls or not, as cfg says)."""
    if cfg.pretrained is None or cfg.pretrained.config != cfg.base:
        raise ValueError("fine_tune needs the pretrained model cfg.base names in cfg.pretrained")
    start = time.perf_counter()
    params, vocab = extend_vocabulary(cfg.pretrained.params, cfg.pretrained.vocab,
                                      np.random.default_rng([cfg.seed, 32]))
    demos = sequences(training_questions(cfg), vocab, cfg.base.data.n_ctx, cfg.calls)

    def step(p, batches):
        return sft_gradient(p, cfg.base.n_head, demos.take(batches.choice(len(demos.x), cfg.batch_size)))

    schedule = Schedule(cfg.learning_rate, cfg.warmup_steps, cfg.steps)
    params, losses, _ = optimise(params, cfg, schedule, step, lambda p: None, stream=33)
    return ToolModel(dataclasses.replace(cfg, pretrained=None), vocab, len(cfg.pretrained.vocab), params,
                     losses * BITS, time.perf_counter() - start)

