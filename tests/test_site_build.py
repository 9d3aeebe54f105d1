"""`mkdocs build` end to end, from temp copies of the checkout: strict, atomic, cached, budgeted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_checkout, mkdocs_build

pytestmark = [pytest.mark.slow, pytest.mark.build]


@pytest.fixture()
def checkout(tmp_path):
    return copy_checkout(tmp_path / "repo")


def set_extra(checkout: Path, extra: dict) -> None:
    text = (checkout / "mkdocs.yml").read_text()
    (checkout / "mkdocs.yml").write_text(text + "\n" + yaml.safe_dump({"extra": extra}))


def test_the_built_site_has_every_page_spec_and_vendor_file(site):
    for page in ("index.html", "sampling.html", "search/search_index.js",
                 "assets/vendor/vega-bundle.js", "assets/vendor/iframe-worker/shim.js",
                 "assets/explorables.js"):
        assert (site / page).is_file(), page
    specs = sorted(p.relative_to(site).as_posix() for p in (site / "specs").rglob("*.vl.json"))
    assert "specs/sampling/temperature.vl.json" in specs
    for path in specs:
        json.loads((site / path).read_text())


def test_no_page_loads_anything_from_another_host(site):
    # Loads are src= attributes and <link href>; plain <a href> links only navigate when clicked.
    loads = re.compile(r"""(?:\bsrc=["']|<link\b[^>]*\bhref=["'])(https?://[^"']+)""")
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert loads.findall(text) == [], page.name
        assert "unpkg.com" not in text and "fonts.googleapis" not in text and "cdn.jsdelivr" not in text


def test_generated_sources_are_not_in_docs(site):
    from tests.conftest import ROOT

    assert not list((ROOT / "docs").rglob("*.md")), "docs/ holds hand-written assets only"


def test_bad_grid_stops_before_any_output_and_keeps_the_old_site(checkout):
    first = mkdocs_build(checkout)
    assert first.returncode == 0, first.stderr[-3000:]
    marker = checkout / "site" / "sampling.html"
    before = marker.read_bytes()
    set_extra(checkout, {"grids": {"sampling": {"temperatures": [0.5, 0.0]}}})
    second = mkdocs_build(checkout)
    assert second.returncode != 0
    assert "grids.sampling.temperatures[1]: 0.0 must be > 0" in second.stderr
    assert marker.read_bytes() == before
    assert not list(checkout.glob(".site.staging-*"))


def test_bad_grid_on_a_fresh_checkout_writes_no_site(checkout):
    set_extra(checkout, {"grids": {"sampling": {"temprature": [1.0]}}})
    result = mkdocs_build(checkout)
    assert result.returncode != 0
    assert "grids.sampling: unknown key 'temprature'" in result.stderr
    assert not (checkout / "site").exists()


def test_a_build_failing_midway_keeps_the_previous_site(checkout):
    assert mkdocs_build(checkout).returncode == 0
    before = (checkout / "site" / "sampling.html").read_bytes()
    prose = checkout / "content" / "sampling.md"
    prose.write_text(prose.read_text() + "\n{{ chart('no_such_chart') }}\n")
    result = mkdocs_build(checkout)
    assert result.returncode != 0
    assert "no chart named 'no_such_chart'" in result.stderr
    assert (checkout / "site" / "sampling.html").read_bytes() == before
    assert not list(checkout.glob(".site.staging-*"))


def test_an_over_budget_page_fails_naming_its_heaviest_chart(checkout):
    chapters_py = checkout / "generator" / "chapters.py"
    text = chapters_py.read_text()
    line = 'Chapter("sampling", sampling.simulate, sampling_charts.figures, with_family)'
    assert line in text
    chapters_py.write_text(text.replace(line, line[:-1] + ", budget_bytes=50_000)"))
    result = mkdocs_build(checkout)
    assert result.returncode != 0
    assert re.search(r"page sampling\.md is \d+ KB, over its 50 KB budget; heaviest: chart 'temperature'", result.stderr)
    assert not (checkout / "site").exists()


def test_a_prose_only_edit_recomputes_nothing_but_what_reads_prose(site, checkout, tmp_path):
    import shutil

    from generator.chapters import CHAPTERS, with_knowledge_base
    from tests.conftest import CACHE_DIR

    # Chapters whose config reads the site's own prose (retrieval over it) legitimately
    # recompute when prose changes; nothing else may.
    prose_readers = [c for c in CHAPTERS if c.configure is with_knowledge_base]
    assert prose_readers
    allowed = tuple(f"{c.simulate.__module__.rsplit('.', 1)[-1]}-" for c in prose_readers) + \
        tuple(f"specs-{c.name}-" for c in prose_readers)
    # Start from the cache the session's build filled (so nothing is trained twice), in a copy.
    shutil.copytree(CACHE_DIR, tmp_path / "cache")
    env = {"EXPLORABLES_CACHE_DIR": str(tmp_path / "cache")}
    assert mkdocs_build(checkout, env=env).returncode == 0
    # Results and chart specs; compiled templates (templates/, theme-templates/) may change.
    computed = ("results", "blobs")
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*")
              if p.is_file() and p.parent.name in computed}
    prose = checkout / "content" / "sampling.md"
    prose.write_text(prose.read_text().replace("Drawing the token", "Drawing one token"))
    result = mkdocs_build(checkout, env=env)
    assert result.returncode == 0
    assert "Drawing one token" in (checkout / "site" / "sampling.html").read_text()
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "cache").rglob("*")
             if p.is_file() and p.parent.name in computed}
    changed = sorted(p.name for p in after if before.get(p) != after[p])
    unexpected = [n for n in changed if not n.startswith(allowed)]
    assert unexpected == []
    assert any(n.startswith("sampling-") for n in (p.name for p in after)), "sampling results are cached"


def test_the_generator_cli_writes_specs_without_the_site(checkout, tmp_path):
    import subprocess
    import sys

    out = tmp_path / "specs"
    done = subprocess.run([sys.executable, "-m", "generator", "specs", str(out)], cwd=checkout,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (out / "sampling" / "temperature.vl.json").is_file()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"sampling": {"top_p": [2.0]}}))
    done = subprocess.run([sys.executable, "-m", "generator", "--grids", str(bad), "specs", str(tmp_path / "x")],
                          cwd=checkout, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "grids.sampling.top_p[0]: 2.0 must be <= 1.0" in done.stderr
    assert not (tmp_path / "x").exists()


def test_every_embedded_spec_equals_its_downloadable_file(site):
    import html as html_lib

    for page in site.glob("*.html"):
        text = page.read_text()
        for name, spec in re.findall(r"""data-name="([^"]+)" data-spec='([^']*)'""", text):
            embedded = json.loads(html_lib.unescape(spec))
            slug, chart = name.split("-", 1)
            assert json.loads((site / "specs" / slug / f"{chart}.vl.json").read_text()) == embedded


