"""Probes of a trained GPT's heads: what each head attends to, and how much the context helps.

Simulated, for every head from its attention weights (softmax under the causal mask):
- previous-token score: mean weight on the key just before the query (queries 1..n_seq-1);
- induction score on stories (prefix matching, Olsson et al. 2022): over the queries whose
  token occurred earlier in the window, the mean total weight on the keys that *followed* an
  earlier occurrence (key j + 1 for every j < i - 1 with ids[j] = ids[i]);
- the repeated-random-tokens probe (Olsson et al. 2022): END, then n_half random distinct
  tokens, then the same tokens again; from each query in the second copy, the weight on the
  token after that token's first occurrence (key = query - n_half + 1). No grammar helps here:
  only copying predicts the second copy. It is taken twice: with tokens from a pool (the
  tokens the model's training text repeats at random, the songs' sounds) and from the whole
  vocabulary, as Olsson et al. draw them (a tiny model may copy only what it learnt to copy);
- first-token score: mean weight on key 0 (the END every window starts with), queries 1..;
- local score: mean weight on the query itself and the LOCAL_WINDOW - 1 keys before it
  (queries LOCAL_WINDOW.., which can see further back);
- entropy of each query's weights, in bits, averaged.
The previous-token score is taken on random tokens too: on the probe's first copy, before
anything repeats (head detectors measure it on random tokens): a previous-token head looks at
the token before whatever the tokens are, and may do other work in the stories, or once a
copy has begun. Each head is then labelled by the first rule it meets,
in this order (thresholds below): induction (repeated-tokens score >= INDUCTION_MIN),
previous-token (previous-token score on the probe >= PREVIOUS_MIN),
first-token (>= FIRST_MIN), local (>= LOCAL_MIN), otherwise diffuse.

The in-context-learning score (Olsson et al. 2022: loss late in the context minus loss early)
is the mean loss of the targets at positions >= ICL_LATE minus the mean at positions
<= ICL_EARLY (0-based positions of a 64-token window, scaled to other lengths; Olsson et al.
take token 500 minus token 50 of 512; negative: later tokens are predicted better
because the context tells more). Not simulated: ablations, path patching, or any causal test
of what a head does; these are correlational scores of its attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from generator.sims.gpt import gpt, token_log_probs

INDUCTION_MIN = 0.4  # repeated-random-tokens score of an induction head
PREVIOUS_MIN = 0.5  # previous-token score of a previous-token head
FIRST_MIN = 0.5  # weight on the first token of a first-token head
LOCAL_MIN = 0.5  # weight on the last LOCAL_WINDOW keys of a local head
LOCAL_WINDOW = 4  # the query and the 3 keys before it
ICL_EARLY, ICL_LATE = 10, 50  # positions <= ICL_EARLY are early, >= ICL_LATE late
LABELS = ("induction", "previous-token", "first-token", "local", "diffuse")
BITS = 1 / np.log(2)


@dataclass(frozen=True)
class HeadScores:
    """One model's heads, layer major (entry layer * n_head + head)."""

    layer: np.ndarray  # [n_layer * n_head] int  from 1
    head: np.ndarray  # [n_layer * n_head] int  from 1
    previous_token: np.ndarray  # [n_layer * n_head]  on held-out stories
    previous_probe: np.ndarray  # [n_layer * n_head]  on the probe's first copy: random tokens from the pool
    induction: np.ndarray  # [n_layer * n_head]  prefix matching on held-out stories
    repeated_tokens: np.ndarray  # [n_layer * n_head]  on repeated random tokens from the pool
    repeated_any: np.ndarray  # [n_layer * n_head]  on repeated random tokens from the whole vocabulary
    first_token: np.ndarray  # [n_layer * n_head]  on held-out stories
    local: np.ndarray  # [n_layer * n_head]  on held-out stories
    entropy: np.ndarray  # [n_layer * n_head]  bits, on held-out stories
    labels: tuple[str, ...]  # [n_layer * n_head]
    uniform: dict  # each score's value for uniform causal attention, same windows


# ---------------------------------------------------------------------------------------------
# Targets: which keys each score counts


def previous_token_targets(n_seq):  # -> [n_seq, n_seq] bool
    """True at (query i, key i - 1)."""
    return np.eye(n_seq, k=-1, dtype=bool)


