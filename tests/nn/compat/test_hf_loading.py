"""Hugging Face directories load streamed and export sharded (`lstmkit.nn.compat.hf`).

Streaming: a float32 directory loaded as bfloat16 is exactly the float32 model converted, with its ties and
requires_grad intact, owning its memory. Its peak memory is measured in a child process on a model built for it
(xLSTMLarge, 52 MB in bfloat16, no tensor above 6% of it):

    the child imports lstmkit and loads a tiny directory first (the first load imports what it needs lazily,
    ~75 MB here), then resets its peak resident set (`echo 5 > /proc/self/clear_refs`: VmHWM = VmRSS), reads
    VmRSS, loads, and reads VmHWM; growth = VmHWM after - VmRSS before, resident pages of the mapped files
    included (they count in VmRSS). The bound: 1.15 × the model's bytes + 8 MB (allocator slack, Python objects).
    As a control the child then reads the same file whole (safetensors' load_file) and converts it, which the
    probe must see: >= 2.5 × the model's bytes (float32 pages + bfloat16 copies).

Linux only (/proc); skipped where clear_refs cannot be written.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("xlstm")

from safetensors import safe_open  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from lstmkit.nn.compat import from_hf, to_hf  # noqa: E402
from lstmkit.nn.compat.hf import INDEX, WEIGHTS, size_in_bytes  # noqa: E402
from lstmkit.nn.mamba.config import MambaConfig  # noqa: E402
from lstmkit.nn.mamba.lm import MambaLM  # noqa: E402
from lstmkit.nn.xlstm.large import xLSTMLarge, xLSTMLargeConfig  # noqa: E402
from tests.helpers import ROOT, assert_close, one_line  # noqa: E402
from tests.nn.compat.test_compat_xlstm_hf import close, fuse, randomised, their_logits  # noqa: E402

transformers.logging.set_verbosity_error()
V = 50


def xlstm(**fields) -> xLSTMLarge:
    config = {"vocab_size": V, "embedding_dim": 32, "num_heads": 2, "num_blocks": 2, "chunk_size": 8} | fields
    return randomised(xLSTMLarge(xLSTMLargeConfig(**config)), 1).eval()


def mamba(tie: bool) -> MambaLM:
    config = MambaConfig(V, embedding_dim=16, num_layers=2, state_size=4, bias=True, tie_weights=tie)
    return randomised(MambaLM(config), 2)


def tokens(seed: int = 3, T: int = 11) -> torch.Tensor:
    return torch.randint(0, V, (2, T), generator=torch.Generator().manual_seed(seed))


def owns_its_memory(model: torch.nn.Module) -> None:
    """On the CPU, no meta tensor left, no parameter a view of a larger buffer (a fused tensor, a mapped file)."""
    for name, p in model.named_parameters():
        assert p.device.type == "cpu" and p.requires_grad, name
        assert p.untyped_storage().nbytes() == p.numel() * p.element_size(), f"{name} is a view of a larger buffer"


@pytest.mark.parametrize("kind", ("xlstm", "xlstm-fused", "mamba-tied", "mamba"))
def test_bfloat16_from_a_float32_directory_is_the_float32_model_converted(kind, tmp_path):
    model = mamba(tie=kind == "mamba-tied") if kind.startswith("mamba") else xlstm(use_bias=True)
    if kind.startswith("xlstm"):
        torch.nn.init.zeros_(model.norm.bias)  # transformers' out norm has no bias
    if kind == "xlstm-fused":
        path = to_hf(model, tmp_path / "fused")
        fuse(path)  # split on import: each piece copied out of the fused tensor
    else:
        path = to_hf(model, tmp_path / "export", max_shard_size="4KB")
        assert (path / INDEX).is_file()
    converted = from_hf(path).to(torch.bfloat16)
    loaded = from_hf(path, dtype=torch.bfloat16)
    assert type(loaded) is type(model) and loaded.config == model.config
    assert_close(loaded.state_dict(), converted.state_dict(), f"{kind} as bfloat16", atol=0)
    assert_close(from_hf(path).state_dict(), model.state_dict(), f"{kind} as float32", atol=0)
    owns_its_memory(loaded)
    assert len(list(loaded.parameters())) == len(list(model.parameters()))
    if kind == "mamba-tied":  # one Parameter, as built (load_state_dict(assign=True) alone would part them)
        assert loaded.head.weight is loaded.embedding.weight


def test_a_loaded_transformers_model_is_copied_not_shared(tmp_path):
    model = xlstm()
    theirs = AutoModelForCausalLM.from_pretrained(to_hf(model, tmp_path / "export")).eval()
    ours = from_hf(theirs)
    owns_its_memory(ours)
    with torch.no_grad():
        ours.embedding.weight.add_(1.0)
    assert torch.equal(theirs.backbone.embeddings.weight, model.embedding.weight), "their tensor was changed"


# Peak memory while loading, in a child process (see the module's docstring).

CHILD = """
import json, sys, torch
from safetensors.torch import load_file
from lstmkit.nn.compat import from_hf

