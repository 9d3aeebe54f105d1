"""Token views: every token of every text reaches the page, escaped, with its id."""

from __future__ import annotations

import dataclasses
import html
import re

import pytest

from generator.grids import TokenizationGrid
from generator.pages import tokens
from generator.sims import tokenization as sims
from tests.helpers import tokenization_inputs



@pytest.fixture(scope="module")
def res():
    return sims.simulate(tokenization_inputs(dataclasses.replace(TokenizationGrid(), seq_lengths=(8, 16), max_timed_length=16)))


@pytest.fixture(scope="module")
def views(res):
    return tokens.widgets(res)


SPAN = re.compile(r"<span(?: class=\"(partial-utf8|special)\")? data-i=(\d+)(?: tabindex=0)?>(.*?)</span>")


def panels(view: str) -> dict[str, str]:
    """label -> the panel's HTML."""
    return {html.unescape(m.group(1)): m.group(2) for m in
            re.finditer(r"<details(?: open)?><summary>(.*?) <span class=\"tokens-counts\">.*?</summary>(.*?)</details>", view)}


def rows(panel: str) -> dict[str, list[int]]:
    """encoding -> token ids shown in its row."""
    return {m.group(1): [int(i) for _, i, _ in SPAN.findall(m.group(2))] for m in
            re.finditer(r'<span class="tokens-seq" data-encoding="([^"]+)">(.*?)</span></div>', panel)}


def test_every_token_of_every_text_is_shown_once_per_distinct_row(views, res):
    for kind, view in (("example", views["examples"]), ("language", views["languages"])):
        shown = panels(str(view))
        labels = [l for l, k in zip(res.labels, res.kinds) if k == kind]
        assert list(shown) == labels
        for label in labels:
            t = res.labels.index(label)
            shown_rows = rows(shown[label])
            for e in res.encoded:
                if e.encoding in shown_rows:
                    assert shown_rows[e.encoding] == e.ids[t].tolist()
                else:  # identical to an earlier encoding's row, and said so
                    assert f"{e.encoding}: the same {len(e.ids[t])} tokens as" in shown[label]
                    assert any(ids == e.ids[t].tolist() for ids in shown_rows.values())


def test_markup_in_an_example_arrives_escaped(views):
    view = str(views["examples"])
    assert "<script>" not in view and "<b>bold" not in view
    assert "&lt;" in view and "&gt;" in view
    markup = panels(view)["Markup shown as text"]
    # joined back, the tokens' text is exactly the example, characters escaped once
    text = "".join(html.unescape(re.sub(r"<i>\u2423</i>", " ", body)) for _, _, body in SPAN.findall(
        markup.split('data-encoding="cl100k_base">')[1].split("</span></div>")[0] + "</span></div>"))
    assert text == "<script>alert(1)</script> &amp; <b>bold</b>"
    assert re.search(r">&amp;</span><span data-i=\d+>amp</span>", markup)  # "&" "amp" ";"


def test_whitespace_is_visible_and_newlines_break_the_line():
    assert tokens.token_span(220, b" ") == "<span data-i=220><i>\u2423</i></span>"
    assert tokens.token_span(198, b"\n") == "<span data-i=198><i>\u21b5</i></span><br>"
    assert tokens.token_span(5, b"\t\t", first=True) == "<span data-i=5 tabindex=0><i>\u2192</i><i>\u2192</i></span>"
    assert tokens.visible("a\u200db") == "a<i>U+200D</i>b"


def test_a_partial_character_shows_its_bytes_in_hex():
    assert tokens.token_span(9, "🦜".encode()[:2]) == '<span class="partial-utf8" data-i=9>f0 9f</span>'


def test_chat_view_marks_the_special_tokens(views, res):
    view = str(views["chat"])
    special = [(cls, int(i), body) for cls, i, body in SPAN.findall(view) if cls == "special"]
    assert [i for _, i, _ in special] == [i for i in res.chat.ids.tolist() if i in res.chat.special_ids]
    assert {html.unescape(b) for _, _, b in special} == {"<|im_start|>", "<|im_end|>"}


def test_only_long_views_are_skipped_while_out_of_view(views):
    # `.tokens-long` (content-visibility: auto) on the views of LONG_VIEW spans or more, no other.
    for name, view in views.items():
        spans = view.count("<span")
        assert ("tokens tokens-long" in view) == (spans >= tokens.LONG_VIEW), (name, spans)
    long = {name for name, view in views.items() if "tokens-long" in view}
    assert long == {"examples", "languages"}  # the chapter's two views of whole texts; not the chat

