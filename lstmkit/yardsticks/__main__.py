"""`python -m lstmkit.yardsticks formal [--out DIR] [--workers N] [--only TASKS] [--rows ROWS] [--steps N] [--render]`:
the formal-language table (lstmkit.yardsticks.formal_table); cells already in OUT/cells are kept, so a second run
resumes an interrupted one; the table shows the tasks whose every row is done (`--render`: only that, no training).
Bad arguments are one line and exit status 2."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lstmkit.yardsticks", description=__doc__.split(":")[0])
    parser.add_argument("table", choices=["formal"])
    parser.add_argument("--out", default="runs/yardsticks/formal", help="(default runs/yardsticks/formal)")
    parser.add_argument("--workers", type=int, default=2, help="cells trained at once, one thread each (default 2)")
    parser.add_argument("--only", default="", help="tasks, comma-separated (default: every registered one)")
    parser.add_argument("--rows", default="", help="models, comma-separated (default: every row)")
    parser.add_argument("--steps", type=int, default=0, help="training steps per cell (default the table's budget)")
    parser.add_argument("--render", action="store_true", help="train nothing: the table of the cells already done")
    args = parser.parse_args(argv)
    from lstmkit.yardsticks.formal_table import run_table

    try:
        if args.workers < 1 or args.steps < 0:
            raise ValueError(f"--workers is {args.workers} and --steps {args.steps}, expected >= 1 and >= 0")
        split = lambda text: [t for t in text.split(",") if t]  # noqa: E731
        run_table(Path(args.out), args.workers, split(args.only), split(args.rows), args.steps, not args.render)
    except ValueError as error:
        print(f"python -m lstmkit.yardsticks: error: {error}", file=sys.stderr)
        return 2
    print(f"table: {Path(args.out) / 'table.md'} and table.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
