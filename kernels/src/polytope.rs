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
        let mut vars = ProblemVariables::new();
        let x: Vec<_> = (0..self.dim)
            .map(|i| {
                if i < self.n_entropy {
                    vars.add(variable().min(0.0))
                } else {
                    vars.add(variable())
                }
            })
            .collect();
        let s = vars.add(variable().min(1.0));
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
        for (row, &y) in self.ineq.iter().zip(&y_row) {
            model = model.with((lin(row) + y - row.rhs * s).leq(0.0));
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
