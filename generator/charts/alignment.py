"""Charts of the "Fine-tuning and preference tuning" chapter: one function per chart."""

from __future__ import annotations

import altair as alt
import numpy as np

from generator.charts.common import OKABE_ITO, significant, visible_token
from generator.sims.alignment import AlignmentResults

PANEL_WIDTH, PANEL_HEIGHT = 220, 150

SFT_MEASURES = ("training loss (bits/token)", "held-out recap loss (bits/token)",
                "recaps reproduced exactly", "loss on ordinary stories (bits/token)")
DPO_MEASURES = ("DPO loss (held-out)", "implicit reward margin", "win rate",
                "KL from the reference (nats/token)", "P(preferred feeling)")
PLACES = ("after the story's END: the recap's first word", "after \"were\": the feeling")


def sft_rows(res: AlignmentResults) -> list[dict]:
    s = res.sft
    rows = [{"measure": SFT_MEASURES[0], "step": int(i), "value": significant(v, 4)} for i, v in enumerate(s.train_loss)]
    for measure, values in zip(SFT_MEASURES[1:], (s.recap_loss, s.exact, s.story_loss)):
        rows += [{"measure": measure, "step": int(i), "value": significant(v, 4)} for i, v in zip(s.eval_steps, values)]
    return rows


def sft_curves(res: AlignmentResults) -> alt.FacetChart:
    """SFT's training loss and its held-out measures, step by step."""
    return alt.Chart(alt.Data(values=sft_rows(res))).mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=alt.X("step:Q", title="SFT step"),
        y=alt.Y("value:Q", title=None),
        color=alt.value(OKABE_ITO[0]),
        tooltip=[alt.Tooltip("measure:N"), alt.Tooltip("step:Q"), alt.Tooltip("value:Q", format=".4g")],
    ).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT).facet(
        facet=alt.Facet("measure:N", sort=list(SFT_MEASURES), title=None), columns=2,
    ).resolve_scale(y="independent").properties(title="Supervised fine-tuning on recaps")


def dpo_rows(res: AlignmentResults) -> list[dict]:
    rows = []
    for run in res.dpo:
        for measure, values in zip(DPO_MEASURES, (run.loss, run.margin, run.win_rate, run.kl, run.p_preferred)):
            rows += [{"beta": significant(run.beta), "measure": measure, "step": int(i), "value": significant(v, 4)}
                     for i, v in zip(run.eval_steps, values)]
    return rows


def dpo_curves(res: AlignmentResults) -> alt.FacetChart:
    """DPO's held-out measures for the beta chosen with the radio buttons."""
    betas = [significant(b) for b in res.betas]
    beta = alt.param(name="beta", value=betas[0],
                     bind=alt.binding_radio(options=betas, name="β "))
    return alt.Chart(alt.Data(values=dpo_rows(res))).mark_line(point=alt.OverlayMarkDef(size=30)).encode(
        x=alt.X("step:Q", title="DPO step"),
        y=alt.Y("value:Q", title=None),
        color=alt.value(OKABE_ITO[1]),
        tooltip=[alt.Tooltip("beta:Q", title="β"), alt.Tooltip("measure:N"), alt.Tooltip("step:Q"),
                 alt.Tooltip("value:Q", format=".4g")],
    ).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT).transform_filter(
        "datum.beta == beta"
    ).facet(
        facet=alt.Facet("measure:N", sort=list(DPO_MEASURES), title=None), columns=3,
    ).add_params(beta).resolve_scale(y="independent").properties(
        title="Preference tuning (DPO) from the SFT model, held-out pairs")


def next_token_rows(res: AlignmentResults, n_shown: int) -> list[dict]:
    """Per place: the tokens any stage ranks among its n_shown most probable, for every stage."""
    rows = []
    for place, nt in zip(PLACES, res.next_tokens):
        shown = sorted({int(i) for p in nt.probs for i in np.argsort(-p, kind="stable")[:n_shown]},
                       key=lambda i: -nt.probs[:, i].max())
        rows += [{"place": place, "stage": stage, "token": visible_token(res.vocab[i]),
                  "probability": significant(p[i], 4), "_target": res.vocab[i] == nt.target}
                 for i in shown for stage, p in zip(res.stages, nt.probs)]
    return rows


def next_tokens(res: AlignmentResults, n_shown: int = 4) -> alt.Chart:
    """Each stage's next-token probabilities at the place chosen with the radio buttons."""
    place = alt.param(name="place", value=PLACES[0],
                      bind=alt.binding_radio(options=list(PLACES), name="next token "))
    return alt.Chart(alt.Data(values=next_token_rows(res, n_shown))).mark_bar().encode(
        y=alt.Y("token:N", sort=alt.EncodingSortField("probability", op="max", order="descending"), title=None),
        yOffset=alt.YOffset("stage:N", sort=list(res.stages)),
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1]), title="probability of the next token"),
        color=alt.Color("stage:N", sort=list(res.stages), scale=alt.Scale(range=OKABE_ITO[:len(res.stages)]),
                        legend=alt.Legend(title="model", orient="bottom", columns=2)),
        tooltip=[alt.Tooltip("place:N"), alt.Tooltip("stage:N", title="model"), alt.Tooltip("token:N"),
                 alt.Tooltip("probability:Q", format=".4f")],
    ).add_params(place).transform_filter("datum.place == place").properties(
        width=480, title="What each stage predicts next in one held-out story")


def shown_text(text: str) -> str:
    """Text with each end-of-story token shown as the page's ↵."""
    return text.replace("\n", " \u21b5 ").strip()


def figures(res: AlignmentResults) -> dict[str, alt.TopLevelMixin]:
    return {"sft_curves": sft_curves(res), "dpo_curves": dpo_curves(res), "next_tokens": next_tokens(res)}
