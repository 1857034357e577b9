//! The search translation is shared with the PostgreSQL store:
//! [`cairn_plugin_api::search::sql`], in the SQLite dialect. This module re-exports it and
//! adds what is SQLite's own: reading a sort key from a row and binding parameters.

pub(crate) use cairn_plugin_api::search::sql::*;
use rusqlite::types::{Value as SqlValue, ValueRef};

/// A new statement in the SQLite dialect.
pub(crate) fn sql() -> Sql {
    Sql::new(Dialect::Sqlite)
}

/// The value in column `i` of `row`, as a sort key.
pub(crate) fn sort_val(row: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<SortVal> {
    Ok(match row.get_ref(i)? {
        ValueRef::Null => SortVal::N,
        ValueRef::Integer(v) => SortVal::I(v),
        ValueRef::Real(v) => SortVal::R(v.to_bits()),
        ValueRef::Text(t) => SortVal::S(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => SortVal::S(String::from_utf8_lossy(b).into_owned()),
    })
}

/// The bound values of `sql` as rusqlite parameters.
pub(crate) fn params(sql: &Sql) -> rusqlite::ParamsFromIter<Vec<SqlValue>> {
    rusqlite::params_from_iter(sql.params.iter().map(to_sqlite).collect::<Vec<_>>())
}

fn to_sqlite(p: &SqlParam) -> SqlValue {
    match p {
        SqlParam::Null => SqlValue::Null,
        SqlParam::Int(v) => SqlValue::Integer(*v),
        SqlParam::Real(v) => SqlValue::Real(*v),
        SqlParam::Text(v) => SqlValue::Text(v.clone()),
    }
}
