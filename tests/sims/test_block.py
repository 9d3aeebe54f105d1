"""The block chapter's results: the residual stream against the model's own trace, the logit
lens against the model's output (parameter counts are tested in test_ledger.py and
test_block_step.py)."""

from __future__ import annotations

import numpy as np
import pytest

from generator.grids import BlockGrid, GridError, PretrainingGrid
from generator.sims import block as b
from generator.sims import gpt
from generator.sims.pretraining import model_configs
from generator.sims.stories import END

FAMILY = PretrainingGrid(n_layers=(1, 2), n_heads=(1, 2), n_embd=16, n_ctx=32, batch_size=4, steps=20,
                         warmup_steps=5, eval_every=10, checkpoints=(0, 20), train_stories=100,
                         heldout_stories=8, prompt="once upon a time , there was")
GRID = BlockGrid(prompt="once upon a time , there was a kind girl named Mia .", n_layer=2, n_head=2)
CALLS = []  # (function name, config, result)


def recording_memo(fn, config):
    CALLS.append((fn.__name__, config, fn(config)))
    return CALLS[-1][2]


RES = b.simulate((GRID, FAMILY), recording_memo)
MODEL = CALLS[0][2]


def test_only_the_chosen_model_is_read_through_the_memo_with_its_pretraining_config():
    assert [(name, cfg) for name, cfg, _ in CALLS] == [
        ("train_model", next(c for c in model_configs(FAMILY) if (c.n_layer, c.n_head) == (2, 2)))]


def test_stages_and_norms_follow_the_models_own_trace():
    assert RES.tokens == (END, *GRID.prompt.split())
    assert RES.stages == ("embeddings", "layer 1 attention", "layer 1 MLP", "layer 2 attention", "layer 2 MLP")
    index = {w: i for i, w in enumerate(MODEL.vocab)}
    trace = gpt.gpt(np.array([[index[w] for w in RES.tokens]]), MODEL.params, 2)
    streams = [trace.x, trace.blocks[0].x_attn, trace.blocks[0].x_mlp, trace.blocks[1].x_attn, trace.blocks[1].x_mlp]
    for s, stream in enumerate(streams):
        for i in range(len(RES.tokens)):
            assert RES.norms[s, i] == pytest.approx(np.sqrt(sum(float(v) ** 2 for v in stream[0, i])), rel=1e-6)


def test_logit_lens_after_the_last_block_is_the_models_output():
    final = np.exp(RES.final_logits - RES.final_logits.max(axis=-1, keepdims=True))
    final /= final.sum(axis=-1, keepdims=True)
    assert RES.top_token[-1] == tuple(MODEL.vocab[i] for i in final.argmax(axis=-1))
    assert np.allclose(RES.top_prob[-1], final.max(axis=-1), rtol=1e-5)
    index = {w: i for i, w in enumerate(MODEL.vocab)}
    nxt = [index[w] for w in RES.tokens[1:]]
    assert np.allclose(RES.next_prob[-1], final[np.arange(len(nxt)), nxt], rtol=1e-5)


def test_logit_lens_by_hand_after_the_embeddings():
    index = {w: i for i, w in enumerate(MODEL.vocab)}
    p = MODEL.params
    ids = [index[w] for w in RES.tokens]
    x = p["wte"][ids].astype(np.float64) + p["wpe"][: len(ids)]
    x = (x - x.mean(axis=1, keepdims=True)) / np.sqrt(x.var(axis=1, keepdims=True) + 1e-5)
    logits = (x * p["ln_f"]["g"] + p["ln_f"]["b"]) @ p["wte"].T.astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    assert np.allclose(RES.top_prob[0], probs.max(axis=1), rtol=1e-6)
    assert np.allclose(RES.next_prob[0], probs[np.arange(len(ids) - 1), ids[1:]], rtol=1e-6)
    assert (RES.next_prob >= 0).all() and (RES.next_prob <= RES.top_prob[:, :-1] + 1e-12).all()


def test_bad_grids_are_refused_naming_the_field():
    with pytest.raises(GridError, match="grids.block.n_layer"):
        b.simulate((BlockGrid(n_layer=4, n_head=2), FAMILY))
    with pytest.raises(GridError, match="grids.block.prompt"):
        b.simulate((BlockGrid(prompt="once upon a boy", n_layer=2, n_head=2), FAMILY))
    with pytest.raises(GridError, match=r"grids.block.step_layer"):
        BlockGrid(step_layer=5)
