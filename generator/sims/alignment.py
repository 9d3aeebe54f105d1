"""Fine-tuning and alignment: a pretrained tiny GPT taught a format, then a preference, three ways.

Simulated: one model of the pretraining family (loaded through `memo`, never retrained) goes
through the stages that make an assistant, each continuing from the weights before it with
AdamW, warmup and cosine decay and gradient clipping (generator.sims.train).

1. Supervised fine-tuning (SFT), once per learning rate of the grid, on demonstrations of a
   format pretraining never showed: after a whole story and its END comes a recap of who had
   what, "Tom had the ball .", copied from the story's "Tom had a red ball .", then END. The
   loss is the cross-entropy of every token of the demonstration (story and recap); the recap
   is measured on its own, and the loss on the pretraining chapter's held-out text shows what
   fine-tuning costs. The run carried forward is the one with the smallest learning rate that
   reproduces at least SFT_TARGET of the held-out recaps (else the one reproducing most).
2. Preferences with noise: each pair shares a prompt (a story up to "... were") and ends it
   with two different feelings; a hidden reward r gives each feeling a value, and the labeller
   prefers ending a over b with the Bradley-Terry probability sigmoid(label_scale (r(a) - r(b))),
   so it sometimes prefers the worse one. The reward is known to the build, so every policy's
   true reward (the mean of r under its distribution of feelings after "were") is measured.
3. A reward model: the SFT model with a scalar head reading its logits after the feeling
   (score = v . logits), trained on the pairs with the Bradley-Terry loss
   -log sigmoid(score(chosen) - score(rejected)).
4. RLHF: policy-gradient fine-tuning of the SFT model (REINFORCE with the batch mean as the
   baseline): for each prompt a feeling is sampled from the policy, scored by the reward model,
   less kl_coef times log pi/pi_ref (the KL penalty to the SFT reference), once per KL
   coefficient.
5. Direct preference optimisation (DPO) on the same pairs with the SFT model as the frozen
   reference, once per beta: -log sigmoid(beta [(log pi(y_w|x) - log pi_ref(y_w|x)) -
   (log pi(y_l|x) - log pi_ref(y_l|x))]).

Every policy is measured on held-out prompts every few steps: its true reward, the reward
model's score of its feelings, and its drift from the reference, the exact KL divergence of its
next-token distribution after "were" from the reference's (the response's one free choice).
Not simulated: human labelers, PPO's clipping and value model, chat templates, LoRA; the
responses are one word long.

The runs go side by side in worker processes (generator.sims.parallel), started once for every
stage: the SFT runs together; the reward model (and the reference's log-probabilities, computed
once for every RLHF and DPO run) as soon as the finished SFT runs decide which one is carried
forward, while a larger rate may still train; then the DPO and RLHF runs together. No run reads
another's state or a shared generator: each takes its inputs as arguments and seeds its own
minibatches and samples from the grid's seed and a fixed stream number, so the numbers are the
same whichever worker runs it and in whatever order (simulate_in_workers with one worker runs
them one after another, in the calling process).
"""

from __future__ import annotations

import dataclasses
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from generator.sims import parallel
from generator.sims.family import Memo, WithFamily, load_member, member_config, uncached
from generator.sims.finetune import (Schedule, Sequences, exact_share, log_softmax, optimise, pad,
                                     sequence_log_probs, sequence_log_probs_backward, sft_gradient)
from generator.sims.gpt import gpt, gpt_backward, softmax
from generator.sims.stories import END, Corpus, World, corpus, detokenize
from generator.sims.train import BITS, Data, DataConfig, heldout_loss, make_data

if TYPE_CHECKING:
    from generator.grids import AlignmentGrid

RECAP_LENGTH = 5  # "Tom had the ball .": who had what, copied from the story
SFT_TARGET = 0.9  # share of held-out recaps the SFT run carried forward must reproduce
STAGES = ("pretrained", "SFT")  # then one "RLHF, c = k" per KL coefficient and "DPO, β = b" per beta


@dataclass(frozen=True)
class SFTRun:
    learning_rate: float
    train_loss: np.ndarray  # [sft_steps] bits per token of the demonstrations each step trained on
    eval_steps: np.ndarray  # [n_eval]
    train_loss_at_eval: np.ndarray  # [n_eval - 1] mean training loss since the evaluation before
    recap_loss: np.ndarray  # [n_eval] bits per recap token, held-out
    exact: np.ndarray  # [n_eval] share of held-out recaps whose every token is the top guess
    story_loss: np.ndarray  # [n_eval] bits per token on the pretraining chapter's held-out text


@dataclass(frozen=True)
class PolicyTrack:
    """A policy measured on the held-out prompts along its training."""

    eval_steps: np.ndarray  # [n_eval]
    true_reward: np.ndarray  # [n_eval] mean hidden reward of its ending after "were" (not a feeling: the worst)
    rm_score: np.ndarray  # [n_eval] mean reward-model score of one sampled ending per prompt
    kl: np.ndarray  # [n_eval] nats, KL(pi || pi_ref) of the next token after "were"
    p_best: np.ndarray  # [n_eval] probability of the feeling the hidden reward ranks first
    feeling_share: np.ndarray  # [n_eval] probability on any feeling at all after "were"


@dataclass(frozen=True)
class RewardModelRun:
    train_loss: np.ndarray  # [rm_steps] nats, Bradley-Terry loss of each step's pairs
    eval_steps: np.ndarray  # [n_eval]
    heldout_loss: np.ndarray  # [n_eval] nats
    accuracy: np.ndarray  # [n_eval] share of held-out pairs whose label it agrees with
    agreement: np.ndarray  # [n_eval] share of held-out pairs it orders as the hidden reward does
    feeling_scores: np.ndarray  # [n_feeling] mean final score of each feeling over held-out prompts


@dataclass(frozen=True)
class RLRun:
    kl_coef: float
    train_reward: np.ndarray  # [rl_steps] mean penalised reward of each step's samples
    track: PolicyTrack


