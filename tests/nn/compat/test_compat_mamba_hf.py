"""Hugging Face checkpoints (transformers 5.23.0) load as lstmkit's Mamba models and compute the same function;
lstmkit's exports load back into transformers; mambapy's Mamba on the same weights gives the same hidden states.

Precision: transformers' Mamba code computes its RMSNorms in float32 and casts A_log to float32 whatever the
model's dtype, so a `.double()` HF model does not compute in float64 (its logits differ from lstmkit's float64 ones
by ~1e-7 relative, the float32 rounding); float64 is checked at the same 1e-5 relative as float32.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

transformers = pytest.importorskip("transformers")
mambapy_mamba = pytest.importorskip("mambapy.mamba")

from transformers import AutoModelForCausalLM, Mamba2ForCausalLM, MambaForCausalLM  # noqa: E402
from transformers import Mamba2Config as TheirMamba2Config  # noqa: E402
from transformers import MambaConfig as TheirMambaConfig  # noqa: E402

from lstmkit.nn.compat import from_hf, to_hf  # noqa: E402
from lstmkit.nn.compat.mamba_hf import weights_to_hf  # noqa: E402
from lstmkit.nn.mamba.config import Mamba2Config, MambaConfig  # noqa: E402
from lstmkit.nn.mamba.lm import Mamba2LM, MambaLM  # noqa: E402
from tests.helpers import assert_close, one_line  # noqa: E402

transformers.logging.set_verbosity_error()
V = 50
KINDS = ("mamba", "mamba2-g1", "mamba2-g2")


def randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter random (norm scales around 1, A_log, D, Δ biases too), not the init: hides nothing."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            noise = torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p.dtype)
            p.copy_((1.0 if "norm" in name else 0.0) + 0.3 * noise)
    return module


def theirs(kind: str, *, seed: int = 0, **fields) -> torch.nn.Module:
    """A tiny random transformers model: "mamba", "mamba2-g1" or "mamba2-g2" (n_groups)."""
    common = {"vocab_size": V, "hidden_size": 16, "num_hidden_layers": 2, "use_bias": True} | fields
    if kind == "mamba":
        model = MambaForCausalLM(TheirMambaConfig(state_size=4, **common))
    else:
        groups = int(kind[-1])
        config = TheirMamba2Config(state_size=8, head_dim=8, num_heads=4, n_groups=groups, chunk_size=4, **common)
        model = Mamba2ForCausalLM(config)
    return randomised(model, seed).eval()


def ours(kind: str, *, tie: bool, seed: int = 1) -> torch.nn.Module:
    if kind == "mamba":
        model = MambaLM(MambaConfig(V, embedding_dim=16, num_layers=2, state_size=4, bias=True, tie_weights=tie))
    else:
        config = Mamba2Config(V, 16, 2, state_size=8, head_dim=8, num_groups=int(kind[-1]), tie_weights=tie)
        model = Mamba2LM(config)
    return randomised(model, seed)


def tokens(seed: int = 2, T: int = 13) -> torch.Tensor:
    return torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(seed))


def close(actual: torch.Tensor, expected: torch.Tensor, what: str) -> None:
    """1e-5 relative to the largest value (and elementwise)."""
    assert_close(actual, expected, what, atol=1e-5 * float(expected.abs().max()), rtol=1e-5, check_dtype=False)


def their_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids).logits


def our_logits(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(ids)[0]


@pytest.mark.parametrize("kind", KINDS)
def test_a_saved_directory_loads_and_computes_their_logits(kind, tmp_path):
    model = theirs(kind)
    model.save_pretrained(tmp_path)
    loaded = from_hf(tmp_path)
    assert type(loaded) is (MambaLM if kind == "mamba" else Mamba2LM)
    assert loaded.config.scan == "auto" and loaded.embedding.weight.dtype == torch.float32
    assert loaded.config.tie_weights == (kind == "mamba") and (loaded.head.weight is loaded.embedding.weight) == (
        kind == "mamba"
    )
    ids = tokens()
    close(our_logits(loaded, ids), their_logits(model, ids), f"{kind} logits")
    same = from_hf(model)  # the loaded transformers model itself
    assert_close(same.state_dict(), loaded.state_dict(), "from a loaded model", atol=0)


@pytest.mark.parametrize("kind", ("mamba", "mamba2-g2"))
def test_a_sharded_directory_loads(kind, tmp_path):
    model = theirs(kind)
    model.save_pretrained(tmp_path, max_shard_size="8KB")
    assert (tmp_path / "model.safetensors.index.json").is_file() and len(list(tmp_path.glob("*.safetensors"))) > 1
    ids = tokens(3)
    close(our_logits(from_hf(tmp_path), ids), their_logits(model, ids), f"{kind} sharded")


@pytest.mark.parametrize("kind", KINDS)
def test_float64_and_the_dtype_argument(kind, tmp_path):
    model = theirs(kind).double()
    loaded = from_hf(model)
    assert loaded.embedding.weight.dtype == torch.float64
    ids = tokens(4)
    close(our_logits(loaded, ids), their_logits(model, ids), f"{kind} float64")
    model.float().save_pretrained(tmp_path)
    assert from_hf(tmp_path, dtype=torch.float64).stack.norm.weight.dtype == torch.float64
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    assert from_hf(tmp_path / "bf16").embedding.weight.dtype == torch.bfloat16


@pytest.mark.parametrize("kind", KINDS)
def test_final_states_match_their_cache_and_the_next_step(kind):
    model, ids = theirs(kind), tokens(5, T=9)
    loaded = from_hf(model)
    with torch.no_grad():
        out = model(ids, use_cache=True)
        logits, state = loaded(ids)
        cache = out.cache_params
        for i, layer_state in enumerate(state.blocks):
            conv = cache.get_conv_state(i)[..., 1:].transpose(1, 2)  # their last K inputs (B, C, K); ours K-1
            close(layer_state.conv, conv, f"{kind} layer {i} conv state")
            close(layer_state.ssm.h, cache.get_recurrent_state(i), f"{kind} layer {i} ssm state")
        step = tokens(6, T=1)
        theirs_next = model(step, cache_params=cache, use_cache=True).logits
        ours_next, _ = loaded(step, state)
    close(logits, out.logits, f"{kind} prefill logits")
    close(ours_next, theirs_next, f"{kind} next-step logits")


@pytest.mark.parametrize("tie", (True, False))
@pytest.mark.parametrize("kind", KINDS)
def test_an_export_loads_in_transformers_and_round_trips(kind, tie, tmp_path):
    model = ours(kind, tie=tie)
    path = to_hf(model, tmp_path / "export")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name != "export"], "the staging directory is left behind"
    loaded = AutoModelForCausalLM.from_pretrained(path).eval()
    assert type(loaded) is (MambaForCausalLM if kind == "mamba" else Mamba2ForCausalLM)
    ids = tokens(7)
    close(their_logits(loaded, ids), our_logits(model, ids), f"{kind} tie={tie} in transformers")
    back = from_hf(path)
    assert back.config == model.config
    assert_close(back.state_dict(), model.state_dict(), "round trip", atol=0)


def test_mambapy_gives_the_same_hidden_states():
    """mambapy's Mamba is the blocks without the final norm: compare the residual stream before it, and after."""
    model = ours("mamba", tie=True)
    c = model.config
    their_config = mambapy_mamba.MambaConfig(
        d_model=c.embedding_dim, n_layers=c.num_layers, d_state=c.state_size, expand_factor=c.expand,
        d_conv=c.conv_kernel, bias=c.bias, conv_bias=c.conv_bias, rms_norm_eps=c.norm_eps,
    )  # fmt: skip
    peer = mambapy_mamba.Mamba(their_config)
    blocks = {k.removeprefix("backbone."): t for k, t in weights_to_hf(model).items() if ".layers." in k}
    peer.load_state_dict(blocks, strict=True)
    for T in (16, 13):  # mambapy's parallel scan pads to a power of two
        x = torch.randn(2, T, c.embedding_dim, generator=torch.Generator().manual_seed(T))
        with torch.no_grad():
            h = x
            for block in model.stack.blocks:
                h, _ = block(h)
            expected = peer(x)
            close(h, expected, f"blocks, T={T}")
            close(model.stack(x)[0], model.stack.norm(expected), f"stack, T={T}")


