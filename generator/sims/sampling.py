"""From logits to a sampled token: softmax with temperature and the samplers people use.

Simulated exactly: the softmax with temperature p_i = exp(z_i/T) / sum_j exp(z_j/T) over a
fixed candidate set, its entropy, top-k, top-p (nucleus) and min-p truncation with
renormalisation, and repeated seeded sampling. Not simulated: the model that produced the
logits (the example's logits are illustrative) and the rest of the vocabulary, which is
assumed to carry negligible probability. Beside them, a real model's logits: the pretraining
family's best model (read through the memo, never retrained here) after a story prompt, under
the same temperature and top-p, next to the story grammar's exact next-token distribution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from generator.sims.family import Memo, WithFamily, best_model, load_models, model_name, prompt_ids, uncached
from generator.sims.gpt import next_token_logits, softmax
from generator.sims.stories import World, detokenize, next_token_probs
from generator.sims.train import TrainedModel

if TYPE_CHECKING:
    from generator.grids import SamplingGrid


def softmax_with_temperature(z, temperature):  # [n_vocab], float -> [n_vocab]
    """p_i = exp(z_i / T) / sum_j exp(z_j / T), for T > 0.

    Example: softmax_with_temperature(np.array([0.0, np.log(3.0)]), 1.0) -> [0.25, 0.75]
    """
    return softmax(np.asarray(z, dtype=np.float64) / temperature)


def entropy_bits(p):  # [..., n_vocab] -> [...]
    """Shannon entropy in bits, with 0 log 0 = 0."""
    logp = np.log2(np.where(p > 0, p, 1.0))
    return -(p * logp).sum(axis=-1)


def top_k_keep(p, k):  # [n_vocab], int -> [n_vocab] bool
    """Keep the k most probable tokens (ties broken by position, as a stable sort does)."""
    order = np.argsort(-p, kind="stable")
    keep = np.zeros(p.shape, dtype=bool)
    keep[order[:k]] = True
    return keep


def top_p_keep(p, top_p):  # [n_vocab], float -> [n_vocab] bool
    """Nucleus: the smallest most-probable set whose total probability reaches top_p."""
    order = np.argsort(-p, kind="stable")
    before = np.cumsum(p[order]) - p[order]  # mass of the tokens ranked above each one
    keep = np.zeros(p.shape, dtype=bool)
    keep[order[before < top_p]] = True
    return keep


def min_p_keep(p, min_p):  # [n_vocab], float -> [n_vocab] bool
    """Keep tokens whose probability is at least min_p times the most probable one's."""
    return p >= min_p * p.max()


def renormalise(p, keep):  # [n_vocab], [n_vocab] bool -> [n_vocab]
    """Zero the dropped tokens and rescale the survivors to sum to 1."""
    q = np.where(keep, p, 0.0)
    return q / q.sum()


def sample_counts(p, n, rng):  # [n_vocab], int, Generator -> [n_vocab] int
    """Draw n tokens independently from p and count how often each came up."""
    draws = rng.choice(p.shape[-1], size=n, p=p)  # [n]
    return np.bincount(draws, minlength=p.shape[-1])


def nearest_index(values, target):  # [n], float -> int
    """Index of the value nearest target on a log scale (where temperatures live)."""
    return int(np.argmin(np.abs(np.log(np.asarray(values) / target))))


# ---------------------------------------------------------------------------------------------
# The chapter's results


@dataclass(frozen=True)
class TruncationResult:
    """One sampler over its grid: which tokens survive and their renormalised probabilities."""

    values: np.ndarray  # [n_grid]   the sampler's parameter (k, p or min-p)
    keep: np.ndarray  # [n_grid, n_vocab] bool
    probs: np.ndarray  # [n_grid, n_vocab] renormalised


