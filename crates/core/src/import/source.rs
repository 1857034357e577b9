//! Reading MLflow's own SQL schema (as `mlflow server` writes it, SQLite or PostgreSQL): a
//! small row interface over both drivers, the alembic revisions Cairn knows, and the column
//! checks that let one reader serve every known revision.

use crate::error::{Error, Result};
use std::collections::{HashMap, HashSet};

/// The alembic revisions of MLflow's tracking schema up to 3.18 (every file of
/// `mlflow/store/db_migrations/versions` in MLflow 3.18.0). A database at any other revision
/// (a newer MLflow, a fork) is refused before anything is read.
pub(crate) const KNOWN_REVISIONS: &[&str] = &[
    "0584bdc529eb",
    "0a8213491aaa",
    "0c779009ac13",
    "17e22815139b",
    "181f10493468",
    "1971f2d9a75b",
    "1a0cddfcaa16",
    "1b5f0d9ad7c1",
    "1bd49d398cd23",
    "27a6a02d2cf1",
    "2b4d017a5e9b",
    "2c33131f4dae",
    "2d6e25af4d3e",
    "3500859a5d39",
    "39d1c3be5f05",
    "3da73c924c2f",
    "400f98739977",
    "4465047574b1",
    "451aebb31d03",
    "534353b11cbc",
    "5b0e9adcef9c",
    "5d2d30f0abce",
    "6953534de441",
    "6f8d9c3b2a1e",
    "71994744cf8e",
    "728d730b5ebd",
    "75868b020152",
    "76601a5f987d",
    "770bee3ae1dd",
    "7ac759974ad8",
    "7d34483879f0",
    "7f2a7d5fae7d",
    "84291f40a231",
    "867495a8f9d4",
    "89d3d66ed43f",
    "89d4b8295536",
    "8b6ad64cb8f5",
    "90e64c465722",
    "97727af70f4d",
    "a1b2c3d4e5f6",
    "a5b4c3d2e1f0",
    "a8b9c0d1e2f3",
    "a8c4a736bde6",
    "acf3f17fdcc7",
    "ae8bbe7743c9",
    "b7c8d9e0f1a2",
    "b7e2c1a4d9f3",
    "b7e4c1a90f23",
    "bd07f7e963c5",
    "bda7b8c39065",
    "bf29a5ff90ea",
    "c1d2e3f4a5b6",
    "c3d6457b6d8a",
    "c3d9e7f1a2b4",
    "c48cb773bb87",
    "c8d9e0f1a2b3",
    "c9d4e5f6a7b8",
    "cbc13b556ace",
    "cc1f77228345",
    "cfd24bdc0731",
    "d0e1f2a3b4c5",
    "d3e4f5a6b7c8",
    "da6fb0208061",
    "dc11669786a5",
    "de4033877273",
    "df50e92ffc5e",
    "e1f2a3b4c5d6",
    "e7d1f4b2a9c6",
    "f4a9b2c7d1e6",
    "f5a4f2784254",
];

/// One value of a row, whatever the driver's type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

impl Val {
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Val::Null => None,
            Val::Text(s) => Some(s.clone()),
            Val::Int(i) => Some(i.to_string()),
            Val::Real(r) => Some(r.to_string()),
        }
    }

    pub(crate) fn text_or_empty(&self) -> String {
        self.text().unwrap_or_default()
    }

    pub(crate) fn int(&self) -> Option<i64> {
        match self {
            Val::Int(i) => Some(*i),
            Val::Real(r) => Some(*r as i64),
            Val::Text(s) => s.parse().ok(),
            Val::Null => None,
        }
    }

    pub(crate) fn real(&self) -> Option<f64> {
        match self {
            Val::Real(r) => Some(*r),
            Val::Int(i) => Some(*i as f64),
            Val::Text(s) => s.parse().ok(),
            Val::Null => None,
        }
    }

    pub(crate) fn truthy(&self) -> bool {
        self.int().is_some_and(|i| i != 0)
    }
}

