"""Charts of the "Self-attention and the causal mask" chapter: one function per chart."""

from __future__ import annotations

import altair as alt

from generator.charts.common import WIDTH, significant, token_expression, visible_token
from generator.sims.family import model_name
from generator.sims.attention import AttentionResults
from generator.sims.probes import LABELS

DIGITS = 3  # significant digits of the heatmap's numbers: keeps the page small
VIEWS = ("weights (causal mask)", "scores before softmax", "weights without the mask")
VIEW_FIELDS = ("weight", "score", "weight without mask")


def heatmap_rows(res: AttentionResults) -> list[dict]:
    """One row per (layer, head, query): the keys' weights, scores and unmasked weights as lists."""
    n_seq = len(res.tokens)
    return [
        {"layer": layer + 1, "head": head + 1, "query": q, "query token": visible_token(res.tokens[q]),
         "key": list(range(n_seq)),
         "weight": significant(res.weights[layer, head, q].tolist(), DIGITS),
         "score": significant(res.scores[layer, head, q].tolist(), DIGITS),
         "weight without mask": significant(res.unmasked[layer, head, q].tolist(), DIGITS)}
        for layer in range(res.n_layer) for head in range(res.n_head) for q in range(n_seq)
    ]


def heatmap(res: AttentionResults) -> alt.Chart:
    """Query x key heatmap of one head, chosen by layer and head, in one of three views."""
    tokens = token_expression(res.tokens)
    # It opens on the shown model's strongest induction head.
    layer = alt.param(name="pick_layer", value=res.facts.open_layer, bind=alt.binding_radio(
        options=list(range(1, res.n_layer + 1)), name="layer "))
    head = alt.param(name="pick_head", value=res.facts.open_head, bind=alt.binding_radio(
        options=list(range(1, res.n_head + 1)), name="head "))
    view = alt.param(name="view", value=VIEWS[0], bind=alt.binding_radio(options=list(VIEWS), name="show "))
    shown = " : ".join(f"view == '{v}' ? datum['{f}']" for v, f in zip(VIEWS[:-1], VIEW_FIELDS[:-1]))
    axis = {"labelExpr": f"{tokens}[datum.value]", "labelFontSize": 11}
    n_seq = len(res.tokens)
    title = f"Attention in the model with {model_name(res.n_layer, res.n_head)}, on the prompt"
    return alt.Chart(alt.Data(values=heatmap_rows(res)), title=title).transform_filter(
        "datum.layer == pick_layer && datum.head == pick_head"
    ).transform_flatten(["key", "weight", "score", "weight without mask"]).transform_calculate(
        **{"key token": f"{tokens}[datum.key]",
           "masked": "datum.key > datum.query ? 'yes: a later token' : 'no'",
           "shown": f"{shown} : datum['{VIEW_FIELDS[-1]}']"}
    ).mark_rect().encode(
        x=alt.X("key:O", title="key: the token looked at", axis=alt.Axis(**axis, labelAngle=-50)),
        y=alt.Y("query:O", title="query: the token looking", axis=alt.Axis(**axis, labelAngle=0)),
        color=alt.Color("shown:Q", scale=alt.Scale(scheme="viridis"),
                        legend=alt.Legend(title="value shown", orient="right")),
        opacity=alt.condition("view == 'scores before softmax' && datum.key > datum.query",
                              alt.value(0.35), alt.value(1.0)),
        tooltip=[alt.Tooltip("query token:N"), alt.Tooltip("query:O", title="query position"),
                 alt.Tooltip("key token:N"), alt.Tooltip("key:O", title="key position"),
                 alt.Tooltip("masked:N", title="hidden by the mask"),
                 alt.Tooltip("weight:Q", format=".4g"), alt.Tooltip("score:Q", format=".4g"),
                 alt.Tooltip("weight without mask:Q", format=".4g")],
    ).add_params(layer, head, view).properties(width=WIDTH, height=int(WIDTH * 0.8) if n_seq > 8 else 240)