@dataclass(frozen=True)
class ModelNextToken:
    """A trained model's next-token distribution after a prompt, under temperature and top-p."""

    prompt: str
    n_layer: int
    n_head: int
    tokens: tuple[str, ...]  # [n_shown]  the most probable tokens at T = 1, most probable first
    logits: np.ndarray  # [n_shown]
    grammar_probs: np.ndarray  # [n_shown]  the grammar's exact probabilities
    grammar_other: float  # the grammar's probability of every token not shown
    temperatures: np.ndarray  # [n_T]
    top_p: np.ndarray  # [n_p]
    probs: np.ndarray  # [n_T, n_p, n_shown]  after temperature, top-p and renormalising
    other: np.ndarray  # [n_T, n_p]  probability left to the tokens not shown
    entropy: np.ndarray  # [n_T, n_p] bits, over the whole vocabulary


@dataclass(frozen=True)
class ModelFacts:
    """What the prose quotes of the trained model's distribution (at top-p = 1)."""

    model: str
    prompt: str
    top_token: str
    t_one: float
    p_top: float
    t_cold: float
    p_top_cold: float
    t_hot: float
    p_others_hot: float
    grammar_top_token: str
    grammar_p_top: float


@dataclass(frozen=True)
class SamplingFacts:
    """What the prose quotes, at the grid's ends and nearest T = 1."""

    prompt: str
    n_candidates: int
    argmax_token: str
    sample_sizes: list[int]
    sampler_temperature: float
    seed: int
    t_cold: float
    t_one: float
    t_hot: float
    p_top_cold: float
    p_top_one: float
    p_top_hot: float
    entropy_cold: float
    entropy_one: float
    entropy_hot: float
    choices_cold: float  # 2 ** entropy: the number of equally likely choices it is worth
    choices_one: float
    choices_hot: float
    model: ModelFacts


@dataclass(frozen=True)
class SamplingResults:
    prompt: str
    tokens: tuple[str, ...]  # [n_vocab]
    logits: np.ndarray  # [n_vocab]
    temperatures: np.ndarray  # [n_T]
    probs: np.ndarray  # [n_T, n_vocab]
    entropy: np.ndarray  # [n_T] bits
    sampler_temperature: float
    base_probs: np.ndarray  # [n_vocab]  at sampler_temperature, before truncation
    top_k: TruncationResult
    top_p: TruncationResult
    min_p: TruncationResult
    sample_sizes: np.ndarray  # [n_N]
    counts: np.ndarray  # [n_N, n_vocab]
    seed: int
    model: ModelNextToken
    facts: SamplingFacts


def truncate(p, values, keep_fn):  # [n_vocab], [n_grid], fn -> TruncationResult
    """Apply one sampler at every value of its grid."""
    keep = np.stack([keep_fn(p, v) for v in values])  # [n_grid, n_vocab]
    probs = np.stack([renormalise(p, m) for m in keep])  # [n_grid, n_vocab]
    return TruncationResult(values=np.asarray(values), keep=keep, probs=probs)


def simulate(config: WithFamily, memo: Memo = uncached) -> SamplingResults:
    """Run every sampling quantity over the grid, and read the family's best model's logits."""
    grid = config.grid
    tokens = tuple(token for token, _ in grid.candidates)
    logits = np.array([logit for _, logit in grid.candidates], dtype=np.float64)  # [n_vocab]
    temperatures = np.array(grid.temperatures, dtype=np.float64)  # [n_T]
    probs = np.stack([softmax_with_temperature(logits, t) for t in temperatures])  # [n_T, n_vocab]
    base = softmax_with_temperature(logits, grid.sampler_temperature)  # [n_vocab]
    rng = np.random.default_rng(grid.seed)
    counts = np.stack([sample_counts(base, n, rng) for n in grid.sample_sizes])  # [n_N, n_vocab]
    model = model_next_token(best_model(load_models(config.family, memo)), grid)
    entropy = entropy_bits(probs)
    return SamplingResults(
        prompt=grid.prompt,
        tokens=tokens,
        logits=logits,
        temperatures=temperatures,
        probs=probs,
        entropy=entropy,
        sampler_temperature=grid.sampler_temperature,
        base_probs=base,
        top_k=truncate(base, grid.top_k, top_k_keep),
        top_p=truncate(base, grid.top_p, top_p_keep),
        min_p=truncate(base, grid.min_p, min_p_keep),
        sample_sizes=np.array(grid.sample_sizes),
        counts=counts,
        seed=grid.seed,
        model=model,
        facts=facts(grid, tokens, logits, temperatures, probs, entropy, model),
    )


