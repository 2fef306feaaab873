"""Two checkouts of lstmkit timed side by side: the same public entry points, for a change that must not move speed.

    git worktree add /tmp/old <commit>; git worktree add /tmp/old2 <commit>
    .venv/bin/python benchmarks/compare_trees.py /tmp/old /tmp/old2 .      # old, its control copy, new

Each round runs every tree in its own process (own import path and C++ extension cache, one thread), in an order
rotated every round; each entry's time is the best of 7 calls. Printed: the median over rounds of new/old and of
the control old2/old, which must read 1.00 within the machine's noise before new/old means anything.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile

ENTRIES = r"""
import json, time
import torch
torch.set_num_threads(1)
from lstmkit.nn import LSTM, xLSTMConfig, xLSTMLM
from lstmkit.nn.mlstm import mlstm_chunkwise, mlstm_recurrent
from lstmkit.nn.slstm import slstm

def best(fn, n=7):
    fn()
    times = []
    for _ in range(n):
        tic = time.perf_counter()
        fn()
        times.append(time.perf_counter() - tic)
    return min(times)

g = torch.Generator().manual_seed(0)
out = {}
x = torch.randn(4, 256, 4 * 128, generator=g, requires_grad=True)
R = (0.1 * torch.randn(4, 4, 32, 32, generator=g)).requires_grad_()
b = torch.zeros(4 * 128, requires_grad=True)
out["slstm fwd+bwd B4 T256 H128"] = best(lambda: slstm(x, R, b)[0].sum().backward())
q, k, v = (torch.randn(2, 4, 512, 64, generator=g, requires_grad=True) for _ in range(3))
i, f = (torch.randn(2, 4, 512, generator=g, requires_grad=True) for _ in range(2))
out["mlstm chunkwise fwd+bwd T512"] = best(lambda: mlstm_chunkwise(q, k, v, i, f)[0].sum().backward())
plain = [t.detach() for t in (q, k, v, i, f)]
out["mlstm recurrent fwd T512"] = best(lambda: mlstm_recurrent(*plain)[0], n=3)
lstm = LSTM(64, 128, num_layers=2, batch_first=True)
xs = torch.randn(8, 200, 64, generator=g)
out["LSTM.trace B8 T200"] = best(lambda: lstm.trace(xs))
lm = xLSTMLM(xLSTMConfig(vocab_size=64, embedding_dim=64, blocks="msm")).eval()
tokens = torch.randint(0, 64, (4, 128), generator=g)
with torch.no_grad():
    out["xLSTMLM msm fwd B4 T128"] = best(lambda: lm(tokens))
print(json.dumps(out))
"""


def main(old: str, control: str, new: str, rounds: int = 9) -> None:
    trees = {"old": old, "old2": control, "new": new}
    results: dict[str, list[dict]] = {name: [] for name in trees}
    cache = tempfile.mkdtemp(prefix="lstmkit-compare-")
    for r in range(rounds):
        names = list(trees)[r % 3 :] + list(trees)[: r % 3]  # who runs first rotates
        for name in names:
            env = dict(os.environ, PYTHONPATH=os.path.abspath(trees[name]), OMP_NUM_THREADS="1")
            env["TORCH_EXTENSIONS_DIR"] = os.path.join(cache, name)
            done = subprocess.run([sys.executable, "-c", ENTRIES], env=env, capture_output=True, text=True, cwd=cache)
            if done.returncode:
                sys.exit(f"{name} ({trees[name]}) failed:\n{done.stderr[-2000:]}")
            results[name].append(json.loads(done.stdout.splitlines()[-1]))
        print(f"round {r + 1}/{rounds}", file=sys.stderr)
    print("| entry | old ms | new ms | new/old | control old2/old |\n|---|---:|---:|---:|---:|")
    for key in results["old"][0]:
        old_ms, new_ms = (1e3 * statistics.median(run[key] for run in results[n]) for n in ("old", "new"))
        ratio = statistics.median(n[key] / o[key] for n, o in zip(results["new"], results["old"], strict=True))
        control_ratio = statistics.median(c[key] / o[key] for c, o in zip(results["old2"], results["old"], strict=True))
        print(f"| {key} | {old_ms:.2f} | {new_ms:.2f} | {ratio:.2f} | {control_ratio:.2f} |")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: compare_trees.py OLD_TREE CONTROL_TREE NEW_TREE (the control: a second copy of OLD)")
    main(*sys.argv[1:])
