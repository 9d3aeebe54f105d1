"""Charts of the "KV cache" chapter: one function per chart, results in, alt.Chart out."""

from __future__ import annotations

import json

import altair as alt
import numpy as np

from generator.charts.common import sig, visible_token
from generator.sims.kvcache import KVCacheResults

WIDTH = 560
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


def facts(res: KVCacheResults) -> dict[str, object]:
    """Numbers the prose quotes, read off the results."""
    m, t = res.memory, res.times
    n_gen = len(res.tokens) - res.n_prompt
    label = {name: i for i, name in enumerate(m.labels)}
    fp16 = m.precisions.index("fp16") if "fp16" in m.precisions else 0
    gpt2, llama7, llama70 = 0, min(1, len(m.labels) - 1), min(2, len(m.labels) - 1)
    tiny = label["tiny model (this site)"]

    def per_token(i, p=fp16):
        return int(m.bytes_per_token[i, p])

    def story(tokens):
        return " ".join(visible_token(x) for x in tokens)

    return {
        "n_layer": res.n_layer, "n_head": res.n_head, "n_embd": res.n_embd,
        "d_head": res.n_embd // res.n_head, "n_ctx": res.n_ctx, "n_vocab": res.n_vocab,
        "n_params": f"{res.n_params:,}", "n_prompt": res.n_prompt, "n_generated": n_gen,
        "prompt": story(res.tokens[:res.n_prompt]), "continuation": story(res.tokens[res.n_prompt:]),
        "growth_steps": int(res.written_at.max()),
        "max_diff": float(res.max_abs_diff.max()), "max_diff_f64": res.max_abs_diff_f64,
        "max_logit": res.max_abs_logit,
        "work_length": int(res.work_steps[-1]),
        "step_cached": f"{int(res.madds_cached[-1]):,}", "step_uncached": f"{int(res.madds_uncached[-1]):,}",
        "step_ratio": float(res.madds_uncached[-1] / res.madds_cached[-1]),
        "total_cached": f"{int(res.total_cached[-1]):,}", "total_uncached": f"{int(res.total_uncached[-1]):,}",
        "total_ratio": float(res.total_uncached[-1] / res.total_cached[-1]),
        "first_step": f"{int(res.madds_cached[0]):,}",
        "measured_on": t.measured_on,
        "time_short": int(t.lengths[0]), "time_long": int(t.lengths[-1]),
        "ms_cached_short": 1e3 * float(t.seconds_cached[0]), "ms_uncached_short": 1e3 * float(t.seconds_uncached[0]),
        "ms_cached_long": 1e3 * float(t.seconds_cached[-1]), "ms_uncached_long": 1e3 * float(t.seconds_uncached[-1]),
        "speedup_long": float(t.seconds_uncached[-1] / t.seconds_cached[-1]),
        "cached_growth": float(t.seconds_cached[-1] / t.seconds_cached[0]),
        "uncached_growth": float(t.seconds_uncached[-1] / t.seconds_uncached[0]),
        "madds_ratio_long": float(res.timed_madds_uncached[-1] / res.timed_madds_cached[-1]),
        "gpt2_label": m.labels[gpt2], "shortest": f"{int(m.seq_lengths[0]):,}",
        "gpt2_shortest_bytes": f"{int(m.bytes[gpt2, fp16, 0, 0]):,}",
        "gpt2_shortest_mib": float(m.bytes[gpt2, fp16, 0, 0] / 2 ** 20),
        "gpt2_layers": int(m.n_layer[gpt2]), "gpt2_kv_heads": int(m.n_kv_head[gpt2]),
        "gpt2_d_head": int(m.d_head[gpt2]), "fp16_bytes": int(m.bytes_per_value[fp16]),
        "gpt2_token_kib": per_token(gpt2) / 1024,
        "llama7_label": m.labels[llama7], "llama7_token_kib": per_token(llama7) / 1024,
        "llama70_label": m.labels[llama70], "llama70_token_kib": per_token(llama70) / 1024,
        "llama70_layers": int(m.n_layer[llama70]), "llama70_heads": int(m.n_head[llama70]),
        "llama70_kv_heads": int(m.n_kv_head[llama70]),
        "llama70_mha_token_kib": int(m.mha_bytes_per_token[llama70, fp16]) / 1024,
        "gqa_factor": float(m.n_head[llama70] / m.n_kv_head[llama70]),
        "llama70_longest_gib": float(m.bytes[llama70, fp16, 0, -1] / GIB),
        "llama7_longest_gib": float(m.bytes[llama7, fp16, 0, -1] / GIB),
        "longest": f"{int(m.seq_lengths[-1]):,}",
        "batch_small": int(m.batch_sizes[0]), "batch_big": int(m.batch_sizes[min(1, len(m.batch_sizes) - 1)]),
        "tiny_token_bytes": per_token(tiny),
        "tiny_context_kib": per_token(tiny) * res.n_ctx / 1024,
    }
