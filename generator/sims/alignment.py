"""Fine-tuning and preference tuning: a pretrained tiny GPT taught a format, then a preference.

Simulated: one model of the pretraining family (loaded through `memo`, never retrained) goes
through two more stages, each continuing from the weights before it with AdamW, warmup and
cosine decay and gradient clipping (generator.sims.train).

1. Supervised fine-tuning (SFT) on demonstrations of a format pretraining never showed: after a
   whole story and its END comes a recap of who had what, "Tom had the ball .", copied from the
   story's "Tom had a red ball .", then END. The loss is the cross-entropy of every token of the
   demonstration, story and recap (the story keeps the model telling stories); the recap is
   measured on its own. The exact target is known: the recap copies the story, so every recap
   token has probability 1.
2. Direct preference optimisation (DPO) with the SFT model as the frozen reference, once per
   beta. Each pair shares a prompt (a story up to "... were"); the chosen response ends the story
   with the preferred feeling, the rejected one with another, both followed by "." and END.
   The loss is -log sigmoid(beta [(log pi(y_w|x) - log pi_ref(y_w|x)) - (log pi(y_l|x) -
   log pi_ref(y_l|x))]), its gradient passed through the hand-written backward pass: with respect
   to a response's summed log-probability it is a scalar per sequence, and the log-probability's
   own gradient is minus the cross-entropy gradient of the response's tokens.

Measured on held-out stories every few steps: SFT's recap loss, the share of recaps the model
reproduces exactly (every token its top guess) and its loss on ordinary stories; DPO's loss, the
implicit reward margin, the win rate (held-out pairs where the model gives the chosen response
the higher probability), the probability of the preferred feeling after "were", and the drift
from the reference: the exact KL divergence of the next-token distributions, per response token
of the chosen responses. And each stage's next-token distributions at two places of one story.

Not simulated: human labelers, a learned reward model, sampling from the model during training
(RLHF's PPO), chat templates, LoRA or any parameter-efficient method; the preference is a rule.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from generator.sims.family import Memo, WithFamily, load_member, member_config, uncached
from generator.sims.gpt import cross_entropy, gpt, gpt_backward, leaves, softmax, token_log_probs, tree_map
from generator.sims.stories import END, Corpus, World, corpus, detokenize
from generator.sims.train import BITS, AdamW, Data, global_norm, heldout_loss, learning_rate_at, make_data

if TYPE_CHECKING:
    from generator.grids import AlignmentGrid

RECAP_LENGTH = 5  # "Tom had the ball .": who had what, copied from the story
STAGES = ("pretrained", "SFT")  # then one "DPO, β = b" per beta


@dataclass(frozen=True)
class Sequences:
    """Prompt-and-response token sequences, padded with END; mask marks the response's targets."""

    x: np.ndarray  # [n_batch, n_seq] int
    y: np.ndarray  # [n_batch, n_seq] int  x shifted by one
    mask: np.ndarray  # [n_batch, n_seq]  1 where y is a response token

    def take(self, rows):  # [n] int -> Sequences
        """The given rows, cut after the last response token any of them has: the causal mask
        makes later positions irrelevant to earlier ones, so the cut changes no number."""
        mask = self.mask[rows]
        n_seq = int(np.flatnonzero(mask.any(axis=0))[-1]) + 1
        return Sequences(self.x[rows, :n_seq], self.y[rows, :n_seq], mask[:, :n_seq])


@dataclass(frozen=True)
class Schedule:
    """What learning_rate_at reads: the peak, the warmup and the length of one stage."""

    learning_rate: float
    warmup_steps: int
    steps: int


@dataclass(frozen=True)
class SFTRun:
    train_loss: np.ndarray  # [sft_steps] bits per token of the demonstrations each step trained on
    eval_steps: np.ndarray  # [n_eval]
    recap_loss: np.ndarray  # [n_eval] bits per recap token, held-out
    exact: np.ndarray  # [n_eval] share of held-out recaps whose every token is the top guess
    story_loss: np.ndarray  # [n_eval] bits per token on the pretraining chapter's held-out stories


