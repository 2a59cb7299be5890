"""Checks `nashflow analyze --format json` end to end against independent computations.

    python3 crosscheck/analyze_check.py target/release/nashflow --seed 1

Writes a random match log (CSV: both seats, self-play, draws, some constant-sum and some
general-sum payoffs), analyses it, and recomputes from the raw rows: the payoff matrix, σ
(mene, by support enumeration), regret, exploitability, value and welfare (UW, NW, NW+ with
BATNAs, EF1 over agreed matches) at σ and per policy vs σ, win rates, games,
sequential Elo, the Bradley–Terry MLE with its standard errors, Nash averaging, Level 1 and 2
for every candidate, keystones, exact Shapley and Banzhaf values (UW, NW, NW+), and each cell's
pooled Manski and marginal-sensitivity bounds at Γ = 1, 2, 4, per `context` stratum and
stratified, with the range of every regret and of the exploitability over that box, the
tipping Γ of each adjacent-rank and adjacent-rating claim and of each policy's equilibrium
claim, and each adjacent-rank pair's TV certificate. With `--monte-carlo N`, Level 3 is
sampled (nashflow's stated permutations and coalitions, replayed) instead of exact. Exits 1
when any differs by more than its tolerance.
"""
import argparse
import csv
import json
import os
import subprocess
import tempfile
from collections import defaultdict

import numpy as np
from scipy.optimize import minimize

import reference


def match_log(rng, policies, matches, constant_sum):
    # Transitive strength plus a cyclic (antisymmetric) part, so that σ is mixed.
    strength = 0.3 * rng.normal(size=policies)
    cycle = rng.normal(size=(policies, policies))
    cycle = 1.5 * (cycle - cycle.T)
    rows = []
    for t in range(matches):
        i, j = (int(x) for x in rng.integers(0, policies, 2))
        p = 1 / (1 + np.exp(strength[j] - strength[i] - cycle[i, j]))
        if rng.random() < 0.5:  # win / draw / loss
            a = rng.choice([1.0, 0.5, 0.0], p=[p * 0.9, 0.1, (1 - p) * 0.9])
        else:
            a = float(np.clip(p + rng.normal(scale=0.2), 0, 1))
        b = 1 - a if constant_sum else float(np.clip(1 - a + rng.normal(scale=0.1), 0, 1))
        rows.append(dict(match_id=f"m{t}", policy_i=f"p{i}", policy_j=f"p{j}", payoff_i=a, payoff_j=b,
                         propensity=float(rng.uniform(0.05, 1.0))))
    # Negotiation columns: BATNAs, agreement, and an EF1 flag that is sometimes absent and is
    # also set on failed negotiations (where it must be ignored).
    for r in rows:
        r["batna_i"], r["batna_j"] = (round(float(x), 3) for x in rng.uniform(0, 0.4, 2))
        r["agreement"] = "true" if rng.random() < 0.8 else "false"
        r["ef1"] = "" if rng.random() < 0.2 else ("true" if rng.random() < 0.6 else "false")
        r["context"] = str(rng.choice(["map_a", "map_b", "map_c", ""]))  # "" = no context
    return rows


def meta_game(rows, names, weights=None):
    """The meta-game of `rows` (each counted `weights[k]` times; 1 by default): cell means of
    the payoff, NW, NW+ and EF1 with column-mean imputation, σ by support enumeration, regret,
    exploitability and welfare at σ; also the (unweighted) win counts and games per policy."""
    n = len(names)
    idx = {p: k for k, p in enumerate(names)}
    total, count, nw = np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n))
    nw_plus, ef1, ef1_n = np.zeros((n, n)), np.zeros((n, n)), np.zeros((n, n))
    wins, games = np.zeros((n, n)), np.zeros(n)
    for k, r in enumerate(rows):
        w = 1.0 if weights is None else float(weights[k])
        i, j, a, b = idx[r["policy_i"]], idx[r["policy_j"]], r["payoff_i"], r["payoff_j"]
        q = np.sqrt(max(a, 0) * max(b, 0))
        q_plus = np.sqrt(max(0, a - r["batna_i"]) * max(0, b - r["batna_j"]))
        counts_ef1 = r["ef1"] != "" and r["agreement"] != "false"
        for x, y, pay in ((i, j, a), (j, i, b)):
            total[x, y] += w * pay
            count[x, y] += w
            nw[x, y] += w * q
            nw_plus[x, y] += w * q_plus
            if counts_ef1:
                ef1[x, y] += w * (r["ef1"] == "true")
                ef1_n[x, y] += w
        games[i] += 1
        if i != j:
            games[j] += 1
            s = 1.0 if a > b else (0.5 if a == b else 0.0)
            wins[i, j] += s
            wins[j, i] += 1 - s
    with np.errstate(invalid="ignore", divide="ignore"):
        m, nw, nw_plus, ef1 = total / count, nw / count, nw_plus / count, ef1 / ef1_n
    # Column-mean imputation: the known entries of column j, else 0. An EF1 cell is known
    # when one of its matches counts.
    for x, known in ((m, count > 0), (nw, count > 0), (nw_plus, count > 0), (ef1, ef1_n > 0)):
        for j in range(n):
            col = x[known[:, j], j]
            x[~known[:, j], j] = col.mean() if len(col) else 0.0
    sigma = reference.mene_enumerate(m)
    u = m @ sigma
    v = sigma @ u
    return dict(payoff=m, sigma=sigma, regret=u - v, exploitability=(u - v).max(), value=v,
                uw=sigma @ (m + m.T) @ sigma, nw=sigma @ nw @ sigma, games=games,
                nw_plus=sigma @ nw_plus @ sigma, ef1=sigma @ ef1 @ sigma,
                vs_sigma=np.concatenate([(m + m.T) @ sigma, nw @ sigma, nw_plus @ sigma, ef1 @ sigma]),
                wins=wins, nw_cells=nw, nw_plus_cells=nw_plus)


