"""The pretraining chapter's results: baselines against plain counting, the floor against the
grammar, the family trained once per grid point (the trained model's next token is the
sampling chapter's, tested in tests/sims/test_sampling.py)."""

from __future__ import annotations

import dataclasses
import math
import re
from collections import Counter

import numpy as np
import pytest

from generator.grids import PretrainingGrid, SamplingGrid
from generator.sims import pretraining as p
from generator.sims.family import model_configs
from generator.sims.stories import World, next_token_probs
from generator.sims.train import make_data
from generator.validation import GridError
from tests.helpers import TINY_FAMILY, RecordingMemo, family_grids

# The tiny family, with one more checkpoint for the training-loss means between evaluations.
GRID = dataclasses.replace(TINY_FAMILY, checkpoints=(0, 10, 20))


@pytest.fixture(scope="module")
def memo():
    return RecordingMemo()


@pytest.fixture(scope="module")
def res(memo):
    return p.simulate(GRID, memo)


@pytest.fixture(scope="module")
def calls(memo, res):
    return [(name, config) for name, config, _ in memo.calls]


@pytest.fixture(scope="module")
def data():
    return make_data(model_configs(GRID)[0].data)


def test_each_model_and_the_corpus_go_through_the_memo_once(calls, res):
    names = [name for name, _ in calls]
    assert names == ["summarise_corpus"] + ["train_model"] * 4
    configs = [c for name, c in calls if name == "train_model"]
    assert [(c.n_layer, c.n_head) for c in configs] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert len({c.data for c in configs}) == 1  # one corpus, shared by the family
    assert [(m.config.n_layer, m.config.n_head) for m in res.models] == [(1, 1), (1, 2), (2, 1), (2, 2)]


def test_baselines_match_plain_counting(data, res):
    ids = data.train_ids.tolist()
    n_vocab = len(data.vocab)
    unigram, pairs, before = Counter(ids), Counter(zip(ids, ids[1:])), Counter(ids[:-1])
    p_uni = {w: (unigram[w] + 1) / (len(ids) + n_vocab) for w in range(n_vocab)}
    uni, bi = [], []
    for x_row, y_row in zip(data.heldout_x.tolist(), data.heldout_y.tolist()):
        for prev, w in zip(x_row, y_row):
            uni.append(-math.log2(p_uni[w]))
            bi.append(-math.log2((pairs[prev, w] + p_uni[w]) / (before[prev] + 1)))
    assert res.corpus.unigram_loss == pytest.approx(np.mean(uni), rel=1e-12)
    assert res.corpus.bigram_loss == pytest.approx(np.mean(bi), rel=1e-12)


def test_entropy_floor_is_the_grammars_loss_on_the_held_out_targets(data, res):
    # recompute each target's probability from the grammar itself, token by token
    world = World()
    total = []
    for x_row, y_row in zip(data.heldout_x[:3], data.heldout_y[:3]):
        tokens = [data.vocab[i] for i in np.append(x_row, y_row[-1])]
        story = []
        for prev, nxt in zip(tokens, tokens[1:]):
            story = [] if prev == "\n" else story + [prev]
            total.append(-math.log2(next_token_probs(world, story)[nxt]))
    np.testing.assert_allclose(total, -data.heldout_log2p[:3].ravel(), rtol=1e-9, atol=1e-12)
    assert res.corpus.entropy_floor == pytest.approx(-data.heldout_log2p.mean())
    assert res.corpus.n_heldout_targets == data.heldout_y.size
    assert 0 < res.corpus.share_certain < 1


def test_training_loss_between_evaluations_is_the_mean_of_the_steps(res):
    m = res.models[0]
    curve = res.train_loss_at_eval[0]
    assert np.isnan(curve[0])
    assert curve[1] == pytest.approx(m.train_loss[:10].mean())
    assert curve[2] == pytest.approx(m.train_loss[10:20].mean())


def test_sample_texts_are_the_sampled_tokens_up_to_the_story_end(res):
    m = res.models[3]
    for checkpoint, texts in zip(m.samples, res.sample_texts[3]):
        for ids, text in zip(checkpoint, texts):
            words = [m.vocab[i] for i in ids[1:]]
            words = words[: words.index("\n")] if "\n" in words else words
            assert text.replace(",", " ,").replace(".", " .").split() == words


def test_a_prompt_the_grammar_cannot_tell_is_a_grid_error():
    with pytest.raises(GridError, match="grids.sampling.model_prompt"):
        family_grids(GRID, sampling=SamplingGrid(model_prompt="once upon a dog"))


@pytest.mark.parametrize("override,field", [
    ({"n_heads": (1, 2, 1)}, "n_heads"), ({"n_heads": (1, 1, 1, 2)}, "n_layers[1], n_heads[1]"),
    ({"n_layers": (0, 1, 2, 2)}, "n_layers[0]"), ({"n_heads": (1, 2, 17, 2)}, "n_heads[2]"), ({"checkpoints": (0, 30)}, "checkpoints[1]"),
    ({"warmup_steps": 20}, "warmup_steps"), ({"head_width": 0}, "head_width"),
])
def test_bad_grids_name_the_field(override, field):
    with pytest.raises(GridError, match=re.escape(f"grids.pretraining.{field}:")):
        PretrainingGrid(**{**GRID.__dict__, **override})


def test_compute_is_six_n_d_and_the_frontier_is_the_lowest_curve_at_each_compute(res):
    f = res.frontier
    for m, flops in zip(res.models, f.flops):
        tokens = m.eval_steps * m.config.batch_size * m.config.data.n_ctx
        np.testing.assert_allclose(flops, 6 * m.n_params * tokens)
    for c, loss, leader in zip(f.grid, f.loss, f.leader):
        reached = {}
        for i, (m, flops) in enumerate(zip(res.models, f.flops)):
            if c <= flops[-1] * (1 + 1e-12):  # this model trained that long
                j = max(k for k in range(1, len(flops)) if flops[k] <= c * (1 + 1e-12))
                if j == len(flops) - 1:
                    reached[i] = m.heldout_loss[j]
                else:  # straight line between evaluations, in log compute
                    t = (math.log(c) - math.log(flops[j])) / (math.log(flops[j + 1]) - math.log(flops[j]))
                    reached[i] = m.heldout_loss[j] + t * (m.heldout_loss[j + 1] - m.heldout_loss[j])
        best = min(reached, key=reached.get)
        assert loss == pytest.approx(reached[best], rel=1e-9) and reached[leader] == pytest.approx(loss, rel=1e-9)
    assert [s[1:] for s in f.switches] == [(int(a), int(b)) for a, b in zip(f.leader, f.leader[1:]) if a != b]


def test_scaling_facts_follow_the_final_losses(res):
    fa = res.facts
    by_size = sorted(res.models, key=lambda m: m.n_params)
    losses = [m.heldout_loss[-1] for m in by_size]
    assert fa.size_losses == pytest.approx(losses)
    assert fa.monotone == all(b < a for a, b in zip(losses, losses[1:]))
    assert len(fa.size_exceptions) == sum(b >= a for a, b in zip(losses, losses[1:]))
    assert fa.size_gain == pytest.approx(losses[0] - losses[-1])
    lo, hi = res.models[res.frontier.leader[0]], res.models[res.frontier.leader[-1]]
    assert fa.curves_cross == (lo.n_params < hi.n_params)
