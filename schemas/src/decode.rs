//! One decoding path for every input format: readers turn a row into named [`RawValue`]s,
//! and [`decode_row`] validates them into a [`Match`].

use crate::error::RecordError;
use crate::record::{Match, DEFAULT_GAME};

/// A cell value as read, before validation.
#[derive(Clone, Debug, PartialEq)]
pub enum RawValue {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
    /// A value of a type the decoder does not accept (nested JSON, Arrow lists…).
    Unsupported(String),
}

impl RawValue {
    fn render(&self) -> String {
        match self {
            RawValue::Null => "null".into(),
            RawValue::Bool(b) => b.to_string(),
            RawValue::Int(i) => i.to_string(),
            RawValue::UInt(u) => u.to_string(),
            RawValue::Float(f) => f.to_string(),
            RawValue::Str(s) => format!("{s:?}"),
            RawValue::Unsupported(t) => format!("<{t}>"),
        }
    }
}

/// Text quoted for an error's reason, cut after 40 characters (the dead letter's `raw` keeps
/// the whole record).
fn quoted(s: &str) -> String {
    const SHOWN: usize = 40;
    match s.char_indices().nth(SHOWN) {
        None => format!("{s:?}"),
        Some((cut, _)) => format!("{:?}… ({} characters)", &s[..cut], s.chars().count()),
    }
}

/// Payoffs and BATNAs must be smaller than this in magnitude: cell sums are exact fixed-point
/// integers (kernels `stats::MAX_MAGNITUDE`, which a cross-crate test keeps equal).
pub const MAX_MAGNITUDE: f64 = 2_147_483_648.0;

/// The columns the decoder understands; any other column is ignored.
pub const KNOWN_COLUMNS: &[&str] = &[
    "match_id",
    "ts",
    "game",
    "policy_i",
    "policy_j",
    "payoff_i",
    "payoff_j",
    "batna_i",
    "batna_j",
    "agreement",
    "ef1",
    "context",
    "propensity",
    "source",
    "seed",
    "retract",
    "diff",
];

/// The position of `name` in [`KNOWN_COLUMNS`] (a `match` rather than a scan: every field
/// of every record is looked up here).
pub fn column_index(name: &str) -> Option<usize> {
    Some(match name {
        "match_id" => 0,
        "ts" => 1,
        "game" => 2,
        "policy_i" => 3,
        "policy_j" => 4,
        "payoff_i" => 5,
        "payoff_j" => 6,
        "batna_i" => 7,
        "batna_j" => 8,
        "agreement" => 9,
        "ef1" => 10,
        "context" => 11,
        "propensity" => 12,
        "source" => 13,
        "seed" => 14,
        "retract" => 15,
        "diff" => 16,
        _ => return None,
    })
}

/// Renders a row for the dead-letter output as a JSON-like object.
pub fn render_row(fields: &[(&str, RawValue)]) -> String {
    let parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{k:?}: {}", v.render()))
        .collect();
    format!("{{{}}}", parts.join(", "))
}

struct Ctx<'a> {
    source: &'a str,
    row: u64,
    raw: &'a dyn Fn() -> String,
}

