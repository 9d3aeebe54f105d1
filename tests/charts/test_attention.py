"""The attention charts carry the simulation's weights, scores and counts, and their controls
span the model's layers and heads and the three views."""

from __future__ import annotations

import pytest

from generator.charts import attention as charts
from generator.charts.common import visible_token
from generator.grids import AttentionGrid
from generator.sims import attention as sims
from generator.sims.family import WithFamily, model_name
from tests.charts.specs import inline_data, params
from tests.helpers import TINY_FAMILY, close

GRID = AttentionGrid(prompt="Mia was a kind girl who lived near the park . one day , Mia went",
                     n_layer=2, n_head=2, scored_stories=6, seq_lengths=(8, 16, 64, 1000))


@pytest.fixture(scope="module")
def res(shared_memo):
    return sims.simulate(WithFamily(GRID, TINY_FAMILY), shared_memo)


@pytest.fixture(scope="module")
def specs(res):
    return {name: fig.to_dict() for name, fig in charts.figures(res).items()}  # to_dict validates


@pytest.fixture(scope="module")
def facts(res):
    return res.facts


def test_heatmap_rows_carry_every_heads_weights_scores_and_unmasked_weights(specs, res):
    (rows,) = inline_data(specs["heatmap"])
    n_seq = len(res.tokens)
    assert len(rows) == res.n_layer * res.n_head * n_seq
    for r in rows:
        layer, head, q = r["layer"] - 1, r["head"] - 1, r["query"]
        assert r["query token"] == visible_token(res.tokens[q])
        assert r["key"] == list(range(n_seq))
        assert close(r["weight"], res.weights[layer, head, q], charts.DIGITS)
        assert close(r["score"], res.scores[layer, head, q], charts.DIGITS)
        assert close(r["weight without mask"], res.unmasked[layer, head, q], charts.DIGITS)
        assert all(w == 0 for w in r["weight"][q + 1:])  # the mask's zeros stay exact


def test_heatmap_controls_span_layers_heads_and_views(specs):
    p = params(specs["heatmap"])
    assert p["pick_layer"]["bind"]["options"] == [1, 2]
    assert p["pick_head"]["bind"]["options"] == [1, 2]
    assert p["view"]["bind"]["options"] == list(charts.VIEWS)
    assert p["view"]["value"] == charts.VIEWS[0]


def test_axis_labels_are_the_prompts_tokens(res, specs):
    expression = charts.token_expression(res.tokens)
    assert expression.startswith('["\u21b5", "Mia", "was"')
    assert specs["heatmap"]["encoding"]["y"]["axis"]["labelExpr"] == f"{expression}[datum.value]"


def test_head_scores_carry_every_head_and_the_uniform_reference(res, specs):
    rows, uniform = inline_data(specs["head_scores"])[:2]
    h = res.heads
    assert len(rows) == len(h.layer) == 9
    for r, n_l, n_h, l, hd, p, s in zip(rows, h.model_layers, h.model_heads, h.layer, h.head,
                                        h.previous_token, h.induction):
        assert (r["model layers"], r["layer"], r["head"]) == (n_l, l, hd)
        assert r["model"] == model_name(int(n_l), int(n_h))
        assert close(r["previous-token score"], p, 6) and close(r["induction score"], s, 6)
    assert uniform == [{"reference": "uniform attention",
                        "previous-token score": pytest.approx(h.uniform_previous_token, rel=1e-5),
                        "induction score": pytest.approx(h.uniform_induction, rel=1e-5)}]


def test_cost_rows_are_the_exact_flop_counts(res, specs):
    (rows,) = inline_data(specs["cost"])
    c = res.cost
    assert [r["sequence length"] for r in rows] == list(GRID.seq_lengths) * 2
    assert [r["FLOPs per layer"] for r in rows] == c.flops_model.tolist() + c.flops_reference.tolist()


def test_facts_name_the_strongest_weight_and_top_heads(res, facts):
    n_seq = len(res.tokens)
    best = max(((res.weights[l, h, q, k], l, h, q, k) for l in range(2) for h in range(2)
                for q in range(n_seq) for k in range(1, q)))
    assert facts.strongest_weight == best[0]
    assert (facts.strongest_layer, facts.strongest_head, facts.strongest_query, facts.strongest_key) == (
        best[1] + 1, best[2] + 1, best[3], best[4])
    assert facts.strongest_key_token == res.tokens[best[4]]
    assert facts.top_induction == res.heads.induction.max()
    assert facts.masked_weight_total == 0.0
    assert facts.doubling_ratio == 4.0
    assert facts.n_seq == n_seq
