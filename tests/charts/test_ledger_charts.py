"""The KV cache chapter's ledger charts carry exactly the simulation's numbers (memory at each
model's real context, what fits, the roofline, the quantised cache, speculative decoding)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from generator import content_files
from generator.charts import kvcache as charts
from generator.grids import KVCacheGrid, PretrainingGrid
from generator.sims import kvcache as sims
from generator.sims.ledger import WithLedger
from tests.charts.specs import inline_data, params
from tests.helpers import TINY_FAMILY


@pytest.fixture(scope="module")
def res(shared_memo):
    return sims.simulate(CONFIG, shared_memo)



CONTENT = Path(__file__).resolve().parents[2] / "content"
FAMILY = TINY_FAMILY
GRID = KVCacheGrid(model_layers=2, model_heads=2, growth_steps=6, timed_lengths=(8, 16, 32),
                   draft_layers=1, draft_heads=1, draft_lengths=(1, 2, 4), speculative_prompts=3,
                   speculative_new_tokens=12)


@dataclass(frozen=True)
class Grids:
    kvcache: KVCacheGrid = GRID
    pretraining: PretrainingGrid = FAMILY


CONFIG = content_files.kvcache_inputs(Grids(), "kvcache", CONTENT)


def rows_with(spec, field):
    return next(d for d in inline_data(spec) if field in d[0])


def test_config_is_the_grid_family_and_ledger():
    assert isinstance(CONFIG, WithLedger) and CONFIG.family is FAMILY
    assert [m.name for m in CONFIG.models][:2] == ["GPT-2 small", "GPT-2 XL"]


def test_memory_rows_stop_at_each_models_context(res, specs):
    led = res.ledger
    rows = rows_with(specs["memory"], "tokens")
    for r in rows:
        i = led.names.index(r["model"])
        assert r["tokens"] <= led.context[i]
        j = list(led.lengths).index(r["tokens"])
        assert r["bytes"] == led.kv_at_length[i, j]
    ends = rows_with(specs["memory"], "GiB at the context")
    assert [r["model"] for r in ends] == list(led.names)
    assert [r["bytes per token"] for r in ends] == [int(b) for b in led.kv_per_token]


def test_fit_rows_and_controls(res, specs):
    led = res.ledger
    rows = rows_with(specs["fit"], "sequences")
    assert len(rows) == len(led.names) * len(led.gpus_gb) * len(led.precisions)
    for r in rows:
        i, g, p = led.names.index(r["model"]), list(led.gpus_gb).index(r["GB"]), led.precisions.index(r["precision"])
        assert (r["tokens"], r["sequences"]) == (led.fit_tokens[i, g, p], led.fit_sequences[i, g, p])
    ps = params(specs["fit"])
    assert ps["gpu"]["bind"]["options"] == list(GRID.gpu_memories_gb)
    assert ps["precision"]["bind"]["options"] == list(GRID.fit_precisions)


def test_roofline_rows_carry_the_bound(res, specs):
    r = res.roofline
    rows = rows_with(specs["roofline"], "tokens/s")
    assert len(rows) == len(r.names) * len(r.batches)
    for row in rows:
        i, j = r.names.index(row["model"]), list(r.batches).index(row["batch"])
        assert row["tokens/s"] == pytest.approx(r.tokens_per_s[i, j], rel=1e-3)
        assert row["bound"] == ("memory" if r.memory_bound[i, j] else "compute")
    assert params(specs["roofline"])["batch"]["bind"]["options"] == [int(b) for b in r.batches]


def test_quantised_and_speculative_rows(res, specs):
    q = res.quantised
    rows = rows_with(specs["quantised"], "largest logit error")
    assert len(rows) == q.logit_error.size
    assert max(r["largest logit error"] for r in rows if r["cache"] == "int8") == pytest.approx(
        q.max_logit_error[list(q.bits).index(8)], rel=1e-2)
    sp = res.speculative
    rows = rows_with(specs["speculative"], "tokens per target pass")
    measured = [r["tokens per target pass"] for r in rows if r["what"] == charts.MEASURED]
    assert measured == pytest.approx(list(sp.tokens_per_pass), rel=1e-3)
    assert sp.identical and res.facts.spec_identical


def test_facts_quote_the_ledger(res):
    f = res.facts
    assert f.mha_name == "Llama 2 7B" and f.mha_context == 4096 and f.mha_context_gib == 2.0
    assert f.mla_token_kib == pytest.approx((512 + 64) * 61 * 2 / 1024)
    assert f.sliding_context_mib == 512 and f.sliding_uncapped_mib == 1024
    assert f.roof_b1_memory_bound and f.ridge == pytest.approx(989 / 3.35)
    assert f.quant_error_high < f.quant_error_low
    assert np.isfinite(f.spec_alpha) and 0 <= f.spec_alpha <= 1


def test_growth_shows_at_most_growth_dims_dimensions(res):
    from dataclasses import replace

    small = sims.simulate(replace(CONFIG, grid=replace(GRID, growth_dims=8)))
    assert small.growth_k.shape[1] == 8 and small.facts.growth_dims == 8 < small.n_embd
    spec = charts.growth(small).to_dict()
    assert {r["dimension"] for r in rows_with(spec, "key")} == set(range(8))
    assert res.facts.growth_dims == res.n_embd  # the default shows every dimension of this model
