"""Charts of the "Fine-tuning and alignment" chapter: one function per chart."""

from __future__ import annotations

import altair as alt
import numpy as np

from generator.charts.common import LINE_COLOURS, OKABE_ITO, WIDTH, categorical, line_colours, significant, visible_token
from generator.sims.alignment import AlignmentResults

PANEL_WIDTH, PANEL_HEIGHT = 220, 150

SFT_MEASURES = ("training loss (bits/token, mean since the last point)", "held-out recap loss (bits/token)",
                "recaps reproduced exactly", "loss on ordinary text (bits/token)")
POLICY_MEASURES = ("true reward", "reward-model score (sampled)", "KL from the reference (nats)",
                   "probability on any feeling")
DPO_MEASURES = ("DPO loss (held-out)", "implicit reward margin", "win rate",
                "log π(chosen)", "log π(rejected)")
PLACES = ("after the story's END: the recap's first word", "after \"were\": the feeling")


def policy_rows(track, **key) -> list[dict]:
    values = (track.true_reward, track.rm_score, track.kl, track.feeling_share)
    return [{**key, "measure": m, "step": int(i), "value": significant(v, 4)}
            for m, vs in zip(POLICY_MEASURES, values) for i, v in zip(track.eval_steps, vs)]


def sft_rows(res: AlignmentResults) -> list[dict]:
    rows = []
    for s in res.sft_runs:
        rate = significant(s.learning_rate)
        # the training loss averaged since the evaluation before (not every step: the page stays light)
        rows += [{"rate": rate, "measure": SFT_MEASURES[0], "step": int(i), "value": significant(v, 4)}
                 for i, v in zip(s.eval_steps[1:], s.train_loss_at_eval)]
        for measure, values in zip(SFT_MEASURES[1:], (s.recap_loss, s.exact, s.story_loss)):
            rows += [{"rate": rate, "measure": measure, "step": int(i), "value": significant(v, 4)}
                     for i, v in zip(s.eval_steps, values)]
    return rows


def panels(rows, measures, param, x_title, title, colour, columns=2) -> alt.ConcatChart:
    """Small multiples of one run's measures, the run chosen with a radio param.

    Each panel's axes span its measure over every run, zero included, so they hold still while
    the radio moves: the reader sees one run's curve move against another's, not the axes
    rescale (and a change redraws the curves alone, not nine axes)."""
    name = param.name
    steps = [r["step"] for r in rows]
    base = alt.Chart().mark_line(point=alt.OverlayMarkDef(size=18)).encode(
        x=alt.X("step:Q", title=x_title, scale=alt.Scale(domain=[min(steps), max(steps)])),
        color=alt.value(colour),
        tooltip=[alt.Tooltip(f"{KEYS[name]}:Q", title=TITLES[name]), alt.Tooltip("measure:N"),
                 alt.Tooltip("step:Q"), alt.Tooltip("value:Q", format=".4g")],
    ).properties(width=PANEL_WIDTH, height=PANEL_HEIGHT)

    def panel(measure: str) -> alt.Chart:
        values = [r["value"] for r in rows if r["measure"] == measure]
        domain = [min(0.0, min(values)), max(0.0, max(values))]
        return base.transform_filter(alt.FieldEqualPredicate(field="measure", equal=measure)).transform_filter(
            f"datum.{KEYS[name]} == {name}"
        ).encode(y=alt.Y("value:Q", title=None, scale=alt.Scale(domain=domain, nice=True))).properties(
            title=alt.TitleParams(measure, fontSize=12, fontWeight="normal", anchor="middle"))

    return alt.concat(*[panel(m) for m in measures], columns=columns, data=alt.Data(values=rows)).add_params(
        param).properties(title=title)


KEYS = {"sft_rate": "rate", "kl_coef": "coef", "beta": "beta"}  # param -> the rows' field
TITLES = {"sft_rate": "learning rate", "kl_coef": "KL coefficient", "beta": "β"}


