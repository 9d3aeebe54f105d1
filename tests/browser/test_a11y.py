"""Every reader: axe-core on every page in both palettes with every data table open, the
contrast of every text mark in every chart, a 390 px phone, the keyboard, and state in the URL."""

from __future__ import annotations

import re

import pytest

from tests.browser.pages import open_page, wait_for_charts
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = ROOT / ".cache" / "screenshots"


def all_pages(site):
    return sorted(p.relative_to(site).as_posix() for p in site.glob("*.html"))


def chart_pages(site):
    return [p for p in all_pages(site) if p != "404.html"]


def axe_violations(page) -> list[str]:
    """axe-core's verdict on the page as it stands: one line per failing rule."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("""async () => (await axe.run(document)).violations.map(v =>
        `${v.id} (${v.impact}, ${v.nodes.length}): ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(' | ')}`)""")
    return found


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_axe_finds_nothing_on_any_page_with_every_data_table_open(browser, site, scheme):
    assert AXE.is_file(), "run `npm ci`: axe-core is a dev dependency in package.json"
    report = {}
    for path in all_pages(site):
        visit = open_page(browser, site.as_uri(), path, color_scheme=scheme)
        visit.page.evaluate("() => document.querySelectorAll('details').forEach(d => { d.open = true; })")
        # before axe runs: on file:// pages axe's own reads of the stylesheets log CORS errors
        assert visit.errors == [], (path, visit.errors)
        violations = axe_violations(visit.page)
        if violations:
            report[path] = violations
        visit.page.context.close()
    assert report == {}, report
