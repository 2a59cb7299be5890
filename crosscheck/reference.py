"""Independent reference solvers (numpy/scipy/mpmath) for `nashflow solve`'s mene, nash-lp,
prd, cce, lle and α-Rank.

They share no code or method with the Rust kernels where that matters: mene enumerates every
support, nash-lp is HiGHS's LP, lle integrates the branch's tangent ODE instead of
predictor-corrector continuation, cce uses scipy's L-BFGS-B on the dual (on the face found by
HiGHS LPs where the dual's optimum is at infinity) instead of projected Newton, and α-Rank
runs in 300-digit arithmetic instead of log space. The random streams at the end replay
nashflow's documented sampling conventions for the checks of its sampled outputs.
"""
import numpy as np
from scipy.integrate import solve_ivp
from scipy.optimize import linprog, minimize
from scipy.special import logsumexp


def normalise(m):
    lo, hi = m.min(), m.max()
    return np.zeros_like(m) if hi <= lo else (m - lo) / (hi - lo)


def prd(m, iterations=100_000, dt=1e-3, gamma=1e-6):
    """Projected replicator dynamics on the normalised matrix; clip at gamma, renormalise;
    the average of all iterates."""
    a = normalise(m)
    s = np.full(len(a), 1.0 / len(a))
    total = np.zeros(len(a))
    for _ in range(iterations):
        u = a @ s
        s = np.maximum(s + dt * s * (u - s @ u), gamma)
        s /= s.sum()
        total += s
    return total / total.sum()


def _cce_gains(m):
    """gains[k, i*n+j]: the symmetrised gain of deviating to k at the joint outcome (i, j)."""
    a = normalise(m)
    n = len(a)
    g = np.empty((n, n, n))
    for k in range(n):
        row = a[k][None, :] - a
        g[k] = 0.5 * (row + row.T)
    return g.reshape(n, -1)


def _max_entropy_dual(gs, free):
    """Minimises the dual ln Σ_c exp(−λ·gs[:, c]) of max entropy over the columns of `gs`
    subject to gs·p ≤ 0 (= 0 where `free`, whose multipliers are unbounded): L-BFGS-B, then
    Newton on the multipliers it left positive or free (the dual is smooth; its Hessian is
    the covariance of the gains under p), kept while it lowers the gradient. Returns p."""
    rows = gs.shape[0]

    def p_at(lam):
        e = -lam @ gs
        return np.exp(e - logsumexp(e))

    def f(lam):
        e = -lam @ gs
        lz = logsumexp(e)
        return lz, -(gs @ np.exp(e - lz))

    bounds = [(None, None) if t else (0, None) for t in free]
    lam = minimize(f, np.zeros(rows), jac=True, method="L-BFGS-B", bounds=bounds,
                   options=dict(ftol=1e-15, gtol=1e-12, maxiter=20000, maxcor=50)).x
    active = free | (lam > 0)

    def residual(lam):
        a = gs @ p_at(lam)
        return np.abs(a[active]).max(initial=0.0)

    for _ in range(20):
        p = p_at(lam)
        ga = gs[active]
        mean = ga @ p
        hess = (ga * p) @ ga.T - np.outer(mean, mean)
        step = np.linalg.lstsq(hess, mean, rcond=1e-14)[0]
        trial = lam.copy()
        trial[active] += step
        if (trial[~free] < 0).any() or residual(trial) >= residual(lam):
            break
        lam = trial
    return p_at(lam)


def cce_dual(m):
    """Max-entropy symmetric CCE via the dual. Returns (σ, max constraint violation); a large
    violation means the dual's optimum is at infinity (see `cce_face`)."""
    g = _cce_gains(m)
    n = len(m)
    p = _max_entropy_dual(g, np.zeros(n, dtype=bool))
    return p.reshape(n, n).sum(1), float((g @ p).max())


def cce_face(m, tol=1e-9):
    """Max-entropy CCE when the dual's optimum is at infinity (`cce_dual` reports a large
    violation): that happens when every CCE has some joint cells at zero, or holds some
    deviation constraint with equality. Facial reduction finds both by linear programs (HiGHS:
    the largest probability each cell can take over the CCE polytope, and the largest slack
    of each constraint); on the face they span, the reduced problem has an interior point, so
    its dual (equalities with free multipliers) has a finite optimum.
    Returns (σ, max constraint violation on the face)."""
    g = _cce_gains(m)
    n = len(m)
    cells = n * n
    ones = np.ones((1, cells))

    def largest(c):
        r = linprog(-c, A_ub=g, b_ub=np.zeros(n), A_eq=ones, b_eq=[1.0], bounds=(0, 1),
                    method="highs")
        if r.status != 0:
            raise RuntimeError(f"the CCE polytope LP failed: {r.message}")
        return -r.fun

    live = np.array([largest(np.eye(cells)[c]) > tol for c in range(cells)])
    tight = np.array([largest(-g[k]) <= tol for k in range(n)])
    p = np.zeros(cells)
    p[live] = _max_entropy_dual(g[:, live], tight)
    a = g @ p
    violation = float(max(np.abs(a[tight]).max(initial=0.0), a[~tight].max(initial=0.0)))
    return p.reshape(n, n).sum(1), violation


def maximin(m):
    """argmax_σ min_j (σᵀM)_j by HiGHS (a simplex method; unique on generic games)."""
    n = len(m)
    # Variables (σ, z): maximise z subject to z − (σᵀM)_j ≤ 0 and Σσ = 1.
    r = linprog(np.r_[np.zeros(n), -1.0], A_ub=np.hstack([-m.T, np.ones((n, 1))]), b_ub=np.zeros(n),
                A_eq=np.r_[np.ones(n), 0.0][None, :], b_eq=[1.0],
                bounds=[(0, None)] * n + [(None, None)], method="highs")
    if r.status != 0:
        raise RuntimeError(f"the maximin LP failed: {r.message}")
    sigma = np.maximum(r.x[:n], 0)
    return sigma / sigma.sum()


