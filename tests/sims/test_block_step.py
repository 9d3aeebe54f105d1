"""The block chapter on the new contract: the step-through recomputed by hand from the weights,
GPT-2's block turned into a Llama-style one by the ledger, and the depth shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from generator import content_files
from generator.grids import BlockGrid, PretrainingGrid, load_grids
from generator.sims import block, ledger
from generator.sims.gpt import gelu, gpt, init_params, layer_norm, softmax
from generator.validation import GridError
from tests.helpers import TINY_FAMILY


@pytest.fixture(scope="module")
def res(shared_memo):
    return block.simulate(CONFIG, shared_memo)


CONTENT = Path(__file__).resolve().parents[2] / "content"
FAMILY = TINY_FAMILY
GRID = BlockGrid(n_layer=2, n_head=2, step_layer=2, step_position=5)


@dataclass(frozen=True)
class Grids:
    block: BlockGrid = GRID
    pretraining: PretrainingGrid = FAMILY


CONFIG = content_files.ledger_inputs(Grids(), "block", CONTENT)


def test_step_through_by_hand():
    rng = np.random.default_rng(3)
    n_head, t = 4, 5
    params = init_params(11, 8, 16, 2, rng, np.float64)
    ids = rng.integers(11, size=(1, 7))
    trace = gpt(ids, params, n_head)
    st = block.step_through(trace.blocks[1], 2, t, "w")
    v = {s.name: s.values for s in st.stages}
    p = params["blocks"][1]
    x = trace.blocks[0].x_mlp[0]  # [n_seq, n_embd]  what enters block 2
    assert np.allclose(v["residual stream in"], x[t])
    h = layer_norm(x, **p["ln_1"])
    assert np.allclose(v["LayerNorm 1"], h[t])
    qkv = h @ p["attn"]["c_attn"]["w"] + p["attn"]["c_attn"]["b"]
    q, k, val = np.split(qkv, 3, axis=-1)
    assert np.allclose(v["query q"], q[t]) and np.allclose(v["key k"], k[t]) and np.allclose(v["value v"], val[t])
    d = 16 // n_head
    scores = np.stack([q[t, i * d:(i + 1) * d] @ k[:t + 1, i * d:(i + 1) * d].T / np.sqrt(d) for i in range(n_head)])
    assert np.allclose(v["scores q\u00b7k/\u221ad"], scores.ravel())
    weights = softmax(scores)
    assert np.allclose(v["attention weights"], weights.ravel())
    heads = np.concatenate([weights[i] @ val[:t + 1, i * d:(i + 1) * d] for i in range(n_head)])
    assert np.allclose(v["heads concatenated"], heads)
    out = heads @ p["attn"]["c_proj"]["w"] + p["attn"]["c_proj"]["b"]
    assert np.allclose(v["output projection"], out)
    mid = x[t] + out
    assert np.allclose(v["residual + attention"], mid)
    fc = layer_norm(mid, **p["ln_2"]) @ p["mlp"]["c_fc"]["w"] + p["mlp"]["c_fc"]["b"]
    assert np.allclose(v["MLP up (4d)"], fc) and np.allclose(v["GELU"], gelu(fc))
    down = gelu(fc) @ p["mlp"]["c_proj"]["w"] + p["mlp"]["c_proj"]["b"]
    assert np.allclose(v["MLP down"], down) and np.allclose(v["residual + MLP"], mid + down)
    assert [s.name for s in st.stages][-1] == "residual + MLP" and len(st.stages) == 15
    assert st.gelu_negative == np.mean(fc < 0)
    cut = block.step_through(trace.blocks[1], 2, t, "w", max_values=10)
    assert all(len(s.values) == min(10, s.size) for s in cut.stages)
    assert cut.stages[11].size == 64 and np.array_equal(cut.stages[11].values, st.stages[11].values[:10])
    assert cut.gelu_negative == st.gelu_negative  # facts read every number, not just the shown ones


def test_step_through_of_the_trained_model_reads_its_sizes(res):
    st = res.step
    assert (st.layer, st.position, st.n_head, st.d_head) == (2, 5, 2, 8)
    by = {s.name: s for s in st.stages}
    assert len(by["MLP up (4d)"].values) == 4 * 16
    assert len(by["attention weights"].values) == 2 * 6  # heads x positions 0..5
    for h in range(2):
        assert by["attention weights"].values[by["attention weights"].heads == h].sum() == pytest.approx(1)


def test_the_tiny_model_in_ledger_terms_has_its_array_count(res):
    assert sum(res.depth.params[0]) == res.n_params


def test_modernising_ends_at_the_published_total(res):
    mod = res.modernising
    assert mod.model == "Llama 3.1 8B"
    assert mod.n_params[-1] == mod.published == 8_030_261_248
    d, L, V = 4096, 32, 128256
    assert mod.n_params[0] == V * d + 131072 * d + L * (12 * d * d + 13 * d) + 2 * d  # GPT-2's formula
    delta = np.diff(mod.n_params)
    assert delta[0] == -(2 * L + 1) * d  # the norms lose their biases
    assert delta[2] == -131072 * d  # no position table
    assert delta[3] == L * d * (3 * 14336 - 2 * 4 * d)
    assert delta[4] == -L * 2 * d * (d - 8 * 128)
    assert delta[5] == V * d
    assert mod.kv_bytes_per_token[0] == 4 * mod.kv_bytes_per_token[-1]


def test_flops_by_part_add_up_to_decode_flops(res):
    for m in CONFIG.models:
        assert sum(block.flops_by_part(m, 99)) == pytest.approx(ledger.decode_flops(m, 99))
    dep = res.depth
    assert dep.names[0] == "this site's model" and dep.names[1:] == tuple(m.name for m in CONFIG.models)
    assert list(dep.tokens[1:]) == [min(4096, m.context) for m in CONFIG.models]


def test_facts_follow_the_results(res):
    f = res.facts
    assert f.mod_matches and f.step_n_stages == 15 and f.step_d_ff == 64
    assert f.layers_min == 12 and f.big_layers == 80
    assert 0 < f.big_unembedding_flop_share < f.small_unembedding_flop_share < 1


@pytest.mark.parametrize("change,field", [({"step_layer": 5}, "step_layer"), ({"step_position": 60}, "step_position")])
def test_bad_step_settings_name_the_field(change, field):
    with pytest.raises(GridError, match=f"grids.block.{field}"):
        load_grids({"block": change})


def test_an_unknown_example_model_names_the_field():
    @dataclass(frozen=True)
    class Bad:
        block: BlockGrid = BlockGrid(example_model="GPT-5")
        pretraining: PretrainingGrid = FAMILY

    with pytest.raises(GridError, match="grids.block.example_model"):
        content_files.ledger_inputs(Bad(), "block", CONTENT)
