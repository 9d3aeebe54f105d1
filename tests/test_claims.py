"""The claims the prose makes, checked on the real build's results (the default grids, read from
the cache the session's site build filled), against recomputations from those results, and
against the sentences the built pages actually say."""

from __future__ import annotations

import html
import re
from pathlib import Path

import numpy as np
import pytest

from generator import checkpoints
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
    memo = checkpoints.shipped_memo(cache.result)  # as the build reads the family
    shipped = checkpoints.digest()
    out = {}
    for chapter in CHAPTERS:
        if chapter.reads_pages:
            continue
        config = chapter.configure(grids, chapter.name, CONTENT)
        out[chapter.name] = cache.result(chapter.simulate, config, inputs=shipped,
                                         compute=lambda c, ch=chapter: ch.simulate(c, memo))
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


def test_bigger_models_reach_lower_losses_and_the_page_says_so(real, site):
    res = real["pretraining"]
    f = res.facts
    by_size = sorted(res.models, key=lambda m: m.n_params)
    losses = [float(m.heldout_loss[-1]) for m in by_size]
    assert len(by_size) >= 4 and by_size[-1].n_params >= 10 * by_size[0].n_params
    assert {m.config.n_layer for m in by_size} != {by_size[0].config.n_layer}  # depth varies
    assert {m.config.n_embd for m in by_size} != {by_size[0].config.n_embd}  # and width
    assert f.monotone and all(b < a for a, b in zip(losses, losses[1:])), list(zip(f.sizes, losses))
    assert losses[0] - losses[-1] >= 0.05
    text = page_text(site, "pretraining.html")
    assert f"the final loss falls by {f.size_gain:.3f} bits per token" in text
    assert "Every step up in size lowers it" in text


def test_the_compute_curves_cross_and_the_page_says_where(real, site):
    res = real["pretraining"]
    f, front = res.facts, res.frontier
    params = [m.n_params for m in res.models]
    assert params[front.leader[0]] < params[front.leader[-1]], "a small model leads at low compute"
    assert f.curves_cross
    text = page_text(site, "pretraining.html")
    assert "The curves cross" in text and f"the {f.leader_high} model leads" in text


def test_an_induction_head_and_a_previous_token_head_form_and_the_page_shows_them(real, site):
    res = real["attention"]
    f, h = res.facts, res.heads
    assert h.previous_probe.max() >= 0.5 and h.induction.max() >= 0.4  # the page's two definitions
    assert h.repeated_tokens.max() >= 0.4 and f.n_induction_heads >= 1
    shown = (h.model_layers == f.n_layer) & (h.model_heads == f.n_head)
    assert h.repeated_tokens[shown].max() >= 0.4 and f.open_repeated == h.repeated_tokens[shown].max()
    assert f.one_layer_top_repeated < 0.4 <= f.deeper_top_repeated  # induction needs two layers
    text = page_text(site, "attention.html")
    assert "The family bears it out" in text
    assert f"opens on head {f.open_head} of layer {f.open_layer}" in text


def test_the_formation_chart_shows_a_phase_change_named_from_its_checkpoints(real, site):
    res = real["attention"]
    f = res.facts
    shown = next(x for x in res.formations if (x.n_layer, x.n_head) == (f.n_layer, f.n_head))
    assert len(shown.steps) >= 20 and f.formed
    jump = int(np.argmax(np.diff(shown.top_repeated)))
    assert (f.rise_from, f.rise_to) == (shown.steps[jump], shown.steps[jump + 1])
    assert shown.top_repeated[0] < 0.1 and shown.top_repeated[-1] >= 0.4
    assert shown.loss[-1] < shown.loss[jump] and shown.icl[-1] < shown.icl[0]  # context helps more
    text = page_text(site, "attention.html")
    assert f"rose most between steps {f.rise_from:,} and {f.rise_to:,}" in text
    assert "a phase change" in text


def test_attention_doubling_sentence_follows_the_measured_ratio(real, site):
    f = real["tokenization"].facts
    text = page_text(site, "tokenization.html")
    near_four = 3 <= f.ratio_top <= 5
    assert ("close to the 4 the arithmetic predicts" in text) == near_four
    assert ("not the 4 the arithmetic alone predicts" in text) == (not near_four)