def sft_curves(res: AlignmentResults) -> alt.ConcatChart:
    """SFT's training loss and its held-out measures, step by step, per learning rate."""
    rates = [significant(s.learning_rate) for s in res.sft_runs]
    pick = alt.param(name="sft_rate", value=significant(res.sft.learning_rate),
                     bind=alt.binding_radio(options=rates, name="learning rate "))
    return panels(sft_rows(res), SFT_MEASURES, pick, "SFT step", "Supervised fine-tuning on recaps",
                  OKABE_ITO[0])


def reward_model(res: AlignmentResults) -> alt.LayerChart:
    """The reward model's mean score of each feeling against the hidden reward."""
    rm = res.reward_model
    rows = [{"feeling": f, "hidden reward": significant(r), "reward-model score": significant(v, 4)}
            for f, r, v in zip(res.feelings, res.rewards, rm.feeling_scores)]
    base = alt.Chart(alt.Data(values=rows)).encode(
        x=alt.X("hidden reward:Q", scale=alt.Scale(padding=20), title="hidden reward of the feeling"),
        y=alt.Y("reward-model score:Q", scale=alt.Scale(zero=False, padding=20),
                title="reward model's mean score"),
        tooltip=[alt.Tooltip("feeling:N"), alt.Tooltip("hidden reward:Q"), alt.Tooltip("reward-model score:Q", format=".4f")])
    return alt.layer(base.mark_point(filled=True, size=90, color=OKABE_ITO[2]),
                     base.mark_text(align="left", dx=8, fontSize=12).encode(text="feeling:N")).properties(
        width=360, height=240, title="What the reward model learnt from noisy pairs, feeling by feeling")


def rl_rows(res: AlignmentResults) -> list[dict]:
    return [row for run in res.rl for row in policy_rows(run.track, coef=significant(run.kl_coef))]


def rl_curves(res: AlignmentResults) -> alt.ConcatChart:
    """RLHF's held-out measures for the KL coefficient chosen with the radio buttons."""
    coefs = [significant(r.kl_coef) for r in res.rl]
    pick = alt.param(name="kl_coef", value=coefs[0], bind=alt.binding_radio(options=coefs, name="KL coefficient "))
    return panels(rl_rows(res), POLICY_MEASURES, pick, "RLHF step",
                  "RLHF against the reward model, held-out prompts", OKABE_ITO[5])


def dpo_rows(res: AlignmentResults) -> list[dict]:
    rows = []
    for run in res.dpo:
        beta = significant(run.beta)
        for measure, values in zip(DPO_MEASURES, (run.loss, run.margin, run.win_rate, run.logp_chosen,
                                                  run.logp_rejected)):
            rows += [{"beta": beta, "measure": measure, "step": int(i), "value": significant(v, 4)}
                     for i, v in zip(run.eval_steps, values)]
        rows += policy_rows(run.track, beta=beta)
    return rows


def dpo_curves(res: AlignmentResults) -> alt.ConcatChart:
    """DPO's held-out measures for the beta chosen with the radio buttons."""
    betas = [significant(b) for b in res.betas]
    pick = alt.param(name="beta", value=betas[0], bind=alt.binding_radio(options=betas, name="β "))
    return panels(dpo_rows(res), DPO_MEASURES + POLICY_MEASURES, pick, "DPO step",
                  "Preference tuning (DPO) from the SFT model, held-out pairs", OKABE_ITO[1], columns=3)


def frontier_rows(res: AlignmentResults) -> list[dict]:
    rows = [{"run": "SFT (the reference)", "method": "SFT", "step": 0, "KL (nats)": 0.0,
             "true reward": significant(res.sft_track.true_reward[0], 4)}]
    for method, runs, label in (("RLHF", res.rl, lambda r: f"RLHF, c = {r.kl_coef:g}"),
                                ("DPO", res.dpo, lambda r: f"DPO, β = {r.beta:g}")):
        for r in runs:
            rows += [{"run": label(r), "method": method, "step": int(i), "KL (nats)": significant(k, 4),
                      "true reward": significant(t, 4)}
                     for i, k, t in zip(r.track.eval_steps, r.track.kl, r.track.true_reward)]
    return rows


