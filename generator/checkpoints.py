"""The model family shipped trained: one float32 .npz and one JSON manifest per model.

The family takes more compute to train than a build may spend (`python -m generator train`
trains it: about 10 minutes on 2 cores), so the trained models live in the repository
under content/checkpoints. Each model is two files named by its shape, e.g. gpt-2l-4h:

- gpt-2l-4h.npz: the whole TrainedModel (final weights in float32, every recorded loss, the
  checkpoints' probes and samples), packed as the results cache packs a result;
- gpt-2l-4h.json: the manifest: the TrainConfig it was trained with (data seed included), the
  fingerprint of the training code, steps, the held-out loss curve, wall time, parameter count
  and the npz's sha256.

The build looks a model up here before its cache (`shipped_memo`). A manifest for another
config is passed over (the build trains that model itself, with progress); a file that does not
load or does not match its manifest is an error naming it, never a silently different model; a
manifest whose training-code fingerprint differs from today's code is loaded, the build log
naming the command that retrains it (and tests/test_checkpoints.py fails until it is run).

Training writes its state every SAVE_SECONDS under content/checkpoints/.partial, so a run that
is interrupted goes on from there when started again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

from generator import cache as cache_module
from generator.sims import train
from generator.sims.train import TrainConfig, TrainedModel, TrainingState

log = logging.getLogger("mkdocs.plugins.explorables")

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "content" / "checkpoints"
FORMAT = 1
SAVE_SECONDS = 30.0
PROGRESS_SECONDS = 10.0
RETRAIN = "python -m generator train"


class CheckpointError(Exception):
    """A shipped checkpoint that cannot be used as it stands."""


def stem(cfg: TrainConfig) -> str:
    """The files' name. Example: a 2-layer, 4-head model -> 'gpt-2l-4h'"""
    return f"gpt-{cfg.n_layer}l-{cfg.n_head}h"


def code_fingerprint() -> str:
    """The fingerprint of the training code (train.py and every sims module it imports)."""
    return cache_module.code_fingerprint(train.__name__)