@dataclass(frozen=True)
class DPORun:
    beta: float
    train_loss: np.ndarray  # [dpo_steps] nats, the minibatch each step trained on
    eval_steps: np.ndarray  # [n_eval]
    loss: np.ndarray  # [n_eval] nats, held-out pairs
    margin: np.ndarray  # [n_eval] mean implicit reward margin, held-out pairs
    win_rate: np.ndarray  # [n_eval] share of held-out pairs with log pi(y_w) > log pi(y_l)
    kl: np.ndarray  # [n_eval] nats per response token, KL(pi || pi_ref) along the chosen responses
    p_preferred: np.ndarray  # [n_eval] mean P(preferred feeling | story up to "were")
    recap_exact: float  # share of held-out recaps reproduced exactly after DPO


@dataclass(frozen=True)
class NextTokens:
    """Every stage's next-token distribution at one place of the shown story."""

    prompt: str  # the story up to that place, as text
    target: str  # what the demonstrations or the preference want there
    probs: np.ndarray  # [n_stage, n_vocab]


@dataclass(frozen=True)
class AlignmentResults:
    n_layer: int
    n_head: int
    vocab: tuple[str, ...]  # [n_vocab]
    preferred: str
    stages: tuple[str, ...]  # [n_stage]
    betas: tuple[float, ...]
    n_demos: int
    n_heldout: int
    demo_example: str  # one demonstration: the story, END, the recap
    pair_example: tuple[str, str, str]  # (prompt ending, chosen, rejected) of one pair
    pretrained_recap_loss: float  # bits per recap token before SFT
    pretrained_exact: float
    sft: SFTRun
    dpo: tuple[DPORun, ...]  # [n_beta]
    next_tokens: tuple[NextTokens, ...]  # at the recap's first token, at the feeling
    batch_size: int  # sequences a step (DPO: half as many pairs)
    facts: AlignmentFacts


def simulate(config: WithFamily, memo: Memo = uncached) -> AlignmentResults:
    """Load the pretrained model (through memo), fine-tune it, then tune it on preferences per beta."""
    grid, family = config.grid, config.family
    base_cfg = member_config(family, grid.n_layer, grid.n_head)
    base = load_member(family, grid.n_layer, grid.n_head, memo)
    n_ctx, n_head, vocab = family.n_ctx, grid.n_head, base.vocab
    train = fitting_stories(corpus(World(), grid.train_stories, [grid.seed, 10]), n_ctx)
    heldout = fitting_stories(corpus(World(), grid.heldout_stories, [grid.seed, 11]), n_ctx)
    demos = demonstrations(train, vocab, n_ctx, whole=True)
    pair_rng = np.random.default_rng([grid.seed, 12])
    pairs = preference_pairs(train, grid.preferred, vocab, n_ctx, pair_rng)
    # Held-out sets are evaluated whole, so cut the padding after their last response token once.
    heldout_demos = demonstrations(heldout, vocab, n_ctx, whole=False).take(slice(None))
    heldout_pairs = preference_pairs(heldout, grid.preferred, vocab, n_ctx, pair_rng).take(slice(None))
    story_data = make_data(base_cfg.data)

    sft_params, sft = supervised_fine_tune(base.params, n_head, demos, heldout_demos, story_data, grid)
    dpo_params, dpo = [], []
    for beta in grid.betas:
        params, run = preference_tune(sft_params, n_head, pairs, heldout_pairs, heldout_demos, beta, vocab, grid)
        dpo_params.append(params)
        dpo.append(run)

    models = [base.params, sft_params, *dpo_params]
    shown = heldout[grid.shown_story]
    before_feeling = shown[:shown.index(vocab.index("were")) + 1]
    return with_facts(
        batch_size=grid.batch_size,
        n_layer=grid.n_layer, n_head=n_head, vocab=vocab, preferred=grid.preferred,
        stages=(*STAGES, *(f"DPO, β = {b:g}" for b in grid.betas)), betas=grid.betas,
        n_demos=len(train), n_heldout=len(heldout),
        demo_example=detokenize([vocab[i] for i in demonstration(train[0], vocab)[1:]]),
        pair_example=pair_text(pairs, vocab),
        pretrained_recap_loss=recap_loss(base.params, n_head, heldout_demos),
        pretrained_exact=exact_share(base.params, n_head, heldout_demos),
        sft=sft, dpo=tuple(dpo),
        next_tokens=(
            NextTokens(detokenize([vocab[i] for i in shown[1:]]), vocab[recap(shown, vocab)[0]],
                       np.stack([next_token_probs(p, n_head, shown) for p in models])),
            NextTokens(detokenize([vocab[i] for i in before_feeling[1:]]), grid.preferred,
                       np.stack([next_token_probs(p, n_head, before_feeling) for p in models])),
        ),
    )


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


