"""The attention charts carry the simulation's weights, scores and counts, and their controls
span the model's layers and heads and the three views."""

from __future__ import annotations

import numpy as np
import pytest

from generator.charts import attention as charts
from generator.charts.common import visible_token
from generator.grids import AttentionGrid
from generator.sims import attention as sims
from generator.sims import probes
from generator.sims.family import WithFamily, model_name
from tests.charts.specs import inline_data, params
from tests.helpers import TINY_FAMILY, close

GRID = AttentionGrid(prompt="Mia was a kind girl who lived near the park . one day , Mia went",
                     n_layer=2, n_head=2, scored_stories=6, seq_lengths=(8, 16, 64, 1000))


@pytest.fixture(scope="module")
def res(shared_memo):
    return sims.simulate(WithFamily(GRID, TINY_FAMILY), shared_memo)




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


def test_head_scores_carry_every_head_its_label_and_the_references(res, specs):
    rows, references = inline_data(specs["head_scores"])[:2]
    h = res.heads
    assert len(rows) == len(h.layer) == 9
    for i, r in enumerate(rows):
        assert (r["model layers"], r["layer"], r["head"]) == (h.model_layers[i], h.layer[i], h.head[i])
        assert r["model"] == model_name(int(h.model_layers[i]), int(h.model_heads[i]))
        assert r["label"] == h.labels[i] == probes.label(h.previous_probe[i], h.repeated_tokens[i],
                                                         h.first_token[i], h.local[i])
        for field, column in charts.SCORE_COLUMNS.items():
            assert close(r[column], getattr(h, field)[i], 6), (i, column)
    uniform, thresholds = references
    assert uniform["reference"] == "uniform attention"
    for field, column in charts.SCORE_COLUMNS.items():
        assert uniform[column] == pytest.approx(h.uniform[field], rel=1e-5)
    assert thresholds == {"reference": "label threshold", "previous-token score": probes.PREVIOUS_MIN,
                          "repeated-tokens score": probes.INDUCTION_MIN, "first-token score": probes.FIRST_MIN,
                          "local score": probes.LOCAL_MIN}


def test_head_scores_plot_the_probe_and_colour_by_every_label(specs):
    points = specs["head_scores"]["layer"][0]["encoding"]
    assert points["x"]["field"] == "previous-token score"
    assert points["y"]["field"] == "repeated-tokens score"
    assert points["color"]["field"] == "label"
    assert points["color"]["scale"]["domain"] == list(probes.LABELS)


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
    next_token = res.tokens[best[3] + 1] if best[3] + 1 < n_seq else ""
    assert facts.strongest_next_token == next_token
    assert facts.top_induction == res.heads.induction.max()
    assert facts.masked_weight_total == 0.0
    assert facts.doubling_ratio == 4.0
    assert facts.n_seq == n_seq


def test_facts_name_the_strongest_probe_head_the_label_counts_and_thresholds(res, facts):
    h = res.heads
    top = int(np.argmax(h.repeated_tokens))
    assert facts.top_repeated == h.repeated_tokens.max()
    assert facts.top_repeated_ratio == pytest.approx(h.repeated_tokens.max() / h.uniform["repeated_tokens"])
    assert (facts.top_repeated_model, facts.top_repeated_layer, facts.top_repeated_head) == (
        model_name(int(h.model_layers[top]), int(h.model_heads[top])), h.layer[top], h.head[top])
    assert (facts.uniform_repeated, facts.uniform_first, facts.uniform_local, facts.uniform_entropy) == (
        h.uniform["repeated_tokens"], h.uniform["first_token"], h.uniform["local"], h.uniform["entropy"])
    assert (facts.top_first, facts.top_local) == (h.first_token.max(), h.local.max())
    assert facts.mean_first == pytest.approx(h.first_token.mean())
    assert facts.mean_entropy == pytest.approx(h.entropy.mean())
    counts = [facts.n_induction_heads, facts.n_previous_token_heads, facts.n_first_token_heads,
              facts.n_local_heads, facts.n_diffuse_heads]
    assert counts == [sum(label == name for label in h.labels) for name in probes.LABELS]
    assert sum(counts) == facts.n_heads_scored == len(h.layer)
    assert facts.any_induction_head == ("induction" in h.labels)
    assert facts.any_previous_token_head == ("previous-token" in h.labels)
    assert (facts.induction_min, facts.previous_min, facts.first_min, facts.local_min, facts.local_window) == (
        probes.INDUCTION_MIN, probes.PREVIOUS_MIN, probes.FIRST_MIN, probes.LOCAL_MIN, probes.LOCAL_WINDOW)
    assert (facts.probe_half, facts.probe_length) == (h.probe_half, 1 + 2 * h.probe_half)


def test_heatmap_opens_on_the_shown_models_strongest_induction_head(res, specs):
    p = params(specs["heatmap"])
    h = res.heads
    shown = np.flatnonzero((h.model_layers == res.n_layer) & (h.model_heads == res.n_head))
    best = shown[np.argmax(h.repeated_tokens[shown])]
    assert (p["pick_layer"]["value"], p["pick_head"]["value"]) == (h.layer[best], h.head[best])


def test_formation_rows_are_each_checkpoints_strongest_heads_and_losses(res, specs, shared_memo):
    rows = [{"model": r["model"], "step": r["step"], "measure": k, "value": v}
            for r in next(d for d in inline_data(specs["formation"]) if d and "step" in d[0])
            for k, v in r.items() if k not in ("model", "step")]
    models = {(m.config.n_layer, m.config.n_head): m for m in
              sims.load_models(TINY_FAMILY, shared_memo)}
    names = {model_name(*k): m for k, m in models.items()}
    assert {r["model"] for r in rows} == set(names)
    for r in rows:
        m = names[r["model"]]
        i = list(m.config.checkpoints).index(r["step"])
        heads = m.checkpoint_heads[i]
        expected = {
            "induction: repeated sounds probe": heads.repeated_tokens.max(),
            "induction: repeated tokens of any kind": heads.repeated_any.max(),
            "previous-token: repeated sounds probe": heads.previous_probe.max(),
            "induction score on held-out text": heads.induction.max(),
            "held-out loss": m.checkpoint_loss[i], "in-context learning score": m.checkpoint_icl[i],
        }[r["measure"]]
        assert close(r["value"], expected, 4)
    assert len(rows) == 4 * len(TINY_FAMILY.checkpoints) * 6
    assert params(specs["formation"])["formation_model"]["bind"]["options"] == [
        model_name(f.n_layer, f.n_head) for f in res.formations]
    assert params(specs["formation"])["formation_model"]["value"] == model_name(GRID.n_layer, GRID.n_head)