@dataclass(frozen=True)
class DPORun:
    beta: float
    train_loss: np.ndarray  # [dpo_steps] nats, the minibatch each step trained on
    eval_steps: np.ndarray  # [n_eval]
    loss: np.ndarray  # [n_eval] nats, held-out pairs
    margin: np.ndarray  # [n_eval] mean implicit reward margin, held-out pairs
    win_rate: np.ndarray  # [n_eval] share of held-out pairs with log pi(y_w) > log pi(y_l)
    logp_chosen: np.ndarray  # [n_eval] mean log pi(y_w | x), held-out pairs
    logp_rejected: np.ndarray  # [n_eval]
    track: PolicyTrack
    recap_exact: float  # share of held-out recaps reproduced exactly after DPO


@dataclass(frozen=True)
class NextTokens:
    """Every stage's next-token distribution at one place of the shown story."""

    prompt: str  # the story up to that place, as text
    target: str  # what the demonstrations or the hidden reward want there
    probs: np.ndarray  # [n_stage, n_vocab]


@dataclass(frozen=True)
class AlignmentResults:
    n_layer: int
    n_head: int
    vocab: tuple[str, ...]  # [n_vocab]
    feelings: tuple[str, ...]  # [n_feeling]
    rewards: tuple[float, ...]  # [n_feeling] the hidden reward of each
    preferred: str  # the feeling the hidden reward ranks first
    stages: tuple[str, ...]  # [n_stage]
    betas: tuple[float, ...]
    kl_coefs: tuple[float, ...]
    n_demos: int
    n_heldout: int
    demo_example: str  # one demonstration: the story, END, the recap
    pair_example: tuple[str, str, str]  # the first pair: prompt's end, chosen, rejected
    label_noise: float  # share of training pairs whose chosen ending has the lower hidden reward
    label_scale: float
    pretrained_recap_loss: float  # bits per recap token before SFT
    pretrained_exact: float
    sft_runs: tuple[SFTRun, ...]  # [n_learning_rate]
    sft_chosen: int  # index of the run carried forward
    reward_model: RewardModelRun
    rl: tuple[RLRun, ...]  # [n_kl_coef]
    dpo: tuple[DPORun, ...]  # [n_beta]
    sft_track: PolicyTrack  # the SFT model itself (one evaluation)
    next_tokens: tuple[NextTokens, ...]  # at the recap's first token, at the feeling
    batch_size: int  # sequences a step (DPO: half as many pairs)
    facts: AlignmentFacts

    @property
    def sft(self) -> SFTRun:
        return self.sft_runs[self.sft_chosen]


def simulate(config: WithFamily, memo: Memo = uncached) -> AlignmentResults:
    """Load the pretrained model (through memo), fine-tune it per learning rate, then align the
    chosen SFT model three ways: a reward model, RLHF per KL coefficient, DPO per beta; the runs
    side by side, one worker process per core."""
    return simulate_in_workers(config, memo, parallel.default_workers())


def simulate_in_workers(config: WithFamily, memo: Memo, workers: int) -> AlignmentResults:
    """simulate with its runs in `workers` processes (1: one after another, in this one)."""
    grid, family = config.grid, config.family
    base_cfg = member_config(family, grid.n_layer, grid.n_head)
    base = load_member(family, grid.n_layer, grid.n_head, memo)
    n_ctx, n_head, vocab = family.n_ctx, grid.n_head, base.vocab
    feelings = World().feelings
    rewards = np.array(grid.rewards)
    train = fitting_stories(corpus(World(), grid.train_stories, [grid.seed, 10]), n_ctx)
    heldout = fitting_stories(corpus(World(), grid.heldout_stories, [grid.seed, 11]), n_ctx)
    demos = demonstrations(train, vocab, n_ctx, whole=True)
    # Held-out sets are evaluated whole, so cut the padding after their last response token once.
    heldout_demos = demonstrations(heldout, vocab, n_ctx, whole=False).take(slice(None))
    story_data = heldout_text(base_cfg.data)

    with parallel.pool(workers) as pool:
        sft_jobs = [pool.submit(supervised_fine_tune, base.params, n_head, demos, heldout_demos, story_data, grid,
                                rate) for rate in grid.sft_learning_rates]
        # What needs no SFT model is made here while the workers train.
        pair_rng = np.random.default_rng([grid.seed, 12])
        pairs, pair_feelings = labelled_pairs(train, vocab, n_ctx, rewards, grid.label_scale, pair_rng)
        heldout_pairs, heldout_feelings = labelled_pairs(heldout, vocab, n_ctx, rewards, grid.label_scale, pair_rng)
        heldout_pairs = heldout_pairs.take(slice(None))
        pretrained = recap_measures(base.params, n_head, heldout_demos)

        chosen = chosen_sft_once_decided(grid.sft_learning_rates, sft_jobs)
        sft_params = sft_jobs[chosen].result()[0]
        judge = Judge.make(sft_params, n_head, heldout_pairs, vocab, rewards)
        rm_job = pool.submit(train_reward_model, sft_params, n_head, pairs, heldout_pairs, heldout_feelings, rewards,
                             judge, grid)
        reference_job = pool.submit(Reference.make, sft_params, n_head, pairs, heldout_pairs)
        rm_params, rm = rm_job.result()
        reference = reference_job.result()
        # DPO's runs first: they take longest, so the workers run out of work together.
        dpo_jobs = [pool.submit(preference_tune, reference, n_head, pairs, heldout_pairs, heldout_demos, beta, judge,
                                grid, rm_params) for beta in grid.betas]
        rl_jobs = [pool.submit(rlhf, reference, rm_params, n_head, pairs, coef, judge, grid) for coef in grid.kl_coefs]
        sft_track = judge.track([0], [judge.measure(sft_params, n_head, rm_params,
                                                    np.random.default_rng([grid.seed, 18]))])
        sft = [job.result() for job in sft_jobs]
        rl_params, rl_runs = zip(*(job.result() for job in rl_jobs))
        dpo_params, dpo_runs = zip(*(job.result() for job in dpo_jobs))

    models = [base.params, sft_params, *rl_params, *dpo_params]
    shown = heldout[grid.shown_story]
    before_feeling = shown[:shown.index(vocab.index("were")) + 1]
    best = feelings[int(np.argmax(rewards))]
    return with_facts(
        batch_size=grid.batch_size,
        n_layer=grid.n_layer, n_head=n_head, vocab=vocab, feelings=feelings,
        rewards=tuple(float(r) for r in rewards), preferred=best,
        stages=(*STAGES, *(f"RLHF, c = {c:g}" for c in grid.kl_coefs), *(f"DPO, β = {b:g}" for b in grid.betas)),
        betas=grid.betas, kl_coefs=grid.kl_coefs,
        n_demos=len(train), n_heldout=len(heldout),
        demo_example=detokenize([vocab[i] for i in demonstration(train[0], vocab)[1:]]),
        pair_example=pair_text(pairs, vocab),
        label_noise=float((rewards[pair_feelings[0]] < rewards[pair_feelings[1]]).mean()),
        label_scale=grid.label_scale,
        pretrained_recap_loss=pretrained[0], pretrained_exact=pretrained[1],
        sft_runs=tuple(run for _, run in sft), sft_chosen=chosen,
        reward_model=rm, rl=rl_runs, dpo=dpo_runs, sft_track=sft_track,
        next_tokens=(
            NextTokens(detokenize([vocab[i] for i in shown[1:]]), vocab[recap(shown, vocab)[0]],
                       np.stack([next_token_probs(p, n_head, shown) for p in models])),
            NextTokens(detokenize([vocab[i] for i in before_feeling[1:]]), best,
                       np.stack([next_token_probs(p, n_head, before_feeling) for p in models])),
        ),
    )


