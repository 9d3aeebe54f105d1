"""The pretraining chapter as a reader drives it, offline: the model radios and the step slider
redraw the charts with the precomputed numbers and stories."""

from __future__ import annotations

import json

import pytest

from tests.browser.pages import CHART_TEXTS, MARK_TEXTS, eval_marks, move_slider, open_page
from tests.charts.specs import inline_data

pytestmark = pytest.mark.slow

LOSS = "loss (bits/token)"


def spec_rows(site, name, field):
    """The inline dataset of a built chart whose rows have `field`."""
    spec = json.loads((site / "specs" / "pretraining" / f"{name}.vl.json").read_text())
    return next(rows for rows in inline_data(spec) if field in rows[0])


def highlighted_points(page):
    """(model, data, step, loss) of the coloured model's points, from their accessible labels."""
    labels = eval_marks(page, "#fig-pretraining-loss_curves [aria-roledescription=point]",
                                       "els => els.map(e => e.getAttribute('aria-label'))")
    points = []
    for label in labels:
        fields = dict(part.split(": ", 1) for part in label.split("; "))
        points.append((fields["model"], fields["data"], int(fields["step"]), float(fields[LOSS])))
    return points


def test_model_radios_highlight_the_chosen_models_curves(browser, site):
    visit = open_page(browser, site.as_uri(), "pretraining.html")
    page = visit.page
    before = highlighted_points(page)
    assert len({p[0] for p in before}) == 1
    chosen = "1 layer, 2 heads"
    assert before[0][0] != chosen  # the page opens on the best model, the largest
    page.locator(f"#fig-pretraining-loss_curves input[name=model][value='{chosen}']").check()
    page.wait_for_function("""() => Array.from(__marks('#fig-pretraining-loss_curves [aria-roledescription=point]'))
        .every(e => (e.getAttribute('aria-label') || '').includes('model: 1 layer, 2 heads'))""")
    after = highlighted_points(page)
    rows = [r for r in spec_rows(site, "loss_curves", "step") if r["model"] == chosen]
    assert sorted((p[1], p[2]) for p in after) == sorted((r["data"], r["step"]) for r in rows)
    expected = {(r["data"], r["step"]): r[LOSS] for r in rows}
    for _, data, step, loss in after:
        assert loss == pytest.approx(expected[data, step], abs=1e-4)
    assert visit.errors == []
    page.context.close()


def test_step_slider_shows_that_checkpoints_stories(browser, site):
    visit = open_page(browser, site.as_uri(), "pretraining.html")
    page = visit.page
    slider = page.locator("#fig-pretraining-samples input[type=range]")
    lines = spec_rows(site, "samples", "text")
    for step in (0, max(r["step"] for r in lines)):
        move_slider(slider, step)
        page.wait_for_function(f"""() => ({CHART_TEXTS})('#fig-pretraining-samples')
            .some(t => t.startsWith('step {step}:'))""")
        shown = page.evaluate(MARK_TEXTS, "#fig-pretraining-samples")
        expected = [r["text"] for r in sorted((r for r in lines if r["step"] == step), key=lambda r: r["line"])]
        assert sorted(shown) == sorted(expected)
    assert visit.errors == []
    page.context.close()


def test_sampling_page_drives_the_trained_models_logits(browser, site):
    visit = open_page(browser, site.as_uri(), "sampling.html")
    page = visit.page
    figure = "#fig-sampling-model_logits"
    spec = json.loads((site / "specs" / "sampling" / "model_logits.vl.json").read_text())
    rows = spec["layer"][0]["data"]["values"]
    slider = page.locator(f"{figure} input[type=range]")
    move_slider(slider, "0.25")
    page.locator(f"{figure} input[name=top_p][value='0.5']").check()
    page.wait_for_function(f"""() => {{
        const bars = Array.from(__marks('{figure} [aria-roledescription=bar]'));
        return bars.length > 0 && bars.every(e => /T: 0\\.250*; top-p: 0\\.50*$/.test(e.getAttribute('aria-label') || ''));
    }}""")
    labels = eval_marks(page, f"{figure} [aria-roledescription=bar]", "els => els.map(e => e.getAttribute('aria-label'))")
    shown = {dict(p.split(": ", 1) for p in label.split("; "))["token"]:
             float(dict(p.split(": ", 1) for p in label.split("; "))["probability"]) for label in labels}
    expected = {r["token"]: r["probability"] for r in rows if r["T"] == 0.25 and r["top-p"] == 0.5}
    assert shown == pytest.approx(expected, abs=1e-4)
    assert visit.errors == [] and visit.external_requests() == []
    page.context.close()
