"""Fixtures every chart test module shares: the specs of its results, and their facts.

A module provides `res`, its chapter's results; the charts are that chapter's
(generator.charts.<chapter>, named after the sims module the results come from)."""

from __future__ import annotations

import importlib

import pytest


@pytest.fixture(scope="module")
def specs(res):
    """Every chart of the results' chapter as a Vega-Lite spec (to_dict validates the schema)."""
    chapter = type(res).__module__.rsplit(".", 1)[-1]
    charts = importlib.import_module(f"generator.charts.{chapter}")
    return {name: fig.to_dict() for name, fig in charts.figures(res).items()}


@pytest.fixture(scope="module")
def facts(res):
    return res.facts
