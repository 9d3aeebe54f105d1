"""The attention charts carry the simulation's weights, scores and counts, and their controls
span the model's layers and heads and the three views."""

from __future__ import annotations

import numpy as np
import pytest

from generator.charts import attention as charts
from generator.charts.common import visible_token
from generator.grids import AttentionGrid, PretrainingGrid
from generator.sims import attention as sims
from tests.charts.specs import inline_data, params

FAMILY = PretrainingGrid(n_layers=(1, 2), n_heads=(1, 2), n_embd=16, n_ctx=32, batch_size=4, steps=20,
                         warmup_steps=5, eval_every=10, checkpoints=(0, 20), train_stories=100,
                         heldout_stories=8, prompt="once upon a time , there was")
GRID = AttentionGrid(prompt="Mia was a kind girl who lived near the park . one day , Mia went",
                     n_layer=2, n_head=2, scored_stories=6, seq_lengths=(8, 16, 64, 1000))
RES = sims.simulate((GRID, FAMILY))
SPECS = {name: fig.to_dict() for name, fig in charts.figures(RES).items()}  # to_dict validates
FACTS = charts.facts(RES)


def close(a, b, digits=6):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=0.51 * 10 ** (1 - digits), atol=0)


def test_heatmap_rows_carry_every_heads_weights_scores_and_unmasked_weights():
    (rows,) = inline_data(SPECS["heatmap"])
    n_seq = len(RES.tokens)
    assert len(rows) == RES.n_layer * RES.n_head * n_seq
    for r in rows:
        layer, head, q = r["layer"] - 1, r["head"] - 1, r["query"]
        assert r["query token"] == visible_token(RES.tokens[q])
        assert r["key"] == list(range(n_seq))
        assert close(r["weight"], RES.weights[layer, head, q], charts.DIGITS)
        assert close(r["score"], RES.scores[layer, head, q], charts.DIGITS)
        assert close(r["weight without mask"], RES.unmasked[layer, head, q], charts.DIGITS)
        assert all(w == 0 for w in r["weight"][q + 1:])  # the mask's zeros stay exact


def test_heatmap_controls_span_layers_heads_and_views():
    p = params(SPECS["heatmap"])
    assert p["pick_layer"]["bind"]["options"] == [1, 2]
    assert p["pick_head"]["bind"]["options"] == [1, 2]
    assert p["view"]["bind"]["options"] == list(charts.VIEWS)
    assert p["view"]["value"] == charts.VIEWS[0]


def test_axis_labels_are_the_prompts_tokens():
    expression = charts.token_expression(RES.tokens)
    assert expression.startswith('["\u21b5", "Mia", "was"')
    assert SPECS["heatmap"]["encoding"]["y"]["axis"]["labelExpr"] == f"{expression}[datum.value]"


def test_head_scores_carry_every_head_and_the_uniform_reference():
    rows, uniform = inline_data(SPECS["head_scores"])[:2]
    h = RES.heads
    assert len(rows) == len(h.layer) == 9
    for r, n_l, n_h, l, hd, p, s in zip(rows, h.model_layers, h.model_heads, h.layer, h.head,
                                        h.previous_token, h.induction):
        assert (r["model layers"], r["layer"], r["head"]) == (n_l, l, hd)
        assert r["model"] == charts.model_label(int(n_l), int(n_h))
        assert close(r["previous-token score"], p) and close(r["induction score"], s)
    assert uniform == [{"reference": "uniform attention",
                        "previous-token score": pytest.approx(h.uniform_previous_token, rel=1e-5),
                        "induction score": pytest.approx(h.uniform_induction, rel=1e-5)}]


def test_cost_rows_are_the_exact_flop_counts():
    (rows,) = inline_data(SPECS["cost"])
    c = RES.cost
    assert [r["sequence length"] for r in rows] == list(GRID.seq_lengths) * 2
    assert [r["FLOPs per layer"] for r in rows] == c.flops_model.tolist() + c.flops_reference.tolist()


def test_facts_name_the_strongest_weight_and_top_heads():
    n_seq = len(RES.tokens)
    best = max(((RES.weights[l, h, q, k], l, h, q, k) for l in range(2) for h in range(2)
                for q in range(n_seq) for k in range(1, q)))
    assert FACTS["strongest_weight"] == best[0]
    assert (FACTS["strongest_layer"], FACTS["strongest_head"], FACTS["strongest_query"], FACTS["strongest_key"]) == (
        best[1] + 1, best[2] + 1, best[3], best[4])
    assert FACTS["strongest_key_token"] == RES.tokens[best[4]]
    assert FACTS["top_induction"] == RES.heads.induction.max()
    assert FACTS["masked_weight_total"] == 0.0
    assert FACTS["doubling_ratio"] == 4.0
    assert FACTS["n_seq"] == n_seq