def independent(rows, names, monte_carlo=None):
    n = len(names)
    idx = {p: k for k, p in enumerate(names)}
    out = meta_game(rows, names)
    m, sigma, wins, games = out["payoff"], out["sigma"], out.pop("wins"), out["games"]
    nw, nw_plus = out.pop("nw_cells"), out.pop("nw_plus_cells")
    non_self = wins + wins.T
    np.fill_diagonal(non_self, 0)
    out["win_rate"] = wins.sum(1) / non_self.sum(1)
    # Sequential Elo, K = 32 from 1500, each match once from seat i.
    elo = np.full(n, 1500.0)
    for r in rows:
        i, j = idx[r["policy_i"]], idx[r["policy_j"]]
        if i == j:
            continue
        a, b = r["payoff_i"], r["payoff_j"]
        s = 1.0 if a > b else (0.5 if a == b else 0.0)
        e = 1 / (1 + 10 ** ((elo[j] - elo[i]) / 400))
        elo[i] += 32 * (s - e)
        elo[j] -= 32 * (s - e)
    out["elo"] = elo
    # Bradley–Terry MLE (draws half), Σθ = 0, SEs from the pseudo-inverse Fisher information;
    # when the win graph is not strongly connected the MLE is infinite, and one virtual draw
    # per pair is added.
    from scipy.sparse.csgraph import connected_components

    strong, _ = connected_components(wins > 0, directed=True, connection="strong")
    out["regularized"] = float(strong > 1)
    if strong > 1:
        wins = wins + 0.5 * (1 - np.eye(n))
        non_self = non_self + (1 - np.eye(n))
    def nll(theta):
        d = theta[:, None] - theta[None, :]
        lp = -np.logaddexp(0, -d)
        g = wins - non_self / (1 + np.exp(-d)) * 1.0
        return -(wins * lp).sum(), -g.sum(1)
    theta = minimize(nll, np.zeros(n), jac=True, method="BFGS", options=dict(gtol=1e-12, maxiter=10000)).x
    def fisher_at(theta):
        d = theta[:, None] - theta[None, :]
        w = non_self / (1 + np.exp(-d)) / (1 + np.exp(d))
        return np.diag(w.sum(1)) - w

    for _ in range(20):  # Newton polish: BFGS alone stops near 1e-8 relative
        step = np.linalg.pinv(fisher_at(theta)) @ -nll(theta)[1]
        theta = theta + step
        if np.abs(step).max() < 1e-14:
            break
    theta -= theta.mean()
    cov = np.linalg.pinv(fisher_at(theta))
    scale = 400 / np.log(10)
    out["bt_rating"] = 1500 + scale * theta
    out["bt_se"] = scale * np.sqrt(np.diag(cov))
    a = m - m.T
    out["nash_avg"] = a @ reference.mene_enumerate(a)
    out.update(lifts_and_attribution(m, {"uw": m + m.T, "nw": nw, "nw_plus": nw_plus}, monte_carlo))
    # Keystone: dropping k from the full population, W(P ∖ {k}) − W(P), next to k's mass.
    out["keystone"] = np.column_stack([-out["level2"][:, :3], sigma])
    out["bounds"], out["strata"], out["stratified"] = causal_bounds(rows, names)
    out["regret_range"] = box_ranges(out["bounds"], sigma)
    return out


