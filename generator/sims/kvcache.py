"""The KV cache: generating token by token without recomputing the past.

Simulated: incremental decoding for the GPT of generator.sims.gpt. Each layer keeps the keys
and values of every past position in a cache allocated once for the whole context
([n_layer, n_batch, n_head, n_ctx, d_head] each); a step computes q, k and v for the new
tokens only, writes their k and v after the cached rows, and lets the new queries attend over
every cached key. The prompt goes in as one step (prefill), then one token per step. Checked:
at every position the cached logits equal those of the full forward pass over the whole prefix.
Counted: the multiply-adds of every matrix product a step performs, with and without the cache
(the full pass computes logits at every position, as generator.sims.gpt.generate does).
Measured: the wall-clock time of one generated token both ways, in a fresh single-threaded
process, on a model of the tiny model's shape with random weights (time does not depend on the
weights' values). Memory: the cache's size for published configurations, by formula.

Not simulated: paged or sliding-window caches, evicting or compressing entries, the accuracy
lost by storing the cache in int8 (only its size is computed), batches of different lengths.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from generator.sims.attention_cost import Timings, seconds_per_call
from generator.sims.gpt import attention, gelu, gpt, init_params, layer_norm, linear, merge_heads, split_heads
from generator.sims import ledger
from generator.sims.family import Memo, load_member, model_name, prompt_ids, uncached
from generator.sims.ledger import WithLedger
from generator.sims.stories import World, corpus
from generator.sims.train import TrainedModel

# ---------------------------------------------------------------------------------------------
# Decoding with a cache


@dataclass
class KVCache:
    """Every layer's keys and values, one row per position; rows past the prefix are unused."""

    k: np.ndarray  # [n_layer, n_batch, n_head, n_ctx, d_head]
    v: np.ndarray  # [n_layer, n_batch, n_head, n_ctx, d_head]