def test_emitted_sampling_specs_carry_the_simulated_probabilities(site):
    import numpy as np

    from generator import checkpoints
    from generator.cache import Cache
    from generator.charts.common import visible_token
    from generator.grids import load_grids
    from generator.sims.family import WithFamily
    from generator.sims.sampling import simulate
    from tests.conftest import CACHE_DIR

    grids, cache = load_grids(), Cache(CACHE_DIR)  # the session's build filled it: no training here
    res = simulate(WithFamily(grids.sampling, grids.pretraining), checkpoints.shipped_memo(cache.result))
    spec = json.loads((site / "specs" / "sampling" / "temperature.vl.json").read_text())
    tokens = [visible_token(t) for t in res.tokens]
    rows = spec["vconcat"][0]["data"]["values"]
    assert len(rows) == res.probs.size
    for r in rows:
        expected = res.probs[list(res.temperatures).index(r["temperature"]), tokens.index(r["token"])]
        assert np.isclose(r["probability"], expected, rtol=5e-6, atol=1e-300)


# A build in a child process, killed (os._exit: no clean-up, no error events) just before one
# event, or between the two renames of the swap.
_KILLED_BUILD = """
import os, sys
from mkdocs.plugins import PluginCollection
from mkdocs.__main__ import cli

phase = sys.argv[1]
real_run_event, real_rename = PluginCollection.run_event, os.rename

def run_event(self, name, *args, **kwargs):
    if name == phase:
        os._exit(9)
    return real_run_event(self, name, *args, **kwargs)

def rename(src, dst):
    if phase == "between the renames" and ".staging-" in os.fspath(src):
        os._exit(9)
    real_rename(src, dst)

PluginCollection.run_event, os.rename = run_event, rename
sys.argv = ["mkdocs", "build", "--strict"]
cli()
"""


def site_tree(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in site.rglob("*") if p.is_file()}


@pytest.mark.parametrize("phase", ["files", "env", "page_content", "post_page", "post_build",
                                   "between the renames"])
