//! Searches of experiments, runs, LoggedModels and datasets: page queries built by `search_sql`.

use super::*;

/// Most dataset summaries `search_datasets` returns (MLflow's limit).
pub(super) const MAX_DATASET_SUMMARIES: i64 = 1000;

/// Collects the ids and the last row's sort keys of a page query.
pub(crate) fn run_page_query(
    conn: &Connection,
    sql: &Sql,
    n_keys: usize,
    page_size: usize,
) -> StoreResult<(Vec<i64>, Option<Vec<SortVal>>)> {
    let mut stmt = conn.prepare_cached(&sql.text)?;
    let mut rows = stmt.query(search_sql::params(sql))?;
    let mut ids = Vec::new();
    let mut last_keys = None;
    let mut more = false;
    while let Some(row) = rows.next()? {
        if ids.len() == page_size {
            more = true;
            break;
        }
        ids.push(row.get::<_, i64>(0)?);
        if ids.len() == page_size {
            let mut keys = Vec::with_capacity(n_keys);
            for i in 0..n_keys {
                keys.push(search_sql::sort_val(row, i + 1)?);
            }
            last_keys = Some(keys);
        }
    }
    Ok((ids, if more { last_keys } else { None }))
}

pub(super) fn experiment_ids(ids: &[String]) -> StoreResult<Vec<i64>> {
    ids.iter().map(|s| experiment_id(s)).collect()
}

pub(super) fn search_runs_sync(conn: &Connection, req: &SearchRuns) -> StoreResult<Page<Run>> {
    let exps = experiment_ids(&req.experiment_ids)?;
    if exps.is_empty() {
        return Ok(Page::last(Vec::new()));
    }
    let fp = search_sql::fingerprint(&(
        "runs",
        &req.experiment_ids,
        &req.filter,
        req.view_type,
        &req.order_by,
    ));
    let (sql, n_keys) = search_runs_query(req, &exps, fp)?;
    let (ids, next) = run_page_query(conn, &sql, n_keys, req.max_results)?;
    Ok(Page {
        items: load_runs(conn, &ids)?,
        next_page_token: next.map(|k| search_sql::encode_token(fp, k)),
    })
}

/// The page query of a run search over experiments `exps` (fingerprint `fp`) and its number
/// of sort keys.
pub(super) fn search_runs_query(
    req: &SearchRuns,
    exps: &[i64],
    fp: u64,
) -> StoreResult<(Sql, usize)> {
    let mut sql = search_sql::sql();
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
        &joins.tables(search_sql::Dialect::Sqlite),
        wheres,
        &keys,
        last.as_deref(),
        req.max_results + 1,
    );
    Ok((sql, keys.len()))
}

pub(super) fn search_experiments_sync(
    conn: &Connection,
    req: &SearchExperiments,
) -> StoreResult<Page<Experiment>> {
    let fp = search_sql::fingerprint(&("experiments", &req.filter, req.view_type, &req.order_by));
    let mut sql = search_sql::sql();
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
    let (ids, next) = run_page_query(conn, &sql, keys.len(), req.max_results)?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        items.extend(load_experiment(conn, id)?);
    }
    Ok(Page {
        items,
        next_page_token: next.map(|k| search_sql::encode_token(fp, k)),
    })
}

