"""Charts of the "Pretraining" chapter, and the sampling chapter's chart of a trained model's logits."""

from __future__ import annotations

import textwrap

import altair as alt
import numpy as np

from generator.charts.common import OKABE_ITO, WIDTH, grid_slider, nearest, significant
from generator.sims.family import best_index, model_name
from generator.sims.pretraining import PretrainingResults

LOSS = "loss (bits/token)"
REFERENCES = ("unigram", "bigram", "entropy floor")
REFERENCE_COLOURS = ("#999999", "#D55E00", "#009E73")
TEXT_WIDTH = 86  # characters per line of a sampled story


def reference_rows(res: PretrainingResults) -> list[dict]:
    c = res.corpus
    return [{"reference": name, LOSS: significant(value)}
            for name, value in zip(REFERENCES, (c.unigram_loss, c.bigram_loss, c.entropy_floor))]


def reference_rules(res: PretrainingResults, names=REFERENCES, label_x: float = WIDTH) -> alt.LayerChart:
    """Dashed horizontal lines at the baselines and the floor, each labelled in its colour."""
    layers = []
    for row in reference_rows(res):
        if row["reference"] not in names:
            continue
        colour = alt.value(REFERENCE_COLOURS[REFERENCES.index(row["reference"])])
        base = alt.Chart(alt.Data(values=[row])).encode(y=alt.Y(f"{LOSS}:Q"), color=colour)
        layers.append(base.mark_rule(strokeDash=[6, 3], strokeWidth=1.5).encode(
            tooltip=[alt.Tooltip("reference:N"), alt.Tooltip(f"{LOSS}:Q", format=".4f")]))
        layers.append(alt.Chart(alt.Data(values=[row])).mark_text(
            align="right" if label_x else "left", baseline="bottom", dx=-2 if label_x else 2, dy=-2,
            fontSize=11).encode(y=alt.Y(f"{LOSS}:Q"), x=alt.value(label_x), text="reference:N"))
    return alt.layer(*layers)


def name(m) -> str:
    return model_name(m.config.n_layer, m.config.n_head)


def model_radio(res: PretrainingResults, start: int) -> alt.Parameter:
    """Radio buttons choosing a model of the family, smallest first."""
    names = [name(m) for m in sorted(res.models, key=lambda m: m.n_params)]
    return alt.param(name="model", value=name(res.models[start]),
                     bind=alt.binding_radio(options=names, name="model "))


# ---------------------------------------------------------------------------------------------
# The chapter's charts


def loss_curves(res: PretrainingResults) -> alt.LayerChart:
    """Held-out and training loss against step for the chosen model, the family faint behind it."""
    rows = []
    for m, train in zip(res.models, res.train_loss_at_eval):
        for step, heldout, trained in zip(m.eval_steps, m.heldout_loss, train):
            key = {"model": name(m), "step": int(step)}
            rows.append({**key, "data": "held-out", LOSS: significant(heldout)})
            if not np.isnan(trained):
                rows.append({**key, "data": "training", LOSS: significant(trained)})
    pick = model_radio(res, best_index(res.models))
    chosen = "datum.model == model"
    base = alt.Chart()
    x = alt.X("step:Q", title="training step")
    y = alt.Y(f"{LOSS}:Q", scale=alt.Scale(type="log", base=2, domain=[0.5, 8]),
              title="loss, bits per token (log scale)")
    tooltip = [alt.Tooltip("model:N"), alt.Tooltip("data:N"),
               alt.Tooltip("step:Q"), alt.Tooltip(f"{LOSS}:Q", format=".4f")]
    family = base.transform_filter("datum.data == 'held-out'").mark_line(
        color="#999999", opacity=0.35, strokeWidth=1).encode(
        x=x, y=y, detail=alt.Detail("model:N"), tooltip=tooltip)
    model = base.transform_filter(chosen).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=x, y=y,
        color=alt.Color("data:N", scale=alt.Scale(domain=["held-out", "training"],
                                                  range=[OKABE_ITO[0], OKABE_ITO[3]]),
                        legend=alt.Legend(title=None, orient="bottom-left")),
        strokeDash=alt.StrokeDash("data:N", legend=None,
                                  scale=alt.Scale(range=[[1, 0], [4, 3]])),
        tooltip=tooltip,
    )
    curves = alt.layer(family, model, data=alt.Data(values=rows))
    return alt.layer(curves, reference_rules(res)).add_params(pick).properties(
        width=WIDTH, height=300,
        title="Loss during training: the chosen model in colour, the rest of the family in grey")


def scaling(res: PretrainingResults) -> alt.LayerChart:
    """Final held-out loss against parameter count, the models joined smallest to largest."""
    rows = [{"model": name(m), "parameters": m.n_params, "layers": m.config.n_layer, "heads": m.config.n_head,
             LOSS: significant(m.heldout_loss[-1])} for m in sorted(res.models, key=lambda m: m.n_params)]
    sizes = sorted({r["parameters"] for r in rows})
    base = alt.Chart()
    encoding = dict(
        x=alt.X("parameters:Q", scale=alt.Scale(type="log", nice=False, padding=30),
                axis=alt.Axis(values=sizes, format=","), title="parameters (log scale)"),
        y=alt.Y(f"{LOSS}:Q", scale=alt.Scale(zero=False, padding=12),
                title="final held-out loss, bits per token"),
        color=alt.Color("heads:N", sort=sorted(set(res.n_heads)),
                        scale=alt.Scale(range=OKABE_ITO[: len(set(res.n_heads))]),
                        legend=alt.Legend(title="heads")),
    )
    tooltip = [alt.Tooltip("model:N"), alt.Tooltip("layers:Q"), alt.Tooltip("heads:Q"), alt.Tooltip("parameters:Q", format=","),
               alt.Tooltip(f"{LOSS}:Q", format=".4f")]
    lines = base.mark_line(opacity=0.6, color="#999999").encode(
        **{k: v for k, v in encoding.items() if k != "color"}, order="parameters:Q")
    points = base.mark_point(filled=True, size=80, opacity=1).encode(
        **encoding, shape=alt.Shape("layers:N", sort=sorted(set(res.n_layers)), legend=alt.Legend(title="layers")),
        tooltip=tooltip)
    models = alt.layer(lines, points, data=alt.Data(values=rows))
    return alt.layer(models, reference_rules(res, ("bigram", "entropy floor"), label_x=0)).properties(
        width=WIDTH, height=280, title=f"After {res.models[0].config.steps} steps: loss against model size")


