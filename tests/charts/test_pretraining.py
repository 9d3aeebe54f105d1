"""The pretraining charts carry exactly the simulation's numbers and texts, and their controls
span the family and the checkpoints."""

from __future__ import annotations

import numpy as np
import pytest

from generator.charts import pretraining as charts
from generator.charts.common import visible_token
from generator.grids import PretrainingGrid
from generator.sims import pretraining as sims
from tests.charts.specs import inline_data, params, slider_grid

GRID = PretrainingGrid(n_layers=(1, 2), n_heads=(1, 2), n_embd=16, n_ctx=32, batch_size=4, steps=20,
                       warmup_steps=5, eval_every=10, checkpoints=(0, 10, 20), train_stories=100,
                       heldout_stories=8, prompt="once upon a time , there was", temperatures=(0.5, 1.0, 2.0),
                       top_p=(0.5, 1.0), companion_tokens=5)
RES = sims.simulate(GRID)
SPECS = {name: fig.to_dict() for name, fig in charts.figures(RES).items()}  # to_dict validates
LOSS = charts.LOSS


def close(a, b):
    return np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=5e-6, atol=0)


def test_loss_curves_carry_every_evaluation_of_every_model():
    rows = next(d for d in inline_data(SPECS["loss_curves"]) if "step" in d[0])
    for m, train in zip(RES.models, RES.train_loss_at_eval):
        mine = [r for r in rows if (r["layers"], r["heads"]) == (m.config.n_layer, m.config.n_head)]
        heldout = [r for r in mine if r["data"] == "held-out"]
        assert [r["step"] for r in heldout] == m.eval_steps.tolist()
        assert close([r[LOSS] for r in heldout], m.heldout_loss)
        trained = [r for r in mine if r["data"] == "training"]
        assert [r["step"] for r in trained] == m.eval_steps[1:].tolist()
        assert close([r[LOSS] for r in trained], train[1:])


def test_reference_lines_are_the_corpus_baselines_and_floor():
    refs = {r["reference"]: r[LOSS] for d in inline_data(SPECS["loss_curves"]) for r in d if "reference" in r}
    c = RES.corpus
    assert close([refs["unigram"], refs["bigram"], refs["entropy floor"]],
                 [c.unigram_loss, c.bigram_loss, c.entropy_floor])


def test_model_controls_span_the_family_and_start_on_the_best_model():
    ps = params(SPECS["loss_curves"])
    assert ps["layers"]["bind"]["options"] == [1, 2] and ps["heads"]["bind"]["options"] == [1, 2]
    best = RES.models[charts.best_index(RES)]
    assert (ps["layers"]["value"], ps["heads"]["value"]) == (best.config.n_layer, best.config.n_head)
    assert best.heldout_loss[-1] == min(m.heldout_loss[-1] for m in RES.models)


def test_scaling_points_are_final_losses_against_parameter_counts():
    rows = next(d for d in inline_data(SPECS["scaling"]) if "parameters" in d[0])
    assert len(rows) == len(RES.models)
    for r, m in zip(rows, RES.models):
        assert (r["layers"], r["heads"], r["parameters"]) == (m.config.n_layer, m.config.n_head, m.n_params)
        assert close(r[LOSS], m.heldout_loss[-1])


def test_samples_chart_shows_each_checkpoints_stories_whole():
    rows = inline_data(SPECS["samples"])[0]
    i = charts.best_index(RES)
    for step, texts in zip(GRID.checkpoints, RES.sample_texts[i]):
        lines = [r["text"] for r in sorted((r for r in rows if r["step"] == step), key=lambda r: r["line"])]
        assert lines[0].startswith(f"step {step}: held-out loss ")
        stories = " ".join(lines[1:]).split("story ")[1:]
        assert [s.split(": ", 1)[1].strip() for s in stories] == [t or "(empty)" for t in texts]
    slider = params(SPECS["samples"])["step"]
    assert slider_grid(SPECS["samples"], "step") == list(GRID.checkpoints)  # one position per checkpoint
    assert (slider["bind"]["min"], slider["bind"]["max"], slider["bind"]["step"]) == (0, len(GRID.checkpoints) - 1, 1)


def test_model_logits_carry_the_companion_probabilities():
    c = RES.companion
    spec = charts.sampling_figures(RES)["model_logits"].to_dict()
    rows, truth = inline_data(spec)
    tokens = [visible_token(t) for t in c.tokens] + [charts.OTHERS]
    assert len(rows) == len(c.temperatures) * len(c.top_p) * len(tokens)
    for r in rows:
        i, j, k = list(c.temperatures).index(r["T"]), list(c.top_p).index(r["top-p"]), tokens.index(r["token"])
        expected = c.other[i, j] if k == len(c.tokens) else c.probs[i, j, k]
        assert r["probability"] == pytest.approx(expected, rel=5e-4, abs=1e-12)  # shown to 4 digits
    assert [r["token"] for r in truth] == tokens
    assert [r["true probability"] for r in truth] == pytest.approx([*c.grammar_probs, c.grammar_other], rel=5e-4)
    assert [r["logit"] for r in truth[:-1]] == pytest.approx(c.logits, rel=5e-4)
    assert c.grammar_other + c.grammar_probs.sum() == pytest.approx(1.0)
    assert params(spec)["top_p"]["bind"]["options"] == [0.5, 1.0]
    assert params(spec)["T"]["value"] == 1.0


def test_facts_are_read_off_the_results():
    f = charts.facts(RES)
    finals = [m.heldout_loss[-1] for m in RES.models]
    assert f["best_loss"] == min(finals) and f["worst_loss"] == max(finals)
    assert f["floor"] == RES.corpus.entropy_floor and f["bigram"] == RES.corpus.bigram_loss
    assert f["loss_most_layers"] == pytest.approx(np.mean(finals[2:]))
    assert f["uniform_loss"] == pytest.approx(np.log2(len(RES.corpus.vocab)))
    assert f["checkpoints"] == [0, 10, 20]
    s = charts.sampling_facts(RES)
    assert s["top_token"] == visible_token(RES.companion.tokens[0])