def frontier(res: AlignmentResults) -> alt.LayerChart:
    """True reward against the KL from the reference along every RLHF and DPO run."""
    runs = [f"RLHF, c = {r.kl_coef:g}" for r in res.rl] + [f"DPO, β = {r.beta:g}" for r in res.dpo]
    palette = line_colours(len(runs)) if len(runs) <= len(LINE_COLOURS) else None  # else Vega's scheme
    base = alt.Chart(alt.Data(values=frontier_rows(res))).encode(
        x=alt.X("KL (nats):Q", scale=alt.Scale(type="symlog", constant=0.1),
                title="KL from the SFT model after \"were\" (nats, symlog scale)"),
        y=alt.Y("true reward:Q", title="true reward (hidden, mean over held-out prompts)"),
        tooltip=[alt.Tooltip("run:N"), alt.Tooltip("step:Q"), alt.Tooltip("KL (nats):Q", format=".4f"),
                 alt.Tooltip("true reward:Q", format=".4f")])
    lines = base.transform_filter("datum.method != 'SFT'").mark_line(point=alt.OverlayMarkDef(size=20)).encode(
        color=alt.Color("run:N", sort=runs, scale=alt.Scale(domain=runs, range=palette),
                        legend=alt.Legend(title=None, orient="bottom", columns=4)),
        strokeDash=alt.StrokeDash("method:N", scale=alt.Scale(domain=["RLHF", "DPO"], range=[[1, 0], [5, 3]]),
                                  legend=None),
        order="step:Q")
    start = base.transform_filter("datum.method == 'SFT'").mark_point(shape="diamond", size=120, filled=True,
                                                                      color="#777777")
    return alt.layer(lines, start).properties(
        width=WIDTH, height=320, title="The trade-off: true reward against drift, every RLHF and DPO run")


def next_token_rows(res: AlignmentResults, n_shown: int) -> list[dict]:
    """Per place: the tokens any stage ranks among its n_shown most probable, for every stage;
    a place with fewer such tokens than another is filled up with its next most probable ones
    (by the highest probability any stage gives them), so that every place shows as many tokens
    and the chart keeps its height when the reader changes the place (a resized canvas and a
    page reflowed around it cost more than a frame)."""
    tops = [{int(i) for p in nt.probs for i in np.argsort(-p, kind="stable")[:n_shown]} for nt in res.next_tokens]
    n_rows = max(len(top) for top in tops)
    rows = []
    for place, nt, top in zip(PLACES, res.next_tokens, tops):
        by_max = np.argsort(-nt.probs.max(axis=0), kind="stable")  # [n_vocab]
        rest = [int(i) for i in by_max if int(i) not in top][:n_rows - len(top)]
        shown = sorted(top | set(rest), key=lambda i: -nt.probs[:, i].max())
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
        color=alt.Color("stage:N", sort=list(res.stages), scale=alt.Scale(range=categorical(len(res.stages))),
                        legend=alt.Legend(title="model", orient="bottom", columns=2)),
        tooltip=[alt.Tooltip("place:N"), alt.Tooltip("stage:N", title="model"), alt.Tooltip("token:N"),
                 alt.Tooltip("probability:Q", format=".4f")],
    ).add_params(place).transform_filter("datum.place == place").properties(
        # 8 px a bar: the nine stages of one token read as one group (at Vega-Lite's default 20
        # px a bar the chart was 3,100 px tall, and every change repainted a canvas that size)
        width=480, height=alt.Step(8, **{"for": "offset"}),
        title="What each stage predicts next in one held-out story")


def shown_text(text: str) -> str:
    """Text with each end-of-story token shown as the page's ↵."""
    return text.replace("\n", " \u21b5 ").strip()


def figures(res: AlignmentResults) -> dict[str, alt.TopLevelMixin]:
    return {"sft_curves": sft_curves(res), "reward_model": reward_model(res), "rl_curves": rl_curves(res),
            "dpo_curves": dpo_curves(res), "frontier": frontier(res), "next_tokens": next_tokens(res)}
