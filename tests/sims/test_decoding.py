"""Decoding tricks of the KV cache chapter: the quantised cache, speculative decoding against plain
greedy decoding, and the published models' memory, fit and roofline against the ledger."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from generator import content_files
from generator.grids import KVCacheGrid
from generator.sims import kvcache as kv
from generator.sims import ledger
from generator.sims.gpt import init_params

CONTENT = Path(__file__).resolve().parents[2] / "content"
N_VOCAB, N_CTX = 29, 24


def params(n_embd, n_layer, seed):
    return init_params(N_VOCAB, N_CTX, n_embd, n_layer, np.random.default_rng(seed), np.float64)


# ---------------------------------------------------------------------------------------------
# Quantised cache


def test_quantise_by_hand():
    assert np.allclose(kv.quantise(np.array([0.5, -1.0, 0.26]), 2), [0.0, -1.0, 0.0])
    x = np.array([[1.0, -0.5, 0.25, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert np.allclose(kv.quantise(x, 8), np.round(x * 127) / 127)
    assert np.array_equal(kv.quantise(x, 8)[1], x[1])  # an all-zero vector stays zero


@pytest.mark.parametrize("bits", [4, 8])
def test_quantise_error_is_at_most_half_a_step(bits):
    x = np.random.default_rng(1).standard_normal((3, 5, 16))
    step = np.abs(x).max(-1, keepdims=True) / (2 ** (bits - 1) - 1)
    assert np.all(np.abs(kv.quantise(x, bits) - x) <= step / 2 + 1e-12)


def test_a_lossless_store_reproduces_the_float_run():
    p = params(16, 2, 3)
    prompt = np.array([1, 2, 3])
    run = kv.greedy_decode(prompt, p, 4, N_CTX)
    q = kv.quantised_cache(prompt, p, 4, N_CTX, (16, 8), run)
    assert q.n_generated == N_CTX - 3
    assert q.max_logit_error[0] < q.max_logit_error[1]  # 16 bits are closer than 8
    assert np.allclose(kv.teacher_forced_logits(run.ids, p, 4), run.logits, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# Speculative decoding


@pytest.mark.parametrize("gamma", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("seed", [0, 1])
def test_speculative_output_equals_plain_greedy_decoding(gamma, seed):
    target, draft = params(16, 2, seed), params(8, 1, seed + 10)
    prompt = np.array([4, 5])
    plain = kv.greedy_decode(prompt, target, 4, N_CTX).ids
    spec = kv.speculative_decode(prompt, target, 4, draft, 2, N_CTX, gamma)
    assert np.array_equal(spec.ids, plain)
    assert spec.target_passes <= N_CTX - len(prompt)
    assert spec.accepted <= spec.proposed


def test_the_target_as_its_own_draft_accepts_everything():
    target = params(16, 2, 5)
    prompt = np.array([1])
    spec = kv.speculative_decode(prompt, target, 4, target, 4, 1 + 1 + 3 * 4, 3)
    assert spec.accepted == spec.proposed == 9 and spec.target_passes == 4  # 4 tokens per pass (the first reads the prompt)


def test_expected_tokens_per_pass():
    assert kv.expected_tokens_per_pass(0.5, 1) == pytest.approx(1.5)
    assert kv.expected_tokens_per_pass(0.0, 4) == pytest.approx(1.0)
    assert kv.expected_tokens_per_pass(1.0, 4) == pytest.approx(5.0)
    a, g = 0.8, 3
    assert kv.expected_tokens_per_pass(a, g) == pytest.approx(sum(a ** i for i in range(g + 1)))


# ---------------------------------------------------------------------------------------------
# Published models


@dataclass(frozen=True)
class Grids:
    kvcache: KVCacheGrid = KVCacheGrid()
    pretraining: None = None


MODELS = content_files.ledger_inputs(Grids(), "kvcache", CONTENT).models
GRID = KVCacheGrid()


def test_memory_at_the_real_context_and_never_beyond():
    led = kv.ledger_memory(MODELS, GRID)
    for i, m in enumerate(MODELS):
        assert led.kv_at_context[i] == ledger.kv_bytes(m, m.context)
        assert m.context in led.lengths
        past = led.lengths > m.context
        assert np.all(led.kv_at_length[i, past] == 0) and np.all(led.kv_at_length[i, ~past] > 0)
    llama2 = led.names.index("Llama 2 7B")
    assert led.kv_at_context[llama2] == 2 * 2 ** 30  # 4096 tokens, not 131,072


def test_fit_by_hand():
    led = kv.ledger_memory(MODELS, GRID)
    i, g, p = led.names.index("Llama 3.1 8B"), list(led.gpus_gb).index(24), led.precisions.index("bf16")
    free = 24e9 - 2 * 8_030_261_248
    assert led.fit_tokens[i, g, p] == int(free // 131072)
    assert led.fit_sequences[i, g, p] == 0  # not one sequence at 131,072 tokens
    mistral = led.names.index("Mistral 7B")
    assert led.fit_sequences[mistral, g, p] == int((24e9 - 2 * 7_241_732_096) // (4096 * 131072))
    big = led.names.index("DeepSeek-V3")
    assert np.all(led.fit_tokens[big] == 0)  # its weights fit no single GPU of the grid


def test_roofline_batch_one_is_memory_bound():
    r = kv.roofline(MODELS, GRID)
    assert "Llama 2 70B" not in r.names and "Llama 3.1 8B" in r.names  # 141 GB of bf16 weights
    i = r.names.index("Llama 3.1 8B")
    m = next(m for m in MODELS if m.name == "Llama 3.1 8B")
    bytes_1 = ledger.decode_bytes(m, 4095, "bf16", 1)
    assert r.step_bytes[i, 0] == bytes_1
    assert r.tokens_per_s[i, 0] == pytest.approx(3.35e12 / bytes_1)  # bandwidth / bytes per step
    assert r.memory_bound[:, 0].all()
    gain = np.diff(r.tokens_per_s, axis=1)
    assert np.all(gain[r.memory_bound[:, 1:]] > 0)  # batching helps while memory-bound
    assert np.all(gain >= -1e-9 * r.tokens_per_s[:, 1:])  # and once compute-bound it stays at the peak
    compute = ~r.memory_bound
    assert np.allclose(r.tokens_per_s[compute], (r.batches[None, :] * 989e12 / r.step_flops)[compute])
    assert np.all(r.tokens_per_s <= r.batches * 3.35e12 / r.step_bytes * (1 + 1e-12))
