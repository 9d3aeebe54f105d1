"""The shipped model family: up to date with the training code, reproducible, and refused
(naming the file) when damaged."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from generator import checkpoints
from generator.grids import PretrainingGrid, RagGrid
from generator.sims import rag, tool_use, train
from generator.sims.family import model_configs

FAMILY = model_configs(PretrainingGrid())
TOOLS = rag.tool_trainings(RagGrid(), PretrainingGrid())


def test_every_model_of_the_family_is_shipped_by_todays_training_code():
    stale = checkpoints.stale(FAMILY + TOOLS)
    assert not stale, (f"{checkpoints.stem(stale[0][0])}: {stale[0][1]}; run "
                       f"`{checkpoints.RETRAIN}` and commit content/checkpoints")


def test_the_shipped_family_fits_its_size_budget():
    total = sum(p.stat().st_size for p in checkpoints.CHECKPOINT_DIR.glob("*.npz"))
    assert total <= 10_000_000, f"{total} bytes of checkpoints"
    assert not (checkpoints.CHECKPOINT_DIR / ".partial").exists() or not any(
        (checkpoints.CHECKPOINT_DIR / ".partial").iterdir()), "an unfinished run's state is left behind"


def test_each_manifest_agrees_with_its_model():
    for cfg in FAMILY:
        manifest = checkpoints.read_manifest(cfg)
        model = checkpoints.load(cfg)
        assert manifest["config"] == checkpoints.plain_config(cfg)
        assert manifest["n_params"] == model.n_params
        assert manifest["eval_steps"] == model.eval_steps.tolist()
        np.testing.assert_allclose(manifest["heldout_loss"], model.heldout_loss, atol=1e-6)
        assert all(a.dtype == np.float32 for _, a in train.leaves(model.params))
        assert len(model.checkpoint_heads) == len(cfg.checkpoints) >= 20


def test_each_tool_manifest_agrees_with_its_model_and_its_base():
    for cfg in TOOLS:
        manifest = checkpoints.read_manifest(cfg)
        model = checkpoints.load(cfg)
        assert manifest["config"] == checkpoints.plain_config(cfg) and "pretrained" not in manifest["config"]
        assert manifest["base_npz_sha256"] == checkpoints.read_manifest(cfg.base)["npz_sha256"]
        np.testing.assert_allclose(manifest["train_loss_last_50"], model.train_loss[-50:], atol=1e-6)
        assert model.config == cfg and model.config.pretrained is None
        assert model.vocab[:model.n_base_vocab] == checkpoints.load(cfg.base).vocab


def test_a_tool_model_fine_tuned_from_another_base_is_stale(tmp_path):
    shipped_copy = tmp_path / "checkpoints"
    shutil.copytree(checkpoints.CHECKPOINT_DIR, shipped_copy)
    cfg = TOOLS[0]
    manifest = shipped_copy / f"{checkpoints.stem(cfg)}.json"
    data = json.loads(manifest.read_text())
    data["base_npz_sha256"] = "0" * 64
    manifest.write_text(json.dumps(data))
    assert checkpoints.stale([cfg], shipped_copy) == [(cfg, "fine-tuned from another base model")]


def test_retraining_the_first_50_steps_of_the_smallest_model_matches_its_record():
    cfg = min(FAMILY, key=lambda c: checkpoints.read_manifest(c)["n_params"])
    recorded = checkpoints.read_manifest(cfg)["train_loss_first_50"]

    class Enough(Exception):
        pass

    def stop_at_50(state):  # called after every step: the real run's code path, stopped early
        if state.step == 50:
            raise Enough(state.train_loss[:50].copy())

    with pytest.raises(Enough) as stopped:
        train.train_model(cfg, save=stop_at_50, save_seconds=0.0)
    np.testing.assert_allclose(stopped.value.args[0], recorded, rtol=1e-5)


@pytest.fixture
def shipped_copy(tmp_path):
    for path in checkpoints.CHECKPOINT_DIR.glob(f"{checkpoints.stem(FAMILY[0])}.*"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_a_damaged_checkpoint_is_an_error_naming_the_file(shipped_copy):
    npz = shipped_copy / f"{checkpoints.stem(FAMILY[0])}.npz"
    data = bytearray(npz.read_bytes())
    data[len(data) // 2] ^= 0xFF
    npz.write_bytes(bytes(data))
    with pytest.raises(checkpoints.CheckpointError, match=f"{npz.name}.*sha256.*{checkpoints.RETRAIN}"):
        checkpoints.load(FAMILY[0], shipped_copy)
    npz.unlink()
    with pytest.raises(checkpoints.CheckpointError, match=f"{npz.name}: cannot be read"):
        checkpoints.load(FAMILY[0], shipped_copy)


def test_a_bad_manifest_is_an_error_and_another_configs_is_passed_over(shipped_copy):
    manifest = shipped_copy / f"{checkpoints.stem(FAMILY[0])}.json"
    saved = manifest.read_text()
    manifest.write_text("{not json")
    with pytest.raises(checkpoints.CheckpointError, match=f"{manifest.name}: unreadable manifest"):
        checkpoints.load(FAMILY[0], shipped_copy)
    other = json.loads(saved)
    other["config"]["seed"] += 1
    manifest.write_text(json.dumps(other))
    assert checkpoints.load(FAMILY[0], shipped_copy) is None
    assert checkpoints.stale([FAMILY[0]], shipped_copy) == [(FAMILY[0], "shipped for another config")]


def test_a_manifest_from_other_training_code_is_stale_and_names_the_command(shipped_copy):
    manifest = shipped_copy / f"{checkpoints.stem(FAMILY[0])}.json"
    data = json.loads(manifest.read_text())
    data["code_fingerprint"] = "0" * 64
    manifest.write_text(json.dumps(data))
    assert checkpoints.stale([FAMILY[0]], shipped_copy) == [(FAMILY[0], "trained by other training code")]


def test_the_build_reads_shipped_models_and_computes_the_rest(shipped_copy):
    calls = []

    def memo(fn, config):
        calls.append(fn.__name__)
        return "computed"

    lookup = checkpoints.shipped_memo(memo, shipped_copy)
    assert lookup(train.train_model, FAMILY[0]).config == FAMILY[0]
    assert lookup(train.train_model, FAMILY[1]) == "computed"  # not in the copy
    assert lookup(len, "abc") == "computed"
    assert calls == ["train_model", "len"]


def test_the_train_command_ships_what_is_stale_and_nothing_else(tmp_path, capsys):
    tiny = train.TrainConfig(data=train.DataConfig(n_ctx=64, train_stories=40, heldout_stories=8, seed=1),
                             n_layer=1, n_head=1, n_embd=8, batch_size=4, steps=12, learning_rate=0.01,
                             warmup_steps=2, weight_decay=0.1, grad_clip=1.0, eval_every=6,
                             checkpoints=(0, 12), n_samples=1, seed=1)
    tool = tool_use.ToolTraining(base=tiny, calls=True, n_questions=20, steps=3, warmup_steps=1, batch_size=2)
    assert checkpoints.train_family([tiny, tool], tmp_path, workers=1) == ["gpt-1l-1h", "tools-1l-1h-calls"]
    assert checkpoints.stale([tiny, tool], tmp_path) == [] and not (tmp_path / ".partial").exists()
    shipped = checkpoints.load(tiny, tmp_path)
    np.testing.assert_array_equal(shipped.train_loss, train.train_model(tiny).train_loss)  # as if trained here
    here = tool_use.fine_tune(dataclasses.replace(tool, pretrained=shipped))
    np.testing.assert_array_equal(checkpoints.load(tool, tmp_path).train_loss, here.train_loss)
    assert checkpoints.train_family([tiny, tool], tmp_path, workers=1) == []  # up to date: nothing to do
    assert "every model of the family is shipped and up to date" in capsys.readouterr().err
