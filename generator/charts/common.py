"""What every chart shares: the site theme, matrix-to-rows, number rounding, grid sliders.

The theme sets only what must hold in both light and dark mode (transparent background, the
site's fonts, colour-blind-safe palettes); text and axis colours come from the page's loader,
which reads them from the site's light or dark palette. Dense marks (a heatmap's thousands of
cells) are kept out of the accessibility tree with `aria=False`: each chart's description names
what it shows, and its data table is the accessible view of its numbers.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Sequence

import altair as alt
import numpy as np

# Okabe & Ito's palette without black, safe for the common colour-vision deficiencies and
# legible on both the light and the dark page.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999"]
# A ninth colour for a chart of nine categories: ochre, 4.0:1 on both the white and the slate page.
NINTH = "#A6761D"
YELLOW = OKABE_ITO[6]
# For lines and points: Okabe & Ito's without their yellow (1.1:1 on the white page, a line in
# it all but vanishes), the ninth (4.0:1 on both pages) before their grey (2.8:1 on white).
LINE_COLOURS = [c for c in OKABE_ITO if c not in (YELLOW, OKABE_ITO[7])] + [NINTH, OKABE_ITO[7]]
SEQUENTIAL = "viridis"
DIVERGING = "blueorange"
FONT = '-apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif'

THEME = "explorables"
# On a viridis cell (domain [0, 1]) text is more readable black than white from this value on:
# there the ramp's colour has relative luminance 0.179, and either colour reaches 4.58:1 (measured
# on the viridis ramp Vega ships, interpolated in RGB).
VIRIDIS_BLACK_TEXT_FROM = 0.4307
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


def line_colours(n: int) -> list[str]:
    """n distinct colours for lines and points on the page (n <= len(LINE_COLOURS))."""
    if n > len(LINE_COLOURS):
        raise ValueError(f"{n} lines: more than the {len(LINE_COLOURS)} colours a reader can tell apart here")
    return LINE_COLOURS[:n]


def categorical(n: int) -> list[str]:
    """n distinct colours for n categories: Okabe & Ito's, then the ninth."""
    colours = OKABE_ITO + [NINTH]
    if n > len(colours):
        raise ValueError(f"{n} categories: more than the {len(colours)} colours a reader can tell apart here")
    return colours[:n]


def significant(x: Any, digits: int = 6) -> Any:
    """Round a number (or nested lists of numbers) to `digits` significant digits for a spec."""
    if isinstance(x, (list, tuple)):
        return [significant(v, digits) for v in x]
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
            rec = {row_field: _plain(r), col_field: _plain(c), value_field: significant(matrix[i, j])}
            for name, m in extra.items():
                rec[name] = _plain(np.asarray(m)[i, j])
            rows.append(rec)
    return rows


def _plain(v: Any) -> Any:
    if isinstance(v, (np.generic, float)) and not isinstance(v, (np.bool_, bool)):
        return significant(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def grid_slider(name: str, values: Iterable[float], label: str, *, step: float | None = None,
                start: float = 1.0) -> alt.Parameter:
    """A slider over a grid's positions, starting at the grid value nearest `start`.

    The param holds an index into the grid, so one key press moves to the next grid value;
    `nearest` turns it into the value, as the expression ``[v0, v1, …][name]``, which is also
    where the page's loader reads the grid to label the slider with the value drawn. `step` is
    accepted for callers written for a value slider; the grid decides the steps.
    """
    values = [significant(v.item() if hasattr(v, "item") else v) for v in values]
    param = alt.param(
        name=name, value=min(range(len(values)), key=lambda i: abs(values[i] - start)),
        bind=alt.binding_range(min=0, max=len(values) - 1, step=1, name=label),
    )
    param.grid = values  # read by grid_value; not part of the spec
    return param


def nearest(chart: alt.Chart, param: alt.Parameter, field: str, *, log: bool = False) -> alt.Chart:
    """Keep the rows whose `field` is the grid value nearest the slider's (in log space if `log`).

    The rows hold rounded grid values; taking the nearest maps the slider's exact grid value
    onto them, so an uneven grid (denser where things change fast) still works.
    """
    value = grid_value(param)
    distance = (f"abs(log(datum['{field}']) - log({value}))" if log
                else f"abs(datum['{field}'] - {value})")
    return (chart.transform_calculate(_distance=distance)
            .transform_joinaggregate(_nearest="min(_distance)")
            .transform_filter("datum._distance == datum._nearest"))


def grid_value(param: alt.Parameter) -> str:
    """The Vega expression for a grid slider's current grid value."""
    return f"[{','.join(repr(v) for v in param.grid)}][{param.name}]"


def visible_token(token: str) -> str:
    """Show leading/trailing spaces and newlines in a token as visible glyphs."""
    return token.replace(" ", "\u2423").replace("\n", "\u21b5")


def token_expression(tokens) -> str:
    """A Vega expression array literal of the tokens, indexed by position in the charts."""
    return json.dumps([visible_token(t) for t in tokens], ensure_ascii=False)


def text_on_viridis(field: str) -> alt.condition:
    """The colour of text drawn on a viridis cell of `field` (domain [0, 1]): black or white,
    whichever reads better."""
    return alt.condition(f"datum['{field}'] >= {VIRIDIS_BLACK_TEXT_FROM}", alt.value("black"),
                         alt.value("white"))


def static_position(*names: str) -> dict:
    """A chart's usermeta naming the marks (by their unit specs' `name`) whose items keep their
    place and size at every setting of the controls: the page computes their position channels
    once, when an item is made, instead of on every change (docs/assets/explorables.js, and
    tests/browser/test_tokenization.py checks the places against a fresh drawing)."""
    return {"explorables": {"static_position": list(names)}}