pub(super) fn search_models_sync(
    conn: &Connection,
    req: &SearchLoggedModels,
) -> StoreResult<Page<LoggedModel>> {
    if req.max_results == 0 {
        return Err(invalid(
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
    let mut sql = search_sql::sql();
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
    let (ids, next) = run_page_query(conn, &sql, keys.len(), req.max_results)?;
    Ok(Page {
        items: load_models(conn, &ids)?,
        next_page_token: next.map(|k| search_sql::encode_token(fp, k)),
    })
}

pub(super) fn search_datasets_sync(
    conn: &Connection,
    ids: &[String],
) -> StoreResult<Vec<DatasetSummary>> {
    let exps = experiment_ids(ids)?;
    if exps.is_empty() {
        return Ok(Vec::new());
    }
    let mut sql = search_sql::sql();
    let list = sql.bind_list(&exps);
    let ctx = sql.bind(CONTEXT_TAG.to_string());
    let lim = sql.bind(MAX_DATASET_SUMMARIES);
    let mut stmt = conn.prepare(&format!(
        "SELECT DISTINCT d.experiment_id, d.name, d.digest, it.value FROM datasets d \
         JOIN inputs i ON i.dataset = d.id \
         LEFT JOIN input_tags it ON it.input = i.id AND it.key = {ctx} \
         WHERE d.experiment_id IN {list} \
         ORDER BY d.experiment_id, d.name, d.digest, it.value LIMIT {lim}"
    ))?;
    let rows = stmt.query_map(search_sql::params(&sql), |r| {
        Ok(DatasetSummary {
            experiment_id: r.get::<_, i64>(0)?.to_string(),
            name: r.get(1)?,
            digest: r.get(2)?,
            context: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub(super) async fn search_experiments(
    store: &SqliteStore,
    req: SearchExperiments,
) -> Result<Page<Experiment>> {
    store
        .read(move |tx| search_experiments_sync(tx, &req))
        .await
}

pub(super) async fn search_runs(store: &SqliteStore, req: SearchRuns) -> Result<Page<Run>> {
    store.read(move |tx| search_runs_sync(tx, &req)).await
}

pub(super) async fn search_datasets(
    store: &SqliteStore,
    experiment_ids: &[String],
) -> Result<Vec<DatasetSummary>> {
    let ids = experiment_ids.to_vec();
    store.read(move |tx| search_datasets_sync(tx, &ids)).await
}

pub(super) async fn search_logged_models(
    store: &SqliteStore,
    req: SearchLoggedModels,
) -> Result<Page<LoggedModel>> {
    store.read(move |tx| search_models_sync(tx, &req)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Logs `n` runs into a new experiment `name`, each with a `loss` metric and an `opt`
    /// param, and returns the experiment's id.
    async fn experiment_of_runs(store: &SqliteStore, name: &str, n: usize) -> String {
        let exp = store
            .create_experiment(CreateExperiment {
                name: name.into(),
                ..Default::default()
            })
            .await
            .unwrap();
        for i in 0..n {
            let run = store
                .create_run(CreateRun {
                    experiment_id: exp.clone(),
                    user_id: "u".into(),
                    start_time: i as i64,
                    tags: vec![],
                    run_name: None,
                })
                .await
                .unwrap();
            let loss = (i % 10) as f64 / 10.0;
            let opt = ["adam", "sgd"][i % 2];
            store
                .log_batch(
                    &run.info.run_id,
                    vec![Metric::new("loss", loss, 0, 0)],
                    vec![Param::new("opt", opt)],
                    vec![],
                )
                .await
                .unwrap();
        }
        exp
    }

    /// The page query of the benchmark's search (a metric filter and the same metric as order
    /// key) over `exp`: its query plan, and the virtual-machine steps one execution takes.
    async fn plan_and_steps(store: &SqliteStore, exp: &str) -> (Vec<String>, i32) {
        let req = SearchRuns {
            experiment_ids: vec![exp.to_string()],
            filter: cairn_plugin_api::search::parse_filter(
                cairn_plugin_api::search::SearchKind::Runs,
                "metrics.loss < 0.5 and params.opt = 'adam'",
            )
            .unwrap(),
            view_type: ViewType::ActiveOnly,
            max_results: 10,
            order_by: cairn_plugin_api::search::parse_order_by(
                cairn_plugin_api::search::SearchKind::Runs,
                &["metrics.loss ASC".to_string()],
            )
            .unwrap(),
            page_token: None,
        };
        let exps = experiment_ids(&req.experiment_ids).unwrap();
        store
            .read(move |conn| {
                let (sql, _) = search_runs_query(&req, &exps, 0)?;
                let params = || search_sql::params(&sql);
                let plan = conn
                    .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.text))?
                    .query_map(params(), |r| r.get::<_, String>(3))?
                    .collect::<Result<Vec<_>, _>>()?;
                let mut stmt = conn.prepare(&sql.text)?;
                let rows = stmt.query_map(params(), |r| r.get::<_, i64>(0))?.count();
                assert_eq!(rows, 11);
                Ok((plan, stmt.get_status(rusqlite::StatementStatus::VmStep)))
            })
            .await
            .unwrap()
    }

    #[test]
    fn run_search_cost_follows_the_searched_experiment_not_the_database() {
        let store = open("sqlite://", Some("file:///tmp/cairn-test")).unwrap();
        let (plan, steps, plan_after, steps_after) = futures_executor::block_on(async {
            let exp = experiment_of_runs(&store, "searched", 100).await;
            let (plan, steps) = plan_and_steps(&store, &exp).await;
            experiment_of_runs(&store, "other", 1000).await;
            let (plan_after, steps_after) = plan_and_steps(&store, &exp).await;
            (plan, steps, plan_after, steps_after)
        });
        // Driven by the searched experiment's runs, the metric read once per run through a
        // join (no correlated subquery on latest_metrics, not the (key, value) index, which
        // spans every experiment).
        assert!(
            plan[0].contains("runs_by_experiment_stage_start"),
            "{plan:?}"
        );
        let metric_reads: Vec<&String> = plan
            .iter()
            .filter(|l| l.contains("latest_metrics"))
            .collect();
        assert_eq!(metric_reads.len(), 1, "{plan:?}");
        assert!(
            metric_reads[0].starts_with("SEARCH lm1 USING INDEX sqlite_autoindex_latest_metrics"),
            "{plan:?}"
        );
        assert_eq!(plan, plan_after);
        // Ten times as many runs elsewhere leave the work of the query unchanged (give or take
        // a step of a deeper b-tree).
        assert!(
            steps_after.abs_diff(steps) * 100 <= steps as u32,
            "{steps} -> {steps_after}"
        );
    }
}
