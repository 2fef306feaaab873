"""Hugging Face xLSTM checkpoints (transformers 5.23.0) load as lstmkit's xLSTMLarge and compute the same function;
lstmkit's exports load back into transformers. Where transformers departs from the xLSTM authors' package (the
out norm, the cache's widths, the out norm's bias, the fresh state: `lstmkit.nn.compat.xlstm_hf`), both sides
are checked: lstmkit equals the authors, and transformers does what the docstring says it does.

Precision: transformers' norms reduce in float32 and its kernels keep float32 states whatever the dtype, and it
returns float32 logits, so float32 only, at 1e-5 relative to the largest logit (the float32 rounding of these
random models is a few 1e-6: lstmkit's float32 logits differ from its own float64 ones by about as much).
"""

from __future__ import annotations

import json

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("xlstm")

from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import AutoModelForCausalLM, xLSTMConfig, xLSTMForCausalLM  # noqa: E402
from transformers.models.xlstm import modeling_xlstm  # noqa: E402
from xlstm.xlstm_large.model import xLSTMLarge as TheirLarge  # noqa: E402

from lstmkit.nn import LMState, xLSTMLarge  # noqa: E402
from lstmkit.nn.compat import from_hf, to_hf  # noqa: E402
from lstmkit.nn.generate import generate  # noqa: E402
from lstmkit.nn.mlstm.state import mLSTMState  # noqa: E402
from lstmkit.nn.xlstm.large import xLSTMLargeConfig  # noqa: E402
from tests.helpers import assert_close, one_line  # noqa: E402

transformers.logging.set_verbosity_error()
V = 50
SHAPES = {
    "plain": {},
    "bias-4-heads": {
        "use_bias": True,
        "num_heads": 4,
        "qk_dim_factor": 0.25,
        "v_dim_factor": 0.5,
        "gate_soft_cap": 5.0,
        "output_logit_soft_cap": 10.0,
        "norm_eps": 1e-5,
        "eps": 1e-4,
        "ffn_proj_factor": 1.5,
        "ffn_round_up_to_multiple_of": 16,
    },
    "tied": {"tie_word_embeddings": True, "num_heads": 1},
    "wide": {"hidden_size": 128, "num_heads": 2},  # q/k 64 and v 128: transformers' rounded cache fits
}


def randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random (norm scales around 1, gates too), not the init: hides nothing."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p.dtype)
            p.copy_((1.0 if "norm" in name else 0.0) + 1.0 / p.shape[-1] ** 0.5 * noise)
    return module


def their_config(**fields) -> xLSTMConfig:
    common = {"vocab_size": V, "hidden_size": 32, "num_hidden_layers": 2, "num_heads": 2, "chunk_size": 8}
    return xLSTMConfig(**(common | fields))


def theirs(shape: str = "plain", *, seed: int = 0, **fields) -> xLSTMForCausalLM:
    """A tiny random transformers xLSTM (weight_mode "single": transformers cannot initialise a fused one)."""
    return randomised(xLSTMForCausalLM(their_config(**(SHAPES[shape] | fields))), seed).eval()


def ours(*, seed: int = 1, **fields) -> xLSTMLarge:
    config = {"vocab_size": V, "embedding_dim": 32, "num_heads": 2, "num_blocks": 2, "chunk_size": 8} | fields
    return randomised(xLSTMLarge(xLSTMLargeConfig(**config)), seed).eval()


def tokens(seed: int = 2, T: int = 21) -> torch.Tensor:
    return torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(seed))


def close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """1e-5 relative to the largest value (and elementwise)."""
    assert_close(actual, expected, what, atol=1e-5 * float(expected.abs().max()), rtol=1e-5, check_dtype=False)


def their_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Without their cache, which does not fit widths other than multiples of 64."""
    with torch.no_grad():
        return model(ids, use_cache=False).logits


def our_logits(model: torch.nn.Module, ids: torch.Tensor, state=None) -> torch.Tensor:
    with torch.no_grad():
        return model(ids, state)[0]


def fuse(directory) -> None:
    """Rewrite a single-weight directory as weight_mode "fused" (the authors' fused layout)."""
    tensors = load_file(directory / "model.safetensors")
    blocks = {key.split(".")[2] for key in tensors if key.startswith("backbone.blocks.")}
    for i in blocks:
        m, f = f"backbone.blocks.{i}.mlstm_layer.", f"backbone.blocks.{i}.ffn."
        for suffix in ("weight", "bias"):
            for fused, parts in (
                (m + "qkv_opreact", [m + p for p in ("q", "k", "v", "ogate_preact")]),
                (m + "ifgate_preact", [m + p for p in ("igate_preact", "fgate_preact")]),
                (f + "proj_up_gate_z", [f + "proj_up_gate", f + "proj_up"]),
            ):
                if f"{parts[0]}.{suffix}" in tensors:
                    tensors[f"{fused}.{suffix}"] = torch.cat([tensors.pop(f"{p}.{suffix}") for p in parts])
    save_file(tensors, directory / "model.safetensors", metadata={"format": "pt"})
    edit_config(directory, weight_mode="fused")


def edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps(config | changes))


