"""Compares `nashflow solve --solver S` (prd, cce, lle, alpharank, mene, nash-lp) with
reference.py on random games.

    python3 crosscheck/compare.py target/release/nashflow lle --games 150 --seed 11 --max-n 15

Games cycle through three kinds: general-sum uniform payoffs, zero-sum (X − Xᵀ), and
constant-sum win rates rounded to 0.1 (ties, hence degenerate equilibria; skipped for
mene, whose reference enumerates supports and needs isolated equilibria, and for nash-lp,
whose maximin strategy need not be unique there). Prints each game's largest |σ difference|
and flags those above --tol; exits 1 when any is flagged.
"""
import argparse
import json
import subprocess

import numpy as np

import reference


def games(rng, count, max_n):
    for t in range(count):
        n = int(rng.integers(2, max_n + 1))
        if t % 3 == 0:
            m = rng.uniform(0, 1, (n, n))
        elif t % 3 == 1:
            x = rng.normal(size=(n, n))
            m = x - x.T
        else:
            x = np.triu(rng.uniform(0, 1, (n, n)), 1)
            m = x + np.tril(1 - x.T, -1)
            np.fill_diagonal(m, 0.5)
            m = np.round(m, 1)
        yield t, m


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("nashflow")
    ap.add_argument("solver", choices=["prd", "cce", "lle", "alpharank", "mene", "nash-lp"])
    ap.add_argument("--games", type=int, default=60)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-n", type=int, default=10)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--quiet", action="store_true", help="print only flagged games and the summary")
    args = ap.parse_args()
    worst, flagged, compared = 0.0, 0, 0
    for t, m in games(np.random.default_rng(args.seed), args.games, args.max_n):
        if args.solver in ("mene", "nash-lp") and t % 3 == 2:
            continue
        n = len(m)
        doc = json.dumps({"policies": [f"p{k}" for k in range(n)], "payoff": m.tolist()})
        out = subprocess.run([args.nashflow, "solve", "-", "--solver", args.solver, "--format", "json"],
                             input=doc, capture_output=True, text=True, check=True).stdout
        got = np.array(json.loads(out)["sigma"])
        note = ""
        if args.solver == "cce":
            want, violation = reference.cce_dual(m)
            if violation > 1e-6:
                want, face = reference.cce_face(m)
                note = f" (dual at infinity: violation {violation:.1e}; on the face: {face:.1e})"
        elif args.solver == "mene":
            want = reference.mene_enumerate(m)
        elif args.solver == "nash-lp":
            want = reference.maximin(m)
        else:
            want = getattr(reference, args.solver)(m)
        d = float(np.abs(got - want).max())
        compared += 1
        worst = max(worst, d)
        flag = d > args.tol
        flagged += flag
        if flag or not args.quiet:
            print(f"{t:4d} n={n:2d} kind={t % 3} max|Δσ|={d:.2e}{note}{'  <==' if flag else ''}")
        if flag:
            print("     nashflow ", np.round(got, 6), "\n     reference", np.round(want, 6))
    print(f"{args.solver}: worst {worst:.2e}; {flagged} of {compared} above {args.tol:g}")
    return 1 if flagged else 0


if __name__ == "__main__":
    raise SystemExit(main())
