"""The sampling charts carry exactly the simulation's numbers, and their controls span the grids."""

from __future__ import annotations

import numpy as np
import pytest

from generator.charts import sampling as charts
from generator.charts.common import visible_token
from generator.grids import SamplingGrid
from generator.sims import sampling as sims
from tests.charts.specs import inline_data, params, slider_grid, tooltip_formats

RES = sims.simulate(SamplingGrid())
FIGS = charts.figures(RES)
SPECS = {name: fig.to_dict() for name, fig in FIGS.items()}  # to_dict validates against the schema
TOKENS = [visible_token(t) for t in RES.tokens]


def close(a, b):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=5e-6, atol=1e-300)


def test_temperature_bars_carry_every_probability_and_logit():
    rows = inline_data(SPECS["temperature"])[0]
    assert len(rows) == RES.probs.size
    for r in rows:
        i = TOKENS.index(r["token"])
        t = list(RES.temperatures).index(r["temperature"])
        assert close(r["probability"], RES.probs[t, i]), r
        assert close(r["logit"], RES.logits[i])


def test_entropy_panels_carry_the_entropy_and_effective_choices():
    rows = inline_data(SPECS["temperature"])[1]
    assert [r["temperature"] for r in rows] == pytest.approx(list(RES.temperatures))
    assert close([r["entropy (bits)"] for r in rows], RES.entropy)
    assert close([r["effective choices"] for r in rows], 2.0 ** RES.entropy)


def test_temperature_slider_spans_the_grid_and_starts_at_one():
    p = params(SPECS["temperature"])["T"]
    grid = slider_grid(SPECS["temperature"], "T")
    # one slider position per grid value, every grid value reachable
    assert np.allclose(grid, RES.temperatures)
    assert (p["bind"]["min"], p["bind"]["max"], p["bind"]["step"]) == (0, len(grid) - 1, 1)
    assert grid[p["value"]] == 1.0


@pytest.mark.parametrize("which,label", [("top_k", "k"), ("top_p", "top-p"), ("min_p", "min-p")])
def test_samplers_carry_survivors_and_renormalised_probabilities(which, label):
    result = getattr(RES, which)
    rows = inline_data(SPECS[which])[0]
    assert len(rows) == result.probs.size
    values = list(result.values)
    for r in rows:
        g, i = values.index(r[label]), TOKENS.index(r["token"])
        assert r["kept"] == bool(result.keep[g, i])
        assert close(r["probability after"], result.probs[g, i])
        assert close(r["probability before"], RES.base_probs[i])
    bind = params(SPECS[which])[which]["bind"]
    assert slider_grid(SPECS[which], which) == pytest.approx(values)
    assert (bind["min"], bind["max"], bind["step"]) == (0, len(values) - 1, 1)


def test_samples_chart_carries_counts_and_exact_probabilities():
    rows = inline_data(SPECS["samples"])[0]
    for r in rows:
        n, i = r["N"], TOKENS.index(r["token"])
        row = list(RES.sample_sizes).index(n)
        if r["source"] == "exact":
            assert close(r["probability"], RES.base_probs[i])
        else:
            assert r["count"] == RES.counts[row, i]
            assert close(r["probability"], RES.counts[row, i] / n)
    options = params(SPECS["samples"])["N"]["bind"]["options"]
    assert options == [int(n) for n in RES.sample_sizes]


def test_tooltips_show_at_least_four_significant_digits():
    for name in ("temperature", "top_k", "top_p", "min_p", "samples"):
        formats = tooltip_formats(SPECS[name], "probability")
        assert formats and all(f in (".6g", ".5g", ".4g") for f in formats), (name, formats)


def test_facts_are_read_off_the_results():
    f = charts.facts(RES)
    best = int(np.argmax(RES.logits))
    assert f["p_top_one"] == pytest.approx(sims.softmax_with_temperature(RES.logits, 1.0)[best])
    assert f["choices_hot"] == pytest.approx(2 ** sims.entropy_bits(
        sims.softmax_with_temperature(RES.logits, RES.temperatures.max())))
    assert f["argmax_token"] == TOKENS[best]