def test_sft_learns_the_format_and_its_price_is_shown(real, site):
    res = real["alignment"]
    f = res.facts
    assert res.sft.exact[-1] >= 0.9 and f.sft_reached
    by_rate = sorted(res.sft_runs, key=lambda r: r.learning_rate)
    assert all(a.story_loss[-1] < b.story_loss[-1] for a, b in zip(by_rate, by_rate[1:]))  # faster forgets more
    assert res.sft.learning_rate == min(r.learning_rate for r in res.sft_runs if r.exact[-1] >= 0.9)
    text = page_text(site, "alignment.html")
    assert f"reproduces {100 * f.exact_after:.1f}%" in text
    assert "the more of the old it forgets" in text


def test_the_reward_model_learns_the_hidden_order_from_noisy_labels(real):
    res = real["alignment"]
    rm = res.reward_model
    assert 0.05 < res.label_noise < 0.45  # the labels are noisy
    assert rm.agreement[-1] >= 0.9 and rm.accuracy[-1] > 0.5 + 0.5 * (1 - 2 * res.label_noise) - 0.1
    assert list(np.argsort(rm.feeling_scores)) == list(np.argsort(res.rewards))


def test_beta_and_the_kl_coefficient_order_the_drift_and_the_page_says_so(real, site):
    res = real["alignment"]
    f = res.facts
    dpo_kl = [r.track.kl[-1] for r in res.dpo]
    rl_kl = [r.track.kl[-1] for r in res.rl]
    assert all(a > b for a, b in zip(dpo_kl, dpo_kl[1:])) and dpo_kl[0] >= 3 * dpo_kl[-1]
    assert all(a > b for a, b in zip(rl_kl, rl_kl[1:]))
    text = page_text(site, "alignment.html")
    assert f"{f.dpo_kl_ratio:.1f} times as far with the smallest" in text
    assert "the smaller the coefficient, the further the policy goes" in text


def test_over_optimisation_and_falling_log_probabilities_are_said_when_they_happen(real, site):
    res = real["alignment"]
    f = res.facts
    text = page_text(site, "alignment.html")
    run = res.rl[0]
    peak = int(np.argmax(run.track.true_reward))
    hacked = run.track.true_reward[peak] - run.track.true_reward[-1] > 0.01 and run.track.rm_score[-1] > run.track.rm_score[peak]
    assert hacked and f.overoptimised  # the smallest penalty lets the policy exploit the reward model
    assert "That run shows over-optimisation" in text
    assert run.track.feeling_share[-1] < 0.5 and res.rl[-1].track.feeling_share[-1] > 0.9  # hacked, and held
    assert f"it ends with {100 * run.track.feeling_share[-1]:.1f}% of its probability on any feeling" in text
    assert "The KL penalty is what stops this" in text
    first = res.dpo[0]
    both = first.logp_chosen[-1] < first.logp_chosen[0] and first.logp_rejected[-1] < first.logp_rejected[0]
    faster = first.logp_rejected[-1] - first.logp_rejected[0] < first.logp_chosen[-1] - first.logp_chosen[0]
    assert ("both fall" in text) == both and ("both fall, the rejected faster" in text) == (both and faster)
    assert max(r.track.true_reward[-1] for r in (*res.rl, *res.dpo)) > res.sft_track.true_reward[0] + 0.3
    runs = (*res.rl, *res.dpo)
    worst = run.track.kl[-1] >= max(r.track.kl[-1] for r in runs) and run.track.true_reward[-1] <= min(
        r.track.true_reward[-1] for r in runs)
    assert ("the RLHF run with the smallest penalty travels furthest and ends lowest" in text) == (hacked and worst)


def test_kv_timing_sentences_follow_the_measured_times(real, site):
    f = real["kvcache"].facts
    text = page_text(site, "kvcache.html")
    assert ("little difference, because for such a small model" in text) == (
        f.ms_uncached_short < 2 * f.ms_cached_short)
    t = real["kvcache"].times
    assert f.cached_growth == pytest.approx(t.seconds_cached[-1] / t.seconds_cached[0])
    assert np.all(np.diff(real["kvcache"].madds_uncached) > 0)


# ---------------------------------------------------------------------------------------------
# The tiny model that calls the calculator (the RAG chapter's last section)


@pytest.fixture(scope="module")
def tool_use(rag_results):
    """The shipped tool models measured on the default grid (the same whatever the knowledge base)."""
    return rag_results.tool_use, rag_results.facts