def msm_end(cell, gamma, sign):
    """The extreme (sign +1: max, −1: min) self-normalised weighted mean over the MSM weight
    box at Γ, by Dinkelbach's parametrisation: the optimum λ solves
    max_w Σ w·(sign·y − λ) = 0, whose inner maximum takes each weight at an end of its range."""
    from scipy.optimize import brentq

    y = sign * np.array([o[0] for o in cell])
    u = 1 / np.array([o[1] for o in cell]) - 1
    lo, hi = 1 + u / gamma, 1 + gamma * u

    def h(lam):
        d = y - lam
        return np.maximum(lo * d, hi * d).sum()

    return sign * brentq(h, y.min() - 1e-9, y.max() + 1e-9, xtol=1e-15, rtol=1e-15)


def cell_samples(rows, names, value="payoff"):
    """(value, propensity) per ordered cell (i, j), from both seats: the payoff, or the score
    (win 1, draw ½, loss 0)."""
    idx = {p: k for k, p in enumerate(names)}
    out = defaultdict(list)
    for r in rows:
        i, j, e, a, b = idx[r["policy_i"]], idx[r["policy_j"]], r["propensity"], r["payoff_i"], r["payoff_j"]
        if value == "score":
            a = 1.0 if a > b else (0.5 if a == b else 0.0)
            b = 1 - a
        out[i, j].append((a, e))
        out[j, i].append((b, e))
    return out


def payoff_range(rows):
    return (min(min(r["payoff_i"], r["payoff_j"]) for r in rows),
            max(max(r["payoff_i"], r["payoff_j"]) for r in rows))


def first_flip(band_lo, gamma_max):
    """Smallest Γ ≥ 1 with band_lo(ln Γ) ≤ 0 (1 if already at Γ = 1, None if not by
    gamma_max), by Brent's method on ln Γ."""
    from scipy.optimize import brentq

    if band_lo(0.0) <= 0:
        return 1.0
    if band_lo(np.log(gamma_max)) > 0:
        return None
    return float(np.exp(brentq(band_lo, 0.0, np.log(gamma_max), xtol=1e-12)))


def box_end(cell, gamma, sign, lo, hi):
    """One end of a cell's box at Γ: MSM where the pair met (all rows carry propensities),
    else the range [lo, hi]."""
    return msm_end(cell, gamma, sign) if cell else (hi if sign > 0 else lo)


def rank_tipping(rows, names, m, sigma, a, b, gamma_max=100.0):
    """Tipping Γ of "a ranks above b": the first Γ at which `Σ_j σ_j (lo_Γ(a, j) − hi_Γ(b, j))`
    reaches 0; 1 also when a's payoff against σ does not beat b's by more than the
    leaderboard's tie, 1e-9 of the range."""
    idx = {p: k for k, p in enumerate(names)}
    ia, ib = idx[a], idx[b]
    u = m @ sigma
    if u[ia] - u[ib] <= 1e-9 * (m.max() - m.min()):
        return 1.0
    obs, (lo_y, hi_y) = cell_samples(rows, names), payoff_range(rows)

    def band_lo(log_gamma):
        g = np.exp(log_gamma)
        return sum(sigma[j] * (box_end(obs[ia, j], g, -1, lo_y, hi_y) - box_end(obs[ib, j], g, 1, lo_y, hi_y))
                   for j in range(len(names)) if sigma[j] > 0)

    return first_flip(band_lo, gamma_max)


def rating_tipping(rows, names, a, b, gap, gamma_max=100.0):
    """Tipping Γ of "a rates above b" (rating gap `gap`): the score contrast of a round robin,
    `(1/(R−1))·(lo S_ab − hi S_ba + Σ_{k≠a,b} (lo S_ak − hi S_bk))`, each mean score bounded
    by MSM at Γ (else [0, 1]); every policy is rated here."""
    if gap <= 0:
        return 1.0
    idx = {p: k for k, p in enumerate(names)}
    scores = cell_samples(rows, names, "score")
    ia, ib, n = idx[a], idx[b], len(names)

    def band_lo(log_gamma):
        g = np.exp(log_gamma)
        total = box_end(scores[ia, ib], g, -1, 0, 1) - box_end(scores[ib, ia], g, 1, 0, 1)
        total += sum(box_end(scores[ia, k], g, -1, 0, 1) - box_end(scores[ib, k], g, 1, 0, 1)
                     for k in range(n) if k not in (ia, ib))
        return total / (n - 1)

    return first_flip(band_lo, gamma_max)


