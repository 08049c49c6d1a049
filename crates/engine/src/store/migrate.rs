//! The schema migration runner both backends share: the steps in order, the
//! `schema_migrations` table that records which ran, and the refusal to open a database that a
//! newer tandem has already migrated further.
//!
//! Each backend brings its folder of scripts (`migrations/sqlite/`, `migrations/postgres/`: the
//! same steps, versions and names, each in its dialect) and a [`Migrator`] that runs the
//! runner's few statements inside the transaction it migrates in. The backend takes its own
//! lock around that transaction (SQLite's write lock, PostgreSQL's advisory lock), so
//! instances starting together migrate one at a time.

use super::{StoreError, StoreResult};

/// One schema step. A version is never edited once released, only added to.
pub(crate) struct Step {
    pub version: i64,
    pub name: &'static str,
    pub sql: &'static str,
}

/// The steps read from `migrations/<folder>/`, in order.
macro_rules! steps {
    ($folder:literal) => {
        &[
            Step {
                version: 1,
                name: "initial",
                sql: include_str!(concat!("../../migrations/", $folder, "/0001_initial.sql")),
            },
            Step {
                version: 2,
                name: "link pending",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $folder,
                    "/0002_link_pending.sql"
                )),
            },
            Step {
                version: 3,
                name: "recorded creates",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $folder,
                    "/0003_recorded_creates.sql"
                )),
            },
            Step {
                version: 4,
                name: "lease owners",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $folder,
                    "/0004_lease_owners.sql"
                )),
            },
            Step {
                version: 5,
                name: "unreadable creates",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $folder,
                    "/0005_unreadable_creates.sql"
                )),
            },
            Step {
                version: 6,
                name: "operator actions",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $folder,
                    "/0006_operator_actions.sql"
                )),
            },
            Step {
                version: 7,
                name: "open events by id",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $folder,
                    "/0007_open_events_by_id.sql"
                )),
            },
            Step {
                version: 8,
                name: "comment links",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $folder,
                    "/0008_comment_links.sql"
                )),
            },
            Step {
                version: 9,
                name: "event attempts",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $folder,
                    "/0009_event_attempts.sql"
                )),
            },
            Step {
                version: 10,
                name: "conflict log",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $folder,
                    "/0010_conflict_log.sql"
                )),
            },
            Step {
                version: 11,
                name: "attachment links",
                sql: include_str!(concat!(
                    "../../migrations/",
                    $folder,
                    "/0011_attachment_links.sql"
                )),
            },
        ]
    };
}

/// The SQLite schema steps.
pub(crate) const SQLITE: &[Step] = steps!("sqlite");

/// The PostgreSQL schema steps.
pub(crate) const POSTGRES: &[Step] = steps!("postgres");

/// The newest version recorded, or none before the first migration.
pub(crate) const CURRENT_VERSION: &str = "SELECT MAX(version) FROM schema_migrations";

/// How one backend runs the runner's statements, on the connection of the transaction that
/// migrates.
pub(crate) trait Migrator {
    /// Creates `schema_migrations` if it is missing, in the backend's column types.
    async fn ensure_table(&mut self) -> Result<(), sqlx::Error>;
    /// [`CURRENT_VERSION`].
    async fn current_version(&mut self) -> Result<Option<i64>, sqlx::Error>;
    /// Runs one step's script (several statements).
    async fn run_script(&mut self, sql: &'static str) -> Result<(), sqlx::Error>;
    /// Records that `step` has been applied, timed as the backend times it.
    async fn record(&mut self, step: &Step) -> Result<(), sqlx::Error>;
}

/// Brings the schema up to the last of `steps`, or refuses a schema newer than that. The
/// caller commits (all steps together) or, on an error, drops the transaction.
pub(crate) async fn migrate(m: &mut impl Migrator, steps: &[Step]) -> StoreResult<()> {
    m.ensure_table().await?;
    let current = m.current_version().await?.unwrap_or(0);
    let latest = steps.last().map_or(0, |s| s.version);
    if current > latest {
        return Err(StoreError::Db(format!(
            "the database schema is at version {current}, newer than this tandem knows \
             ({latest}); run a newer tandem against it"
        )));
    }
    for step in steps.iter().filter(|s| s.version > current) {
        m.run_script(step.sql).await.map_err(|e| {
            StoreError::Db(format!(
                "migration {} ({}) failed: {e}",
                step.version, step.name
            ))
        })?;
        m.record(step).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A swapped or mistyped folder would give a backend the other dialect's scripts.
    #[test]
    fn each_backend_reads_its_own_folder() {
        assert!(
            SQLITE[0]
                .sql
                .starts_with("-- Tandem store, version 1 (SQLite).")
        );
        assert!(
            POSTGRES[0]
                .sql
                .starts_with("-- Tandem store, version 1 (PostgreSQL).")
        );
        assert!(SQLITE.iter().all(|s| !s.sql.contains("TIMESTAMPTZ")));
    }
}