def plain_config(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def manifest_of(model: TrainedModel, sha256: str) -> dict:
    cfg = model.config
    return {
        "format": FORMAT,
        "config": plain_config(cfg),
        "data_seed": cfg.data.seed,
        "code_fingerprint": code_fingerprint(),
        "steps": cfg.steps,
        "n_params": model.n_params,
        "eval_steps": [int(s) for s in model.eval_steps],
        "heldout_loss": [round(float(x), 6) for x in model.heldout_loss],
        "train_loss_first_50": [float(x) for x in model.train_loss[:50]],
        "wall_seconds": round(float(model.wall_seconds), 1),
        "npz_sha256": sha256,
    }


def save(model: TrainedModel, directory: Path = CHECKPOINT_DIR) -> Path:
    """Write the model's npz, then its manifest, each atomically; returns the manifest's path."""
    directory.mkdir(parents=True, exist_ok=True)
    data = cache_module._pack(model)
    name = stem(model.config)
    cache_module.atomic_write(directory / f"{name}.npz", data)
    manifest = manifest_of(model, hashlib.sha256(data).hexdigest())
    path = directory / f"{name}.json"
    cache_module.atomic_write(path, (json.dumps(manifest, indent=1) + "\n").encode())
    return path


def read_manifest(cfg: TrainConfig, directory: Path = CHECKPOINT_DIR) -> dict | None:
    """The manifest shipped for cfg's shape, or None; raises CheckpointError if unreadable."""
    path = directory / f"{stem(cfg)}.json"
    if not path.exists():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, not {FORMAT}")
        return manifest
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable manifest ({exc}); run `{RETRAIN}`") from exc


def load(cfg: TrainConfig, directory: Path = CHECKPOINT_DIR) -> TrainedModel | None:
    """The shipped model trained with exactly cfg, or None if none is shipped for cfg."""
    manifest = read_manifest(cfg, directory)
    if manifest is None or manifest["config"] != plain_config(cfg):
        if manifest is not None:
            log.info("checkpoint %s.json was trained with another config; the build trains "
                     "this model itself (`%s` ships it)", stem(cfg), RETRAIN)
        return None
    path = directory / f"{stem(cfg)}.npz"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot be read ({exc}); run `{RETRAIN}`") from exc
    if hashlib.sha256(data).hexdigest() != manifest["npz_sha256"]:
        raise CheckpointError(f"{path}: its sha256 does not match {path.with_suffix('.json').name}; "
                              f"run `{RETRAIN}`")
    try:
        model = cache_module._unpack(data)
        if not isinstance(model, TrainedModel) or model.config != cfg:
            raise TypeError("it does not hold a TrainedModel of this config")
    except Exception as exc:  # whatever a bad file raises, it is named
        raise CheckpointError(f"{path}: does not load ({exc}); run `{RETRAIN}`") from exc
    if manifest["code_fingerprint"] != code_fingerprint():
        log.info("checkpoint %s was trained by other training code than today's; "
                 "run `%s` to retrain it (tests/test_checkpoints.py fails until then)", path.name, RETRAIN)
    return model


def digest(directory: Path = CHECKPOINT_DIR) -> str:
    """sha256 over every shipped manifest (each names its npz's sha256): what the family is."""
    h = hashlib.sha256()
    for path in sorted(directory.glob("*.json")):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def shipped_memo(memo: Callable[[Callable, Any], Any],
                 directory: Path = CHECKPOINT_DIR) -> Callable[[Callable, Any], Any]:
    """A memo that serves train_model from the shipped checkpoints, everything else from memo."""
    def lookup(fn: Callable, config: Any) -> Any:
        if fn is train.train_model:
            model = load(config, directory)
            if model is not None:
                return model
        return memo(fn, config)
    return lookup


def stale(cfgs: list[TrainConfig], directory: Path = CHECKPOINT_DIR) -> list[tuple[TrainConfig, str]]:
    """The configs whose shipped model is missing, for another config or by other code; why."""
    out = []
    fingerprint = code_fingerprint()
    for cfg in cfgs:
        manifest = read_manifest(cfg, directory)
        if manifest is None:
            out.append((cfg, "not shipped"))
        elif manifest["config"] != plain_config(cfg):
            out.append((cfg, "shipped for another config"))
        elif manifest["code_fingerprint"] != fingerprint:
            out.append((cfg, "trained by other training code"))
    return out


# ---------------------------------------------------------------------------------------------
# Training the family: `python -m generator train`


def _partial_path(cfg: TrainConfig, directory: Path) -> Path:
    return directory / ".partial" / f"{stem(cfg)}.npz"


def _resume(cfg: TrainConfig, directory: Path) -> TrainingState | None:
    """The saved state of an interrupted run of cfg by today's code, or None."""
    path = _partial_path(cfg, directory)
    meta = path.with_suffix(".json")
    try:
        if json.loads(meta.read_text())["code_fingerprint"] != code_fingerprint():
            return None
        state = cache_module._unpack(path.read_bytes())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if isinstance(state, TrainingState) and state.config == cfg else None


def _train_one(cfg: TrainConfig, directory: Path, progress: Any) -> str:
    """Train (or resume) one model in this process and ship it; returns its stem."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    partial = _partial_path(cfg, directory)
    partial.parent.mkdir(parents=True, exist_ok=True)

    def save_state(state: TrainingState) -> None:
        cache_module.atomic_write(partial, cache_module._pack(state))
        cache_module.atomic_write(partial.with_suffix(".json"),
                                  json.dumps({"code_fingerprint": code_fingerprint()}).encode())

    def report(state: TrainingState) -> None:
        progress.put((stem(cfg), state.step, cfg.steps, float(state.train_loss[state.step - 1]), state.seconds))

    state = _resume(cfg, directory)
    model = train.train_model(cfg, state=state, save=save_state, save_seconds=SAVE_SECONDS, progress=report)
    save(model, directory)
    for path in (partial, partial.with_suffix(".json")):
        path.unlink(missing_ok=True)
    progress.put((stem(cfg), cfg.steps, cfg.steps, float(model.train_loss[-1]), model.wall_seconds))
    return stem(cfg)


def _bar(done: int, total: int, width: int = 12) -> str:
    filled = width * done // max(total, 1)
    return "#" * filled + "." * (width - filled)


def train_family(cfgs: list[TrainConfig], directory: Path = CHECKPOINT_DIR, workers: int = 2,
                 everything: bool = False) -> list[str]:
    """Train every model whose shipped checkpoint is stale (or every one), `workers` at a time,
    largest first, with a progress bar on stderr; returns the stems written."""
    import multiprocessing

    todo = cfgs if everything else [cfg for cfg, _ in stale(cfgs, directory)]
    todo = sorted(todo, key=lambda c: -c.n_layer * c.n_head ** 2)  # the longest runs first
    if not todo:
        print("every model of the family is shipped and up to date", file=sys.stderr)
        return []
    manager = multiprocessing.Manager()
    progress = manager.Queue()
    state = {stem(c): (0, c.steps, float("nan"), 0.0) for c in todo}
    written: list[str] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_train_one, cfg, directory, progress) for cfg in todo]
        last = 0.0
        while not all(f.done() for f in futures):
            try:
                name, step, steps, loss, seconds = progress.get(timeout=1.0)
                state[name] = (step, steps, loss, seconds)
            except Exception:  # queue.Empty: nothing new this second
                pass
            if time.monotonic() - last >= PROGRESS_SECONDS:
                last = time.monotonic()
                print(" | ".join(f"{n} [{_bar(s, t)}] {s}/{t} {l:.3f} bits"
                                 for n, (s, t, l, _) in state.items() if 0 < s < t) or "starting",
                      file=sys.stderr, flush=True)
            for f in futures:
                if f.done() and f.result() not in written:
                    written.append(f.result())
                    print(f"shipped {f.result()} ({len(written)}/{len(todo)})", file=sys.stderr, flush=True)
    try:
        (directory / ".partial").rmdir()  # empty once every run has finished
    except OSError:
        pass
    return written