def lle(m, lam_max=1000.0):
    """Symmetric logit QRE at lam_max on the principal branch: integrates dz/ds = t(z), the
    unit tangent of H(y, λ) = y − λ·A e^y + lse(λ·A e^y) = 0 oriented by det [J; t] > 0, by
    DOP853 from uniform play at λ = 0, stops at λ = lam_max and polishes by Newton."""
    a = normalise(m)
    n = len(a)

    def parts(z):
        y, lam = z[:n], z[n]
        u = a @ np.exp(y)
        p = np.exp(lam * u - logsumexp(lam * u))
        jy = np.eye(n) - lam * (a - np.outer(np.ones(n), p @ a)) * np.exp(y)[None, :]
        return np.hstack([jy, (p @ u - u)[:, None]]), y - lam * u + logsumexp(lam * u)

    def tangent(_, z):
        j, _ = parts(z)
        t = np.linalg.svd(j)[2][-1]
        return t if np.linalg.det(np.vstack([j, t])) > 0 else -t

    def reached(_, z):
        return z[n] - lam_max

    reached.terminal, reached.direction = True, 1
    z0 = np.concatenate([np.full(n, -np.log(n)), [0.0]])
    sol = solve_ivp(tangent, (0, 1e6), z0, method="DOP853", rtol=1e-10, atol=1e-10,
                    events=reached)
    if sol.status != 1:
        raise RuntimeError(f"the ODE did not reach λ = {lam_max}: {sol.message}")
    y = sol.y_events[0][0][:n]
    for _ in range(100):
        j, h = parts(np.concatenate([y, [lam_max]]))
        d = np.linalg.solve(j[:, :n], -h)
        y = y + d
        if np.abs(d).max() < 1e-13:
            break
    s = np.exp(y)
    return s / s.sum()


def alpharank(m, pop=50, alpha=100.0, digits=300):
    """Single-population α-Rank, local selection model, on raw payoffs, in mpmath at
    `digits` decimal digits (no log-space tricks: e^{−m·α·Δ} is simply representable)."""
    import mpmath

    mpmath.mp.dps = digits
    n = len(m)
    if n == 1:
        return np.ones(1)

    def fixation(u):
        if u == 0:
            return mpmath.mpf(1) / pop
        return (1 - mpmath.exp(-u)) / (1 - mpmath.exp(-pop * u))

    # t[s][r]: probability of moving from resident s to r.
    t = mpmath.zeros(n, n)
    for s in range(n):
        for r in range(n):
            if r != s:
                t[s, r] = fixation(alpha * (mpmath.mpf(m[r][s]) - mpmath.mpf(m[s][r]))) / (n - 1)
        t[s, s] = 1 - sum(t[s, r] for r in range(n) if r != s)
    # π (T − I) = 0 with Σπ = 1: replace one equation by the normalisation.
    a = mpmath.zeros(n, n)
    for i in range(n):
        for j in range(n):
            a[i, j] = t[j, i] - (1 if i == j else 0)
    for j in range(n):
        a[n - 1, j] = 1
    b = mpmath.zeros(n, 1)
    b[n - 1] = 1
    pi = mpmath.lu_solve(a, b)
    return np.array([float(x) for x in pi])


def mene_enumerate(m, tol=1e-12):
    """Max-entropy symmetric Nash equilibrium of a nondegenerate game by enumerating every
    support S: solve M_SS x = v·1, Σx = 1, keep x > 0 with (Mx)_k ≤ v off S; the equilibria
    are then isolated points, and the one of largest entropy wins. Meant for generic games;
    raises when two equilibria tie in entropy."""
    from itertools import combinations

    a = np.asarray(m, dtype=float)
    n = len(a)
    tol = tol * max(a.max() - a.min(), 1e-300)
    found = []
    for size in range(1, n + 1):
        for s in combinations(range(n), size):
            s = list(s)
            k = np.zeros((size + 1, size + 1))
            k[:size, :size] = a[np.ix_(s, s)]
            k[:size, size] = -1
            k[size, :size] = 1
            rhs = np.zeros(size + 1)
            rhs[size] = 1
            if np.linalg.cond(k) > 1e12:
                # No isolated equilibrium here (antisymmetric games make every even-size
                # support singular; generic ones have a unique, odd-size support).
                continue
            sol = np.linalg.solve(k, rhs)
            x, v = sol[:size], sol[size]
            if (x <= tol).any():
                continue
            sigma = np.zeros(n)
            sigma[s] = x
            if (a @ sigma > v + tol).any():
                continue
            found.append(sigma)
    entropies = [-(p[p > 0] * np.log(p[p > 0])).sum() for p in found]
    order = np.argsort(entropies)[::-1]
    if len(found) > 1 and entropies[order[0]] - entropies[order[1]] < 1e-9:
        raise ValueError("degenerate game: two equilibria of equal entropy")
    return found[order[0]]


# nashflow's documented random streams (README, Conventions), for the checks that replay them.
MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def keyed_stream(seed, stream):
    """SplitMix64's sub-stream `stream` of `seed`: yields next_u64 values."""
    state = mix(seed ^ mix((stream + GOLDEN) & MASK))
    while True:
        state = (state + GOLDEN) & MASK
        yield mix(state)


def below(draw, k):
    """A draw mapped to 0..k−1, as `(draw · k) >> 64`."""
    return (draw * k) >> 64