impl Ctx<'_> {
    fn err(&self, field: &str, reason: impl Into<String>) -> RecordError {
        RecordError {
            source_name: self.source.to_string(),
            row: self.row,
            field: (!field.is_empty()).then(|| field.to_string()),
            reason: reason.into(),
            raw: (self.raw)(),
        }
    }

    fn unsupported(&self, field: &str, t: &str) -> RecordError {
        self.err(field, format!("unknown column type {t}"))
    }

    fn string(&self, field: &str, v: Option<&RawValue>) -> Result<Option<String>, RecordError> {
        match v {
            None | Some(RawValue::Null) => Ok(None),
            Some(RawValue::Str(s)) if s.trim().is_empty() => Ok(None),
            Some(RawValue::Str(s)) => Ok(Some(s.trim().to_string())),
            Some(RawValue::Int(i)) => Ok(Some(i.to_string())),
            Some(RawValue::UInt(u)) => Ok(Some(u.to_string())),
            // A whole number as its digits (`as i64` would saturate, merging ids beyond
            // 2^63), from 1e21 on with an exponent (as JavaScript writes numbers). −0 is 0.
            Some(RawValue::Float(f)) if f.fract() == 0.0 && f.is_finite() => {
                Ok(Some(if f.abs() < 1e21 {
                    format!("{}", f + 0.0)
                } else {
                    format!("{f:e}")
                }))
            }
            Some(RawValue::Unsupported(t)) => Err(self.unsupported(field, t)),
            Some(other) => Err(self.err(field, format!("expected text, got {}", other.render()))),
        }
    }

    fn float(&self, field: &str, v: Option<&RawValue>) -> Result<Option<f64>, RecordError> {
        let x = match v {
            None | Some(RawValue::Null) => return Ok(None),
            Some(RawValue::Float(f)) => *f,
            Some(RawValue::Int(i)) => *i as f64,
            Some(RawValue::UInt(u)) => *u as f64,
            Some(RawValue::Str(s)) if s.trim().is_empty() => return Ok(None),
            Some(RawValue::Str(s)) => s
                .trim()
                .parse::<f64>()
                .map_err(|_| self.err(field, format!("expected a number, got {}", quoted(s))))?,
            Some(RawValue::Unsupported(t)) => return Err(self.unsupported(field, t)),
            Some(other) => {
                return Err(self.err(field, format!("expected a number, got {}", other.render())))
            }
        };
        if !x.is_finite() {
            return Err(self.err(field, format!("non-finite value {x}")));
        }
        if x.abs() >= MAX_MAGNITUDE && field != "ts" && field != "seed" {
            // `{}` would spell out every digit of a value like 1e300.
            let shown = if x.abs() < 1e15 {
                x.to_string()
            } else {
                format!("{x:e}")
            };
            return Err(self.err(field, format!("magnitude of {shown} is not below 2^31")));
        }
        Ok(Some(x))
    }

    fn int(&self, field: &str, v: Option<&RawValue>) -> Result<Option<i64>, RecordError> {
        match v {
            Some(RawValue::Int(i)) => Ok(Some(*i)),
            Some(RawValue::UInt(u)) => i64::try_from(*u)
                .map(Some)
                .map_err(|_| self.err(field, format!("integer {u} out of range"))),
            Some(RawValue::Str(s)) if !s.trim().is_empty() => s
                .trim()
                .parse::<i64>()
                .map(Some)
                .map_err(|_| self.err(field, format!("expected an integer, got {}", quoted(s)))),
            other => match self.float(field, other)? {
                None => Ok(None),
                Some(f) if f.fract() == 0.0 && f.abs() < 9.007e15 => Ok(Some(f as i64)),
                Some(f) => Err(self.err(field, format!("expected an integer, got {f}"))),
            },
        }
    }

    /// A non-negative integer up to 2^64 − 1 (a simulator's seed spans all 64 bits).
    fn uint(&self, field: &str, v: Option<&RawValue>) -> Result<Option<u64>, RecordError> {
        let text = match v {
            Some(RawValue::Str(s)) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        match (v, text) {
            (Some(RawValue::UInt(u)), _) => Ok(Some(*u)),
            (_, Some(u)) => Ok(Some(u)),
            _ => match self.int(field, v)? {
                Some(i) if i < 0 => Err(self.err(field, format!("{field} {i} is negative"))),
                i => Ok(i.map(|i| i as u64)),
            },
        }
    }

    /// Milliseconds since the Unix epoch: an integer, or an RFC 3339 / ISO 8601 time in text
    /// (`2026-01-01T12:00:00Z`, `2026-01-01 12:00:00.5+02:00`; no zone means UTC), floored
    /// to the millisecond.
    fn time(&self, field: &str, v: Option<&RawValue>) -> Result<Option<i64>, RecordError> {
        if let Some(RawValue::Str(s)) = v {
            let s = s.trim();
            if !s.is_empty() && s.parse::<i64>().is_err() {
                return arrow::compute::kernels::cast_utils::string_to_timestamp_nanos(s)
                    .map(|ns| Some(ns.div_euclid(1_000_000)))
                    .map_err(|_| {
                        self.err(
                            field,
                            format!(
                                "expected milliseconds since the epoch or an RFC 3339 time, got {}",
                                quoted(s)
                            ),
                        )
                    });
            }
        }
        self.int(field, v)
    }

    fn boolean(&self, field: &str, v: Option<&RawValue>) -> Result<Option<bool>, RecordError> {
        match v {
            None | Some(RawValue::Null) => Ok(None),
            Some(RawValue::Bool(b)) => Ok(Some(*b)),
            Some(RawValue::Int(0)) | Some(RawValue::UInt(0)) => Ok(Some(false)),
            Some(RawValue::Int(1)) | Some(RawValue::UInt(1)) => Ok(Some(true)),
            Some(RawValue::Float(f)) if *f == 0.0 || *f == 1.0 => Ok(Some(*f == 1.0)),
            Some(RawValue::Str(s)) => match s.trim().to_ascii_lowercase().as_str() {
                "" => Ok(None),
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(self.err(
                    field,
                    format!("expected true/false or 1/0, got {}", quoted(s)),
                )),
            },
            Some(RawValue::Unsupported(t)) => Err(self.unsupported(field, t)),
            Some(other) => Err(self.err(
                field,
                format!("expected true/false or 1/0, got {}", other.render()),
            )),
        }
    }
}

