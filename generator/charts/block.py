"""Charts of the "Inside a transformer block" chapter: one function per chart."""

from __future__ import annotations

import altair as alt

from generator.charts.common import OKABE_ITO, WIDTH, sig, token_expression, visible_token
from generator.sims.family import model_name
from generator.sims.block import COMPONENTS, BlockResults



def position_axis(res: BlockResults, title: str) -> alt.X:
    return alt.X("position:O", title=title, axis=alt.Axis(
        labelExpr=f"{token_expression(res.tokens)}[datum.value]", labelAngle=-50, labelFontSize=11))


def stage_axis(res: BlockResults) -> alt.Y:
    return alt.Y("stage:N", sort=list(res.stages), title="residual stream after")


def norm_rows(res: BlockResults) -> list[dict]:
    return [{"stage": stage, "position": i, "token": visible_token(res.tokens[i]), "norm": sig(res.norms[s, i], 4)}
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
             "top guess": visible_token(res.top_token[s][i]), "top guess probability": sig(res.top_prob[s, i], 4),
             "probability of the next token": sig(res.next_prob[s, i], 4)}
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
        color=alt.condition("datum['probability of the next token'] > 0.5", alt.value("black"), alt.value("white")))
    return alt.layer(cells, text).properties(width=WIDTH + 120, height=30 * len(res.stages),
                                             title="Logit lens: the model's guess if it stopped after each sub-layer")


def param_rows(res: BlockResults) -> list[dict]:
    return [{"model": p.name, "component": component, "parameters": int(count)}
            for p in res.params for component, count in zip(COMPONENTS, p.counts)]


def params(res: BlockResults) -> alt.Chart:
    """Each model's parameters split by component, as shares of its total; exact counts on hover."""
    return alt.Chart(alt.Data(values=param_rows(res))).transform_joinaggregate(
        total="sum(parameters)", groupby=["model"]
    ).transform_calculate(share="datum.parameters / datum.total").mark_bar().encode(
        y=alt.Y("model:N", sort=[p.name for p in res.params], title=None),
        x=alt.X("parameters:Q", stack="normalize", title="share of the model's parameters",
                axis=alt.Axis(format="%")),
        color=alt.Color("component:N", sort=list(COMPONENTS), scale=alt.Scale(range=OKABE_ITO[:4]),
                        legend=alt.Legend(title=None, orient="bottom")),
        order=alt.Order("_order:Q"),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("component:N"), alt.Tooltip("parameters:Q", format=","),
                 alt.Tooltip("total:Q", format=",", title="model total"), alt.Tooltip("share:Q", format=".2%")],
    ).transform_calculate(_order=f"indexof({list(COMPONENTS)}, datum.component)").properties(
        width=WIDTH, height=40 * len(res.params), title="Where the parameters are")


def figures(res: BlockResults) -> dict[str, alt.TopLevelMixin]:
    return {"norms": norms(res), "logit_lens": logit_lens(res), "params": params(res)}
