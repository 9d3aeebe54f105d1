"""The block chapter's results: the residual stream against the model's own trace, the logit
lens against the model's output (parameter counts are tested in test_ledger.py and
test_block_step.py)."""

from __future__ import annotations

import numpy as np
import pytest

from generator import content_files
from generator.grids import BlockGrid
from generator.sims import block as b
from generator.sims import gpt
from generator.sims.family import model_configs
from generator.sims.stories import END
from generator.validation import GridError
from tests.helpers import CONTENT, TINY_FAMILY, RecordingMemo, chapter_grids, family_grids

FAMILY = TINY_FAMILY
GRID = BlockGrid(prompt="once upon a time , there was a kind girl named Mia .", n_layer=2, n_head=2, step_position=5)


@pytest.fixture(scope="module")
def memo(shared_memo):
    return RecordingMemo(shared_memo)


@pytest.fixture(scope="module")
def res(memo):
    return b.simulate(content_files.ledger_inputs(chapter_grids(FAMILY, block=GRID), "block", CONTENT), memo)


@pytest.fixture(scope="module")
def calls(memo, res):
    return memo.calls  # (function name, config, result)


@pytest.fixture(scope="module")
def model(calls):
    return calls[0][2]


def test_only_the_chosen_model_is_read_through_the_memo_with_its_pretraining_config(calls):
    assert [(name, cfg) for name, cfg, _ in calls] == [
        ("train_model", next(c for c in model_configs(FAMILY) if (c.n_layer, c.n_head) == (2, 2)))]


def test_stages_and_norms_follow_the_models_own_trace(res, model):
    assert res.tokens == (END, *GRID.prompt.split())
    assert res.stages == ("embeddings", "layer 1 attention", "layer 1 MLP", "layer 2 attention", "layer 2 MLP")
    index = {w: i for i, w in enumerate(model.vocab)}
    trace = gpt.gpt(np.array([[index[w] for w in res.tokens]]), model.params, 2)
    streams = [trace.x, trace.blocks[0].x_attn, trace.blocks[0].x_mlp, trace.blocks[1].x_attn, trace.blocks[1].x_mlp]
    for s, stream in enumerate(streams):
        for i in range(len(res.tokens)):
            assert res.norms[s, i] == pytest.approx(np.sqrt(sum(float(v) ** 2 for v in stream[0, i])), rel=1e-6)


def test_logit_lens_after_the_last_block_is_the_models_output(res, model):
    final = np.exp(res.final_logits - res.final_logits.max(axis=-1, keepdims=True))
    final /= final.sum(axis=-1, keepdims=True)
    assert res.top_token[-1] == tuple(model.vocab[i] for i in final.argmax(axis=-1))
    assert np.allclose(res.top_prob[-1], final.max(axis=-1), rtol=1e-5)
    index = {w: i for i, w in enumerate(model.vocab)}
    nxt = [index[w] for w in res.tokens[1:]]
    assert np.allclose(res.next_prob[-1], final[np.arange(len(nxt)), nxt], rtol=1e-5)


def test_logit_lens_by_hand_after_the_embeddings(model, res):
    index = {w: i for i, w in enumerate(model.vocab)}
    p = model.params
    ids = [index[w] for w in res.tokens]
    x = p["wte"][ids].astype(np.float64) + p["wpe"][: len(ids)]
    x = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-5)
    logits = (x * p["ln_f"]["g"] + p["ln_f"]["b"]) @ p["wte"].T.astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    assert np.allclose(res.top_prob[0], probs.max(axis=1), rtol=1e-6)
    assert np.allclose(res.next_prob[0], probs[np.arange(len(ids) - 1), ids[1:]], rtol=1e-6)
    assert (res.next_prob >= 0).all() and (res.next_prob <= res.top_prob[:, :-1] + 1e-12).all()


def test_bad_grids_are_refused_naming_the_field():
    with pytest.raises(GridError, match="grids.block.n_layer"):
        family_grids(FAMILY, block=BlockGrid(n_layer=4, n_head=2))
    with pytest.raises(GridError, match="grids.block.prompt"):
        family_grids(FAMILY, block=BlockGrid(prompt="once upon a boy", n_layer=2, n_head=2))
    with pytest.raises(GridError, match=r"grids.block.step_layer"):
        BlockGrid(step_layer=5)