def status(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024

def reset():
    with open("/proc/self/clear_refs", "w") as file:
        file.write("5")
    return status("VmRSS")

tiny, path, single = sys.argv[1:]
from_hf(tiny, dtype=torch.bfloat16)
try:
    before = reset()
except OSError:
    print(json.dumps(None))
    raise SystemExit
model = from_hf(path, dtype=torch.bfloat16)
growth = status("VmHWM") - before
size = sum(p.numel() * p.element_size() for p in model.parameters())
before = reset()
whole = {key: t.to(torch.bfloat16) for key, t in load_file(single).items()}
control = status("VmHWM") - before
print(json.dumps({"growth": growth, "model": size, "control": control}))
"""


@pytest.fixture(scope="module")
def directories(tmp_path_factory):
    """A tiny export (the warm-up) and one model of 26M parameters as float32, sharded (8 MB) and whole."""
    root = tmp_path_factory.mktemp("peak")
    to_hf(xLSTMLarge(xLSTMLargeConfig(vocab_size=16, embedding_dim=32, num_heads=2, num_blocks=1)), root / "tiny")
    torch.manual_seed(0)
    model = xLSTMLarge(xLSTMLargeConfig(vocab_size=256, embedding_dim=512, num_heads=4, num_blocks=8))
    to_hf(model, root / "sharded", max_shard_size="8MB")
    to_hf(model, root / "single")
    return root


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize("layout", ("sharded", "single"))
def test_peak_memory_while_loading_is_about_the_model(layout, directories):
    args = [str(directories / name) for name in ("tiny", layout, f"single/{WEIGHTS}")]
    child = subprocess.run([sys.executable, "-c", CHILD, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert child.returncode == 0, child.stderr[-2000:]
    found = json.loads(child.stdout)
    if found is None:
        pytest.skip("/proc/self/clear_refs cannot be written here")
    growth, size, control = found["growth"], found["model"], found["control"]
    assert size > 50e6, "the model must dominate the noise"
    assert control >= 2.5 * size, f"the probe misses a whole-checkpoint load: {control / size:.2f} × the model"
    assert growth <= 1.15 * size + 8e6, f"{layout}: peak growth {growth / 1e6:.1f} MB for a {size / 1e6:.1f} MB model"


# Sharded export.


def test_a_sharded_export_round_trips_and_loads_in_transformers(tmp_path):
    model = xlstm()
    limit = 20_000
    path = to_hf(model, tmp_path / "export", max_shard_size="20KB")
    assert not [p for p in tmp_path.iterdir() if p.name != "export"], "the staging directory is left behind"
    index = json.loads((path / INDEX).read_text())
    files = sorted(p.name for p in path.glob("*.safetensors"))
    assert not (path / WEIGHTS).exists() and len(files) > 2
    assert files == [f"model-{i:05d}-of-{len(files):05d}.safetensors" for i in range(1, len(files) + 1)]
    assert sorted(set(index["weight_map"].values())) == files
    n_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    assert index["metadata"]["total_size"] == n_bytes
    for name in files:
        with safe_open(str(path / name), framework="pt") as file:
            sizes = [file.get_slice(k).get_shape() for k in file.keys()]
        total = sum(torch.Size(shape).numel() * 4 for shape in sizes)
        assert total <= limit or len(sizes) == 1, f"{name}: {total} bytes in {len(sizes)} tensors"
    back = from_hf(path)
    assert back.config == model.config
    assert_close(back.state_dict(), model.state_dict(), "sharded round trip", atol=0)
    # compared in float64: this random model is ill-conditioned enough that float32 logits of two correct
    # implementations differ by 2e-5 relative on some CPUs (AMX/AVX-512 GEMMs round differently); here the point
    # is that transformers reads every shard, which float64 shows without that noise
    theirs = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float64).eval()
    ids = tokens()
    with torch.no_grad():
        close(their_logits(theirs, ids), copy.deepcopy(model).double()(ids)[0], "transformers on the shards")
    same = to_hf(model, tmp_path / "bytes", max_shard_size=limit)
    assert sorted(p.name for p in same.iterdir()) == sorted(p.name for p in path.iterdir())


def test_shard_sizes_read_as_transformers_reads_them():
    cases = {"5GB": 5 * 10**9, "1GiB": 2**30, "200MB": 2 * 10**8, "1.5KB": 1500, "20 KiB": 20 * 1024, 7: 7, "3B": 3}
    for size, expected in cases.items():
        assert size_in_bytes(size) == expected, size


@pytest.mark.parametrize("size", ("2XB", "5gb", "GB", "-1GB", "0.1B", "", 0, -5, True, 1.5, None))
def test_a_bad_max_shard_size_is_one_line_and_writes_nothing(size, tmp_path):
    with pytest.raises(ValueError) as caught:
        to_hf(xlstm(), tmp_path / "x", max_shard_size=size)
    one_line(caught, f"max_shard_size is {size!r}, expected a positive int of bytes or a size such as '5GB'")
    assert not list(tmp_path.iterdir())
