"""`lstmkit generate`: text from a trained character model, streamed one token at a time."""

from __future__ import annotations

import sys

GENERATE_EXAMPLES = """examples:
  lstmkit generate runs/shakespeare-lstm --prompt "ROMEO:" --tokens 300
  lstmkit generate runs/shakespeare-lstm --prompt "KING" --temperature 0.7 --top-k 20 --seed 1
  lstmkit generate runs/shakespeare-lstm --temperature 0        # greedy"""


def add_verb(verbs) -> None:
    g = verbs.add_parser("generate", help="sample text from a trained character model", epilog=GENERATE_EXAMPLES)
    g.add_argument("run_dir", metavar="RUN_DIR", help="a run folder of a language-model task (e.g. shakespeare)")
    g.add_argument("--prompt", default="\n", help="text to start from (default: a newline)")
    g.add_argument("--tokens", type=int, default=200, help="characters to generate (default 200)")
    g.add_argument("--temperature", type=float, default=0.8, help="0 = greedy (default 0.8)")
    g.add_argument("--top-k", type=int, default=None, help="sample only among the k likeliest characters")
    g.add_argument("--top-p", type=float, default=None, help="sample only from the smallest set with mass ≥ p")
    g.add_argument("--seed", type=int, default=None, help="the same seed gives the same text")
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


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()  # text appears as it is made, not when the process ends
