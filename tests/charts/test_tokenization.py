"""The tokenization charts carry exactly the simulation's numbers, and their sliders span them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from generator.charts import tokenization as charts
from generator.grids import TokenizationGrid
from generator.sims import tokenization as sims
from tests.charts.specs import inline_data, params

RES = sims.simulate(dataclasses.replace(TokenizationGrid(), max_timed_length=256))
FIGS = charts.figures(RES)
SPECS = {name: fig.to_dict() for name, fig in FIGS.items()}  # to_dict validates against the schema


def test_every_chart_has_a_title_for_its_caption():
    for name, spec in SPECS.items():
        assert isinstance(spec.get("title"), str) and spec["title"], name


def test_counts_carry_every_text_and_encoding():
    rows = inline_data(SPECS["counts"])[0]
    assert len(rows) == len(RES.texts) * len(RES.encoded)
    for r in rows:
        e = next(e for e in RES.encoded if e.encoding == r["encoding"])
        t = RES.labels.index(r["text"])
        assert r["tokens"] == len(e.ids[t])
        assert r["characters"] == len(RES.texts[t])
        assert r["UTF-8 bytes"] == len(RES.texts[t].encode())
        assert r["characters per token"] == pytest.approx(len(RES.texts[t]) / len(e.ids[t]), rel=1e-3)


def test_language_cost_is_tokens_over_the_reference():
    rows = inline_data(SPECS["language_cost"])[0]
    ref = RES.labels.index(RES.reference_language)
    languages = [l for l, k in zip(RES.labels, RES.kinds) if k == "language"]
    assert {r["language"] for r in rows} == set(languages)
    for r in rows:
        e = next(e for e in RES.encoded if e.encoding == r["encoding"])
        assert r["tokens"] == len(e.ids[RES.labels.index(r["language"])])
        assert r["times as many tokens"] == pytest.approx(r["tokens"] / len(e.ids[ref]), rel=1e-3)


def test_vocab_size_pairs_each_encodings_vocabulary_with_its_counts():
    rows = inline_data(SPECS["vocab_size"])[0]
    for r in rows:
        e = next(e for e in RES.encoded if e.encoding == r["encoding"])
        assert r["vocabulary size"] == e.n_vocab
        assert r["tokens"] == len(e.ids[RES.labels.index(r["language"])])


def test_special_tokens_counts():
    eot, chat = inline_data(SPECS["special_tokens"])[:2]
    for r in eot:
        e = next(e for e in RES.encoded if e.encoding == r["encoding"])
        assert r["tokens"] == (len(e.endoftext_as_text) if r["written as"] == "plain text" else 1)
    assert sum(r["tokens"] for r in chat) == RES.chat.ids.size
    content = [r["tokens"] for r in chat if r["kind"] == "content"]
    assert content == RES.chat.content_tokens.tolist()


def test_bpe_steps_carry_the_paragraph_joins_and_merges():
    spec = SPECS["bpe_steps"]
    lines = inline_data(spec)[0]
    assert "".join(l["paragraph"] for l in lines) == RES.bpe.text
    assert sum((l["_joined"] for l in lines), []) == RES.bpe.joined_at.tolist()
    assert [l["_start"] for l in lines] == np.cumsum([0] + [len(l["paragraph"]) for l in lines])[:-1].tolist()
    merges = spec["datasets"]["merges"]
    assert [m["tokens in text"] for m in merges] == RES.bpe.tokens.tolist()
    assert [m["count"] for m in merges[1:]] == RES.bpe.pair_counts.tolist()
    assert merges[1]["merged"] == "\u2423 + t \u2192 \u2423t"  # the first merge of the default text
    step = params(spec)["step"]
    assert step["bind"]["min"] == 0 and step["bind"]["max"] == len(RES.bpe.merges)


def test_bpe_vocab_carries_both_curves_and_the_real_encodings():
    curves, real = inline_data(SPECS["bpe_vocab"])[:2]
    assert [c["vocabulary size"] for c in curves] == list(range(256, 256 + len(RES.bpe.tokens)))
    values = [list(c.values()) for c in curves]
    assert [v[1] for v in values] == RES.bpe.tokens.tolist()
    assert [v[2] for v in values] == RES.bpe.heldout_tokens.tolist()
    for r in real:
        e = next(e for e in RES.encoded if e.encoding == r["tokenizer"])
        ids = e.bpe_text_ids if r["text"].startswith("paragraph") else e.ids[RES.labels.index(RES.reference_language)]
        assert (r["vocabulary size"], r["tokens"]) == (e.n_vocab, len(ids))


def test_attention_rows_carry_counts_and_measured_times():
    a = RES.attention
    rows = next(d for d in inline_data(SPECS["attention"]) if d and "n" in d[0] and "score entries (n\u00b2)" in d[0])
    assert [r["n"] for r in rows] == a.seq_lengths.tolist()
    assert [r["score entries (n\u00b2)"] for r in rows] == a.entries.tolist()
    assert [r["FLOPs for QK\u1d40 per head per layer"] for r in rows] == a.score_flops.tolist()
    timed = {r["n"]: r["measured ms (one head, numpy)"] for r in rows if r["measured ms (one head, numpy)"]}
    assert sorted(timed) == a.timed_lengths.tolist()
    for n, s in zip(a.timed_lengths.tolist(), a.seconds.tolist()):
        assert timed[n] == pytest.approx(1000 * s, rel=1e-5)
    slider = params(SPECS["attention"])["log2n"]
    assert 2 ** slider["bind"]["min"] == a.seq_lengths[0] and 2 ** slider["bind"]["max"] == a.seq_lengths[-1]


def test_facts_quote_the_results():
    facts = charts.facts(RES)
    ref = RES.labels.index(RES.reference_language)
    for e in RES.encoded:
        lang = facts["costliest"][e.encoding]
        assert facts["costliest_ratio"][e.encoding] == len(e.ids[RES.labels.index(lang)]) / len(e.ids[ref])
    assert facts["chat_tokens"] == RES.chat.ids.size
    assert facts["bpe_tokens_end"] == RES.bpe.tokens[-1]
