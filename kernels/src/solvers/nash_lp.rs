//! `nash-lp`: the maximin strategy `argmax_σ min_j (σᵀM)_j` by LP. For a symmetric
//! constant-sum game this is exactly a Nash equilibrium (not necessarily the max-entropy one);
//! for a general-sum game it is the security strategy.

use good_lp::{microlp, variable, Expression, ProblemVariables, Solution, SolverModel};

use crate::matrix::{clean_simplex, Matrix};
use crate::polytope::lp_error;
use crate::KernelError;

pub fn nash_lp(m: &Matrix) -> Result<Vec<f64>, KernelError> {
    let n = m.n();
    if n == 0 {
        return Ok(vec![]);
    }
    let m = m.normalized();
    let mut vars = ProblemVariables::new();
    let sigma: Vec<_> = (0..n)
        .map(|_| vars.add(variable().min(0.0).max(1.0)))
        .collect();
    let z = vars.add(variable().min(0.0).max(1.0));
    let mut model = vars.maximise(z).using(microlp);
    model = model.with(sigma.iter().copied().sum::<Expression>().eq(1.0));
    for j in 0..n {
        let col: Expression = (0..n)
            .filter(|&i| m[(i, j)] != 0.0)
            .map(|i| m[(i, j)] * sigma[i])
            .sum();
        model = model.with((col - z).geq(0.0));
    }
    let sol = model.solve().map_err(lp_error)?;
    Ok(clean_simplex(sigma.iter().map(|&s| sol.value(s)).collect()))
}