SCORE_COLUMNS = {  # HeadScores field -> column of the chart's data
    "previous_probe": "previous-token score", "previous_token": "previous-token score, held-out text",
    "induction": "induction score",
    "repeated_tokens": "repeated-tokens score", "repeated_any": "repeated-tokens score, any tokens",
    "first_token": "first-token score",
    "local": "local score", "entropy": "entropy (bits)"}


def head_rows(res: AttentionResults) -> list[dict]:
    """One row per head of the family: its label and every probe score."""
    h = res.heads
    return [
        {"model": model_name(int(h.model_layers[i]), int(h.model_heads[i])), "model layers": int(h.model_layers[i]),
         "layer": int(h.layer[i]), "head": int(h.head[i]), "label": h.labels[i],
         **{column: significant(getattr(h, field)[i]) for field, column in SCORE_COLUMNS.items()}}
        for i in range(len(h.layer))
    ]


def reference_rows(res: AttentionResults) -> list[dict]:
    """Uniform attention's scores, and the thresholds a head's scores must reach for a label."""
    f = res.facts
    return [
        {"reference": "uniform attention",
         **{column: significant(res.heads.uniform[field]) for field, column in SCORE_COLUMNS.items()}},
        {"reference": "label threshold", "previous-token score": f.previous_min,
         "repeated-tokens score": f.induction_min, "first-token score": f.first_min, "local score": f.local_min},
    ]


def head_scores(res: AttentionResults) -> alt.LayerChart:
    """Every head of the family on the repeated-tokens probe: weight on the previous token
    against weight on the token after the first copy, coloured by the head's label."""
    x, y = "previous-token score", "repeated-tokens score"
    points = alt.Chart(alt.Data(values=head_rows(res))).mark_point(filled=True, size=70, opacity=0.85).encode(
        x=alt.X(f"{x}:Q", title="probe: mean weight on the token before"),
        y=alt.Y(f"{y}:Q", title="probe: weight on the token after the first copy"),
        color=alt.Color("label:N", scale=alt.Scale(domain=list(LABELS)), legend=alt.Legend(title="label")),
        shape=alt.Shape("model layers:N", legend=alt.Legend(title="layers in the model")),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("layer:O"), alt.Tooltip("head:O"), alt.Tooltip("label:N"),
                 *(alt.Tooltip(f"{column}:Q", format=".4f") for column in SCORE_COLUMNS.values())],
    )
    base = alt.Chart(alt.Data(values=reference_rows(res)))
    dash = alt.StrokeDash("reference:N", scale=alt.Scale(domain=["uniform attention", "label threshold"],
                                                         range=[[6, 3], [1, 0]]),
                          legend=alt.Legend(title="lines"))
    tooltip = [alt.Tooltip("reference:N"), alt.Tooltip(f"{x}:Q", format=".4f"), alt.Tooltip(f"{y}:Q", format=".4f")]
    return alt.layer(
        points,
        base.mark_rule(color="#999999").encode(x=f"{x}:Q", strokeDash=dash, tooltip=tooltip),
        base.mark_rule(color="#999999").encode(y=f"{y}:Q", strokeDash=dash, tooltip=tooltip),
    ).properties(width=WIDTH, height=320,
                 title="Every head of every model, probed (dashed: uniform attention; solid: label thresholds)")


FORMATION_SCORES = {  # Formation field -> series of the scores panel
    "top_repeated": "induction: repeated sounds probe", "top_previous": "previous-token: repeated sounds probe",
    "top_induction": "induction score on held-out text", "top_repeated_any": "induction: repeated tokens of any kind"}
FORMATION_BITS = {"loss": "held-out loss", "icl": "in-context learning score"}


def formation_rows(res: AttentionResults) -> list[dict]:
    """One row per (model, checkpoint): the strongest head's scores and the losses in bits."""
    return [
        {"model": model_name(f.n_layer, f.n_head), "step": int(step),
         **{label: significant(getattr(f, field)[i], 4) for field, label in {**FORMATION_SCORES, **FORMATION_BITS}.items()}}
        for f in res.formations for i, step in enumerate(f.steps)
    ]


