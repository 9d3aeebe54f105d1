"""The KV cache charts carry exactly the simulation's numbers, and their controls span the grid."""

from __future__ import annotations

import numpy as np
import pytest

from generator.charts import kvcache as charts
from generator.charts.common import visible_token
from generator.grids import KVCacheGrid
from generator.pages.render import FILTERS
from generator.sims import kvcache as sims
from generator import content_files
from tests.helpers import CONTENT, chapter_grids
from tests.charts.specs import inline_data, nodes, params

GRID = KVCacheGrid(model_layers=2, model_heads=2, growth_steps=6, timed_lengths=(8, 16, 32),
                   draft_layers=1, draft_heads=1, draft_lengths=(1, 2, 4), speculative_prompts=3,
                   speculative_new_tokens=12)


@pytest.fixture(scope="module")
def res(shared_memo):
    config = content_files.kvcache_inputs(chapter_grids(kvcache=GRID), "kvcache", CONTENT)
    return sims.simulate(config, shared_memo)




def rows_with(spec, field):
    return next(d for d in inline_data(spec) if field in d[0])


def test_growth_carries_the_cached_keys_and_values_and_when_each_row_was_written(specs, res):
    rows = rows_with(specs["growth"], "key")
    n_rows, n_embd = res.growth_k.shape
    assert n_rows == res.n_prompt + GRID.growth_steps - 1 and len(rows) == n_rows * n_embd
    for r in rows:
        i, d = r["position"], r["dimension"]
        assert r["key"] == pytest.approx(res.growth_k[i, d], rel=5e-3, abs=1e-12)
        assert r["value"] == pytest.approx(res.growth_v[i, d], rel=5e-3, abs=1e-12)
        assert r["written at step"] == res.written_at[i]
        assert r["token"] == visible_token(res.tokens[i])
    # the prefill writes the prompt's rows at step 1, then each step writes one row
    assert sorted({r["written at step"] for r in rows}) == list(range(1, GRID.growth_steps + 1))
    step = params(specs["growth"])["step"]
    assert (step["bind"]["min"], step["bind"]["max"], step["bind"]["step"]) == (1, GRID.growth_steps, 1)


def test_work_carries_the_counts_with_and_without_the_cache(specs, res):
    rows = rows_with(specs["work"], "multiply-adds this step")
    for name, per, so_far in ((charts.WITH, res.madds_cached, res.total_cached),
                              (charts.WITHOUT, res.madds_uncached, res.total_uncached)):
        mine = [r for r in rows if r["cache"] == name]
        assert [r["sequence length"] for r in mine] == res.work_steps.tolist()
        assert [r["multiply-adds this step"] for r in mine] == per.tolist()
        assert [r["multiply-adds so far"] for r in mine] == so_far.tolist()
    assert res.work_steps[-1] == max(GRID.timed_lengths)
    assert res.madds_uncached[-1] == res.work_steps[-1] * res.madds_cached[-1]


def test_timing_carries_the_measured_seconds_and_says_where_they_were_measured(res, specs):
    rows = rows_with(specs["timing"], "milliseconds per token")
    t = res.times
    for name, seconds in ((charts.WITH, t.seconds_cached), (charts.WITHOUT, t.seconds_uncached)):
        mine = [r for r in rows if r["cache"] == name]
        assert [r["sequence length"] for r in mine] == list(GRID.timed_lengths)
        assert np.allclose([r["milliseconds per token"] for r in mine], 1e3 * seconds, rtol=1e-3)
    assert t.measured_on in specs["timing"]["title"]
    assert all(s > 0 for s in np.r_[t.seconds_cached, t.seconds_uncached])


def test_facts_quote_the_results(facts, res):
    assert facts.max_diff == res.max_abs_diff.max() <= 1e-5
    assert facts.max_diff_f64 <= 1e-12
    assert facts.n_generated == res.n_ctx - res.n_prompt == len(FILTERS["visible"](facts.continuation).split())
    assert facts.step_ratio == max(GRID.timed_lengths)


def test_every_tooltip_field_exists_in_the_data(specs):
    for name, spec in specs.items():
        fields = {k for d in inline_data(spec) for k in d[0]} | {"row"}
        for n in nodes(spec):
            for t in n.get("tooltip", []) if isinstance(n.get("tooltip"), list) else []:
                assert t["field"] in fields, (name, t["field"])