def chosen_sft(runs) -> int:
    """The smallest learning rate whose final exact share reaches SFT_TARGET, else the best."""
    reaching = [i for i, r in enumerate(runs) if r.exact[-1] >= SFT_TARGET]
    if reaching:
        return min(reaching, key=lambda i: runs[i].learning_rate)
    return max(range(len(runs)), key=lambda i: (runs[i].exact[-1], -runs[i].learning_rate))


def decided_sft(rates, finished: dict) -> int | None:
    """chosen_sft's pick if the finished runs ({index: SFTRun}) already decide it whatever the
    others reach: a run reaching SFT_TARGET with none unfinished at a smaller rate; else None.

    Example: decided_sft((0.1, 0.3, 1.0), {1: a run reaching the target}) -> None (run 0 may
    reach it too); with run 0 finished short of it as well -> 1.
    """
    if len(finished) == len(rates):
        return chosen_sft([finished[i] for i in range(len(rates))])
    reaching = [i for i, run in finished.items() if run.exact[-1] >= SFT_TARGET]
    if not reaching:
        return None
    first = min(reaching, key=lambda i: (rates[i], i))  # of equal rates, chosen_sft picks the first
    unfinished = [i for i in range(len(rates)) if i not in finished]
    return first if all((rates[i], i) > (rates[first], first) for i in unfinished) else None


def chosen_sft_once_decided(rates, jobs) -> int:
    """decided_sft's pick among the SFT runs' futures, waiting only until the finished ones
    decide it (the reward model can start while a larger rate still trains)."""
    while True:
        chosen = decided_sft(rates, {i: job.result()[1] for i, job in enumerate(jobs) if job.done()})
        if chosen is not None:
            return chosen
        wait([job for job in jobs if not job.done()], return_when=FIRST_COMPLETED)


def heldout_text(cfg: DataConfig) -> Data:
    """The pretraining chapter's held-out windows, without its training stories (drawn from a
    seed of their own, so leaving them out changes no held-out window)."""
    return make_data(dataclasses.replace(cfg, train_stories=0))


# ---------------------------------------------------------------------------------------------
# Data: demonstrations and preference pairs


def fitting_stories(c: Corpus, n_ctx) -> list[list[int]]:
    """Each story as ids [END, ..., END], kept if the story, its recap and END fit n_ctx + 1
    tokens (songs are left out: they have nobody to recap)."""
    bounds = list(c.starts) + [len(c.ids) - 1]
    pieces = [list(c.ids[a:b + 1]) for a, b in zip(bounds[:-1], bounds[1:])]
    song = c.vocab.index("song")
    return [s for s in pieces if s[1] != song and len(s) + RECAP_LENGTH + 1 <= n_ctx + 1]


def recap(story: list[int], vocab) -> list[int]:
    """Who had what, from the story's only "had": "Tom had a red ball ." -> "Tom had the ball ."."""
    had = story.index(vocab.index("had"))
    return [story[had - 1], story[had], vocab.index("the"), story[had + 3], vocab.index(".")]


def demonstration(story: list[int], vocab) -> list[int]:
    """The story (ending with END), its recap, END."""
    return story + recap(story, vocab) + [vocab.index(END)]


def demonstrations(stories: list[list[int]], vocab, n_ctx, *, whole: bool) -> Sequences:
    """Prompt: a whole story and END; response: its recap and END. whole=True: every token
    after the first END counts as response (the story is learnt too, as in pretraining)."""
    prompts = [1 if whole else len(s) for s in stories]
    return pad([demonstration(s, vocab) for s in stories], prompts, n_ctx, vocab.index(END))