def empty_cache(params, n_head, n_batch=1) -> KVCache:  # params, int, int -> KVCache
    """A cache for the model's whole context, in the weights' dtype."""
    n_ctx, n_embd = params["wpe"].shape
    shape = (len(params["blocks"]), n_batch, n_head, n_ctx, n_embd // n_head)
    return KVCache(np.zeros(shape, params["wpe"].dtype), np.zeros(shape, params["wpe"].dtype))


def causal_mask_after(n_past, n_new, dtype=np.float32):  # int, int -> [n_new, n_past + n_new]
    """The causal mask's rows for positions n_past.. : each sees every key up to itself.

    Example: causal_mask_after(2, 2) -> [[0, 0, 0, -1e10], [0, 0, 0, 0]]
    """
    return (np.triu(np.ones((n_new, n_past + n_new), dtype), k=n_past + 1) * -1e10).astype(dtype)


def mlp(x, p):  # [..., n_embd], block params -> [..., n_embd]
    return linear(gelu(linear(x, **p["mlp"]["c_fc"])), **p["mlp"]["c_proj"])  # hidden: [..., 4 n_embd]


def cached_block(x, p, n_head, k_cache, v_cache, n_past, store=None):  # [n_batch, n_new, n_embd], params, int, [n_batch, n_head, n_ctx, d_head] x2, int -> [n_batch, n_new, n_embd]
    """One pre-LN block for the new positions: their k, v join the cache, their q reads all of it.

    `store` maps the new keys and values to what the cache keeps (a quantiser); None keeps them."""
    n_new = x.shape[1]
    end = n_past + n_new
    qkv = linear(layer_norm(x, **p["ln_1"]), **p["attn"]["c_attn"])  # [n_batch, n_new, 3 n_embd]
    q, k, v = (split_heads(m, n_head) for m in np.split(qkv, 3, axis=-1))  # [n_batch, n_head, n_new, d_head]
    k_cache[:, :, n_past:end] = k if store is None else store(k)  # rows before n_past are reused as they are
    v_cache[:, :, n_past:end] = v if store is None else store(v)
    heads, _, _ = attention(q, k_cache[:, :, :end], v_cache[:, :, :end],
                            causal_mask_after(n_past, n_new, x.dtype))  # [n_batch, n_head, n_new, d_head]
    x = x + linear(merge_heads(heads), **p["attn"]["c_proj"])  # [n_batch, n_new, n_embd]
    return x + mlp(layer_norm(x, **p["ln_2"]), p)


def gpt_step(ids, params, n_head, cache: KVCache, n_past, store=None):  # [n_batch, n_new] int, params, int, KVCache, int -> [n_batch, n_new, n_vocab]
    """Logits for new tokens at positions n_past.., reading the cache and writing their rows."""
    n_new = ids.shape[1]
    x = params["wte"][ids] + params["wpe"][n_past:n_past + n_new]  # [n_batch, n_new, n_embd]
    for layer, p in enumerate(params["blocks"]):
        x = cached_block(x, p, n_head, cache.k[layer], cache.v[layer], n_past, store)
    return layer_norm(x, **params["ln_f"]) @ params["wte"].T  # [n_batch, n_new, n_vocab]


@dataclass(frozen=True)
class Decoding:
    ids: np.ndarray  # [n_seq] int  the prompt, then the greedy continuation
    logits: np.ndarray  # [n_seq, n_vocab]  with the cache: the prefill's, then each step's
    cache: KVCache  # after the last step
    written_at: np.ndarray  # [n_seq] int  the step that wrote each position's k, v (1 = prefill)


def greedy_decode(prompt_ids, params, n_head, n_seq, store=None) -> Decoding:  # [n_prompt] int, params, int, int -> Decoding
    """Prefill the prompt in one step, then append the argmax token one step at a time."""
    cache = empty_cache(params, n_head)
    n_prompt = len(prompt_ids)
    ids = np.zeros(n_seq, dtype=np.int64)
    ids[:n_prompt] = prompt_ids
    logits = np.zeros((n_seq, params["wte"].shape[0]), params["wte"].dtype)  # [n_seq, n_vocab]
    logits[:n_prompt] = gpt_step(ids[None, :n_prompt], params, n_head, cache, 0, store)[0]
    for t in range(n_prompt, n_seq):
        ids[t] = np.argmax(logits[t - 1])
        logits[t] = gpt_step(ids[None, t:t + 1], params, n_head, cache, t, store)[0, 0]
    written_at = np.concatenate([np.ones(n_prompt, np.int64), np.arange(2, n_seq - n_prompt + 2)])
    return Decoding(ids, logits, cache, written_at)


def uncached_logits(ids, params, n_head):  # [n_seq] int, params, int -> [n_seq, n_vocab]
    """Each position's logits from a full forward pass over its whole prefix, as without a cache."""
    return np.stack([gpt(ids[None, :t], params, n_head).logits[0, -1] for t in range(1, len(ids) + 1)])


# ---------------------------------------------------------------------------------------------
# Work, time and memory


def matmul_madds(n_new, n_past, n_embd, n_layer, n_vocab):  # [...] ints -> [...] int
    """Multiply-adds of the matrix products in one forward call over n_new tokens after n_past
    cached ones: per layer, q/k/v (3 n_embd^2), output (n_embd^2) and MLP (8 n_embd^2)
    projections per new token, q.k and w.v over n_past + n_new keys; then the unembedding."""
    n_new = np.asarray(n_new, dtype=np.int64)
    n_keys = np.asarray(n_past, dtype=np.int64) + n_new
    per_layer = 12 * n_new * n_embd * n_embd + 2 * n_new * n_keys * n_embd
    return n_layer * per_layer + n_new * n_embd * n_vocab


def step_madds(t, n_embd, n_layer, n_vocab, cached):  # [...] ints -> [...] int
    """Work to get the logits at sequence length t: with the cache one new token, without it all t."""
    t = np.asarray(t, dtype=np.int64)
    if cached:
        return matmul_madds(1, t - 1, n_embd, n_layer, n_vocab)
    return matmul_madds(t, 0, n_embd, n_layer, n_vocab)


@dataclass(frozen=True)
class TimingConfig:
    """A model shape and the lengths at which one generated token is timed."""

    n_layer: int
    n_head: int
    n_embd: int
    n_vocab: int
    lengths: tuple[int, ...]
    seed: int
    rounds: int = 5


@dataclass(frozen=True)
class StepTimes:
    lengths: np.ndarray  # [n_t]
    seconds_cached: np.ndarray  # [n_t]  one new token after length - 1 cached ones
    seconds_uncached: np.ndarray  # [n_t]  the full forward pass over length tokens
    measured_on: str


def step_seconds(cfg: TimingConfig):  # -> ([n_t], [n_t]) seconds cached, uncached
    """Fastest of cfg.rounds timings of one token at each length, both ways, round-robin."""
    rng = np.random.default_rng([cfg.seed, 5])
    n_ctx = max(cfg.lengths)
    params = init_params(cfg.n_vocab, n_ctx, cfg.n_embd, cfg.n_layer, rng)
    ids = rng.integers(cfg.n_vocab, size=(1, n_ctx))  # [1, n_ctx]
    cache = empty_cache(params, cfg.n_head)
    gpt_step(ids[:, :n_ctx - 1], params, cfg.n_head, cache, 0)
    # Re-running a step rewrites the same cache row, so every timed call does the same work.
    calls = [(lambda t=t: gpt_step(ids[:, t - 1:t], params, cfg.n_head, cache, t - 1),
              lambda t=t: gpt(ids[:, :t], params, cfg.n_head)) for t in cfg.lengths]
    best = np.full((len(calls), 2), np.inf)
    for _ in range(cfg.rounds):
        for i, pair in enumerate(calls):
            for j, call in enumerate(pair):
                best[i, j] = min(best[i, j], seconds_per_call(call))
    return best[:, 0].tolist(), best[:, 1].tolist()


def decode_step_seconds(n_layer, n_head, n_embd, n_vocab, lengths, seed, rounds=5):  # -> [[n_t], [n_t]]
    """step_seconds() of a model of this shape, as plain lists (what generator.measure records)."""
    return list(step_seconds(TimingConfig(n_layer, n_head, n_embd, n_vocab, tuple(lengths), seed, rounds)))


def step_times(t: Timings) -> StepTimes:
    """The measured decode steps (generator.measure's record) as the chapter shows them."""
    cached, uncached = t.seconds
    return StepTimes(np.array(t.lengths), np.array(cached), np.array(uncached), t.measured_on)


# ---------------------------------------------------------------------------------------------
# A cache in fewer bits


def quantise(x, bits):  # [..., d_head], int -> [..., d_head]
    """Each vector rounded to signed integers of `bits` bits with its own absmax scale, read back.

    Example: quantise(np.array([0.5, -1.0, 0.26]), 2) -> [0.0, -1.0, 0.0]  (levels -1, 0, 1)
    """
    top = 2 ** (bits - 1) - 1  # 127 for int8, 7 for int4
    scale = np.abs(x).max(axis=-1, keepdims=True) / top  # [..., 1]
    scale = np.where(scale == 0, 1, scale)
    return (np.clip(np.round(x / scale), -top, top) * scale).astype(x.dtype)


def teacher_forced_logits(ids, params, n_head, store=None):  # [n_seq] int -> [n_seq, n_vocab]
    """Each position's logits, one token per step through a cache that keeps store(k), store(v)."""
    cache = empty_cache(params, n_head)
    return np.concatenate([gpt_step(ids[None, t:t + 1], params, n_head, cache, t, store)[0]
                           for t in range(len(ids))])


@dataclass(frozen=True)
class Quantised:
    bits: np.ndarray  # [n_q]
    bytes_per_value: np.ndarray  # [n_q]  what each cached number takes (scales apart)
    max_logit_error: np.ndarray  # [n_q]  largest |logit - float logit| on the float run's tokens
    mean_logit_error: np.ndarray  # [n_q]
    flipped_top1: np.ndarray  # [n_q]  positions whose most probable token changes
    changed_tokens: np.ndarray  # [n_q]  greedy tokens that differ when decoding with that cache
    first_change: np.ndarray  # [n_q]  the first generated token that differs (1-based), 0 if none
    n_generated: int  # greedy tokens compared
    logit_error: np.ndarray  # [n_q, n_seq]  largest |error| at each position


def quantised_cache(prompt, params, n_head, n_ctx, bits_list, reference: Decoding) -> Quantised:
    """The float run's tokens re-read through quantised caches, and greedy decoding with them."""
    exact = teacher_forced_logits(reference.ids, params, n_head)  # [n_seq, n_vocab]
    errors, changed, flipped, first = [], [], [], []
    for bits in bits_list:
        store = lambda x, bits=bits: quantise(x, bits)  # noqa: E731
        logits = teacher_forced_logits(reference.ids, params, n_head, store)
        errors.append(np.abs(logits - exact).max(axis=-1))
        flipped.append(int((logits.argmax(-1) != exact.argmax(-1)).sum()))
        run = greedy_decode(prompt, params, n_head, n_ctx, store)
        differs = run.ids[len(prompt):] != reference.ids[len(prompt):]
        changed.append(int(differs.sum()))
        first.append(int(np.argmax(differs)) + 1 if differs.any() else 0)
    errors = np.stack(errors)  # [n_q, n_seq]
    return Quantised(bits=np.array(bits_list), bytes_per_value=np.array(bits_list) / 8,
                     max_logit_error=errors.max(axis=1), mean_logit_error=errors.mean(axis=1),
                     flipped_top1=np.array(flipped), changed_tokens=np.array(changed),
                     first_change=np.array(first),
                     n_generated=len(reference.ids) - len(prompt), logit_error=errors)


# ---------------------------------------------------------------------------------------------
# Speculative decoding


@dataclass(frozen=True)
class Speculation:
    ids: np.ndarray  # [n_seq] int  the prompt and the generated tokens
    target_passes: int  # forward calls of the target (the first one also reads the prompt)
    draft_passes: int
    proposed: int  # draft tokens the target checked
    accepted: int


def speculative_decode(prompt_ids, target, n_head_target, draft, n_head_draft, n_seq, gamma) -> Speculation:
    """Greedy speculative decoding: the draft proposes gamma tokens, the target checks them in one
    pass, keeps the longest prefix equal to its own argmax and adds its own next token.

    Each model keeps its cache; rows past the accepted tokens are simply overwritten later.
    """
    n_ctx = target["wpe"].shape[0]
    ids = list(prompt_ids)
    t_cache, d_cache = empty_cache(target, n_head_target), empty_cache(draft, n_head_draft)
    t_valid = d_valid = 0  # leading positions whose k, v each cache holds for the current ids
    passes = drafts = proposed = accepted = 0
    while len(ids) < n_seq:
        n = len(ids)
        g = max(0, min(gamma, n_seq - n - 1, n_ctx - n))
        proposal = []
        for _ in range(g):
            feed = (ids + proposal)[d_valid:]
            logits = gpt_step(np.array([feed]), draft, n_head_draft, d_cache, d_valid)[0, -1]
            d_valid += len(feed)
            proposal.append(int(np.argmax(logits)))
            drafts += 1
        feed = (ids + proposal)[t_valid:]
        logits = gpt_step(np.array([feed]), target, n_head_target, t_cache, t_valid)[0]  # [len(feed), n_vocab]
        passes += 1
        wanted = logits[len(feed) - g - 1:].argmax(axis=-1)  # [g + 1]  the target's own next tokens
        k = next((i for i in range(g) if proposal[i] != wanted[i]), g)
        ids += proposal[:k] + [int(wanted[k])]
        t_valid = n + k
        d_valid = min(d_valid, n + k)
        proposed, accepted = proposed + g, accepted + k
    return Speculation(np.array(ids[:n_seq]), passes, drafts, proposed, accepted)


def agreement(ids, n_prompt, target, n_head_target, draft, n_head_draft) -> np.ndarray:  # [n_seq] -> [n_seq - n_prompt] bool
    """Whether the draft's argmax equals the target's at each generated position of ids."""
    t = gpt(ids[None, :-1], target, n_head_target).logits[0].argmax(-1)  # [n_seq - 1]
    d = gpt(ids[None, :-1], draft, n_head_draft).logits[0].argmax(-1)
    return (t == d)[n_prompt - 1:]


def expected_tokens_per_pass(alpha, gamma):  # [...], [...] -> [...]
    """Leviathan et al. (2023): (1 - alpha^(gamma + 1)) / (1 - alpha), gamma + 1 at alpha = 1."""
    alpha, gamma = np.asarray(alpha, dtype=float), np.asarray(gamma, dtype=float)
    safe = np.where(alpha < 1, alpha, 0.5)
    return np.where(alpha < 1, (1 - safe ** (gamma + 1)) / (1 - safe), gamma + 1)


@dataclass(frozen=True)
class Speculative:
    draft_layers: int
    draft_heads: int
    draft_params: int
    draft_lengths: np.ndarray  # [n_g]
    n_prompts: int
    n_generated: int  # tokens generated per run, summed over the prompts
    plain_passes: int  # target forward calls of plain greedy decoding with a cache
    target_passes: np.ndarray  # [n_g]  summed over the prompts
    draft_passes: np.ndarray  # [n_g]
    acceptance: np.ndarray  # [n_g]  accepted / proposed draft tokens
    alpha: float  # the draft's argmax equals the target's, over the generated positions
    tokens_per_pass: np.ndarray  # [n_g]  measured
    expected_per_pass: np.ndarray  # [n_g]  Leviathan et al. with alpha
    identical: bool  # every run equals plain greedy decoding of the target


def speculative(prompts, target, n_head, draft, n_head_draft, n_new, gammas) -> Speculative:
    """Speculative runs for each draft length over the prompts, against plain greedy decoding."""
    plain = [greedy_decode(p, target.params, n_head, len(p) + n_new).ids for p in prompts]
    agree = np.concatenate([agreement(ids, len(p), target.params, n_head, draft.params, n_head_draft)
                            for ids, p in zip(plain, prompts)])
    runs = [[speculative_decode(p, target.params, n_head, draft.params, n_head_draft, len(p) + n_new, g)
             for p in prompts] for g in gammas]
    alpha = float(agree.mean())
    t_passes = np.array([sum(r.target_passes for r in row) for row in runs])
    generated = n_new * len(prompts)
    return Speculative(
        draft_layers=draft.config.n_layer, draft_heads=draft.config.n_head, draft_params=draft.n_params,
        draft_lengths=np.array(gammas), n_prompts=len(prompts), n_generated=generated,
        plain_passes=generated, target_passes=t_passes,
        draft_passes=np.array([sum(r.draft_passes for r in row) for row in runs]),
        acceptance=np.array([sum(r.accepted for r in row) / max(1, sum(r.proposed for r in row)) for row in runs]),
        alpha=alpha, tokens_per_pass=generated / t_passes,
        expected_per_pass=expected_tokens_per_pass(alpha, np.array(gammas)),
        identical=all(np.array_equal(r.ids, ids) for row in runs for r, ids in zip(row, plain)),
    )


# ---------------------------------------------------------------------------------------------
# Published models: memory at their real context, what fits in a GPU, the roofline


@dataclass(frozen=True)
class Ledger:
    names: tuple[str, ...]  # [n_model]
    attention: tuple[str, ...]  # [n_model]  mha, gqa, mqa, mla, sliding
    n_layer: np.ndarray  # [n_model]
    n_head: np.ndarray  # [n_model]  query heads
    n_kv_head: np.ndarray  # [n_model]
    kv_rank: np.ndarray  # [n_model]  MLA's cached latent width (0 without MLA)
    rope_dim: np.ndarray  # [n_model]  MLA's cached RoPE key width (0 without MLA)
    context: np.ndarray  # [n_model]  tokens
    window: np.ndarray  # [n_model]  0 where attention is not windowed
    n_params: np.ndarray  # [n_model]  int64
    n_active: np.ndarray  # [n_model]
    kv_per_token: np.ndarray  # [n_model]  bytes, bf16
    mha_kv_per_token: np.ndarray  # [n_model]  bytes, bf16, if every query head cached its own K and V
    kv_at_context: np.ndarray  # [n_model]  bytes, one sequence at the model's context, bf16
    lengths: np.ndarray  # [n_len]  context lengths the memory chart draws
    kv_at_length: np.ndarray  # [n_model, n_len]  bytes; 0 past the model's context
    gpus_gb: np.ndarray  # [n_gpu]
    precisions: tuple[str, ...]  # [n_prec]
    weights: np.ndarray  # [n_model, n_prec]  bytes
    fit_tokens: np.ndarray  # [n_model, n_gpu, n_prec]  cache tokens beside the weights (0: weights do not fit)
    fit_sequences: np.ndarray  # [n_model, n_gpu, n_prec]  whole-context sequences that fit
    example: str  # the model the prose works through
    example_gb: int  # on this GPU memory


@dataclass(frozen=True)
class Roofline:
    gpu: str
    bandwidth: float  # bytes/s
    flops: float  # FLOP/s
    memory: float  # bytes
    names: tuple[str, ...]  # [n_r]  the ledger's models whose bf16 weights fit the GPU
    tokens: np.ndarray  # [n_r]  tokens each sequence holds (the grid's, capped at the context)
    batches: np.ndarray  # [n_b]
    step_bytes: np.ndarray  # [n_r, n_b]  read per decode step
    step_flops: np.ndarray  # [n_r, n_b]
    intensity: np.ndarray  # [n_r, n_b]  FLOP per byte
    tokens_per_s: np.ndarray  # [n_r, n_b]  the roofline's bound: batch / max(bytes / bw, flops / peak)
    memory_bound: np.ndarray  # [n_r, n_b] bool
    fits: np.ndarray  # [n_r, n_b] bool  weights and every sequence's cache fit the GPU


def ledger_memory(models, grid) -> Ledger:
    """Every model's cache at its real context, and what fits beside its weights in each GPU."""
    lengths = np.unique(np.r_[2 ** np.arange(8, 18), [m.context for m in models]])  # [n_len]
    at = np.array([[ledger.kv_bytes(m, int(n)) if n <= m.context else 0 for n in lengths] for m in models])
    weights = np.array([[ledger.weight_bytes(m, p) for p in grid.fit_precisions] for m in models])
    per_token = np.array([[ledger.kv_bytes_per_token(m, p) for p in grid.fit_precisions] for m in models])
    capacity = np.array(grid.gpu_memories_gb, dtype=float) * 1e9  # [n_gpu]
    free = np.maximum(capacity[None, :, None] - weights[:, None, :], 0)  # [n_model, n_gpu, n_prec]
    per_sequence = np.array([ledger.cached_positions(m, m.context) for m in models])[:, None, None] * per_token[:, None, :]
    return Ledger(
        names=tuple(m.name for m in models), attention=tuple(m.attention for m in models),
        n_layer=np.array([m.n_layer for m in models]), n_head=np.array([m.n_head for m in models]),
        n_kv_head=np.array([m.n_kv_head for m in models]),
        kv_rank=np.array([m.latent.kv_rank if m.latent else 0 for m in models]),
        rope_dim=np.array([m.latent.rope_dim if m.latent else 0 for m in models]),
        context=np.array([m.context for m in models]), window=np.array([m.window or 0 for m in models]),
        n_params=np.array([ledger.n_params(m) for m in models], dtype=np.int64),
        n_active=np.array([ledger.n_active_params(m) for m in models], dtype=np.int64),
        kv_per_token=np.array([ledger.kv_bytes_per_token(m) for m in models]),
        mha_kv_per_token=np.array([ledger.mha_kv_values_per_token(m) * 2.0 for m in models]),
        kv_at_context=np.array([ledger.kv_bytes(m, m.context) for m in models]),
        lengths=lengths, kv_at_length=at, gpus_gb=np.array(grid.gpu_memories_gb),
        precisions=tuple(grid.fit_precisions), weights=weights,
        fit_tokens=np.floor(free / per_token[:, None, :]).astype(np.int64),
        fit_sequences=np.floor(free / per_sequence).astype(np.int64),
        example=grid.example_model, example_gb=grid.example_gpu_gb,
    )


def roofline(models, grid) -> Roofline:
    """Decode steps of the models that fit one GPU, batch by batch, against its bandwidth and peak."""
    bw, peak, memory = grid.gpu_bandwidth_tb_s * 1e12, grid.gpu_tflop_s * 1e12, grid.gpu_memory_gb * 1e9
    chosen = [m for m in models if ledger.weight_bytes(m) < memory]
    batches = np.array(grid.roofline_batches)
    tokens = np.array([min(grid.roofline_tokens, m.context) for m in chosen])
    step_bytes = np.array([[ledger.decode_bytes(m, int(t) - 1, "bf16", int(b)) for b in batches]
                           for m, t in zip(chosen, tokens)])
    step_flops = np.array([[b * ledger.decode_flops(m, int(t) - 1) for b in batches]
                           for m, t in zip(chosen, tokens)])
    seconds = np.maximum(step_bytes / bw, step_flops / peak)
    held = np.array([[ledger.weight_bytes(m) + ledger.kv_bytes(m, int(t), "bf16", int(b)) for b in batches]
                     for m, t in zip(chosen, tokens)])
    return Roofline(gpu=grid.gpu_name, bandwidth=bw, flops=peak, memory=memory,
                    names=tuple(m.name for m in chosen), tokens=tokens, batches=batches,
                    step_bytes=step_bytes, step_flops=step_flops, intensity=step_flops / step_bytes,
                    tokens_per_s=batches[None, :] / seconds, memory_bound=step_bytes / bw >= step_flops / peak,
                    fits=held <= memory)


# ---------------------------------------------------------------------------------------------
# The chapter's results


@dataclass(frozen=True)
class KVCacheResults:
    n_layer: int  # the decoding model
    n_head: int
    n_embd: int
    n_ctx: int
    n_vocab: int
    n_params: int
    tokens: tuple[str, ...]  # [n_seq]  the prompt, then the greedy continuation
    n_prompt: int
    logits_cached: np.ndarray  # [n_seq, n_vocab]  float32
    max_abs_diff: np.ndarray  # [n_seq]  |cached - full pass| per position, float32
    max_abs_diff_f64: float  # the same check with the weights in float64
    max_abs_logit: float  # the largest |logit|, for scale
    growth_k: np.ndarray  # [n_rows, n_dims]  layer 1's cached keys (heads side by side), the first n_dims
    growth_v: np.ndarray  # [n_rows, n_dims]  and values
    written_at: np.ndarray  # [n_rows]  the step that wrote each row (1 = the prefill)
    work_steps: np.ndarray  # [n_w]  sequence lengths at which work is shown
    madds_cached: np.ndarray  # [n_w]  multiply-adds for the token at that length, with the cache
    madds_uncached: np.ndarray  # [n_w]  without
    total_cached: np.ndarray  # [n_w]  all steps up to that length, with the cache
    total_uncached: np.ndarray  # [n_w]
    times: StepTimes
    timed_madds_cached: np.ndarray  # [n_t]
    timed_madds_uncached: np.ndarray  # [n_t]
    quantised: Quantised
    speculative: Speculative
    ledger: Ledger
    roofline: Roofline
    facts: KVCacheFacts


def cast(params, dtype):  # params, dtype -> params
    """Every weight converted to dtype."""
    if isinstance(params, dict):
        return {k: cast(v, dtype) for k, v in params.items()}
    if isinstance(params, list):
        return [cast(v, dtype) for v in params]
    return params.astype(dtype)


def story_prompts(vocab, n_prompts, n_tokens, seed):  # -> [n_prompts] x [n_tokens] int
    """The first n_tokens tokens (END, then words) of held-out stories, in the model's ids."""
    stories = corpus(World(), n_prompts, seed)
    index = {w: i for i, w in enumerate(vocab)}
    return [np.array([index[stories.vocab[i]] for i in stories.ids[s:s + n_tokens]]) for s in stories.starts]


def simulate(config: WithLedger, memo: Memo = uncached) -> KVCacheResults:
    """Decode with the cache, check it against full passes, count, time, quantise, speculate, size."""
    grid, family = config.grid, config.family
    model: TrainedModel = load_member(family, grid.model_layers, grid.model_heads, memo)
    draft: TrainedModel = load_member(family, grid.draft_layers, grid.draft_heads, memo)
    prompt = np.array(prompt_ids(grid.prompt, model.vocab))  # [n_prompt]
    cfg = model.config
    n_ctx, n_vocab = cfg.data.n_ctx, len(model.vocab)

    run = greedy_decode(prompt, model.params, cfg.n_head, n_ctx)
    diff = np.abs(run.logits - uncached_logits(run.ids, model.params, cfg.n_head)).max(axis=-1)
    params64 = cast(model.params, np.float64)
    run64 = greedy_decode(prompt, params64, cfg.n_head, n_ctx)
    diff64 = float(np.abs(run64.logits - uncached_logits(run64.ids, params64, cfg.n_head)).max())

    n_rows = len(prompt) + grid.growth_steps - 1
    growth_k = merge_heads(run.cache.k[0, :, :, :n_rows])[0, :, :grid.growth_dims]  # [n_rows, n_dims]
    growth_v = merge_heads(run.cache.v[0, :, :, :n_rows])[0, :, :grid.growth_dims]

    shape = dict(n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_vocab=n_vocab)
    every = np.arange(1, max(grid.timed_lengths) + 1)  # [n_steps]
    shown = np.unique(np.r_[1, np.linspace(0, len(every), 65).round()[1:]].astype(int)) - 1  # [n_w]
    per_step = {c: step_madds(every, cached=c, **shape) for c in (True, False)}
    timing = step_times(config.timings)
    prompts = story_prompts(model.vocab, grid.speculative_prompts, grid.speculative_prompt_tokens,
                            [grid.seed, 20])
    return with_facts(
        n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, n_ctx=n_ctx, n_vocab=n_vocab,
        n_params=model.n_params, tokens=tuple(model.vocab[i] for i in run.ids), n_prompt=len(prompt),
        logits_cached=run.logits, max_abs_diff=diff, max_abs_diff_f64=diff64,
        max_abs_logit=float(np.abs(run.logits).max()),
        growth_k=growth_k, growth_v=growth_v, written_at=run.written_at[:n_rows],
        work_steps=every[shown], madds_cached=per_step[True][shown],
        madds_uncached=per_step[False][shown], total_cached=per_step[True].cumsum()[shown],
        total_uncached=per_step[False].cumsum()[shown],
        times=timing,
        timed_madds_cached=step_madds(timing.lengths, cached=True, **shape),
        timed_madds_uncached=step_madds(timing.lengths, cached=False, **shape),
        quantised=quantised_cache(prompt, model.params, cfg.n_head, n_ctx, grid.quant_bits, run),
        speculative=speculative(prompts, model, cfg.n_head, draft, draft.config.n_head,
                                grid.speculative_new_tokens, grid.draft_lengths),
        ledger=ledger_memory(config.models, grid),
        roofline=roofline(config.models, grid),
    )


# ---------------------------------------------------------------------------------------------
# What the prose quotes


@dataclass(frozen=True)
class KVCacheFacts:
    n_layer: int
    n_head: int
    n_embd: int
    d_head: int
    n_ctx: int
    n_vocab: int
    n_params: int
    n_prompt: int
    n_generated: int
    prompt: tuple[str, ...]  # tokens
    continuation: tuple[str, ...]
    growth_steps: int
    growth_dims: int  # dimensions of each cached row the growth chart shows
    max_diff: float  # largest logit difference, cached vs full pass, float32
    max_diff_f64: float
    max_logit: float
    work_length: int
    step_cached: int  # multiply-adds of the last step shown
    step_uncached: int
    step_ratio: float
    total_cached: int
    total_uncached: int
    total_ratio: float
    first_step: int
    measured_on: str
    time_short: int
    time_long: int
    ms_cached_short: float
    ms_uncached_short: float
    ms_cached_long: float
    ms_uncached_long: float
    speedup_long: float
    cached_growth: float
    uncached_growth: float
    madds_ratio_long: float
    # the ledger's caches (bf16)
    n_models: int
    tiny_token_bytes: int
    tiny_context_kib: float
    mha_name: str  # the multi-head model with the largest cache per token
    mha_token_kib: float
    mha_context: int
    mha_context_gib: float
    gqa_name: str  # the grouped-query model with the longest context
    gqa_heads: int
    gqa_kv_heads: int
    gqa_token_kib: float
    gqa_mha_token_kib: float  # if every query head kept its own K and V
    gqa_context: int
    gqa_context_gib: float
    mqa_name: str
    mqa_heads: int
    mqa_token_kib: float
    sliding_name: str
    sliding_window: int
    sliding_context: int
    sliding_context_mib: float
    sliding_uncapped_mib: float
    mla_name: str
    mla_kv_rank: int
    mla_rope_dim: int
    mla_layers: int
    mla_heads: int
    mla_token_kib: float
    mla_mha_token_kib: float  # 128 heads caching full keys (nope + rope) and values
    mla_context: int
    mla_context_gib: float
    largest_name: str  # the largest cache at its own context
    largest_gib: float
    largest_weights_gib: float  # its weights in bf16
    # what fits: the example model on the example GPU
    fit_name: str
    fit_gb: int
    fit_precision: str
    fit_weights_gb: float
    fit_tokens: int
    fit_sequences: int
    fit_context: int
    fit_short_tokens: int  # the roofline's sequence length
    fit_short_sequences: int
    fit_small_precision: str  # the smallest precision of the grid
    fit_small_tokens: int
    # the roofline
    gpu: str
    bandwidth_tb_s: float
    tflop_s: float
    gpu_gb: int
    ridge: float  # FLOP per byte where memory and compute take the same time
    roof_name: str
    roof_tokens: int
    roof_weights_gb: float
    roof_b1_intensity: float
    roof_b1_memory_bound: bool
    roof_b1_tokens_s: float
    roof_b1_ms: float
    roof_big_batch: int  # the largest batch that fits the GPU
    roof_big_tokens_s: float
    roof_big_intensity: float
    roof_big_memory_bound: bool
    roof_speedup: float  # tokens/s at the big batch over batch 1
    roof_models: tuple[str, ...]
    # the cache in fewer bits
    quant_bits_high: int
    quant_bits_low: int
    quant_error_high: float
    quant_error_low: float
    quant_changed_high: int
    quant_changed_low: int
    quant_first_change_low: int
    quant_flipped_high: int
    quant_flipped_low: int
    quant_generated: int
    # speculative decoding
    draft_name: str
    draft_params: int
    spec_prompts: int
    spec_new: int
    spec_tokens: int
    spec_alpha: float
    spec_identical: bool
    spec_best_gamma: int
    spec_best_per_pass: float
    spec_best_expected: float
    spec_best_acceptance: float
    spec_best_passes: int
    spec_best_draft_passes: int
    spec_plain_passes: int
    spec_below_expected: bool  # at the best draft length, measured tokens per pass < expected
    spec_cost_ratio: float  # draft parameters / target parameters: a draft pass's cost if both read all weights
    spec_time_gamma: int  # the draft length that saves the most time at that cost
    spec_time_gain: float  # plain passes / (target passes + ratio x draft passes)
    spec_first_gamma: int
    spec_first_per_pass: float
    spec_first_expected: float


GIB, MIB = 2 ** 30, 2 ** 20
TINY = "tiny model (this site)"


def first_of(led: Ledger, kind: str) -> int:
    """Index of the first ledger model with the attention kind; the prose needs one of each."""
    if kind not in led.attention:
        raise ValueError(f"the KV cache chapter needs a model with attention {kind!r} in the ledger")
    return led.attention.index(kind)


def with_facts(**fields) -> KVCacheResults:
    """KVCacheResults with the facts its prose quotes."""
    r = KVCacheResults(**fields, facts=None)
    t, led, roof, q, sp = r.times, r.ledger, r.roofline, r.quantised, r.speculative
    kinds = {k: [i for i, a in enumerate(led.attention) if a == k] for k in set(led.attention)}
    mha = max(kinds.get("mha", [first_of(led, "mha")]), key=lambda i: led.kv_per_token[i])
    gqa = max(kinds.get("gqa", [first_of(led, "gqa")]), key=lambda i: (led.context[i], led.kv_per_token[i]))
    mqa, sliding, mla = first_of(led, "mqa"), first_of(led, "sliding"), first_of(led, "mla")
    largest = int(np.argmax(led.kv_at_context))
    fit = led.names.index(led.example)
    gpu = list(led.gpus_gb).index(led.example_gb)
    small = int(np.argmin([ledger.BYTES_PER_VALUE[p] for p in led.precisions]))
    bf16 = led.precisions.index("bf16") if "bf16" in led.precisions else 0
    roof_i = roof.names.index(led.example)
    fitting = np.flatnonzero(roof.fits[roof_i])
    big = int(fitting[-1]) if len(fitting) else 0
    hi, lo = int(np.argmax(q.bits)), int(np.argmin(q.bits))
    best = int(np.argmax(sp.tokens_per_pass))
    cost = sp.draft_params / r.n_params
    gain = sp.plain_passes / (sp.target_passes + cost * sp.draft_passes)  # [n_g]
    fastest = int(np.argmax(gain))
    facts = KVCacheFacts(
        n_layer=r.n_layer, n_head=r.n_head, n_embd=r.n_embd, d_head=r.n_embd // r.n_head,
        n_ctx=r.n_ctx, n_vocab=r.n_vocab, n_params=r.n_params, n_prompt=r.n_prompt,
        n_generated=len(r.tokens) - r.n_prompt, prompt=r.tokens[:r.n_prompt],
        continuation=r.tokens[r.n_prompt:], growth_steps=int(r.written_at.max()),
        growth_dims=int(r.growth_k.shape[1]),
        max_diff=float(r.max_abs_diff.max()), max_diff_f64=r.max_abs_diff_f64,
        max_logit=r.max_abs_logit, work_length=int(r.work_steps[-1]),
        step_cached=int(r.madds_cached[-1]), step_uncached=int(r.madds_uncached[-1]),
        step_ratio=float(r.madds_uncached[-1] / r.madds_cached[-1]),
        total_cached=int(r.total_cached[-1]), total_uncached=int(r.total_uncached[-1]),
        total_ratio=float(r.total_uncached[-1] / r.total_cached[-1]),
        first_step=int(r.madds_cached[0]), measured_on=t.measured_on,
        time_short=int(t.lengths[0]), time_long=int(t.lengths[-1]),
        ms_cached_short=1e3 * float(t.seconds_cached[0]),
        ms_uncached_short=1e3 * float(t.seconds_uncached[0]),
        ms_cached_long=1e3 * float(t.seconds_cached[-1]),
        ms_uncached_long=1e3 * float(t.seconds_uncached[-1]),
        speedup_long=float(t.seconds_uncached[-1] / t.seconds_cached[-1]),
        cached_growth=float(t.seconds_cached[-1] / t.seconds_cached[0]),
        uncached_growth=float(t.seconds_uncached[-1] / t.seconds_uncached[0]),
        madds_ratio_long=float(r.timed_madds_uncached[-1] / r.timed_madds_cached[-1]),
        n_models=len(led.names),
        tiny_token_bytes=2 * 2 * r.n_layer * r.n_embd,
        tiny_context_kib=2 * 2 * r.n_layer * r.n_embd * r.n_ctx / 1024,
        mha_name=led.names[mha], mha_token_kib=led.kv_per_token[mha] / 1024,
        mha_context=int(led.context[mha]), mha_context_gib=led.kv_at_context[mha] / GIB,
        gqa_name=led.names[gqa], gqa_heads=int(led.n_head[gqa]), gqa_kv_heads=int(led.n_kv_head[gqa]),
        gqa_token_kib=led.kv_per_token[gqa] / 1024,
        gqa_mha_token_kib=led.mha_kv_per_token[gqa] / 1024,
        gqa_context=int(led.context[gqa]), gqa_context_gib=led.kv_at_context[gqa] / GIB,
        mqa_name=led.names[mqa], mqa_heads=int(led.n_head[mqa]), mqa_token_kib=led.kv_per_token[mqa] / 1024,
        sliding_name=led.names[sliding], sliding_window=int(led.window[sliding]),
        sliding_context=int(led.context[sliding]), sliding_context_mib=led.kv_at_context[sliding] / MIB,
        sliding_uncapped_mib=led.kv_per_token[sliding] * led.context[sliding] / MIB,
        mla_name=led.names[mla], mla_kv_rank=int(led.kv_rank[mla]), mla_rope_dim=int(led.rope_dim[mla]),
        mla_layers=int(led.n_layer[mla]), mla_heads=int(led.n_head[mla]),
        mla_token_kib=led.kv_per_token[mla] / 1024, mla_mha_token_kib=led.mha_kv_per_token[mla] / 1024,
        mla_context=int(led.context[mla]), mla_context_gib=led.kv_at_context[mla] / GIB,
        largest_name=led.names[largest], largest_gib=led.kv_at_context[largest] / GIB,
        largest_weights_gib=led.weights[largest, bf16] / GIB,
        fit_name=led.names[fit], fit_gb=int(led.gpus_gb[gpu]), fit_precision=led.precisions[bf16],
        fit_weights_gb=led.weights[fit, bf16] / 1e9, fit_tokens=int(led.fit_tokens[fit, gpu, bf16]),
        fit_sequences=int(led.fit_sequences[fit, gpu, bf16]), fit_context=int(led.context[fit]),
        fit_short_tokens=int(roof.tokens[roof_i]),
        fit_short_sequences=int(led.fit_tokens[fit, gpu, bf16] // roof.tokens[roof_i]),
        fit_small_precision=led.precisions[small], fit_small_tokens=int(led.fit_tokens[fit, gpu, small]),
        gpu=roof.gpu, bandwidth_tb_s=roof.bandwidth / 1e12, tflop_s=roof.flops / 1e12,
        gpu_gb=int(roof.memory / 1e9), ridge=roof.flops / roof.bandwidth,
        roof_name=roof.names[roof_i], roof_tokens=int(roof.tokens[roof_i]),
        roof_weights_gb=led.weights[fit, bf16] / 1e9,
        roof_b1_intensity=float(roof.intensity[roof_i, 0]),
        roof_b1_memory_bound=bool(roof.memory_bound[roof_i, 0]),
        roof_b1_tokens_s=float(roof.tokens_per_s[roof_i, 0]),
        roof_b1_ms=1e3 / float(roof.tokens_per_s[roof_i, 0]),
        roof_big_batch=int(roof.batches[big]), roof_big_tokens_s=float(roof.tokens_per_s[roof_i, big]),
        roof_big_intensity=float(roof.intensity[roof_i, big]),
        roof_big_memory_bound=bool(roof.memory_bound[roof_i, big]),
        roof_speedup=float(roof.tokens_per_s[roof_i, big] / roof.tokens_per_s[roof_i, 0]),
        roof_models=roof.names,
        quant_bits_high=int(q.bits[hi]), quant_bits_low=int(q.bits[lo]),
        quant_error_high=float(q.max_logit_error[hi]), quant_error_low=float(q.max_logit_error[lo]),
        quant_changed_high=int(q.changed_tokens[hi]), quant_changed_low=int(q.changed_tokens[lo]),
        quant_first_change_low=int(q.first_change[lo]),
        quant_flipped_high=int(q.flipped_top1[hi]), quant_flipped_low=int(q.flipped_top1[lo]),
        quant_generated=q.n_generated,
        draft_name=model_name(sp.draft_layers, sp.draft_heads), draft_params=sp.draft_params,
        spec_prompts=sp.n_prompts, spec_new=sp.n_generated // sp.n_prompts, spec_tokens=sp.n_generated,
        spec_alpha=sp.alpha, spec_identical=sp.identical,
        spec_best_gamma=int(sp.draft_lengths[best]), spec_best_per_pass=float(sp.tokens_per_pass[best]),
        spec_best_expected=float(sp.expected_per_pass[best]),
        spec_best_acceptance=float(sp.acceptance[best]),
        spec_best_passes=int(sp.target_passes[best]), spec_best_draft_passes=int(sp.draft_passes[best]),
        spec_plain_passes=sp.plain_passes,
        spec_below_expected=bool(sp.tokens_per_pass[best] < sp.expected_per_pass[best]),
        spec_cost_ratio=cost, spec_time_gamma=int(sp.draft_lengths[fastest]),
        spec_time_gain=float(gain[fastest]),
        spec_first_gamma=int(sp.draft_lengths[0]), spec_first_per_pass=float(sp.tokens_per_pass[0]),
        spec_first_expected=float(sp.expected_per_pass[0]),
    )
    return dataclasses.replace(r, facts=facts)