/// A source database. Statements use `?` placeholders; the PostgreSQL driver numbers them.
pub(crate) trait Db {
    /// Every row of `sql` with `args` bound.
    fn rows(&mut self, sql: &str, args: &[Val]) -> Result<Vec<Vec<Val>>>;
    /// The tables of the database's (current) schema.
    fn tables(&mut self) -> Result<HashSet<String>>;
    /// The columns of `table`.
    fn columns(&mut self, table: &str) -> Result<HashSet<String>>;
}

pub(crate) fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Import(format!("reading the MLflow database failed ({what}): {e}"))
}

/// MLflow's SQLite file, opened read-only.
pub(crate) struct Sqlite(rusqlite::Connection);

impl Sqlite {
    pub(crate) fn open(path: &str) -> Result<Sqlite> {
        if !std::path::Path::new(path).is_file() {
            return Err(Error::Import(format!(
                "the MLflow SQLite database '{path}' does not exist"
            )));
        }
        let conn = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| failed("open", e))?;
        Ok(Sqlite(conn))
    }
}

impl Db for Sqlite {
    fn rows(&mut self, sql: &str, args: &[Val]) -> Result<Vec<Vec<Val>>> {
        use rusqlite::types::{Value, ValueRef};
        let mut stmt = self.0.prepare_cached(sql).map_err(|e| failed(sql, e))?;
        let params: Vec<Value> = args
            .iter()
            .map(|a| match a {
                Val::Null => Value::Null,
                Val::Int(i) => Value::Integer(*i),
                Val::Real(r) => Value::Real(*r),
                Val::Text(s) => Value::Text(s.clone()),
            })
            .collect();
        let n = stmt.column_count();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(|e| failed(sql, e))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next().map_err(|e| failed(sql, e))? {
            let mut row = Vec::with_capacity(n);
            for i in 0..n {
                row.push(match r.get_ref(i).map_err(|e| failed(sql, e))? {
                    ValueRef::Null => Val::Null,
                    ValueRef::Integer(i) => Val::Int(i),
                    ValueRef::Real(f) => Val::Real(f),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Val::Text(String::from_utf8_lossy(t).into_owned())
                    }
                });
            }
            out.push(row);
        }
        Ok(out)
    }

    fn tables(&mut self) -> Result<HashSet<String>> {
        Ok(self
            .rows("SELECT name FROM sqlite_master WHERE type = 'table'", &[])?
            .into_iter()
            .filter_map(|r| r[0].text())
            .collect())
    }

    fn columns(&mut self, table: &str) -> Result<HashSet<String>> {
        Ok(self
            .rows(
                "SELECT name FROM pragma_table_info(?)",
                &[Val::Text(table.into())],
            )?
            .into_iter()
            .filter_map(|r| r[0].text())
            .collect())
    }
}

/// MLflow's PostgreSQL database, read in one REPEATABLE READ, READ ONLY transaction (one
/// snapshot for the whole import) on a current-thread runtime of its own.
#[cfg(feature = "store-postgres")]
pub(crate) struct Postgres {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
    statements: HashMap<String, tokio_postgres::Statement>,
}

#[cfg(feature = "store-postgres")]
impl Postgres {
    pub(crate) fn open(uri: &str) -> Result<Postgres> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(Error::Runtime)?;
        let client = rt.block_on(async {
            let client = cairn_store_postgres::connect(uri)
                .await
                .map_err(|e| failed("connect", e.message))?;
            client
                .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await
                .map_err(|e| failed("begin", e))?;
            Ok::<_, Error>(client)
        })?;
        Ok(Postgres {
            rt,
            client,
            statements: HashMap::new(),
        })
    }
}

