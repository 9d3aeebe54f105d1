"""The alignment chapter's sims: DPO's and SFT's gradients against finite differences, DPO's loss
worked by hand, the demonstrations and pairs against the stories, and the stages' effects."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from generator.grids import AlignmentGrid
from generator.sims import alignment as al
from generator.sims import finetune as ft
from generator.sims.family import WithFamily, member_config
from generator.sims.gpt import gpt, init_params, leaves
from generator.sims.stories import END, World, corpus, vocabulary
from generator.sims.train import BITS, DataConfig, make_data
from generator.validation import GridError
from tests.helpers import TINY_FAMILY, RecordingMemo, family_grids

FAMILY = dataclasses.replace(TINY_FAMILY, n_ctx=64)  # a story, its recap and END fit
GRID = AlignmentGrid(train_stories=120, heldout_stories=48, sft_steps=20, sft_learning_rates=(0.006, 0.01),
                     rm_steps=20, rm_learning_rate=0.003, rl_steps=20, rl_learning_rate=0.001,
                     kl_coefs=(0.1, 1.0), dpo_steps=20, dpo_learning_rate=0.001, betas=(0.1, 0.5),
                     warmup_steps=2, eval_every=5, batch_size=8)


@pytest.fixture(scope="module")
def memo(shared_memo):
    return RecordingMemo(shared_memo)


@pytest.fixture(scope="module")
def res(memo):
    return al.simulate_in_workers(WithFamily(GRID, FAMILY), memo, workers=2)


@pytest.fixture(scope="module")
def calls(memo, res):
    return [(name, config) for name, config, _ in memo.calls]


VOCAB = vocabulary(World())


def tiny_pairs(rng, n_pair=3, n_seq=6, n_vocab=7):
    x = rng.integers(0, n_vocab, (2 * n_pair, n_seq))
    y = rng.integers(0, n_vocab, (2 * n_pair, n_seq))
    mask = np.zeros((2 * n_pair, n_seq))
    for b in range(2 * n_pair):
        mask[b, rng.integers(1, n_seq - 1):] = 1
    return ft.Sequences(x, y, mask)


def finite_difference_check(loss_fn, params, grads, rng, n_checks=4):
    for (name, p), (_, g) in zip(leaves(params), leaves(grads)):
        for _ in range(n_checks):
            i = tuple(rng.integers(0, s) for s in p.shape)
            old = p[i]
            p[i] = old + 1e-6
            up = loss_fn()
            p[i] = old - 1e-6
            down = loss_fn()
            p[i] = old
            assert g[i] == pytest.approx((up - down) / 2e-6, rel=1e-4, abs=1e-8), name


def test_dpo_gradient_matches_finite_differences_in_float64():
    rng = np.random.default_rng(0)
    params = init_params(7, 6, 8, 1, rng, dtype=np.float64)
    params = {**params, "wte": params["wte"] * 50}  # larger logits: margins away from 0
    pairs = tiny_pairs(rng)
    ref_logp = rng.normal(-4, 1, len(pairs.x))
    _, _, grads = al.dpo_gradient(params, 2, pairs, ref_logp, beta=0.7)
    finite_difference_check(lambda: al.dpo_gradient(params, 2, pairs, ref_logp, 0.7)[0], params, grads, rng)


def test_sft_gradient_matches_finite_differences_in_float64():
    rng = np.random.default_rng(1)
    params = init_params(7, 6, 8, 1, rng, dtype=np.float64)
    demos = tiny_pairs(rng)
    _, grads = ft.sft_gradient(params, 2, demos)
    finite_difference_check(lambda: ft.sft_gradient(params, 2, demos)[0], params, grads, rng)


def test_dpo_loss_worked_by_hand_on_two_token_responses():
    # Two-token vocabulary; logits log(p), log(1 - p) give the next token probability p exactly.
    def logits(*ps):
        return np.log([[[p, 1 - p] for p in ps]])

    s = ft.Sequences(np.zeros((1, 3), int), np.zeros((1, 3), int), np.array([[0.0, 1, 1]]))
    policy_w = ft.sequence_log_probs(logits(0.9, 0.5, 0.8), s)  # the first token is prompt: not counted
    policy_l = ft.sequence_log_probs(logits(0.9, 0.5, 0.25), s)
    reference = ft.sequence_log_probs(logits(0.1, 0.5, 0.5), s)
    assert policy_w[0] == pytest.approx(math.log(0.4))
    loss, d_w, d_l, margin = al.dpo_loss(policy_w, policy_l, reference, reference, beta=1.0)
    # beta [(log .4 - log .25) - (log .125 - log .25)] = log 3.2; -log sigmoid(log 3.2) = log(1 + 1/3.2)
    assert margin[0] == pytest.approx(math.log(3.2))
    assert loss == pytest.approx(math.log(1.3125))
    assert d_w[0] == pytest.approx(-1 / 4.2) and d_l[0] == pytest.approx(1 / 4.2)  # -/+ sigmoid(-margin)
    assert al.dpo_loss(*np.log([[0.5], [0.25], [0.25], [0.5]]), beta=1.0)[0] == pytest.approx(-math.log(0.8))


def test_only_the_chosen_pretrained_model_is_read_through_the_memo(calls):
    assert calls == [("train_model", member_config(FAMILY, 2, 2))]


def test_demonstrations_recap_who_had_what_and_learn_only_real_tokens():
    stories = al.fitting_stories(corpus(World(), 30, [0, 10]), FAMILY.n_ctx)
    demos = al.demonstrations(stories, VOCAB, FAMILY.n_ctx, whole=False)
    for b, s in enumerate(stories):
        words = [VOCAB[i] for i in s]
        had = words.index("had")
        assert words[had + 1] in ("a", "an") and words[had + 4] == "."
        response = [VOCAB[i] for i in demos.y[b][demos.mask[b] > 0]]
        assert response == [words[had - 1], "had", "the", words[had + 3], ".", END]
        assert list(demos.x[b, :len(s)]) == s
    whole = al.demonstrations(stories, VOCAB, FAMILY.n_ctx, whole=True)
    assert (whole.mask.sum(axis=1) == [len(s) - 1 + al.RECAP_LENGTH + 1 for s in stories]).all()


def test_pairs_share_the_prompt_differ_only_in_the_feeling_and_are_labelled_by_bradley_terry():
    stories = al.fitting_stories(corpus(World(), 400, [0, 10]), FAMILY.n_ctx)
    rewards = np.array([1.0, -1.0, -0.5, 0.5])
    pairs, feelings = al.labelled_pairs(stories, VOCAB, FAMILY.n_ctx, rewards, 1.0, np.random.default_rng(0))
    names = World().feelings
    for i in range(len(stories)):
        w, l = 2 * i, 2 * i + 1
        differ = np.flatnonzero(pairs.y[w] != pairs.y[l])
        assert len(differ) == 1
        assert (np.flatnonzero(pairs.x[w] != pairs.x[l]) == differ + 1).all()  # the feeling, read next
        assert VOCAB[pairs.y[w, differ[0]]] == names[feelings[0, i]]
        assert VOCAB[pairs.y[l, differ[0]]] == names[feelings[1, i]] != names[feelings[0, i]]
        assert VOCAB[pairs.x[w, differ[0]]] == "were"
        assert [VOCAB[t] for t in pairs.y[w][pairs.mask[w] > 0]] == [names[feelings[0, i]]]  # the feeling alone
    # the labels follow sigmoid(r(a) - r(b)): for each unordered pair of feelings, the share of
    # times the better one is chosen, against its probability (within 4 standard errors)
    for a in range(4):
        for b in range(a + 1, 4):
            better, worse = (a, b) if rewards[a] > rewards[b] else (b, a)
            mine = ((feelings[0] == better) & (feelings[1] == worse)) | ((feelings[0] == worse) & (feelings[1] == better))
            chose_better = (feelings[0][mine] == better).mean()
            p = 1 / (1 + math.exp(-(rewards[better] - rewards[worse])))
            assert abs(chose_better - p) < 4 * math.sqrt(p * (1 - p) / mine.sum()) + 1e-9, (a, b)


def test_reward_model_gradient_matches_finite_differences_in_float64():
    rng = np.random.default_rng(3)
    gpt_params = init_params(7, 6, 8, 1, rng, dtype=np.float64)
    params = {"gpt": gpt_params, "head": rng.normal(0, 1, 7)}
    pairs = tiny_pairs(rng)
    at = rng.integers(0, 6, len(pairs.x))
    _, grads = al.reward_model_gradient(params, 2, pairs, at)
    finite_difference_check(lambda: al.reward_model_gradient(params, 2, pairs, at)[0], params, grads, rng)


def test_bradley_terry_worked_by_hand():
    loss, d_w, d_l = al.bradley_terry([math.log(3)], [0.0])
    assert loss == pytest.approx(-math.log(0.75)) and d_w[0] == pytest.approx(-0.25) and d_l[0] == pytest.approx(0.25)


def test_policy_gradient_surrogate_matches_finite_differences():
    rng = np.random.default_rng(4)
    z = rng.normal(0, 2, (5, 7))
    samples, advantages = rng.integers(0, 7, 5), rng.normal(0, 1, 5)
    _, grad = al.policy_gradient_surrogate(z, samples, advantages)
    for i, j in [(0, 0), (1, 3), (4, 6), (2, int(samples[2]))]:
        up, down = z.copy(), z.copy()
        up[i, j] += 1e-6
        down[i, j] -= 1e-6
        numeric = (al.policy_gradient_surrogate(up, samples, advantages)[0]
                   - al.policy_gradient_surrogate(down, samples, advantages)[0]) / 2e-6
        assert grad[i, j] == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_dpo_gradient_with_the_chosen_nll_matches_finite_differences_in_float64():
    rng = np.random.default_rng(5)
    params = init_params(7, 6, 8, 1, rng, dtype=np.float64)
    pairs = tiny_pairs(rng)
    ref_logp = rng.normal(-4, 1, len(pairs.x))
    _, _, grads = al.dpo_gradient(params, 2, pairs, ref_logp, 0.3, nll_weight=0.4)
    finite_difference_check(lambda: al.dpo_gradient(params, 2, pairs, ref_logp, 0.3, 0.4)[0], params, grads, rng)


def test_the_judge_measures_true_reward_and_kl_exactly():
    rng = np.random.default_rng(6)
    params = init_params(len(VOCAB), 64, 8, 1, rng, dtype=np.float64)
    stories = al.fitting_stories(corpus(World(), 40, [0, 11]), 64)
    rewards = np.array([1.0, -1.0, -0.5, 0.5])
    pairs, _ = al.labelled_pairs(stories, VOCAB, 64, rewards, 1.0, rng)
    pairs = pairs.take(slice(None))
    judge = al.Judge.make(params, 2, pairs, VOCAB, rewards)
    true, _, kl, p_best, share = judge.measure(params, 2)
    assert kl == pytest.approx(0, abs=1e-12)  # the reference against itself
    z = gpt_forward(params, pairs.x[0::2])[np.arange(len(judge.x)), judge.at]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    on = p[:, [VOCAB.index(f) for f in World().feelings]]
    assert true == pytest.approx(np.mean(on @ rewards + (1 - on.sum(axis=1)) * rewards.min()))
    assert share == pytest.approx(on.sum(axis=1).mean()) and p_best == pytest.approx(on[:, 0].mean())
    other = init_params(len(VOCAB), 64, 8, 1, np.random.default_rng(7), dtype=np.float64)
    q = gpt_forward(other, pairs.x[0::2])[np.arange(len(judge.x)), judge.at]
    q = np.exp(q - q.max(axis=1, keepdims=True))
    q /= q.sum(axis=1, keepdims=True)
    by_hand = np.mean([sum(qi * math.log(qi / pi) for qi, pi in zip(qr, pr)) for qr, pr in zip(q, p)])
    assert judge.measure(other, 2)[2] == pytest.approx(by_hand, rel=1e-9)


def gpt_forward(params, x):
    from generator.sims.gpt import gpt
    return gpt(x, params, 2).logits.astype(np.float64)


def test_sft_learns_the_recap_and_every_policy_starts_at_the_reference(res):
    for run in res.sft_runs:
        assert run.recap_loss[0] == pytest.approx(res.pretrained_recap_loss)
        for (a, b), mean in zip(zip(run.eval_steps, run.eval_steps[1:]), run.train_loss_at_eval):
            assert mean == pytest.approx(np.mean(run.train_loss[a:b]))
        assert run.recap_loss[-1] < run.recap_loss[0] - 1  # bits per recap token
        assert run.train_loss[-5:].mean() < run.train_loss[:5].mean()
    assert res.sft_chosen == al.chosen_sft(res.sft_runs)
    for run in res.dpo:
        assert run.loss[0] == pytest.approx(math.log(2))  # the policy starts as the reference
        assert run.margin[0] == 0 and run.track.kl[0] == pytest.approx(0, abs=1e-9)
        assert run.train_loss[-5:].mean() < run.train_loss[:5].mean() and run.track.kl[-1] > 0
    for run in res.rl:
        assert run.track.kl[0] == pytest.approx(0, abs=1e-9) and run.track.kl[-1] > 0
        assert run.track.true_reward[0] == pytest.approx(res.sft_track.true_reward[0])
    assert res.reward_model.heldout_loss[0] == pytest.approx(math.log(2))  # a zero head scores all alike
    # (what the stages achieve is checked on the real build's results: tests/test_claims.py)


def test_the_sft_run_carried_forward_is_the_smallest_rate_reaching_the_target():
    def run(rate, exact):
        return al.SFTRun(rate, np.zeros(1), np.zeros(1), np.zeros(0), np.zeros(1), np.array([exact]), np.zeros(1))
    assert al.chosen_sft([run(0.1, 0.5), run(0.3, 0.95), run(1.0, 1.0)]) == 1
    assert al.chosen_sft([run(0.1, 0.5), run(0.3, 0.7)]) == 1  # none reaches it: the best


def test_the_sft_run_is_chosen_as_soon_as_the_finished_runs_decide_it():
    def run(rate, exact):
        return al.SFTRun(rate, np.zeros(1), np.zeros(1), np.zeros(0), np.zeros(1), np.array([exact]), np.zeros(1))
    rates = (0.1, 0.3, 1.0)
    assert al.decided_sft(rates, {}) is None
    assert al.decided_sft(rates, {1: run(0.3, 0.95)}) is None  # the smaller rate may reach it too
    assert al.decided_sft(rates, {0: run(0.1, 0.5), 1: run(0.3, 0.95)}) == 1  # whatever 1.0 reaches
    assert al.decided_sft(rates, {0: run(0.1, 0.95)}) == 0
    assert al.decided_sft(rates, {0: run(0.1, 0.5), 2: run(1.0, 0.95)}) is None
    assert al.decided_sft(rates, {0: run(0.1, 0.5), 1: run(0.3, 0.7)}) is None  # none reaches it yet
    assert al.decided_sft(rates, {0: run(0.1, 0.5), 1: run(0.3, 0.7), 2: run(1.0, 0.6)}) == 1  # the best


def assert_identical(a, b, where="results"):
    """Every field of two results equal to the bit (arrays with their dtypes, NaN as NaN)."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            assert_identical(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, (tuple, list)):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), where
    else:
        assert a == b or (a != a and b != b), where


