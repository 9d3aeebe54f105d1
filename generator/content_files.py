"""Texts a grid names under content/, read and checked before anything is simulated.

A grid field such as ``grids.tokenization.languages`` holds a path relative to content/ (the
grid layer has already refused absolute paths and ``..``); the texts it names become part of
the simulation's config, so the results cache is keyed on them and an edit re-runs the chapter.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from generator import encodings, measure
from generator.sims.attention_cost import Timings
from generator.sims.ledger import ATTENTION_KINDS, FAMILIES, Experts, Latent, Model, WithLedger, weight_bytes
from generator.sims.stories import World, vocabulary
from generator.sims.tokenization import TokenizationInputs
from generator.validation import GridError, bounded, check_scalar, text


def read_text(content_dir: Path, relative: str, where: str) -> str:
    """content/<relative> as text (one trailing newline dropped); GridError naming `where`."""
    path = (content_dir / relative).resolve()
    if not path.is_relative_to(content_dir.resolve()):
        raise GridError(f"{where}: {relative!r} is outside content/")
    try:
        return path.read_text(encoding="utf-8").removesuffix("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise GridError(f"{where}: cannot read content/{relative} ({exc})") from exc


def read_json(content_dir: Path, relative: str, where: str) -> Any:
    """content/<relative> parsed as JSON; GridError naming `where`."""
    try:
        return json.loads(read_text(content_dir, relative, where))
    except json.JSONDecodeError as exc:
        raise GridError(f"{where}: content/{relative} is not valid JSON ({exc})") from exc


def tokenization_inputs(grids, name: str, content_dir: Path) -> TokenizationInputs:
    """The tokenization grid with the languages and the BPE training text it names."""
    grid = getattr(grids, name)
    where = f"grids.{name}"
    entries = read_json(content_dir, grid.languages, f"{where}.languages")
    if not isinstance(entries, list) or not entries:
        raise GridError(f"{where}.languages: content/{grid.languages} must hold a non-empty list")
    languages = []
    for i, entry in enumerate(entries):
        at = f"{where}.languages: content/{grid.languages}[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"language", "text"}:
            raise GridError(f"{at}: expected {{\"language\": ..., \"text\": ...}}")
        for key, limit in (("language", 80), ("text", 2000)):
            if not isinstance(entry[key], str):
                raise GridError(f"{at}.{key}: expected text")
            check_scalar(entry[key], text(limit), f"{at}.{key}")
        languages.append((entry["language"], entry["text"]))
    labels = [label for label, _ in languages]
    if len(set(labels)) != len(labels):
        raise GridError(f"{where}.languages: a language is listed twice in content/{grid.languages}")
    if grid.reference_language not in labels:
        raise GridError(f"{where}.reference_language: {grid.reference_language!r} is not one of the "
                        f"languages in content/{grid.languages}")
    bpe_text = read_text(content_dir, grid.bpe_text, f"{where}.bpe_text")
    check_scalar(bpe_text, text(2000), f"{where}.bpe_text")
    if not bpe_text.isascii():
        raise GridError(f"{where}.bpe_text: content/{grid.bpe_text} must be ASCII (one chart cell "
                        "per byte)")
    timed = [n for n in grid.seq_lengths if n <= grid.max_timed_length]
    return TokenizationInputs(
        grid=grid, languages=tuple(languages), bpe_text=bpe_text,
        timings=attention_timings(content_dir, timed, grid.d_head, grid.seed),
        tiktoken_version=encodings.TIKTOKEN_VERSION,
        encodings={name: _encoding(name, f"{where}.encodings[{i}]") for i, name in enumerate(grid.encodings)},
        data_sha256={name: encodings.data_sha256(name) for name in grid.encodings},
        chatml=encodings.get_chatml_encoding())


def _encoding(name: str, where: str):
    """The verified tiktoken Encoding `name`; GridError naming `where` for an unknown one."""
    if name not in encodings.ENCODINGS:
        raise GridError(f"{where}: unknown encoding {name!r} (known: {', '.join(encodings.ENCODINGS)})")
    return encodings.get_encoding(name)


def attention_timings(content_dir: Path, lengths: list[int], d_head: int, seed: int) -> Timings:
    """One head's attention timed at each length (recorded in content/measurements.json)."""
    return measure.timings(content_dir, "attention", lengths=lengths, d_head=d_head, seed=seed)


# ---------------------------------------------------------------------------------------------
# The ledger of published model configurations


MODEL_KEYS = {  # key -> (type, required)
    "name": (str, True), "source": (str, True), "family": (str, True), "context": (int, True),
    "vocab": (int, True), "n_layer": (int, True), "d_model": (int, True), "n_head": (int, True),
    "n_kv_head": (int, True), "d_head": (int, True), "norm": (str, True), "mlp": (str, True),
    "d_ff": (int, True), "attention": (str, True), "positions": (str, True), "tied": (bool, True),
    "biases": (bool, True), "window": (int, False), "experts": (dict, False),
    "latent": (dict, False), "published_params": (int, False),
}
CHOICES = {"family": FAMILIES, "attention": ATTENTION_KINDS, "norm": ("layernorm", "rmsnorm"),
           "mlp": ("gelu", "swiglu"), "positions": ("learned", "rope")}
MAX_MODELS = 16  # each is charted on two pages
SIZE = bounded(1, 10_000_000)  # every width, count and length of a published model
MAX_TOTAL = 10 ** 15  # a model's parameter total (above the 1e9 any grid setting allows)


