//! Storage adapters for the domain's [`crate::domain::Store`] port.
//!
//! [`SqliteStore`] is the default: one file in the data directory, WAL
//! journal, migrations from `server/migrations` applied at start. The SQL is
//! plain (no SQLite-only features beyond `RETURNING`, which PostgreSQL has
//! too) so that a PostgreSQL adapter can follow the same statements.

mod sqlite;

pub use sqlite::{GroupCommitStats, SqliteStore};
