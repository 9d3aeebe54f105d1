"""The block chapter's new charts carry exactly the simulation's numbers: the step-through, the
change-by-change count from GPT-2's block, and the depth shares."""

from __future__ import annotations

import pytest

from generator.charts.common import visible_token
from generator.sims import block
from generator.sims.block import FLOP_PARTS, PARTS
from tests.sims.test_block_step import CONFIG
from tests.charts.specs import inline_data, params


@pytest.fixture(scope="module")
def res(shared_memo):
    return block.simulate(CONFIG, shared_memo)





def rows_with(spec, field):
    return next(d for d in inline_data(spec) if field in d[0])


def test_step_rows_are_every_number_of_every_stage(res, specs):
    rows = rows_with(specs["step"], "value")
    st = res.step
    assert len(rows) == sum(len(s.values) for s in st.stages)
    for k, stage in enumerate(st.stages):
        mine = [r for r in rows if r["stage"] == k + 1]
        assert [r["value"] for r in mine] == pytest.approx(list(stage.values), rel=1e-3, abs=1e-9)
        for r, p in zip(mine, stage.positions):
            assert ("token" in r) == (p >= 0)
            if p >= 0:
                assert r["token"] == visible_token(res.tokens[p])
    slider = params(specs["step"])["stage"]["bind"]
    assert (slider["min"], slider["max"], slider["step"]) == (1, len(st.stages), 1)


def test_modernising_rows_are_the_ledger_counts(res, specs):
    rows = rows_with(specs["modernising"], "parameters")
    mod = res.modernising
    assert [r["parameters"] for r in rows] == [int(n) for n in mod.n_params]
    assert [r["change"] for r in rows][1:] == [int(d) for d in mod.n_params[1:] - mod.n_params[:-1]]


def test_depth_rows_carry_parameters_and_flops_by_part(res, specs):
    dep = res.depth
    p_rows = rows_with(specs["depth"], "parameters")
    assert [(r["model"], r["part"], r["parameters"]) for r in p_rows] == [
        (name, part, int(dep.params[i, j])) for i, name in enumerate(dep.names) for j, part in enumerate(PARTS)]
    f_rows = rows_with(specs["depth"], "FLOPs")
    assert [r["FLOPs"] for r in f_rows] == pytest.approx(
        [float(dep.flops[i, j]) for i in range(len(dep.names)) for j in range(len(FLOP_PARTS))], rel=1e-5)
