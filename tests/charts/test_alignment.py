"""The alignment charts carry the simulation's curves and next-token probabilities."""

from __future__ import annotations

import dataclasses
import pytest

from generator.charts import alignment as charts
from generator.charts.common import YELLOW, visible_token
from generator.grids import AlignmentGrid
from generator.sims import alignment as sims
from generator.sims.family import WithFamily
from tests.charts.specs import inline_data, params
from tests.helpers import TINY_FAMILY, close

FAMILY = dataclasses.replace(TINY_FAMILY, n_ctx=64)  # a story, its recap and END fit
GRID = AlignmentGrid(train_stories=80, heldout_stories=32, sft_steps=10, sft_learning_rates=(0.003, 0.01),
                     rm_steps=10, rl_steps=10, kl_coefs=(0.1, 1.0), dpo_steps=10, betas=(0.1, 0.5),
                     warmup_steps=2, eval_every=5, batch_size=4)


@pytest.fixture(scope="module")
def res(shared_memo):
    return sims.simulate(WithFamily(GRID, FAMILY), shared_memo)




@pytest.mark.parametrize("name", ["sft_curves", "rl_curves", "dpo_curves"])
def test_each_panels_axes_hold_its_measure_over_every_run(specs, name):
    # The axes stay put while the radio moves, so they must hold every run's curve, zero too.
    (rows,) = inline_data(specs[name])
    shown = []
    for panel in specs[name]["concat"]:
        measure = next(t["filter"]["equal"] for t in panel["transform"] if isinstance(t["filter"], dict))
        assert panel["title"]["text"] == measure
        shown.append(measure)
        values = [r["value"] for r in rows if r["measure"] == measure]
        low, high = panel["encoding"]["y"]["scale"]["domain"]
        assert low <= min(min(values), 0) and max(max(values), 0) <= high
        assert panel["encoding"]["x"]["scale"]["domain"] == [min(r["step"] for r in rows),
                                                              max(r["step"] for r in rows)]
    assert sorted(shown) == sorted({r["measure"] for r in rows})


def test_every_stage_of_the_next_token_chart_has_a_colour_of_its_own(specs):
    (rows,) = inline_data(specs["next_tokens"])
    stages = {r["stage"] for r in rows}
    colours = specs["next_tokens"]["encoding"]["color"]["scale"]["range"]
    assert len(set(colours)) == len(colours) == len(stages)


def by_measure(rows, measure, **match):
    picked = [r for r in rows if r["measure"] == measure and all(r[k] == v for k, v in match.items())]
    return [r["step"] for r in picked], [r["value"] for r in picked]


def policy_measures(track):
    return zip(charts.POLICY_MEASURES, (track.true_reward, track.rm_score, track.kl, track.feeling_share))


def test_sft_curves_carry_every_rate_and_the_radio_opens_on_the_run_carried_forward(specs, res):
    (rows,) = inline_data(specs["sft_curves"])
    for run in res.sft_runs:
        steps, values = by_measure(rows, charts.SFT_MEASURES[0], rate=run.learning_rate)
        means = [run.train_loss[a:b].mean() for a, b in zip(run.eval_steps[:-1], run.eval_steps[1:])]
        assert steps == list(run.eval_steps[1:]) and close(values, means, 4)
        for measure, expected in zip(charts.SFT_MEASURES[1:], (run.recap_loss, run.exact, run.story_loss)):
            steps, values = by_measure(rows, measure, rate=run.learning_rate)
            assert steps == list(run.eval_steps) and close(values, expected, 4)
    rate = params(specs["sft_curves"])["sft_rate"]
    assert rate["bind"]["options"] == list(GRID.sft_learning_rates) and rate["value"] == res.sft.learning_rate


