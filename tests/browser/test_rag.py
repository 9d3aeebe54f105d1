"""The RAG chapter as a reader drives it: offline, controls that change the charts, chunk and
token text shown as text (escaped), never as markup."""

from __future__ import annotations

import json
import re

import pytest

from tests.browser.pages import eval_marks, hover_mark, open_page

pytestmark = pytest.mark.slow

ALLOWED_TOOLTIP_TAGS = {"TABLE", "TBODY", "TR", "TD", "H2"}


def spec(site, name):
    return json.loads((site / "specs" / "rag" / f"{name}.vl.json").read_text())


def datasets(node, found=None):
    found = [] if found is None else found
    if isinstance(node, dict):
        if isinstance(node.get("data"), dict) and "values" in node["data"]:
            found.append(node["data"]["values"])
        for value in node.values():
            datasets(value, found)
    elif isinstance(node, list):
        for value in node:
            datasets(value, found)
    return found


def mark_labels(page, figure, mark="rect mark"):
    return eval_marks(page, 
        f"#fig-rag-{figure} [aria-roledescription='{mark}']",
        "els => els.map(e => e.getAttribute('aria-label') || '')")


def flat(text):
    return " ".join(text.split())


def test_method_radio_redraws_the_quality_heatmap(browser, site):
    visit = open_page(browser, site.as_uri(), "rag.html")
    page = visit.page
    # Switch to a method other than the one shown first (the best one, which depends on the corpus).
    first = page.locator("#fig-rag-quality input[type=radio]:checked").get_attribute("value")
    target = "BM25" if first != "BM25" else "TF-IDF"
    assert all("method: " in label and f"method: {target}" not in label for label in mark_labels(page, "quality"))
    page.locator(f"#fig-rag-quality input[type=radio][value='{target}']").check()
    page.wait_for_function(f"""() => Array.from(__marks("#fig-rag-quality [aria-roledescription='rect mark']"))
        .some(e => (e.getAttribute('aria-label') || '').includes('method: {target}'))""")
    rows = {(r["chunk size"], r["overlap"]): r for r in datasets(spec(site, "quality"))[0] if r["method"] == target}
    metric = page.locator("#fig-rag-quality select").input_value()
    shown = 0
    for label in mark_labels(page, "quality"):
        if f"method: {target}" not in label:
            continue
        size = int(re.search(r"chunk size: (\d+)", label).group(1))
        overlap = int(re.search(r"overlap: (\d+)", label).group(1))
        score = float(re.search(r"score \(as chosen\): ([0-9.]+)", label).group(1))
        assert score == pytest.approx(rows[size, overlap][metric], abs=6e-5)
        shown += 1
    assert shown >= len(rows)  # every cell (the best cell's outline repeats one)
    page.locator("#fig-rag-quality select").select_option("MRR")
    label = next(l for l in mark_labels(page, "quality") if f"method: {target}" in l)
    size = int(re.search(r"chunk size: (\d+)", label).group(1))
    overlap = int(re.search(r"overlap: (\d+)", label).group(1))
    page.wait_for_function(f"""() => Array.from(__marks("#fig-rag-quality [aria-roledescription='rect mark']"))
        .some(e => (e.getAttribute('aria-label') || '').includes('score (as chosen): {rows[size, overlap]['MRR']:.4f}'))""")
    assert visit.errors == []
    page.context.close()


