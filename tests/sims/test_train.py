"""Training: seeded to the bit, learning past the bigram baseline, and its optimiser pieces
against hand-worked cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from generator import cache as cache_module
from generator.sims import probes
from generator.sims import train as t
from generator.sims.stories import World
from generator.sims.gpt import leaves
from generator.sims.pretraining import summarise_corpus


@pytest.fixture(scope="module")
def model():
    return t.train_model(FAST)


DATA = t.DataConfig(n_ctx=32, train_stories=300, heldout_stories=24, seed=5)
FAST = t.TrainConfig(data=DATA, n_layer=1, n_head=2, n_embd=16, batch_size=8, steps=150,
                     learning_rate=0.02, warmup_steps=10, weight_decay=0.1, grad_clip=1.0,
                     eval_every=50, checkpoints=(0, 75, 150), n_samples=2, seed=3)


def test_training_twice_gives_bitwise_identical_weights_and_losses(model):
    again = t.train_model(FAST)
    for (name, a), (_, b) in zip(leaves(model.params), leaves(again.params)):
        assert np.array_equal(a, b), name
    for field in ("train_loss", "heldout_loss", "grad_norm", "samples"):
        assert np.array_equal(getattr(model, field), getattr(again, field)), field
    other = t.train_model(t.TrainConfig(**{**FAST.__dict__, "seed": 4}))
    assert not np.array_equal(other.params["wte"], model.params["wte"])


def test_held_out_loss_falls_below_the_bigram_baseline(model):
    corpus = summarise_corpus(DATA)
    assert model.heldout_loss[0] == pytest.approx(math.log2(len(model.vocab)), abs=0.1)  # knows nothing yet
    assert model.heldout_loss[-1] < corpus.bigram_loss < corpus.unigram_loss
    assert model.heldout_loss[-1] > corpus.entropy_floor


def test_records_cover_every_step_and_checkpoint(model):
    assert model.train_loss.shape == model.learning_rate.shape == model.grad_norm.shape == (150,)
    assert list(model.eval_steps) == [0, 50, 100, 150]
    assert model.samples.shape == (3, 2, 32)
    assert len(model.checkpoint_heads) == len(model.checkpoint_loss) == len(model.checkpoint_icl) == 3
    assert model.samples[0, 0, 0] == model.vocab.index("\n")


def test_the_last_checkpoints_probes_are_the_final_weights_probed_afresh(model):
    data = t.make_data(DATA)
    x = data.heldout_x[:t.PROBE_WINDOWS]
    pool, half = t.probe_tokens(model.vocab, DATA.n_ctx)
    assert half == 15 and sorted(model.vocab[i] for i in pool) == sorted(World().sounds)
    again = probes.score_heads(model.params, FAST.n_head, x, half, np.random.default_rng([FAST.seed, 5]),
                               model.vocab.index("\n"), pool)
    last = model.checkpoint_heads[-1]
    for name in ("previous_token", "previous_probe", "induction", "repeated_tokens", "repeated_any"):
        np.testing.assert_allclose(getattr(last, name), getattr(again, name), rtol=1e-12)
    by_position = probes.loss_by_position(model.params, FAST.n_head, data.heldout_x, data.heldout_y)
    assert model.checkpoint_loss[-1] == pytest.approx(model.heldout_loss[-1], rel=1e-5)
    assert model.checkpoint_icl[-1] == pytest.approx(by_position[25:].mean() - by_position[:6].mean())
    # at initialisation attention is near uniform: no head is anything yet
    assert max(model.checkpoint_heads[0].previous_token) < 0.2


def test_a_run_stopped_and_resumed_gives_the_same_model(model):
    saved = []
    cfg = t.TrainConfig(**{**FAST.__dict__, "steps": 40, "checkpoints": (0, 20, 40), "eval_every": 10})
    whole = t.train_model(cfg)

    def save(state):
        saved.append(cache_module._unpack(cache_module._pack(state)))  # as it would be read back
        if len(saved) == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        t.train_model(cfg, save=save, save_seconds=0.0)
    assert 0 < saved[0].step < 40
    resumed = t.train_model(cfg, state=saved[0])
    for (name, a), (_, b) in zip(leaves(whole.params), leaves(resumed.params)):
        assert np.array_equal(a, b), name
    for field in ("train_loss", "heldout_loss", "grad_norm", "samples", "checkpoint_loss"):
        assert np.array_equal(getattr(whole, field), getattr(resumed, field)), field


def test_learning_rate_warms_up_then_follows_a_cosine_to_a_tenth(model):
    lr = [t.learning_rate_at(s, FAST) for s in range(FAST.steps)]
    np.testing.assert_allclose(lr[:10], 0.02 * np.arange(1, 11) / 10)
    assert lr[-1] == pytest.approx(0.002)
    middle = 10 + (FAST.steps - 11) // 2
    assert lr[middle] == pytest.approx(0.011, rel=0.02)
    assert all(a >= b for a, b in zip(lr[10:], lr[11:]))
    np.testing.assert_allclose(model.learning_rate, lr)


def test_windows_shift_targets_by_one():
    ids = np.arange(20)
    x, y = t.windows(ids, np.array([0, 5]), 4)
    np.testing.assert_array_equal(x, [[0, 1, 2, 3], [5, 6, 7, 8]])
    np.testing.assert_array_equal(y, [[1, 2, 3, 4], [6, 7, 8, 9]])
    np.testing.assert_array_equal(t.fitting_starts(np.array([0, 10, 16]), 20, 4), [0, 10])


def test_every_held_out_window_starts_a_story():
    data = t.make_data(DATA)
    assert np.all(data.heldout_x[:, 0] == data.vocab.index("\n"))
    assert data.heldout_log2p.shape == data.heldout_y.shape
    assert np.all(data.heldout_log2p <= 0)


def test_adamw_first_step_hand_worked():
    layer = {"w": np.array([[1.0, -2.0]]), "b": np.array([0.5])}
    grads = [("c.b", np.array([4.0])), ("c.w", np.array([[0.1, -3.0]]))]
    opt = t.AdamW({"c": layer}, weight_decay=0.5)
    opt.step(grads, lr=0.1)
    # after one step Adam's update is the gradient's sign; decay shrinks matrices, not biases
    np.testing.assert_allclose(layer["w"], [[1.0 - 0.1 * (1 + 0.5), -2.0 - 0.1 * (-1 - 1.0)]], rtol=1e-6)
    np.testing.assert_allclose(layer["b"], [0.5 - 0.1], rtol=1e-6)


def test_clipping_scales_the_gradient_to_the_limit():
    grads = [("a", np.array([3.0])), ("b", np.array([[4.0]]))]
    assert t.global_norm(grads) == pytest.approx(5.0)
    clipped, plain = {"w": np.array([0.0])}, {"w": np.array([0.0])}
    t.AdamW(clipped, 0.0).step([("w", np.array([10.0]))], lr=1.0, scale=0.1)
    t.AdamW(plain, 0.0).step([("w", np.array([1.0]))], lr=1.0)
    np.testing.assert_allclose(clipped["w"], plain["w"])
