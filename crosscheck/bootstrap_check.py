"""Checks the bootstrap intervals of `nashflow run --bootstrap B` (streaming Poisson) and of
`nashflow analyze --bootstrap B` (stratified) against independent computations of their
stated conventions.

    python3 crosscheck/bootstrap_check.py target/release/nashflow --seed 1

Writes a random match log (as analyze_check.py does), runs it through the incremental engine in
epochs, and recomputes each replicate from the raw rows: match m counts w times in replicate
b, w ~ Poisson(1) by inverse-CDF sampling of one uniform from SplitMix64 keyed by
(seed XOR mix(FNV-1a(match_id)), b); every cell mean (payoff, NW, NW+, EF1) is the weighted
mean, imputed and solved like the point estimate (mene, here by support enumeration). The
percentile intervals (numpy's default linear interpolation) of every policy's mass and regret
and of value, exploitability, UW, NW, NW+ and EF1 must equal the engine's. Exits 1 when any
differs by more than 1e-8. With `--analyze` it checks `analyze --bootstrap` instead, whose
replicate resamples the matches of every ordered seat pair (see `stratified_weights`). With
`--churn` the log also holds duplicates, conflicts and retractions, and the reference keeps
only the live matches (see `with_churn`).
"""
import numpy as np

from analyze_check import match_log, meta_game, nashflow_json, parser
from reference import MASK, below, keyed_stream, mix


def fnv1a(key):
    h = 0xCBF29CE484222325
    for byte in key.encode():
        h = ((h ^ byte) * 0x100000001B3) & MASK
    return h


def poisson_weight(seed, replicate, match_id):
    """Poisson(1) by walking the CDF (capped at 20) with the first uniform of the stream
    (seed XOR mix(FNV-1a(match_id)), replicate)."""
    u = (next(keyed_stream(seed ^ mix(fnv1a(match_id)), replicate)) >> 11) * 2.0**-53
    k, p = 0, np.exp(-1.0)
    cdf = p
    while u >= cdf and k < 20:
        k += 1
        p /= k
        cdf += p
    return k


def stratified_weights(rows, names, seed, replicate):
    """`analyze --bootstrap`'s replicate as per-row counts: the ordered seat pairs
    (policy_i, policy_j) in matrix order of (row, column), each drawing as many of its matches
    (in log order) as it has, with replacement, by `(next_u64 · len) >> 64`."""
    idx = {p: k for k, p in enumerate(names)}
    strata = {}
    for k, r in enumerate(rows):
        strata.setdefault((idx[r["policy_i"]], idx[r["policy_j"]]), []).append(k)
    draws = keyed_stream(seed, replicate)
    counts = np.zeros(len(rows))
    for key in sorted(strata):
        members = strata[key]
        for _ in members:
            counts[members[below(next(draws), len(members))]] += 1
    return counts


def with_churn(rng, rows, share=0.04):
    """The log with about `share` of its matches each sent again (an exact duplicate), sent
    again with another payoff (a conflict) and retracted, each later in the log than the
    match; also the live matches the ledger keeps, in the order they arrived. While a match
    is live, a duplicate or conflict of it never enters (the first stays); a retraction
    cancels it, after which a record with its id enters afresh."""
    log = [dict(r, retract="") for r in rows]
    for kind in ("duplicate", "conflict", "retract"):
        for k in rng.choice(len(rows), int(share * len(rows)), replace=False):
            r = dict(rows[int(k)], retract="")
            if kind == "conflict":
                r["payoff_i"] = round(1.0 - r["payoff_i"], 6) if r["payoff_i"] != 0.5 else 0.25
            elif kind == "retract":
                r["retract"] = "true"
            first = next(at for at, x in enumerate(log) if x["match_id"] == r["match_id"])
            log.insert(int(rng.integers(first + 1, len(log) + 1)), r)
    live = {}
    for r in log:
        if r["retract"] == "true":
            live.pop(r["match_id"], None)
        elif r["match_id"] not in live:
            live[r["match_id"]] = r
    return log, list(live.values())


def main():
    ap = parser(__doc__, 6, 3000)
    ap.add_argument("--replicates", type=int, default=16)
    ap.add_argument("--level", type=float, default=0.9)
    ap.add_argument("--analyze", action="store_true",
                    help="check `analyze --bootstrap` (resampling within ordered seat pairs) instead")
    ap.add_argument("--churn", action="store_true",
                    help="add duplicates, conflicts and retractions to the log (the reference keeps the live matches)")
    args = ap.parse_args()
    failures = 0
    for constant_sum in (True, False):
        rng = np.random.default_rng(args.seed + 10 * constant_sum)
        rows = match_log(rng, args.policies, args.matches, constant_sum)
        log = rows
        if args.churn:
            log, rows = with_churn(rng, rows)
        common = ["--format", "json", "--bootstrap", str(args.replicates), "--seed", str(args.seed),
                  "--ci-level", str(args.level)]
        if args.analyze:
            g = nashflow_json(log, lambda path: [args.nashflow, "analyze", path, "--quiet", *common])
        else:
            g = nashflow_json(log, lambda path: [args.nashflow, "run", "-i", path, "--exit-at-end", "--no-serve",
                                                  "-q", "--epoch-records", "700", *common])
        names, boot = g["policies"], g["bootstrap"]
        if args.analyze:
            weights = [stratified_weights(rows, names, args.seed, b) for b in range(args.replicates)]
        else:
            weights = [[poisson_weight(args.seed, b, r["match_id"]) for r in rows] for b in range(args.replicates)]
        per = [meta_game(rows, names, w) for w in weights]
        a = (1 - args.level) / 2

        def interval(xs):
            return np.quantile(np.asarray(xs), [a, 0.5, 1 - a])

        def triple(x):
            return [x["lo"], x["median"], x["hi"]]

        got, want = {}, {}
        for key, field in (("mass", "sigma"), ("regret", "regret")):
            got[key] = np.array([triple(boot[key][p]) for p in names])
            want[key] = np.array([interval([r[field][k] for r in per]) for k in range(len(names))])
        for key in ("value", "exploitability", "uw", "nw", "nw_plus", "ef1"):
            got[key] = np.array(triple(boot[key]))
            want[key] = interval([r[key] for r in per])
        # The live matches: what dedupe and retractions leave.
        got["matches"], want["matches"] = np.array(g["matches"]), np.array(len(rows))
        kind = "constant-sum" if constant_sum else "general-sum"
        before, worst = failures, 0.0
        for key in got:
            d = float(np.abs(got[key] - want[key]).max())
            worst = max(worst, d)
            if d > 1e-8:
                failures += 1
                print(f"{kind} bootstrap {key}: max|Δ| {d:.2e} above 1e-8\n  nashflow  {got[key]}\n  reference {want[key]}")
        spread = float((want["mass"][:, 2] - want["mass"][:, 0]).max())
        print(f"{'analyze' if args.analyze else 'run'} bootstrap ({kind}, {len(names)} policies, {len(rows)} matches, {args.replicates} replicates, "
              f"widest mass interval {spread:.3g}): {len(got)} quantities, worst |Δ| {worst:.1e}, "
              f"{'all within 1e-8' if failures == before else 'FAILED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
