"""Charts of the "Inside a transformer block" chapter: one function per chart."""

from __future__ import annotations

import json

import altair as alt

from generator.charts.common import OKABE_ITO, WIDTH, significant, text_on_viridis, token_expression, visible_token
from generator.sims.family import model_name
from generator.sims.block import FLOP_PARTS, PARTS, BlockResults



def position_axis(res: BlockResults, title: str) -> alt.X:
    return alt.X("position:O", title=title, axis=alt.Axis(
        labelExpr=f"{token_expression(res.tokens)}[datum.value]", labelAngle=-50, labelFontSize=11))


def stage_axis(res: BlockResults) -> alt.Y:
    return alt.Y("stage:N", sort=list(res.stages), title="residual stream after")


def norm_rows(res: BlockResults) -> list[dict]:
    return [{"stage": stage, "position": i, "token": visible_token(res.tokens[i]), "norm": significant(res.norms[s, i], 4)}
            for s, stage in enumerate(res.stages) for i in range(len(res.tokens))]


def norms(res: BlockResults) -> alt.Chart:
    """Length of the residual stream at every position after the embeddings and each sub-layer."""
    return alt.Chart(alt.Data(values=norm_rows(res))).mark_rect().encode(
        x=position_axis(res, "position in the story"),
        y=stage_axis(res),
        color=alt.Color("norm:Q", scale=alt.Scale(scheme="viridis"), legend=alt.Legend(title="length (L2 norm)")),
        tooltip=[alt.Tooltip("stage:N"), alt.Tooltip("position:O"), alt.Tooltip("token:N"),
                 alt.Tooltip("norm:Q", format=".4g")],
    ).properties(width=WIDTH, height=22 * len(res.stages),
                 title=f"The residual stream's length in the model with {model_name(res.n_layer, res.n_head)}")


def lens_rows(res: BlockResults) -> list[dict]:
    """One row per (stage, position) that has a next token in the prompt."""
    return [{"stage": stage, "position": i, "token": visible_token(res.tokens[i]),
             "next token": visible_token(res.tokens[i + 1]),
             "top guess": visible_token(res.top_token[s][i]), "top guess probability": significant(res.top_prob[s, i], 4),
             "probability of the next token": significant(res.next_prob[s, i], 4)}
            for s, stage in enumerate(res.stages) for i in range(len(res.tokens) - 1)]


def logit_lens(res: BlockResults) -> alt.LayerChart:
    """Probability of the true next token if the stream were unembedded at each stage, top guess as text."""
    base = alt.Chart(alt.Data(values=lens_rows(res))).encode(
        x=position_axis(res, "position in the story (the token read)"),
        y=stage_axis(res),
        tooltip=[alt.Tooltip("stage:N"), alt.Tooltip("token:N", title="token read"),
                 alt.Tooltip("next token:N", title="token that comes next"), alt.Tooltip("top guess:N"),
                 alt.Tooltip("top guess probability:Q", format=".4f"),
                 alt.Tooltip("probability of the next token:Q", format=".4f")],
    )
    cells = base.mark_rect().encode(color=alt.Color(
        "probability of the next token:Q", scale=alt.Scale(scheme="viridis", domain=[0, 1]),
        legend=alt.Legend(title="P(next token)")))
    text = base.mark_text(fontSize=9, angle=310).encode(
        text="top guess:N",
        color=text_on_viridis("probability of the next token"))
    return alt.layer(cells, text).properties(width=WIDTH + 120, height=30 * len(res.stages),
                                             title="Logit lens: the model's guess if it stopped after each sub-layer")


def step_rows(res: BlockResults) -> list[dict]:
    """One row per number of every stage of the step-through."""
    st = res.step
    return [{"stage": k + 1, "index": i, "value": significant(v, 4),
             "head": f"head {h + 1}" if h >= 0 else "all",
             **({"token": visible_token(res.tokens[p])} if p >= 0 else {})}
            for k, stage in enumerate(st.stages)
            for i, (v, h, p) in enumerate(zip(stage.values, stage.heads, stage.positions))]