def test_the_runs_give_the_same_numbers_in_worker_processes_as_one_after_another(res, shared_memo):
    assert_identical(al.simulate_in_workers(WithFamily(GRID, FAMILY), shared_memo, workers=1), res)


def test_the_held_out_text_is_the_pretraining_chapters_without_its_training_stories():
    cfg = DataConfig(n_ctx=32, train_stories=40, heldout_stories=12, seed=3)
    full, held = make_data(cfg), al.heldout_text(cfg)
    assert held.vocab == full.vocab and len(held.train_starts) == 0
    for name in ("heldout_x", "heldout_y", "heldout_log2p"):
        assert np.array_equal(getattr(held, name), getattr(full, name)), name


def test_next_token_distributions_are_distributions_for_every_stage(res):
    assert res.stages == ("pretrained", "SFT", "RLHF, c = 0.1", "RLHF, c = 1", "DPO, β = 0.1", "DPO, β = 0.5")
    for nt in res.next_tokens:
        assert nt.probs.shape == (6, len(VOCAB))
        assert np.allclose(nt.probs.sum(axis=1), 1)
    assert res.next_tokens[1].prompt.endswith("were") and res.next_tokens[1].target == "happy"


def test_same_config_gives_identical_results(res):
    again = al.simulate(WithFamily(GRID, FAMILY))
    assert np.array_equal(again.sft.train_loss, res.sft.train_loss)
    assert np.array_equal(again.sft.exact, res.sft.exact)
    for a, b in zip(again.dpo, res.dpo):
        assert np.array_equal(a.train_loss, b.train_loss) and np.array_equal(a.track.kl, b.track.kl)
    for a, b in zip(again.rl, res.rl):
        assert np.array_equal(a.train_reward, b.train_reward)
    assert all(np.array_equal(a.probs, b.probs) for a, b in zip(again.next_tokens, res.next_tokens))


