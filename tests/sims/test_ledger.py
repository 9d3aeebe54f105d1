"""The ledger's counts against published totals, hand-computed KV sizes and brute-force sums."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from generator import content_files
from generator.sims import ledger
from generator.sims.gpt import init_params, n_params as array_params
from generator.validation import GridError

CONTENT = Path(__file__).resolve().parents[2] / "content"


@dataclasses.dataclass(frozen=True)
class Grid:
    models: str = "models.json"


@dataclasses.dataclass(frozen=True)
class Grids:
    kvcache: Grid = Grid()
    pretraining: None = None


def load(path: str = "models.json") -> dict[str, ledger.Model]:
    inputs = content_files.ledger_inputs(Grids(kvcache=Grid(path)), "kvcache", CONTENT)
    return {m.name: m for m in inputs.models}


MODELS = load()

# Exact totals of the released checkpoints (GPT-2 with tied embeddings and learned positions).
PUBLISHED = {
    "GPT-2 small": 124_439_808, "GPT-2 XL": 1_557_611_200, "Llama 2 7B": 6_738_415_616,
    "Llama 2 70B": 68_976_648_192, "Llama 3.1 8B": 8_030_261_248, "Llama 3.1 70B": 70_553_706_496,
    "Mistral 7B": 7_241_732_096, "Mixtral 8x7B": 46_702_792_704,
    # DeepSeek-V3's main model (61 layers, embeddings, head): the report's 671B. The checkpoint's
    # 685B adds the multi-token-prediction module, which the ledger does not count.
    "DeepSeek-V3": 671_026_419_200,
}


@pytest.mark.parametrize("name,total", PUBLISHED.items())
def test_counts_equal_the_published_totals(name, total):
    assert ledger.n_params(MODELS[name]) == total
    assert MODELS[name].published_params == total


def test_falcon_count_from_its_config():
    # No exact published total is asserted: the model card says 7B. The count by hand from the
    # config: per layer one LayerNorm (2 x 4544), fused QKV 4544 x (71 + 2) x 64, output
    # 4544 x 4544, MLP 2 x 4544 x 18176; tied embedding 65024 x 4544; final LayerNorm.
    d = 4544
    per_layer = 2 * d + d * 73 * 64 + d * d + 2 * d * 4 * d
    assert ledger.n_params(MODELS["Falcon-7B"]) == 32 * per_layer + 65024 * d + 2 * d == 6_921_720_704
    assert MODELS["Falcon-7B"].published_params is None


def test_active_parameters_of_the_mixtures():
    mixtral = MODELS["Mixtral 8x7B"]
    expert = 3 * 4096 * 14336
    assert ledger.n_active_params(mixtral) == ledger.n_params(mixtral) - 32 * 6 * expert
    assert ledger.n_active_params(mixtral) == 12_879_925_248  # the paper's "13B active"
    v3 = MODELS["DeepSeek-V3"]
    assert ledger.n_active_params(v3) == ledger.n_params(v3) - 58 * 248 * 3 * 7168 * 2048
    assert 37e9 < ledger.n_active_params(v3) < 38e9  # the report's "37B activated"
    dense = MODELS["Llama 3.1 8B"]
    assert ledger.n_active_params(dense) == ledger.n_params(dense)


def test_gpt2_count_equals_the_arrays_of_the_site_gpt():
    rng = np.random.default_rng(0)
    params = init_params(37, 16, 24, 3, rng)
    tiny = dataclasses.replace(MODELS["GPT-2 small"], name="tiny", vocab=37, context=16, d_model=24,
                               n_layer=3, n_head=4, n_kv_head=4, d_head=6, d_ff=96)
    assert ledger.n_params(tiny) == array_params(params)
    parts = ledger.params_by_part(tiny)
    assert parts["embeddings"] == params["wte"].size + params["wpe"].size
    assert parts["unembedding"] == 2 * 24  # tied: only the final LayerNorm is the head's own
    assert parts["norms"] == 3 * 2 * 2 * 24


# Bytes per token in bf16, by hand: 2 (K, V) x layers x KV heads x d_head x 2 bytes; MLA caches
# (kv_rank + rope_dim) x layers x 2 bytes.
KV_BF16 = {
    "GPT-2 small": 2 * 12 * 12 * 64 * 2, "GPT-2 XL": 2 * 48 * 25 * 64 * 2,
    "Falcon-7B": 2 * 32 * 1 * 64 * 2, "Llama 2 7B": 2 * 32 * 32 * 128 * 2,
    "Llama 2 70B": 2 * 80 * 8 * 128 * 2, "Llama 3.1 8B": 2 * 32 * 8 * 128 * 2,
    "Llama 3.1 70B": 2 * 80 * 8 * 128 * 2, "Mistral 7B": 2 * 32 * 8 * 128 * 2,
    "Mixtral 8x7B": 2 * 32 * 8 * 128 * 2, "DeepSeek-V3": (512 + 64) * 61 * 2,
}


@pytest.mark.parametrize("name,per_token", KV_BF16.items())
def test_kv_bytes_per_token_by_hand(name, per_token):
    m = MODELS[name]
    assert ledger.kv_bytes_per_token(m, "bf16") == per_token
    assert ledger.kv_bytes_per_token(m, "int8") == per_token / 2
    assert ledger.kv_bytes_per_token(m, "int4") == per_token / 4


def test_hand_values_of_the_best_known_cases():
    assert ledger.kv_bytes_per_token(MODELS["Llama 2 7B"]) == 512 * 1024
    assert ledger.kv_bytes_per_token(MODELS["Llama 3.1 8B"]) == 128 * 1024
    assert ledger.kv_bytes_per_token(MODELS["DeepSeek-V3"]) == 70_272
    assert ledger.kv_bytes(MODELS["Llama 2 7B"], 4096, "fp16") == 2 * 2 ** 30


def test_sliding_window_caps_the_cache():
    m = MODELS["Mistral 7B"]
    assert ledger.kv_bytes(m, 4096) == ledger.kv_bytes(m, 8192) == 4096 * 131072
    assert ledger.kv_bytes(m, 1000, n_batch=3) == 3 * 1000 * 131072
    assert ledger.kv_bytes(MODELS["Llama 3.1 8B"], 8192) == 2 * ledger.kv_bytes(MODELS["Llama 3.1 8B"], 4096)


def test_decode_flops_are_two_per_weight_plus_attention():
    m = MODELS["GPT-2 small"]
    matmul = 12 * 12 * 768 ** 2 + 50257 * 768  # block matrices and the tied unembedding
    assert ledger.matmul_params(m) == matmul
    assert ledger.decode_flops(m, 99) == 2 * matmul + 100 * 2 * 12 * 12 * 2 * 64
    v3 = MODELS["DeepSeek-V3"]
    assert (ledger.decode_flops(v3, 9) - ledger.decode_flops(v3, 8)
            == 2 * 61 * 128 * (128 + 64 + 128))


@pytest.mark.parametrize("name", ["GPT-2 small", "Mistral 7B", "DeepSeek-V3"])
def test_prefill_is_the_sum_of_decode_steps(name):
    m = dataclasses.replace(MODELS[name], window=5) if name == "Mistral 7B" else MODELS[name]
    for n in (1, 4, 5, 13):
        assert ledger.prefill_flops(m, n) == sum(ledger.decode_flops(m, t) for t in range(n))


def test_decode_reads_the_used_weights_and_the_cache():
    m = MODELS["Llama 3.1 8B"]
    weights = ledger.n_params(m) - 128256 * 4096  # the embedding table is looked up, not read whole
    assert ledger.decode_bytes(m, 1023, "bf16") == 2 * weights + 1024 * 131072
    assert ledger.decode_bytes(m, 1023, "bf16", 4) == 2 * weights + 4 * 1024 * 131072
    tied = MODELS["GPT-2 small"]
    assert ledger.read_params(tied) == ledger.n_params(tied) - 1024 * 768  # wte is the unembedding


def write(tmp_path, text):
    (tmp_path / "m.json").write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("change,message", [
    ({"n_kv_head": 5}, "n_kv_head"),
    ({"attention": "mqa"}, "attention"),
    ({"family": "mla"}, "latent"),
    ({"vocab": 0}, "vocab"),
    ({"tied": "yes"}, "tied"),
    ({"colour": 1}, "unknown key"),
    ({"window": 10}, "window"),
])
def test_bad_ledger_entries_name_the_field(tmp_path, change, message):
    import json
    entry = {**json.loads((CONTENT / "models.json").read_text())[4], **change}
    write(tmp_path, json.dumps([entry]))
    with pytest.raises(GridError, match=message):
        content_files.ledger_inputs(Grids(kvcache=Grid("m.json")), "kvcache", tmp_path)