@pytest.mark.parametrize("shape", SHAPES)
def test_a_saved_directory_loads_and_computes_their_logits(shape, tmp_path):
    model = theirs(shape)
    model.save_pretrained(tmp_path)
    loaded = from_hf(tmp_path)
    assert type(loaded) is xLSTMLarge and loaded.embedding.weight.dtype == torch.float32
    c, t = loaded.config, model.config
    assert (c.embedding_dim, c.num_blocks, c.num_heads, c.use_bias, c.add_out_norm) == (
        t.hidden_size, t.num_hidden_layers, t.num_heads, t.use_bias, True
    )  # fmt: skip
    assert (c.qk_dim_factor, c.v_dim_factor, c.gate_soft_cap, c.output_logit_soft_cap, c.norm_eps, c.eps) == (
        t.qk_dim_factor, t.v_dim_factor, t.gate_soft_cap, t.output_logit_soft_cap, t.norm_eps, t.eps
    )  # fmt: skip
    assert (c.ffn_proj_factor, c.ffn_round_up_to) == (t.ffn_proj_factor, t.ffn_round_up_to_multiple_of)
    assert torch.equal(loaded.head.weight, model.lm_head.weight)  # tied or not, transformers keeps its own head
    ids = tokens()
    close(our_logits(loaded, ids), their_logits(model, ids), f"{shape} logits")
    same = from_hf(model)  # the loaded transformers model itself
    assert_close(same.state_dict(), loaded.state_dict(), "from a loaded model", atol=0)
    fused = tmp_path / "fused"
    model.save_pretrained(fused)
    fuse(fused)
    assert_close(from_hf(fused).state_dict(), loaded.state_dict(), "fused directory", atol=0)


def test_a_fused_directory_computes_what_transformers_computes_with_it(tmp_path, monkeypatch):
    model = theirs("bias-4-heads")
    model.save_pretrained(tmp_path)
    fuse(tmp_path)
    with pytest.raises(RuntimeError):  # transformers 5.23 cannot initialise a fused model
        AutoModelForCausalLM.from_pretrained(tmp_path)
    monkeypatch.setattr(modeling_xlstm.xLSTMPreTrainedModel, "_init_weights", lambda self, module: None)
    fused = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert fused.config.weight_mode == "fused"
    ids = tokens(3)
    close(our_logits(from_hf(tmp_path), ids), their_logits(fused, ids), "fused logits")


def test_a_sharded_directory_loads(tmp_path):
    model = theirs("bias-4-heads")
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file() and len(list(tmp_path.glob("*.safetensors"))) > 1
    ids = tokens(4)
    close(our_logits(from_hf(tmp_path), ids), their_logits(model, ids), "sharded")


def test_the_dtype_is_the_checkpoints_or_the_argument(tmp_path):
    model = theirs()
    model.save_pretrained(tmp_path)
    assert from_hf(tmp_path, dtype=torch.float64).blocks[0].layer.q.weight.dtype == torch.float64
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    assert from_hf(tmp_path / "bf16").embedding.weight.dtype == torch.bfloat16


def test_without_out_norm_lstmkit_follows_the_authors_and_transformers_applies_it_anyway(tmp_path):
    model = theirs(add_out_norm=False)
    model.save_pretrained(tmp_path)
    loaded = from_hf(tmp_path)
    assert loaded.config.add_out_norm is False and isinstance(loaded.norm, torch.nn.Identity)
    authors = TheirLarge(model.config.to_xlstm_block_config()).eval()
    weights = {k.replace("backbone.embeddings.", "embedding."): v for k, v in model.state_dict().items()}
    authors.load_state_dict({k: v for k, v in weights.items() if "out_norm" not in k}, strict=True)
    ids = tokens(5)
    with torch.no_grad():
        close(our_logits(loaded, ids), authors(ids)[0], "no out norm, as the authors")
    edit_config(tmp_path, add_out_norm=True)  # what transformers computes: the out norm, with its stored weight
    close(our_logits(from_hf(tmp_path), ids), their_logits(model, ids), "transformers' out norm")