def equilibrium_tipping(rows, names, sigma, k, gamma_max=100.0):
    """Tipping Γ of "k has no profitable deviation from σ" (σ fixed): the first Γ at which
    k's largest regret over the box reaches 1e-7 of the payoff range. The regret is linear in
    M, with coefficient σ_j·[i = k] − σ_i·σ_j on M[i, j], so its largest value takes each
    cell's upper end where the coefficient is positive and its lower end where negative."""
    obs, (lo_y, hi_y) = cell_samples(rows, names), payoff_range(rows)
    ik = names.index(k)
    coef = -np.outer(sigma, sigma)
    coef[ik] += sigma
    tol = 1e-7 * (hi_y - lo_y)

    def band_lo(log_gamma):
        g = np.exp(log_gamma)
        top = sum(c * box_end(obs[i, j], g, 1 if c > 0 else -1, lo_y, hi_y)
                  for (i, j), c in np.ndenumerate(coef) if c != 0)
        return tol - top

    return first_flip(band_lo, gamma_max)


def tv_certificate(rows, names, a, b, lo_y, hi_y):
    """(naive, bound) of "a ranks above b" by context: arms are all of a's and all of b's
    observations; bound = M_a·TV(P(Z|a), P(Z)) + M_b·TV(P(Z|b), P(Z)), P(Z) pooling both arms,
    M_f the span of arm f's stratum means (the payoff range if it misses a stratum)."""
    arms = {a: defaultdict(list), b: defaultdict(list)}
    for r in rows:
        for seat, other, pay in (("policy_i", "policy_j", "payoff_i"), ("policy_j", "policy_i", "payoff_j")):
            if r[seat] in arms:
                arms[r[seat]][r["context"] or None].append(r[pay])
    strata = sorted(set(arms[a]) | set(arms[b]), key=lambda c: (c is not None, c or ""))
    count = {f: np.array([len(arms[f][z]) for z in strata], dtype=float) for f in (a, b)}
    pooled = (count[a] + count[b]) / (count[a].sum() + count[b].sum())

    def span(f):
        if (count[f] == 0).any():
            return hi_y - lo_y
        means = [np.mean(arms[f][z]) for z in strata]
        return max(means) - min(means)

    def tv(f):
        return 0.5 * np.abs(count[f] / count[f].sum() - pooled).sum()

    naive = np.mean(sum(arms[a].values(), [])) - np.mean(sum(arms[b].values(), []))
    return naive, span(a) * tv(a) + span(b) * tv(b)


def box_ranges(bounds, sigma):
    """Per Γ: the range of each regret and of the exploitability of the fixed σ over the box
    (each cell within its pooled MSM bound at Γ, else its Manski bound). The regret is linear
    in M, so its ends are sums over cells; the exploitability's minimum is an LP here."""
    from scipy.optimize import linprog

    n = len(sigma)
    out = []
    for g in range(len(GAMMAS)):
        lo = np.where(np.isnan(bounds[:, 2 + 2 * g]), bounds[:, 0], bounds[:, 2 + 2 * g])
        hi = np.where(np.isnan(bounds[:, 3 + 2 * g]), bounds[:, 1], bounds[:, 3 + 2 * g])
        coef = []
        for k in range(n):
            c = -np.outer(sigma, sigma)
            c[k] += sigma
            coef.append(c.ravel())
        coef = np.array(coef)
        r_lo = np.minimum(coef * lo, coef * hi).sum(1)
        r_hi = np.maximum(coef * lo, coef * hi).sum(1)
        # min over the box of max_k regret_k: variables (M, t), minimise t, coef·M − t ≤ 0.
        res = linprog(np.r_[np.zeros(n * n), 1], A_ub=np.hstack([coef, -np.ones((n, 1))]),
                      b_ub=np.zeros(n), bounds=[*zip(lo, hi), (None, None)], method="highs")
        out += [*r_lo, *r_hi, res.fun, r_hi.max()]
    return np.array(out)


GAMMAS = (1.0, 2.0, 4.0)