def labelled_pairs(stories, vocab, n_ctx, rewards, scale, rng):  # -> Sequences, [2, n_pair] int
    """Rows 2i and 2i + 1: the story up to "were", then two different feelings (drawn uniformly),
    each followed by "." and END; the labeller puts first (chosen) ending a over b with
    probability sigmoid(scale (r(a) - r(b))). The mask marks the feeling alone: "." and END
    follow it whatever it is. Also the chosen and rejected feelings' indices."""
    index = {w: i for i, w in enumerate(vocab)}
    feelings = World().feelings
    sequences, lengths, chosen, rejected = [], [], [], []
    for s in stories:
        cut = s.index(index["were"]) + 1
        a, b = rng.choice(len(feelings), 2, replace=False)
        if rng.random() >= 1 / (1 + np.exp(-scale * (rewards[a] - rewards[b]))):
            a, b = b, a
        for f in (a, b):
            sequences.append(s[:cut] + [index[feelings[f]], index["."], index[END]])
            lengths.append(cut)
        chosen.append(a)
        rejected.append(b)
    padded = pad(sequences, lengths, n_ctx, index[END])
    only_feeling = np.zeros_like(padded.mask)  # the response is its one free choice, the feeling
    only_feeling[np.arange(len(lengths)), np.array(lengths) - 1] = 1
    return Sequences(padded.x, padded.y, only_feeling), np.array([chosen, rejected])


def pair_text(pairs: Sequences, vocab) -> tuple[str, str, str]:
    """The first pair: the prompt's last words, the chosen and the rejected response, as text."""
    def words(row, picked):
        return detokenize([vocab[i] for i in pairs.y[row][picked]])
    response = pairs.mask[0] > 0
    prompt_end = np.flatnonzero(response)[0]
    tail = np.zeros_like(response)
    tail[max(0, prompt_end - 8):prompt_end] = True
    return words(0, tail), words(0, response), words(1, response)


# ---------------------------------------------------------------------------------------------
# Log-probabilities of responses, the losses, and their gradients


def dpo_loss(logp_w, logp_l, ref_w, ref_l, beta):  # [n_pair] x4, float -> loss, d_logp_w, d_logp_l, margin
    """Mean -log sigmoid(beta (log-ratio of chosen - log-ratio of rejected)), its gradients with
    respect to the policy's log-probabilities, and each pair's implicit reward margin.

    Example: dpo_loss(log .5, log .25, log .25, log .5, 1) -> -log(4/5) = 0.2231 (margin log 4)
    """
    margin = beta * ((logp_w - ref_w) - (logp_l - ref_l))  # [n_pair]
    loss = float(np.logaddexp(0.0, -margin).mean())
    weight = beta / (1 + np.exp(margin)) / len(margin)  # beta sigmoid(-margin) / n_pair
    return loss, -weight, weight, margin


def dpo_gradient(params, n_head, pairs: Sequences, ref_logp, beta, nll_weight=0.0):  # -> loss, margin, grads
    """DPO's loss on pairs (rows 2i chosen, 2i + 1 rejected), plus nll_weight times the chosen
    responses' mean negative log-likelihood (as Llama 3's DPO adds), and every parameter's
    gradient."""
    trace = gpt(pairs.x, params, n_head)
    logp = sequence_log_probs(trace.logits, pairs)  # [2 n_pair]
    loss, d_w, d_l, margin = dpo_loss(logp[0::2], logp[1::2], ref_logp[0::2], ref_logp[1::2], beta)
    loss -= nll_weight * float(logp[0::2].mean())
    d_w = d_w - nll_weight / len(d_w)
    d_logp = np.stack([d_w, d_l], axis=1).reshape(-1)  # [2 n_pair], interleaved like the rows
    return loss, margin, gpt_backward(sequence_log_probs_backward(d_logp, trace.logits, pairs), trace, params)


def bradley_terry(score_w, score_l):  # [n_pair] x2 -> loss, d_score_w, d_score_l
    """Mean -log sigmoid(score_w - score_l) and its gradients.

    Example: bradley_terry([log 3], [0]) -> -log(3/4) = 0.2877, d_w = -1/4, d_l = +1/4
    """
    d = np.asarray(score_w, float) - np.asarray(score_l, float)
    loss = float(np.logaddexp(0.0, -d).mean())
    weight = 1 / (1 + np.exp(d)) / len(d)  # sigmoid(-d) / n_pair
    return loss, -weight, weight


def reward_scores(params, n_head, x, at):  # -> scores [n], logits at `at` [n, n_vocab], trace
    """The reward model's score of each sequence: its head v dotted with the logits at position
    at[b] (the response's feeling, just read)."""
    trace = gpt(x, params["gpt"], n_head)
    z = trace.logits[np.arange(len(x)), at].astype(np.float64)  # [n, n_vocab]
    return z @ params["head"].astype(np.float64), z, trace


def reward_model_gradient(params, n_head, pairs: Sequences, at):  # -> loss, grads
    """Bradley-Terry loss of the pairs (rows 2i chosen) and its gradient for the GPT and the head."""
    scores, z, trace = reward_scores(params, n_head, pairs.x, at)
    loss, d_w, d_l = bradley_terry(scores[0::2], scores[1::2])
    d_score = np.stack([d_w, d_l], axis=1).reshape(-1)  # [2 n_pair]
    dlogits = np.zeros_like(trace.logits)
    dlogits[np.arange(len(at)), at] = (d_score[:, None] * params["head"]).astype(dlogits.dtype)
    grads = {"gpt": gpt_backward(dlogits, trace, params["gpt"]),
             "head": (d_score @ z).astype(params["head"].dtype)}
    return loss, grads


def policy_gradient_surrogate(logits_at, samples, advantages):  # [n, n_vocab], [n] int, [n] -> loss, dlogits
    """REINFORCE's surrogate -mean(A log pi(y)) with the advantages held constant, and its
    gradient with respect to the logits at the sampled position."""
    z = logits_at.astype(np.float64)
    log_p = z - z.max(axis=-1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=-1, keepdims=True))
    n = len(samples)
    loss = float(-(advantages * log_p[np.arange(n), samples]).mean())
    onehot = np.zeros_like(z)
    onehot[np.arange(n), samples] = 1
    return loss, -(advantages / n)[:, None] * (onehot - np.exp(log_p))