#[cfg(feature = "store-postgres")]
impl Db for Postgres {
    fn rows(&mut self, sql: &str, args: &[Val]) -> Result<Vec<Vec<Val>>> {
        use tokio_postgres::types::{ToSql, Type};
        let mut text = String::with_capacity(sql.len() + 8);
        let mut n = 0;
        for c in sql.chars() {
            if c == '?' {
                n += 1;
                text.push_str(&format!("${n}"));
            } else {
                text.push(c);
            }
        }
        let Postgres {
            rt,
            client,
            statements,
        } = self;
        rt.block_on(async {
            let stmt = match statements.get(&text) {
                Some(s) => s.clone(),
                None => {
                    let s = client.prepare(&text).await.map_err(|e| failed(sql, e))?;
                    statements.insert(text.clone(), s.clone());
                    s
                }
            };
            // Each argument converted to the type PostgreSQL inferred for its placeholder.
            let mut owned: Vec<Box<dyn ToSql + Sync + Send>> = Vec::with_capacity(args.len());
            for (a, t) in args.iter().zip(stmt.params()) {
                owned.push(match (a, t) {
                    (Val::Null, _) => Box::new(Option::<String>::None),
                    (v, t) if *t == Type::INT8 => Box::new(v.int()),
                    (v, t) if *t == Type::INT4 => Box::new(v.int().map(|i| i as i32)),
                    (v, t) if *t == Type::FLOAT8 => Box::new(v.real()),
                    (v, t) if *t == Type::FLOAT4 => Box::new(v.real().map(|r| r as f32)),
                    (v, t) if *t == Type::BOOL => Box::new(Some(v.truthy())),
                    (v, _) => Box::new(v.text()),
                });
            }
            let refs: Vec<&(dyn ToSql + Sync)> =
                owned.iter().map(|b| &**b as &(dyn ToSql + Sync)).collect();
            let rows = client
                .query(&stmt, &refs)
                .await
                .map_err(|e| failed(sql, e))?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                let mut row = Vec::with_capacity(r.len());
                for (i, c) in r.columns().iter().enumerate() {
                    let t = c.type_();
                    let get = |e: tokio_postgres::Error| failed(sql, e);
                    row.push(if *t == Type::INT8 {
                        r.try_get::<_, Option<i64>>(i)
                            .map_err(get)?
                            .map_or(Val::Null, Val::Int)
                    } else if *t == Type::INT4 {
                        r.try_get::<_, Option<i32>>(i)
                            .map_err(get)?
                            .map_or(Val::Null, |v| Val::Int(v.into()))
                    } else if *t == Type::INT2 {
                        r.try_get::<_, Option<i16>>(i)
                            .map_err(get)?
                            .map_or(Val::Null, |v| Val::Int(v.into()))
                    } else if *t == Type::FLOAT8 {
                        r.try_get::<_, Option<f64>>(i)
                            .map_err(get)?
                            .map_or(Val::Null, Val::Real)
                    } else if *t == Type::FLOAT4 {
                        r.try_get::<_, Option<f32>>(i)
                            .map_err(get)?
                            .map_or(Val::Null, |v| Val::Real(v.into()))
                    } else if *t == Type::BOOL {
                        r.try_get::<_, Option<bool>>(i)
                            .map_err(get)?
                            .map_or(Val::Null, |v| Val::Int(v.into()))
                    } else {
                        r.try_get::<_, Option<String>>(i)
                            .map_err(get)?
                            .map_or(Val::Null, Val::Text)
                    });
                }
                out.push(row);
            }
            Ok(out)
        })
    }

    fn tables(&mut self) -> Result<HashSet<String>> {
        Ok(self
            .rows(
                "SELECT table_name::text FROM information_schema.tables \
                 WHERE table_schema = current_schema()",
                &[],
            )?
            .into_iter()
            .filter_map(|r| r[0].text())
            .collect())
    }

    fn columns(&mut self, table: &str) -> Result<HashSet<String>> {
        Ok(self
            .rows(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = ?",
                &[Val::Text(table.into())],
            )?
            .into_iter()
            .filter_map(|r| r[0].text())
            .collect())
    }
}