@pytest.mark.parametrize("change, field", [
    ({"rewards": (1.0, 0.0, 0.5)}, "grids.alignment.rewards"),
    ({"rewards": (1.0, 1.0, 0.5, 0.0)}, "grids.alignment.rewards"),
    ({"n_layer": 3}, "grids.alignment.n_layer"),
])
def test_bad_settings_name_their_field(change, field):
    grid = AlignmentGrid(**{**{"train_stories": 10, "heldout_stories": 4, "batch_size": 2}, **change})
    with pytest.raises(GridError, match=field):
        family_grids(FAMILY, alignment=grid)


def test_grid_checks_its_own_fields():
    with pytest.raises(GridError, match="grids.alignment.shown_story"):
        AlignmentGrid(heldout_stories=4, shown_story=4)
    with pytest.raises(GridError, match=r"grids.alignment.betas"):
        AlignmentGrid(betas=(0.5, 0.1))
    with pytest.raises(GridError, match=r"grids.alignment.kl_coefs"):
        AlignmentGrid(kl_coefs=(1.0, 0.1))



def test_recap_measures_are_one_forward_passs_loss_and_exact_share():
    """Half the rows' responses made the model's own top guesses, the other half's first
    response token made another: half reproduced exactly, and the loss is the response tokens'."""
    stories = al.fitting_stories(corpus(World(), 12, [0, 10]), FAMILY.n_ctx)
    demos = al.demonstrations(stories, VOCAB, FAMILY.n_ctx, whole=False).take(slice(None))
    params = init_params(len(VOCAB), FAMILY.n_ctx, 8, 1, np.random.default_rng(0))
    logits = gpt(demos.x, params, 2).logits
    top = logits.argmax(axis=-1)  # [n_batch, n_seq]
    half = len(demos.x) // 2
    y = np.where(demos.mask > 0, top, demos.y)
    first = demos.mask.argmax(axis=1)
    rows = np.arange(half, len(y))
    y[rows, first[rows]] = (top[rows, first[rows]] + 1) % len(VOCAB)
    demos = ft.Sequences(demos.x, y, demos.mask)
    loss, share = al.recap_measures(params, 2, demos)
    assert share == ft.exact_share(params, 2, demos) == half / len(y)
    assert loss == float(-ft.sequence_log_probs(logits, demos).sum() / demos.mask.sum() * BITS)