def test_dpo_curves_carry_every_beta_and_the_radio_chooses_among_them(res, specs):
    (rows,) = inline_data(specs["dpo_curves"])
    for run in res.dpo:
        for measure, expected in [*zip(charts.DPO_MEASURES, (run.loss, run.margin, run.win_rate, run.logp_chosen,
                                                              run.logp_rejected)), *policy_measures(run.track)]:
            steps, values = by_measure(rows, measure, beta=run.beta)
            assert steps == list(run.eval_steps) and close(values, expected, 4), measure
    beta = params(specs["dpo_curves"])["beta"]
    assert beta["bind"]["options"] == list(GRID.betas) and beta["value"] == GRID.betas[0]


def test_rl_curves_carry_every_coefficient(res, specs):
    (rows,) = inline_data(specs["rl_curves"])
    for run in res.rl:
        for measure, expected in policy_measures(run.track):
            steps, values = by_measure(rows, measure, coef=run.kl_coef)
            assert steps == list(run.track.eval_steps) and close(values, expected, 4), measure
    assert params(specs["rl_curves"])["kl_coef"]["bind"]["options"] == list(GRID.kl_coefs)


def test_reward_model_points_are_each_feelings_mean_score(res, specs):
    (rows,) = inline_data(specs["reward_model"])
    assert [r["feeling"] for r in rows] == list(res.feelings)
    assert close([r["reward-model score"] for r in rows], res.reward_model.feeling_scores, 4)
    assert [r["hidden reward"] for r in rows] == list(GRID.rewards)


def test_frontier_carries_every_runs_path_from_the_reference(res, specs):
    (rows,) = inline_data(specs["frontier"])
    assert rows[0]["run"] == "SFT (the reference)" and rows[0]["KL (nats)"] == 0
    for label, run in [*((f"RLHF, c = {r.kl_coef:g}", r) for r in res.rl), *((f"DPO, β = {r.beta:g}", r) for r in res.dpo)]:
        mine = [r for r in rows if r["run"] == label]
        assert [r["step"] for r in mine] == list(run.track.eval_steps)
        assert close([r["KL (nats)"] for r in mine], run.track.kl, 4, atol=1e-9)
        assert close([r["true reward"] for r in mine], run.track.true_reward, 4)


def test_every_frontier_run_has_a_colour_of_its_own_and_none_is_yellow(specs):
    """A yellow line is 1.1:1 on the white page: the frontier's runs take the other colours."""
    scale = next(layer for layer in specs["frontier"]["layer"] if "color" in layer.get("encoding", {})
                 )["encoding"]["color"]["scale"]
    assert len(set(scale["range"])) == len(scale["range"]) == len(scale["domain"])
    assert YELLOW not in scale["range"]


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


def test_every_place_shows_as_many_tokens_so_the_chart_keeps_its_height(specs, res):
    (rows,) = inline_data(specs["next_tokens"])
    shown = {place: {r["token"] for r in rows if r["place"] == place} for place in charts.PLACES}
    assert len({len(tokens) for tokens in shown.values()}) == 1, {p: len(t) for p, t in shown.items()}
    for place, nt in zip(charts.PLACES, res.next_tokens):  # each stage's four most probable at least
        for p in nt.probs:
            top = sorted(range(len(p)), key=lambda i: -p[i])[:4]
            assert {visible_token(res.vocab[i]) for i in top} <= shown[place]
        assert len({r["stage"] for r in rows if r["place"] == place}) == len(res.stages)


def test_facts_agree_with_the_results(facts, res):
    assert facts.exact_after == res.sft.exact[-1]
    assert facts.win_before == res.dpo[0].win_rate[0] and facts.win_after == res.dpo[0].win_rate[-1]
    assert facts.dpo_kl_first == res.dpo[0].track.kl[-1] and facts.dpo_kl_last == res.dpo[-1].track.kl[-1]
    assert facts.dpo_kl_ordered == all(a.track.kl[-1] > b.track.kl[-1] for a, b in zip(res.dpo, res.dpo[1:]))
    assert facts.rl_kl_first == res.rl[0].track.kl[-1]
    assert facts.p_sft_shown == res.next_tokens[1].probs[1, res.vocab.index("happy")]
    assert facts.label_noise == pytest.approx(res.label_noise)
    assert "\n" not in facts.demo_example and facts.demo_example.endswith("\u21b5")
