"""The tokenization charts carry exactly the simulation's numbers, and their sliders span them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from generator.grids import TokenizationGrid
from generator.sims import bpe
from generator.sims import tokenization as sims
from tests.helpers import tokenization_inputs
from tests.charts.specs import inline_data, params



@pytest.fixture(scope="module")
def res():
    return sims.simulate(tokenization_inputs(dataclasses.replace(TokenizationGrid(), max_timed_length=256)))



def test_every_chart_has_a_title_for_its_caption(specs):
    for name, spec in specs.items():
        assert isinstance(spec.get("title"), str) and spec["title"], name


def test_counts_carry_every_text_and_encoding(specs, res):
    rows = inline_data(specs["counts"])[0]
    assert len(rows) == len(res.texts) * len(res.encoded)
    for r in rows:
        e = next(e for e in res.encoded if e.encoding == r["encoding"])
        t = res.labels.index(r["text"])
        assert r["tokens"] == len(e.ids[t])
        assert r["characters"] == len(res.texts[t])
        assert r["UTF-8 bytes"] == len(res.texts[t].encode())
        assert r["characters per token"] == pytest.approx(len(res.texts[t]) / len(e.ids[t]), rel=1e-3)


def test_language_cost_is_tokens_over_the_reference(res, specs):
    rows = inline_data(specs["language_cost"])[0]
    ref = res.labels.index(res.reference_language)
    languages = [l for l, k in zip(res.labels, res.kinds) if k == "language"]
    assert {r["language"] for r in rows} == set(languages)
    for r in rows:
        e = next(e for e in res.encoded if e.encoding == r["encoding"])
        assert r["tokens"] == len(e.ids[res.labels.index(r["language"])])
        assert r["times as many tokens"] == pytest.approx(r["tokens"] / len(e.ids[ref]), rel=1e-3)


def test_vocab_size_pairs_each_encodings_vocabulary_with_its_counts(specs, res):
    rows = inline_data(specs["vocab_size"])[0]
    for r in rows:
        e = next(e for e in res.encoded if e.encoding == r["encoding"])
        assert r["vocabulary size"] == e.n_vocab
        assert r["tokens"] == len(e.ids[res.labels.index(r["language"])])


def test_special_tokens_counts(specs, res):
    eot, chat = inline_data(specs["special_tokens"])[:2]
    for r in eot:
        e = next(e for e in res.encoded if e.encoding == r["encoding"])
        assert r["tokens"] == (len(e.endoftext_as_text) if r["written as"] == "plain text" else 1)
    assert sum(r["tokens"] for r in chat) == res.chat.ids.size
    content = [r["tokens"] for r in chat if r["kind"] == "content"]
    assert content == res.chat.content_tokens.tolist()


def test_bpe_steps_carry_the_paragraph_joins_and_merges(specs, res):
    spec = specs["bpe_steps"]
    lines = spec["datasets"]["paragraph"]
    assert "".join(l["paragraph"] for l in lines) == res.bpe.text
    assert sum((l["_joined"] for l in lines), []) == res.bpe.joined_at.tolist()
    assert [l["_start"] for l in lines] == np.cumsum([0] + [len(l["paragraph"]) for l in lines])[:-1].tolist()
    merges = spec["datasets"]["merges"]
    assert [m["tokens in text"] for m in merges] == res.bpe.tokens.tolist()
    assert [m["count"] for m in merges[1:]] == res.bpe.pair_counts.tolist()
    assert merges[1]["merged"] == "\u2423 + t \u2192 \u2423t"  # the first merge of the default text
    step = params(spec)["step"]
    assert step["bind"]["min"] == 0 and step["bind"]["max"] == len(res.bpe.merges)


def test_each_bytes_made_steps_are_the_merges_whose_new_token_holds_it(specs, res):
    """Replayed merge by merge (generator.sims.bpe.replay, which never reads the join steps),
    the bytes in a token of id 256 + s - 1 after merge s are those whose `_made` (the
    simulation's made_at) holds s."""
    b = res.bpe
    made = [m for line in specs["bpe_steps"]["datasets"]["paragraph"] for m in line["_made"]]
    assert made == [list(m) for m in b.made_at]
    table = bpe.vocab(b.merges)
    for step, seqs in enumerate(bpe.replay(bpe.split(b.text, b.split_pattern), b.merges)):
        at, newest = 0, set()
        for ids in seqs:
            for token in ids:
                if step and token == 256 + step - 1:
                    newest |= set(range(at, at + len(table[token])))
                at += len(table[token])
        assert newest == {i for i, m in enumerate(made) if step in m}, step


def test_bpe_vocab_carries_both_curves_and_the_real_encodings(specs, res):
    curves, real = inline_data(specs["bpe_vocab"])[:2]
    assert [c["vocabulary size"] for c in curves] == list(range(256, 256 + len(res.bpe.tokens)))
    values = [list(c.values()) for c in curves]
    assert [v[1] for v in values] == res.bpe.tokens.tolist()
    assert [v[2] for v in values] == res.bpe.heldout_tokens.tolist()
    for r in real:
        e = next(e for e in res.encoded if e.encoding == r["tokenizer"])
        ids = e.bpe_text_ids if r["text"].startswith("paragraph") else e.ids[res.labels.index(res.reference_language)]
        assert (r["vocabulary size"], r["tokens"]) == (e.n_vocab, len(ids))


def test_attention_rows_carry_counts_and_measured_times(res, specs):
    a = res.attention
    rows = next(d for d in inline_data(specs["attention"]) if d and "n" in d[0] and "score entries (n\u00b2)" in d[0])
    assert [r["n"] for r in rows] == a.seq_lengths.tolist()
    assert [r["score entries (n\u00b2)"] for r in rows] == a.entries.tolist()
    assert [r["FLOPs for QK\u1d40 per head per layer"] for r in rows] == a.score_flops.tolist()
    timed = {r["n"]: r["measured ms (one head, numpy)"] for r in rows if r["measured ms (one head, numpy)"]}
    assert sorted(timed) == a.timed_lengths.tolist()
    for n, s in zip(a.timed_lengths.tolist(), a.seconds.tolist()):
        assert timed[n] == pytest.approx(1000 * s, rel=1e-5)
    slider = params(specs["attention"])["log2n"]
    assert 2 ** slider["bind"]["min"] == a.seq_lengths[0] and 2 ** slider["bind"]["max"] == a.seq_lengths[-1]


def test_facts_quote_the_results(res):
    facts = res.facts
    ref = res.labels.index(res.reference_language)
    for e in res.encoded:
        lang = facts.costliest[e.encoding]
        assert facts.costliest_ratio[e.encoding] == len(e.ids[res.labels.index(lang)]) / len(e.ids[ref])
    assert facts.chat_tokens == res.chat.ids.size
    assert facts.bpe_tokens_end == res.bpe.tokens[-1]
