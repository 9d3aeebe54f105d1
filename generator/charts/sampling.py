"""Charts of the "Logits to sampling" chapter: one function per chart, results in, alt.Chart out."""

from __future__ import annotations

import altair as alt
import numpy as np

from generator.charts.common import OKABE_ITO, WIDTH, grid_slider, long_table, nearest, significant, visible_token
from generator.sims.sampling import SamplingResults, TruncationResult

KEPT, DROPPED = "#0072B2", "#999999"

OTHERS = "(all others)"  # the bar for every token not shown


def temperature(res: SamplingResults) -> alt.VConcatChart:
    """Probabilities of the candidates at the slider's temperature, over entropy against T."""
    tokens = [visible_token(t) for t in res.tokens]
    slider = grid_slider("T", res.temperatures, "temperature T ", step=0.01)
    rows = long_table(
        res.probs, res.temperatures, tokens, "temperature", "token", "probability",
        extra={"logit": np.broadcast_to(res.logits, res.probs.shape)},
    )
    bars = nearest(
        alt.Chart(alt.Data(values=rows), title=f"Next token after \u201c{res.prompt}\u201d"),
        slider, "temperature", log=True,
    ).mark_bar().encode(
        x=alt.X("token:N", sort=tokens, title="candidate token (illustrative logits)"),
        y=alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1]), title="probability"),
        color=alt.value(KEPT),
        tooltip=[
            alt.Tooltip("token:N"), alt.Tooltip("logit:Q", format=".3f"),
            alt.Tooltip("temperature:Q", format="g"), alt.Tooltip("probability:Q", format=".6g"),
        ],
    ).add_params(slider).properties(width=WIDTH, height=220)

    summary = [
        {"temperature": significant(t), "entropy (bits)": significant(h), "effective choices": significant(2.0 ** h)}
        for t, h in zip(res.temperatures, res.entropy)
    ]
    base = alt.Chart(alt.Data(values=summary))
    x = alt.X("temperature:Q", title="temperature T (log scale)",
              scale=alt.Scale(type="log", domain=[significant(res.temperatures.min()), significant(res.temperatures.max())], nice=False))
    panels = []
    for field, limit in (("entropy (bits)", np.log2(len(tokens))), ("effective choices", len(tokens))):
        curve = base.mark_line(point=True).encode(
            x=x, y=alt.Y(f"{field}:Q", scale=alt.Scale(domain=[0, significant(limit, 4)])),
            tooltip=[alt.Tooltip("temperature:Q", format="g"), alt.Tooltip(f"{field}:Q", format=".4f")],
        )
        marker = nearest(base, slider, "temperature", log=True).mark_rule(
            color="#D55E00", strokeWidth=2).encode(x=x)
        panels.append(alt.layer(curve, marker).properties(width=WIDTH // 2 - 30, height=160))
    return alt.vconcat(bars, alt.hconcat(*panels))


def truncation(res: SamplingResults, which: str, label: str, step: float, start: float) -> alt.LayerChart:
    """One sampler (top-k, top-p or min-p) at the slider's setting: survivors, renormalised."""
    result: TruncationResult = getattr(res, which)
    tokens = [visible_token(t) for t in res.tokens]
    slider = grid_slider(which, result.values, f"{label} ", step=step, start=start)
    rows = long_table(
        result.probs, result.values, tokens, label, "token", "probability after",
        extra={"probability before": np.broadcast_to(res.base_probs, result.probs.shape),
               "kept": result.keep},
    )
    base = nearest(alt.Chart(alt.Data(values=rows)), slider, label)
    x = alt.X("token:N", sort=tokens, title="candidate token")
    tooltip = [alt.Tooltip("token:N"), alt.Tooltip(f"{label}:Q", format="g"),
               alt.Tooltip("kept:N"), alt.Tooltip("probability before:Q", format=".6g"),
               alt.Tooltip("probability after:Q", format=".6g")]
    before = base.mark_bar(color=DROPPED, opacity=0.45).encode(
        x=x, y=alt.Y("probability before:Q", title="probability"), tooltip=tooltip)
    after = base.mark_bar(width={"band": 0.5}).encode(
        x=x, y=alt.Y("probability after:Q"),
        color=alt.Color("kept:N", scale=alt.Scale(domain=[True, False], range=[KEPT, DROPPED]),
                        legend=alt.Legend(title="survives")),
        tooltip=tooltip,
    )
    return alt.layer(before, after).add_params(slider).properties(
        width=WIDTH, height=220,
        title=f"{label} at T = {res.sampler_temperature:g}: grey = before, blue = renormalised",
    )


def samples(res: SamplingResults) -> alt.Chart:
    """Observed frequencies from N seeded draws beside the exact distribution."""
    tokens = [visible_token(t) for t in res.tokens]
    sizes = [int(n) for n in res.sample_sizes]
    pick = alt.param(name="N", value=sizes[-1] if len(sizes) == 1 else sizes[1],
                     bind=alt.binding_radio(options=sizes, name="draws N "))
    rows = []
    for n, counts in zip(sizes, res.counts):
        for token, count, p in zip(tokens, counts, res.base_probs):
            rows.append({"N": n, "token": token, "source": "exact", "probability": significant(p), "count": None})
            rows.append({"N": n, "token": token, "source": "sampled", "probability": significant(count / n),
                         "count": int(count)})
    return alt.Chart(alt.Data(values=rows)).transform_filter(
        "datum.N == N"
    ).mark_bar().encode(
        x=alt.X("token:N", sort=tokens, title="candidate token"),
        xOffset=alt.XOffset("source:N", sort=["exact", "sampled"]),
        y=alt.Y("probability:Q", title="probability / observed frequency"),
        color=alt.Color("source:N", sort=["exact", "sampled"], legend=alt.Legend(title=None)),
        tooltip=[alt.Tooltip("token:N"), alt.Tooltip("source:N"), alt.Tooltip("N:Q"),
                 alt.Tooltip("count:Q"), alt.Tooltip("probability:Q", format=".6g")],
    ).add_params(pick).properties(
        width=WIDTH, height=220, title=f"N draws at T = {res.sampler_temperature:g} (seed {res.seed})")


def model_logits(res: SamplingResults) -> alt.LayerChart:
    """A trained model's next-token probabilities after a real prompt, under temperature and top-p."""
    c = res.model
    tokens = [visible_token(t) for t in c.tokens] + [OTHERS]
    slider = grid_slider("T", c.temperatures, "temperature T ", step=0.05)
    top_p = alt.param(name="top_p", value=float(c.top_p[-1]),
                      bind=alt.binding_radio(options=[float(p) for p in c.top_p], name="top-p "))
    rows = [{"T": significant(t), "top-p": significant(p), "token": token, "probability": significant(q, 4)}
            for i, t in enumerate(c.temperatures) for j, p in enumerate(c.top_p)
            for token, q in zip(tokens, [*c.probs[i, j], c.other[i, j]])]
    truth = [{"token": token, "true probability": significant(g, 4), "logit": None if z is None else significant(z, 4)}
             for token, g, z in zip(tokens, [*c.grammar_probs, c.grammar_other], [*c.logits, None])]
    x = alt.X("token:N", sort=tokens, axis=alt.Axis(labelAngle=0),
              title=f"next token (the model's {len(c.tokens)} most likely, then the rest)")
    bars = nearest(alt.Chart(alt.Data(values=rows)), slider, "T", log=True).transform_filter(
        "datum['top-p'] == top_p").mark_bar(color=OKABE_ITO[0]).encode(
        x=x, y=alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1]), title="probability"),
        tooltip=[alt.Tooltip("token:N"), alt.Tooltip("T:Q", format="g"), alt.Tooltip("top-p:Q", format="g"),
                 alt.Tooltip("probability:Q", format=".4f")])
    ticks = alt.Chart(alt.Data(values=truth)).mark_tick(color=OKABE_ITO[5], thickness=3, size=28).encode(
        x=x, y="true probability:Q",
        tooltip=[alt.Tooltip("token:N"), alt.Tooltip("logit:Q", format=".3f"),
                 alt.Tooltip("true probability:Q", format=".4f")])
    return alt.layer(bars, ticks).add_params(slider, top_p).properties(
        width=WIDTH, height=240,
        title="A trained model's next token (orange ticks: the grammar's true probability)",
    )


def figures(res: SamplingResults) -> dict[str, alt.TopLevelMixin]:
    """Every chart of the chapter, by the name the prose uses to place it."""
    return {
        "temperature": temperature(res),
        "top_k": truncation(res, "top_k", "k", step=1, start=5),
        "top_p": truncation(res, "top_p", "top-p", step=0.01, start=0.9),
        "min_p": truncation(res, "min_p", "min-p", step=0.01, start=0.1),
        "samples": samples(res),
        "model_logits": model_logits(res),
    }
