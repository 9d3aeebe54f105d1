"""The chapters agree everywhere they are listed: the MkDocs nav, generator.chapters.CHAPTERS and
the grids name the same chapters in the same order, and every chapter has its prose, its
simulation with typed facts, and its charts."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path

import yaml

from generator.chapters import CHAPTERS
from generator.grids import Grids, grid_names

ROOT = Path(__file__).resolve().parent.parent


def nav_pages() -> list[str]:
    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"]
    return [next(iter(entry.values())) for entry in nav]


def test_nav_chapters_and_grids_name_the_same_chapters_in_the_same_order():
    names = [c.name for c in CHAPTERS]
    assert nav_pages() == ["index.md", *(f"{name}.md" for name in names)]
    assert list(grid_names()) == names
    assert len(set(names)) == len(names)


def test_every_chapter_has_its_prose_simulation_and_charts():
    for chapter in CHAPTERS:
        assert (ROOT / "content" / chapter.page).is_file(), chapter.page
        sims = importlib.import_module(f"generator.sims.{chapter.name}")
        charts = importlib.import_module(f"generator.charts.{chapter.name}")
        assert chapter.simulate is sims.simulate and chapter.figures is charts.figures, chapter.name
        assert list(inspect.signature(sims.simulate).parameters)[1] == "memo", chapter.name
        assert len(inspect.signature(sims.simulate).parameters) == 2, chapter.name


def test_every_chapters_results_carry_typed_facts():
    for chapter in CHAPTERS:
        sims = importlib.import_module(f"generator.sims.{chapter.name}")
        # Annotations are strings here (postponed evaluation): look the names up in the module.
        results = getattr(sims, inspect.signature(sims.simulate).return_annotation)
        facts = getattr(sims, results.__dataclass_fields__["facts"].type.split("|")[0].strip())
        assert dataclasses.is_dataclass(facts), chapter.name
        assert dataclasses.fields(facts), chapter.name


def test_every_chapter_makes_its_config_from_the_default_grids():
    grids = Grids()
    for chapter in CHAPTERS:
        config = chapter.configure(grids, chapter.name, ROOT / "content")
        grid = getattr(config, "grid", config)
        assert grid == getattr(grids, chapter.name), chapter.name
