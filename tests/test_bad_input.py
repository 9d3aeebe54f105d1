"""Bad settings stop before anything runs, with a message naming the field; a result that is not
finite stops the build naming the chart or the fact, never reaching a page."""

from __future__ import annotations

import dataclasses

import pytest

from generator.build import check_facts_finite, finite_specs
from generator.chapters import CHAPTERS
from generator.grids import load_grids
from generator.validation import GridError

SAMPLING = next(c for c in CHAPTERS if c.name == "sampling")

# (overrides as in mkdocs.yml's extra.grids, text the message must contain)
BAD = [
    ({"sampling": {"temperatures": [1.0e-310, 1.0]}}, "grids.sampling.temperatures[0]"),
    ({"sampling": {"sampler_temperature": 1.0e-310}}, "grids.sampling.sampler_temperature"),
    ({"sampling": {"model_temperatures": [1.0e-310, 1.0]}}, "grids.sampling.model_temperatures[0]"),
    ({"sampling": {"candidates": [["a", 1.0e308], ["b", -1.0e308]]}}, "grids.sampling.candidates[0][1]"),
    ({"sampling": {"candidates": [["a", 1.0], ["\ud800", 0.0]]}}, "grids.sampling.candidates[1][0]"),
    ({"sampling": {"temperatures": [0.01 * i for i in range(1, 100_001)]}}, "at most 64 items"),
    ({"kvcache": {"roofline_batches": list(range(1, 100_001))}}, "grids.kvcache.roofline_batches"),
    ({"tokenization": {"seq_lengths": [8, 12, 16]}}, "grids.tokenization.seq_lengths[1]"),
    ({"tokenization": {"examples": [["lone", "a\ud800b"]]}}, "grids.tokenization.examples[0][1]"),
    ({"sampling": {"prompt": "\udfff"}}, "grids.sampling.prompt"),
    ({1: {}}, "setting names must be text"),
    ({"sampling": {2: 1}}, "grids.sampling: setting names must be text"),
    ({"block": {"step_position": 60}}, "grids.block.step_position"),
    ({"rag": {"questions": "../../../../etc/hostname"}}, "grids.rag.questions"),
    ({"rag": {"conversations": "/etc/hostname"}}, "grids.rag.conversations"),
    ({"rag": {"documents": ["../*.md"]}}, "grids.rag.documents[0]"),
    ({"tokenization": {"languages": "../../etc/passwd"}}, "grids.tokenization.languages"),
    ({"sampling": {"seed": 10 ** 12}}, "grids.sampling.seed"),
    ({"attention": {"n_layer": 3}}, "grids.attention.n_layer, n_head"),
    ({"kvcache": {"model_heads": 3}}, "grids.kvcache.model_layers, model_heads"),
    ({"block": {"prompt": "Mia flew the moon"}}, "grids.block.prompt"),
    ({"sampling": {"model_prompt": "zebra"}}, "grids.sampling.model_prompt"),
    ({"kvcache": {"growth_steps": 64}}, "grids.kvcache.growth_steps"),
    ({"alignment": {"rewards": [1.0, 0.0]}}, "grids.alignment.rewards"),
    ({"attention": {"scored_stories": 1}, "pretraining": {"n_ctx": 512}}, "grids.attention.scored_stories"),
]


@pytest.mark.parametrize("overrides, field", BAD, ids=[f for _, f in BAD])
def test_a_bad_setting_fails_before_anything_runs_naming_its_field(overrides, field):
    with pytest.raises(GridError) as info:
        load_grids(overrides)
    assert field in str(info.value)


def test_the_defaults_are_accepted():
    load_grids({})


class _Figure:
    def __init__(self, spec):
        self.spec = spec

    def to_dict(self):
        return self.spec


def test_a_chart_holding_nan_stops_the_build_naming_the_chart():
    with pytest.raises(ValueError, match="chart sampling/temperature .* not finite"):
        finite_specs(SAMPLING, {"temperature": _Figure({"data": {"values": [{"p": float("nan")}]}})})
    assert finite_specs(SAMPLING, {"ok": _Figure({"data": {"values": [{"p": 0.5}]}})})["ok"]


def test_a_fact_that_is_not_finite_stops_the_build_naming_the_fact():
    @dataclasses.dataclass(frozen=True)
    class Facts:
        fine: float
        nested: dict

    check_facts_finite(SAMPLING, Facts(1.0, {"a": [2.0]}))
    with pytest.raises(ValueError, match=r"facts.nested\['a'\]\[1\] of chapter sampling is inf"):
        check_facts_finite(SAMPLING, Facts(1.0, {"a": [2.0, float("inf")]}))
