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
from dataclasses import asdict, dataclass

import numpy as np

from generator.sims.attention_cost import machine_description, run_single_threaded, seconds_per_call
from generator.sims.gpt import attention, gelu, gpt, init_params, layer_norm, linear, merge_heads, split_heads
from generator.sims.family import Memo, WithFamily, load_member, prompt_ids, uncached
from generator.sims.train import TrainConfig, TrainedModel

# Bytes one cached number takes in each precision a KV cache is commonly stored in.
BYTES_PER_VALUE = {"fp32": 4, "bf16": 2, "fp16": 2, "int8": 1}

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


def cached_block(x, p, n_head, k_cache, v_cache, n_past):  # [n_batch, n_new, n_embd], params, int, [n_batch, n_head, n_ctx, d_head] x2, int -> [n_batch, n_new, n_embd]
    """One pre-LN block for the new positions: their k, v join the cache, their q reads all of it."""
    n_new = x.shape[1]
    end = n_past + n_new
    qkv = linear(layer_norm(x, **p["ln_1"]), **p["attn"]["c_attn"])  # [n_batch, n_new, 3 n_embd]
    q, k, v = (split_heads(m, n_head) for m in np.split(qkv, 3, axis=-1))  # [n_batch, n_head, n_new, d_head]
    k_cache[:, :, n_past:end] = k  # rows before n_past are reused as they are
    v_cache[:, :, n_past:end] = v
    heads, _, _ = attention(q, k_cache[:, :, :end], v_cache[:, :, :end],
                            causal_mask_after(n_past, n_new, x.dtype))  # [n_batch, n_head, n_new, d_head]
    x = x + linear(merge_heads(heads), **p["attn"]["c_proj"])  # [n_batch, n_new, n_embd]
    return x + mlp(layer_norm(x, **p["ln_2"]), p)


def gpt_step(ids, params, n_head, cache: KVCache, n_past):  # [n_batch, n_new] int, params, int, KVCache, int -> [n_batch, n_new, n_vocab]
    """Logits for new tokens at positions n_past.., reading the cache and writing their rows."""
    n_new = ids.shape[1]
    x = params["wte"][ids] + params["wpe"][n_past:n_past + n_new]  # [n_batch, n_new, n_embd]
    for layer, p in enumerate(params["blocks"]):
        x = cached_block(x, p, n_head, cache.k[layer], cache.v[layer], n_past)
    return layer_norm(x, **params["ln_f"]) @ params["wte"].T  # [n_batch, n_new, n_vocab]


@dataclass(frozen=True)
class Decoding:
    ids: np.ndarray  # [n_seq] int  the prompt, then the greedy continuation
    logits: np.ndarray  # [n_seq, n_vocab]  with the cache: the prefill's, then each step's
    cache: KVCache  # after the last step
    written_at: np.ndarray  # [n_seq] int  the step that wrote each position's k, v (1 = prefill)


def greedy_decode(prompt_ids, params, n_head, n_seq) -> Decoding:  # [n_prompt] int, params, int, int -> Decoding
    """Prefill the prompt in one step, then append the argmax token one step at a time."""
    cache = empty_cache(params, n_head)
    n_prompt = len(prompt_ids)
    ids = np.zeros(n_seq, dtype=np.int64)
    ids[:n_prompt] = prompt_ids
    logits = np.zeros((n_seq, params["wte"].shape[0]), params["wte"].dtype)  # [n_seq, n_vocab]
    logits[:n_prompt] = gpt_step(ids[None, :n_prompt], params, n_head, cache, 0)[0]
    for t in range(n_prompt, n_seq):
        ids[t] = np.argmax(logits[t - 1])
        logits[t] = gpt_step(ids[None, t:t + 1], params, n_head, cache, t)[0, 0]
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


def kv_cache_bytes(n_layer, n_kv_head, d_head, seq_len, bytes_per_value, n_batch=1):  # [...] -> [...] int
    """2 (K and V) x n_layer x n_kv_head x seq_len x d_head x bytes per value x batch.

    Example: GPT-2 small, 1024 tokens in fp16: kv_cache_bytes(12, 12, 64, 1024, 2) -> 37748736
    """
    return (2 * np.asarray(n_layer, dtype=np.int64) * n_kv_head * np.asarray(seq_len, dtype=np.int64)
            * d_head * bytes_per_value * np.asarray(n_batch, dtype=np.int64))


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


def step_times(cfg: TimingConfig) -> StepTimes:
    """step_seconds() in a fresh Python process whose BLAS uses a single thread."""
    code = ("import json, sys; from generator.sims.kvcache import TimingConfig, step_seconds; "
            "d = json.loads(sys.argv[1]); d['lengths'] = tuple(d['lengths']); "
            "print(json.dumps(step_seconds(TimingConfig(**d))))")
    cached, uncached = run_single_threaded(code, asdict(cfg), "timing decoding steps")
    return StepTimes(np.array(cfg.lengths), np.array(cached), np.array(uncached), machine_description())


