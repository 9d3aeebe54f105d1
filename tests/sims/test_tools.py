"""The tool-call loop: the calculator computes arithmetic and refuses everything else, calls are
validated against their schema, and the context is tokenised exactly as tiktoken does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from generator.sims import tools as tl
from generator.encodings import get_encoding

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results(rag_results):
    return rag_results.tools


@pytest.fixture(scope="module")
def script(rag_inputs):
    return rag_inputs.script



# ---------------------------------------------------------------------------------------------
# The calculator


@pytest.mark.parametrize("expression,expected", [
    ("1 + 2 * 3", 7),
    ("(1850 + 420) / 8192", 0.277099609375),
    ("2 ** 10 * 3", 3072),
    ("-3 ** 2", -9),
    ("7 // 2 + 7 % 2", 4),
    ("+1.5e3 - 0.5", 1499.5),
    ("2 ** -2", 0.25),
    ("((((1))))", 1),
    ("10 ** 300", 10 ** 300),
])
def test_calculator_computes_arithmetic(expression, expected):
    got = tl.calculate(expression)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("expression,message", [
    ("x + 1", "names are not allowed (found 'x')"),
    ("__import__('os').listdir('/')", "function calls are not allowed"),
    ("(1).real", "attribute access is not allowed"),
    ("().__class__", "attribute access is not allowed"),
    ("abs(-1)", "function calls are not allowed"),
    ("[1, 2][0]", "indexing is not allowed"),
    ("lambda: 1", "lambdas are not allowed"),
    ("1 < 2", "comparisons are not allowed"),
    ("1 and 2", "logical operators are not allowed"),
    ("'a' * 3", "only numbers are allowed, not 'a'"),
    ("True + 1", "only numbers are allowed, not True"),
    ("1j * 1j", "only numbers are allowed"),
    ("[1, 2]", "List is not arithmetic"),
    ("9 ** 9 ** 9", "exponent 387420489 is too large (at most 1000)"),
    ("2 ** 1001", "exponent 1001 is too large"),
    ("10 ** 400", "10 ** 400 is too large"),
    ("(10 ** 300) * (10 ** 300)", "the result is too large"),
    ("1e308 * 10", "the result is too large"),
    ("1 / 0", "division by zero"),
    ("0 ** -1", "division by zero"),
    ("5 % 0", "division by zero"),
    ("1 +", "not an arithmetic expression"),
    ("", "not an arithmetic expression"),
    ("1; import os", "not an arithmetic expression"),
    ("1" * 201, "the expression is 201 characters long (at most 200)"),
])
def test_calculator_refuses_anything_but_arithmetic_with_a_clear_error(expression, message):
    with pytest.raises(tl.ToolError) as err:
        tl.calculate(expression)
    assert str(err.value).startswith("calculator: ")
    assert message in str(err.value)


def test_calculator_never_evaluates_code(monkeypatch):
    import builtins

    def refuse(*args, **kwargs):
        raise AssertionError("eval/exec called")

    monkeypatch.setattr(builtins, "eval", refuse)
    monkeypatch.setattr(builtins, "exec", refuse)
    assert tl.calculate("6 * 7") == 42
    with pytest.raises(tl.ToolError):
        tl.calculate("__import__('os').system('true')")


# ---------------------------------------------------------------------------------------------
# Calls and schemas


SCHEMA = {"type": "object", "properties": {"query": {"type": "string", "maxLength": 5},
                                           "k": {"type": "integer", "minimum": 1, "maximum": 3}},
          "required": ["query"], "additionalProperties": False}


@pytest.mark.parametrize("arguments,message", [
    ({}, "arguments: missing required property 'query'"),
    ({"query": "a", "n": 1}, "arguments: unexpected property 'n' (allowed: query, k)"),
    ({"query": 3}, "arguments.query: expected string, got 3"),
    ({"query": "abcdef"}, "arguments.query: longer than 5 characters"),
    ({"query": "a", "k": 2.5}, "arguments.k: expected integer, got 2.5"),
    ({"query": "a", "k": True}, "arguments.k: expected integer, got true"),
    ({"query": "a", "k": 4}, "arguments.k: 4 is outside [1, 3]"),
    ([], "arguments: expected object, got []"),
])
def test_schema_validation_names_the_field(arguments, message):
    with pytest.raises(tl.ToolError, match=None) as err:
        tl.validate(arguments, SCHEMA)
    assert str(err.value) == message


def test_valid_arguments_pass():
    tl.validate({"query": "abc", "k": 3}, SCHEMA)


@pytest.mark.parametrize("raw,message", [
    ('{"name": "calculator", "arguments": {"expression": "1+"', "malformed call: not valid JSON"),
    ('calculator(1 + 1)', "malformed call: not valid JSON"),
    ('{"name": "calculator"}', 'malformed call: expected exactly {"name": ..., "arguments": {...}}'),
    ('["calculator", {}]', "malformed call: expected exactly"),
    ('{"name": "shell", "arguments": {}}', "unknown tool 'shell' (tools: calculator, search)"),
    ('{"name": "calculator", "arguments": {"expr": "1"}}', "arguments: missing required property 'expression'"),
    ('{"name": "calculator", "arguments": {"expression": "x"}}', "calculator: names are not allowed"),
])
def test_the_runtime_replies_with_an_error_instead_of_running(raw, message, script):
    ran = []
    runner = {"calculator": lambda **kw: ran.append(kw) or tl.calculate(**kw), "search": lambda **kw: ran.append(kw)}
    reply = json.loads(tl.run_call(raw, script.tools, runner))
    assert set(reply) == {"error"} and message in reply["error"]
    assert ran == [] or "names are not allowed" in message  # schema failures never reach the tool


def test_the_runtime_runs_a_valid_call(script):
    reply = tl.run_call('{"name": "calculator", "arguments": {"expression": "2 ** 10"}}',
                        script.tools, {"calculator": tl.calculate})
    assert json.loads(reply) == {"result": 1024}


def test_runtime_turns_follow_every_call_and_errors_go_back_into_the_context(script):
    recovery = next(c for c in script.conversations if c.name == "recovery")
    turns = tl.converse(recovery, script.tools, {"calculator": tl.calculate})
    roles = [r for r, _ in turns]
    assert roles == ["user", "model", "runtime", "model", "runtime", "model"]
    assert "error" in json.loads(turns[2][1])
    assert json.loads(turns[4][1]) == {"result": 3072}
    assert turns[5][1].endswith("that is 3072.")  # the scripted answer quotes the runtime's result


def test_search_returns_the_best_ranked_chunks_of_the_index(rag_inputs):
    docs = rag_inputs.documents
    grid = rag_inputs.grid
    from generator.sims import retrieval as rt

    index = rt.build_index(docs, rt.tokenize(docs, get_encoding("cl100k_base")), grid.view_chunk_size, grid.view_overlap, grid.svd_rank)
    found = tl.search(index, grid, "hybrid", "min-p which tokens survive", 2)
    scores = rt.score(index, ["min-p which tokens survive"], grid, np.random.default_rng(0))
    best = rt.ranking(scores[rt.METHODS.index("hybrid")])[0][:2]
    assert found == [(int(index.chunks.doc[c]), index.chunks.text[c]) for c in best]


# ---------------------------------------------------------------------------------------------
# The context, token by token


def test_trace_tokens_are_tiktokens_of_each_turn(results):
    enc = get_encoding("cl100k_base")
    for tr in results.traces:
        start = 0
        for i, (role, text) in enumerate(zip(tr.turn_roles, tr.turn_texts)):
            ids = enc.encode_ordinary(tl.turn_text(role, text))
            assert tr.turn_tokens[i] == len(ids)
            assert list(tr.token_ids[start:start + len(ids)]) == ids
            assert (tr.token_turn[start:start + len(ids)] == i).all()
            start += len(ids)
        assert start == len(tr.token_ids) == len(tr.token_text)
        assert enc.decode(list(tr.token_ids)) == "".join(tl.turn_text(r, t) for r, t in zip(tr.turn_roles, tr.turn_texts))


def test_every_conversation_opens_with_the_same_system_turn_holding_the_schemas(results, script):
    enc = get_encoding("cl100k_base")
    system = tl.system_prompt(script)
    for tr in results.traces:
        assert tr.turn_roles[0] == "system" and tr.turn_texts[0] == system
        assert tr.turn_tokens[0] == results.system_tokens
    for tool, line, n in zip(script.tools, tl.schema_lines(script.tools), results.schema_tokens):
        assert line in system and json.loads(line)["name"] == tool.name
        assert n == len(enc.encode_ordinary(line))
    assert results.schema_tokens.sum() < results.system_tokens


def test_the_scripted_conversations_exercise_the_failure_path(results):
    replies = [json.loads(t) for tr in results.traces for r, t in zip(tr.turn_roles, tr.turn_texts)
               if r == "runtime"]
    errors = [r["error"] for r in replies if "error" in r]
    assert any("missing required property" in e for e in errors)
    assert any("function calls are not allowed" in e for e in errors)
    assert any("too large" in e for e in errors)
    assert any("result" in r for r in replies)
