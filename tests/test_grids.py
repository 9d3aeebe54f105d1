"""Grid validation: every bad value stops with a message naming the field and the value."""

from __future__ import annotations

import dataclasses

import pytest

from generator.grids import GridError, Grids, SamplingGrid, grid_names, load_grids


def test_defaults_are_valid_and_every_chapter_has_a_grid():
    grids = load_grids()
    assert isinstance(grids, Grids)
    assert grid_names() == tuple(f.name for f in dataclasses.fields(Grids))
    assert "sampling" in grid_names()


def test_overrides_are_applied_and_typed():
    grids = load_grids({"sampling": {"temperatures": [0.5, 1, 2], "seed": 7}})
    assert grids.sampling.temperatures == (0.5, 1.0, 2.0)
    assert all(isinstance(t, float) for t in grids.sampling.temperatures)
    assert grids.sampling.seed == 7


@pytest.mark.parametrize("overrides,message", [
    ({"sampling": {"temperatures": [0.0, 1.0]}}, "grids.sampling.temperatures[0]: 0.0 must be > 0"),
    ({"sampling": {"temperatures": [1.0, -0.5]}}, "grids.sampling.temperatures[1]: -0.5 must be > 0"),
    ({"sampling": {"temperatures": []}}, "grids.sampling.temperatures: the grid is empty"),
    ({"sampling": {"temperatures": [1.0, 0.5]}}, "grids.sampling.temperatures[1]: grid must be strictly increasing, got 0.5 after 1.0"),
    ({"sampling": {"temperatures": [0.5, 0.5]}}, "grids.sampling.temperatures[1]: grid must be strictly increasing"),
    ({"sampling": {"temperatures": ["hot"]}}, "grids.sampling.temperatures[0]: expected a number, got 'hot'"),
    ({"sampling": {"temperatures": [float("nan")]}}, "grids.sampling.temperatures[0]: expected a finite number"),
    ({"sampling": {"temperatures": 1.0}}, "grids.sampling.temperatures: expected a list, got 1.0"),
    ({"sampling": {"top_p": [0.5, 1.5]}}, "grids.sampling.top_p[1]: 1.5 must be <= 1.0"),
    ({"sampling": {"top_k": [0, 1]}}, "grids.sampling.top_k[0]: 0 must be >= 1"),
    ({"sampling": {"top_k": [1, 2.5]}}, "grids.sampling.top_k[1]: expected an integer, got 2.5"),
    ({"sampling": {"top_k": [1, 99]}}, "grids.sampling.top_k: k=99 exceeds the 16 candidate tokens"),
    ({"sampling": {"seed": True}}, "grids.sampling.seed: expected an integer, got True"),
    ({"sampling": {"prompt": ""}}, "grids.sampling.prompt: must not be empty"),
    ({"sampling": {"candidates": [[" a", 1.0], [" a", 2.0]]}}, "grids.sampling.candidates: duplicate entry ' a'"),
    ({"sampling": {"candidates": [[" a", "x"], [" b", 1.0]]}}, "grids.sampling.candidates[0][1]: expected a number"),
    ({"sampling": {"tempratures": [1.0]}}, "grids.sampling: unknown key 'tempratures'"),
    ({"samplng": {}}, "grids: unknown key 'samplng'"),
    ({"sampling": [1, 2]}, "grids.sampling: expected a mapping"),
])
def test_bad_values_name_the_field_and_value(overrides, message):
    with pytest.raises(GridError) as err:
        load_grids(overrides)
    assert message in str(err.value)


def test_direct_construction_is_validated_too():
    with pytest.raises(GridError, match=r"grids\.sampling\.sampler_temperature: -1\.0 must be > 0"):
        SamplingGrid(sampler_temperature=-1.0)
    with pytest.raises(GridError, match=r"grids\.sampling\.temperatures: expected a tuple"):
        SamplingGrid(temperatures=[0.5, 1.0])