def compute_rows(res: PretrainingResults) -> list[dict]:
    """Every model's held-out loss at every evaluation after step 0, with the FLOPs spent by then."""
    return [{"model": model_name(m.config.n_layer, m.config.n_head), "parameters": m.n_params,
             "step": int(step), "FLOPs": significant(f), LOSS: significant(loss)}
            for m, flops in zip(res.models, res.frontier.flops)
            for step, f, loss in zip(m.eval_steps[1:], flops[1:], m.heldout_loss[1:])]


def frontier_rows(res: PretrainingResults) -> list[dict]:
    f = res.frontier
    return [{"FLOPs": significant(c), LOSS: significant(loss),
             "leader": model_name(res.models[i].config.n_layer, res.models[i].config.n_head)}
            for c, loss, i in zip(f.grid, f.loss, f.leader)]


def compute(res: PretrainingResults) -> alt.LayerChart:
    """Held-out loss against training compute for every model, log-log, and the frontier."""
    order = [model_name(m.config.n_layer, m.config.n_head) for m in sorted(res.models, key=lambda m: m.n_params)]
    x = alt.X("FLOPs:Q", scale=alt.Scale(type="log"), axis=alt.Axis(format="~s"),
              title="training compute, FLOPs = 6 × parameters × tokens (log scale)")
    y = alt.Y(f"{LOSS}:Q", scale=alt.Scale(type="log", zero=False), title="held-out loss, bits per token (log scale)")
    lines = alt.Chart(alt.Data(values=compute_rows(res))).mark_line(strokeWidth=1.5, opacity=0.9).encode(
        x=x, y=y, color=alt.Color("model:N", sort=order, scale=alt.Scale(range=OKABE_ITO[:len(order)]),
                                  legend=alt.Legend(title="model (by size)", orient="bottom", columns=2)),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("parameters:Q", format=","), alt.Tooltip("step:Q", format=","),
                 alt.Tooltip("FLOPs:Q", format=".3s"), alt.Tooltip(f"{LOSS}:Q", format=".4f")])
    front = alt.Chart(alt.Data(values=frontier_rows(res))).mark_line(
        color="#777777", strokeDash=[2, 3], strokeWidth=4, opacity=0.7).encode(
        x=x, y=y, tooltip=[alt.Tooltip("FLOPs:Q", format=".3s"), alt.Tooltip(f"{LOSS}:Q", format=".4f"),
                           alt.Tooltip("leader:N", title="lowest loss at this compute")])
    return alt.layer(front, lines).properties(
        width=WIDTH, height=300, title="Loss against compute; dotted grey: the compute-efficient frontier")


def samples(res: PretrainingResults) -> alt.LayerChart:
    """Stories the best model wrote at each checkpoint, chosen with a step slider."""
    i = best_index(res.models)
    m = res.models[i]
    steps = [int(s) for s in m.config.checkpoints]
    heldout = dict(zip(m.eval_steps.tolist(), m.heldout_loss))
    rows = []
    for step, texts in zip(steps, res.sample_texts[i]):
        loss = heldout.get(step)
        header = f"step {step}" + (f": held-out loss {loss:.2f} bits/token" if loss is not None else "")
        lines = [header] + [line for n, text in enumerate(texts)
                            for line in [f"story {n + 1}:"] + (textwrap.wrap(text, TEXT_WIDTH) or ["(empty)"])]
        rows += [{"step": step, "line": k, "text": line} for k, line in enumerate(lines)]
    slider = grid_slider("step", steps, "training step ", step=1, start=steps[len(steps) // 2])
    n_lines = max(r["line"] for r in rows) + 1
    base = nearest(alt.Chart(alt.Data(values=rows)), slider, "step").encode(
        x=alt.value(0),
        y=alt.Y("line:O", axis=None, scale=alt.Scale(domain=list(range(n_lines)))),
        text="text:N",
    )
    font = dict(align="left", baseline="top", fontSize=13, font="ui-monospace, Menlo, Consolas, monospace")
    header = base.transform_filter("datum.line == 0").mark_text(fontWeight="bold", **font)
    body = base.transform_filter("datum.line > 0").mark_text(**font)
    return alt.layer(header, body).add_params(slider).properties(
        width=WIDTH, height=18 * n_lines,
        title=f"Stories sampled from the {model_name(m.config.n_layer, m.config.n_head)} model "
              "(temperature 1, same random numbers at every step)",
    )


# ---------------------------------------------------------------------------------------------
# The sampling chapter's companion


# ---------------------------------------------------------------------------------------------
# The page


def figures(res: PretrainingResults) -> dict[str, alt.TopLevelMixin]:
    """Every chart of the chapter, by the name the prose uses to place it."""
    return {"loss_curves": loss_curves(res), "scaling": scaling(res), "compute": compute(res),
            "samples": samples(res)}