def induction_targets(ids):  # [n_batch, n_seq] int -> [n_batch, n_seq, n_seq] bool
    """True at (query i, key j + 1) for every j < i - 1 with ids[j] == ids[i].

    Example: ids [[7, 8, 7, 9, 7]] -> True at (2, 1), (4, 1) and (4, 3).
    """
    same = ids[:, :, None] == ids[:, None, :]  # [n_batch, n_seq (query), n_seq (earlier j)]
    n_seq = ids.shape[1]
    earlier = np.tril(np.ones((n_seq, n_seq), dtype=bool), k=-2)  # j < i - 1
    out = np.zeros_like(same)
    out[:, :, 1:] = (same & earlier)[:, :, :-1]  # key j + 1
    return out


def repeated_tokens(n_vocab, n_half, n_batch, end_id, rng, pool=None):  # -> [n_batch, 1 + 2 n_half] int
    """END, n_half distinct random tokens (never END; from pool if given), and the same again."""
    others = np.array([i for i in (range(n_vocab) if pool is None else pool) if i != end_id])
    first = np.stack([rng.choice(others, n_half, replace=False) for _ in range(n_batch)])  # [n_batch, n_half]
    return np.concatenate([np.full((n_batch, 1), end_id), first, first], axis=1)


def repeated_tokens_targets(n_half):  # -> [1 + 2 n_half, 1 + 2 n_half] bool
    """True at (query in the second copy, the key after that token's first occurrence)."""
    n_seq = 1 + 2 * n_half
    out = np.zeros((n_seq, n_seq), dtype=bool)
    queries = np.arange(1 + n_half, n_seq)
    out[queries, queries - n_half + 1] = True
    return out


def local_targets(n_seq, window=LOCAL_WINDOW):  # -> [n_seq, n_seq] bool
    """True at (query i, key k) for i - window < k <= i, for the queries i >= window (those
    that can see further back than the window)."""
    out = np.tril(np.ones((n_seq, n_seq), dtype=bool)) & ~np.tril(np.ones((n_seq, n_seq), dtype=bool), k=-window)
    out[:window] = False
    return out


def first_token_targets(n_seq):  # -> [n_seq, n_seq] bool
    """True at (query i >= 1, key 0)."""
    out = np.zeros((n_seq, n_seq), dtype=bool)
    out[1:, 0] = True
    return out


# ---------------------------------------------------------------------------------------------
# Scores


def target_score(weights, targets):  # [n_batch, n_head, n_seq, n_seq], [(n_batch,) n_seq, n_seq] -> [n_head]
    """Mean over the queries with any target of the total weight on their targets."""
    targets = np.broadcast_to(targets, (weights.shape[0],) + weights.shape[-2:])  # [n_batch, n_seq, n_seq]
    has = targets.any(axis=-1)  # [n_batch, n_seq]
    on_target = (weights * targets[:, None]).sum(axis=-1)  # [n_batch, n_head, n_seq]
    return on_target.transpose(1, 0, 2)[:, has].mean(axis=-1)


def previous_token_score(weights):  # [n_batch, n_head, n_seq, n_seq] -> [n_head]
    return target_score(weights, previous_token_targets(weights.shape[-1]))


def induction_score(weights, ids):  # [n_batch, n_head, n_seq, n_seq], [n_batch, n_seq] -> [n_head]
    return target_score(weights, induction_targets(ids))


def repeated_tokens_score(weights, n_half):  # [n_batch, n_head, 1 + 2 n_half, 1 + 2 n_half] -> [n_head]
    return target_score(weights, repeated_tokens_targets(n_half))


def first_token_score(weights):  # [n_batch, n_head, n_seq, n_seq] -> [n_head]
    return target_score(weights, first_token_targets(weights.shape[-1]))


def local_score(weights):  # [n_batch, n_head, n_seq, n_seq] -> [n_head]
    return target_score(weights, local_targets(weights.shape[-1]))


def attention_entropy(weights):  # [n_batch, n_head, n_seq, n_seq] -> [n_head] bits
    """Mean over every query of the entropy of its weights."""
    w = np.where(weights > 0, weights, 1.0)
    return -(weights * np.log(w)).sum(axis=-1).mean(axis=(0, 2)) * BITS


def uniform_weights(n_seq):  # int -> [1, 1, n_seq, n_seq]
    """Causal attention spread evenly over the query and every earlier key."""
    return (np.tril(np.ones((n_seq, n_seq))) / np.arange(1, n_seq + 1)[:, None])[None, None]


