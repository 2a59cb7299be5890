//! nashflow schemas: the Match record (DESIGN §4), its decoding and validation from CSV,
//! JSON Lines and Parquet, the dedupe/retraction ledger, and Arrow/Parquet codecs.

pub mod arrow_io;
pub mod chunked;
pub mod decode;
pub mod error;
mod hash_index;
mod json_fields;
pub mod ledger;
pub mod prefetch;
pub mod read;
pub mod record;
pub mod shared;

pub use error::{FileError, RecordError};
pub use ledger::{Kept, Ledger, Outcome};
pub use read::{read_file, ReadOutcome};
pub use record::{Layout, Match, DEFAULT_GAME};
pub use shared::{SharedBatch, SharedMatch};
