//! Polytopes `{x : A x = b, G x ≤ h, x_e ≥ 0 for the entropy coordinates}` and their
//! relative interior, found with one LP (Freund–Roundy–Todd homogenisation).
//!
//! The max-entropy solver needs a strictly feasible start and must know which inequalities
//! hold with equality on the whole polytope (implicit equalities): a log barrier on such a
//! row would be infinite. The LP below finds both at once.

use good_lp::{
    microlp, variable, Expression, ProblemVariables, ResolutionError, Solution, SolverModel,
};

use crate::KernelError;

/// Largest homogenisation scale in the relative-interior LP (first attempt).
const S_MAX: f64 = 1e6;
/// Attempts at a degenerate LP before a numerical failure is reported.
const ATTEMPTS: u64 = 12;

/// One linear row `coef · x (=|≤) rhs`.
#[derive(Clone, Debug)]
pub struct Row {
    pub coef: Vec<f64>,
    pub rhs: f64,
}

impl Row {
    pub fn new(coef: Vec<f64>, rhs: f64) -> Self {
        Row { coef, rhs }
    }

    pub fn eval(&self, x: &[f64]) -> f64 {
        self.coef.iter().zip(x).map(|(a, b)| a * b).sum()
    }
}

/// The first `n_entropy` coordinates are non-negative (they carry the entropy); the rest are free.
#[derive(Clone, Debug)]
pub struct Polytope {
    pub dim: usize,
    pub n_entropy: usize,
    pub eq: Vec<Row>,
    pub ineq: Vec<Row>,
}

/// What the relative-interior LP learned.
#[derive(Clone, Debug)]
pub struct RelativeInterior {
    /// A point with every non-implicit inequality (and non-zero coordinate) strictly slack.
    pub point: Vec<f64>,
    /// `implicit[k]`: inequality `k` holds with equality everywhere on the polytope.
    pub implicit: Vec<bool>,
    /// `zero[i]`: entropy coordinate `i` is 0 everywhere on the polytope.
    pub zero: Vec<bool>,
}

/// One attempt at a degenerate LP: the order in which variables/rows are handed to the solver
/// (identity first, then deterministic shuffles) and, for the relative-interior LP, the cap on
/// its homogenisation scale (cycled, since that variable is the badly scaled one).
pub struct Order(u64);

impl Order {
    /// Homogenisation cap for this attempt: 1e6, then 1e4 and 1e8 in turn.
    pub fn scale_cap(&self) -> f64 {
        [S_MAX, 1e4, 1e8][(self.0 % 3) as usize]
    }

    pub fn perm(&self, len: usize) -> Vec<usize> {
        let mut p: Vec<usize> = (0..len).collect();
        if self.0 > 0 {
            let mut rng = crate::rng::SplitMix64::keyed(self.0, len as u64);
            for k in (1..len).rev() {
                p.swap(k, rng.below(k + 1));
            }
        }
        p
    }
}

/// microlp occasionally fails on degenerate problems: it reports a singular basis, or, more
/// rarely, infeasibility of a feasible problem. Both depend on pivot order and scaling, so an
/// attempt is retried with the problem reordered: a numerical failure up to `ATTEMPTS` times,
/// and infeasibility is believed only when two differently ordered attempts agree.
pub fn retry_reordered<T>(
    mut solve: impl FnMut(&Order) -> Result<T, KernelError>,
) -> Result<T, KernelError> {
    let mut last = String::new();
    let mut infeasible = 0;
    for attempt in 0..ATTEMPTS {
        match solve(&Order(attempt)) {
            Err(KernelError::Numerical(e)) => last = e,
            Err(KernelError::Infeasible) => {
                infeasible += 1;
                if infeasible == 2 {
                    return Err(KernelError::Infeasible);
                }
            }
            other => return other,
        }
    }
    if infeasible > 0 {
        return Err(KernelError::Infeasible);
    }
    Err(KernelError::Numerical(last))
}

/// Maps the LP outcome into our error type.
pub(crate) fn lp_error(e: ResolutionError) -> KernelError {
    match e {
        ResolutionError::Infeasible => KernelError::Infeasible,
        other => KernelError::Numerical(format!("LP solver: {other}")),
    }
}

impl Polytope {
    /// Solves `max Σ y` over `A x = b s`, `G x + y ≤ h s`, `x_e − y_e ≥ 0`, `0 ≤ y ≤ 1`, `s ≥ 1`.
    /// Scaling a relative-interior point up makes every non-implicit slack ≥ 1, so at the optimum
    /// `y = 1` exactly on the non-implicit rows and `y = 0` on the implicit ones.
    pub fn relative_interior(&self) -> Result<RelativeInterior, KernelError> {
        retry_reordered(|order| self.relative_interior_ordered(order))
    }

    fn relative_interior_ordered(&self, order: &Order) -> Result<RelativeInterior, KernelError> {
        let perm = |len: usize| order.perm(len);
        let mut vars = ProblemVariables::new();
        let mut slots = vec![None; self.dim];
        for i in perm(self.dim) {
            slots[i] = Some(if i < self.n_entropy {
                vars.add(variable().min(0.0))
            } else {
                vars.add(variable())
            });
        }
        let x: Vec<_> = slots
            .into_iter()
            .map(|v| v.expect("every slot filled"))
            .collect();
        // Capping s makes the tolerance explicit: a direction in which the polytope is thinner
        // than ~1/S_MAX (in units of the payoff range) counts as flat (an implicit equality).
        let s = vars.add(variable().min(1.0).max(order.scale_cap()));
        let y_row: Vec<_> = (0..self.ineq.len())
            .map(|_| vars.add(variable().min(0.0).max(1.0)))
            .collect();
        let y_var: Vec<_> = (0..self.n_entropy)
            .map(|_| vars.add(variable().min(0.0).max(1.0)))
            .collect();
        let objective: Expression = y_row.iter().chain(y_var.iter()).copied().sum();
        let mut model = vars.maximise(objective).using(microlp);
        let lin = |row: &Row| -> Expression {
            row.coef
                .iter()
                .zip(&x)
                .filter(|(c, _)| **c != 0.0)
                .map(|(&c, &v)| c * v)
                .sum()
        };
        for row in &self.eq {
            model = model.with((lin(row) - row.rhs * s).eq(0.0));
        }
        for k in perm(self.ineq.len()) {
            let row = &self.ineq[k];
            model = model.with((lin(row) + y_row[k] - row.rhs * s).leq(0.0));
        }
        for (i, &y) in y_var.iter().enumerate() {
            model = model.with((x[i] - y).geq(0.0));
        }
        let sol = model.solve().map_err(lp_error)?;
        let sv = sol.value(s);
        let point: Vec<f64> = x.iter().map(|&v| sol.value(v) / sv).collect();
        let implicit = y_row.iter().map(|&y| sol.value(y) < 0.5).collect();
        let zero = y_var.iter().map(|&y| sol.value(y) < 0.5).collect();
        Ok(RelativeInterior {
            point,
            implicit,
            zero,
        })
    }
}
