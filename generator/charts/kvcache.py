"""Charts of the "KV cache" chapter: one function per chart, results in, alt.Chart out."""

from __future__ import annotations

import json

import altair as alt
import numpy as np

from generator.charts.common import WIDTH, sig, visible_token
from generator.sims.kvcache import KVCacheResults

WITH, WITHOUT = "with KV cache", "without (full pass)"
NEW, REUSED = "#D55E00", "#0072B2"
GIB = 2 ** 30


def growth(res: KVCacheResults) -> alt.HConcatChart:
    """Layer 1's cached keys and values after each step: the rows reused and the rows just written."""
    n_rows, n_embd = res.growth_k.shape
    n_steps = int(res.written_at.max())
    step = alt.param(name="step", value=min(3, n_steps),
                     bind=alt.binding_range(min=1, max=n_steps, step=1, name="decoding step "))
    rows = [{"position": i, "token": visible_token(res.tokens[i]), "dimension": d,
             "key": sig(res.growth_k[i, d], 3), "value": sig(res.growth_v[i, d], 3),
             "written at step": int(res.written_at[i])}
            for i in range(n_rows) for d in range(n_embd)]
    base = alt.Chart(alt.Data(values=rows)).transform_filter(
        "datum['written at step'] <= step"
    ).transform_calculate(
        row="datum['written at step'] == step ? 'new this step' : 'reused from the cache'")
    y = alt.Y("position:O", title=None, scale=alt.Scale(domain=list(range(n_rows))),
              axis=alt.Axis(labels=False, ticks=False))
    limit = sig(float(max(np.abs(res.growth_k).max(), np.abs(res.growth_v).max())), 3)
    tooltip = [alt.Tooltip("position:O"), alt.Tooltip("token:N"), alt.Tooltip("dimension:O"),
               alt.Tooltip("written at step:O"), alt.Tooltip("row:N", title="row")]
    # The token names the row once the step has written it; axis labels follow the page's theme.
    tokens = json.dumps([visible_token(t) for t in res.tokens[:n_rows]], ensure_ascii=False)
    written = json.dumps([int(w) for w in res.written_at])
    token_axis = alt.Axis(title=None, ticks=False, domain=False, labelFontSize=11,
                          labelExpr=f"{written}[datum.value] <= step ? {tokens}[datum.value] : ''")
    status = base.transform_filter("datum.dimension == 0").mark_rect().encode(
        y=alt.Y("position:O", scale=alt.Scale(domain=list(range(n_rows))), axis=token_axis),
        color=alt.Color("row:N", scale=alt.Scale(domain=["new this step", "reused from the cache"],
                                                 range=[NEW, REUSED]),
                        legend=alt.Legend(title=None, orient="bottom")),
        tooltip=tooltip[:2] + tooltip[3:],
    ).properties(width=14, height=16 * n_rows)
    panels = []
    for field, title in (("key", f"K, layer 1 ({n_embd} = {res.n_head} heads \u00d7 "
                                 f"{n_embd // res.n_head})"), ("value", "V, layer 1")):
        panels.append(base.mark_rect().encode(
            x=alt.X("dimension:O", title="dimension", axis=alt.Axis(labels=False, ticks=False)),
            y=y,
            fill=alt.Fill(f"{field}:Q", scale=alt.Scale(scheme="blueorange", domain=[-limit, limit]),
                          legend=alt.Legend(title="entry")),
            stroke=alt.condition("datum['written at step'] == step", alt.value(NEW), alt.value(None)),
            tooltip=tooltip + [alt.Tooltip(f"{field}:Q", format=".3g")],
        ).properties(width=180, height=16 * n_rows, title=title))
    return alt.hconcat(status, *panels, spacing=6).add_params(step).properties(
        title="The first layer's KV cache after each step")