def test_a_tied_directory_without_a_head_uses_the_embedding(tmp_path):
    model = theirs("tied")
    model.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    del tensors["lm_head.weight"]
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded = from_hf(tmp_path)
    assert torch.equal(loaded.head.weight, model.backbone.embeddings.weight)
    edit_config(tmp_path, tie_word_embeddings=False)
    with pytest.raises(ValueError) as caught:
        from_hf(tmp_path)
    one_line(caught, "missing tensor 'lm_head.weight'")


def greedy_with_their_cache(model: xLSTMForCausalLM, ids: torch.Tensor, n: int) -> torch.Tensor:
    with torch.no_grad():
        out = model(ids, use_cache=True)
        new = []
        for _ in range(n):
            new.append(out.logits[:, -1].argmax(-1))
            out = model(new[-1][:, None], cache_params=out.cache_params, use_cache=True)
    return torch.stack(new, 1)


def greedy_without_cache(model: xLSTMForCausalLM, ids: torch.Tensor, n: int) -> torch.Tensor:
    for _ in range(n):
        ids = torch.cat([ids, their_logits(model, ids)[:, -1].argmax(-1)[:, None]], 1)
    return ids[:, -n:]


def test_greedy_continuation_matches_theirs():
    wide, ids = theirs("wide"), tokens(6, T=9)
    assert torch.equal(generate(from_hf(wide), ids, 6, temperature=0)[:, -6:], greedy_with_their_cache(wide, ids, 6))
    narrow = theirs("bias-4-heads")
    with pytest.raises(RuntimeError):  # its cache, rounded up to 64 wide, does not fit its 8- and 16-wide layers
        narrow(ids, use_cache=True)
    assert torch.equal(generate(from_hf(narrow), ids, 6, temperature=0)[:, -6:], greedy_without_cache(narrow, ids, 6))


def test_final_states_are_their_cache_up_to_the_stabilizer():
    model, ids = theirs("wide"), tokens(7, T=13)
    loaded = from_hf(model)
    c = loaded.config
    NH, DK, DV = c.num_heads, c.qk_dim // c.num_heads, c.v_dim // c.num_heads
    with torch.no_grad():
        out = model(ids, use_cache=True)
        cache = out.cache_params.rnn_state
        zeros = LMState(tuple(mLSTMState.zeros(2, NH, DK, DV, like=ids.float()) for _ in range(c.num_blocks)))
        from_zero = loaded(ids, zeros)
        fresh = loaded(ids)
    close(from_zero[0], out.logits, "logits from their start, m = 0")
    close(fresh[0], out.logits, "logits from the empty memory, m = -inf")
    for i in range(c.num_blocks):
        C, n, m = cache[i]
        ours_zero, ours_fresh = from_zero[1].blocks[i], fresh[1].blocks[i]
        close(ours_zero.m, m[..., 0], f"block {i} m from m = 0")
        close(ours_zero.C, C, f"block {i} C from m = 0")
        close(ours_zero.n, n, f"block {i} n from m = 0")
        scale = (ours_fresh.m - m[..., 0]).exp()  # the same memory C·exp(m), another stabilizer
        close(ours_fresh.C * scale[..., None, None], C, f"block {i} C·exp(m) from m = -inf")
        close(ours_fresh.n * scale[..., None], n, f"block {i} n·exp(m) from m = -inf")


EXPORTS = {
    "plain": {},
    "bias": {"use_bias": True, "num_heads": 4, "qk_dim_factor": 0.25, "ffn_round_up_to": 16, "gate_soft_cap": 4.0},
    "wide": {"embedding_dim": 128, "output_logit_soft_cap": 8.0, "eps": 1e-5},
}


@pytest.mark.parametrize("kind", EXPORTS)
def test_an_export_loads_in_transformers_and_round_trips(kind, tmp_path):
    model = ours(**EXPORTS[kind])
    if model.config.use_bias:
        torch.nn.init.zeros_(model.norm.bias)  # transformers' out norm has no bias
    path = to_hf(model, tmp_path / "export")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name != "export"], "the staging directory is left behind"
    loaded = AutoModelForCausalLM.from_pretrained(path).eval()
    assert type(loaded) is xLSTMForCausalLM
    assert loaded.config.use_cache == (kind == "wide") and loaded.config.embedding_dim == model.config.embedding_dim
    ids = tokens(8)
    with torch.no_grad():
        close(loaded(ids).logits, our_logits(model, ids), f"{kind} in transformers")  # its default use_cache
        continued = loaded.generate(ids[:, :9], max_new_tokens=5, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert torch.equal(continued[:, 9:], generate(model, ids[:, :9], 5, temperature=0)[:, 9:]), "greedy"
    back = from_hf(path)
    assert back.config == model.config
    assert_close(back.state_dict(), model.state_dict(), "round trip", atol=0)


def test_what_transformers_cannot_compute_is_not_exported(tmp_path):
    biased = ours(use_bias=True)
    cases = [
        (ours(add_out_norm=False), "add_out_norm=False cannot be written for transformers"),
        (ours(gate_soft_cap=None), "gate_soft_cap=None cannot be written"),
        (biased, "norm.bias of this xLSTMLarge is not zero"),
    ]
    for model, words in cases:
        with pytest.raises(ValueError) as caught:
            to_hf(model, tmp_path / "x")
        one_line(caught, words)
        assert not list(tmp_path.iterdir())


# Bad input: each one clear ValueError line naming the file or key and what was expected.


@pytest.fixture
def saved(tmp_path):
    """A transformers-saved tiny xLSTM with biases: the directory to damage."""
    path = tmp_path / "model"
    theirs("bias-4-heads").save_pretrained(path)
    return path


def edit_tensors(path, change):
    tensors = load_file(path / "model.safetensors")
    change(tensors)
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})