/// Validates one row. `derived_id` names a row that has no `match_id` (called only then).
pub fn decode_row(
    source: &str,
    row: u64,
    fields: &[(&str, RawValue)],
    derived_id: impl FnOnce() -> String,
) -> Result<Match, RecordError> {
    let raw = || render_row(fields);
    let cx = Ctx {
        source,
        row,
        raw: &raw,
    };
    // Each known column's first value, by position.
    let mut slots: [Option<&RawValue>; KNOWN_COLUMNS.len()] = [None; KNOWN_COLUMNS.len()];
    for (k, v) in fields {
        if let Some(slot) = column_index(k).map(|i| &mut slots[i]) {
            slot.get_or_insert(v);
        }
    }
    let get = |name: &str| column_index(name).and_then(|i| slots[i]);
    let required_text = |name: &str| -> Result<String, RecordError> {
        cx.string(name, get(name))?
            .ok_or_else(|| cx.err(name, "missing or empty policy name"))
    };
    let match_id = cx
        .string("match_id", get("match_id"))?
        .unwrap_or_else(derived_id);
    let diff = cx.int("diff", get("diff"))?;
    let retract = match (cx.boolean("retract", get("retract"))?, diff) {
        (_, Some(d)) if d != 1 && d != -1 => {
            return Err(cx.err("diff", format!("diff must be 1 or -1, got {d}")))
        }
        (Some(r), _) => r || diff == Some(-1),
        (None, d) => d == Some(-1),
    };
    let game = cx
        .string("game", get("game"))?
        .unwrap_or_else(|| DEFAULT_GAME.to_string());
    let ts = cx.time("ts", get("ts"))?;
    if retract {
        // A retraction needs only its id; the rest is kept if present and valid.
        let text = |f: &str| cx.string(f, get(f)).ok().flatten().unwrap_or_default();
        let num = |f: &str| cx.float(f, get(f)).ok().flatten().unwrap_or(0.0);
        return Ok(Match {
            ts,
            retract: true,
            ..Match::new(
                match_id,
                game,
                text("policy_i"),
                text("policy_j"),
                num("payoff_i"),
                num("payoff_j"),
            )
        });
    }
    let policy_i = required_text("policy_i")?;
    let policy_j = required_text("policy_j")?;
    let payoff = |name: &str| -> Result<f64, RecordError> {
        cx.float(name, get(name))?
            .ok_or_else(|| cx.err(name, "missing payoff"))
    };
    let payoff_i = payoff("payoff_i")?;
    let payoff_j = payoff("payoff_j")?;
    let propensity = cx.float("propensity", get("propensity"))?;
    if let Some(p) = propensity {
        if !(p > 0.0 && p <= 1.0) {
            return Err(cx.err("propensity", format!("propensity {p} is outside (0, 1]")));
        }
    }
    let seed = cx.uint("seed", get("seed"))?;
    Ok(Match {
        match_id,
        ts,
        game,
        policy_i,
        policy_j,
        payoff_i,
        payoff_j,
        batna_i: cx.float("batna_i", get("batna_i"))?,
        batna_j: cx.float("batna_j", get("batna_j"))?,
        agreement: cx.boolean("agreement", get("agreement"))?,
        ef1: cx.boolean("ef1", get("ef1"))?,
        context: cx
            .string("context", get("context"))?
            .map(String::into_boxed_str),
        propensity,
        source: cx
            .string("source", get("source"))?
            .map(String::into_boxed_str),
        seed,
        retract: false,
    })
}

#[cfg(test)]
mod tests {
    use super::{column_index, KNOWN_COLUMNS};

    #[test]
    fn column_index_agrees_with_the_column_list() {
        for (k, name) in KNOWN_COLUMNS.iter().enumerate() {
            assert_eq!(column_index(name), Some(k), "{name}");
        }
        assert_eq!(column_index("raw_payoff_i"), None);
        assert_eq!(column_index(""), None);
    }
}