def test_question_select_and_budget_radio_redraw_the_ranked_chunks(browser, site):
    visit = open_page(browser, site.as_uri(), "rag.html")
    page = visit.page
    rows, chunks = datasets(spec(site, "ranked"))[:2]
    text = {c["chunk"]: c["text"] for c in chunks}
    page.locator("#fig-rag-ranked select[name=question]").select_option("5")
    expected = next(r for r in rows if r["question"] == 5 and r["method"] == "LSA")
    first = flat(text[expected["chunk"][0]])
    page.wait_for_function(f"""() => Array.from(__marks("#fig-rag-ranked [aria-roledescription='rect mark']"))
        .some(e => {{ const l = (e.getAttribute('aria-label') || '').replace(/\\s+/g, ' ');
                      return l.includes('method: LSA; rank: 1;') && l.includes({json.dumps(first[:60])}); }})""")
    for budget in (128, 512):
        page.locator(f"#fig-rag-ranked input[type=radio][value='{budget}']").check()
        fits = sum(1 for r in rows if r["question"] == 5
                   for b in r["packed at budget"] if b is not None and b <= budget)
        page.wait_for_function(f"""() => Array.from(__marks("#fig-rag-ranked [aria-roledescription='rect mark']"))
            .filter(e => (e.getAttribute('aria-label') || '').includes('fits the budget: true')).length == {fits}""")
    assert visit.errors == []
    page.context.close()


def tooltip_after_hover(page, figure, label):
    hover_mark(page, figure, label)
    tip = page.locator("#vg-tooltip-element")
    tip.wait_for(state="visible")
    tags = set(page.eval_on_selector_all("#vg-tooltip-element *", "els => els.map(e => e.tagName)"))
    return tip.text_content(), page.eval_on_selector("#vg-tooltip-element", "e => e.innerHTML"), tags


def test_chunk_text_shows_as_text_in_the_tooltip_and_the_data_table(browser, site):
    visit = open_page(browser, site.as_uri(), "rag.html")
    page = visit.page
    rows, chunks = datasets(spec(site, "ranked"))[:2]
    by_id = {c["chunk"]: c for c in chunks}
    # A question whose top LSA chunk holds markup-like text, if the knowledge base has one.
    q, c = next(((r["question"], r["chunk"][0]) for r in rows if r["method"] == "LSA"
                 and re.search(r"[<>&]", by_id[r["chunk"][0]]["text"])),
                (0, next(r["chunk"][0] for r in rows if r["method"] == "LSA" and r["question"] == 0)))
    page.locator("#fig-rag-ranked select[name=question]").select_option(str(q))
    page.wait_for_function(f"""() => Array.from(__marks("#fig-rag-ranked [aria-roledescription='rect mark']"))
        .some(e => (e.getAttribute('aria-label') || '').includes('method: LSA; rank: 1; source: {by_id[c]["source"]};'))""")
    shown, markup, tags = tooltip_after_hover(page, "#fig-rag-ranked", "method: LSA; rank: 1;")
    assert flat(by_id[c]["text"]) in flat(shown)
    assert tags <= ALLOWED_TOOLTIP_TAGS
    for char, entity in (("<", "&lt;"), (">", "&gt;"), ("&", "&amp;")):
        if char in by_id[c]["text"]:
            assert entity in markup
    table = page.locator("#fig-rag-ranked details.explorable-table")
    table.locator("summary").click()
    table.locator("table").first.wait_for(state="attached")  # built on the details' toggle event
    assert flat(by_id[c]["text"]) in flat(table.inner_text())
    assert page.eval_on_selector_all("#fig-rag-ranked details.explorable-table td *", "els => els.length") == 0
    page.context.close()


def test_turn_markers_in_the_trace_are_text_not_markup(browser, site):
    visit = open_page(browser, site.as_uri(), "rag.html")
    page = visit.page
    shown, markup, tags = tooltip_after_hover(page, "#fig-rag-trace", "token: <;")
    assert "token<" in shown.replace(" ", "") and "&lt;" in markup
    assert tags <= ALLOWED_TOOLTIP_TAGS
    # switching the conversation redraws the trace with that conversation's tokens
    page.locator("#fig-rag-trace input[type=radio][value='3']").check()
    page.wait_for_function("""() => Array.from(__marks("#fig-rag-trace [aria-roledescription='text mark']"))
        .some(e => (e.textContent || '').includes('__'))""")
    assert visit.errors == []
    page.context.close()
