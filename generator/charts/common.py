"""What every chart shares: the site theme, matrix-to-rows, number rounding, grid sliders.

The theme sets only what must hold in both light and dark mode (transparent background, the
site's fonts, colour-blind-safe palettes); text and axis colours come from vega-embed's theme,
which the page's loader switches with the reader's colour scheme.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import altair as alt
import numpy as np

# Okabe & Ito's palette without black, safe for the common colour-vision deficiencies and
# legible on both the light and the dark page.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"]
SEQUENTIAL = "viridis"
DIVERGING = "blueorange"
FONT = '-apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif'

THEME = "explorables"
WIDTH = 560  # px: every chart's width, the content column's


@alt.theme.register(THEME, enable=True)
def theme() -> alt.theme.ThemeConfig:
    return {
        "config": {
            "background": None,
            "font": FONT,
            "range": {"category": OKABE_ITO, "ramp": {"scheme": SEQUENTIAL},
                      "heatmap": {"scheme": SEQUENTIAL}, "diverging": {"scheme": DIVERGING}},
            "view": {"stroke": None},
            "axis": {"labelFontSize": 12, "titleFontSize": 13},
            "legend": {"labelFontSize": 12, "titleFontSize": 13},
            "title": {"fontSize": 14, "anchor": "start"},
        }
    }


def sig(x: Any, digits: int = 6) -> Any:
    """Round a number (or nested lists of numbers) to `digits` significant digits for a spec."""
    if isinstance(x, (list, tuple)):
        return [sig(v, digits) for v in x]
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    return float(f"{float(x):.{digits}g}")


def long_table(matrix: np.ndarray, row_values: Sequence, col_values: Sequence,
               row_field: str, col_field: str, value_field: str,
               extra: dict[str, np.ndarray] | None = None) -> list[dict]:
    """A [n_rows, n_cols] matrix as one record per cell; extra holds more same-shape matrices."""
    matrix = np.asarray(matrix)
    if matrix.shape != (len(row_values), len(col_values)):
        raise ValueError(f"matrix shape {matrix.shape} does not match the labels")
    extra = extra or {}
    rows = []
    for i, r in enumerate(row_values):
        for j, c in enumerate(col_values):
            rec = {row_field: _plain(r), col_field: _plain(c), value_field: sig(matrix[i, j])}
            for name, m in extra.items():
                rec[name] = _plain(np.asarray(m)[i, j])
            rows.append(rec)
    return rows


def _plain(v: Any) -> Any:
    if isinstance(v, (np.generic, float)) and not isinstance(v, (np.bool_, bool)):
        return sig(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def grid_slider(name: str, values: Iterable[float], label: str, *, step: float,
                start: float = 1.0) -> alt.Parameter:
    """A slider param spanning a grid's range, starting at the grid value nearest `start`."""
    values = [v.item() if hasattr(v, "item") else v for v in values]
    return alt.param(
        name=name, value=min(values, key=lambda v: abs(v - start)),
        bind=alt.binding_range(min=min(values), max=max(values), step=step, name=label),
    )


def nearest(chart: alt.Chart, param: alt.Parameter, field: str, *, log: bool = False) -> alt.Chart:
    """Keep the rows whose `field` is the grid value nearest the param (in log space if `log`).

    The slider moves in fixed steps; this maps every slider position onto exact precomputed
    grid values, so an uneven grid (denser where things change fast) still works.
    """
    name = param.name
    distance = (f"abs(log(datum['{field}']) - log({name}))" if log
                else f"abs(datum['{field}'] - {name})")
    return (chart.transform_calculate(_distance=distance)
            .transform_joinaggregate(_nearest="min(_distance)")
            .transform_filter("datum._distance == datum._nearest"))


def visible_token(token: str) -> str:
    """Show leading/trailing spaces and newlines in a token as visible glyphs."""
    return token.replace(" ", "\u2423").replace("\n", "\u21b5")


def token_expression(tokens) -> str:
    """A Vega expression array literal of the tokens, indexed by position in the charts."""
    return json.dumps([visible_token(t) for t in tokens], ensure_ascii=False)
