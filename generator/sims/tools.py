"""The tool-call loop: a model emits a JSON call, a runtime validates and runs it, the result
(or the error) goes back into the context, and the model answers.

Simulated exactly: validation of a call against its tool's JSON schema (the subset the tools
use: object, string, integer, number, required, additionalProperties, length and range
bounds); a calculator that parses arithmetic with ``ast`` and walks a whitelist of node types
(never ``eval``: names, attributes, calls, subscripts and anything else are rejected, and so
are huge exponents and over-long input); a search tool over this site's knowledge base; the
context as one token sequence (real ``cl100k_base`` tokens) with the author of every token.

Two kinds of model turn. In the scripted conversations the model's turns are written by hand
(in content/), with the runtime's result copied in where it says ``{result}``; real chat models
mark turns with reserved special tokens, here the markers are plain text, counted like any
other. And a tiny GPT that really calls the calculator (generator.sims.tool_use): decoded
greedily, token by token, the runtime running every call it emits and appending the reply, and
measured on held-out questions. Not simulated: sampling (the tiny model decodes greedily).
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
from dataclasses import dataclass

import numpy as np

import generator.sims.retrieval as retrieval
import generator.sims.tool_use as tool_use
from generator.sims.gpt import gpt

MAX_EXPRESSION = 200  # characters the calculator accepts
MAX_EXPONENT = 1000
MAX_MAGNITUDE = 1e300  # |number| beyond this is refused, not computed


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    parameters: str  # JSON schema of the arguments, as JSON text


@dataclass(frozen=True)
class Turn:
    role: str  # "user" or "model"
    text: str | None = None  # what the turn says
    call: str | None = None  # a model turn's raw tool call, exactly as emitted


@dataclass(frozen=True)
class Conversation:
    name: str
    title: str
    turns: tuple[Turn, ...]


@dataclass(frozen=True)
class Script:
    system: str
    tools: tuple[Tool, ...]
    conversations: tuple[Conversation, ...]


class ToolError(ValueError):
    """A call the runtime refuses; the message goes back into the context."""


# ---------------------------------------------------------------------------------------------
# The calculator: arithmetic over a whitelist of syntax


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_REFUSED = {ast.Name: "names are not allowed", ast.Attribute: "attribute access is not allowed",
            ast.Call: "function calls are not allowed", ast.Subscript: "indexing is not allowed",
            ast.Lambda: "lambdas are not allowed", ast.Compare: "comparisons are not allowed",
            ast.BoolOp: "logical operators are not allowed"}


def calculate(expression):  # str -> int | float
    """Evaluate +, -, *, /, //, %, ** and parentheses over numbers; anything else is an error.

    Example: calculate("(1850 + 420) / 8192") -> 0.277099609375
    """
    if not isinstance(expression, str):
        raise ToolError("calculator: the expression must be text")
    if len(expression) > MAX_EXPRESSION:
        raise ToolError(f"calculator: the expression is {len(expression)} characters long "
                        f"(at most {MAX_EXPRESSION})")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise ToolError(f"calculator: not an arithmetic expression ({exc.msg})") from None
    return _evaluate(tree.body)


def _evaluate(node):  # ast node -> number
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise ToolError(f"calculator: only numbers are allowed, not {node.value!r}")
        return _bounded(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow):
            _check_power(left, right)
        try:
            return _bounded(_BINARY[type(node.op)](left, right))
        except ZeroDivisionError:
            raise ToolError("calculator: division by zero") from None
        except OverflowError:
            raise ToolError("calculator: the result is too large") from None
    for kind, reason in _REFUSED.items():
        if isinstance(node, kind):
            found = f" (found {node.id!r})" if isinstance(node, ast.Name) else ""
            raise ToolError(f"calculator: {reason}{found}; only numbers and + - * / // % ** ( )")
    raise ToolError(f"calculator: {type(node).__name__} is not arithmetic; "
                    "only numbers and + - * / // % ** ( )")


def _check_power(base, exponent):  # number, number -> None
    if abs(exponent) > MAX_EXPONENT:
        raise ToolError(f"calculator: exponent {exponent} is too large (at most {MAX_EXPONENT})")
    if base != 0 and exponent * math.log10(abs(base)) > math.log10(MAX_MAGNITUDE):
        raise ToolError(f"calculator: {base} ** {exponent} is too large (at most 1e300)")
    if base == 0 and exponent < 0:
        raise ToolError("calculator: division by zero")


def _bounded(x):  # number -> number
    if isinstance(x, complex):
        raise ToolError("calculator: the result is not a real number")
    if not math.isfinite(x) or abs(x) > MAX_MAGNITUDE:
        raise ToolError("calculator: the result is too large (at most 1e300)")
    return x


# ---------------------------------------------------------------------------------------------
# Calls: parse, validate against the schema, run


def parse_call(raw):  # str -> (name, arguments)
    """A call is one JSON object {"name": ..., "arguments": {...}} and nothing else."""
    try:
        call = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ToolError(f"malformed call: not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(call, dict) or set(call) != {"name", "arguments"}:
        raise ToolError('malformed call: expected exactly {"name": ..., "arguments": {...}}')
    return call["name"], call["arguments"]


def validate(value, schema, path="arguments"):  # JSON value, JSON schema -> None
    """Check a value against the schema subset the tools use; raise ToolError naming the field."""
    kind = schema.get("type")
    checks = {"object": lambda v: isinstance(v, dict), "string": lambda v: isinstance(v, str),
              "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}
    if kind is not None and not checks[kind](value):
        raise ToolError(f"{path}: expected {kind}, got {json.dumps(value)}")
    if kind == "object":
        properties = schema.get("properties", {})
        missing = [k for k in schema.get("required", []) if k not in value]
        extra = [k for k in value if k not in properties]
        if missing:
            raise ToolError(f"{path}: missing required property {missing[0]!r}")
        if extra and schema.get("additionalProperties") is False:
            raise ToolError(f"{path}: unexpected property {extra[0]!r} "
                            f"(allowed: {', '.join(properties)})")
        for key, sub in properties.items():
            if key in value:
                validate(value[key], sub, f"{path}.{key}")
    if kind == "string" and len(value) > schema.get("maxLength", math.inf):
        raise ToolError(f"{path}: longer than {schema['maxLength']} characters")
    if kind in ("integer", "number"):
        if value < schema.get("minimum", -math.inf) or value > schema.get("maximum", math.inf):
            raise ToolError(f"{path}: {value} is outside [{schema.get('minimum')}, {schema.get('maximum')}]")


def search(index, grid, method, query, k):  # Index, RagGrid, str, str, int -> [k] (document, chunk text)
    """The top k chunks of the knowledge base for the query, by one of retrieval.METHODS."""
    scores = retrieval.score(index, [query], grid, np.random.default_rng(grid.seed))
    order = retrieval.ranking(scores[retrieval.METHODS.index(method)])[0][:k]  # [k]
    return [(int(index.chunks.doc[c]), index.chunks.text[c]) for c in order]


def run_call(raw, tools, runner):  # str, [n_tool] Tool, {name: fn} -> str
    """The runtime's reply to a raw call: {"result": ...} or {"error": "..."}, as JSON text."""
    try:
        name, arguments = parse_call(raw)
        schemas = {t.name: json.loads(t.parameters) for t in tools}
        if name not in schemas:
            raise ToolError(f"unknown tool {name!r} (tools: {', '.join(schemas)})")
        validate(arguments, schemas[name])
        return json.dumps({"result": runner[name](**arguments)}, ensure_ascii=False)
    except ToolError as exc:
        return json.dumps({"error": str(exc)}, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# The context, token by token


def system_prompt(script):  # Script -> str
    """The system turn: the instructions, then every tool's schema as one JSON line."""
    return script.system + "\n" + "\n".join(schema_lines(script.tools))


def schema_lines(tools):  # [n_tool] Tool -> [n_tool] str
    return [json.dumps({"name": t.name, "description": t.description,
                        "parameters": json.loads(t.parameters)}, ensure_ascii=False) for t in tools]


def turn_text(role, text):  # str, str -> str
    """One turn in the context: a plain-text role marker, the text, a newline."""
    return f"<|{role}|>\n{text}\n"


def converse(conversation, tools, runner):  # -> [n_turn] (role, text)
    """The conversation's turns with the runtime's replies inserted after every call."""
    turns, last_result = [], None
    for turn in conversation.turns:
        if turn.call is not None:
            turns.append(("model", turn.call))
            reply = run_call(turn.call, tools, runner)
            last_result = json.loads(reply).get("result")
            turns.append(("runtime", reply))
        else:
            text = turn.text.replace("{result}", _plain(last_result)) if turn.role == "model" else turn.text
            turns.append((turn.role, text))
    return turns


def _plain(result):  # JSON value -> str
    return json.dumps(result, ensure_ascii=False) if not isinstance(result, str) else result


@dataclass(frozen=True)
class Trace:
    """One conversation as the model reads it: every token, who wrote it, in which turn."""

    name: str
    title: str
    turn_roles: tuple[str, ...]  # [n_turn]
    turn_texts: tuple[str, ...]  # [n_turn]
    turn_tokens: np.ndarray  # [n_turn] tokens in each turn, marker included
    token_ids: np.ndarray  # [n_seq]
    token_text: tuple[str, ...]  # [n_seq] each token's text (partial characters shown as \ufffd)
    token_turn: np.ndarray  # [n_seq] index into the turns


@dataclass(frozen=True)
class ToolResults:
    tools: tuple[str, ...]
    system_tokens: int  # the whole system turn
    schema_tokens: np.ndarray  # [n_tool] each tool's schema line
    traces: tuple[Trace, ...]
    search_method: str


def trace(name, title, turns, enc):  # str, str, [n_turn] (role, text), Encoding -> Trace
    """Tokenise each turn separately (turn markers never merge with their neighbours)."""
    ids, owner, counts = [], [], []
    for i, (role, text) in enumerate(turns):
        turn_ids = enc.encode_ordinary(turn_text(role, text))
        ids += turn_ids
        owner += [i] * len(turn_ids)
        counts.append(len(turn_ids))
    return Trace(
        name=name, title=title, turn_roles=tuple(r for r, _ in turns),
        turn_texts=tuple(t for _, t in turns), turn_tokens=np.array(counts),
        token_ids=np.array(ids), token_text=tuple(
            enc.decode_single_token_bytes(t).decode("utf-8", errors="replace") for t in ids),
        token_turn=np.array(owner),
    )


def simulate(script, grid, documents, index, method, enc) -> ToolResults:
    """Run every scripted conversation through the runtime and tokenise the contexts in enc.

    The search tool ranks the chunks of `index` by `method` (one of retrieval.METHODS).
    """

    def run_search(query, k=2):
        found = search(index, grid, method, query, k)
        return [{"source": documents[d].name, "text": text} for d, text in found]

    runner = {"calculator": calculate, "search": run_search}
    unknown = [t.name for t in script.tools if t.name not in runner]
    if unknown:
        raise ValueError(f"no runtime for the tool {unknown[0]!r} (have: {', '.join(runner)})")
    system = ("system", system_prompt(script))
    return ToolResults(
        tools=tuple(t.name for t in script.tools),
        system_tokens=len(enc.encode_ordinary(turn_text(*system))),
        schema_tokens=np.array([len(enc.encode_ordinary(line)) for line in schema_lines(script.tools)]),
        traces=tuple(trace(c.name, c.title, [system] + converse(c, script.tools, runner), enc)
                     for c in script.conversations),
        search_method=method,
    )


# ---------------------------------------------------------------------------------------------
# A model that really calls: the tiny GPT of tool_use, decoded greedily with the runtime


@dataclass(frozen=True)
class Generated:
    """One conversation the tiny model wrote, the runtime's replies in it, token by token."""

    question: tool_use.Question
    tokens: tuple[str, ...]  # [n_seq] the user's turn (END left out), then everything after
    authors: tuple[str, ...]  # [n_seq] "user", "model" or "runtime"
    calls: tuple[str, ...]  # [n_call] the text of each call the model emitted
    replies: tuple[str, ...]  # [n_call] the runtime's reply to each, as JSON text
    answer: int | None  # the number in the model's last turn; None if it has none
    finished: bool  # False: the context filled before the model closed an answer

    @property
    def correct(self) -> bool:
        return self.finished and self.answer == self.question.answer

    @property
    def ran(self) -> int:
        """Calls the runtime ran (the others it refused)."""
        return sum("result" in json.loads(r) for r in self.replies)


def decode(model: tool_use.ToolModel, q: tool_use.Question, tools, runner) -> Generated:
    """Greedy decoding of q's answer; a model turn that opens with the call token and closes is
    a call, which the runtime runs (run_call) before the model goes on."""
    vocab, n_ctx = model.vocab, model.params["wpe"].shape[0]
    index = {w: i for i, w in enumerate(vocab)}
    tokens = list(tool_use.prompt(q))
    authors = ["user"] * len(tokens)
    calls, replies, turn_start = [], [], len(tokens)
    finished = False
    while len(tokens) < n_ctx:
        ids = np.array([[index[t] for t in tokens]])  # [1, n_seq]
        token = vocab[int(gpt(ids, model.params, model.n_head).logits[0, -1].argmax())]
        tokens.append(token)
        authors.append("model")
        if token != tool_use.CLOSE:
            continue
        turn = tokens[turn_start:]
        if turn[0] != tool_use.CALL:
            finished = True
            break
        calls.append(tool_use.call_text(turn[1:-1]))
        replies.append(run_call(calls[-1], tools, runner))
        reply = tool_use.reply_tokens(json.loads(replies[-1]))
        tokens += reply
        authors += ["runtime"] * len(reply)  # its last token hands the turn back to the model
        turn_start = len(tokens)
    digits = "".join(t for t in tokens[turn_start:] if t in tool_use.DIGITS or t == "-")
    answer = int(digits) if re.fullmatch(r"-?[0-9]+", digits) else None
    return Generated(q, tuple(tokens[1:]), tuple(authors[1:]), tuple(calls), tuple(replies), answer, finished)


@dataclass(frozen=True)
class ToolUseResults:
    """The model that calls and the one that answers at once, measured on held-out questions."""

    n_layer: int
    n_head: int
    n_new_tokens: int  # tokens added to the pretrained vocabulary
    n_questions: int  # training questions
    steps: int
    train_loss: np.ndarray  # [2, steps] bits per assistant token: the model that calls, the one that does not
    kinds: tuple[str, ...]  # [n_kind]
    n_heldout: np.ndarray  # [n_kind] held-out questions of each kind
    accuracy: np.ndarray  # [2, n_kind] share of right final answers: with the tool, without it
    called: np.ndarray  # [n_kind] share of questions on which the calling model called
    n_calls: int
    valid_calls: float  # share of its calls the runtime ran
    right_calls: float  # share of its calls whose value is the question's answer
    generated: tuple[Generated, ...]  # the calling model's conversations on the held-out questions


def evaluate_tool_use(with_tool: tool_use.ToolModel, without: tool_use.ToolModel,
                      questions: list[tool_use.Question], tools, runner) -> ToolUseResults:
    """Decode every held-out question with both models and count what went right."""
    kinds = tool_use.KINDS
    of_kind = np.array([[q.kind == k for q in questions] for k in kinds])  # [n_kind, n_question]
    runs = [[decode(m, q, tools, runner) for q in questions] for m in (with_tool, without)]
    right = np.array([[g.correct for g in gs] for gs in runs])  # [2, n_question]
    called = np.array([len(g.calls) > 0 for g in runs[0]])
    calls = [(g, r) for g in runs[0] for r in g.replies]
    cfg = with_tool.config
    return ToolUseResults(
        n_layer=cfg.base.n_layer, n_head=cfg.base.n_head,
        n_new_tokens=len(with_tool.vocab) - with_tool.n_base_vocab,
        n_questions=cfg.n_questions, steps=cfg.steps,
        train_loss=np.stack([with_tool.train_loss, without.train_loss]),
        kinds=kinds, n_heldout=of_kind.sum(axis=1),
        accuracy=(right[:, None, :] & of_kind[None]).sum(axis=-1) / of_kind.sum(axis=1),
        called=(called & of_kind).sum(axis=1) / of_kind.sum(axis=1),
        n_calls=len(calls),
        valid_calls=float(np.mean(["result" in json.loads(r) for _, r in calls])) if calls else 0.0,
        right_calls=float(np.mean([json.loads(r).get("result") == g.question.answer for g, r in calls]))
        if calls else 0.0,
        generated=tuple(runs[0]),
    )
