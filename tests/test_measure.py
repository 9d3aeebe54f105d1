"""Timings are an input of the build: taken by `python -m generator measure` into
content/measurements.json, read back by the build exactly, measured on demand (with a warning)
only when the file lacks what a grid asks for."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from generator import measure
from generator.chapters import CHAPTERS
from generator.grids import Grids, load_grids

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"tokenization": {"seq_lengths": [8, 16, 32], "max_timed_length": 16}}


@pytest.fixture()
def content(tmp_path) -> Path:
    shutil.copytree(ROOT / "content", tmp_path / "content")
    (tmp_path / "content" / measure.FILE).unlink(missing_ok=True)
    return tmp_path / "content"


def configure_all(grids: Grids, content: Path) -> dict:
    return {c.name: c.configure(grids, c.name, content) for c in CHAPTERS}


def test_measure_records_every_timing_the_configs_ask_for_and_the_build_reads_it_back(content, caplog):
    grids = load_grids(SMALL)
    path = measure.measure_all(lambda: configure_all(grids, content), content)
    data = json.loads(path.read_text())
    assert [(e["kind"], e["params"]["lengths"]) for e in data["timings"]] == [
        ("attention", [8, 16]), ("decode step", list(grids.kvcache.timed_lengths))]
    cached, uncached = data["timings"][1]["seconds"]
    assert len(cached) == len(uncached) == len(grids.kvcache.timed_lengths)
    assert "numpy" in data["machine"] and "one thread" in data["machine"]
    with caplog.at_level(logging.WARNING):
        inputs = configure_all(grids, content)["tokenization"]
    assert not [r for r in caplog.records if "measured now" in r.getMessage()]
    assert inputs.timings.seconds == tuple(data["timings"][0]["seconds"])
    assert inputs.timings.measured_on == data["machine"]
    assert configure_all(grids, content)["tokenization"] == inputs, "the same file, the same config"
    kv = configure_all(grids, content)["kvcache"].timings
    assert kv.seconds == (tuple(cached), tuple(uncached)) and kv.measured_on == data["machine"]


def test_a_timing_the_file_lacks_is_measured_with_a_warning_naming_the_command(content, caplog):
    with caplog.at_level(logging.WARNING):
        inputs = configure_all(load_grids(SMALL), content)["tokenization"]
    assert len(inputs.timings.seconds) == 2 and all(s > 0 for s in inputs.timings.seconds)
    assert any("python -m generator measure" in r.getMessage() for r in caplog.records)


def test_a_damaged_measurements_file_names_the_command_to_rewrite_it(content):
    (content / measure.FILE).write_text("{not json")
    with pytest.raises(ValueError, match="python -m generator measure"):
        configure_all(load_grids(SMALL), content)


def test_the_shipped_file_covers_the_default_grids(caplog):
    with caplog.at_level(logging.WARNING):
        configure_all(Grids(), ROOT / "content")
    assert not [r for r in caplog.records if "measured now" in r.getMessage()]