def shard(path, drop_from_file: bool = False, missing_shard: bool = False):
    tensors = load_file(path / "model.safetensors")
    names = sorted(tensors)
    (path / "model.safetensors").unlink()
    first = {k: tensors[k] for k in names[: len(names) // 2]}
    if drop_from_file:
        first.pop(names[0])
    save_file(first, path / "part-1.safetensors", metadata={"format": "pt"})
    if not missing_shard:
        save_file({k: tensors[k] for k in names[len(names) // 2 :]}, path / "part-2.safetensors")
    weight_map = {k: f"part-{1 + (i >= len(names) // 2)}.safetensors" for i, k in enumerate(names)}
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def bad(name, path):
    """Damage `path` as `name` says."""
    m = "backbone.blocks.1.mlstm_layer."
    if name == "wrong model_type":
        edit_config(path, model_type="xlstm-7b")
    elif name == "missing shard":
        shard(path, missing_shard=True)
    elif name == "index names a missing key":
        shard(path, drop_from_file=True)
    elif name == "pickle only":
        (path / "model.safetensors").rename(path / "pytorch_model.bin")
    elif name == "width disagrees":
        edit_config(path, embedding_dim=64)
    elif name == "depth disagrees":
        edit_config(path, num_blocks=3)
    elif name == "weight_mode":
        edit_config(path, weight_mode="packed")
    elif name == "heads":
        edit_config(path, num_heads=3)
    elif name == "bad field":
        edit_config(path, qk_dim_factor="0.25")
    elif name == "single tensors, fused config":
        edit_config(path, weight_mode="fused")
    elif name == "missing tensor":
        edit_tensors(path, lambda t: t.pop(m + "fgate_preact.bias"))
    elif name == "wrong shape":
        edit_tensors(path, lambda t: t.update({m + "v.weight": torch.zeros(15, 32)}))
    elif name == "fused wrong shape":
        fuse(path)
        edit_tensors(path, lambda t: t.update({m + "ifgate_preact.weight": torch.zeros(4, 32)}))


BAD = {
    "wrong model_type": "model_type is 'xlstm-7b', expected one of 'mamba', 'mamba2', 'xlstm'",
    "missing shard": "names shard 'part-2.safetensors', which is missing",
    "index names a missing key": "is in the index but not in the file",
    "pickle only": "holds only pytorch_model.bin",
    "width disagrees": "'hidden_size' is 32 but 'embedding_dim' is 64, expected the same value",
    "depth disagrees": "'num_hidden_layers' is 2 but 'num_blocks' is 3, expected the same value",
    "weight_mode": "'weight_mode' is 'packed', expected 'single' or 'fused'",
    "heads": "does not make a valid lstmkit config: num_heads 3 does not divide the q/k width 8",
    "bad field": "'qk_dim_factor' is '0.25', expected a number",
    "single tensors, fused config": "unexpected tensor 'backbone.blocks.0.ffn.proj_up.bias' (not a parameter of a "
    "weight_mode 'fused'",
    "missing tensor": "missing tensor 'backbone.blocks.1.mlstm_layer.fgate_preact.bias' (1 missing in all)",
    "wrong shape": "'backbone.blocks.1.mlstm_layer.v.weight' has shape (15, 32), expected (16, 32)",
    "fused wrong shape": "'backbone.blocks.1.mlstm_layer.ifgate_preact.weight' has shape (4, 32), expected (8, 32)",
}


@pytest.mark.parametrize("name", BAD)
def test_a_bad_directory_is_one_clear_error(name, saved):
    bad(name, saved)
    with pytest.raises(ValueError) as caught:
        from_hf(saved)
    one_line(caught, BAD[name])
