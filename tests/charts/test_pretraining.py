"""The pretraining charts carry exactly the simulation's numbers and texts, and their controls
span the family and the checkpoints."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from generator.charts import pretraining as charts
from generator.sims import pretraining as sims
from generator.sims.family import best_index, model_name
from tests.charts.specs import inline_data, params, slider_grid
from tests.helpers import TINY_FAMILY, close

GRID = dataclasses.replace(TINY_FAMILY, checkpoints=(0, 10, 20))
LOSS = charts.LOSS


@pytest.fixture(scope="module")
def res(shared_memo):
    return sims.simulate(GRID, shared_memo)



def test_loss_curves_carry_every_evaluation_of_every_model(res, specs):
    rows = next(d for d in inline_data(specs["loss_curves"]) if "step" in d[0])
    for m, train in zip(res.models, res.train_loss_at_eval):
        mine = [r for r in rows if r["model"] == model_name(m.config.n_layer, m.config.n_head)]
        heldout = [r for r in mine if r["data"] == "held-out"]
        assert [r["step"] for r in heldout] == m.eval_steps.tolist()
        assert close([r[LOSS] for r in heldout], m.heldout_loss)
        trained = [r for r in mine if r["data"] == "training"]
        assert [r["step"] for r in trained] == m.eval_steps[1:].tolist()
        assert close([r[LOSS] for r in trained], train[1:])


def test_reference_lines_are_the_corpus_baselines_and_floor(res, specs):
    refs = {r["reference"]: r[LOSS] for d in inline_data(specs["loss_curves"]) for r in d if "reference" in r}
    c = res.corpus
    assert close([refs["unigram"], refs["bigram"], refs["entropy floor"]],
                 [c.unigram_loss, c.bigram_loss, c.entropy_floor])


def test_model_controls_span_the_family_and_start_on_the_best_model(specs, res):
    ps = params(specs["loss_curves"])
    by_size = sorted(res.models, key=lambda m: m.n_params)
    assert ps["model"]["bind"]["options"] == [model_name(m.config.n_layer, m.config.n_head) for m in by_size]
    best = res.models[best_index(res.models)]
    assert ps["model"]["value"] == model_name(best.config.n_layer, best.config.n_head)
    assert best.heldout_loss[-1] == min(m.heldout_loss[-1] for m in res.models)


def test_scaling_points_are_final_losses_against_parameter_counts(res, specs):
    rows = next(d for d in inline_data(specs["scaling"]) if "parameters" in d[0])
    assert len(rows) == len(res.models)
    for r, m in zip(rows, sorted(res.models, key=lambda m: m.n_params)):  # joined smallest first
        assert (r["layers"], r["heads"], r["parameters"]) == (m.config.n_layer, m.config.n_head, m.n_params)
        assert close(r[LOSS], m.heldout_loss[-1])


def test_samples_chart_shows_each_checkpoints_stories_whole(res, specs):
    rows = inline_data(specs["samples"])[0]
    i = best_index(res.models)
    for step, texts in zip(GRID.checkpoints, res.sample_texts[i]):
        lines = [r["text"] for r in sorted((r for r in rows if r["step"] == step), key=lambda r: r["line"])]
        assert lines[0].startswith(f"step {step}: held-out loss ")
        stories = " ".join(lines[1:]).split("story ")[1:]
        assert [s.split(": ", 1)[1].strip() for s in stories] == [t or "(empty)" for t in texts]
    slider = params(specs["samples"])["step"]
    assert slider_grid(specs["samples"], "step") == list(GRID.checkpoints)  # one position per checkpoint
    assert (slider["bind"]["min"], slider["bind"]["max"], slider["bind"]["step"]) == (0, len(GRID.checkpoints) - 1, 1)


def test_facts_are_read_off_the_results(res):
    f = res.facts
    finals = [m.heldout_loss[-1] for m in res.models]
    assert f.best_loss == min(finals) and f.worst_loss == max(finals)
    assert f.floor == res.corpus.entropy_floor and f.bigram == res.corpus.bigram_loss
    assert f.sizes == [model_name(m.config.n_layer, m.config.n_head)
                       for m in sorted(res.models, key=lambda m: m.n_params)]
    assert f.uniform_loss == pytest.approx(np.log2(len(res.corpus.vocab)))
    assert f.checkpoints == [0, 10, 20]


def test_compute_chart_carries_every_curve_and_the_frontier(res, specs):
    data = inline_data(specs["compute"])
    curves = next(d for d in data if d and "step" in d[0])
    front = next(d for d in data if d and "leader" in d[0])
    for m, flops in zip(res.models, res.frontier.flops):
        mine = [r for r in curves if r["model"] == model_name(m.config.n_layer, m.config.n_head)]
        assert [r["step"] for r in mine] == m.eval_steps[1:].tolist()
        assert close([r["FLOPs"] for r in mine], 6 * m.n_params * m.eval_steps[1:] * m.config.batch_size
                     * m.config.data.n_ctx)
        assert close([r[LOSS] for r in mine], m.heldout_loss[1:])
    assert close([r[LOSS] for r in front], res.frontier.loss)
    names = [model_name(m.config.n_layer, m.config.n_head) for m in res.models]
    assert [r["leader"] for r in front] == [names[i] for i in res.frontier.leader]