def test_the_judge_reads_the_pairs_forward_pass_as_its_own():
    """DPO's evaluation hands the judge the logits of the held-out pairs' chosen rows: the same
    measures, to the bit, as the judge's own forward pass over its prompts."""
    stories = al.fitting_stories(corpus(World(), 24, [0, 11]), FAMILY.n_ctx)
    rewards = np.array(AlignmentGrid().rewards)
    pairs, _ = al.labelled_pairs(stories, VOCAB, FAMILY.n_ctx, rewards, 1.0, np.random.default_rng(0))
    pairs = pairs.take(slice(None))
    ref, policy = (init_params(len(VOCAB), FAMILY.n_ctx, 8, 1, np.random.default_rng(seed)) for seed in (1, 2))
    judge = al.Judge.make(ref, 2, pairs, VOCAB, rewards)
    logits = gpt(pairs.x, policy, 2).logits
    assert np.array_equal(judge.measure(policy, 2, logits=logits[0::2]), judge.measure(policy, 2),
                          equal_nan=True)  # no reward model: its score is nan
    other = gpt(pairs.x, ref, 2).logits[0::2]  # the logits are what it measures
    assert np.array_equal(judge.measure(policy, 2, logits=other), judge.measure(ref, 2), equal_nan=True)
    with pytest.raises(ValueError):
        judge.measure(policy, 2, logits=logits)  # every row, not the judge's prompts