def pad(sequences: list[list[int]], prompt_lengths: list[int], n_ctx, end_id) -> Sequences:
    """Sequences padded with END to n_ctx + 1 tokens, split into inputs and targets; the mask
    marks the targets after each prompt, up to the sequence's end."""
    n = len(sequences)
    ids = np.full((n, n_ctx + 1), end_id, dtype=np.int64)  # [n_batch, n_ctx + 1]
    mask = np.zeros((n, n_ctx))
    for b, (s, n_prompt) in enumerate(zip(sequences, prompt_lengths)):
        ids[b, :len(s)] = s
        mask[b, n_prompt - 1:len(s) - 1] = 1  # target t is token t + 1
    return Sequences(ids[:, :-1], ids[:, 1:], mask)


def demonstration(story: list[int], vocab) -> list[int]:
    """The story (ending with END), its recap, END."""
    return story + recap(story, vocab) + [vocab.index(END)]


def demonstrations(stories: list[list[int]], vocab, n_ctx, *, whole: bool) -> Sequences:
    """Prompt: a whole story and END; response: its recap and END. whole=True: every token
    after the first END counts as response (the story is learnt too, as in pretraining)."""
    prompts = [1 if whole else len(s) for s in stories]
    return pad([demonstration(s, vocab) for s in stories], prompts, n_ctx, vocab.index(END))


def preference_pairs(stories, preferred, vocab, n_ctx, rng) -> Sequences:
    """Rows 2i and 2i + 1: the story up to "were", then the chosen (preferred feeling) and the
    rejected (another feeling, drawn with rng) endings, each followed by "." and END."""
    index = {w: i for i, w in enumerate(vocab)}
    others = [f for f in World().feelings if f != preferred]
    sequences, lengths = [], []
    for s in stories:
        cut = s.index(index["were"]) + 1
        tail = [index["."], index[END]]
        for feeling in (preferred, others[rng.integers(len(others))]):
            sequences.append(s[:cut] + [index[feeling]] + tail)
            lengths.append(cut)
    return pad(sequences, lengths, n_ctx, index[END])


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
# Log-probabilities of responses and their gradients


def sequence_log_probs(logits, s: Sequences):  # [n_batch, n_seq, n_vocab], Sequences -> [n_batch]
    """log pi(response | prompt): the summed log-probabilities of the response's tokens."""
    return (token_log_probs(logits, s.y) * s.mask).sum(axis=-1)


def sequence_log_probs_backward(d_logp, logits, s: Sequences):  # [n_batch], [n_batch, n_seq, n_vocab] -> dlogits
    """Gradient of sum_b d_logp[b] log pi(response_b) with respect to the logits.

    d log p(target) / d logits = onehot - softmax: minus the cross-entropy gradient, per token.
    """
    _, d_nll = cross_entropy(logits, s.y)  # [n_batch, n_seq, n_vocab]  (softmax - onehot) / size
    return -d_nll * (s.y.size * d_logp[:, None] * s.mask)[..., None]


