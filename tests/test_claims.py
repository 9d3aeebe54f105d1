"""The claims the prose makes, checked on the real build's results (the default grids, read from
the cache the session's site build filled), against recomputations from those results, and
against the sentences the built pages actually say."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest

from generator.cache import Cache
from generator.chapters import CHAPTERS
from generator.grids import load_grids
from tests.conftest import CACHE_DIR

CONTENT = Path(__file__).resolve().parent.parent / "content"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real(site):
    """Every chapter's results for the default grids (cache hits after the site's build)."""
    grids, cache = load_grids(), Cache(CACHE_DIR)
    memo = lambda fn, config: cache.result(fn, config)  # noqa: E731
    out = {}
    for chapter in CHAPTERS:
        if chapter.reads_pages:
            continue
        config = chapter.configure(grids, chapter.name, CONTENT)
        out[chapter.name] = cache.result(chapter.simulate, config, compute=lambda c, ch=chapter: ch.simulate(c, memo))
    return out


def page_text(site: Path, page: str) -> str:
    body = (site / page).read_text()
    body = body[body.index('<article'):body.index('</article>')]
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


def test_pretraining_milestones_are_the_first_evaluations_past_each_baseline(real, site):
    res = real["pretraining"]
    f, c = res.facts, res.corpus
    best = min(res.models, key=lambda m: m.heldout_loss[-1])
    for level, step in ((c.unigram_loss, f.unigram_step), (c.bigram_loss, f.bigram_step)):
        below = [int(s) for s, loss in zip(best.eval_steps, best.heldout_loss) if loss < level]
        assert step == (below[0] if below else None)
    assert f.excess == pytest.approx(f.best_loss - f.floor, abs=2e-4)  # float32 forward vs float64
    assert 0 <= f.excess_on_certain_share <= 1
    text = page_text(site, "pretraining.html")
    if f.unigram_step is not None:
        assert f"past the unigram line by step {f.unigram_step}" in text
    assert f"ends {f.excess:.2f} bits above the floor" in text


def test_pretraining_says_whether_depth_paid_as_the_losses_say(real, site):
    f = real["pretraining"].facts
    text = page_text(site, "pretraining.html")
    paid = f.loss_most_layers < f.loss_fewest_layers
    assert ("here depth paid for its parameters" in text) == paid
    assert ("the extra parameters did not pay within this budget" in text) == (not paid)
    if not paid:
        assert "This is where the toy differs from real LLMs" in text


def test_attention_doubling_sentence_follows_the_measured_ratio(real, site):
    f = real["tokenization"].facts
    text = page_text(site, "tokenization.html")
    near_four = 3 <= f.ratio_top <= 5
    assert ("close to the 4 the arithmetic predicts" in text) == near_four
    assert ("not the 4 the arithmetic alone predicts" in text) == (not near_four)


def test_the_beta_sentence_follows_the_measured_kl(real, site):
    f = real["alignment"].facts
    text = page_text(site, "alignment.html")
    ratio = f.kl_after / f.kl_after_last
    assert ("Here $\\beta$ barely changes" in text or "barely changes how far the model moves" in text) == (0.8 < ratio < 1.25)
    res = real["alignment"]
    assert f.kl_after == res.dpo[0].kl[-1] and f.kl_after_last == res.dpo[-1].kl[-1]


def test_kv_timing_sentences_follow_the_measured_times(real, site):
    f = real["kvcache"].facts
    text = page_text(site, "kvcache.html")
    assert ("little difference, because for such a small model" in text) == (
        f.ms_uncached_short < 2 * f.ms_cached_short)
    t = real["kvcache"].times
    assert f.cached_growth == pytest.approx(t.seconds_cached[-1] / t.seconds_cached[0])
    assert np.all(np.diff(real["kvcache"].madds_uncached) > 0)