def causal_bounds(rows, names):
    """Manski bounds and marginal-sensitivity (Tan) bounds per cell, the latter as a
    linear-fractional program (Charnes–Cooper LP) over the weight box, not a threshold rule.
    Returns the pooled rows in (i, j) order ([manski lo, hi, msm lo, hi at each Γ in GAMMAS]),
    the per-stratum rows (a dict keyed by (i, j, stratum)) and the stratified rows: Σ_s w_s ·
    bound_s, w_s = the share of i's observations in stratum s, a stratum where i never met j
    entering with its Manski bound, each end clamped into the pooled bound."""
    from scipy.optimize import linprog

    n = len(names)
    obs, (lo_y, hi_y) = cell_samples(rows, names), payoff_range(rows)
    contexts = sorted({r["context"] or None for r in rows}, key=lambda c: (c is not None, c or ""))
    strat = defaultdict(list)  # (i, j, stratum) → samples
    for c in contexts:
        for (i, j), cell in cell_samples([r for r in rows if (r["context"] or None) == c], names).items():
            strat[i, j, c] = cell

    def msm(cell, gamma, sign):
        y = np.array([o[0] for o in cell])
        u = 1 / np.array([o[1] for o in cell]) - 1
        lo, hi = 1 + u / gamma, 1 + gamma * u
        k = len(y)
        # variables (t_1..t_k, s): max sign·Σ y t, Σ t = 1, lo·s ≤ t ≤ hi·s.
        a_ub = np.vstack([np.hstack([np.eye(k), -hi[:, None]]), np.hstack([-np.eye(k), lo[:, None]])])
        res = linprog(np.r_[-sign * y, 0], A_ub=a_ub, b_ub=np.zeros(2 * k),
                      A_eq=np.r_[np.ones(k), 0][None, :], b_eq=[1], bounds=[(0, None)] * (k + 1),
                      method="highs", options=dict(primal_feasibility_tolerance=1e-10,
                                                   dual_feasibility_tolerance=1e-10))
        return sign * -res.fun

    def bounds(cell, total):
        """[manski lo, hi, msm lo, hi per Γ] of one cell (or stratum) with i's `total`."""
        if not cell:  # never met: Manski is the payoff range; no MSM rows
            return [lo_y, hi_y] + [np.nan] * (2 * len(GAMMAS))
        mean, p = np.mean([o[0] for o in cell]), len(cell) / total
        row = [mean * p + lo_y * (1 - p), mean * p + hi_y * (1 - p)]
        for gamma in GAMMAS:
            row += [msm(cell, gamma, -1), msm(cell, gamma, 1)]
        return row

    table, strata, stratified = [], {}, []
    for i in range(n):
        total = sum(len(obs[i, k]) for k in range(n))
        for j in range(n):
            pooled = bounds(obs[i, j], total)
            table.append(pooled)
            mixed = np.zeros(len(pooled))
            for c in contexts:
                total_c = sum(len(strat[i, k, c]) for k in range(n))
                if total_c == 0:
                    continue
                row = np.array(bounds(strat[i, j, c], total_c))
                if strat[i, j, c]:
                    strata[i, j, c] = row
                manski = np.tile(row[:2], len(GAMMAS) + 1)
                mixed += total_c / total * np.where(np.isnan(row), manski, row)
            if not obs[i, j]:
                stratified.append([np.nan] * len(pooled))  # no stratified rows for a pair never met
                continue
            for k in range(0, len(pooled), 2):
                lo, hi = pooled[k], pooled[k + 1]
                mixed[k], mixed[k + 1] = min(max(mixed[k], lo), hi), max(min(mixed[k + 1], hi), lo)
            stratified.append(list(mixed))
    return np.array(table), strata, np.array(stratified)


def lifts_and_attribution(m, welfare, monte_carlo=None):
    """Level 1 and 2 per candidate, and Shapley/Banzhaf of v(S) = σ_Sᵀ W_S σ_S: exact, or with
    `monte_carlo` = (samples, seed) the estimates and standard errors of nashflow's stated
    sampling replayed (see `sampled_attribution`)."""
    n = len(m)
    solved = {}

    def sigma_of(s):
        s = tuple(s)
        if s not in solved:
            solved[s] = reference.mene_enumerate(m[np.ix_(s, s)])
        return solved[s]

    def value(w, s):
        if not s:
            return 0.0
        x = sigma_of(s)
        return x @ w[np.ix_(s, s)] @ x

    full = list(range(n))
    sigma = sigma_of(full)
    l1, l2 = [], []
    for c in range(n):
        b = [k for k in full if k != c]
        sb = sigma_of(b)
        pl = np.array([m[i, c] - sb @ m[i, b] for i in b])
        l1.append([*pl, pl.mean(), sb @ pl, pl.min(), pl.max()])
        shift = m[b] @ sigma - m[np.ix_(b, b)] @ sb
        l2.append([*(value(w, full) - value(w, b) for w in welfare.values()), sigma[c],
                   np.abs(sigma[b] - sb).sum(), *shift])
    out = dict(level1=np.array(l1), level2=np.array(l2))
    if monte_carlo:
        out.update(sampled_attribution(n, welfare, value, *monte_carlo))
        return out
    shapley = {k: np.zeros(n) for k in welfare}
    banzhaf = {k: np.zeros(n) for k in welfare}
    from itertools import combinations
    from math import factorial

    for i in range(n):
        others = [k for k in full if k != i]
        for size in range(n):
            weight = factorial(size) * factorial(n - size - 1) / factorial(n)
            for s in combinations(others, size):
                with_i = sorted((*s, i))
                for k, w in welfare.items():
                    gain = value(w, with_i) - value(w, list(s))
                    shapley[k][i] += weight * gain
                    banzhaf[k][i] += gain / 2 ** (n - 1)
    out.update(shapley=np.concatenate([shapley[k] for k in welfare]),
               banzhaf=np.concatenate([banzhaf[k] for k in welfare]))
    return out