# ---------------------------------------------------------------------------------------------
# Judging a policy: the hidden reward, the reward model, the drift from the reference


@dataclass(frozen=True)
class Judge:
    """What every policy is measured on: the held-out prompts (the chosen rows of the held-out
    pairs, at the position that reads "were"), the reference's next-token distribution there,
    and the hidden reward of each feeling."""

    x: np.ndarray  # [n_prompt, n_seq] int
    at: np.ndarray  # [n_prompt] int  the position whose next token is the feeling
    feeling_ids: np.ndarray  # [n_feeling] int
    rewards: np.ndarray  # [n_feeling]
    ref_log_p: np.ndarray  # [n_prompt, n_vocab]

    @staticmethod
    def make(ref_params, n_head, heldout_pairs: Sequences, vocab, rewards) -> Judge:
        x = heldout_pairs.x[0::2]
        at = heldout_pairs.mask[0::2].argmax(axis=1)
        logits = gpt(x, ref_params, n_head).logits[np.arange(len(x)), at]
        return Judge(x, at, np.array([vocab.index(f) for f in World().feelings]), np.asarray(rewards, float),
                     log_softmax(logits.astype(np.float64)))

    def measure(self, params, n_head, rm_params=None, rng=None,
                logits=None) -> tuple[float, float, float, float, float]:
        """(true reward, reward-model score, KL, P(best feeling), P(any feeling)) of a policy. An
        ending that is not a feeling earns the worst feeling's reward. The reward-model score is
        that of one ending sampled per prompt (with rng), as RLHF itself sees it. `logits`: the
        policy's logits of self.x, [n_prompt, n_seq, n_vocab], if a caller has them already."""
        if logits is None:
            logits = gpt(self.x, params, n_head).logits
        elif logits.shape[:2] != self.x.shape:
            raise ValueError(f"logits for {logits.shape[:2]} tokens, not the judge's {self.x.shape}")
        z = logits[np.arange(len(self.x)), self.at]
        log_p = log_softmax(z.astype(np.float64))
        p = np.exp(log_p)
        on = p[:, self.feeling_ids]  # [n_prompt, n_feeling]
        share = on.sum(axis=1)
        true = on @ self.rewards + (1 - share) * self.rewards.min()
        kl = float((p * (log_p - self.ref_log_p)).sum(axis=1).mean())
        rm = float("nan")
        if rm_params is not None:
            samples = sample_rows(p, rng)
            scored = self.x.copy()
            scored[np.arange(len(self.x)), self.at + 1] = samples
            rm = float(reward_scores(rm_params, n_head, scored, self.at + 1)[0].mean())
        return (float(true.mean()), rm, kl, float(on[:, int(np.argmax(self.rewards))].mean()), float(share.mean()))

    def track(self, steps, measured) -> PolicyTrack:
        m = np.array(measured, dtype=float).reshape(len(steps), 5)
        return PolicyTrack(np.array(steps), m[:, 0], m[:, 1], m[:, 2], m[:, 3], m[:, 4])


@dataclass(frozen=True)
class Reference:
    """The frozen SFT model and what RLHF and DPO compare their policies with, computed once for
    every run: its log-probabilities of the pairs' responses and of the token after each
    training prompt."""

    params: dict
    pairs_logp: np.ndarray  # [2 n_pair] log pi_ref(response | prompt) of each training pair's row
    heldout_logp: np.ndarray  # [2 n_heldout_pair] the same of the held-out pairs
    prompt_log_p: np.ndarray  # [n_pair, n_vocab] log pi_ref of the token after each training prompt

    @staticmethod
    def make(params, n_head, pairs: Sequences, heldout_pairs: Sequences) -> Reference:
        x, at = pairs.x[0::2], pairs.mask[0::2].argmax(axis=1)
        z = gpt(x, params, n_head).logits[np.arange(len(x)), at]  # [n_pair, n_vocab]
        return Reference(params, sequence_log_probs(gpt(pairs.x, params, n_head).logits, pairs),
                         sequence_log_probs(gpt(heldout_pairs.x, params, n_head).logits, heldout_pairs),
                         log_softmax(z.astype(np.float64)))


def sample_rows(p, rng):  # [n, n_vocab] probabilities -> [n] int
    """One token per row, drawn with one uniform number each."""
    cumulative = p.cumsum(axis=1)
    return np.minimum((cumulative < rng.random((len(p), 1)) * cumulative[:, -1:]).sum(axis=1), p.shape[1] - 1)


def rm_scores_of_feelings(rm_params, n_head, judge: Judge):  # -> [n_prompt, n_feeling]
    """The reward model's score of every feeling after every held-out prompt."""
    table = np.zeros((len(judge.x), len(judge.feeling_ids)))
    for j, f in enumerate(judge.feeling_ids):
        x = judge.x.copy()
        x[np.arange(len(x)), judge.at + 1] = f
        table[:, j] = reward_scores(rm_params, n_head, x, judge.at + 1)[0]
    return table


# ---------------------------------------------------------------------------------------------
# Training stages


def supervised_fine_tune(params, n_head, demos, heldout_demos, story_data: Data, grid: AlignmentGrid,
                         rate: float):  # -> params, SFTRun
    """SFT on the demonstrations at one learning rate; recap loss, exact recaps and the loss on
    the pretraining chapter's held-out text measured as it goes."""
    recap_losses, exact, story = [], [], []

    def evaluate(p):
        loss, share = recap_measures(p, n_head, heldout_demos)
        recap_losses.append(loss)
        exact.append(share)
        story.append(heldout_loss(p, story_data, n_head))

    def step(p, batches):
        return sft_gradient(p, n_head, demos.take(batches.choice(len(demos.x), grid.batch_size)))

    schedule = Schedule(rate, grid.warmup_steps, grid.sft_steps)
    params, losses, eval_steps = optimise(params, grid, schedule, step, evaluate, stream=13)
    means = np.array([losses[a:b].mean() for a, b in zip(eval_steps[:-1], eval_steps[1:])])
    return params, SFTRun(rate, losses * BITS, eval_steps, means * BITS, np.array(recap_losses), np.array(exact),
                          np.array(story))


