"""The block charts carry the simulation's norms, logit-lens guesses and parameter counts."""

from __future__ import annotations

import pytest

from generator import content_files
from generator.charts.common import visible_token
from generator.grids import BlockGrid
from generator.sims import block as sims
from tests.charts.specs import inline_data
from tests.helpers import CONTENT, chapter_grids, close

GRID = BlockGrid(prompt="once upon a time , there was a kind girl named Mia .", n_layer=2, n_head=2, step_position=5)


@pytest.fixture(scope="module")
def res(shared_memo):
    return sims.simulate(content_files.ledger_inputs(chapter_grids(block=GRID), "block", CONTENT), shared_memo)




def test_norm_rows_carry_every_stage_and_position(specs, res):
    (rows,) = inline_data(specs["norms"])
    n_seq = len(res.tokens)
    assert [(r["stage"], r["position"]) for r in rows] == [(s, i) for s in res.stages for i in range(n_seq)]
    assert close([r["norm"] for r in rows], res.norms.ravel(), 4)
    assert [r["token"] for r in rows[:n_seq]] == [visible_token(t) for t in res.tokens]


def test_logit_lens_rows_carry_guesses_and_next_token_probabilities(specs, res):
    (rows,) = inline_data(specs["logit_lens"])
    n_next = len(res.tokens) - 1
    assert len(rows) == len(res.stages) * n_next
    for r in rows:
        s, i = res.stages.index(r["stage"]), r["position"]
        assert r["next token"] == visible_token(res.tokens[i + 1])
        assert r["top guess"] == visible_token(res.top_token[s][i])
        assert close(r["top guess probability"], res.top_prob[s, i], 4)
        assert close(r["probability of the next token"], res.next_prob[s, i], 4)


def test_facts_agree_with_the_results(facts, res):
    assert facts.next_prob_final == res.next_prob[-1].mean()
    assert facts.norm_growth == res.norms[-1].mean() / res.norms[0].mean()
    later = res.stages.index(facts.first_full_agreement)
    assert all(row == res.top_token[-1] for row in res.top_token[later:])
    assert later == 0 or res.top_token[later - 1] != res.top_token[-1]