def sampled_attribution(n, welfare, value, samples, seed):
    """Monte-Carlo Shapley and Banzhaf as nashflow states them: Shapley over `samples`
    permutations, each a Fisher–Yates shuffle of 0..n−1 (k from n−1 down to 1 swaps with
    below(draw, k+1)) on stream (seed, 1), crediting each entrant its marginal value; Banzhaf
    over `samples` coalitions on stream (seed, 2), player i a member when its draw is odd,
    crediting every player v(S ∪ {i}) − v(S ∖ {i}). Means and standard errors of the mean
    (sample variance with n − 1)."""
    gains = {("shapley", k): [[] for _ in range(n)] for k in welfare}
    gains.update({("banzhaf", k): [[] for _ in range(n)] for k in welfare})
    draws = reference.keyed_stream(seed, 1)
    for _ in range(samples):
        order = list(range(n))
        for k in range(n - 1, 0, -1):
            j = reference.below(next(draws), k + 1)
            order[k], order[j] = order[j], order[k]
        for k, w in welfare.items():
            members, prev = [], 0.0
            for i in order:
                members = sorted(members + [i])
                cur = value(w, members)
                gains["shapley", k][i].append(cur - prev)
                prev = cur
    draws = reference.keyed_stream(seed, 2)
    for _ in range(samples):
        inside = [next(draws) & 1 == 1 for _ in range(n)]
        for i in range(n):
            rest = [p for p in range(n) if inside[p] and p != i]
            for k, w in welfare.items():
                gains["banzhaf", k][i].append(value(w, sorted(rest + [i])) - value(w, rest))
    out = {}
    for kind in ("shapley", "banzhaf"):
        per = [np.array(gains[kind, k][i]) for k in welfare for i in range(n)]
        out[kind] = np.array([x.mean() for x in per])
        out[kind + "_se"] = np.array([x.std(ddof=1) / np.sqrt(len(x)) for x in per])
    return out


def nashflow_json(rows, command):
    """Writes `rows` as a CSV log, runs `command(path)` (a nashflow command printing JSON) and
    returns its one game."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "log.csv")
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        out = subprocess.run(command(path), capture_output=True, text=True, check=True).stdout
    g = json.loads(out)
    return g["games"][0] if "games" in g else g


def parser(doc, policies, matches):
    """The options every check shares: the binary, the seed and the log's size."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("nashflow")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--policies", type=int, default=policies)
    ap.add_argument("--matches", type=int, default=matches)
    return ap


