//! The web UI's reads: the distinct keys of an experiment's runs (column picker) and
//! min/max-per-bucket downsampled metric histories (charts).

use super::*;
use cairn_plugin_api::downsample::{Buckets, HistoryAxis};

/// `run_keys`: a skip scan of the `(key, value)` index of params, tags or `latest_metrics`
/// (each next distinct key is one index seek, `min(key) WHERE key > ?`), keeping the keys some
/// run of the experiments has (`EXISTS` over the `(key, …)` index, joined to the run). The cost
/// grows with the number of distinct keys read, not with the number of runs.
pub(super) fn run_keys_sync(conn: &Connection, req: &RunKeysRequest) -> StoreResult<RunKeys> {
    let exps = search::experiment_ids(&req.experiment_ids)?;
    if exps.is_empty() {
        return Ok(RunKeys::default());
    }
    let table = match req.kind {
        RunKeyKind::Params => "params",
        RunKeyKind::Metrics => "latest_metrics",
        RunKeyKind::Tags => "tags",
    };
    let n = req.max_results.max(1);
    let list = (0..exps.len())
        .map(|i| format!("?{}", i + 3))
        .collect::<Vec<_>>()
        .join(", ");
    let text = format!(
        "WITH RECURSIVE k(key) AS (
             SELECT (SELECT min(key) FROM {table} WHERE key > ?1)
             UNION ALL
             SELECT (SELECT min(key) FROM {table} WHERE key > k.key) FROM k WHERE k.key IS NOT NULL)
         SELECT key FROM k WHERE key IS NOT NULL AND EXISTS (
             SELECT 1 FROM {table} t JOIN runs r ON r.id = t.run
              WHERE t.key = k.key AND r.experiment_id IN ({list}))
         LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&text)?;
    let after = req.page_token.clone().unwrap_or_default();
    let mut params: Vec<rusqlite::types::Value> = vec![after.into(), ((n + 1) as i64).into()];
    params.extend(exps.iter().map(|e| rusqlite::types::Value::from(*e)));
    let mut keys = stmt
        .query_map(rusqlite::params_from_iter(params), |r| {
            r.get::<_, String>(0)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let next_page_token = if keys.len() > n {
        keys.truncate(n);
        keys.last().cloned()
    } else {
        None
    };
    Ok(RunKeys {
        keys,
        next_page_token,
        runs_scanned: None,
    })
}

/// `get_metric_history_downsampled` in one read transaction: per run, the x range of the
/// series in bounds (an index seek for timestamps, a scan of the series for steps), then one
/// pass over its rows into the buckets.
pub(super) fn downsampled_sync(
    conn: &Connection,
    req: &DownsampleRequest,
) -> StoreResult<Vec<MetricWithRunId>> {
    let col = match req.axis {
        HistoryAxis::Step => "step",
        HistoryAxis::Timestamp => "timestamp",
    };
    let lo = req.min_x.unwrap_or(i64::MIN);
    let hi = req.max_x.unwrap_or(i64::MAX);
    let mut out = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for run_id in &req.run_ids {
        if seen.contains(&run_id.as_str()) {
            continue;
        }
        seen.push(run_id);
        let series: Option<i64> = conn
            .prepare_cached(
                "SELECT lm.id FROM runs r JOIN latest_metrics lm ON lm.run = r.id AND lm.key = ?2 \
                 WHERE r.run_uuid = ?1",
            )?
            .query_row(rusqlite::params![run_id, req.metric_key], |r| r.get(0))
            .optional()?;
        let Some(series) = series else { continue };
        let (first, last): (Option<i64>, Option<i64>) = conn
            .prepare_cached(&format!(
                "SELECT min({col}), max({col}) FROM metrics \
                 WHERE series = ?1 AND {col} BETWEEN ?2 AND ?3"
            ))?
            .query_row(rusqlite::params![series, lo, hi], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?;
        let (Some(first), Some(last)) = (first, last) else {
            continue;
        };
        let mut buckets = Buckets::new(req.axis, first, last, req.buckets);
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT timestamp, step, value, is_nan FROM metrics \
             WHERE series = ?1 AND {col} BETWEEN ?2 AND ?3"
        ))?;
        let mut rows = stmt.query(rusqlite::params![series, first, last])?;
        while let Some(row) = rows.next()? {
            let nan: bool = row.get(3)?;
            let value: f64 = row.get(2)?;
            buckets.push(Metric::new(
                req.metric_key.as_str(),
                if nan { f64::NAN } else { value },
                row.get(0)?,
                row.get(1)?,
            ));
        }
        out.extend(buckets.finish().into_iter().map(|m| MetricWithRunId {
            key: m.key,
            value: m.value,
            timestamp: m.timestamp,
            step: m.step,
            run_id: run_id.clone(),
        }));
    }
    Ok(out)
}