def formation(res: AttentionResults) -> alt.VConcatChart:
    """Along training, for one model at a time: the strongest head's induction and
    previous-token scores, and the held-out loss and in-context-learning score."""
    names = [model_name(f.n_layer, f.n_head) for f in res.formations]
    pick = alt.param(name="formation_model", value=model_name(res.n_layer, res.n_head),
                     bind=alt.binding_radio(options=names, name="model "))
    base = alt.Chart(alt.Data(values=formation_rows(res))).transform_filter("datum.model == formation_model")
    x = alt.X("step:Q", title="training step")
    tooltip = [alt.Tooltip("model:N"), alt.Tooltip("step:Q", format=","), alt.Tooltip("measure:N"),
               alt.Tooltip("value:Q", format=".4f")]
    scores = base.transform_fold(list(FORMATION_SCORES.values()), as_=["measure", "value"]).mark_line(point=True).encode(
        x=x, y=alt.Y("value:Q", title="strongest head's score", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("measure:N", scale=alt.Scale(domain=list(FORMATION_SCORES.values())),
                        legend=alt.Legend(title=None, orient="bottom", columns=2)),
        tooltip=tooltip,
    ).properties(width=WIDTH, height=220, title="An induction head forming: the strongest head's scores at each checkpoint")
    rule = alt.Chart(alt.Data(values=[{"threshold": res.facts.induction_min}])).mark_rule(
        color="#999999", strokeDash=[6, 3]).encode(y="threshold:Q", tooltip=[alt.Tooltip("threshold:Q", title="induction threshold")])
    bits = base.transform_fold(list(FORMATION_BITS.values()), as_=["measure", "value"]).mark_line(point=True).encode(
        x=x, y=alt.Y("value:Q", title="bits per token"),
        color=alt.Color("measure:N", scale=alt.Scale(domain=list(FORMATION_BITS.values()), range=["#D55E00", "#56B4E9"]),
                        legend=alt.Legend(title=None, orient="bottom")),
        tooltip=tooltip,
    ).properties(width=WIDTH, height=180, title="Held-out loss, and loss late in the context minus early")
    return alt.vconcat(alt.layer(scores, rule), bits).resolve_scale(color="independent").add_params(pick)


def cost_rows(res: AttentionResults) -> list[dict]:
    c = res.cost
    named = ((f"this chapter's model (d = {res.n_embd})", c.flops_model),
             (f"{c.reference} (d = {c.reference_n_head * c.reference_d_head})", c.flops_reference))
    return [{"model": name, "sequence length": int(n), "FLOPs per layer": int(f)}
            for name, flops in named for n, f in zip(c.seq_lengths, flops)]


def cost(res: AttentionResults) -> alt.Chart:
    """FLOPs of Q K^T and W V per layer against sequence length, both axes logarithmic."""
    return alt.Chart(alt.Data(values=cost_rows(res))).mark_line(point=True).encode(
        x=alt.X("sequence length:Q", scale=alt.Scale(type="log", base=2), title="sequence length n (log scale)"),
        y=alt.Y("FLOPs per layer:Q", scale=alt.Scale(type="log"), title="attention FLOPs per layer (log scale)",
                axis=alt.Axis(format="~s")),
        color=alt.Color("model:N", legend=alt.Legend(title=None, orient="top-left")),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("sequence length:Q", format=","),
                 alt.Tooltip("FLOPs per layer:Q", format=",")],
    ).properties(width=WIDTH, height=300, title="Attention's FLOPs per layer: 4 n\u00b2 d (Q K\u1d40 and W V)")


def figures(res: AttentionResults) -> dict[str, alt.TopLevelMixin]:
    return {"heatmap": heatmap(res), "head_scores": head_scores(res), "formation": formation(res),
            "cost": cost(res)}