def dpo_loss(logp_w, logp_l, ref_w, ref_l, beta):  # [n_pair] x4, float -> loss, d_logp_w, d_logp_l, margin
    """Mean -log sigmoid(beta (log-ratio of chosen - log-ratio of rejected)), its gradients with
    respect to the policy's log-probabilities, and each pair's implicit reward margin.

    Example: dpo_loss(log .5, log .25, log .25, log .5, 1) -> -log(4/5) = 0.2231 (margin log 4)
    """
    margin = beta * ((logp_w - ref_w) - (logp_l - ref_l))  # [n_pair]
    loss = float(np.logaddexp(0.0, -margin).mean())
    weight = beta / (1 + np.exp(margin)) / len(margin)  # beta sigmoid(-margin) / n_pair
    return loss, -weight, weight, margin


def dpo_gradient(params, n_head, pairs: Sequences, ref_logp, beta):  # -> loss, margin [n_pair], grads
    """DPO's loss on pairs (rows 2i chosen, 2i + 1 rejected) and every parameter's gradient."""
    trace = gpt(pairs.x, params, n_head)
    logp = sequence_log_probs(trace.logits, pairs)  # [2 n_pair]
    loss, d_w, d_l, margin = dpo_loss(logp[0::2], logp[1::2], ref_logp[0::2], ref_logp[1::2], beta)
    d_logp = np.stack([d_w, d_l], axis=1).reshape(-1)  # [2 n_pair], interleaved like the rows
    return loss, margin, gpt_backward(sequence_log_probs_backward(d_logp, trace.logits, pairs), trace, params)


def sft_gradient(params, n_head, demos: Sequences):  # -> loss (nats per response token), grads
    """Cross-entropy of the response tokens only, and every parameter's gradient."""
    trace = gpt(demos.x, params, n_head)
    n_tokens = demos.mask.sum()
    loss = float(-sequence_log_probs(trace.logits, demos).sum() / n_tokens)
    d_logp = np.full(len(demos.x), -1 / n_tokens)
    return loss, gpt_backward(sequence_log_probs_backward(d_logp, trace.logits, demos), trace, params)


# ---------------------------------------------------------------------------------------------
# Training stages


def optimise(params, grid: AlignmentGrid, schedule: Schedule, step_fn, evaluate, stream: int):
    """Copy params, run schedule.steps AdamW steps of step_fn(params, rows) -> (loss, grads), and
    call evaluate(params) every grid.eval_every steps and at the end; rows are minibatch draws."""
    params = tree_map(np.copy, params)
    optimiser = AdamW(params, weight_decay=0.0)
    batches = np.random.default_rng([grid.seed, stream])
    losses, eval_steps = np.zeros(schedule.steps), []
    for step in range(schedule.steps + 1):
        if step % grid.eval_every == 0 or step == schedule.steps:
            eval_steps.append(step)
            evaluate(params)
        if step == schedule.steps:
            break
        losses[step], grads = step_fn(params, batches)
        grads = leaves(grads)
        norm = global_norm(grads)
        optimiser.step(grads, learning_rate_at(step, schedule), scale=min(1.0, grid.grad_clip / max(norm, 1e-12)))
    return params, losses, np.array(eval_steps)


def supervised_fine_tune(params, n_head, demos, heldout_demos, story_data: Data, grid: AlignmentGrid):  # -> params, SFTRun
    """SFT on the demonstrations; recap loss, exact recaps and the loss on the pretraining
    chapter's held-out stories measured as it goes."""
    recap_losses, exact, story = [], [], []

    def evaluate(p):
        recap_losses.append(recap_loss(p, n_head, heldout_demos))
        exact.append(exact_share(p, n_head, heldout_demos))
        story.append(heldout_loss(p, story_data, n_head))

    def step(p, batches):
        return sft_gradient(p, n_head, demos.take(batches.choice(len(demos.x), grid.batch_size)))

    schedule = Schedule(grid.sft_learning_rate, grid.warmup_steps, grid.sft_steps)
    params, losses, eval_steps = optimise(params, grid, schedule, step, evaluate, stream=13)
    return params, SFTRun(losses * BITS, eval_steps, np.array(recap_losses), np.array(exact), np.array(story))