def train_reward_model(sft_params, n_head, pairs, heldout_pairs, heldout_feelings, rewards, judge, grid):
    """The SFT model with a scalar head (zeros at first), trained on the pairs' labels."""
    at, heldout_at = pairs.mask.argmax(axis=1) + 1, heldout_pairs.mask.argmax(axis=1) + 1
    truly_better = rewards[heldout_feelings[0]] > rewards[heldout_feelings[1]]  # [n_heldout]
    losses, accuracy, agreement = [], [], []

    def evaluate(p):
        scores = reward_scores(p, n_head, heldout_pairs.x, heldout_at)[0]
        losses.append(bradley_terry(scores[0::2], scores[1::2])[0])
        prefers_chosen = scores[0::2] > scores[1::2]
        accuracy.append(float(prefers_chosen.mean()))
        agreement.append(float((prefers_chosen == truly_better).mean()))

    def step(p, batches):
        chosen = batches.choice(len(pairs.x) // 2, grid.batch_size // 2)
        rows = np.stack([2 * chosen, 2 * chosen + 1], axis=1).reshape(-1)
        return reward_model_gradient(p, n_head, pairs.take(rows), at[rows])

    start = {"gpt": sft_params, "head": np.zeros(sft_params["wte"].shape[0], sft_params["wte"].dtype)}
    schedule = Schedule(grid.rm_learning_rate, grid.warmup_steps, grid.rm_steps)
    params, train_losses, eval_steps = optimise(start, grid, schedule, step, evaluate, stream=15)
    table = rm_scores_of_feelings(params, n_head, judge)
    return params, RewardModelRun(train_losses, eval_steps, np.array(losses), np.array(accuracy),
                                  np.array(agreement), table.mean(axis=0))


def rlhf(ref: Reference, rm_params, n_head, pairs, kl_coef, judge: Judge, grid):  # -> params, RLRun
    """REINFORCE from the SFT model against the reward model, with a KL penalty to the SFT model:
    per prompt one feeling sampled from the policy, reward = score - kl_coef log(pi/pi_ref),
    advantage = reward - the batch's mean reward."""
    x_all, at_all = pairs.x[0::2], pairs.mask[0::2].argmax(axis=1)
    measured = []
    sampler = np.random.default_rng([grid.seed, 16])

    def step(p, batches):
        rows = batches.choice(len(x_all), grid.batch_size)
        x, at = x_all[rows], at_all[rows]
        trace = gpt(x, p, n_head)
        z = trace.logits[np.arange(len(x)), at].astype(np.float64)
        log_p = log_softmax(z)
        samples = sample_rows(np.exp(log_p), sampler)
        scored = x.copy()
        scored[np.arange(len(x)), at + 1] = samples
        score = reward_scores(rm_params, n_head, scored, at + 1)[0]
        penalised = score - kl_coef * (log_p[np.arange(len(x)), samples] - ref.prompt_log_p[rows, samples])
        loss, d_at = policy_gradient_surrogate(z, samples, penalised - penalised.mean())
        dlogits = np.zeros_like(trace.logits)
        dlogits[np.arange(len(x)), at] = d_at.astype(dlogits.dtype)
        return float(penalised.mean()), gpt_backward(dlogits, trace, p)

    schedule = Schedule(grid.rl_learning_rate, grid.warmup_steps, grid.rl_steps)
    looks = np.random.default_rng([grid.seed, 18])
    params, rewards, eval_steps = optimise(ref.params, grid, schedule, step,
                                           lambda p: measured.append(judge.measure(p, n_head, rm_params, looks)),
                                           stream=17)
    return params, RLRun(kl_coef, rewards, judge.track(eval_steps, measured))


def preference_tune(ref: Reference, n_head, pairs, heldout_pairs, heldout_demos, beta, judge: Judge, grid,
                    rm_params=None):  # -> params, DPORun
    """DPO from the SFT model, which stays frozen as the reference."""
    ref_logp, ref_heldout = ref.pairs_logp, ref.heldout_logp
    losses, margins, wins, chosen_lp, rejected_lp, measured = [], [], [], [], [], []

    def evaluate(p):
        logits = gpt(heldout_pairs.x, p, n_head).logits  # [2 n_heldout_pair, n_seq, n_vocab]
        logp = sequence_log_probs(logits, heldout_pairs)
        loss, _, _, margin = dpo_loss(logp[0::2], logp[1::2], ref_heldout[0::2], ref_heldout[1::2], beta)
        losses.append(loss)
        margins.append(float(margin.mean()))
        wins.append(float((logp[0::2] > logp[1::2]).mean()))
        chosen_lp.append(float(logp[0::2].mean()))
        rejected_lp.append(float(logp[1::2].mean()))
        # The judge's prompts are the chosen rows of these same pairs (Judge.make): their logits
        # are in this forward pass already, row for row as a pass over those rows alone gives them.
        measured.append(judge.measure(p, n_head, rm_params, looks, logits=logits[0::2]))

    looks = np.random.default_rng([grid.seed, 18])

    def step(p, batches):
        chosen = batches.choice(len(pairs.x) // 2, grid.batch_size // 2)  # [n_pair] indices
        rows = np.stack([2 * chosen, 2 * chosen + 1], axis=1).reshape(-1)
        loss, _, grads = dpo_gradient(p, n_head, pairs.take(rows), ref_logp[rows], beta, grid.dpo_nll_weight * beta)
        return loss, grads

    schedule = Schedule(grid.dpo_learning_rate, grid.warmup_steps, grid.dpo_steps)
    params, train_losses, eval_steps = optimise(ref.params, grid, schedule, step, evaluate, stream=14)
    return params, DPORun(beta, train_losses, eval_steps, np.array(losses), np.array(margins), np.array(wins),
                          np.array(chosen_lp), np.array(rejected_lp), judge.track(eval_steps, measured),
                          exact_share(params, n_head, heldout_demos))


# ---------------------------------------------------------------------------------------------
# Measures


def recap_measures(params, n_head, demos: Sequences) -> tuple[float, float]:
    """The recap loss (bits per response token) and finetune.exact_share (the share of responses
    whose every token is the top guess), from one forward pass."""
    logits = gpt(demos.x, params, n_head).logits
    right = (logits.argmax(axis=-1) == demos.y) | (demos.mask == 0)  # [n_batch, n_seq]
    return (float(-sequence_log_probs(logits, demos).sum() / demos.mask.sum() * BITS),
            float(right.all(axis=-1).mean()))


def next_token_probs(params, n_head, ids) -> np.ndarray:  # [n_seq] int -> [n_vocab]
    return softmax(gpt(np.array([ids]), params, n_head).logits[0, -1].astype(np.float64))


# ---------------------------------------------------------------------------------------------
# What the prose quotes


@dataclass(frozen=True)
class AlignmentFacts:
    n_layer: int
    n_head: int
    preferred: str  # the feeling the hidden reward ranks first
    worst: str
    feelings: list[str]
    rewards: list[float]
    reward_list: str  # "happy 1, sad -1, ...": each feeling and its hidden reward
    label_scale: float
    label_noise: float  # share of training pairs whose chosen ending is the worse one
    p_best_over_worst: float  # the labeller's probability of preferring the best over the worst
    n_demos: int
    n_heldout: int
    demo_example: str  # as the page writes it: END as ↵
    pair_prompt: str
    pair_chosen: str
    pair_rejected: str
    sft_steps: int
    sft_rates: list[float]
    sft_rate: float  # the run carried forward
    sft_reached: bool  # it reproduces at least sft_target of the held-out recaps
    sft_target: float
    recap_loss_before: float
    recap_loss_after: float
    exact_before: float
    exact_after: float
    story_loss_before: float
    story_loss_after: float
    exact_lowest_rate: float  # final exact share at the smallest and the largest learning rate
    exact_highest_rate: float
    story_lowest_rate: float  # final loss on ordinary text at each
    story_highest_rate: float
    sft_forgetting_grows: bool  # the larger the rate, the higher the final loss on ordinary text
    rm_steps: int
    rm_accuracy: float  # on held-out pairs' labels
    rm_agreement: float  # with the hidden reward's order
    rm_orders_like_truth: bool  # its mean feeling scores rank the feelings as the hidden reward does
    rm_best: str  # the feeling it scores highest
    kl_coefs: list[float]
    rl_steps: int
    rl_true_first: float  # final true reward at the smallest and the largest KL coefficient
    rl_true_last: float
    rl_kl_first: float
    rl_kl_last: float
    rl_rm_first: float
    rl_kl_ordered: bool  # final KL falls as the coefficient grows
    overoptimised: bool  # some RLHF run's RM score rose while its true reward fell from its peak
    overopt_coef: float
    overopt_drop: float
    hacked_share: float  # probability on any feeling at the end of the smallest-c RLHF run
    largest_c_share: float  # ... and of the largest-c run
    smallest_penalty_worst: bool  # the RLHF run with the smallest c drifts furthest and ends lowest of every run
    betas: list[float]
    dpo_steps: int
    beta_first: float
    beta_last: float
    dpo_kl_first: float
    dpo_kl_last: float
    dpo_kl_ratio: float
    dpo_kl_ordered: bool  # final KL falls as beta grows
    dpo_true_first: float
    dpo_true_last: float
    win_before: float
    win_after: float
    chosen_falls: bool  # at the smallest beta, the chosen responses' log-probability ended lower
    rejected_falls: bool
    chosen_lp_before: float
    chosen_lp_after: float
    rejected_lp_before: float
    rejected_lp_after: float
    sft_true: float  # the SFT model's true reward and the best true reward any policy reached
    best_true: float
    best_policy: str
    sequences_trained: int
    recap_exact_after_dpo: float
    p_pretrained_shown: float
    p_sft_shown: float
    p_dpo0_shown: float
    recap_target: str
    p_recap_target_pretrained: float
    p_recap_target_sft: float
    feelings_pretrained_spread: float


def feelings_spread(probs, vocab) -> float:  # [n_vocab], [n_vocab] -> float
    """How far a distribution is from even odds over the grammar's feelings, at its furthest."""
    feelings = World().feelings
    p = np.array([probs[vocab.index(f)] for f in feelings])
    p = p / p.sum()
    return float(np.abs(p * len(feelings) - 1).max())


def shown_text(text: str) -> str:
    """Text with each end-of-story token shown as the page's ↵."""
    return text.replace("\n", " \u21b5 ").strip()


def overoptimisation(runs) -> tuple[bool, float, float]:
    """Whether a run's reward-model score kept rising after its true reward peaked (and fell by
    more than 0.01), the KL coefficient of the worst such run, and its fall."""
    worst = (False, 0.0, 0.0)
    for r in runs:
        t = r.track
        peak = int(np.argmax(t.true_reward))
        fall = float(t.true_reward[peak] - t.true_reward[-1])
        if fall > 0.01 and t.rm_score[-1] > t.rm_score[peak] and fall > worst[2]:
            worst = (True, r.kl_coef, fall)
    return worst


def with_facts(**fields) -> AlignmentResults:
    """AlignmentResults with the facts its prose quotes."""
    r = AlignmentResults(**fields, facts=None)
    s, first, last = r.sft, r.dpo[0], r.dpo[-1]
    by_rate = sorted(r.sft_runs, key=lambda x: x.learning_rate)
    feeling, recap_at = r.next_tokens[1], r.next_tokens[0]
    preferred, target = r.vocab.index(r.preferred), r.vocab.index(recap_at.target)
    rewards = np.array(r.rewards)
    scale = r.label_scale
    rm = r.reward_model
    finals = [(f"RLHF, c = {x.kl_coef:g}", x.track.true_reward[-1]) for x in r.rl] + [
        (f"DPO, β = {x.beta:g}", x.track.true_reward[-1]) for x in r.dpo]
    best_policy, best_true = max(finals, key=lambda kv: kv[1])
    over = overoptimisation(r.rl)
    rl_kl = [x.track.kl[-1] for x in r.rl]
    dpo_kl = [x.track.kl[-1] for x in r.dpo]
    facts = AlignmentFacts(
        n_layer=r.n_layer, n_head=r.n_head, preferred=r.preferred,
        worst=r.feelings[int(np.argmin(rewards))], feelings=list(r.feelings), rewards=list(r.rewards),
        reward_list=", ".join(f"{f} {v:g}" for f, v in zip(r.feelings, r.rewards)),
        label_scale=scale, label_noise=r.label_noise,
        p_best_over_worst=float(1 / (1 + np.exp(-scale * (rewards.max() - rewards.min())))),
        n_demos=r.n_demos, n_heldout=r.n_heldout, demo_example=shown_text(r.demo_example),
        pair_prompt=r.pair_example[0], pair_chosen=shown_text(r.pair_example[1]),
        pair_rejected=shown_text(r.pair_example[2]), sft_steps=int(len(s.train_loss)),
        sft_rates=[x.learning_rate for x in by_rate], sft_rate=s.learning_rate,
        sft_reached=bool(s.exact[-1] >= SFT_TARGET), sft_target=SFT_TARGET,
        recap_loss_before=r.pretrained_recap_loss, recap_loss_after=float(s.recap_loss[-1]),
        exact_before=r.pretrained_exact, exact_after=float(s.exact[-1]),
        story_loss_before=float(s.story_loss[0]), story_loss_after=float(s.story_loss[-1]),
        exact_lowest_rate=float(by_rate[0].exact[-1]), exact_highest_rate=float(by_rate[-1].exact[-1]),
        story_lowest_rate=float(by_rate[0].story_loss[-1]), story_highest_rate=float(by_rate[-1].story_loss[-1]),
        sft_forgetting_grows=bool(np.all(np.diff([x.story_loss[-1] for x in by_rate]) > 0)),
        rm_steps=int(len(rm.train_loss)), rm_accuracy=float(rm.accuracy[-1]), rm_agreement=float(rm.agreement[-1]),
        rm_orders_like_truth=bool((np.argsort(rm.feeling_scores) == np.argsort(rewards)).all()),
        rm_best=r.feelings[int(np.argmax(rm.feeling_scores))],
        kl_coefs=[float(c) for c in r.kl_coefs], rl_steps=int(len(r.rl[0].train_reward)),
        rl_true_first=float(r.rl[0].track.true_reward[-1]), rl_true_last=float(r.rl[-1].track.true_reward[-1]),
        rl_kl_first=float(rl_kl[0]), rl_kl_last=float(rl_kl[-1]), rl_rm_first=float(r.rl[0].track.rm_score[-1]),
        rl_kl_ordered=bool(np.all(np.diff(rl_kl) < 0)),
        overoptimised=over[0], overopt_coef=over[1], overopt_drop=over[2],
        hacked_share=float(r.rl[0].track.feeling_share[-1]), largest_c_share=float(r.rl[-1].track.feeling_share[-1]),
        smallest_penalty_worst=bool(
            r.rl[0].track.kl[-1] >= max(x.track.kl[-1] for x in (*r.rl, *r.dpo))
            and r.rl[0].track.true_reward[-1] <= min(x.track.true_reward[-1] for x in (*r.rl, *r.dpo))),
        betas=[float(b) for b in r.betas], dpo_steps=int(len(first.train_loss)),
        beta_first=first.beta, beta_last=last.beta,
        dpo_kl_first=float(dpo_kl[0]), dpo_kl_last=float(dpo_kl[-1]),
        dpo_kl_ratio=float(dpo_kl[0] / max(dpo_kl[-1], 1e-12)),
        dpo_kl_ordered=bool(np.all(np.diff(dpo_kl) < 0)),
        dpo_true_first=float(first.track.true_reward[-1]), dpo_true_last=float(last.track.true_reward[-1]),
        win_before=float(first.win_rate[0]), win_after=float(first.win_rate[-1]),
        chosen_falls=bool(first.logp_chosen[-1] < first.logp_chosen[0]),
        rejected_falls=bool(first.logp_rejected[-1] < first.logp_rejected[0]),
        chosen_lp_before=float(first.logp_chosen[0]), chosen_lp_after=float(first.logp_chosen[-1]),
        rejected_lp_before=float(first.logp_rejected[0]), rejected_lp_after=float(first.logp_rejected[-1]),
        sft_true=float(r.sft_track.true_reward[0]), best_true=float(best_true), best_policy=best_policy,
        sequences_trained=r.batch_size * (sum(len(x.train_loss) for x in r.sft_runs) + len(rm.train_loss)
                                          + sum(len(x.train_reward) for x in r.rl)
                                          + sum(len(d.train_loss) for d in r.dpo)),
        recap_exact_after_dpo=first.recap_exact,
        p_pretrained_shown=float(feeling.probs[0, preferred]),
        p_sft_shown=float(feeling.probs[1, preferred]),
        p_dpo0_shown=float(feeling.probs[2 + len(r.rl), preferred]),
        recap_target=recap_at.target,
        p_recap_target_pretrained=float(recap_at.probs[0, target]),
        p_recap_target_sft=float(recap_at.probs[1, target]),
        feelings_pretrained_spread=feelings_spread(feeling.probs[0], r.vocab),
    )
    return dataclasses.replace(r, facts=facts)