/// Opens the MLflow database at `uri` (`sqlite:///...`, `postgresql://...`,
/// `postgresql+psycopg2://...`, `postgres://...`).
pub(crate) fn open(uri: &str) -> Result<Box<dyn Db>> {
    if let Some(path) = uri.strip_prefix("sqlite:///") {
        let path = path.split('?').next().unwrap_or(path);
        return Ok(Box::new(Sqlite::open(path)?));
    }
    if ["postgresql://", "postgres://", "postgresql+psycopg2://"]
        .iter()
        .any(|p| uri.starts_with(p))
    {
        #[cfg(feature = "store-postgres")]
        return Ok(Box::new(Postgres::open(uri)?));
        #[cfg(not(feature = "store-postgres"))]
        return Err(Error::Import(
            "reading an MLflow PostgreSQL database needs the store-postgres feature of \
             cairn-core, compiled out of this binary"
                .into(),
        ));
    }
    Err(Error::Import(format!(
        "--from '{}': cairn import reads MLflow's SQL schema from sqlite:///<path> or \
         postgresql://user:password@host:port/database URIs, and MLflow's FileStore from an \
         existing mlruns directory (a path or file:///<path>); other databases are not \
         supported",
        crate::secrets::redact_uri(uri)
    )))
}

/// What the reader needs to know about the source's schema.
pub(crate) struct Schema {
    pub(crate) revision: String,
    columns: HashMap<String, HashSet<String>>,
}

impl Schema {
    /// Checks that `db` is an MLflow database at a known revision and records its columns.
    pub(crate) fn inspect(db: &mut dyn Db) -> Result<Schema> {
        let tables = db.tables()?;
        if !tables.contains("alembic_version") || !tables.contains("experiments") {
            return Err(Error::Import(
                "the source is not an MLflow tracking database (it has no alembic_version or \
                 experiments table)"
                    .into(),
            ));
        }
        let revs = db.rows("SELECT version_num FROM alembic_version", &[])?;
        let revision = match revs.as_slice() {
            [r] => r[0].text_or_empty(),
            _ => {
                return Err(Error::Import(format!(
                    "the MLflow database has {} alembic revisions recorded; expected one",
                    revs.len()
                )));
            }
        };
        if !KNOWN_REVISIONS.contains(&revision.as_str()) {
            return Err(Error::Import(format!(
                "the MLflow database is at alembic revision '{revision}', which this build of \
                 Cairn does not know (it knows MLflow's schema up to 3.18, head f4a9b2c7d1e6); \
                 nothing was read or written"
            )));
        }
        let mut columns = HashMap::new();
        for t in [
            "experiments",
            "experiment_tags",
            "runs",
            "params",
            "tags",
            "metrics",
            "datasets",
            "inputs",
            "input_tags",
            "logged_models",
            "logged_model_tags",
            "logged_model_params",
            "logged_model_metrics",
            "registered_models",
            "registered_model_tags",
            "registered_model_aliases",
            "model_versions",
            "model_version_tags",
        ] {
            if tables.contains(t) {
                columns.insert(t.to_string(), db.columns(t)?);
            }
        }
        Ok(Schema { revision, columns })
    }

    pub(crate) fn has_table(&self, t: &str) -> bool {
        self.columns.contains_key(t)
    }

    pub(crate) fn has(&self, t: &str, c: &str) -> bool {
        self.columns.get(t).is_some_and(|cs| cs.contains(c))
    }

    /// `alias.c` when the column exists, else `NULL`.
    pub(crate) fn col(&self, t: &str, alias: &str, c: &str) -> String {
        if self.has(t, c) {
            if alias.is_empty() {
                c.to_string()
            } else {
                format!("{alias}.{c}")
            }
        } else {
            "NULL".to_string()
        }
    }

    /// ` AND <alias.>workspace = 'default'` when the table has MLflow 3's workspace column.
    pub(crate) fn default_workspace(&self, t: &str, alias: &str) -> String {
        if self.has(t, "workspace") {
            let a = if alias.is_empty() {
                String::new()
            } else {
                format!("{alias}.")
            };
            format!(" AND {a}workspace = 'default'")
        } else {
            String::new()
        }
    }
}
