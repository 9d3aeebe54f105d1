"""The tiny tool model's world: questions answered right by construction, demonstrations whose
calls the real runtime runs to the answer, the loss on the assistant's tokens alone, a vocabulary
extended without touching the base's rows, and greedy decoding that runs every call it emits."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from generator.sims import tool_use as tu
from generator.sims import tools as tl
from generator.sims.family import member_config
from generator.sims.gpt import gpt, init_params
from generator.sims.stories import END, World, vocabulary
from generator.sims.train import train_model
from tests.helpers import TINY_FAMILY

CALCULATOR = [tl.Tool("calculator", "arithmetic", json.dumps({
    "type": "object", "properties": {"expression": {"type": "string", "maxLength": 200}},
    "required": ["expression"], "additionalProperties": False}))]
RUNNER = {"calculator": tl.calculate}
FAMILY = dataclasses.replace(TINY_FAMILY, n_ctx=64)  # a demonstration fits


def digits_of(tokens) -> int:
    return int("".join(t for t in tokens if t in tu.DIGITS or t == "-"))


@pytest.fixture(scope="module")
def qs():
    return tu.questions(3000, 99, 7)


def test_every_question_is_answered_right_by_construction(qs):
    world = World()
    names = {*world.boys, *world.girls}
    for q in qs:
        a, m, b, n = q.tokens[0], q.counts[0], q.tokens[q.tokens.index("and") + 1], q.counts[1]
        assert a != b and {a, b} <= names and m != n and 1 <= min(m, n) and max(m, n) <= 99
        assert digits_of(q.tokens[2:q.tokens.index("and")]) == m  # the counts are the ones said
        if q.kind == "total":
            assert q.answer == m + n and q.expression == f"{m}+{n}" and q.answer_tokens[0] == "they"
        elif q.kind == "difference":
            more = q.tokens[q.tokens.index("did") + 1]
            assert more == (a if m > n else b)  # asked of the child with more
            assert q.answer == abs(m - n) and q.expression == f"{max(m, n)}-{min(m, n)}"
        else:
            who = q.tokens[q.tokens.index("did") + 1]
            assert q.expression is None and q.answer == (m if who == a else n)
        assert digits_of(q.answer_tokens) == q.answer
    assert {q.kind for q in qs} == set(tu.KINDS)


def test_a_demonstrated_call_is_json_the_real_runtime_runs_to_the_answer(qs):
    for q in qs[:300]:
        tokens, mine = tu.demonstration(q, calls=True)
        if q.expression is None:
            assert tu.CALL not in tokens
            continue
        start, end = tokens.index(tu.CALL), tokens.index(tu.CLOSE, tokens.index(tu.CALL))
        raw = tu.call_text(tokens[start + 1:end])
        assert json.loads(raw) == {"name": "calculator", "arguments": {"expression": q.expression}}
        reply = json.loads(tl.run_call(raw, CALCULATOR, RUNNER))
        assert reply == {"result": q.answer}
        assert tokens[end + 1:end + 1 + len(tu.reply_tokens(reply))] == tu.reply_tokens(reply)


def test_the_loss_counts_the_assistants_tokens_only():
    q = tu.Question("total", ("Tom", "had", "1", "2", "balls", "and", "Mia", "had", "3", "balls", ".", "how",
                              "many", "balls", "did", "they", "have", "?"), "12+3", 15,
                    ("they", "had", "1", "5", "balls", "."), (12, 3))
    tokens, mine = tu.demonstration(q, calls=True)
    written = [t for t, m in zip(tokens, mine) if m]
    assert written == [*tu.call_tokens("12+3"), "they", "had", "1", "5", "balls", ".", tu.CLOSE]
    assert tokens[:len(tu.prompt(q))] == tu.prompt(q) and not any(mine[:len(tu.prompt(q))])
    reply = tu.reply_tokens({"result": 15})
    assert reply == ("<|tool|>", "{", '"result"', ":", "1", "5", "}", tu.CLOSE, "<|assistant|>")
    at = len(tu.prompt(q)) + len(tu.call_tokens("12+3"))
    assert tokens[at:at + len(reply)] == reply and not any(mine[at:at + len(reply)])  # the runtime's
    direct, mine_direct = tu.demonstration(q, calls=False)
    assert tu.CALL not in direct and sum(mine_direct) == len(q.answer_tokens) + 1
    vocab = (*vocabulary(World()), *tu.new_tokens(vocabulary(World())))
    s = tu.sequences([q], vocab, 64, calls=True)
    assert s.mask.sum() == sum(mine) and (s.y[0][s.mask[0] > 0] == [vocab.index(t) for t in written]).all()


def test_replies_the_model_cannot_spell_read_as_an_error():
    assert tu.reply_tokens({"result": -7})[3:6] == (":", "-", "7")
    assert tu.reply_tokens({"result": 0.5})[1:4] == ("{", '"error"', "}")
    assert tu.reply_tokens({"error": "malformed call"})[1:4] == ("{", '"error"', "}")


@pytest.mark.parametrize("max_count", [9, 99, 999])
def test_the_longest_demonstration_bounds_every_one(max_count):
    longest = tu.longest_demonstration(max_count)
    lengths = [len(tu.demonstration(q, calls)[0]) for q in tu.questions(2000, max_count, 1) for calls in (True, False)]
    assert max(lengths) <= longest <= max(lengths) + 2


def test_held_out_questions_are_never_training_questions():
    training = tu.questions(3000, 9, 3)  # small counts: many repeats to avoid
    heldout = tu.heldout_questions(500, 9, 0, training)
    assert len(heldout) == 500 and not {q.tokens for q in heldout} & {q.tokens for q in training}


def test_extending_the_vocabulary_keeps_the_base_rows_and_logits():
    base_vocab = vocabulary(World())
    params = init_params(len(base_vocab), 64, 16, 1, np.random.default_rng(0))
    extended, vocab = tu.extend_vocabulary(params, base_vocab, np.random.default_rng(1))
    added = tu.new_tokens(base_vocab)
    assert vocab == (*base_vocab, *added) and len(set(vocab)) == len(vocab) and added
    assert not set(added) & set(base_vocab) and {"0", "9", "+", tu.CALL, tu.CLOSE, "balls"} <= set(added)
    assert (extended["wte"][:len(base_vocab)] == params["wte"]).all()
    ids = np.array([[0, 5, 9]])
    before, after = gpt(ids, params, 2).logits, gpt(ids, extended, 2).logits
    np.testing.assert_array_equal(after[..., :len(base_vocab)], before)  # new rows only add logits


@pytest.fixture(scope="module")
def tiny_tool_model(shared_memo):
    base_cfg = member_config(FAMILY, 2, 2)
    base = shared_memo(train_model, base_cfg)
    cfg = tu.ToolTraining(base=base_cfg, calls=True, n_questions=200, steps=40, learning_rate=0.01,
                          warmup_steps=4, batch_size=8, pretrained=base)
    return tu.fine_tune(cfg)


def test_fine_tuning_learns_the_format(tiny_tool_model):
    loss = tiny_tool_model.train_loss
    assert loss[-10:].mean() < 0.6 * loss[:5].mean()  # 40 steps on a tiny base: well down, not done
    assert tiny_tool_model.config.pretrained is None  # the base is not kept with the model
    with pytest.raises(ValueError, match="pretrained"):
        tu.fine_tune(dataclasses.replace(tiny_tool_model.config))


def test_decoding_runs_every_call_and_hands_the_reply_back(tiny_tool_model):
    for q in tu.questions(12, 99, 5):
        g = tl.decode(tiny_tool_model, q, CALCULATOR, RUNNER)
        prompt = tu.prompt(q)[1:]
        assert g.tokens[:len(prompt)] == prompt and set(g.authors[:len(prompt)]) == {"user"}
        assert len(g.tokens) <= FAMILY.n_ctx - 1 and END not in g.authors
        # every run of runtime tokens is the reply to the call just before it, as the runtime ran it
        runs, i = [], len(prompt)
        while i < len(g.tokens):
            j = i
            while j < len(g.tokens) and g.authors[j] == g.authors[i]:
                j += 1
            runs.append((g.authors[i], g.tokens[i:j]))
            i = j
        replies = [tokens for author, tokens in runs if author == "runtime"]
        assert len(replies) == len(g.calls) == len(g.replies)
        for call, reply, tokens in zip(g.calls, g.replies, replies):
            assert reply == tl.run_call(call, CALCULATOR, RUNNER)
            assert tokens == tu.reply_tokens(json.loads(reply))
        if g.finished:
            assert g.tokens[-1] == tu.CLOSE and g.authors[-1] == "model"
        assert g.correct == (g.finished and g.answer == q.answer)
