"""Fine-tuning a pretrained GPT on prompt-and-response sequences: the pieces every stage shares.

Simulated: sequences padded to the context with a mask on the response's targets; the summed
log-probability of a response and its gradient; supervised fine-tuning's loss (cross-entropy of
the response tokens only); and one loop that runs AdamW with warmup, cosine decay and gradient
clipping (generator.sims.train) over minibatches, evaluating as it goes. The alignment chapter's
stages and the tool-calling model are built from these. Not simulated: LoRA, mixed precision,
packing several sequences into one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from generator.sims.gpt import cross_entropy, gpt, gpt_backward, leaves, token_log_probs, tree_map
from generator.sims.train import AdamW, global_norm, learning_rate_at


@dataclass(frozen=True)
class Sequences:
    """Prompt-and-response token sequences, padded with END; mask marks the response's targets."""

    x: np.ndarray  # [n_batch, n_seq] int
    y: np.ndarray  # [n_batch, n_seq] int  x shifted by one
    mask: np.ndarray  # [n_batch, n_seq]  1 where y is a response token

    def take(self, rows):  # [n] int -> Sequences
        """The given rows, cut one position after the last response target any of them has (a
        reward model reads the position that has just read the response): the causal mask makes
        later positions irrelevant to earlier ones, so the cut changes no number."""
        mask = self.mask[rows]
        n_seq = min(int(np.flatnonzero(mask.any(axis=0))[-1]) + 2, mask.shape[1])
        return Sequences(self.x[rows, :n_seq], self.y[rows, :n_seq], mask[:, :n_seq])


@dataclass(frozen=True)
class Schedule:
    """What learning_rate_at reads: the peak, the warmup and the length of one stage."""

    learning_rate: float
    warmup_steps: int
    steps: int


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


def sequence_log_probs(logits, s: Sequences):  # [n_batch, n_seq, n_vocab], Sequences -> [n_batch]
    """log pi(response | prompt): the summed log-probabilities of the response's tokens."""
    return (token_log_probs(logits, s.y) * s.mask).sum(axis=-1)


def sequence_log_probs_backward(d_logp, logits, s: Sequences):  # [n_batch], [n_batch, n_seq, n_vocab] -> dlogits
    """Gradient of sum_b d_logp[b] log pi(response_b) with respect to the logits.

    d log p(target) / d logits = onehot - softmax: minus the cross-entropy gradient, per token.
    """
    _, d_nll = cross_entropy(logits, s.y)  # [n_batch, n_seq, n_vocab]  (softmax - onehot) / size
    return -d_nll * (s.y.size * d_logp[:, None] * s.mask)[..., None]


def sft_gradient(params, n_head, demos: Sequences):  # -> loss (nats per response token), grads
    """Cross-entropy of the response tokens only, and every parameter's gradient."""
    trace = gpt(demos.x, params, n_head)
    n_tokens = demos.mask.sum()
    loss = float(-sequence_log_probs(trace.logits, demos).sum() / n_tokens)
    d_logp = np.full(len(demos.x), -1 / n_tokens)
    return loss, gpt_backward(sequence_log_probs_backward(d_logp, trace.logits, demos), trace, params)


def optimise(params, grid: Any, schedule: Schedule, step_fn, evaluate, stream: int):
    """Copy params, run schedule.steps AdamW steps of step_fn(params, rows) -> (loss, grads), and
    call evaluate(params) every grid.eval_every steps and at the end; rows are minibatch draws
    from the generator seeded [grid.seed, stream]; gradients are clipped to grid.grad_clip."""
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


def exact_share(params, n_head, demos: Sequences) -> float:
    """Share of responses whose every token is the model's top guess (greedy decoding's output)."""
    logits = gpt(demos.x, params, n_head).logits
    right = (logits.argmax(axis=-1) == demos.y) | (demos.mask == 0)  # [n_batch, n_seq]
    return float(right.all(axis=-1).mean())


def log_softmax(x):  # [..., n_vocab] -> [..., n_vocab]
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