# ---------------------------------------------------------------------------------------------
# The chapter's results


@dataclass(frozen=True)
class Memory:
    labels: tuple[str, ...]  # [n_model]  the grid's published configurations, then the tiny model
    n_layer: np.ndarray  # [n_model]
    n_head: np.ndarray  # [n_model]  query heads
    n_kv_head: np.ndarray  # [n_model]  key/value heads (fewer than n_head: grouped-query attention)
    d_head: np.ndarray  # [n_model]
    seq_lengths: np.ndarray  # [n_len]
    precisions: tuple[str, ...]  # [n_prec]
    bytes_per_value: np.ndarray  # [n_prec]
    batch_sizes: np.ndarray  # [n_batch]
    bytes: np.ndarray  # [n_model, n_prec, n_batch, n_len]
    bytes_per_token: np.ndarray  # [n_model, n_prec]  one sequence
    mha_bytes_per_token: np.ndarray  # [n_model, n_prec]  if every query head kept its own K and V


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
    growth_k: np.ndarray  # [n_rows, n_embd]  layer 1's cached keys (heads side by side)
    growth_v: np.ndarray  # [n_rows, n_embd]  and values
    written_at: np.ndarray  # [n_rows]  the step that wrote each row (1 = the prefill)
    work_steps: np.ndarray  # [n_w]  sequence lengths at which work is shown
    madds_cached: np.ndarray  # [n_w]  multiply-adds for the token at that length, with the cache
    madds_uncached: np.ndarray  # [n_w]  without
    total_cached: np.ndarray  # [n_w]  all steps up to that length, with the cache
    total_uncached: np.ndarray  # [n_w]
    times: StepTimes
    timed_madds_cached: np.ndarray  # [n_t]
    timed_madds_uncached: np.ndarray  # [n_t]
    memory: Memory
    facts: KVCacheFacts


def cast(params, dtype):  # params, dtype -> params
    """Every weight converted to dtype."""
    if isinstance(params, dict):
        return {k: cast(v, dtype) for k, v in params.items()}
    if isinstance(params, list):
        return [cast(v, dtype) for v in params]
    return params.astype(dtype)


def simulate(config: WithFamily, memo: Memo = uncached) -> KVCacheResults:
    """Decode with the cache, check it against full passes, count, time and size it."""
    grid, family = config.grid, config.family
    model: TrainedModel = load_member(family, grid.model_layers, grid.model_heads, memo)
    prompt = np.array(prompt_ids(grid.prompt, model.vocab))  # [n_prompt]
    cfg = model.config
    n_ctx, n_vocab = cfg.data.n_ctx, len(model.vocab)

    run = greedy_decode(prompt, model.params, cfg.n_head, n_ctx)
    diff = np.abs(run.logits - uncached_logits(run.ids, model.params, cfg.n_head)).max(axis=-1)
    params64 = cast(model.params, np.float64)
    run64 = greedy_decode(prompt, params64, cfg.n_head, n_ctx)
    diff64 = float(np.abs(run64.logits - uncached_logits(run64.ids, params64, cfg.n_head)).max())

    n_rows = len(prompt) + grid.growth_steps - 1
    growth_k = merge_heads(run.cache.k[0, :, :, :n_rows])[0]  # [n_rows, n_embd]
    growth_v = merge_heads(run.cache.v[0, :, :, :n_rows])[0]

    shape = dict(n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_vocab=n_vocab)
    every = np.arange(1, max(grid.timed_lengths) + 1)  # [n_steps]
    shown = np.unique(np.r_[1, np.linspace(0, len(every), 65).round()[1:]].astype(int)) - 1  # [n_w]
    per_step = {c: step_madds(every, cached=c, **shape) for c in (True, False)}
    timing = memo(step_times, TimingConfig(cfg.n_layer, cfg.n_head, cfg.n_embd, n_vocab,
                                           tuple(grid.timed_lengths), grid.seed))
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
        memory=memory(grid, cfg),
    )


