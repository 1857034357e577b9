//! The transaction every store call runs in: tokio-postgres's, with each fixed SQL text of the
//! store prepared once per pooled connection instead of once per call.
//!
//! `tokio_postgres::Transaction::query("...")` parses the text on every call (a Parse/Describe
//! round trip, then Bind/Execute, then a Close), so a search paid a parse and an extra round trip
//! for each of its ~9 statements on every request. [`Transaction`] has the same methods
//! (`query`, `query_one`, `query_opt`, `execute`, `prepare`) and signatures, so the store's call
//! sites are unchanged, but a text goes through the connection's
//! [`deadpool_postgres::StatementCache`] (one per pooled connection; PostgreSQL's prepared
//! statements are per session and outlive transactions, a rollback included): the first call
//! on a connection prepares it, later ones only bind and execute — one round trip.
//!
//! What is cached is bounded: the texts passed here are the store's own constant statements
//! (a `format!` of constants at most). Statements whose text depends on the request — the
//! search translation's page queries, whose text varies with the filter's shape and the number
//! of listed values — do not come here but go through [`Transaction::query_sql`]: PostgreSQL's
//! unnamed statement, parse + bind + execute in one round trip, planned for the actual values
//! each time (a cached statement's generic plan would be planned without them). As a guard
//! anyway, a connection's cache is emptied when it holds more than [`MAX_CACHED`] statements.
//!
//! Plans: the session's `plan_cache_mode` is `force_generic_plan` (set at connect), so a cached
//! statement is planned once per connection; `query_sql` switches to `force_custom_plan` for
//! its one statement and back.

use cairn_plugin_api::search::sql::{Sql, SqlParam};
use std::ops::Deref;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Error, Row, Statement};

/// Most prepared statements one connection keeps (the store has about 150 texts).
pub(crate) const MAX_CACHED: usize = 1000;

/// A store transaction: tokio-postgres's (which it dereferences to) with cached statements.
pub(crate) struct Transaction<'a> {
    inner: deadpool_postgres::Transaction<'a>,
}

/// What the query methods accept: a SQL text (prepared once per connection) or a statement.
pub(crate) trait ToCached: Sync {
    /// The text, or the statement already prepared.
    fn text_or_statement(&self) -> Result<&str, &Statement>;
}

impl ToCached for str {
    fn text_or_statement(&self) -> Result<&str, &Statement> {
        Ok(self)
    }
}

impl ToCached for String {
    fn text_or_statement(&self) -> Result<&str, &Statement> {
        Ok(self)
    }
}

impl ToCached for Statement {
    fn text_or_statement(&self) -> Result<&str, &Statement> {
        Err(self)
    }
}

impl<'a> Transaction<'a> {
    pub(crate) fn new(inner: deadpool_postgres::Transaction<'a>) -> Self {
        Self { inner }
    }

    /// The statement of `text`, prepared on this connection once.
    pub(crate) async fn prepare(&self, text: &str) -> Result<Statement, Error> {
        let statement = self.inner.prepare_cached(text).await?;
        let cache = &self.inner.statement_cache;
        if cache.size() > MAX_CACHED {
            // Dropping the last handle of a statement closes it on the server.
            cache.clear();
        }
        Ok(statement)
    }

    async fn statement<S: ?Sized + ToCached>(&self, s: &S) -> Result<Statement, Error> {
        match s.text_or_statement() {
            Ok(text) => self.prepare(text).await,
            Err(statement) => Ok(statement.clone()),
        }
    }

    /// Like `tokio_postgres::Transaction::query`, the statement cached.
    pub(crate) async fn query<S: ?Sized + ToCached>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, Error> {
        let statement = self.statement(statement).await?;
        self.inner.query(&statement, params).await
    }

    /// Like `tokio_postgres::Transaction::query_one`, the statement cached.
    pub(crate) async fn query_one<S: ?Sized + ToCached>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, Error> {
        let statement = self.statement(statement).await?;
        self.inner.query_one(&statement, params).await
    }

    /// Like `tokio_postgres::Transaction::query_opt`, the statement cached.
    pub(crate) async fn query_opt<S: ?Sized + ToCached>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, Error> {
        let statement = self.statement(statement).await?;
        self.inner.query_opt(&statement, params).await
    }

    /// Like `tokio_postgres::Transaction::execute`, the statement cached.
    pub(crate) async fn execute<S: ?Sized + ToCached>(
        &self,
        statement: &S,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, Error> {
        let statement = self.statement(statement).await?;
        self.inner.execute(&statement, params).await
    }

    /// Runs a statement of the search translation (text built per request), uncached: one
    /// round trip, its parameters typed as the translation binds them (`$n::int8`, `::float8`,
    /// `::text`).
    pub(crate) async fn query_sql(&self, sql: &Sql) -> Result<Vec<Row>, Error> {
        let owned = crate::store::owned_params(sql);
        let refs: Vec<(&(dyn ToSql + Sync), Type)> = owned
            .iter()
            .zip(&sql.params)
            .map(|(b, p)| {
                let t = match p {
                    SqlParam::Null | SqlParam::Text(_) => Type::TEXT,
                    SqlParam::Int(_) => Type::INT8,
                    SqlParam::Real(_) => Type::FLOAT8,
                };
                (&**b as &(dyn ToSql + Sync), t)
            })
            .collect();
        // The session plans statements generically (`plan_cache_mode`, set when the store
        // connects); this one is planned for its values, which decide between driving a
        // search from the experiment's rows or from a filter's index. The setting is switched
        // for it alone and back, in the same pipeline: one round trip for the three. All three
        // are awaited, and the query's own error wins: when it fails, the statement after it
        // fails too ("current transaction is aborted"), and that error says nothing.
        let (before, rows, after) = tokio::join!(
            self.inner
                .batch_execute("SET LOCAL plan_cache_mode = force_custom_plan"),
            self.inner.query_typed(&sql.text, &refs),
            self.inner
                .batch_execute("SET LOCAL plan_cache_mode = force_generic_plan"),
        );
        before?;
        let rows = rows?;
        after?;
        Ok(rows)
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), Error> {
        self.inner.commit().await
    }
}

impl<'a> Deref for Transaction<'a> {
    type Target = tokio_postgres::Transaction<'a>;

    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}
