//! Planner statistics that follow a burst of writes within seconds, not minutes.
//!
//! A search's plan is only as good as the planner's statistics on runs, params, tags and
//! latest_metrics. Right after a table has been filled (a new database, an experiment of
//! thousands of runs written in a minute) PostgreSQL still believes what the last ANALYZE saw,
//! often "empty", and plans nested loops that probe the wrong index once per run: measured,
//! 98 ms of database CPU per `search_runs` against 6 ms on the same rows once analysed.
//! Autovacuum fixes it only on one of its rounds, every `autovacuum_naptime` (a minute by
//! default), and schema version 4's per-table thresholds cannot make that sooner.
//!
//! So the store watches its own writes: the first committed write starts a watcher task, which
//! looks once a second while writes go on, and once more when they have stopped for
//! [`QUIET_CHECK`] (PostgreSQL's backends publish their last counts up to ten seconds after
//! they go idle), then ends. A look is one catalogue query (`pg_stat_user_tables`, the
//! cluster-wide counts, so writes through any replica count) and an `ANALYZE` of the tables of
//! the store's schema whose rows changed since their last analyse by at least [`MIN_CHANGED`]
//! rows and [`STALE_FRACTION`] of the rows the planner believes they hold. A table that keeps
//! its size (updates of latest values) is thus re-analysed rarely, a table that grows
//! geometrically often, and a burst's end is seen within about a second. Replicas do not
//! analyse the same tables at once: a look runs under a transaction-level advisory lock that a
//! replica which does not get it simply skips.
//!
//! Nothing here can fail a request: a failed look is retried on the next one, and a role that
//! may not analyse the tables (not their owner) turns the watcher off for the process.

use deadpool_postgres::Pool;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// Fewest changed rows that make a table's statistics stale.
const MIN_CHANGED: i64 = 500;
/// Changed rows, as a fraction of the rows the planner believes a table holds, that make its
/// statistics stale.
const STALE_FRACTION: f64 = 0.2;
/// How often the watcher looks while writes go on.
const PERIOD: Duration = Duration::from_secs(1);
/// How long after the last write the watcher looks one last time: PostgreSQL's backends
/// publish their statistics at most once a second while busy, and up to ten seconds after
/// they go idle.
const QUIET_CHECK: u32 = 11;
/// The advisory lock a look runs under ("Cair" + 1: one above the experiment lock).
const STATS_LOCK: i64 = 0x4361_6974;

/// The watcher's state, one per store (shared by its clones).
#[derive(Debug, Default)]
pub(crate) struct Statistics {
    /// Writes committed since the watcher's last look.
    writes: AtomicU64,
    /// A watcher task is running.
    watching: AtomicBool,
    /// The role may not analyse the tables: no more looks in this process.
    off: AtomicBool,
}

impl Statistics {
    /// Called after each committed write, on the store's runtime: counts it, and starts the
    /// watcher if none runs.
    pub(crate) fn wrote(self: &Arc<Self>, pool: &Pool) {
        self.writes.fetch_add(1, Ordering::Relaxed);
        if self.off.load(Ordering::Relaxed) || self.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        let (this, pool) = (self.clone(), pool.clone());
        tokio::spawn(async move { this.watch(&pool).await });
    }

    async fn watch(&self, pool: &Pool) {
        let mut quiet = 0;
        loop {
            tokio::time::sleep(PERIOD).await;
            if self.writes.swap(0, Ordering::AcqRel) > 0 {
                quiet = 0;
            } else {
                quiet += 1;
            }
            if quiet == 0 || quiet == QUIET_CHECK {
                self.look(pool).await;
            }
            if quiet >= QUIET_CHECK {
                self.watching.store(false, Ordering::Release);
                // A write counted after the last swap saw `watching` set and started nothing:
                // go on watching for it, unless another watcher has started meanwhile.
                if self.writes.load(Ordering::Acquire) == 0
                    || self.watching.swap(true, Ordering::AcqRel)
                {
                    return;
                }
                quiet = 0;
            }
        }
    }

    /// One look: analyses the stale tables, if this replica gets the lock.
    async fn look(&self, pool: &Pool) {
        if self.off.load(Ordering::Relaxed) {
            return;
        }
        match analyse_stale(pool).await {
            Ok(()) => {}
            Err(e)
                if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) =>
            {
                tracing::warn!(
                    "the PostgreSQL store cannot ANALYZE its tables ({e}); planner statistics \
                     are left to autovacuum"
                );
                self.off.store(true, Ordering::Relaxed);
            }
            Err(e) => tracing::debug!("planner statistics look failed: {e}"),
        }
    }
}

/// Analyses the tables of the store's schema whose statistics are stale (nothing when another
/// replica holds the lock, or no pooled connection is free). Simple queries (the values are
/// this module's constants): nothing is added to the connection's statement cache.
async fn analyse_stale(pool: &Pool) -> Result<(), tokio_postgres::Error> {
    use tokio_postgres::SimpleQueryMessage::Row;
    let Ok(mut client) = pool.get().await else {
        return Ok(());
    };
    let tx = client.transaction().await?;
    let locked = tx
        .simple_query(&format!("SELECT pg_try_advisory_xact_lock({STATS_LOCK})"))
        .await?
        .iter()
        .any(|m| matches!(m, Row(r) if r.get(0) == Some("t")));
    if !locked {
        return Ok(());
    }
    let tables: Vec<String> = tx
        .simple_query(&format!(
            "SELECT format('%I', s.relname) FROM pg_stat_user_tables s \
             JOIN pg_class c ON c.oid = s.relid \
             WHERE s.schemaname = current_schema() AND s.n_mod_since_analyze >= {MIN_CHANGED} \
             AND s.n_mod_since_analyze >= {STALE_FRACTION} * greatest(c.reltuples, 0) \
             ORDER BY 1"
        ))
        .await?
        .iter()
        .filter_map(|m| match m {
            Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .collect();
    if !tables.is_empty() {
        tx.batch_execute(&format!("ANALYZE {}", tables.join(", ")))
            .await?;
    }
    tx.commit().await
}
