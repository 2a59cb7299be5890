//! Rendering of the causal bounds (issue #7): claim texts, the JSON section, the leaderboard's
//! robustness marks and the summary lines under it.

use nashflow_kernels::bounds::game::{Claim, Method};
use nashflow_kernels::bounds::{Certificate, GameBounds};
use serde_json::{json, Value};

use crate::report::num;

/// The claim as text, with policy names.
pub fn claim_text(c: &Certificate, policies: &[String]) -> String {
    match c.claim {
        Claim::RanksAbove { above, below } => {
            format!("{} ranks above {}", policies[above], policies[below])
        }
        Claim::RatesAbove { above, below } => {
            format!("{} rates above {}", policies[above], policies[below])
        }
        Claim::NoProfitableDeviation { policy } => {
            format!("{} has no profitable deviation from σ", policies[policy])
        }
    }
}

/// (kind, subject, other) columns of a claim.
pub fn claim_parts(c: &Certificate, policies: &[String]) -> (&'static str, String, Option<String>) {
    match c.claim {
        Claim::RanksAbove { above, below } => (
            "rank",
            policies[above].clone(),
            Some(policies[below].clone()),
        ),
        Claim::RatesAbove { above, below } => (
            "rating",
            policies[above].clone(),
            Some(policies[below].clone()),
        ),
        Claim::NoProfitableDeviation { policy } => ("equilibrium", policies[policy].clone(), None),
    }
}

pub fn to_json(b: &GameBounds, policies: &[String]) -> Value {
    let name = |k: Option<usize>| k.map(|k| policies[k].clone());
    let certificates: Vec<Value> = b
        .certificates
        .iter()
        .map(|c| {
            let (kind, subject, other) = claim_parts(c, policies);
            json!({
                "claim": claim_text(c, policies),
                "kind": kind,
                "policy": subject,
                "other": other,
                "method": c.method.name(),
                "naive": num(c.naive),
                "tipping_gamma": c.tipping_gamma.map(num),
                "certified": c.certified,
                "bound": num(c.bound),
            })
        })
        .collect();
    let rows: Vec<Value> = b
        .rows
        .iter()
        .map(|r| {
            json!({
                "policy_i": name(r.policy_i),
                "policy_j": name(r.policy_j),
                "stratum": r.stratum,
                "scope": r.scope,
                "gamma": r.gamma.map(num),
                "method": r.method.name(),
                "lo": num(r.lo),
                "hi": num(r.hi),
                "n": r.n,
            })
        })
        .collect();
    json!({
        "payoff_range": [num(b.range.0), num(b.range.1)],
        "certify_gamma": num(b.certify_gamma),
        "has_context": b.has_context,
        "certificates": certificates,
        "bounds": rows,
    })
}

/// The MSM certificate of "`policy` ranks above the next one", if any.
pub fn rank_certificate(b: &GameBounds, policy: usize) -> Option<&Certificate> {
    b.certificates.iter().find(|c| {
        c.method == Method::Msm
            && matches!(c.claim, Claim::RanksAbove { above, .. } if above == policy)
    })
}

/// The MSM certificate of "`policy` rates above the next one by rating", if any.
pub fn rating_certificate(b: &GameBounds, policy: usize) -> Option<&Certificate> {
    b.certificates
        .iter()
        .find(|c| matches!(c.claim, Claim::RatesAbove { above, .. } if above == policy))
}

/// A leaderboard cell for a rank certificate: its tipping Γ, `*` when not certified, `—`
/// when there is none (the last rank).
pub fn mark(b: &GameBounds, cert: Option<&Certificate>) -> String {
    match cert {
        None => "—".into(),
        Some(c) => {
            let g = match c.tipping_gamma {
                Some(g) => format!("{g:.2}"),
                None => format!(">{}", b.gamma_max),
            };
            if c.certified {
                g
            } else {
                format!("{g}*")
            }
        }
    }
}

/// Summary lines under the leaderboard.
pub fn summary(b: &GameBounds, policies: &[String]) -> String {
    let g = b.certify_gamma;
    let ranks: Vec<&Certificate> = b
        .certificates
        .iter()
        .filter(|c| c.method == Method::Msm && matches!(c.claim, Claim::RanksAbove { .. }))
        .collect();
    let certified = ranks.iter().filter(|c| c.certified).count();
    let mut out = format!(
        "causal bounds (payoff range [{}, {}]): {certified} of {} adjacent ranks certified up to Γ = {g} \
         (Γ-tip: the Γ at which a rank may swap with the next; * = not certified; >{}: never up to Γ_max)\n",
        b.range.0,
        b.range.1,
        ranks.len(),
        b.gamma_max,
    );
    let ratings: Vec<&Certificate> = b
        .certificates
        .iter()
        .filter(|c| matches!(c.claim, Claim::RatesAbove { .. }))
        .collect();
    if !ratings.is_empty() {
        out.push_str(&format!(
            "ratings: {} of {} adjacent rating ranks certified up to Γ = {g} (rating Γ-tip; \
             judged on a round robin where every pair meets equally often)\n",
            ratings.iter().filter(|c| c.certified).count(),
            ratings.len(),
        ));
    }
    let fragile: Vec<String> = b
        .certificates
        .iter()
        .filter(|c| matches!(c.claim, Claim::NoProfitableDeviation { .. }) && !c.certified)
        .map(|c| match c.claim {
            Claim::NoProfitableDeviation { policy } => policies[policy].clone(),
            _ => unreachable!(),
        })
        .collect();
    if fragile.is_empty() {
        out.push_str(&format!(
            "σ stays an equilibrium for every matrix in the box at Γ = {g}\n"
        ));
    } else {
        out.push_str(&format!(
            "σ may stop being an equilibrium at Γ ≤ {g}: profitable deviations possible for {}\n",
            fragile.join(", ")
        ));
    }
    if let Some(ex) = b
        .rows
        .iter()
        .find(|r| r.method == Method::Exploitability && r.gamma == Some(g))
    {
        out.push_str(&format!(
            "exploitability of σ over the box at Γ = {g}: [{:.6}, {:.6}]\n",
            ex.lo, ex.hi
        ));
    }
    let tv: Vec<&Certificate> = b
        .certificates
        .iter()
        .filter(|c| c.method == Method::Tv)
        .collect();
    if !tv.is_empty() {
        out.push_str(&format!(
            "context (TV omitted-variable bound): {} of {} adjacent ranks certified\n",
            tv.iter().filter(|c| c.certified).count(),
            tv.len()
        ));
    }
    out
}
