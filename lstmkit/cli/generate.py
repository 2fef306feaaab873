"""`lstmkit generate`: text from a trained character model, or from a Hugging Face directory, streamed one token
at a time.

A Hugging Face directory (config.json and safetensors weights, as `save_pretrained` writes them; model_type
"mamba", "mamba2" or "xlstm", the xLSTM-7B's format) is loaded by `lstmkit.nn.compat.from_hf`, streamed in the
`--dtype` asked for. With a tokenizer.json beside it the prompt is text,
encoded and decoded by the `tokenizers` library (the `hf` extra); without one the prompt is token ids separated
by spaces, and the new ids are printed the same way."""

from __future__ import annotations

import sys

from lstmkit.cli.threads import add_threads_option

GENERATE_EXAMPLES = """examples:
  lstmkit generate runs/shakespeare-lstm --prompt "ROMEO:" --tokens 300
  lstmkit generate runs/shakespeare-lstm --prompt "KING" --temperature 0.7 --top-k 20 --seed 1
  lstmkit generate runs/shakespeare-lstm --temperature 0        # greedy
  lstmkit generate path/to/mamba-130m-hf --prompt "The meaning of life" --tokens 40 --dtype bfloat16
  lstmkit generate path/to/xLSTM-7b --prompt "The xLSTM is" --tokens 40 --dtype bfloat16
  lstmkit generate path/to/tiny-mamba --prompt "1 5 9" --tokens 10   # no tokenizer.json: token ids"""


def add_verb(verbs) -> None:
    g = verbs.add_parser("generate", help="sample text from a trained character model", epilog=GENERATE_EXAMPLES)
    g.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        help="a run folder of a language-model task (e.g. shakespeare), or a Hugging Face directory",
    )
    g.add_argument("--prompt", default="\n", help="text to start from (default: a newline)")
    g.add_argument("--tokens", type=int, default=200, help="characters to generate (default 200)")
    g.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    g.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest characters")
    g.add_argument("--top-p", type=float, default=None, help="sample only from the smallest set with mass ≥ p")
    g.add_argument("--seed", type=int, default=None, help="the same seed gives the same text")
    g.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default=None,
        help="a Hugging Face directory's weights in this dtype (default: as stored)",
    )
    add_threads_option(g)
    g.set_defaults(run=run_generate)


def run_generate(args) -> int:
    """Print the prompt, then each new character as soon as it is sampled (flushed), then a newline."""
    from lstmkit.experiment import load_run
    from lstmkit.nn.generate import MAX_NEW_TOKENS, stream_tokens
    from lstmkit.tasks.real.shakespeare import CharVocab

    if not 0 <= args.tokens <= MAX_NEW_TOKENS:
        raise ValueError(f"--tokens is {args.tokens}, expected 0 to {MAX_NEW_TOKENS:,}")
    if not args.prompt:
        raise ValueError("--prompt is empty, expected at least one character")
    if is_hf_directory(args.run_dir):
        return generate_hf(args)
    if args.dtype is not None:
        raise ValueError("--dtype applies to a Hugging Face directory; a run folder's model keeps its float32")
    run = load_run(args.run_dir)
    if "vocab" not in run.meta:
        raise ValueError(
            f"run {args.run_dir} was trained on {run.meta['task']['name']!r}, which has no character "
            "vocabulary; generate works for character language models (task shakespeare)"
        )
    vocab = CharVocab("".join(run.meta["vocab"]))
    try:
        prompt = vocab.encode(args.prompt)
    except ValueError as e:
        raise ValueError(f"--prompt has {e}") from None
    # every argument is checked here, before anything is written
    tokens = stream_tokens(
        run.model, prompt, args.tokens, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed
    )
    _write(args.prompt)
    for token in tokens:
        _write(vocab.decode([token]))
    _write("\n")
    return 0


def is_hf_directory(path: str) -> bool:
    """A folder with config.json and no run's meta.json: what `save_pretrained` writes."""
    from pathlib import Path

    folder = Path(path)
    return folder.is_dir() and (folder / "config.json").is_file() and not (folder / "meta.json").exists()


def generate_hf(args) -> int:
    """From a Hugging Face directory: text through its tokenizer.json, or token ids without one."""
    import torch

    from lstmkit.nn.compat import from_hf
    from lstmkit.nn.generate import stream_tokens

    tokenizer = hf_tokenizer(args.run_dir)
    if tokenizer is None:
        prompt = prompt_ids(args.prompt)
    else:
        prompt = tokenizer.encode(args.prompt).ids
        if not prompt:
            raise ValueError(f"--prompt {args.prompt!r} encodes to no tokens with {args.run_dir}/tokenizer.json")
    model = from_hf(args.run_dir, dtype=None if args.dtype is None else getattr(torch, args.dtype))
    tokens = stream_tokens(
        model,
        torch.tensor(prompt),
        args.tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    if tokenizer is None:
        _write(" ".join(map(str, prompt)))
        for token in tokens:
            _write(f" {int(token)}")
    else:
        _write(args.prompt)
        new, shown = [], ""
        for token in tokens:  # decode the whole continuation each time: a character may span tokens
            new.append(int(token))
            text = tokenizer.decode(new)
            if not text.endswith("\ufffd"):
                _write(text[len(shown) :])
                shown = text
    _write("\n")
    return 0


def hf_tokenizer(folder: str):
    """The directory's tokenizer.json through the `tokenizers` library, or None when there is none."""
    from pathlib import Path

    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ValueError(
            f"{path} needs the tokenizers library: pip install 'lstmkit[hf]' (or pass token ids after removing it)"
        ) from None
    try:
        return Tokenizer.from_file(str(path))
    except Exception as error:  # the library's own message says what is wrong with the file
        raise ValueError(f"{path} is not a tokenizer the tokenizers library reads: {error}") from None


def prompt_ids(prompt: str) -> list[int]:
    """'1 5 9' -> [1, 5, 9]: a prompt of token ids, for a directory without tokenizer.json."""
    try:
        ids = [int(word) for word in prompt.split()]
    except ValueError:
        raise ValueError(
            f"--prompt is {prompt!r}: this directory has no tokenizer.json, so the prompt is token ids "
            "separated by spaces, e.g. --prompt '1 5 9'"
        ) from None
    if not ids:
        raise ValueError("--prompt has no token ids, expected e.g. --prompt '1 5 9'")
    return ids


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()  # text appears as it is made, not when the process ends
