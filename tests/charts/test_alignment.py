"""The alignment charts carry the simulation's curves and next-token probabilities."""

from __future__ import annotations

import numpy as np

from generator.charts import alignment as charts
from generator.charts.common import visible_token
from generator.grids import AlignmentGrid, PretrainingGrid
from generator.sims import alignment as sims
from tests.charts.specs import inline_data, params

FAMILY = PretrainingGrid(n_layers=(1, 2), n_heads=(1, 2), n_embd=16, n_ctx=64, batch_size=4, steps=20,
                         warmup_steps=5, eval_every=10, checkpoints=(0, 20), train_stories=100,
                         heldout_stories=8, prompt="once upon a time , there was")
GRID = AlignmentGrid(train_stories=40, heldout_stories=16, sft_steps=10, dpo_steps=10, warmup_steps=2,
                     eval_every=5, batch_size=4)
RES = sims.simulate((GRID, FAMILY))
SPECS = {name: fig.to_dict() for name, fig in charts.figures(RES).items()}  # to_dict validates
FACTS = charts.facts(RES)


def close(a, b, digits):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=0.51 * 10 ** (1 - digits), atol=0)


def by_measure(rows, measure, **match):
    picked = [r for r in rows if r["measure"] == measure and all(r[k] == v for k, v in match.items())]
    return [r["step"] for r in picked], [r["value"] for r in picked]


def test_sft_curves_carry_the_training_loss_and_every_held_out_measure():
    (rows,) = inline_data(SPECS["sft_curves"])
    steps, values = by_measure(rows, "training loss (bits/token)")
    assert steps == list(range(GRID.sft_steps)) and close(values, RES.sft.train_loss, 4)
    for measure, expected in (("held-out recap loss (bits/token)", RES.sft.recap_loss),
                              ("recaps reproduced exactly", RES.sft.exact),
                              ("loss on ordinary stories (bits/token)", RES.sft.story_loss)):
        steps, values = by_measure(rows, measure)
        assert steps == list(RES.sft.eval_steps) and close(values, expected, 4)


def test_dpo_curves_carry_every_beta_and_the_radio_chooses_among_them():
    (rows,) = inline_data(SPECS["dpo_curves"])
    for run in RES.dpo:
        for measure, expected in zip(charts.DPO_MEASURES, (run.loss, run.margin, run.win_rate, run.kl, run.p_preferred)):
            steps, values = by_measure(rows, measure, beta=run.beta)
            assert steps == list(run.eval_steps) and close(values, expected, 4)
    beta = params(SPECS["dpo_curves"])["beta"]
    assert beta["bind"]["options"] == list(GRID.betas) and beta["value"] == GRID.betas[0]


def test_next_token_bars_are_the_stages_probabilities():
    (rows,) = inline_data(SPECS["next_tokens"])
    for place, nt in zip(charts.PLACES, RES.next_tokens):
        here = [r for r in rows if r["place"] == place]
        for r in here:
            token = next(t for t in RES.vocab if visible_token(t) == r["token"])
            assert close(r["probability"], nt.probs[RES.stages.index(r["stage"]), RES.vocab.index(token)], 4)
            assert r["_target"] == (token == nt.target)
        for s in range(len(RES.stages)):  # every stage's top token is shown
            assert visible_token(RES.vocab[int(nt.probs[s].argmax())]) in {r["token"] for r in here}
    assert set(params(SPECS["next_tokens"])["place"]["bind"]["options"]) == set(charts.PLACES)


def test_facts_agree_with_the_results():
    assert FACTS["exact_after"] == RES.sft.exact[-1]
    assert FACTS["win_before"] == RES.dpo[0].win_rate[0] and FACTS["win_after"] == RES.dpo[0].win_rate[-1]
    assert FACTS["kl_after"] == RES.dpo[0].kl[-1]
    assert FACTS["p_sft_shown"] == RES.next_tokens[1].probs[1, RES.vocab.index("happy")]
    assert "\n" not in FACTS["demo_example"] and FACTS["demo_example"].endswith("\u21b5")
