"""Texts a grid names under content/, read and checked before anything is simulated.

A grid field such as ``grids.tokenization.languages`` holds a path relative to content/ (the
grid layer has already refused absolute paths and ``..``); the texts it names become part of
the simulation's config, so the results cache is keyed on them and an edit re-runs the chapter.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from generator import encodings, measure
from generator.sims.attention_cost import Timings
from generator.sims.tokenization import TokenizationInputs
from generator.validation import GridError, check_scalar, text


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
