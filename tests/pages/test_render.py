"""Page rendering: charts embedded with their data tables, formulas as MathML, data escaped."""

from __future__ import annotations

import html
import json
import re

import altair as alt
import pytest

from generator.pages.render import render_page, tex_to_mathml


def write(tmp_path, text, name="page.md"):
    (tmp_path / name).write_text(text)
    return tmp_path


def bar_chart(rows, title="A chart"):
    return alt.Chart(alt.Data(values=rows), title=title).mark_bar().encode(x="token:N", y="probability:Q")


def embedded_specs(markdown):
    return [json.loads(html.unescape(m)) for m in re.findall(r"data-spec='([^']*)'", markdown)]


def test_chart_is_embedded_downloadable_and_has_a_table(tmp_path):
    rows = [{"token": "a", "probability": 0.25}, {"token": "b", "probability": 0.75}]
    page = render_page(write(tmp_path, "# T\n\n{{ chart('bars') }}\n"), "page.md", {"bars": bar_chart(rows)})
    assert "<td>" not in page.markdown  # the chart waits in a slot, out of Markdown's way
    html = page.html(page.markdown)
    (spec,) = embedded_specs(html)
    assert spec["data"]["values"] == rows
    assert json.loads(page.specs["specs/page/bars.vl.json"]) == spec
    assert 'href="specs/page/bars.vl.json" download' in html
    # The table twin is built from the spec's data when opened (tests/browser/test_site.py); the
    # page carries the numbers once, in the spec.
    assert '<details class="explorable-table" data-caption="Data of' in html and "<td>" not in html
    assert page.markdown.startswith("<!-- Generated")
    assert page.chart_bytes["bars"] > 0


def test_text_from_data_is_escaped_everywhere(tmp_path):
    evil = "<script>alert(1)</script> & 'quote' \"dq\""
    rows = [{"token": evil, "probability": 1.0}]
    page = render_page(write(tmp_path, "Prompt: {{ facts.prompt }}\n\n{{ chart('bars') }}\n"), "page.md",
                       {"bars": bar_chart(rows, title=evil)}, {"prompt": evil})
    html = page.html(page.markdown)
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    (spec,) = embedded_specs(html)  # the attribute survives intact and decodes exactly
    assert spec["data"]["values"][0]["token"] == evil


def test_every_chart_must_be_placed_once_and_exist(tmp_path):
    figs = {"a": bar_chart([{"token": "x", "probability": 1.0}])}
    with pytest.raises(ValueError, match="charts never placed: a"):
        render_page(write(tmp_path, "nothing\n"), "page.md", figs)
    with pytest.raises(KeyError, match="no chart named 'b'"):
        render_page(write(tmp_path, "{{ chart('b') }}\n"), "page.md", figs)
    with pytest.raises(ValueError, match="placed twice"):
        render_page(write(tmp_path, "{{ chart('a') }}\n{{ chart('a') }}\n"), "page.md", figs)


def test_missing_fact_fails_loudly(tmp_path):
    import jinja2

    with pytest.raises(jinja2.UndefinedError):
        render_page(write(tmp_path, "{{ facts.nope }}\n"), "page.md", {}, {})


def test_tex_becomes_mathml_outside_code_only():
    out = tex_to_mathml("Inline $p_i$ here.\n\n$$H = -\\sum_i p_i$$\n\n`$not math$` and\n```\n$x$\n```\n")
    assert '<span class="math-inline"><math alttext="p_i"' in out
    assert '<div class="math-display"><math alttext="H = -\\sum_i p_i"' in out
    assert 'display="block"' in out
    assert "`$not math$`" in out and "```\n$x$\n```" in out


def test_jinja_inside_a_formula_is_refused():
    with pytest.raises(ValueError, match="Jinja inside a formula"):
        tex_to_mathml("$T = {{ facts.t }}$")


def test_prices_with_dollar_signs_and_spaces_are_not_math():
    assert tex_to_mathml("costs $ 5 and $ 6") == "costs $ 5 and $ 6"


def test_a_lost_or_doubled_slot_is_an_error(tmp_path):
    page = render_page(write(tmp_path, "{{ chart('bars') }}\n"), "page.md",
                       {"bars": bar_chart([{"token": "x", "probability": 1.0}])})
    with pytest.raises(ValueError, match="appears 0 times"):
        page.html("<p>no slot here</p>")
    (marker,) = page.slots
    with pytest.raises(ValueError, match="appears 2 times"):
        page.html(marker + marker)


def test_compiled_templates_are_reused_and_an_edit_is_seen(tmp_path):
    content = tmp_path / "content"
    content.mkdir()
    compiled = tmp_path / "compiled"
    write(content, "first {{ facts.x }}\n")
    page = render_page(content, "page.md", {}, {"x": 1}, compiled_dir=compiled)
    assert "first 1" in page.html(page.markdown)
    assert list(compiled.iterdir()), "the compiled template was kept"
    write(content, "second {{ facts.x }}\n")
    page = render_page(content, "page.md", {}, {"x": 2}, compiled_dir=compiled)
    assert "second 2" in page.html(page.markdown)
