"""The pretraining chapter's results: baselines against plain counting, the floor against the
grammar, the family trained once per grid point, and the sampling companion against the
sampling chapter's own functions."""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
import pytest

from generator.grids import GridError, PretrainingGrid
from generator.sims import pretraining as p
from generator.sims import sampling
from generator.sims.gpt import next_token_logits
from generator.sims.stories import World, next_token_probs
from generator.sims.train import make_data

GRID = PretrainingGrid(n_layers=(1, 2), n_heads=(1, 2), n_embd=16, n_ctx=32, batch_size=4, steps=20,
                       warmup_steps=5, eval_every=10, checkpoints=(0, 10, 20), train_stories=100,
                       heldout_stories=8, prompt="once upon a time , there was", temperatures=(0.5, 1.0, 2.0),
                       top_p=(0.5, 1.0), companion_tokens=5)
CALLS = []


def recording_memo(fn, config):
    CALLS.append((fn.__name__, config))
    return fn(config)


RES = p.simulate(GRID, recording_memo)
DATA = make_data(p.model_configs(GRID)[0].data)


def test_each_model_and_the_corpus_go_through_the_memo_once():
    names = [name for name, _ in CALLS]
    assert names == ["summarise_corpus"] + ["train_model"] * 4
    configs = [c for name, c in CALLS if name == "train_model"]
    assert [(c.n_layer, c.n_head) for c in configs] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert len({c.data for c in configs}) == 1  # one corpus, shared by the family
    assert [(m.config.n_layer, m.config.n_head) for m in RES.models] == [(1, 1), (1, 2), (2, 1), (2, 2)]


def test_baselines_match_plain_counting():
    ids = DATA.train_ids.tolist()
    n_vocab = len(DATA.vocab)
    unigram, pairs, before = Counter(ids), Counter(zip(ids, ids[1:])), Counter(ids[:-1])
    p_uni = {w: (unigram[w] + 1) / (len(ids) + n_vocab) for w in range(n_vocab)}
    uni, bi = [], []
    for x_row, y_row in zip(DATA.heldout_x.tolist(), DATA.heldout_y.tolist()):
        for prev, w in zip(x_row, y_row):
            uni.append(-math.log2(p_uni[w]))
            bi.append(-math.log2((pairs[prev, w] + p_uni[w]) / (before[prev] + 1)))
    assert RES.corpus.unigram_loss == pytest.approx(np.mean(uni), rel=1e-12)
    assert RES.corpus.bigram_loss == pytest.approx(np.mean(bi), rel=1e-12)


def test_entropy_floor_is_the_grammars_loss_on_the_held_out_targets():
    # recompute each target's probability from the grammar itself, token by token
    world = World()
    total = []
    for x_row, y_row in zip(DATA.heldout_x[:3], DATA.heldout_y[:3]):
        tokens = [DATA.vocab[i] for i in np.append(x_row, y_row[-1])]
        story = []
        for prev, nxt in zip(tokens, tokens[1:]):
            story = [] if prev == "\n" else story + [prev]
            total.append(-math.log2(next_token_probs(world, story)[nxt]))
    np.testing.assert_allclose(total, -DATA.heldout_log2p[:3].ravel(), rtol=1e-9, atol=1e-12)
    assert RES.corpus.entropy_floor == pytest.approx(-DATA.heldout_log2p.mean())
    assert RES.corpus.n_heldout_targets == DATA.heldout_y.size
    assert 0 < RES.corpus.share_certain < 1


def test_training_loss_between_evaluations_is_the_mean_of_the_steps():
    m = RES.models[0]
    curve = RES.train_loss_at_eval[0]
    assert np.isnan(curve[0])
    assert curve[1] == pytest.approx(m.train_loss[:10].mean())
    assert curve[2] == pytest.approx(m.train_loss[10:20].mean())


def test_sample_texts_are_the_sampled_tokens_up_to_the_story_end():
    m = RES.models[3]
    for checkpoint, texts in zip(m.samples, RES.sample_texts[3]):
        for ids, text in zip(checkpoint, texts):
            words = [m.vocab[i] for i in ids[1:]]
            words = words[: words.index("\n")] if "\n" in words else words
            assert text.replace(",", " ,").replace(".", " .").split() == words


def test_companion_is_the_best_models_logits_through_the_sampling_functions():
    c = RES.companion
    best = min(RES.models, key=lambda m: m.heldout_loss[-1])
    assert (c.n_layer, c.n_head) == (best.config.n_layer, best.config.n_head)
    ids = np.array([[best.vocab.index(w) for w in ["\n"] + GRID.prompt.split()]])
    logits = next_token_logits(ids, best.params, best.config.n_head)[0].astype(np.float64)
    order = np.argsort(-logits, kind="stable")[:5]
    assert c.tokens == tuple(best.vocab[i] for i in order)
    np.testing.assert_allclose(c.logits, logits[order])
    for i, temperature in enumerate(GRID.temperatures):
        for j, top_p in enumerate(GRID.top_p):
            full = sampling.softmax_with_temperature(logits, temperature)
            q = sampling.renormalise(full, sampling.top_p_keep(full, top_p))
            np.testing.assert_allclose(c.probs[i, j], q[order])
            assert c.probs[i, j].sum() + c.other[i, j] == pytest.approx(1.0)
            assert c.entropy[i, j] == pytest.approx(sampling.entropy_bits(q))
    grammar = next_token_probs(World(), GRID.prompt.split())  # {"a": 5/6, "an": 1/6}
    np.testing.assert_allclose(c.grammar_probs, [grammar.get(t, 0.0) for t in c.tokens])


def test_a_prompt_the_grammar_cannot_tell_is_a_grid_error():
    bad = PretrainingGrid(**{**GRID.__dict__, "prompt": "once upon a dog"})
    with pytest.raises(GridError, match="grids.pretraining.prompt"):
        p.simulate(bad, recording_memo)


@pytest.mark.parametrize("override,field", [
    ({"n_heads": (1, 3)}, "n_heads[1]"), ({"n_layers": (2, 1)}, "n_layers[1]"),
    ({"n_layers": (0, 1)}, "n_layers[0]"), ({"checkpoints": (0, 30)}, "checkpoints[1]"),
    ({"warmup_steps": 20}, "warmup_steps"), ({"n_embd": 18, "n_heads": (1, 4)}, "n_heads[1]"),
])
def test_bad_grids_name_the_field(override, field):
    with pytest.raises(GridError, match=re.escape(f"grids.pretraining.{field}:")):
        PretrainingGrid(**{**GRID.__dict__, **override})