def preference_tune(ref_params, n_head, pairs, heldout_pairs, heldout_demos, beta, vocab, grid):  # -> params, DPORun
    """DPO from the SFT model, which stays frozen as the reference."""
    ref_logp = sequence_log_probs(gpt(pairs.x, ref_params, n_head).logits, pairs)  # [2 n_pair]
    ref_logits = gpt(heldout_pairs.x, ref_params, n_head).logits  # [2 n_heldout, n_seq, n_vocab]
    ref_heldout = sequence_log_probs(ref_logits, heldout_pairs)
    feeling_at = heldout_pairs.mask[0::2].argmax(axis=1)  # [n_heldout] each chosen response's first target
    preferred = vocab.index(grid.preferred)
    losses, margins, wins, kls, p_pref = [], [], [], [], []

    def evaluate(p):
        logits = gpt(heldout_pairs.x, p, n_head).logits
        logp = sequence_log_probs(logits, heldout_pairs)
        loss, _, _, margin = dpo_loss(logp[0::2], logp[1::2], ref_heldout[0::2], ref_heldout[1::2], beta)
        losses.append(loss)
        margins.append(float(margin.mean()))
        wins.append(float((logp[0::2] > logp[1::2]).mean()))
        kls.append(kl_per_token(logits[0::2], ref_logits[0::2], heldout_pairs.mask[0::2]))
        at_feeling = logits[0::2][np.arange(len(feeling_at)), feeling_at]  # [n_heldout, n_vocab]
        p_pref.append(float(softmax(at_feeling.astype(np.float64))[:, preferred].mean()))

    def step(p, batches):
        chosen = batches.choice(len(pairs.x) // 2, grid.batch_size // 2)  # [n_pair] indices
        rows = np.stack([2 * chosen, 2 * chosen + 1], axis=1).reshape(-1)
        loss, _, grads = dpo_gradient(p, n_head, pairs.take(rows), ref_logp[rows], beta)
        return loss, grads

    schedule = Schedule(grid.dpo_learning_rate, grid.warmup_steps, grid.dpo_steps)
    params, train_losses, eval_steps = optimise(ref_params, grid, schedule, step, evaluate, stream=14)
    return params, DPORun(beta, train_losses, eval_steps, np.array(losses), np.array(margins), np.array(wins),
                          np.array(kls), np.array(p_pref), exact_share(params, n_head, heldout_demos))


# ---------------------------------------------------------------------------------------------
# Measures


def recap_loss(params, n_head, demos: Sequences) -> float:  # -> bits per response token
    logits = gpt(demos.x, params, n_head).logits
    return float(-sequence_log_probs(logits, demos).sum() / demos.mask.sum() * BITS)


def exact_share(params, n_head, demos: Sequences) -> float:
    """Share of responses whose every token is the model's top guess (greedy decoding's output)."""
    logits = gpt(demos.x, params, n_head).logits
    right = (logits.argmax(axis=-1) == demos.y) | (demos.mask == 0)  # [n_batch, n_seq]
    return float(right.all(axis=-1).mean())


def kl_per_token(logits, ref_logits, mask) -> float:  # [n_batch, n_seq, n_vocab] x2, [n_batch, n_seq] -> nats
    """KL(pi || pi_ref) of the next-token distributions, averaged over the masked positions."""
    log_p = log_softmax(logits.astype(np.float64))
    log_q = log_softmax(ref_logits.astype(np.float64))
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=-1)  # [n_batch, n_seq]
    return float((kl * mask).sum() / mask.sum())


def log_softmax(x):  # [..., n_vocab] -> [..., n_vocab]
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def next_token_probs(params, n_head, ids) -> np.ndarray:  # [n_seq] int -> [n_vocab]
    return softmax(gpt(np.array([ids]), params, n_head).logits[0, -1].astype(np.float64))


# ---------------------------------------------------------------------------------------------
# What the prose quotes