def ledger_inputs(grids, name: str, content_dir: Path) -> WithLedger:
    """The chapter's grid, the model family, and the published models its `models` file lists."""
    grid = getattr(grids, name)
    where = f"grids.{name}.models"
    entries = read_json(content_dir, grid.models, where)
    if not isinstance(entries, list) or not entries:
        raise GridError(f"{where}: content/{grid.models} must hold a non-empty list")
    if len(entries) > MAX_MODELS:
        raise GridError(f"{where}: {len(entries)} models in content/{grid.models}; at most {MAX_MODELS}")
    models = tuple(ledger_model(entry, f"{where}: content/{grid.models}[{i}]") for i, entry in enumerate(entries))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise GridError(f"{where}: a model is listed twice in content/{grid.models}")
    example = getattr(grid, "example_model", None)
    if example is not None and example not in names:
        raise GridError(f"grids.{name}.example_model: {example!r} is not one of the models in "
                        f"content/{grid.models} ({', '.join(names)})")
    memory = getattr(grid, "gpu_memory_gb", None)
    if example is not None and memory is not None:
        chosen = models[names.index(example)]
        if weight_bytes(chosen) >= memory * 1e9:
            raise GridError(f"grids.{name}.example_model: {example}'s bf16 weights do not fit the "
                            f"{memory} GB of grids.{name}.gpu_memory_gb")
    return WithLedger(grid=grid, family=grids.pretraining, models=models)


def kvcache_inputs(grids, name: str, content_dir: Path) -> WithLedger:
    """The ledger, with the decode steps timed on a model of the decoding model's shape."""
    config = ledger_inputs(grids, name, content_dir)
    grid, family = config.grid, config.family
    timings = measure.timings(content_dir, "decode step", n_layer=grid.model_layers,
                              n_head=grid.model_heads, n_embd=family.n_embd(grid.model_heads),
                              n_vocab=len(vocabulary(World())), lengths=list(grid.timed_lengths),
                              seed=grid.seed)
    return dataclasses.replace(config, timings=timings)


def ledger_model(entry: Any, at: str) -> Model:
    """One entry of the ledger, every key checked, as a Model."""
    if not isinstance(entry, dict):
        raise GridError(f"{at}: expected an object of model settings")
    unknown = sorted(set(entry) - set(MODEL_KEYS))
    if unknown:
        raise GridError(f"{at}: unknown key {unknown[0]!r}")
    for key, (kind, required) in MODEL_KEYS.items():
        value = entry.get(key)
        if value is None:
            if required:
                raise GridError(f"{at}.{key}: missing")
            continue
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise GridError(f"{at}.{key}: expected {kind.__name__}, got {value!r}")
        if kind is str:
            check_scalar(value, text(1000), f"{at}.{key}")
        if key == "published_params" and not 1 <= value <= MAX_TOTAL:
            raise GridError(f"{at}.{key}: {value!r} must be between 1 and {MAX_TOTAL:.0e}")
        elif kind is int and key != "published_params":
            check_scalar(value, SIZE, f"{at}.{key}")
        if key in CHOICES and value not in CHOICES[key]:
            raise GridError(f"{at}.{key}: {value!r} is not one of {', '.join(CHOICES[key])}")
    fields = {k: v for k, v in entry.items() if k not in ("experts", "latent")}
    experts = nested(entry.get("experts"), Experts, f"{at}.experts")
    latent = nested(entry.get("latent"), Latent, f"{at}.latent")
    model = Model(**fields, experts=experts, latent=latent)
    check_model(model, at)
    return model


def nested(value: Any, cls: type, at: str) -> Any:
    """An optional object of positive integers (and flags) as the dataclass cls."""
    if value is None:
        return None
    known = {f.name: f.type for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise GridError(f"{at}: unknown key {unknown[0]!r} (known: {', '.join(known)})")
    for key, item in value.items():
        if known[key] == "bool":
            if not isinstance(item, bool):
                raise GridError(f"{at}.{key}: expected true or false, got {item!r}")
        elif isinstance(item, bool) or not isinstance(item, int):
            raise GridError(f"{at}.{key}: expected an integer, got {item!r}")
        else:
            check_scalar(item, bounded(0 if key in ("shared", "dense_layers") else 1, 10_000_000),
                         f"{at}.{key}")
    try:
        return cls(**value)
    except TypeError as exc:
        raise GridError(f"{at}: {exc}") from exc


def check_model(m: Model, at: str) -> None:
    """What one setting of a model asks of the others."""
    if m.n_head % m.n_kv_head:
        raise GridError(f"{at}.n_kv_head: {m.n_kv_head} key/value heads do not split the {m.n_head} "
                        "query heads into equal groups")
    kinds = {"mha": m.n_kv_head == m.n_head, "mqa": m.n_kv_head == 1,
             "gqa": 1 < m.n_kv_head < m.n_head, "sliding": m.window is not None,
             "mla": m.latent is not None}
    if not kinds[m.attention]:
        raise GridError(f"{at}.attention: {m.attention!r} does not fit n_head {m.n_head}, n_kv_head "
                        f"{m.n_kv_head}, window {m.window}, latent {m.latent}")
    if (m.window is not None) != (m.attention == "sliding"):
        raise GridError(f"{at}.window: a window goes with attention 'sliding' and only with it")
    if (m.latent is not None) != (m.family == "mla"):
        raise GridError(f"{at}.latent: latent ranks go with family 'mla' and only with it")
    if (m.experts is not None) != (m.family in ("moe", "mla")):
        raise GridError(f"{at}.experts: experts go with families 'moe' and 'mla' and only with them")
    if m.experts is not None:
        e = m.experts
        if e.active > e.n or e.dense_layers >= m.n_layer:
            raise GridError(f"{at}.experts: {e.active} active of {e.n} experts, {e.dense_layers} "
                            f"dense layers of {m.n_layer}: not a mixture of experts")