# Bad input: each one clear ValueError line naming the file or key and what was expected.


@pytest.fixture
def saved(tmp_path):
    """A valid export of a tiny untied Mamba: the directory to damage."""
    return to_hf(ours("mamba", tie=False), tmp_path / "model")


def edit_config(path, **changes):
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps(config | changes))


def edit_tensors(path, change):
    from safetensors.torch import load_file, save_file

    tensors = load_file(path / "model.safetensors")
    change(tensors)
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})


def shard(path, weight_map):
    (path / "model.safetensors").rename(path / "part-1.safetensors")
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))


def bad(name, path):
    """Damage `path` as `name` says."""
    if name == "no config":
        (path / "config.json").unlink()
    elif name == "corrupt config":
        (path / "config.json").write_text("{not json")
    elif name == "config not an object":
        (path / "config.json").write_text("[1, 2]")
    elif name == "unknown model_type":
        edit_config(path, model_type="llama")
    elif name == "hidden_act":
        edit_config(path, hidden_act="gelu")
    elif name == "bad field":
        edit_config(path, hidden_size="16")
    elif name == "missing tensor":
        edit_tensors(path, lambda t: t.pop("backbone.norm_f.weight"))
    elif name == "unexpected tensor":
        edit_tensors(path, lambda t: t.update({"backbone.layers.0.mixer.extra": torch.zeros(1)}))
    elif name == "layer out of range":
        edit_tensors(path, lambda t: t.update({"backbone.layers.7.norm.weight": torch.zeros(16)}))
    elif name == "wrong shape":
        edit_tensors(path, lambda t: t.update({"backbone.layers.1.mixer.D": torch.zeros(31)}))
    elif name == "pickle only":
        (path / "model.safetensors").rename(path / "pytorch_model.bin")
    elif name == "corrupt safetensors":
        (path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00garbage")
    elif name in ("shard outside", "shard missing", "shard not indexed"):
        from safetensors.torch import load_file

        keys = list(load_file(path / "model.safetensors"))
        target = {"shard outside": "../part-1.safetensors", "shard missing": "part-2.safetensors"}
        weight_map = {k: target.get(name, "part-1.safetensors") for k in keys}
        shard(path, weight_map if name != "shard not indexed" else dict(list(weight_map.items())[1:]))


BAD = {
    "no config": "config.json is missing",
    "corrupt config": "config.json is not valid JSON",
    "config not an object": "expected a JSON object",
    "unknown model_type": "model_type is 'llama', expected one of 'mamba', 'mamba2'",
    "hidden_act": "'hidden_act' is 'gelu', expected 'silu'",
    "bad field": "'hidden_size' is '16', expected a int",
    "missing tensor": "missing tensor 'backbone.norm_f.weight'",
    "unexpected tensor": "unexpected tensor 'backbone.layers.0.mixer.extra'",
    "layer out of range": "unexpected tensor 'backbone.layers.7.norm.weight'",
    "wrong shape": "'backbone.layers.1.mixer.D' has shape (31,), expected (32,)",
    "pickle only": "holds only pytorch_model.bin",
    "corrupt safetensors": "model.safetensors is not a valid safetensors file",
    "shard outside": "names shard '../part-1.safetensors', expected a file name inside",
    "shard missing": "names shard 'part-2.safetensors', which is missing",
    "shard not indexed": "is in the file but not in the index",
}


@pytest.mark.parametrize("name", BAD)
def test_a_bad_directory_is_one_clear_error(name, saved):
    bad(name, saved)
    with pytest.raises(ValueError) as caught:
        from_hf(saved)
    assert BAD[name] in one_line(caught), one_line(caught)


def test_other_bad_inputs(saved, tmp_path):
    cases = [
        (lambda: from_hf(tmp_path / "nowhere"), "is not a directory"),
        (lambda: from_hf(42), "source is a int, expected a directory or a transformers model"),
        (lambda: from_hf(saved, dtype=torch.int64), "expected a floating torch.dtype"),
        (lambda: from_hf(torch.nn.Linear(2, 2)), "without a transformers config"),
        (lambda: to_hf(ours("mamba", tie=True), saved), "exists and is not an empty directory"),
        (lambda: to_hf(torch.nn.Linear(2, 2), tmp_path / "x"), "model is a Linear, expected one of MambaLM, Mamba2LM"),
    ]
    for call, words in cases:
        with pytest.raises(ValueError) as caught:
            call()
        assert words in one_line(caught), one_line(caught)
    edit_config(saved, tie_word_embeddings=True)  # a tied config whose file has a different head
    with pytest.raises(ValueError) as caught:
        from_hf(saved)
    assert "'lm_head.weight' differs from the embeddings" in one_line(caught)
    mamba2 = to_hf(ours("mamba2-g1", tie=False), tmp_path / "m2")
    edit_config(mamba2, num_heads=3)
    with pytest.raises(ValueError) as caught:
        from_hf(mamba2)
    assert "'num_heads' is 3, expected expand · hidden_size / head_dim = 4" in one_line(caught)
    shutil.rmtree(mamba2)
    assert to_hf(ours("mamba", tie=True), tmp_path / "empty").is_dir()  # an empty or absent target is fine
