"""Charts of the "Self-attention and the causal mask" chapter: one function per chart."""

from __future__ import annotations

import json

import altair as alt
import numpy as np

from generator.charts.common import sig, visible_token
from generator.sims.attention import AttentionResults

WIDTH = 560
DIGITS = 4  # significant digits of the heatmap's numbers: keeps the page small
VIEWS = ("weights (causal mask)", "scores before softmax", "weights without the mask")
VIEW_FIELDS = ("weight", "score", "weight without mask")


def model_label(n_layer: int, n_head: int) -> str:
    return f"{n_layer} layer{'s' * (n_layer > 1)}, {n_head} head{'s' * (n_head > 1)}"


def token_expression(tokens) -> str:
    """A Vega expression array literal of the tokens, indexed by position in the charts."""
    return json.dumps([visible_token(t) for t in tokens], ensure_ascii=False)


def heatmap_rows(res: AttentionResults) -> list[dict]:
    """One row per (layer, head, query): the keys' weights, scores and unmasked weights as lists."""
    n_seq = len(res.tokens)
    return [
        {"layer": layer + 1, "head": head + 1, "query": q, "query token": visible_token(res.tokens[q]),
         "key": list(range(n_seq)),
         "weight": sig(res.weights[layer, head, q].tolist(), DIGITS),
         "score": sig(res.scores[layer, head, q].tolist(), DIGITS),
         "weight without mask": sig(res.unmasked[layer, head, q].tolist(), DIGITS)}
        for layer in range(res.n_layer) for head in range(res.n_head) for q in range(n_seq)
    ]


def heatmap(res: AttentionResults) -> alt.Chart:
    """Query x key heatmap of one head, chosen by layer and head, in one of three views."""
    tokens = token_expression(res.tokens)
    layer = alt.param(name="pick_layer", value=1, bind=alt.binding_radio(
        options=list(range(1, res.n_layer + 1)), name="layer "))
    head = alt.param(name="pick_head", value=1, bind=alt.binding_radio(
        options=list(range(1, res.n_head + 1)), name="head "))
    view = alt.param(name="view", value=VIEWS[0], bind=alt.binding_radio(options=list(VIEWS), name="show "))
    shown = " : ".join(f"view == '{v}' ? datum['{f}']" for v, f in zip(VIEWS[:-1], VIEW_FIELDS[:-1]))
    axis = {"labelExpr": f"{tokens}[datum.value]", "labelFontSize": 11}
    n_seq = len(res.tokens)
    title = f"Attention in the model with {model_label(res.n_layer, res.n_head)}, on a story"
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


def head_rows(res: AttentionResults) -> list[dict]:
    h = res.heads
    return [
        {"model": model_label(int(n_l), int(n_h)), "model layers": int(n_l), "layer": int(l), "head": int(hd),
         "previous-token score": sig(p), "induction score": sig(s)}
        for n_l, n_h, l, hd, p, s in zip(h.model_layers, h.model_heads, h.layer, h.head,
                                         h.previous_token, h.induction)
    ]


def head_scores(res: AttentionResults) -> alt.LayerChart:
    """Every head of the family: weight on the previous token against the induction target."""
    h = res.heads
    points = alt.Chart(alt.Data(values=head_rows(res))).mark_point(filled=True, size=70, opacity=0.85).encode(
        x=alt.X("previous-token score:Q", title="previous-token score: mean weight on the token before"),
        y=alt.Y("induction score:Q", title="induction score: mean weight on what followed last time"),
        color=alt.Color("model layers:N", legend=alt.Legend(title="layers in the model")),
        shape=alt.Shape("layer:N", legend=alt.Legend(title="the head's layer")),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("layer:O"), alt.Tooltip("head:O"),
                 alt.Tooltip("previous-token score:Q", format=".4f"),
                 alt.Tooltip("induction score:Q", format=".4f")],
    )
    uniform = [{"reference": "uniform attention", "previous-token score": sig(h.uniform_previous_token),
                "induction score": sig(h.uniform_induction)}]
    base = alt.Chart(alt.Data(values=uniform))
    dash = {"strokeDash": [6, 3], "color": "#999999"}
    tooltip = [alt.Tooltip("reference:N"), alt.Tooltip("previous-token score:Q", format=".4f"),
               alt.Tooltip("induction score:Q", format=".4f")]
    return alt.layer(
        points,
        base.mark_rule(**dash).encode(x="previous-token score:Q", tooltip=tooltip),
        base.mark_rule(**dash).encode(y="induction score:Q", tooltip=tooltip),
    ).properties(width=WIDTH, height=320,
                 title="Every head of every model, scored on held-out stories (dashed: uniform attention)")


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
    return {"heatmap": heatmap(res), "head_scores": head_scores(res), "cost": cost(res)}