def work(res: KVCacheResults) -> alt.HConcatChart:
    """Multiply-adds for one token, and for every token so far, with and without the cache."""
    rows = [{"sequence length": int(t), "cache": name, "multiply-adds this step": int(step),
             "multiply-adds so far": int(total)}
            for name, per, so_far in ((WITH, res.madds_cached, res.total_cached),
                                      (WITHOUT, res.madds_uncached, res.total_uncached))
            for t, step, total in zip(res.work_steps, per, so_far)]
    base = alt.Chart(alt.Data(values=rows))
    colour = alt.Color("cache:N", sort=[WITH, WITHOUT], legend=alt.Legend(title=None, orient="top"))
    x = alt.X("sequence length:Q", title="sequence length t (tokens)")
    panels = []
    for field, title in (("multiply-adds this step", "one token at length t"),
                         ("multiply-adds so far", "all t tokens so far")):
        panels.append(base.mark_line().encode(
            x=x, y=alt.Y(f"{field}:Q", title=f"{field} (log scale)", scale=alt.Scale(type="log"),
                         axis=alt.Axis(format="~s")), color=colour,
            tooltip=[alt.Tooltip("cache:N"), alt.Tooltip("sequence length:Q"),
                     alt.Tooltip(f"{field}:Q", format=",")],
        ).properties(width=WIDTH // 2 - 40, height=220, title=title))
    return alt.hconcat(*panels).properties(
        title=f"Work of the matrix products, tiny model ({res.n_layer} layers, n_embd {res.n_embd})")


def timing(res: KVCacheResults) -> alt.LayerChart:
    """Measured time for one generated token against sequence length, both ways (log-log)."""
    t = res.times
    rows = [{"sequence length": int(n), "cache": name, "milliseconds per token": sig(1e3 * s, 4),
             "multiply-adds": int(m)}
            for name, seconds, madds in ((WITH, t.seconds_cached, res.timed_madds_cached),
                                         (WITHOUT, t.seconds_uncached, res.timed_madds_uncached))
            for n, s, m in zip(t.lengths, seconds, madds)]
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("sequence length:Q", scale=alt.Scale(type="log", base=2), title="sequence length (tokens, log scale)"),
        y=alt.Y("milliseconds per token:Q", scale=alt.Scale(type="log"), title="milliseconds per token (log scale)"),
        color=alt.Color("cache:N", sort=[WITH, WITHOUT], legend=alt.Legend(title=None, orient="top")),
        tooltip=[alt.Tooltip("cache:N"), alt.Tooltip("sequence length:Q"),
                 alt.Tooltip("milliseconds per token:Q", format=".4g"), alt.Tooltip("multiply-adds:Q", format=",")],
    )
    return alt.layer(base.mark_line(), base.mark_point(filled=True, size=50)).properties(
        width=WIDTH, height=260, title=f"Time per generated token, measured on the build machine ({t.measured_on})")


def memory(res: KVCacheResults) -> alt.VConcatChart:
    """Cache size against context length for each configuration, at the chosen precision and batch."""
    m = res.memory
    lengths = [int(n) for n in m.seq_lengths]
    rows = [{"model": label, "precision": precision, "batch": int(batch), "sequence length": n,
             "bytes": int(m.bytes[i, p, b, j]), "GiB": sig(m.bytes[i, p, b, j] / GIB, 4),
             "layers": int(m.n_layer[i]), "KV heads": int(m.n_kv_head[i]), "d_head": int(m.d_head[i])}
            for i, label in enumerate(m.labels) for p, precision in enumerate(m.precisions)
            for b, batch in enumerate(m.batch_sizes) for j, n in enumerate(lengths)]
    precision = alt.param(name="precision", value="fp16" if "fp16" in m.precisions else m.precisions[0],
                          bind=alt.binding_radio(options=list(m.precisions), name="precision "))
    batch = alt.param(name="batch", value=int(m.batch_sizes[0]),
                      bind=alt.binding_radio(options=[int(b) for b in m.batch_sizes], name="batch "))
    length = alt.param(name="length", value=lengths[min(2, len(lengths) - 1)],
                       bind=alt.binding_select(options=lengths, name="sequence length "))
    base = alt.Chart(alt.Data(values=rows)).transform_filter(
        "datum.precision == precision && datum.batch == batch")
    colour = alt.Color("model:N", sort=list(m.labels), legend=alt.Legend(title=None, orient="top", columns=2))
    tooltip = [alt.Tooltip("model:N"), alt.Tooltip("precision:N"), alt.Tooltip("batch:Q"),
               alt.Tooltip("sequence length:Q", format=","), alt.Tooltip("bytes:Q", format=","),
               alt.Tooltip("GiB:Q", format=".4g"), alt.Tooltip("layers:Q"), alt.Tooltip("KV heads:Q"),
               alt.Tooltip("d_head:Q")]
    x = alt.X("sequence length:Q", scale=alt.Scale(type="log", base=2), title="sequence length (tokens, log scale)")
    y = alt.Y("GiB:Q", scale=alt.Scale(type="log"), title="KV cache (GiB, log scale)")
    lines = base.mark_line(point=True).encode(x=x, y=y, color=colour, tooltip=tooltip)
    marker = base.transform_filter("datum['sequence length'] == length").mark_rule(
        color="#999999", strokeDash=[4, 3]).encode(x=x)
    bars = base.transform_filter("datum['sequence length'] == length").mark_bar().encode(
        y=alt.Y("model:N", sort=list(m.labels), title=None),
        x=alt.X("GiB:Q", title="KV cache at the chosen length (GiB)"),
        color=alt.Color("model:N", sort=list(m.labels)), tooltip=tooltip)
    text = bars.mark_text(align="left", dx=4).encode(text=alt.Text("GiB:Q", format=",.4~g"))
    return alt.vconcat(
        alt.layer(lines, marker).properties(width=WIDTH, height=260),
        alt.layer(bars, text).properties(width=WIDTH - 120, height=110),
    ).add_params(precision, batch, length).properties(title="Size of the KV cache, by the formula")


def figures(res: KVCacheResults) -> dict[str, alt.TopLevelMixin]:
    """Every chart of the chapter, by the name the prose uses to place it."""
    return {"growth": growth(res), "work": work(res), "timing": timing(res), "memory": memory(res)}