def model_next_token(m: TrainedModel, grid: SamplingGrid) -> ModelNextToken:
    """The model's next-token probabilities after the prompt under every temperature and top-p."""
    ids = np.array([prompt_ids(grid.model_prompt, m.vocab)])  # [1, n_seq]
    logits = next_token_logits(ids, m.params, m.config.n_head)[0].astype(np.float64)  # [n_vocab]
    shown = np.argsort(-logits, kind="stable")[: grid.model_tokens]  # [n_shown]
    shown_tokens = tuple(m.vocab[i] for i in shown)
    grammar = next_token_probs(World(), grid.model_prompt.split())
    probs = np.zeros((len(grid.model_temperatures), len(grid.model_top_p), len(shown)))
    other = np.zeros(probs.shape[:2])
    entropy = np.zeros(probs.shape[:2])
    for i, t in enumerate(grid.model_temperatures):
        p = softmax_with_temperature(logits, t)  # [n_vocab]
        for j, top_p in enumerate(grid.model_top_p):
            q = renormalise(p, top_p_keep(p, top_p))
            probs[i, j] = q[shown]
            other[i, j] = np.delete(q, shown).sum()
            entropy[i, j] = entropy_bits(q)
    return ModelNextToken(
        prompt=detokenize(grid.model_prompt.split()),
        n_layer=m.config.n_layer,
        n_head=m.config.n_head,
        tokens=shown_tokens,
        logits=logits[shown],
        grammar_probs=np.array([grammar.get(t, 0.0) for t in shown_tokens]),
        grammar_other=sum(q for token, q in grammar.items() if token not in set(shown_tokens)),
        temperatures=np.array(grid.model_temperatures),
        top_p=np.array(grid.model_top_p),
        probs=probs,
        other=other,
        entropy=entropy,
    )


# ---------------------------------------------------------------------------------------------
# What the prose quotes


def facts(grid, tokens, logits, temperatures, probs, entropy, model: ModelNextToken) -> SamplingFacts:
    """The numbers the prose quotes: the illustrative logits at the grid's ends and nearest T = 1."""
    best = int(np.argmax(logits))
    cold, one, hot = 0, nearest_index(temperatures, 1.0), len(temperatures) - 1
    return SamplingFacts(
        prompt=grid.prompt, n_candidates=len(tokens), argmax_token=tokens[best],
        sample_sizes=[int(n) for n in grid.sample_sizes],
        sampler_temperature=grid.sampler_temperature, seed=grid.seed,
        t_cold=float(temperatures[cold]), t_one=float(temperatures[one]), t_hot=float(temperatures[hot]),
        p_top_cold=float(probs[cold, best]), p_top_one=float(probs[one, best]),
        p_top_hot=float(probs[hot, best]),
        entropy_cold=float(entropy[cold]), entropy_one=float(entropy[one]),
        entropy_hot=float(entropy[hot]),
        choices_cold=float(2.0 ** entropy[cold]), choices_one=float(2.0 ** entropy[one]),
        choices_hot=float(2.0 ** entropy[hot]),
        model=model_facts(model),
    )


def model_facts(m: ModelNextToken) -> ModelFacts:
    """What the prose quotes of the model's distribution, at top-p = 1."""
    one = nearest_index(m.temperatures, 1.0)
    top = int(np.argmax(m.grammar_probs))
    return ModelFacts(
        model=model_name(m.n_layer, m.n_head), prompt=m.prompt, top_token=m.tokens[0],
        t_one=float(m.temperatures[one]), p_top=float(m.probs[one, -1, 0]),
        t_cold=float(m.temperatures[0]), p_top_cold=float(m.probs[0, -1, 0]),
        t_hot=float(m.temperatures[-1]), p_others_hot=float(m.other[-1, -1]),
        grammar_top_token=m.tokens[top], grammar_p_top=float(m.grammar_probs[top]),
    )
