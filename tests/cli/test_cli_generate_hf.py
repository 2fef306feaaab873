"""`lstmkit generate DIRECTORY` on a Hugging Face directory: token ids without a tokenizer.json, text with one (the
`tokenizers` library), the same tokens as the model's own greedy generation; bad input one line, exit 2. Each test
runs on a Mamba and on an xLSTM (transformers' xLSTMForCausalLM) directory."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from lstmkit.nn.compat import from_hf  # noqa: E402
from tests.helpers import lstmkit, one_line_error  # noqa: E402

transformers.logging.set_verbosity_error()
WORDS = ["<unk>", "the", "cat", "sat", "on", "mat", "a", "dog", "ran", "far"]


def tiny(family: str):
    """A tiny random transformers model of `family` (mamba, or xlstm: the xLSTM-7B architecture)."""
    torch.manual_seed(0)
    if family == "mamba":
        config = transformers.MambaConfig(vocab_size=len(WORDS), hidden_size=16, state_size=4, num_hidden_layers=2)
        return transformers.MambaForCausalLM(config)
    config = transformers.xLSTMConfig(vocab_size=len(WORDS), hidden_size=32, num_hidden_layers=2, num_heads=2,
                                      chunk_size=8)  # fmt: skip
    model = transformers.xLSTMForCausalLM(config)
    with torch.no_grad():  # its init leaves some outputs near constant: random weights make greedy tokens vary
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module", params=["mamba", "xlstm"])
def directory(tmp_path_factory, request):
    """A tiny random model written by transformers' save_pretrained (safetensors)."""
    folder = tmp_path_factory.mktemp("hf") / f"tiny-{request.param}"
    tiny(request.param).save_pretrained(folder)
    return folder


def with_tokenizer(folder, tmp_path):
    """The directory again, with a word-level tokenizer.json over WORDS."""
    import shutil

    from tokenizers import Tokenizer, models, pre_tokenizers

    target = tmp_path / "with-tokenizer"
    shutil.copytree(folder, target)
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.save(str(target / "tokenizer.json"))
    return target


def test_token_ids_in_and_out_are_greedy_generation(capsys, directory):
    code, out, err = lstmkit(capsys, "generate", directory, "--prompt", "1 2 3", "--tokens", "6", "--temperature", "0")
    assert code == 0, err
    expected = from_hf(directory).generate(torch.tensor([1, 2, 3]), 6, temperature=0)
    assert out.split() == [str(int(t)) for t in expected]


def test_text_through_tokenizer_json(capsys, directory, tmp_path):
    folder = with_tokenizer(directory, tmp_path)
    code, out, err = lstmkit(capsys, "generate", folder, "--prompt", "the cat", "--tokens", "5", "--temperature", "0")
    assert code == 0, err
    ids = from_hf(folder).generate(torch.tensor([1, 2]), 5, temperature=0)[2:]
    assert out.startswith("the cat")
    assert out[len("the cat") :].split() == [WORDS[int(t)] for t in ids]
    code, out, err = lstmkit(capsys, "generate", folder, "--prompt", "the", "--tokens", "3", "--dtype", "bfloat16")
    assert code == 0, err


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["--prompt", "hello"], ["no tokenizer.json", "token ids"]),
        (["--prompt", "1 99"], ["token id 99", "[0, 10)"]),
        (["--prompt", "1", "--tokens", "-1"], ["--tokens is -1"]),
    ],
)
def test_bad_input_is_one_line(capsys, directory, argv, needles):
    code, _, err = lstmkit(capsys, "generate", directory, *argv)
    one_line_error(code, err, *needles)


def test_pickled_weights_are_refused(capsys, tmp_path, directory):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((directory / "config.json").read_text())
    (folder / "pytorch_model.bin").write_bytes(b"not opened")
    code, _, err = lstmkit(capsys, "generate", folder, "--prompt", "1")
    one_line_error(code, err, "safetensors")