@dataclass(frozen=True)
class AlignmentFacts:
    n_layer: int
    n_head: int
    preferred: str
    n_demos: int
    n_heldout: int
    demo_example: str  # as the page writes it: END as ↵
    pair_prompt: str
    pair_chosen: str
    pair_rejected: str
    sft_steps: int
    recap_loss_before: float
    recap_loss_after: float
    exact_before: float
    exact_after: float
    story_loss_before: float
    story_loss_after: float
    sequences_trained: int  # sequences through SFT and every DPO run (a pair is two)
    betas: list[float]
    dpo_steps: int
    beta_first: float
    beta_last: float
    win_before: float  # at the first beta
    win_after: float
    p_preferred_before: float
    p_preferred_after: float
    kl_after: float
    win_after_last: float  # at the last beta
    kl_after_last: float
    p_preferred_after_last: float
    feelings_pretrained_spread: float  # largest |P - even odds| / even odds over the feelings, pretrained
    loss_after_first: float
    loss_after_last: float
    margin_after_first: float
    margin_after_last: float
    recap_exact_after_dpo: float
    p_pretrained_shown: float  # each stage's probability of the preferred feeling in the shown story
    p_sft_shown: float
    p_dpo0_shown: float  # after DPO at the first beta
    recap_target: str
    p_recap_target_pretrained: float
    p_recap_target_sft: float


def feelings_spread(probs, vocab) -> float:  # [n_vocab], [n_vocab] -> float
    """How far a distribution is from even odds over the grammar's feelings, at its furthest."""
    feelings = World().feelings
    p = np.array([probs[vocab.index(f)] for f in feelings])
    p = p / p.sum()
    return float(np.abs(p * len(feelings) - 1).max())


def shown_text(text: str) -> str:
    """Text with each end-of-story token shown as the page's ↵."""
    return text.replace("\n", " \u21b5 ").strip()


def with_facts(**fields) -> AlignmentResults:
    """AlignmentResults with the facts its prose quotes."""
    r = AlignmentResults(**fields, facts=None)
    s, first, last = r.sft, r.dpo[0], r.dpo[-1]
    feeling, recap_at = r.next_tokens[1], r.next_tokens[0]
    preferred, target = r.vocab.index(r.preferred), r.vocab.index(recap_at.target)
    facts = AlignmentFacts(
        n_layer=r.n_layer, n_head=r.n_head, preferred=r.preferred, n_demos=r.n_demos,
        n_heldout=r.n_heldout, demo_example=shown_text(r.demo_example),
        pair_prompt=r.pair_example[0], pair_chosen=shown_text(r.pair_example[1]),
        pair_rejected=shown_text(r.pair_example[2]), sft_steps=int(len(s.train_loss)),
        recap_loss_before=r.pretrained_recap_loss, recap_loss_after=float(s.recap_loss[-1]),
        exact_before=r.pretrained_exact, exact_after=float(s.exact[-1]),
        story_loss_before=float(s.story_loss[0]), story_loss_after=float(s.story_loss[-1]),
        sequences_trained=r.batch_size * (len(s.train_loss) + sum(len(d.train_loss) for d in r.dpo)),
        betas=[float(b) for b in r.betas],
        dpo_steps=int(len(first.train_loss)), beta_first=first.beta, beta_last=last.beta,
        win_before=float(first.win_rate[0]), win_after=float(first.win_rate[-1]),
        p_preferred_before=float(first.p_preferred[0]),
        p_preferred_after=float(first.p_preferred[-1]), kl_after=float(first.kl[-1]),
        win_after_last=float(last.win_rate[-1]), kl_after_last=float(last.kl[-1]),
        p_preferred_after_last=float(last.p_preferred[-1]),
        feelings_pretrained_spread=feelings_spread(feeling.probs[0], r.vocab),
        loss_after_first=float(first.loss[-1]), loss_after_last=float(last.loss[-1]),
        margin_after_first=float(first.margin[-1]), margin_after_last=float(last.margin[-1]),
        recap_exact_after_dpo=first.recap_exact,
        p_pretrained_shown=float(feeling.probs[0, preferred]),
        p_sft_shown=float(feeling.probs[1, preferred]),
        p_dpo0_shown=float(feeling.probs[2, preferred]),
        recap_target=recap_at.target,
        p_recap_target_pretrained=float(recap_at.probs[0, target]),
        p_recap_target_sft=float(recap_at.probs[1, target]),
    )
    return dataclasses.replace(r, facts=facts)
