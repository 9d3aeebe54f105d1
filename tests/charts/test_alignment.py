"""The alignment charts carry the simulation's curves and next-token probabilities."""

from __future__ import annotations

import dataclasses
import pytest

from generator.charts import alignment as charts
from generator.charts.common import visible_token
from generator.grids import AlignmentGrid
from generator.sims import alignment as sims
from generator.sims.family import WithFamily
from tests.charts.specs import inline_data, params
from tests.helpers import TINY_FAMILY, close

FAMILY = dataclasses.replace(TINY_FAMILY, n_ctx=64)  # a story, its recap and END fit
GRID = AlignmentGrid(train_stories=80, heldout_stories=32, sft_steps=10, dpo_steps=10, warmup_steps=2,
                     eval_every=5, batch_size=4)


@pytest.fixture(scope="module")
def res(shared_memo):
    return sims.simulate(WithFamily(GRID, FAMILY), shared_memo)




def by_measure(rows, measure, **match):
    picked = [r for r in rows if r["measure"] == measure and all(r[k] == v for k, v in match.items())]
    return [r["step"] for r in picked], [r["value"] for r in picked]


def test_sft_curves_carry_the_training_loss_and_every_held_out_measure(specs, res):
    (rows,) = inline_data(specs["sft_curves"])
    steps, values = by_measure(rows, "training loss (bits/token)")
    assert steps == list(range(GRID.sft_steps)) and close(values, res.sft.train_loss, 4)
    for measure, expected in (("held-out recap loss (bits/token)", res.sft.recap_loss),
                              ("recaps reproduced exactly", res.sft.exact),
                              ("loss on ordinary stories (bits/token)", res.sft.story_loss)):
        steps, values = by_measure(rows, measure)
        assert steps == list(res.sft.eval_steps) and close(values, expected, 4)


def test_dpo_curves_carry_every_beta_and_the_radio_chooses_among_them(res, specs):
    (rows,) = inline_data(specs["dpo_curves"])
    for run in res.dpo:
        for measure, expected in zip(charts.DPO_MEASURES, (run.loss, run.margin, run.win_rate, run.kl, run.p_preferred)):
            steps, values = by_measure(rows, measure, beta=run.beta)
            assert steps == list(run.eval_steps) and close(values, expected, 4)
    beta = params(specs["dpo_curves"])["beta"]
    assert beta["bind"]["options"] == list(GRID.betas) and beta["value"] == GRID.betas[0]


def test_next_token_bars_are_the_stages_probabilities(specs, res):
    (rows,) = inline_data(specs["next_tokens"])
    for place, nt in zip(charts.PLACES, res.next_tokens):
        here = [r for r in rows if r["place"] == place]
        for r in here:
            token = next(t for t in res.vocab if visible_token(t) == r["token"])
            assert close(r["probability"], nt.probs[res.stages.index(r["stage"]), res.vocab.index(token)], 4)
            assert r["_target"] == (token == nt.target)
        for s in range(len(res.stages)):  # every stage's top token is shown
            assert visible_token(res.vocab[int(nt.probs[s].argmax())]) in {r["token"] for r in here}
    assert set(params(specs["next_tokens"])["place"]["bind"]["options"]) == set(charts.PLACES)


def test_facts_agree_with_the_results(facts, res):
    assert facts.exact_after == res.sft.exact[-1]
    assert facts.win_before == res.dpo[0].win_rate[0] and facts.win_after == res.dpo[0].win_rate[-1]
    assert facts.kl_after == res.dpo[0].kl[-1]
    assert facts.p_sft_shown == res.next_tokens[1].probs[1, res.vocab.index("happy")]
    assert "\n" not in facts.demo_example and facts.demo_example.endswith("\u21b5")