def main():
    ap = parser(__doc__, 7, 4000)
    ap.add_argument("--dominant", action="store_true",
                    help="make p0 win every non-self match (the win graph is then not strongly connected)")
    ap.add_argument("--verbose", action="store_true", help="print every quantity's largest difference")
    ap.add_argument("--missing-cells", type=int, default=0,
                    help="drop every match of one self-play pair and of random other pairs until at least "
                         "this many cells are empty, so that column-mean imputation is checked too")
    ap.add_argument("--monte-carlo", type=int, default=0, metavar="SAMPLES",
                    help="check Level 3 by Monte Carlo (--exact-max 3, this many samples, --seed) instead of exactly")
    args = ap.parse_args()
    sampled = ["--exact-max", "3", "--mc-samples", str(args.monte_carlo), "--seed", str(args.seed)] \
        if args.monte_carlo else []
    monte_carlo = (args.monte_carlo, args.seed) if args.monte_carlo else None
    failures = 0
    for constant_sum in (True, False):
        rng = np.random.default_rng(args.seed + constant_sum)
        rows = match_log(rng, args.policies, args.matches, constant_sum)
        if args.missing_cells:
            # At most one empty cell per column: two imputed cells of one column are equal,
            # which makes ties (degenerate equilibria) that the reference does not handle.
            k = int(rng.integers(0, args.policies))
            dropped, used = {(f"p{k}", f"p{k}")}, {k}
            while len(dropped) < args.missing_cells and len(used) + 2 <= args.policies:
                a, b = (int(x) for x in rng.choice([q for q in range(args.policies) if q not in used], 2, replace=False))
                dropped |= {(f"p{a}", f"p{b}"), (f"p{b}", f"p{a}")}
                used |= {a, b}
            rows = [r for r in rows if (r["policy_i"], r["policy_j"]) not in dropped]
        if args.dominant:
            for r in rows:
                if r["policy_i"] == "p0" and r["policy_j"] != "p0":
                    r["payoff_i"], r["payoff_j"] = 1.0, 0.0
                elif r["policy_j"] == "p0" and r["policy_i"] != "p0":
                    r["payoff_i"], r["payoff_j"] = 0.0, 1.0
        g = nashflow_json(rows, lambda path: [args.nashflow, "analyze", path, "--format", "json", "--quiet",
                                              "--bounds", "--gamma", ",".join(str(x) for x in GAMMAS), *sampled])
        names = g["policies"]
        want = independent(rows, names, monte_carlo)
        bt = g["ratings"]["bradley_terry"]
        got = dict(payoff=np.array(g["matrices"]["payoff"]), sigma=np.array(g["sigma"]),
                   regret=np.array(g["regret"]), exploitability=g["exploitability"],
                   value=g["welfare"]["value"], uw=g["welfare"]["uw"], nw=g["welfare"]["nw"],
                   nw_plus=g["welfare"]["nw_plus"], ef1=g["welfare"]["ef1"],
                   vs_sigma=np.concatenate([g["vs_sigma"][k] for k in ("uw", "nw", "nw_plus", "ef1")]),
                   games=np.array(g["games_played"]), win_rate=np.array(g["win_rate"]),
                   elo=np.array([g["ratings"]["elo"][p] for p in names]),
                   bt_rating=np.array([bt[p]["rating"] for p in names]),
                   bt_se=np.array([bt[p]["se"] for p in names]),
                   nash_avg=np.array([g["ratings"]["nash_avg"][p] for p in names]),
                   regularized=float(g["ratings"]["regularized"]))
        l1, l2, l3 = g["level1"], g["level2"], g["level3"]
        got["level1"] = np.array([[*(l1[c]["per_incumbent"][p] for p in names if p != c), l1[c]["uniform_avg"],
                                   l1[c]["equilibrium_avg"], l1[c]["min"], l1[c]["max"]] for c in names])
        got["keystone"] = np.array([[*(k["removal_delta"][w] for w in ("uw", "nw", "nw_plus")), k["mass"]]
                                    for k in sorted(g["keystone"], key=lambda k: names.index(k["policy"]))])
        got["level2"] = np.array([[l2[c]["delta_eco"]["uw"], l2[c]["delta_eco"]["nw"],
                                   l2[c]["delta_eco"]["nw_plus"], l2[c]["entry_mass"],
                                   l2[c]["equilibrium_shift"], *(l2[c]["incumbent_shifts"][p] for p in names if p != c)]
                                  for c in names])
        assert l3["method"] == ("monte-carlo" if args.monte_carlo else "exact")
        pooled = {(b["policy_i"], b["policy_j"], b["method"], b["gamma"]): (b["lo"], b["hi"])
                  for b in g["causal"]["bounds"] if b["scope"] == "pooled" and b["policy_j"] is not None
                  and b["method"] in ("manski", "msm")}
        got["bounds"] = np.array([[*pooled[a, b, "manski", None],
                                   *(x for gm in GAMMAS for x in pooled.get((a, b, "msm", gm), (np.nan, np.nan)))]
                                  for a in names for b in names])
        rows_of = defaultdict(dict)
        for b in g["causal"]["bounds"]:
            if b["scope"] in ("stratum", "stratified") and b["method"] in ("manski", "msm"):
                rows_of[b["scope"], b["policy_i"], b["policy_j"], b["stratum"]][b["method"], b["gamma"]] = (b["lo"], b["hi"])

        def flat(r):
            return [*r.get(("manski", None), (np.nan, np.nan)),
                    *(x for gm in GAMMAS for x in r.get(("msm", gm), (np.nan, np.nan)))]

        ranges = {(b["method"], b["policy_i"], b["gamma"]): (b["lo"], b["hi"]) for b in g["causal"]["bounds"]
                  if b["method"] in ("regret", "exploitability")}
        got["regret_range"] = np.array([x for gm in GAMMAS for x in
                                        [*(ranges["regret", p, gm][0] for p in names),
                                         *(ranges["regret", p, gm][1] for p in names),
                                         *ranges["exploitability", None, gm]]])
        # Tipping Γ of each adjacent-rank claim nashflow made (msm): the pairs are nashflow's,
        # the Γ the reference's. nashflow reports the upper end of a bisection bracket of
        # relative width 1e-6, so the tolerance is relative.
        claims = [c for c in g["causal"]["certificates"] if c["kind"] == "rank" and c["method"] == "msm"]
        tip_got = np.array([np.nan if c["tipping_gamma"] is None else c["tipping_gamma"] for c in claims])
        tip_want = [rank_tipping(rows, names, want["payoff"], want["sigma"], c["policy"], c["other"]) for c in claims]
        tip_want = np.array([np.nan if t is None else t for t in tip_want])
        got["rank_tipping"] = np.log(tip_got)
        want["rank_tipping"] = np.log(tip_want)
        claims = [c for c in g["causal"]["certificates"] if c["kind"] == "rank" and c["method"] == "tv"]
        y_range = g["causal"]["payoff_range"]
        got["tv"] = np.array([[c["naive"], c["bound"], c["certified"]] for c in claims], dtype=float)
        tv_rows = []
        for c in claims:
            naive, bound = tv_certificate(rows, names, c["policy"], c["other"], *y_range)
            tv_rows.append([naive, bound, bound < abs(naive) and naive > 0])
        want["tv"] = np.array(tv_rows, dtype=float)
        claims = [c for c in g["causal"]["certificates"] if c["kind"] == "rating"]
        got["rating_tipping"] = np.log([np.nan if c["tipping_gamma"] is None else c["tipping_gamma"]
                                        for c in claims])
        tips = [rating_tipping(rows, names, c["policy"], c["other"], c["naive"]) for c in claims]
        want["rating_tipping"] = np.log([np.nan if t is None else t for t in tips])
        # Tipping Γ of each policy's equilibrium claim (the claims are nashflow's, σ and the
        # box the reference's).
        claims = [c for c in g["causal"]["certificates"] if c["kind"] == "equilibrium"]
        got["equilibrium_tipping"] = np.log([np.nan if c["tipping_gamma"] is None else c["tipping_gamma"]
                                             for c in claims])
        tips = [equilibrium_tipping(rows, names, want["sigma"], c["policy"]) for c in claims]
        want["equilibrium_tipping"] = np.log([np.nan if t is None else t for t in tips])
        got["stratified"] = np.array([flat(rows_of["stratified", a, b, None]) for a in names for b in names])
        # Per-stratum rows, in the reference's key order (cells where the stratum met).
        strata_keys = list(want["strata"])
        got["strata"] = np.array([flat(rows_of["stratum", names[i], names[j], c]) for i, j, c in strata_keys])
        want["strata"] = np.array([want["strata"][k] for k in strata_keys])
        got["shapley"] = np.array([l3["shapley"][k][p] for k in ("uw", "nw", "nw_plus") for p in names])
        got["banzhaf"] = np.array([l3["banzhaf"][k][p] for k in ("uw", "nw", "nw_plus") for p in names])
        if args.monte_carlo:
            for key in ("shapley_se", "banzhaf_se"):
                got[key] = np.array([l3[key][k][p] for k in ("uw", "nw", "nw_plus") for p in names])
        # Cell means are fixed-point sums (2⁻³² per match).
        tols = dict(payoff=1e-9, sigma=1e-8, regret=1e-8, exploitability=1e-8, value=1e-8,
                    uw=1e-8, nw=1e-8, nw_plus=1e-8, ef1=1e-8, vs_sigma=1e-8, games=0,
                    win_rate=1e-12, elo=1e-9, bt_rating=1e-7, bt_se=1e-7, nash_avg=1e-8,
                    regularized=0, level1=1e-8, level2=1e-8, keystone=1e-8, shapley=1e-8, banzhaf=1e-8,
                    bounds=1e-8, strata=1e-8, stratified=1e-8, regret_range=1e-8,
                    rank_tipping=2e-6, rating_tipping=2e-6,
                    equilibrium_tipping=2e-6, tv=1e-9)
        if args.monte_carlo:
            tols.update(shapley_se=1e-8, banzhaf_se=1e-8)
        kind = "constant-sum" if constant_sum else "general-sum"
        before = failures
        for key, tol in tols.items():
            x, y = np.asarray(got[key], dtype=float), np.asarray(want[key], dtype=float)
            # NaN marks a row both sides must lack (MSM of a pair that never met).
            d = float(np.abs(np.nan_to_num(x - y, nan=0.0)).max()) if (np.isnan(x) == np.isnan(y)).all() else np.inf
            bad = d > tol
            failures += bad
            if args.verbose:
                print(f"  {kind} {key}: max|Δ| {d:.1e}")
            if bad:
                print(f"{kind} {key}: max|Δ| {d:.2e} above {tol:g}\n  nashflow  {got[key]}\n  reference {want[key]}")
        support = int((want["sigma"] > 0).sum())
        print(f"analyze ({kind}, {args.policies} policies, {len(rows)} matches, support {support}): "
              f"{len(tols)} quantities, {'all within tolerance' if failures == before else 'FAILED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