def facts(res: AttentionResults) -> dict[str, object]:
    h, c = res.heads, res.cost
    top_induction = int(np.argmax(h.induction))
    top_previous = int(np.argmax(h.previous_token))
    lengths = [int(n) for n in c.seq_lengths]
    # The strongest single weight on an earlier token other than the first (END, where heads
    # with nothing to look at park their weight).
    n_seq = len(res.tokens)
    elsewhere = np.tril(np.ones((n_seq, n_seq), dtype=bool), k=-1) & (np.arange(n_seq) > 0)
    layer, head, query, key = np.unravel_index(np.argmax(np.where(elsewhere, res.weights, -1)), res.weights.shape)
    return {
        "strongest_weight": float(res.weights[layer, head, query, key]),
        "strongest_layer": int(layer) + 1,
        "strongest_head": int(head) + 1,
        "strongest_query": int(query),
        "strongest_query_token": res.tokens[query],
        "strongest_key": int(key),
        "strongest_key_token": res.tokens[key],
        "n_seq": len(res.tokens),
        "model": model_label(res.n_layer, res.n_head),
        "n_layer": res.n_layer,
        "n_head": res.n_head,
        "n_embd": res.n_embd,
        "d_head": res.d_head,
        "heldout_loss": res.heldout_loss,
        "future_share_mean": float(res.future_share.mean()),
        "future_share_max": float(res.future_share.max()),
        "masked_weight_total": float(np.triu(res.weights.sum(axis=(0, 1)), k=1).sum()),
        "n_heads_scored": len(h.layer),
        "n_windows": h.n_windows,
        "n_induction_queries": h.n_induction_queries,
        "uniform_induction": h.uniform_induction,
        "uniform_previous": h.uniform_previous_token,
        "top_induction": float(h.induction[top_induction]),
        "top_induction_ratio": float(h.induction[top_induction] / h.uniform_induction),
        "top_induction_model": model_label(int(h.model_layers[top_induction]), int(h.model_heads[top_induction])),
        "top_induction_layer": int(h.layer[top_induction]),
        "top_induction_head": int(h.head[top_induction]),
        "top_previous": float(h.previous_token[top_previous]),
        "top_previous_ratio": float(h.previous_token[top_previous] / h.uniform_previous_token),
        "top_previous_model": model_label(int(h.model_layers[top_previous]), int(h.model_heads[top_previous])),
        "top_previous_layer": int(h.layer[top_previous]),
        "top_previous_head": int(h.head[top_previous]),
        "one_layer_top_induction": float(h.induction[h.model_layers == 1].max()),
        "deeper_top_induction": float(h.induction[h.model_layers > 1].max()) if (h.model_layers > 1).any() else 0.0,
        "reference": c.reference,
        "reference_n_head": c.reference_n_head,
        "reference_d_head": c.reference_d_head,
        "shortest": lengths[0],
        "longest": lengths[-1],
        "flops_model_shortest": int(c.flops_model[0]),
        "flops_reference_shortest": int(c.flops_reference[0]),
        "flops_reference_longest": int(c.flops_reference[-1]),
        "doubling_ratio": c.doubling_ratio,
        "length_ratio": lengths[-1] // lengths[0],
        "flops_ratio": float(c.flops_reference[-1] / c.flops_reference[0]),
    }
