"""The block chapter in a browser, offline: every chart drawn in both colour schemes, and the
logit lens's cells carrying the precomputed guesses and probabilities."""

from __future__ import annotations

import json

import pytest

from tests.browser.pages import eval_marks, open_page
from tests.charts.specs import inline_data

pytestmark = pytest.mark.slow


def test_logit_lens_cells_show_the_precomputed_values(browser, site):
    visit = open_page(browser, site.as_uri(), "block.html")
    page = visit.page
    labels = eval_marks(page, "#fig-block-logit_lens [aria-roledescription='rect mark']",
                                       "els => els.map(e => e.getAttribute('aria-label'))")
    spec = json.loads((site / "specs" / "block" / "logit_lens.vl.json").read_text())
    rows = next(d for d in inline_data(spec) if "top guess" in d[0])
    shown = {}
    for label in labels:
        fields = dict(part.split(": ", 1) for part in label.split("; "))
        shown[fields["stage"], int(fields["position in the story (the token read)"])] = (
            fields["top guess"], float(fields["probability of the next token"]))
    assert len(shown) == len(rows)
    for r in rows:
        guess, p = shown[r["stage"], r["position"]]
        assert guess == r["top guess"]
        assert p == pytest.approx(r["probability of the next token"], abs=6e-5)
    page.context.close()
