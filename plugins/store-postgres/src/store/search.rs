//! Searches of experiments, runs, LoggedModels and datasets: page queries built by the shared
//! translation (`cairn_plugin_api::search::sql`) in the PostgreSQL dialect.

use super::*;

/// Most dataset summaries `search_datasets` returns (MLflow's limit).
const MAX_DATASET_SUMMARIES: i64 = 1000;

/// Collects the ids and the last row's sort keys of a page query.
pub(crate) async fn run_page_query(
    tx: &Transaction<'_>,
    sql: &Sql,
    n_keys: usize,
    page_size: usize,
) -> StoreResult<(Vec<i64>, Option<Vec<SortVal>>)> {
    let rows = query(tx, sql).await?;
    let mut ids = Vec::new();
    let mut last_keys = None;
    let mut more = false;
    for row in &rows {
        if ids.len() == page_size {
            more = true;
            break;
        }
        ids.push(row.try_get::<_, i64>(0)?);
        if ids.len() == page_size {
            let mut keys = Vec::with_capacity(n_keys);
            for i in 0..n_keys {
                keys.push(sort_val(row, i + 1)?);
            }
            last_keys = Some(keys);
        }
    }
    Ok((ids, if more { last_keys } else { None }))
}

fn experiment_ids(ids: &[String]) -> StoreResult<Vec<i64>> {
    ids.iter().map(|s| experiment_id(s)).collect()
}

/// The page query of a run search over experiments `exps` (fingerprint `fp`) and its number
/// of sort keys.
pub(crate) fn search_runs_query(
    req: &SearchRuns,
    exps: &[i64],
    fp: u64,
) -> StoreResult<(Sql, usize)> {
    let mut sql = sql();
    let mut wheres = vec![
        format!("r.experiment_id IN {}", sql.bind_list(exps)),
        format!(
            "r.lifecycle_stage IN {}",
            sql.bind_list(&stages(req.view_type))
        ),
    ];
    let mut joins = search_sql::RunJoins::default();
    if let Some(f) = &req.filter {
        wheres.extend(search_sql::run_filter(&mut sql, &mut joins, f)?);
    }
    let keys = search_sql::run_order_keys(&mut sql, &mut joins, &req.order_by)?;
    let last = match &req.page_token {
        Some(t) if !t.is_empty() => Some(search_sql::decode_token(t, fp, keys.len())?),
        _ => None,
    };
    search_sql::page_query(
        &mut sql,
        Target::Runs,
        &joins.tables(Dialect::Postgres),
        wheres,
        &keys,
        last.as_deref(),
        req.max_results + 1,
    );
    Ok((sql, keys.len()))
}

/// The fingerprint of a run search: what its page tokens belong to.
pub(crate) fn runs_fingerprint(req: &SearchRuns) -> u64 {
    search_sql::fingerprint(&(
        "runs",
        &req.experiment_ids,
        &req.filter,
        req.view_type,
        &req.order_by,
    ))
}

pub(super) async fn search_runs(store: &PostgresStore, req: SearchRuns) -> Result<Page<Run>> {
    let exps = experiment_ids(&req.experiment_ids)?;
    if exps.is_empty() {
        return Ok(Page::last(Vec::new()));
    }
    let fp = runs_fingerprint(&req);
    let (sql, n_keys) = search_runs_query(&req, &exps, fp)?;
    let max = req.max_results;
    store
        .read(move |tx| {
            Box::pin(async move {
                let (ids, next) = run_page_query(tx, &sql, n_keys, max).await?;
                Ok(Page {
                    items: load_runs(tx, &ids).await?,
                    next_page_token: next.map(|k| search_sql::encode_token(fp, k)),
                })
            })
        })
        .await
}

pub(super) async fn search_experiments(
    store: &PostgresStore,
    req: SearchExperiments,
) -> Result<Page<Experiment>> {
    let fp = search_sql::fingerprint(&("experiments", &req.filter, req.view_type, &req.order_by));
    let mut sql = sql();
    let keys = search_sql::order_keys(&mut sql, Target::Experiments, &req.order_by)?;
    let last = match &req.page_token {
        Some(t) if !t.is_empty() => Some(search_sql::decode_token(t, fp, keys.len())?),
        _ => None,
    };
    let mut wheres = vec![format!(
        "e.lifecycle_stage IN {}",
        sql.bind_list(&stages(req.view_type))
    )];
    if let Some(f) = &req.filter {
        wheres.push(search_sql::filter(&mut sql, Target::Experiments, f, &[])?);
    }
    search_sql::page_query(
        &mut sql,
        Target::Experiments,
        "experiments e",
        wheres,
        &keys,
        last.as_deref(),
        req.max_results + 1,
    );
    let (n_keys, max) = (keys.len(), req.max_results);
    store
        .read(move |tx| {
            Box::pin(async move {
                let (ids, next) = run_page_query(tx, &sql, n_keys, max).await?;
                let mut items = Vec::with_capacity(ids.len());
                for id in ids {
                    items.extend(load_experiment(tx, id).await?);
                }
                Ok(Page {
                    items,
                    next_page_token: next.map(|k| search_sql::encode_token(fp, k)),
                })
            })
        })
        .await
}

