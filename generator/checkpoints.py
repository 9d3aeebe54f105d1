"""The model family shipped trained: one float32 .npz and one JSON manifest per model.

Shipped the same way: the RAG chapter's two tiny tool models (generator.sims.tool_use), each
fine-tuned from a model of the family, e.g. tools-2l-4h-calls; a tool model's manifest also
names its base's npz sha256, so retraining the base makes it stale.

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
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

from generator import cache as cache_module
from generator.sims import parallel, tool_use, train
from generator.sims.tool_use import ToolModel, ToolTraining
from generator.sims.train import TrainConfig, TrainedModel, TrainingState

log = logging.getLogger("mkdocs.plugins.explorables")

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "content" / "checkpoints"
FORMAT = 1
SAVE_SECONDS = 30.0
PROGRESS_SECONDS = 10.0
RETRAIN = "python -m generator train"


class CheckpointError(Exception):
    """A shipped checkpoint that cannot be used as it stands."""


Config = TrainConfig | ToolTraining
Model = TrainedModel | ToolModel


def stem(cfg: Config) -> str:
    """The files' name. Example: a 2-layer, 4-head model -> 'gpt-2l-4h'; the tool model
    fine-tuned from it to call -> 'tools-2l-4h-calls'"""
    if isinstance(cfg, ToolTraining):
        return f"tools-{cfg.base.n_layer}l-{cfg.base.n_head}h-{'calls' if cfg.calls else 'direct'}"
    return f"gpt-{cfg.n_layer}l-{cfg.n_head}h"


def code_fingerprint(cfg: Config | None = None) -> str:
    """The fingerprint of the code that trains cfg (train.py, or tool_use.py for a tool model,
    and every sims module it imports)."""
    module = tool_use if isinstance(cfg, ToolTraining) else train
    return cache_module.code_fingerprint(module.__name__)


def plain_config(cfg: Config) -> dict:
    """The config as JSON data, without the fields the cache does not key on (a tool model's
    pretrained base)."""
    keyed = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.metadata.get("key", True)}
    return json.loads(json.dumps({k: dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v
                                  for k, v in keyed.items()}))


def manifest_of(model: Model, sha256: str, directory: Path | None = None) -> dict:
    cfg = model.config
    common = {"format": FORMAT, "config": plain_config(cfg), "code_fingerprint": code_fingerprint(cfg)}
    if isinstance(model, ToolModel):
        base = read_manifest(cfg.base, directory or CHECKPOINT_DIR)
        return {**common, "steps": cfg.steps,
                "base_npz_sha256": base["npz_sha256"] if base else None,
                "train_loss_last_50": [round(float(x), 6) for x in model.train_loss[-50:]],
                "wall_seconds": round(float(model.wall_seconds), 1), "npz_sha256": sha256}
    return {
        **common,
        "data_seed": cfg.data.seed,
        "steps": cfg.steps,
        "n_params": model.n_params,
        "eval_steps": [int(s) for s in model.eval_steps],
        "heldout_loss": [round(float(x), 6) for x in model.heldout_loss],
        "train_loss_first_50": [float(x) for x in model.train_loss[:50]],
        "wall_seconds": round(float(model.wall_seconds), 1),
        "npz_sha256": sha256,
    }


def save(model: Model, directory: Path = CHECKPOINT_DIR) -> Path:
    """Write the model's npz, then its manifest, each atomically; returns the manifest's path."""
    directory.mkdir(parents=True, exist_ok=True)
    data = cache_module._pack(model)
    name = stem(model.config)
    cache_module.atomic_write(directory / f"{name}.npz", data)
    manifest = manifest_of(model, hashlib.sha256(data).hexdigest(), directory)
    path = directory / f"{name}.json"
    cache_module.atomic_write(path, (json.dumps(manifest, indent=1) + "\n").encode())
    return path


def read_manifest(cfg: Config, directory: Path = CHECKPOINT_DIR) -> dict | None:
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


def load(cfg: Config, directory: Path = CHECKPOINT_DIR) -> Model | None:
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
        if not isinstance(model, (TrainedModel, ToolModel)) or model.config != cfg:
            raise TypeError("it does not hold a trained model of this config")
    except Exception as exc:  # whatever a bad file raises, it is named
        raise CheckpointError(f"{path}: does not load ({exc}); run `{RETRAIN}`") from exc
    if manifest["code_fingerprint"] != code_fingerprint(cfg):
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
    """A memo that serves train_model and tool_use.fine_tune from the shipped checkpoints,
    everything else from memo."""
    def lookup(fn: Callable, config: Any) -> Any:
        if fn is train.train_model or fn is tool_use.fine_tune:
            model = load(config, directory)
            if model is not None:
                return model
        return memo(fn, config)
    return lookup


def stale(cfgs: list[Config], directory: Path = CHECKPOINT_DIR) -> list[tuple[Config, str]]:
    """The configs whose shipped model is missing, for another config or by other code, or
    fine-tuned from another base than the one shipped; why."""
    out = []
    for cfg in cfgs:
        manifest = read_manifest(cfg, directory)
        if manifest is None:
            out.append((cfg, "not shipped"))
        elif manifest["config"] != plain_config(cfg):
            out.append((cfg, "shipped for another config"))
        elif manifest["code_fingerprint"] != code_fingerprint(cfg):
            out.append((cfg, "trained by other training code"))
        elif isinstance(cfg, ToolTraining) and manifest.get("base_npz_sha256") != (
                (read_manifest(cfg.base, directory) or {}).get("npz_sha256")):
            out.append((cfg, "fine-tuned from another base model"))
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
        if json.loads(meta.read_text())["code_fingerprint"] != code_fingerprint(cfg):
            return None
        state = cache_module._unpack(path.read_bytes())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if isinstance(state, TrainingState) and state.config == cfg else None


def _train_one(cfg: TrainConfig, directory: Path, progress: Any) -> str:
    """Train (or resume) one model in this process and ship it; returns its stem."""
    partial = _partial_path(cfg, directory)
    partial.parent.mkdir(parents=True, exist_ok=True)

    def save_state(state: TrainingState) -> None:
        cache_module.atomic_write(partial, cache_module._pack(state))
        cache_module.atomic_write(partial.with_suffix(".json"),
                                  json.dumps({"code_fingerprint": code_fingerprint(cfg)}).encode())

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


def _fine_tune_one(cfg: ToolTraining, directory: Path, progress: Any) -> str:
    """Fine-tune one tool model from its shipped base in this process and ship it; its stem."""
    base = load(cfg.base, directory)
    if base is None:
        raise CheckpointError(f"{stem(cfg)}: its base model {stem(cfg.base)} is not shipped for "
                              f"today's config; run `{RETRAIN}`")
    progress.put((stem(cfg), 0, cfg.steps, float("nan"), 0.0))
    model = tool_use.fine_tune(dataclasses.replace(cfg, pretrained=base))
    save(model, directory)
    progress.put((stem(cfg), cfg.steps, cfg.steps, float(model.train_loss[-1]), model.wall_seconds))
    return stem(cfg)


def train_family(cfgs: list[Config], directory: Path = CHECKPOINT_DIR, workers: int = 2,
                 everything: bool = False) -> list[str]:
    """Train every model whose shipped checkpoint is stale (or every one), `workers` at a time,
    largest first, with a progress line on stderr every PROGRESS_SECONDS; then fine-tune the
    tool models that are stale or whose base was just retrained. Returns the stems written."""
    todo = cfgs if everything else [cfg for cfg, _ in stale(cfgs, directory)]
    family = sorted((c for c in todo if isinstance(c, TrainConfig)),
                    key=lambda c: -c.n_layer * c.n_head ** 2)  # the longest runs first
    tools = [c for c in cfgs if isinstance(c, ToolTraining) and (c in todo or c.base in family)]
    if not family and not tools:
        print("every model of the family is shipped and up to date", file=sys.stderr)
        return []
    written = _run_pool(_train_one, family, directory, workers, len(family) + len(tools))
    return written + _run_pool(_fine_tune_one, tools, directory, workers, len(family) + len(tools),
                               len(written))


def _run_pool(job: Callable, cfgs: list[Config], directory: Path, workers: int, total: int,
              done_before: int = 0) -> list[str]:
    """job(cfg, directory, progress) for every cfg in a pool of `workers` processes."""
    if not cfgs:
        return []
    # The workers' environment (one BLAS thread each, see generator.sims.parallel), set before
    # they start: a BLAS library reads it when it is loaded, in a spawned worker before any job.
    with parallel.worker_environment():
        return _pool(job, cfgs, directory, workers, total, done_before)


def _pool(job: Callable, cfgs: list[Config], directory: Path, workers: int, total: int,
          done_before: int) -> list[str]:
    import multiprocessing

    manager = multiprocessing.Manager()
    progress = manager.Queue()
    state = {stem(c): (0, c.steps, float("nan"), 0.0) for c in cfgs}
    written: list[str] = []
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(job, cfg, directory, progress) for cfg in cfgs]
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
                                 for n, (s, t, l, _) in state.items() if 0 < s < t) or
                      f"training {', '.join(state)}", file=sys.stderr, flush=True)
            for f in futures:
                if f.done() and f.result() not in written:
                    written.append(f.result())
                    print(f"shipped {f.result()} ({done_before + len(written)}/{total})", file=sys.stderr,
                          flush=True)
    try:
        (directory / ".partial").rmdir()  # empty once every run has finished
    except OSError:
        pass
    return written