def test_a_build_killed_at_any_phase_leaves_the_previous_site(checkout, phase):
    import os
    import subprocess
    import sys

    from tests.conftest import CACHE_DIR

    assert mkdocs_build(checkout).returncode == 0
    before = site_tree(checkout / "site")
    prose = checkout / "content" / "sampling.md"
    prose.write_text(prose.read_text().replace("Drawing the token", "Drawing one token"))
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "EXPLORABLES_CACHE_DIR": str(CACHE_DIR)}
    killed = subprocess.run([sys.executable, "-c", _KILLED_BUILD, phase], cwd=checkout, env=env,
                            capture_output=True, text=True, timeout=900)
    assert killed.returncode == 9, killed.stderr[-2000:]
    # The next build puts the previous site back before anything else, even if it then fails.
    prose.write_text(prose.read_text() + "\n{{ chart('no_such_chart') }}\n")
    failed = mkdocs_build(checkout)
    assert failed.returncode != 0 and "no_such_chart" in failed.stderr
    assert site_tree(checkout / "site") == before
    prose.write_text(prose.read_text().replace("\n{{ chart('no_such_chart') }}\n", ""))
    assert mkdocs_build(checkout).returncode == 0
    assert "Drawing one token" in (checkout / "site" / "sampling.html").read_text()
    assert not list(checkout.glob(".site.staging-*")) and not (checkout / ".site.previous").exists()


def test_two_builds_at_once_take_turns_and_each_publishes_a_whole_site(checkout):
    import os
    import subprocess
    import sys

    from tests.conftest import CACHE_DIR

    assert mkdocs_build(checkout).returncode == 0
    alone = sorted(site_tree(checkout / "site"))
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "EXPLORABLES_CACHE_DIR": str(CACHE_DIR)}
    builds = [subprocess.Popen([sys.executable, "-m", "mkdocs", "build", "--strict"], cwd=checkout,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
              for _ in range(2)]
    outcomes = [(b.wait(timeout=900), b.stderr.read()) for b in builds]
    assert [rc for rc, _ in outcomes] == [0, 0], [err[-2000:] for _, err in outcomes]
    assert any("another build of" in err and "waiting" in err for _, err in outcomes)
    assert sorted(site_tree(checkout / "site")) == alone
    assert not list(checkout.glob(".site.staging-*"))


def test_two_clean_builds_in_two_folders_are_byte_identical(site, tmp_path):
    """A second clean build, in another folder with an empty cache, gives the same bytes."""
    import filecmp

    other = copy_checkout(tmp_path / "elsewhere" / "repo")
    result = mkdocs_build(other, env={"EXPLORABLES_CACHE_DIR": str(tmp_path / "empty-cache")})
    assert result.returncode == 0, result.stderr[-4000:]
    first = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    second = sorted(p.relative_to(other / "site").as_posix() for p in (other / "site").rglob("*") if p.is_file())
    assert first == second
    differ = [f for f in first if not filecmp.cmp(site / f, other / "site" / f, shallow=False)]
    assert differ == []


def test_every_stage_of_the_real_next_token_chart_has_a_colour_of_its_own(site):
    spec = json.loads((site / "specs" / "alignment" / "next_tokens.vl.json").read_text())
    stages = {r["stage"] for r in spec["data"]["values"]}
    colours = spec["encoding"]["color"]["scale"]["range"]
    assert len(stages) >= 9  # pretrained, SFT, three RLHF and four DPO runs on the default grids
    assert len(set(colours)) == len(colours) == len(stages)


def test_the_real_next_token_chart_keeps_its_height_at_every_place(site):
    """The real places' top tokens differ in number (13 and 10 on the default grids); each place
    shows as many, so a change of place never resizes the chart."""
    rows = json.loads((site / "specs" / "alignment" / "next_tokens.vl.json").read_text())["data"]["values"]
    counts = {p: len({r["token"] for r in rows if r["place"] == p}) for p in {r["place"] for r in rows}}
    assert len(counts) >= 2 and len(set(counts.values())) == 1, counts


def test_the_real_bpe_learns_the_whole_words_the_page_names(site):
    """tokenization.md: "By merge N ... whole words like ` token` and ` pair` are single tokens"."""
    spec = json.loads((site / "specs" / "tokenization" / "bpe_steps.vl.json").read_text())
    made = {row["merged"].split(" \u2192 ")[-1] for row in spec["datasets"]["merges"][1:]}
    assert {"\u2423token", "\u2423pair"} <= made
    text = (Path(__file__).resolve().parent.parent / "content" / "tokenization.md").read_text()
    assert "whole words like ` token` and ` pair` are single tokens" in text