pub(super) async fn search_logged_models(
    store: &PostgresStore,
    req: SearchLoggedModels,
) -> Result<Page<LoggedModel>> {
    if req.max_results == 0 {
        return Err(Error::invalid(
            "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer",
        ));
    }
    let exps = experiment_ids(&req.experiment_ids)?;
    if exps.is_empty() {
        return Ok(Page::last(Vec::new()));
    }
    let fp = search_sql::fingerprint(&(
        "models",
        &req.experiment_ids,
        &req.filter,
        &req.datasets,
        &req.order_by,
    ));
    let mut sql = sql();
    let keys = search_sql::logged_model_order_keys(&mut sql, &req.order_by)?;
    let last = match &req.page_token {
        Some(t) if !t.is_empty() => Some(search_sql::decode_token(t, fp, keys.len())?),
        _ => None,
    };
    let mut wheres = vec![
        format!("m.experiment_id IN {}", sql.bind_list(&exps)),
        "m.lifecycle_stage = 'active'".to_string(),
    ];
    if let Some(f) = &req.filter {
        wheres.push(search_sql::filter(
            &mut sql,
            Target::LoggedModels,
            f,
            &req.datasets,
        )?);
    }
    if let Some(c) =
        search_sql::logged_model_dataset_condition(&mut sql, req.filter.as_ref(), &req.datasets)
    {
        wheres.push(c);
    }
    search_sql::page_query(
        &mut sql,
        Target::LoggedModels,
        "logged_models m",
        wheres,
        &keys,
        last.as_deref(),
        req.max_results + 1,
    );
    let (n_keys, max) = (keys.len(), req.max_results);
    store
        .read(move |tx| {
            Box::pin(async move {
                let (ids, next) = run_page_query(tx, &sql, n_keys, max).await?;
                Ok(Page {
                    items: load_models(tx, &ids).await?,
                    next_page_token: next.map(|k| search_sql::encode_token(fp, k)),
                })
            })
        })
        .await
}

pub(super) async fn search_datasets(
    store: &PostgresStore,
    ids: &[String],
) -> Result<Vec<DatasetSummary>> {
    let exps = experiment_ids(ids)?;
    if exps.is_empty() {
        return Ok(Vec::new());
    }
    store
        .read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "SELECT DISTINCT d.experiment_id, d.name, d.digest, it.value FROM datasets d \
                         JOIN inputs i ON i.dataset = d.id \
                         LEFT JOIN input_tags it ON it.input = i.id AND it.key = $2 \
                         WHERE d.experiment_id = ANY($1) \
                         ORDER BY d.experiment_id, d.name, d.digest, it.value LIMIT $3",
                        &[&exps, &CONTEXT_TAG, &MAX_DATASET_SUMMARIES],
                    )
                    .await?;
                rows.iter()
                    .map(|r| {
                        Ok(DatasetSummary {
                            experiment_id: r.try_get::<_, i64>(0)?.to_string(),
                            name: r.try_get(1)?,
                            digest: r.try_get(2)?,
                            context: r.try_get(3)?,
                        })
                    })
                    .collect()
            })
        })
        .await
}

impl PostgresStore {
    /// The statements prepared on the pooled connection a read takes (PostgreSQL's
    /// `pg_prepared_statements` of that session) with how often each was planned generically
    /// and for its values, for the tests that the store's statements are prepared and planned
    /// once per connection and the search translation's are not kept.
    #[doc(hidden)]
    pub async fn prepared_statements(&self) -> Result<Vec<(String, i64, i64)>> {
        self.read(|tx| {
            Box::pin(async move {
                tx.query(
                    "SELECT statement, generic_plans, custom_plans FROM pg_prepared_statements \
                     ORDER BY statement",
                    &[],
                )
                .await?
                .iter()
                .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                .collect()
            })
        })
        .await
    }

    /// `plan_cache_mode` as a search translation's statement sees it, then as the store's
    /// next statement in the same transaction does (for the test that only the former is
    /// planned for its values).
    #[doc(hidden)]
    pub async fn plan_cache_modes(&self) -> Result<(String, String)> {
        self.read(|tx| {
            Box::pin(async move {
                let mut sql = Sql::new(Dialect::Postgres);
                let name = sql.bind("plan_cache_mode");
                sql.text = format!("SELECT current_setting({name})");
                let translated: String = query(tx, &sql).await?[0].try_get(0)?;
                let own: String = tx
                    .query_one("SELECT current_setting('plan_cache_mode')", &[])
                    .await?
                    .try_get(0)?;
                Ok((translated, own))
            })
        })
        .await
    }

    /// PostgreSQL's `EXPLAIN` of the page query `search_runs(req)` runs (for the plan stated in
    /// ARCHITECTURE.md and its test), one line per plan line.
    #[doc(hidden)]
    pub async fn explain_search_runs(&self, req: SearchRuns) -> Result<Vec<String>> {
        let exps = experiment_ids(&req.experiment_ids)?;
        let (mut sql, _) = search_runs_query(&req, &exps, runs_fingerprint(&req))?;
        sql.text = format!("EXPLAIN (COSTS OFF) {}", sql.text);
        self.read(move |tx| {
            Box::pin(async move {
                query(tx, &sql)
                    .await?
                    .iter()
                    .map(|r| Ok(r.try_get::<_, String>(0)?))
                    .collect()
            })
        })
        .await
    }
}