def test_every_generated_conversation_is_what_the_runtime_and_the_tokens_say(tool_use, rag_inputs):
    import json

    from generator.sims import tools

    u, f = tool_use
    calculator = [t for t in rag_inputs.script.tools if t.name == "calculator"]
    right = {k: [] for k in u.kinds}
    for g in u.generated:
        for call, reply in zip(g.calls, g.replies):
            assert reply == tools.run_call(call, calculator, {"calculator": tools.calculate})
        last = g.tokens[len(g.tokens) - 1 - g.tokens[::-1].index("<|assistant|>") + 1:]
        said = "".join(t for t in last if t.isdigit())
        right[g.question.kind].append(g.finished and said == str(g.question.answer))
    for j, k in enumerate(u.kinds):
        assert u.accuracy[0, j] == pytest.approx(np.mean(right[k])) == pytest.approx(f.tool_accuracy[k])
    replies = [(g, json.loads(r)) for g in u.generated for r in g.replies]
    assert f.tool_n_calls == len(replies)
    assert f.tool_valid_calls == pytest.approx(np.mean(["result" in r for _, r in replies]))
    assert f.tool_right_calls == pytest.approx(np.mean([r.get("result") == g.question.answer for g, r in replies]))
    assert f.tool_n_refused == sum("error" in r for _, r in replies)
    wrong_one = [g for g in u.generated if g.question.kind == "one" and not g.correct]
    other = [g for g in wrong_one if g.answer == sum(g.question.counts) - g.question.answer]
    assert f.one_wrong_other == pytest.approx(len(other) / len(wrong_one))


def test_the_model_without_the_tool_scores_what_the_page_says(tool_use):
    # Greedy decoding written out here, without the runtime: this model never calls.
    from generator.grids import RagGrid, PretrainingGrid
    from generator.sims import rag, tool_use as tu
    from generator.sims.gpt import gpt

    u, f = tool_use
    grid = RagGrid()
    calls, direct = (checkpoints.load(c) for c in rag.tool_trainings(grid, PretrainingGrid()))
    questions = tu.heldout_questions(grid.tool_heldout, grid.tool_max_count, grid.seed,
                                     tu.training_questions(calls.config))
    assert [q.tokens for q in questions] == [g.question.tokens for g in u.generated]
    index = {w: i for i, w in enumerate(direct.vocab)}
    right = {k: [] for k in u.kinds}
    for q in questions:
        ids = [index[t] for t in tu.prompt(q)]
        while direct.vocab[ids[-1]] != "<|end|>" or len(ids) == len(tu.prompt(q)):
            if len(ids) == direct.params["wpe"].shape[0]:
                break
            ids.append(int(gpt(np.array([ids]), direct.params, direct.n_head).logits[0, -1].argmax()))
        said = "".join(direct.vocab[i] for i in ids[len(tu.prompt(q)):] if direct.vocab[i].isdigit())
        right[q.kind].append(direct.vocab[ids[-1]] == "<|end|>" and said == str(q.answer))
    for j, k in enumerate(u.kinds):
        assert f.direct_accuracy[k] == pytest.approx(np.mean(right[k])) == pytest.approx(u.accuracy[1, j])


def test_the_calculator_carries_the_answers_and_the_page_says_so(tool_use, site):
    u, f = tool_use
    text = page_text(site, "rag.html")
    assert f.tool_valid_calls >= 0.95 and f.tool_right_calls >= 0.9  # the model learnt the call
    assert f.tool_margin > 0.25  # with the tool far better than without, on every kind that needs it
    assert "The calculator carries the arithmetic" in text
    assert f"its best is {f.direct_best_needing:.1%}" in text
    assert f.tool_worst_needing >= 0.9 and f.direct_best_needing < f.tool_worst_needing - 0.25
    if f.decides_perfectly:
        assert "never on a question about one child's count" in text
    if f.one_is_weakest:
        assert f"{f.one_wrong_other:.1%} of its wrong answers there are the other child's count" in text
    assert f"It made {f.tool_n_calls} calls" in text
    if f.tool_n_refused == 0:
        assert "The runtime refused none of its calls" in text
    if f.one_wrong_other > 0.5:
        assert "would pick between the two counts at random" in text
