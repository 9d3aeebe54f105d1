"""Charts of the "KV cache" chapter: one function per chart, results in, alt.Chart out."""

from __future__ import annotations

import json

import altair as alt
import numpy as np

from generator.charts.common import OKABE_ITO, WIDTH, significant, visible_token
from generator.sims.kvcache import KVCacheResults

WITH, WITHOUT = "with KV cache", "without (full pass)"
NEW, REUSED = "#D55E00", "#0072B2"
GIB = 2 ** 30
ATTENTION = {"mha": "multi-head", "gqa": "grouped-query", "mqa": "multi-query", "sliding": "sliding window",
             "mla": "latent (MLA)"}


def growth(res: KVCacheResults) -> alt.HConcatChart:
    """Layer 1's cached keys and values after each step: the rows reused and the rows just written."""
    n_rows, n_embd = res.growth_k.shape
    n_steps = int(res.written_at.max())
    step = alt.param(name="step", value=min(3, n_steps),
                     bind=alt.binding_range(min=1, max=n_steps, step=1, name="decoding step "))
    rows = [{"position": i, "token": visible_token(res.tokens[i]), "dimension": d,
             "key": significant(res.growth_k[i, d], 3), "value": significant(res.growth_v[i, d], 3),
             "written at step": int(res.written_at[i])}
            for i in range(n_rows) for d in range(n_embd)]
    base = alt.Chart(alt.Data(values=rows)).transform_filter(
        "datum['written at step'] <= step"
    ).transform_calculate(
        row="datum['written at step'] == step ? 'new this step' : 'reused from the cache'")
    y = alt.Y("position:O", title=None, scale=alt.Scale(domain=list(range(n_rows))),
              axis=alt.Axis(labels=False, ticks=False))
    limit = significant(float(max(np.abs(res.growth_k).max(), np.abs(res.growth_v).max())), 3)
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
    shown = (f"{res.n_embd} = {res.n_head} heads \u00d7 {res.n_embd // res.n_head}" if n_embd == res.n_embd
             else f"the first {n_embd} of {res.n_embd} dimensions")
    for field, title in (("key", f"K, layer 1 ({shown})"), ("value", "V, layer 1")):
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
    rows = [{"sequence length": int(n), "cache": name, "milliseconds per token": significant(1e3 * s, 4),
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
    """Each published model's cache (bf16, one sequence) against length, up to its real context."""
    led = res.ledger
    names = list(led.names)
    rows = [{"model": name, "attention": ATTENTION[led.attention[i]], "tokens": int(n),
             "bytes": int(led.kv_at_length[i, j]), "GiB": significant(led.kv_at_length[i, j] / GIB, 4),
             "context": int(led.context[i])}
            for i, name in enumerate(names) for j, n in enumerate(led.lengths) if n <= led.context[i]]
    ends = [{"model": name, "attention": ATTENTION[led.attention[i]], "context": int(led.context[i]),
             "window": int(led.window[i]) or None, "bytes per token": int(led.kv_per_token[i]),
             "GiB at the context": significant(led.kv_at_context[i] / GIB, 4),
             "label": f"{led.kv_at_context[i] / GIB:,.3g} GiB at {int(led.context[i]):,} tokens"}
            for i, name in enumerate(names)]
    kinds = [ATTENTION[k] for k in dict.fromkeys(led.attention)]
    colour = alt.Color("attention:N", sort=kinds, scale=alt.Scale(domain=kinds, range=OKABE_ITO[:len(kinds)]),
                       legend=alt.Legend(title=None, orient="top"))
    tooltip = [alt.Tooltip("model:N"), alt.Tooltip("attention:N"), alt.Tooltip("tokens:Q", format=","),
               alt.Tooltip("bytes:Q", format=","), alt.Tooltip("GiB:Q", format=".4g")]
    x = alt.X("tokens:Q", scale=alt.Scale(type="log", base=2), title="tokens in the sequence (log scale)")
    y = alt.Y("GiB:Q", scale=alt.Scale(type="log"), title="KV cache, bf16 (GiB, log scale)")
    base = alt.Chart(alt.Data(values=rows))
    lines = base.mark_line(point=True).encode(x=x, y=y, color=colour, detail="model:N", tooltip=tooltip)
    labels = base.transform_filter("datum.tokens == datum.context").mark_text(
        align="right", dx=-6, dy=-8, fontSize=11).encode(x=x, y=y, text="model:N")
    bars = alt.Chart(alt.Data(values=ends)).mark_bar().encode(
        y=alt.Y("model:N", sort=names, title=None),
        x=alt.X("GiB at the context:Q", title="one sequence at the model's own context limit (GiB)"),
        color=colour,
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("attention:N"), alt.Tooltip("context:Q", format=","),
                 alt.Tooltip("window:Q", format=","), alt.Tooltip("bytes per token:Q", format=","),
                 alt.Tooltip("GiB at the context:Q", format=".4g")])
    text = alt.Chart(alt.Data(values=ends)).mark_text(align="left", dx=4).encode(
        y=alt.Y("model:N", sort=names, title=None), x="GiB at the context:Q", text="label:N")
    return alt.vconcat(alt.layer(lines, labels).properties(width=WIDTH, height=300),
                       alt.layer(bars, text).properties(width=WIDTH - 200, height=22 * len(names))).properties(
        title="KV cache of published models, by the formula, up to each one's context")


def fit(res: KVCacheResults) -> alt.HConcatChart:
    """Cache tokens that fit beside the weights, for a chosen GPU memory and precision."""
    led = res.ledger
    names = list(led.names)
    rows = [{"model": name, "GB": int(gb), "precision": precision,
             "weights": significant(led.weights[i, p] / 1e9, 4), "tokens": int(led.fit_tokens[i, g, p]),
             "sequences": int(led.fit_sequences[i, g, p])}
            for i, name in enumerate(names) for g, gb in enumerate(led.gpus_gb)
            for p, precision in enumerate(led.precisions)]
    contexts = json.dumps({name: f"{int(n):,}" for name, n in zip(names, led.context)})
    answer = ("datum.weights >= datum.GB ? 'weights alone do not fit' : "
              "format(datum.tokens, ',') + ' tokens; ' + format(datum.sequences, ',') "
              f"+ ' of ' + {contexts}[datum.model] + ' tokens'")
    gpu = alt.param(name="gpu", value=int(led.example_gb),
                    bind=alt.binding_radio(options=[int(g) for g in led.gpus_gb], name="GPU memory (GB) "))
    precision = alt.param(name="precision", value=led.precisions[0],
                          bind=alt.binding_radio(options=list(led.precisions), name="weights and cache in "))
    base = alt.Chart(alt.Data(values=rows)).transform_filter(
        "datum.GB == gpu && datum.precision == precision").transform_calculate(answer=answer).encode(
        y=alt.Y("model:N", sort=names, title=None),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("GB:Q", title="GPU memory (GB)"),
                 alt.Tooltip("precision:N"), alt.Tooltip("weights:Q", title="weights (GB)", format=".4g"),
                 alt.Tooltip("tokens:Q", title="cache tokens that fit", format=","),
                 alt.Tooltip("sequences:Q", title="sequences at full context", format=",")])
    top = max(1, int(led.fit_tokens.max()))
    bars = base.mark_bar(color=OKABE_ITO[0]).encode(
        x=alt.X("tokens:Q", title="cache tokens (log scale)",
                scale=alt.Scale(type="symlog", domain=[0, top]),
                axis=alt.Axis(values=[10 ** k for k in range(3, len(str(top)))],
                              labelExpr="format(datum.value, '~s')")))
    text = base.mark_text(align="left", x=0, fontSize=11).encode(text="answer:N")
    return alt.hconcat(bars.properties(width=200, height=26 * len(names)),
                       text.encode(y=alt.Y("model:N", sort=names, axis=None)).properties(
                           width=WIDTH - 260, height=26 * len(names),
                           title="cache tokens; sequences at full context")).add_params(gpu, precision).properties(
        title="What fits in one GPU: weights first, then the cache (GB = 10\u2079 bytes)")


