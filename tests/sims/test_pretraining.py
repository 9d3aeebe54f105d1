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
    ({"n_heads": (1, 3)}, "n_heads[1]"), ({"n_layers": (2, 1)}, "n_layers[1]"),
    ({"n_layers": (0, 1)}, "n_layers[0]"), ({"checkpoints": (0, 30)}, "checkpoints[1]"),
    ({"warmup_steps": 20}, "warmup_steps"), ({"n_embd": 18, "n_heads": (1, 4)}, "n_heads[1]"),
])
def test_bad_grids_name_the_field(override, field):
    with pytest.raises(GridError, match=re.escape(f"grids.pretraining.{field}:")):
        PretrainingGrid(**{**GRID.__dict__, **override})