def label(previous, repeated, first, local) -> str:
    """The head's pattern: the first rule it meets, in the order of LABELS."""
    if repeated >= INDUCTION_MIN:
        return "induction"
    if previous >= PREVIOUS_MIN:
        return "previous-token"
    if first >= FIRST_MIN:
        return "first-token"
    if local >= LOCAL_MIN:
        return "local"
    return "diffuse"


def attention_weights(params, n_head, ids):  # [n_batch, n_seq] int -> [n_layer, n_batch, n_head, n_seq, n_seq]
    return np.stack([b.weights for b in gpt(ids, params, n_head).blocks]).astype(np.float64)


def score_heads(params, n_head, stories, probe_half, rng, end_id, pool=None) -> HeadScores:
    """Every head scored on held-out story windows [n_windows, n_seq] and on repeated random
    tokens (n_half = probe_half, as many sequences as story windows, drawn with rng): once from
    pool (the tokens a model copies in its training text) and once from the whole vocabulary."""
    n_vocab = params["wte"].shape[0]
    probe = repeated_tokens(n_vocab, probe_half, len(stories), end_id, rng, pool)
    probe_any = repeated_tokens(n_vocab, probe_half, len(stories), end_id, rng)
    on_stories = attention_weights(params, n_head, stories)  # [n_layer, n_batch, n_head, n_seq, n_seq]
    on_probe = attention_weights(params, n_head, probe)
    on_probe_any = attention_weights(params, n_head, probe_any)
    first = 1 + probe_half  # END and the first copy: random tokens, nothing repeated yet
    n_layer = len(on_stories)
    scores = {
        "previous_token": [previous_token_score(w) for w in on_stories],
        "previous_probe": [previous_token_score(w[..., :first, :first]) for w in on_probe],
        "induction": [induction_score(w, stories) for w in on_stories],
        "repeated_tokens": [repeated_tokens_score(w, probe_half) for w in on_probe],
        "repeated_any": [repeated_tokens_score(w, probe_half) for w in on_probe_any],
        "first_token": [first_token_score(w) for w in on_stories],
        "local": [local_score(w) for w in on_stories],
        "entropy": [attention_entropy(w) for w in on_stories],
    }
    flat = {k: np.concatenate(v) for k, v in scores.items()}  # [n_layer * n_head]
    uniform_s = np.broadcast_to(uniform_weights(stories.shape[1]), (len(stories), 1) + (stories.shape[1],) * 2)
    uniform_p = np.broadcast_to(uniform_weights(probe.shape[1]), (len(probe), 1) + (probe.shape[1],) * 2)
    uniform = {
        "previous_token": float(previous_token_score(uniform_s)[0]),
        "previous_probe": float(previous_token_score(uniform_p[..., :first, :first])[0]),
        "induction": float(induction_score(uniform_s, stories)[0]),
        "repeated_tokens": float(repeated_tokens_score(uniform_p, probe_half)[0]),
        "repeated_any": float(repeated_tokens_score(uniform_p, probe_half)[0]),
        "first_token": float(first_token_score(uniform_s)[0]),
        "local": float(local_score(uniform_s)[0]),
        "entropy": float(attention_entropy(uniform_s)[0]),
    }
    return HeadScores(
        layer=np.repeat(np.arange(1, n_layer + 1), n_head), head=np.tile(np.arange(1, n_head + 1), n_layer),
        labels=tuple(label(p, r, f, lo) for p, r, f, lo in zip(
            flat["previous_probe"], flat["repeated_tokens"], flat["first_token"], flat["local"])),
        uniform=uniform, **flat,
    )


def loss_by_position(params, n_head, x, y, batch=64):  # [n_windows, n_seq] int x2 -> [n_seq] bits
    """Mean -log2 P(target) at each position of the windows."""
    total = np.zeros(x.shape[1])
    for i in range(0, len(x), batch):
        total -= token_log_probs(gpt(x[i:i + batch], params, n_head).logits, y[i:i + batch]).sum(axis=0)
    return total / len(x) * BITS


def in_context_learning_score(losses, early=None, late=None) -> float:  # [n_seq] -> bits
    """Mean loss at positions >= late minus mean loss at positions <= early (by default
    ICL_EARLY and ICL_LATE scaled from 64 positions to len(losses)).

    Example: losses [3, 3, 1, 1] with early=1, late=2 -> 1 - 3 = -2.
    """
    n_seq = len(losses)
    early = ICL_EARLY * n_seq // 64 if early is None else early
    late = ICL_LATE * n_seq // 64 if late is None else late
    return float(losses[late:].mean() - losses[:early + 1].mean())
