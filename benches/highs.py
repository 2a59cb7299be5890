#!/usr/bin/env python3
"""nash-lp against scipy's HiGHS on the same random zero-sum games (issue #2's baseline).

    pip install scipy numpy
    cargo build --release -p nashflow-pipelines
    python3 benches/highs.py [--n 200] [--games 5] [--bin target/release/nashflow]

Each game is written as a JSON matrix, solved by `nashflow solve --solver nash-lp` (its
`solve_seconds`, the LP alone) and by `scipy.optimize.linprog(method="highs")` on the
textbook maximin LP (timed around the call). Medians over repeats; both values printed so the
two solutions can be checked against each other.
"""
import argparse
import json
import subprocess
import tempfile
import time

import numpy as np
from scipy.optimize import linprog


def highs_seconds(m, repeats):
    n = m.shape[0]
    c = np.zeros(n + 1)
    c[-1] = -1.0  # maximise z
    a_ub = np.hstack([-m.T, np.ones((n, 1))])  # z - (x^T M)_j <= 0
    a_eq = np.hstack([np.ones((1, n)), np.zeros((1, 1))])
    bounds = [(0, None)] * n + [(None, None)]
    times, value = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        r = linprog(c, A_ub=a_ub, b_ub=np.zeros(n), A_eq=a_eq, b_eq=[1.0], bounds=bounds, method="highs")
        times.append(time.perf_counter() - t)
        value = -r.fun
    return sorted(times)[len(times) // 2], value


def nashflow_seconds(binary, path, repeats):
    times, value = [], None
    for _ in range(repeats):
        out = subprocess.run([binary, "solve", path, "--solver", "nash-lp", "--format", "json"],
                             check=True, capture_output=True, text=True).stdout
        d = json.loads(out)
        times.append(d["solve_seconds"])
        value = d["value"]
    return sorted(times)[len(times) // 2], value


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--games", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--bin", default="target/release/nashflow")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'game':>4} {'nash-lp ms':>11} {'HiGHS ms':>9} {'ratio':>6}  values (nash-lp, HiGHS)")
    ratios = []
    for g in range(args.games):
        a = rng.uniform(-1, 1, (args.n, args.n))
        m = a - a.T
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"policies": [f"p{i}" for i in range(args.n)], "payoff": m.tolist()}, f)
        ours, v_ours = nashflow_seconds(args.bin, f.name, args.repeats)
        theirs, v_theirs = highs_seconds(m, args.repeats)
        ratios.append(ours / theirs)
        print(f"{g:>4} {1e3 * ours:>11.2f} {1e3 * theirs:>9.2f} {ours / theirs:>6.2f}  {v_ours:.2e}, {v_theirs:.2e}")
    print(f"median ratio nash-lp / HiGHS: {sorted(ratios)[len(ratios) // 2]:.2f} (target ≤ 1)")


if __name__ == "__main__":
    main()
