use nashflow_kernels::matrix::Matrix;
use nashflow_kernels::maxent::max_entropy;
use nashflow_kernels::polytope::{Polytope, Row};
use nashflow_kernels::rng::SplitMix64;
use std::time::Instant;
fn main() {
    let n = 100;
    let mut r = SplitMix64::new(3);
    let a = Matrix::from_fn(n, |_, _| r.next_f64());
    let m = Matrix::from_fn(n, |i, j| a[(i, j)] - a[(j, i)]).normalized();
    let c = m.constant_sum(1e-9).unwrap();
    let p = Polytope {
        dim: n,
        n_entropy: n,
        eq: vec![Row::new(vec![1.0; n], 1.0)],
        ineq: (0..n)
            .map(|k| Row::new(m.row(k).to_vec(), c / 2.0))
            .collect(),
    };
    for _ in 0..3 {
        let t = Instant::now();
        let ri = p.relative_interior().unwrap();
        let t1 = t.elapsed();
        let me = max_entropy(&p).unwrap();
        let t2 = t.elapsed();
        println!(
            "ri {:?} total maxent {:?} (maxent alone {:?}) zeros {}",
            t1,
            t2 - t1,
            t2 - t1 - t1,
            ri.zero.iter().filter(|z| **z).count()
        );
        let _ = me;
    }
}