def step_through(res: BlockResults) -> alt.LayerChart:
    """The token's numbers at the stage the slider picks, one bar per number, coloured by head."""
    st = res.step
    names = json.dumps([f"{k + 1}. {s.name} ({s.size} numbers" + (")" if len(s.values) == s.size else
                                                                  f", the first {len(s.values)} shown)")
                        for k, s in enumerate(st.stages)],
                       ensure_ascii=False)
    stage = alt.param(name="stage", value=1, bind=alt.binding_range(
        min=1, max=len(st.stages), step=1, name="stage "))
    heads = ["all", *(f"head {h + 1}" for h in range(st.n_head))]
    base = alt.Chart(alt.Data(values=step_rows(res))).transform_filter("datum.stage == stage")
    bars = base.mark_bar().encode(
        x=alt.X("index:O", title="number (dimension, or head \u00d7 position for scores and weights)",
                axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("value:Q", title="value"),
        color=alt.Color("head:N", sort=heads, scale=alt.Scale(domain=heads, range=["#999999", *OKABE_ITO]),
                        legend=alt.Legend(title=None, orient="right")),
        tooltip=[alt.Tooltip("stage:O"), alt.Tooltip("index:O"), alt.Tooltip("head:N"),
                 alt.Tooltip("token:N", title="position attended to"), alt.Tooltip("value:Q", format=".4g")])
    label = alt.Chart(alt.Data(values=[{}])).mark_text(align="left", x=0, y=-12, fontSize=13).encode(
        text=alt.value("")).transform_calculate(name=f"{names}[stage - 1]").encode(text="name:N")
    return alt.layer(bars, label).add_params(stage).properties(
        width=WIDTH, height=220,
        title=f"One token (\u201c{visible_token(st.token)}\u201d, position {st.position}) through block {st.layer}")


def modernising(res: BlockResults) -> alt.LayerChart:
    """Parameters after each change from GPT-2's block to the model's own, with the change."""
    mod = res.modernising
    rows = [{"step": f"{k}. {label}" if k else label, "parameters": int(n),
             "change": int(n - mod.n_params[k - 1]) if k else 0,
             "KV bytes per token": int(mod.kv_bytes_per_token[k])}
            for k, (label, n) in enumerate(zip(mod.steps, mod.n_params))]
    order = [r["step"] for r in rows]
    base = alt.Chart(alt.Data(values=rows)).encode(
        y=alt.Y("step:N", sort=order, title=None, axis=alt.Axis(labelLimit=300)),
        tooltip=[alt.Tooltip("step:N"), alt.Tooltip("parameters:Q", format=","),
                 alt.Tooltip("change:Q", format="+,"), alt.Tooltip("KV bytes per token:Q", format=",")])
    bars = base.mark_bar(color=OKABE_ITO[0]).encode(
        x=alt.X("parameters:Q", title="parameters", axis=alt.Axis(format="~s")))
    text = base.mark_text(align="left", dx=4).encode(
        x="parameters:Q", text=alt.Text("label:N")).transform_calculate(
        label="format(datum.parameters, ',') + (datum.change ? ' (' + format(datum.change, '+,') + ')' : '')")
    return alt.layer(bars, text).properties(
        width=WIDTH - 260, height=30 * len(rows),
        title=f"From GPT-2's block to {mod.model}'s, at {mod.model}'s sizes")


def depth(res: BlockResults) -> alt.VConcatChart:
    """Each model's parameters and one token's FLOPs, split by where they are, as shares."""
    dep = res.depth
    names = list(dep.names)
    p_rows = [{"model": name, "part": part, "parameters": int(dep.params[i, j]),
               "layers": int(dep.n_layer[i])}
              for i, name in enumerate(names) for j, part in enumerate(PARTS)]
    f_rows = [{"model": name, "part": part, "FLOPs": significant(dep.flops[i, j], 6),
               "context": int(dep.tokens[i])}
              for i, name in enumerate(names) for j, part in enumerate(FLOP_PARTS)]

    def panel(rows, field, parts, title):
        order = f"indexof({json.dumps(list(parts))}, datum.part)"
        return alt.Chart(alt.Data(values=rows)).transform_joinaggregate(
            total=f"sum({field})", groupby=["model"]).transform_calculate(
            share=f"datum['{field}'] / datum.total", _order=order).mark_bar().encode(
            y=alt.Y("model:N", sort=names, title=None),
            x=alt.X(f"{field}:Q", stack="normalize", title=f"share of {title}", axis=alt.Axis(format="%")),
            color=alt.Color("part:N", sort=list(parts), scale=alt.Scale(range=OKABE_ITO[:len(parts)]),
                            legend=alt.Legend(title=None, orient="bottom", columns=3)),
            order=alt.Order("_order:Q"),
            tooltip=[alt.Tooltip("model:N"), alt.Tooltip("part:N"), alt.Tooltip(f"{field}:Q", format=","),
                     alt.Tooltip("share:Q", format=".2%")],
        ).properties(width=WIDTH - 120, height=20 * len(names), title=f"Where the {title} are")

    return alt.vconcat(panel(p_rows, "parameters", PARTS, "parameters"),
                       panel(f_rows, "FLOPs", FLOP_PARTS, "FLOPs of one generated token")).resolve_scale(
        color="independent")


def figures(res: BlockResults) -> dict[str, alt.TopLevelMixin]:
    return {"norms": norms(res), "logit_lens": logit_lens(res), "step": step_through(res),
            "modernising": modernising(res), "depth": depth(res)}