def roofline(res: KVCacheResults) -> alt.VConcatChart:
    """The GPU's roofline with each model's decode step at the chosen batch, and tokens/s by batch."""
    r = res.roofline
    names = list(r.names)
    batches = [int(b) for b in r.batches]
    rows = [{"model": name, "batch": b, "FLOP per byte": significant(r.intensity[i, j], 4),
             "TFLOP/s attained": significant(r.step_flops[i, j] / max(r.step_bytes[i, j] / r.bandwidth,
                                                             r.step_flops[i, j] / r.flops) / 1e12, 4),
             "tokens/s": significant(r.tokens_per_s[i, j], 4), "bytes per step": int(r.step_bytes[i, j]),
             "bound": "memory" if r.memory_bound[i, j] else "compute",
             "fits": "yes" if r.fits[i, j] else "no"}
            for i, name in enumerate(names) for j, b in enumerate(batches)]
    lo = min(0.5, float(r.intensity.min()) / 2)
    hi = max(4 * r.flops / r.bandwidth, float(r.intensity.max()) * 2)
    grid = (lo, r.flops / r.bandwidth, hi)  # a straight line and a flat one on log-log axes
    roof = [{"FLOP per byte": significant(x, 4), "TFLOP/s": significant(min(r.flops, r.bandwidth * x) / 1e12, 4)} for x in grid]
    pick = alt.param(name="batch", value=batches[0],
                     bind=alt.binding_radio(options=batches, name="sequences in the batch "))
    x = alt.X("FLOP per byte:Q", scale=alt.Scale(type="log", domain=[significant(lo, 3), significant(hi, 3)]),
              title="arithmetic intensity (FLOP per byte read, log scale)")
    roof_line = alt.Chart(alt.Data(values=roof)).mark_line(color="#999999").encode(
        x=x, y=alt.Y("TFLOP/s:Q", scale=alt.Scale(type="log"), title="TFLOP/s (log scale)"))
    colour = alt.Color("model:N", sort=names, legend=alt.Legend(title=None, orient="top", columns=3))
    tooltip = [alt.Tooltip("model:N"), alt.Tooltip("batch:Q"),
               alt.Tooltip("FLOP per byte:Q", format=".4g"), alt.Tooltip("TFLOP/s attained:Q", format=".4g"),
               alt.Tooltip("tokens/s:Q", format=",.4g"), alt.Tooltip("bytes per step:Q", format=","),
               alt.Tooltip("bound:N"), alt.Tooltip("fits:N", title=f"fits {r.memory / 1e9:.0f} GB")]
    base = alt.Chart(alt.Data(values=rows))
    points = base.transform_filter("datum.batch == batch").mark_point(
        filled=True, size=90).encode(x=x, y=alt.Y("TFLOP/s attained:Q"), color=colour,
                                     shape=alt.Shape("fits:N", sort=["yes", "no"], legend=alt.Legend(
                                         title=f"fits {r.memory / 1e9:.0f} GB", orient="right")),
                                     tooltip=tooltip)
    top = alt.layer(roof_line, points).add_params(pick).properties(
        width=WIDTH, height=260, title=f"Decode steps on the {r.gpu} roofline "
        f"({r.bandwidth / 1e12:.3g} TB/s, {r.flops / 1e12:.0f} TFLOP/s dense bf16)")
    speed = base.mark_line(point=True).encode(
        x=alt.X("batch:Q", scale=alt.Scale(type="log", base=2), title="sequences decoded together (log scale)"),
        y=alt.Y("tokens/s:Q", scale=alt.Scale(type="log"), title="tokens/s, upper bound (log scale)"),
        color=alt.Color("model:N", sort=names, legend=None),
        strokeDash=alt.StrokeDash("fits:N", sort=["yes", "no"], legend=None), tooltip=tooltip,
    ).properties(width=WIDTH, height=220, title="Tokens per second the roofline allows, by batch size")
    return alt.vconcat(top, speed)