def memory(grid, tiny: TrainConfig) -> Memory:  # KVCacheGrid, TrainConfig -> Memory
    """Cache sizes of the grid's configurations and the tiny model, over lengths, precisions, batches."""
    configs = [*grid.models, (TINY, tiny.n_layer, tiny.n_head, tiny.n_head,
                              tiny.n_embd // tiny.n_head)]
    n_layer, n_head, n_kv_head, d_head = (np.array([c[i] for c in configs]) for i in range(1, 5))  # [n_model]
    per_value = np.array([BYTES_PER_VALUE[p] for p in grid.precisions])  # [n_prec]
    batches, lengths = np.array(grid.batch_sizes), np.array(grid.seq_lengths)
    m, p, b, n = np.ix_(np.arange(len(configs)), np.arange(len(per_value)), np.arange(len(batches)),
                        np.arange(len(lengths)))
    return Memory(
        labels=tuple(c[0] for c in configs), n_layer=n_layer, n_head=n_head, n_kv_head=n_kv_head,
        d_head=d_head, seq_lengths=lengths, precisions=tuple(grid.precisions),
        bytes_per_value=per_value, batch_sizes=batches,
        bytes=kv_cache_bytes(n_layer[m], n_kv_head[m], d_head[m], lengths[n], per_value[p], batches[b]),
        bytes_per_token=kv_cache_bytes(n_layer[:, None], n_kv_head[:, None], d_head[:, None], 1, per_value),
        mha_bytes_per_token=kv_cache_bytes(n_layer[:, None], n_head[:, None], d_head[:, None], 1, per_value),
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
    gpt2_label: str
    shortest: int
    gpt2_shortest_bytes: int
    gpt2_shortest_mib: float
    gpt2_layers: int
    gpt2_kv_heads: int
    gpt2_d_head: int
    fp16_bytes: int
    gpt2_token_kib: float
    llama7_label: str
    llama7_token_kib: float
    llama70_label: str
    llama70_token_kib: float
    llama70_layers: int
    llama70_heads: int
    llama70_kv_heads: int
    llama70_mha_token_kib: float
    gqa_factor: float
    llama70_longest_gib: float
    llama7_longest_gib: float
    longest: int
    batch_small: int
    batch_big: int
    tiny_token_bytes: int
    tiny_context_kib: float


GIB = 2 ** 30
TINY = "tiny model (this site)"


def with_facts(**fields) -> KVCacheResults:
    """KVCacheResults with the facts its prose quotes."""
    r = KVCacheResults(**fields, facts=None)
    m, t = r.memory, r.times
    label = {name: i for i, name in enumerate(m.labels)}
    fp16 = m.precisions.index("fp16") if "fp16" in m.precisions else 0
    gpt2, llama7, llama70 = 0, min(1, len(m.labels) - 1), min(2, len(m.labels) - 1)
    tiny = label[TINY]

    def per_token(i, p=fp16):
        return int(m.bytes_per_token[i, p])

    facts = KVCacheFacts(
        n_layer=r.n_layer, n_head=r.n_head, n_embd=r.n_embd, d_head=r.n_embd // r.n_head,
        n_ctx=r.n_ctx, n_vocab=r.n_vocab, n_params=r.n_params, n_prompt=r.n_prompt,
        n_generated=len(r.tokens) - r.n_prompt, prompt=r.tokens[:r.n_prompt],
        continuation=r.tokens[r.n_prompt:], growth_steps=int(r.written_at.max()),
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
        gpt2_label=m.labels[gpt2], shortest=int(m.seq_lengths[0]),
        gpt2_shortest_bytes=int(m.bytes[gpt2, fp16, 0, 0]),
        gpt2_shortest_mib=float(m.bytes[gpt2, fp16, 0, 0] / 2 ** 20),
        gpt2_layers=int(m.n_layer[gpt2]), gpt2_kv_heads=int(m.n_kv_head[gpt2]),
        gpt2_d_head=int(m.d_head[gpt2]), fp16_bytes=int(m.bytes_per_value[fp16]),
        gpt2_token_kib=per_token(gpt2) / 1024,
        llama7_label=m.labels[llama7], llama7_token_kib=per_token(llama7) / 1024,
        llama70_label=m.labels[llama70], llama70_token_kib=per_token(llama70) / 1024,
        llama70_layers=int(m.n_layer[llama70]), llama70_heads=int(m.n_head[llama70]),
        llama70_kv_heads=int(m.n_kv_head[llama70]),
        llama70_mha_token_kib=int(m.mha_bytes_per_token[llama70, fp16]) / 1024,
        gqa_factor=float(m.n_head[llama70] / m.n_kv_head[llama70]),
        llama70_longest_gib=float(m.bytes[llama70, fp16, 0, -1] / GIB),
        llama7_longest_gib=float(m.bytes[llama7, fp16, 0, -1] / GIB),
        longest=int(m.seq_lengths[-1]),
        batch_small=int(m.batch_sizes[0]), batch_big=int(m.batch_sizes[min(1, len(m.batch_sizes) - 1)]),
        tiny_token_bytes=per_token(tiny), tiny_context_kib=per_token(tiny) * r.n_ctx / 1024,
    )
    return dataclasses.replace(r, facts=facts)
