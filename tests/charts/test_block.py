"""The block charts carry the simulation's norms, logit-lens guesses and parameter counts."""

from __future__ import annotations

import numpy as np

from generator.charts import block as charts
from generator.charts.common import visible_token
from generator.grids import BlockGrid, PretrainingGrid
from generator.sims import block as sims
from tests.charts.specs import inline_data

FAMILY = PretrainingGrid(n_layers=(1, 2), n_heads=(1, 2), n_embd=16, n_ctx=32, batch_size=4, steps=20,
                         warmup_steps=5, eval_every=10, checkpoints=(0, 20), train_stories=100,
                         heldout_stories=8, prompt="once upon a time , there was")
GRID = BlockGrid(prompt="once upon a time , there was a kind girl named Mia .", n_layer=2, n_head=2)
RES = sims.simulate((GRID, FAMILY))
SPECS = {name: fig.to_dict() for name, fig in charts.figures(RES).items()}  # to_dict validates
FACTS = charts.facts(RES)


def close(a, b, digits):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=0.51 * 10 ** (1 - digits), atol=0)


def test_norm_rows_carry_every_stage_and_position():
    (rows,) = inline_data(SPECS["norms"])
    n_seq = len(RES.tokens)
    assert [(r["stage"], r["position"]) for r in rows] == [(s, i) for s in RES.stages for i in range(n_seq)]
    assert close([r["norm"] for r in rows], RES.norms.ravel(), 4)
    assert [r["token"] for r in rows[:n_seq]] == [visible_token(t) for t in RES.tokens]


def test_logit_lens_rows_carry_guesses_and_next_token_probabilities():
    (rows,) = inline_data(SPECS["logit_lens"])
    n_next = len(RES.tokens) - 1
    assert len(rows) == len(RES.stages) * n_next
    for r in rows:
        s, i = RES.stages.index(r["stage"]), r["position"]
        assert r["next token"] == visible_token(RES.tokens[i + 1])
        assert r["top guess"] == visible_token(RES.top_token[s][i])
        assert close(r["top guess probability"], RES.top_prob[s, i], 4)
        assert close(r["probability of the next token"], RES.next_prob[s, i], 4)


def test_facts_agree_with_the_results():
    assert FACTS["next_prob_final"] == RES.next_prob[-1].mean()
    assert FACTS["norm_growth"] == RES.norms[-1].mean() / RES.norms[0].mean()
    later = RES.stages.index(FACTS["first_full_agreement"])
    assert all(row == RES.top_token[-1] for row in RES.top_token[later:])
    assert later == 0 or RES.top_token[later - 1] != RES.top_token[-1]