def quantised(res: KVCacheResults) -> alt.Chart:
    """Largest logit error at each position when the cache is kept in fewer bits."""
    q = res.quantised
    rows = [{"position": t, "cache": f"int{int(b)}",
             "largest logit error": significant(max(float(q.logit_error[k, t]), 1e-9), 3)}
            for k, b in enumerate(q.bits) for t in range(q.logit_error.shape[1])]
    return alt.Chart(alt.Data(values=rows)).mark_line(point=True).encode(
        x=alt.X("position:Q", title="position in the decoded text"),
        y=alt.Y("largest logit error:Q", scale=alt.Scale(type="log"),
                title="largest |logit error| (log scale)"),
        color=alt.Color("cache:N", legend=alt.Legend(title=None, orient="top")),
        tooltip=[alt.Tooltip("cache:N"), alt.Tooltip("position:Q"),
                 alt.Tooltip("largest logit error:Q", format=".4g")],
    ).properties(width=WIDTH, height=220,
                 title=f"Logit error with the cache quantised, {res.n_layer}-layer tiny model")


def speculative(res: KVCacheResults) -> alt.LayerChart:
    """Tokens per target pass against draft length: measured, and Leviathan et al.'s expectation."""
    sp = res.speculative
    rows = [{"draft length": int(g), "what": name, "tokens per target pass": significant(v, 4),
             "target passes": int(sp.target_passes[j]), "draft passes": int(sp.draft_passes[j]),
             "acceptance rate": significant(sp.acceptance[j], 4)}
            for j, g in enumerate(sp.draft_lengths)
            for name, v in ((MEASURED, sp.tokens_per_pass[j]), (EXPECTED, sp.expected_per_pass[j]))]
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("draft length:Q", title="draft length γ (tokens proposed per round)"),
        y=alt.Y("tokens per target pass:Q", title="tokens per target forward pass"),
        color=alt.Color("what:N", sort=[MEASURED, EXPECTED],
                        legend=alt.Legend(title=None, orient="top", labelLimit=400)),
        tooltip=[alt.Tooltip("what:N"), alt.Tooltip("draft length:Q"),
                 alt.Tooltip("tokens per target pass:Q", format=".4g"), alt.Tooltip("target passes:Q"),
                 alt.Tooltip("draft passes:Q"), alt.Tooltip("acceptance rate:Q", format=".3f")])
    return alt.layer(base.mark_line(), base.mark_point(filled=True, size=60)).properties(
        width=WIDTH, height=240, title=f"Speculative decoding: a {sp.draft_layers}-layer draft for the "
        f"{res.n_layer}-layer model, α = {sp.alpha:.3f}")


MEASURED, EXPECTED = "measured", "expected, (1 − α^(γ+1)) / (1 − α)"


def figures(res: KVCacheResults) -> dict[str, alt.TopLevelMixin]:
    """Every chart of the chapter, by the name the prose uses to place it."""
    return {"growth": growth(res), "work": work(res), "timing": timing(res), "memory": memory(res),
            "fit": fit(res), "roofline": roofline(res), "quantised": quantised(res),
            "speculative": speculative(res)}
