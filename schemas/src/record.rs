//! The Match record (DESIGN §4). JSON field names equal Arrow column names.

use serde::{Deserialize, Serialize};

pub const DEFAULT_GAME: &str = "default";

/// One finished match (match layout), or one seat's view of it (perspective layout).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Match {
    /// Unique id; the idempotency key. Derived as `FILE:ROW` when a file has no such column.
    pub match_id: String,
    /// Event time, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    /// Meta-game name; independent games share one stream.
    #[serde(default = "default_game")]
    pub game: String,
    pub policy_i: String,
    pub policy_j: String,
    pub payoff_i: f64,
    pub payoff_j: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batna_i: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batna_j: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agreement: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef1: Option<bool>,
    /// Observed stratum / confounder (strings and integers are both kept as text). Boxed
    /// (16 bytes, not a `String`'s 24), as `source` is: the engine keeps every live record,
    /// and with both boxed a shared record fits mimalloc's 256-byte size class instead of
    /// the 320-byte one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Box<str>>,
    /// Probability in (0, 1] that the matchmaker chose this pairing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propensity: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Box<str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// A retraction cancels the earlier match with the same `match_id`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retract: bool,
}

fn default_game() -> String {
    DEFAULT_GAME.to_string()
}

/// How rows map to cells (DESIGN §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// One row per match; both seats contribute.
    #[default]
    Match,
    /// One row per seat (Python EGTA logs); a row contributes only to (policy_i, policy_j).
    Perspective,
}

impl std::str::FromStr for Layout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "match" => Ok(Layout::Match),
            "perspective" => Ok(Layout::Perspective),
            _ => Err(format!(
                "unknown layout `{s}`; expected match or perspective"
            )),
        }
    }
}

impl Match {
    /// A match with only the required fields set (every optional field empty).
    pub fn new(
        match_id: impl Into<String>,
        game: impl Into<String>,
        policy_i: impl Into<String>,
        policy_j: impl Into<String>,
        payoff_i: f64,
        payoff_j: f64,
    ) -> Match {
        Match {
            match_id: match_id.into(),
            ts: None,
            game: game.into(),
            policy_i: policy_i.into(),
            policy_j: policy_j.into(),
            payoff_i,
            payoff_j,
            batna_i: None,
            batna_j: None,
            agreement: None,
            ef1: None,
            context: None,
            propensity: None,
            source: None,
            seed: None,
            retract: false,
        }
    }

    /// The dedupe key: the match id, plus the seat pair in perspective layout (where both
    /// seats' rows of one match share its id).
    pub fn key(&self, layout: Layout) -> String {
        match layout {
            Layout::Match => self.match_id.clone(),
            Layout::Perspective => {
                format!(
                    "{}\u{1f}{}\u{1f}{}",
                    self.match_id, self.policy_i, self.policy_j
                )
            }
        }
    }

    /// Equality of content, ignoring the retraction flag. (Field by field, without copying
    /// the record: the destructuring makes a new field a compile error here until it is
    /// compared.)
    pub fn same_content(&self, other: &Match) -> bool {
        let Match {
            match_id,
            ts,
            game,
            policy_i,
            policy_j,
            payoff_i,
            payoff_j,
            batna_i,
            batna_j,
            agreement,
            ef1,
            context,
            propensity,
            source,
            seed,
            retract: _,
        } = self;
        *match_id == other.match_id
            && *ts == other.ts
            && *game == other.game
            && *policy_i == other.policy_i
            && *policy_j == other.policy_j
            && *payoff_i == other.payoff_i
            && *payoff_j == other.payoff_j
            && *batna_i == other.batna_i
            && *batna_j == other.batna_j
            && *agreement == other.agreement
            && *ef1 == other.ef1
            && *context == other.context
            && *propensity == other.propensity
            && *source == other.source
            && *seed == other.seed
    }
}

#[cfg(test)]
mod tests {
    use super::Match;

    /// The engine holds each live record in an `Arc` (two counters, 16 bytes, before it):
    /// keep that within 256 bytes, mimalloc's size class below 320.
    #[test]
    fn a_shared_record_fits_256_bytes() {
        let size = std::mem::size_of::<Match>();
        assert!(size + 16 <= 256, "Match is {size} bytes");
    }
}
