"""The sampling charts carry exactly the simulation's numbers, and their controls span the grids."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from generator.charts import sampling as charts
from generator.charts.common import visible_token
from generator.grids import SamplingGrid
from generator.sims import sampling as sims
from generator.sims.family import WithFamily
from tests.charts.specs import inline_data, params, slider_grid, tooltip_formats
from tests import helpers
from tests.helpers import TINY_FAMILY

# Cold temperatures send tail probabilities to (almost) zero: they compare within 1e-300.
close = functools.partial(helpers.close, atol=1e-300)


@pytest.fixture(scope="module")
def res(shared_memo):
    grid = SamplingGrid(model_prompt="once upon a time , there was", model_tokens=5,
                        model_temperatures=(0.5, 1.0, 2.0), model_top_p=(0.5, 1.0))
    return sims.simulate(WithFamily(grid, TINY_FAMILY), shared_memo)



@pytest.fixture(scope="module")
def tokens(res):
    return [visible_token(t) for t in res.tokens]


def test_temperature_bars_carry_every_probability_and_logit(specs, res, tokens):
    rows = inline_data(specs["temperature"])[0]
    assert len(rows) == res.probs.size
    for r in rows:
        i = tokens.index(r["token"])
        t = list(res.temperatures).index(r["temperature"])
        assert close(r["probability"], res.probs[t, i]), r
        assert close(r["logit"], res.logits[i])


def test_entropy_panels_carry_the_entropy_and_effective_choices(res, specs):
    rows = inline_data(specs["temperature"])[1]
    assert [r["temperature"] for r in rows] == pytest.approx(list(res.temperatures))
    assert close([r["entropy (bits)"] for r in rows], res.entropy)
    assert close([r["effective choices"] for r in rows], 2.0 ** res.entropy)


def test_temperature_slider_spans_the_grid_and_starts_at_one(specs, res):
    p = params(specs["temperature"])["T"]
    grid = slider_grid(specs["temperature"], "T")
    # one slider position per grid value, every grid value reachable
    assert np.allclose(grid, res.temperatures)
    assert (p["bind"]["min"], p["bind"]["max"], p["bind"]["step"]) == (0, len(grid) - 1, 1)
    assert grid[p["value"]] == 1.0


@pytest.mark.parametrize("which,label", [("top_k", "k"), ("top_p", "top-p"), ("min_p", "min-p")])
def test_samplers_carry_survivors_and_renormalised_probabilities(res, specs, tokens, which, label):
    result = getattr(res, which)
    rows = inline_data(specs[which])[0]
    assert len(rows) == result.probs.size
    values = list(result.values)
    for r in rows:
        g, i = values.index(r[label]), tokens.index(r["token"])
        assert r["kept"] == bool(result.keep[g, i])
        assert close(r["probability after"], result.probs[g, i])
        assert close(r["probability before"], res.base_probs[i])
    bind = params(specs[which])[which]["bind"]
    assert slider_grid(specs[which], which) == pytest.approx(values)
    assert (bind["min"], bind["max"], bind["step"]) == (0, len(values) - 1, 1)


def test_samples_chart_carries_counts_and_exact_probabilities(specs, tokens, res):
    rows = inline_data(specs["samples"])[0]
    for r in rows:
        n, i = r["N"], tokens.index(r["token"])
        row = list(res.sample_sizes).index(n)
        if r["source"] == "exact":
            assert close(r["probability"], res.base_probs[i])
        else:
            assert r["count"] == res.counts[row, i]
            assert close(r["probability"], res.counts[row, i] / n)
    options = params(specs["samples"])["N"]["bind"]["options"]
    assert options == [int(n) for n in res.sample_sizes]


def test_tooltips_show_at_least_four_significant_digits(specs):
    for name in ("temperature", "top_k", "top_p", "min_p", "samples"):
        formats = tooltip_formats(specs[name], "probability")
        assert formats and all(f in (".6g", ".5g", ".4g") for f in formats), (name, formats)


def test_facts_are_read_off_the_results(res, tokens):
    f = res.facts
    best = int(np.argmax(res.logits))
    assert f.p_top_one == pytest.approx(sims.softmax_with_temperature(res.logits, 1.0)[best])
    assert f.choices_hot == pytest.approx(2 ** sims.entropy_bits(
        sims.softmax_with_temperature(res.logits, res.temperatures.max())))
    assert visible_token(f.argmax_token) == tokens[best]


def test_model_logits_carry_the_model_probabilities(res, specs):
    c = res.model
    rows, truth = inline_data(specs["model_logits"])
    tokens = [visible_token(t) for t in c.tokens] + [charts.OTHERS]
    assert len(rows) == len(c.temperatures) * len(c.top_p) * len(tokens)
    for r in rows:
        i, j, k = list(c.temperatures).index(r["T"]), list(c.top_p).index(r["top-p"]), tokens.index(r["token"])
        expected = c.other[i, j] if k == len(c.tokens) else c.probs[i, j, k]
        assert r["probability"] == pytest.approx(expected, rel=5e-4, abs=1e-12)  # shown to 4 digits
    assert [r["token"] for r in truth] == tokens
    assert [r["true probability"] for r in truth] == pytest.approx([*c.grammar_probs, c.grammar_other], rel=5e-4)
    assert [r["logit"] for r in truth[:-1]] == pytest.approx(c.logits, rel=5e-4)
    assert c.grammar_other + c.grammar_probs.sum() == pytest.approx(1.0)
    assert params(specs["model_logits"])["top_p"]["bind"]["options"] == [0.5, 1.0]
    assert params(specs["model_logits"])["T"]["value"] == 1.0
