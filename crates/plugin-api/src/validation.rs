//! MLflow's validation limits and name rules (api.md §4), shared by every store.
//!
//! Every store calls these functions itself (a store never trusts the host to have validated),
//! so every backend rejects the same inputs with the same [`ErrorKind::InvalidArgument`]
//! messages, worded as MLflow 3 words them.
//!
//! **Long values.** MLflow truncates param values longer than [`MAX_PARAM_VAL_LENGTH`] and run
//! tag values longer than [`MAX_TAG_VAL_LENGTH`] by default (`MLFLOW_TRUNCATE_LONG_VALUES=true`)
//! instead of failing. Cairn does the same, always: [`validate_param`] and [`validate_tag`]
//! return the value cut to the limit (counted in Unicode scalar values, as Python counts
//! characters). Every other limit is an error.
//!
//! **Key names** follow MLflow's POSIX rule `^[/\w.\- :]*$` (Unicode letters and digits,
//! `_ / . - :` and space) and must be *path-unique*: equal to their `posixpath.normpath`, not
//! `.`, not starting with `..` or `/`. Unlike Python's regex `$`, a trailing newline is refused.
//!
//! [`ErrorKind::InvalidArgument`]: crate::ErrorKind::InvalidArgument

use crate::entities::{
    Dataset, DatasetInput, ExperimentTag, InputTag, LoggedModelParameter, LoggedModelTag, Metric,
    Param, RunTag,
};
use crate::{Error, Result};
use std::collections::HashSet;

/// The run tag that mirrors a run's name.
pub const RUN_NAME_TAG: &str = "mlflow.runName";

/// The name of a new run, by MLflow's `create_run` rules: the given `run_name`, else the last
/// `mlflow.runName` tag in `tags`, else a generated name. Both given and different is
/// `InvalidArgument`.
pub fn resolve_run_name(run_name: Option<String>, tags: &[RunTag]) -> Result<String> {
    let tag_name = tags
        .iter()
        .rev()
        .find(|t| t.key == RUN_NAME_TAG)
        .map(|t| t.value.clone());
    let given = run_name.filter(|n| !n.is_empty());
    if let (Some(n), Some(t)) = (&given, &tag_name)
        && n != t
    {
        return Err(Error::invalid(format!(
            "Both 'run_name' argument and 'mlflow.runName' tag are specified, but with \
             different values (run_name='{n}', mlflow.runName='{t}')."
        )));
    }
    Ok(given
        .or(tag_name)
        .unwrap_or_else(crate::names::generate_random_name))
}

/// Most params in one `log_batch`; also the most tags.
pub const MAX_PARAMS_TAGS_PER_BATCH: usize = 100;
/// Most metrics in one `log_batch`.
pub const MAX_METRICS_PER_BATCH: usize = 1000;
/// Most metrics, params and tags together in one `log_batch`.
pub const MAX_ENTITIES_PER_BATCH: usize = 1000;
/// Longest param value; longer values are truncated.
pub const MAX_PARAM_VAL_LENGTH: usize = 6000;
/// Longest run tag value; longer values are truncated.
pub const MAX_TAG_VAL_LENGTH: usize = 8000;
/// Longest metric, param or run tag key.
pub const MAX_ENTITY_KEY_LENGTH: usize = 250;
/// Longest experiment name.
pub const MAX_EXPERIMENT_NAME_LENGTH: usize = 500;
/// Longest experiment tag key.
pub const MAX_EXPERIMENT_TAG_KEY_LENGTH: usize = 250;
/// Longest experiment tag value (an error, never truncated).
pub const MAX_EXPERIMENT_TAG_VAL_LENGTH: usize = 20000;
/// Longest experiment `artifact_location` (MLflow's `MLFLOW_ARTIFACT_LOCATION_MAX_LENGTH` default).
pub const MAX_ARTIFACT_LOCATION_LENGTH: usize = 2048;
/// Longest dataset name.
pub const MAX_DATASET_NAME_SIZE: usize = 500;
/// Longest dataset digest.
pub const MAX_DATASET_DIGEST_SIZE: usize = 36;
/// Longest dataset source (a JSON string).
pub const MAX_DATASET_SOURCE_SIZE: usize = 65535;
/// Longest dataset schema (a JSON string).
pub const MAX_DATASET_SCHEMA_SIZE: usize = 1_048_575;
/// Longest dataset profile (a JSON string).
pub const MAX_DATASET_PROFILE_SIZE: usize = 16_777_215;
/// Longest input tag key.
pub const MAX_INPUT_TAG_KEY_SIZE: usize = 255;
/// Longest input tag value.
pub const MAX_INPUT_TAG_VALUE_SIZE: usize = 500;
/// Largest `max_results` of `search_runs` and `search_experiments`.
pub const SEARCH_MAX_RESULTS_THRESHOLD: usize = 50000;

const BAD_CHARACTERS_MESSAGE: &str = "Names may only contain alphanumerics, underscores (_), \
dashes (-), periods (.), spaces ( ), colon(:) and slashes (/).";

/// `path` extended by `field`, as MLflow writes JSON paths: `metrics[3]` + `key` is
/// `metrics[3].key`; an empty `path` gives `field`.
pub fn json_path(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

/// A string as Python's `json.dumps` writes it (ASCII only, `\uXXXX` escapes), for messages.
pub fn py_json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// MLflow's `invalid_value` message: `Invalid value <json> for parameter '<path>' supplied: <msg>`.
pub fn invalid_value_message(path: &str, json_value: &str, message: &str) -> String {
    if message.is_empty() {
        format!("Invalid value {json_value} for parameter '{path}' supplied")
    } else {
        format!("Invalid value {json_value} for parameter '{path}' supplied: {message}")
    }
}

/// MLflow's `missing_value` message.
pub fn missing_value_message(path: &str) -> String {
    format!("Missing value for required parameter '{path}'.")
}

/// MLflow's `exceeds_maximum_length` message.
pub fn exceeds_maximum_length_message(path: &str, limit: usize) -> String {
    format!("'{path}' exceeds the maximum length of {limit} characters")
}

/// Python's `posixpath.normpath`.
pub fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let initial_slashes = if path.starts_with("//") && !path.starts_with("///") {
        2
    } else if path.starts_with('/') {
        1
    } else {
        0
    };
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp != ".." || (initial_slashes == 0 && parts.is_empty()) || parts.last() == Some(&"..")
        {
            parts.push(comp);
        } else if !parts.is_empty() {
            parts.pop();
        }
    }
    let joined = parts.join("/");
    let out = format!("{}{}", "/".repeat(initial_slashes), joined);
    if out.is_empty() { ".".to_string() } else { out }
}

/// Whether `name` would resolve to another name when treated as a file path (MLflow's
/// `path_not_unique`).
pub fn path_not_unique(name: &str) -> bool {
    // Equivalent to `normpath(name) != name or norm == "." or norm.startswith("..") or
    // norm.startswith("/")`, without allocating: normpath leaves a name unchanged exactly when
    // no component is empty, `.` or `..`.
    name.starts_with("..")
        || name
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
}

/// Whether every character of `name` is allowed in a key: Unicode letters and digits, `_`,
/// `/`, `.`, `-`, space and `:`.
pub fn has_valid_key_chars(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_alphanumeric() || matches!(c, '_' | '/' | '.' | '-' | ' ' | ':'))
}

/// Checks a metric, param or tag key against MLflow's name rules (characters, path
/// uniqueness, non-empty). `path` names the field in messages, e.g. `metrics[0].key`.
pub fn validate_key_name(name: &str, path: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(missing_value_message(path)));
    }
    if !has_valid_key_chars(name) {
        return Err(Error::invalid(invalid_value_message(
            path,
            &py_json_str(name),
            BAD_CHARACTERS_MESSAGE,
        )));
    }
    if path_not_unique(name) {
        let msg = format!(
            "Names may be treated as files in certain cases, and must not resolve to other \
             names when treated as such. This name would resolve to '{}'",
            normpath(name)
        );
        return Err(Error::invalid(invalid_value_message(
            path,
            &py_json_str(name),
            &msg,
        )));
    }
    Ok(())
}

/// `value` fits in `limit` characters, else `InvalidArgument` naming `path`.
pub fn validate_length(path: &str, limit: usize, value: &str) -> Result<()> {
    // Byte length bounds the character count from above: skip counting short values.
    if value.len() > limit && value.chars().count() > limit {
        return Err(Error::invalid(exceeds_maximum_length_message(path, limit)));
    }
    Ok(())
}

/// `value` cut to at most `limit` characters (MLflow's default truncation of long values).
pub fn truncate_chars(value: &str, limit: usize) -> &str {
    if value.len() <= limit {
        return value;
    }
    match value.char_indices().nth(limit) {
        Some((idx, _)) => &value[..idx],
        None => value,
    }
}

/// Python's `repr` of a float, for messages.
fn py_float(v: f64) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else if v.fract() == 0.0 && v.abs() < 1e16 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

/// Checks one metric: its key (rules and length) and a non-negative timestamp. Any value is
/// allowed, NaN and ±Inf included. `path` is the metric's JSON path (`metrics[2]`, or `""`).
pub fn validate_metric(metric: &Metric, path: &str) -> Result<()> {
    let key_path = json_path(path, "key");
    validate_key_name(&metric.key, &key_path)?;
    validate_length(&key_path, MAX_ENTITY_KEY_LENGTH, &metric.key)?;
    if metric.timestamp < 0 {
        return Err(Error::invalid(invalid_value_message(
            &json_path(path, "timestamp"),
            &metric.timestamp.to_string(),
            &format!(
                "metric '{}' (value={}). Timestamp must be a nonnegative long (64-bit integer) ",
                metric.key,
                py_float(metric.value)
            ),
        )));
    }
    Ok(())
}

/// Checks a param and returns it with its value truncated to [`MAX_PARAM_VAL_LENGTH`].
pub fn validate_param(param: Param, path: &str) -> Result<Param> {
    let key_path = json_path(path, "key");
    validate_key_name(&param.key, &key_path)?;
    validate_length(&key_path, MAX_ENTITY_KEY_LENGTH, &param.key)?;
    let value = truncate_owned(param.value, MAX_PARAM_VAL_LENGTH);
    Ok(Param {
        key: param.key,
        value,
    })
}

/// Checks a run tag and returns it with its value truncated to [`MAX_TAG_VAL_LENGTH`].
pub fn validate_tag(tag: RunTag, path: &str) -> Result<RunTag> {
    let key_path = json_path(path, "key");
    validate_key_name(&tag.key, &key_path)?;
    validate_length(&key_path, MAX_ENTITY_KEY_LENGTH, &tag.key)?;
    let value = truncate_owned(tag.value, MAX_TAG_VAL_LENGTH);
    Ok(RunTag {
        key: tag.key,
        value,
    })
}

fn truncate_owned(mut value: String, limit: usize) -> String {
    let cut = truncate_chars(&value, limit).len();
    value.truncate(cut);
    value
}

/// Checks an experiment tag: key rules, key at most 250 and value at most 20000 characters.
pub fn validate_experiment_tag(tag: &ExperimentTag, path: &str) -> Result<()> {
    let key_path = json_path(path, "key");
    validate_key_name(&tag.key, &key_path)?;
    validate_length(&key_path, MAX_EXPERIMENT_TAG_KEY_LENGTH, &tag.key)?;
    validate_length(
        &json_path(path, "value"),
        MAX_EXPERIMENT_TAG_VAL_LENGTH,
        &tag.value,
    )
}

/// Checks an experiment name: non-blank and at most 500 characters.
pub fn validate_experiment_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid(format!("Invalid experiment name: '{name}'")));
    }
    validate_length("name", MAX_EXPERIMENT_NAME_LENGTH, name)
}

/// Checks an experiment's `artifact_location`: not a `runs:` URI, no URL fragment, at most
/// [`MAX_ARTIFACT_LOCATION_LENGTH`] characters.
pub fn validate_artifact_location(location: &str) -> Result<()> {
    if location.starts_with("runs:") {
        return Err(Error::invalid(format!(
            "Artifact location cannot be a runs:/ URI. Given: '{location}'"
        )));
    }
    if location.contains('#') {
        return Err(Error::invalid(format!(
            "Invalid artifact location '{location}': URL fragments are not allowed"
        )));
    }
    validate_length("artifact_location", MAX_ARTIFACT_LOCATION_LENGTH, location)
}

/// The scheme of MLflow's artifact proxy; an `artifact_location` may use it only without a
/// host (`mlflow-artifacts:/x`), so a client sends artifacts to the server it talks to.
pub const MLFLOW_ARTIFACTS_SCHEME: &str = "mlflow-artifacts";

/// Checks that an experiment's `artifact_location` uses one of the `allowed` schemes (lower
/// case; a plain path is `file`) or `mlflow-artifacts` without a host, as MLflow's host
/// policy does: a location on another host would have the official client send that
/// experiment's artifacts, and its credentials, there. The message is MLflow's,
/// `'artifact_location' cannot use the '<scheme>' scheme`. Runs [`validate_artifact_location`]
/// first, so its messages come first as in MLflow.
pub fn validate_artifact_location_scheme(location: &str, allowed: &[String]) -> Result<()> {
    validate_artifact_location(location)?;
    let scheme = crate::paths::uri_scheme(location);
    if scheme == MLFLOW_ARTIFACTS_SCHEME {
        let host = crate::paths::uri_authority(location);
        if host.is_empty() {
            return Ok(());
        }
        return Err(Error::invalid(format!(
            "'artifact_location' cannot use the '{scheme}' scheme with a host ('{host}'):              artifacts go through this server's proxy"
        )));
    }
    if allowed.iter().any(|a| a.eq_ignore_ascii_case(&scheme)) {
        return Ok(());
    }
    Err(Error::invalid(format!(
        "'artifact_location' cannot use the '{scheme}' scheme"
    )))
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Checks a run id's format: `^[a-zA-Z0-9][\w\-]{0,255}$` (MLflow's `_validate_run_id`).
pub fn validate_run_id(run_id: &str) -> Result<()> {
    let mut chars = run_id.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && run_id.chars().count() <= 256
        && chars.all(|c| is_word_char(c) || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!("Invalid run ID: '{run_id}'")))
    }
}

/// Checks an experiment id's format: `^[a-zA-Z0-9][\w\-]{0,63}$`.
pub fn validate_experiment_id(experiment_id: &str) -> Result<()> {
    let mut chars = experiment_id.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && experiment_id.chars().count() <= 64
        && chars.all(|c| is_word_char(c) || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Invalid experiment ID: '{experiment_id}'"
        )))
    }
}

/// An experiment id of a SQL store, which must be a decimal integer.
pub fn parse_integer_experiment_id(experiment_id: &str) -> Result<i64> {
    let t = experiment_id.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && let Ok(v) = t.parse::<i64>()
    {
        return Ok(v);
    }
    Err(Error::invalid(format!(
        "Invalid experiment ID '{experiment_id}'. Experiment ID must be a valid integer."
    )))
}

fn batch_limit(entity: &str, limit: usize, n: usize) -> Result<()> {
    if n > limit {
        return Err(Error::invalid(format!(
            "A batch logging request can contain at most {limit} {entity}. Got {n} {entity}. \
             Please split up {entity} across multiple requests and try again."
        )));
    }
    Ok(())
}

/// Checks the `log_batch` size limits: 1000 metrics, 100 params, 100 tags, 1000 in total.
pub fn validate_batch_limits(metrics: usize, params: usize, tags: usize) -> Result<()> {
    batch_limit("metrics", MAX_METRICS_PER_BATCH, metrics)?;
    batch_limit("params", MAX_PARAMS_TAGS_PER_BATCH, params)?;
    batch_limit("tags", MAX_PARAMS_TAGS_PER_BATCH, tags)?;
    batch_limit(
        "metrics, params, and tags",
        MAX_ENTITIES_PER_BATCH,
        metrics + params + tags,
    )
}

/// Refuses a batch that logs the same param key twice.
pub fn validate_param_keys_unique(params: &[Param]) -> Result<()> {
    let mut seen = HashSet::new();
    let mut dupes = Vec::new();
    for p in params {
        if !seen.insert(p.key.as_str()) {
            dupes.push(format!("'{}'", p.key));
        }
    }
    if dupes.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "Duplicate parameter keys have been submitted: [{}]. Please ensure the request \
             contains only one param value per param key.",
            dupes.join(", ")
        )))
    }
}

/// Everything `log_batch` checks before writing: limits, each metric, param and tag (with
/// MLflow's JSON paths in messages), and unique param keys. Returns the params and tags with
/// long values truncated.
pub fn validate_log_batch(
    metrics: &[Metric],
    params: Vec<Param>,
    tags: Vec<RunTag>,
) -> Result<(Vec<Param>, Vec<RunTag>)> {
    validate_batch_limits(metrics.len(), params.len(), tags.len())?;
    for (i, m) in metrics.iter().enumerate() {
        // Fast path without building the JSON path; the slow path only words the error.
        let fine = m.timestamp >= 0
            && !m.key.is_empty()
            && m.key.len() <= MAX_ENTITY_KEY_LENGTH
            && has_valid_key_chars(&m.key)
            && !path_not_unique(&m.key);
        if !fine {
            validate_metric(m, &format!("metrics[{i}]"))?;
        }
    }
    let params = params
        .into_iter()
        .enumerate()
        .map(|(i, p)| validate_param(p, &format!("params[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    let tags = tags
        .into_iter()
        .enumerate()
        .map(|(i, t)| validate_tag(t, &format!("tags[{i}]")))
        .collect::<Result<Vec<_>>>()?;
    validate_param_keys_unique(&params)?;
    Ok((params, tags))
}

/// Checks a dataset's field lengths (name 500, digest 36, source 65535, schema 1048575,
/// profile 16777215).
pub fn validate_dataset(dataset: &Dataset, path: &str) -> Result<()> {
    validate_length(
        &json_path(path, "name"),
        MAX_DATASET_NAME_SIZE,
        &dataset.name,
    )?;
    validate_length(
        &json_path(path, "digest"),
        MAX_DATASET_DIGEST_SIZE,
        &dataset.digest,
    )?;
    validate_length(
        &json_path(path, "source"),
        MAX_DATASET_SOURCE_SIZE,
        &dataset.source,
    )?;
    if let Some(schema) = &dataset.schema {
        validate_length(&json_path(path, "schema"), MAX_DATASET_SCHEMA_SIZE, schema)?;
    }
    if let Some(profile) = &dataset.profile {
        validate_length(
            &json_path(path, "profile"),
            MAX_DATASET_PROFILE_SIZE,
            profile,
        )?;
    }
    Ok(())
}

/// Checks an input tag: key at most 255, value at most 500 characters.
pub fn validate_input_tag(tag: &InputTag, path: &str) -> Result<()> {
    validate_length(&json_path(path, "key"), MAX_INPUT_TAG_KEY_SIZE, &tag.key)?;
    validate_length(
        &json_path(path, "value"),
        MAX_INPUT_TAG_VALUE_SIZE,
        &tag.value,
    )
}

/// Checks every dataset input of a `log_inputs` call (the dataset and its tags).
pub fn validate_dataset_inputs(inputs: &[DatasetInput]) -> Result<()> {
    for (i, input) in inputs.iter().enumerate() {
        let path = format!("datasets[{i}]");
        validate_dataset(&input.dataset, &json_path(&path, "dataset"))?;
        for (j, tag) in input.tags.iter().enumerate() {
            validate_input_tag(tag, &format!("{path}.tags[{j}]"))?;
        }
    }
    Ok(())
}

/// Characters a LoggedModel name may not contain.
pub const LOGGED_MODEL_NAME_FORBIDDEN: [char; 6] = ['/', ':', '.', '%', '"', '\''];

/// Checks a LoggedModel name: non-empty, none of `/ : . % " '`.
pub fn validate_logged_model_name(name: &str) -> Result<()> {
    if name.is_empty() || name.contains(LOGGED_MODEL_NAME_FORBIDDEN) {
        return Err(Error::invalid(format!(
            "Invalid model name ('{name}') provided. Model name must be a non-empty string and \
             cannot contain the following characters: ('/', ':', '.', '%', '\"', \"'\")"
        )));
    }
    Ok(())
}

/// Checks a LoggedModel tag like a run tag (value truncated to [`MAX_TAG_VAL_LENGTH`]).
pub fn validate_logged_model_tag(tag: LoggedModelTag, path: &str) -> Result<LoggedModelTag> {
    let t = validate_tag(RunTag::new(tag.key, tag.value), path)?;
    Ok(LoggedModelTag::new(t.key, t.value))
}

/// Checks a LoggedModel param like a run param (value truncated to [`MAX_PARAM_VAL_LENGTH`]).
pub fn validate_logged_model_param(
    param: LoggedModelParameter,
    path: &str,
) -> Result<LoggedModelParameter> {
    let p = validate_param(Param::new(param.key, param.value), path)?;
    Ok(LoggedModelParameter::new(p.key, p.value))
}

/// Checks a search page size: 1 to `threshold`.
pub fn validate_max_results(max_results: usize, threshold: usize) -> Result<()> {
    if max_results == 0 {
        return Err(Error::invalid(
            "Invalid value 0 for parameter 'max_results' supplied. It must be a positive integer",
        ));
    }
    if max_results > threshold {
        return Err(Error::invalid(format!(
            "Invalid value {max_results} for parameter 'max_results' supplied. It must be at \
             most {threshold}"
        )));
    }
    Ok(())
}

// ----- model registry -------------------------------------------------------------------------

/// Longest registered-model and model-version tag key (`MAX_MODEL_REGISTRY_TAG_KEY_LENGTH`).
pub const MAX_MODEL_REGISTRY_TAG_KEY_LENGTH: usize = 250;
/// Longest registered-model and model-version tag value (`MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH`).
pub const MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH: usize = 100_000;
/// Longest alias (`MAX_REGISTERED_MODEL_ALIAS_LENGTH`).
pub const MAX_REGISTERED_MODEL_ALIAS_LENGTH: usize = 255;
/// Default page size of `search_registered_models`.
pub const SEARCH_REGISTERED_MODEL_MAX_RESULTS_DEFAULT: usize = 100;
/// Largest page of `search_registered_models`.
pub const SEARCH_REGISTERED_MODEL_MAX_RESULTS_THRESHOLD: usize = 1000;
/// Largest page of `search_model_versions`.
pub const SEARCH_MODEL_VERSION_MAX_RESULTS_THRESHOLD: usize = 200_000;

/// A registered model's name: non-empty, no `/` or `:`, and unchanged by path normalisation.
pub fn validate_model_name(name: &str) -> Result<()> {
    if name.trim().is_empty() {
        return Err(Error::invalid(missing_value_message("name")));
    }
    if name.contains('/') || name.contains(':') {
        return Err(Error::invalid(invalid_value_message(
            "name",
            &py_json_str(name),
            "Names cannot contain '/' or ':'.",
        )));
    }
    if path_not_unique(name) {
        return Err(Error::invalid(invalid_value_message(
            "name",
            &py_json_str(name),
            &format!(
                "Names may be treated as files in certain cases, and must not resolve to other \
                 names when treated as such. This name would resolve to '{}'",
                normpath(name)
            ),
        )));
    }
    Ok(())
}

/// A registry tag: the key follows the key-name rules and fits 250 characters, the value
/// 100000.
pub fn validate_registry_tag(key: &str, value: &str) -> Result<()> {
    validate_key_name(key, "key")?;
    validate_length("key", MAX_MODEL_REGISTRY_TAG_KEY_LENGTH, key)?;
    validate_length("value", MAX_MODEL_REGISTRY_TAG_VALUE_LENGTH, value)
}

/// An alias to set: `^[\w\-]*$`, non-empty, at most 255 characters, and neither `latest` nor
/// `v<digits>` (any case), which resolve to versions.
pub fn validate_alias(alias: &str) -> Result<()> {
    if alias.is_empty() {
        return Err(Error::invalid(
            "Registered model alias name cannot be empty.",
        ));
    }
    if !alias
        .chars()
        .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::invalid(format!(
            "Invalid alias name: '{alias}'. Names may only contain alphanumerics, underscores \
             (_), and dashes (-)."
        )));
    }
    validate_length("alias", MAX_REGISTERED_MODEL_ALIAS_LENGTH, alias)?;
    if alias.eq_ignore_ascii_case("latest") {
        return Err(Error::invalid(
            "'latest' alias name (case insensitive) is reserved.",
        ));
    }
    let mut chars = alias.chars();
    if matches!(chars.next(), Some('v' | 'V'))
        && alias.len() > 1
        && chars.all(|c| c.is_ascii_digit())
    {
        return Err(Error::invalid(format!(
            "Version alias name '{alias}' is reserved."
        )));
    }
    Ok(())
}

/// A model version number as MLflow's `int()` reads it (surrounding spaces and a sign
/// allowed); anything else is "Parameter 'version' must be an integer, got '{v}'.".
pub fn parse_model_version(version: &str) -> Result<i64> {
    let t = version.trim();
    let digits = t.strip_prefix('+').unwrap_or(t);
    digits.parse::<i64>().map_err(|_| {
        Error::invalid(format!(
            "Parameter 'version' must be an integer, got '{version}'."
        ))
    })
}

#[cfg(test)]
mod registry_tests {
    use super::*;

    #[test]
    fn model_names() {
        validate_model_name("churn model-1").unwrap();
        for bad in ["", "  ", "a/b", "a:b", "..", "."] {
            assert!(validate_model_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn aliases() {
        validate_alias("champion_1-x").unwrap();
        assert!(validate_alias("").is_err());
        assert!(validate_alias("a b").is_err());
        assert!(validate_alias(&"a".repeat(256)).is_err());
        validate_alias(&"a".repeat(255)).unwrap();
        let e = validate_alias("LaTeSt").unwrap_err();
        assert_eq!(
            e.message,
            "'latest' alias name (case insensitive) is reserved."
        );
        let e = validate_alias("V12").unwrap_err();
        assert_eq!(e.message, "Version alias name 'V12' is reserved.");
        validate_alias("v").unwrap();
        validate_alias("v1a").unwrap();
    }

    #[test]
    fn versions_and_tags() {
        assert_eq!(parse_model_version(" 3 ").unwrap(), 3);
        assert_eq!(parse_model_version("+4").unwrap(), 4);
        let e = parse_model_version("x").unwrap_err();
        assert_eq!(
            e.message,
            "Parameter 'version' must be an integer, got 'x'."
        );
        validate_registry_tag("k", &"v".repeat(100_000)).unwrap();
        assert!(validate_registry_tag("k", &"v".repeat(100_001)).is_err());
        assert!(validate_registry_tag(&"k".repeat(251), "v").is_err());
        assert!(validate_registry_tag("", "v").is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn msg(r: Result<impl std::fmt::Debug>) -> String {
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        e.message
    }

    #[test]
    fn normpath_matches_python() {
        let cases = [
            ("", "."),
            ("a", "a"),
            ("a//b", "a/b"),
            ("a/./b", "a/b"),
            ("./a", "a"),
            ("a/", "a"),
            ("/a", "/a"),
            ("//a", "//a"),
            ("///a", "/a"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("a/../..", ".."),
            ("/..", "/"),
            ("a/b/../../..", ".."),
            ("..", ".."),
            (".", "."),
        ];
        for (input, want) in cases {
            assert_eq!(normpath(input), want, "normpath({input:?})");
        }
        // The allocation-free uniqueness check agrees with its definition through normpath.
        let names = [
            "", "a", "a/b", "a//b", "/a", "a/", ".", "..", "...", "..a", "a..", "a/./b", "a/../b",
            "./a", "a/.", "a/..", ".a", "a/.b", "//a", "a b/c:d", "../a",
        ];
        for name in names {
            let norm = normpath(name);
            let by_definition =
                norm != name || norm == "." || norm.starts_with("..") || norm.starts_with('/');
            assert_eq!(path_not_unique(name), by_definition, "{name:?}");
        }
    }

    #[test]
    fn key_names_follow_mlflow_rules() {
        for ok in ["a", "a/b", "loss val", "a:b", "x-y.z_1", "über", "数字"] {
            validate_key_name(ok, "key").unwrap();
        }
        for bad in [
            "a//b", "a/./b", "./a", "a/", "/a", "..", "../a", ".", "a/..",
        ] {
            let m = msg(validate_key_name(bad, "key"));
            assert!(m.contains("would resolve to"), "{bad}: {m}");
        }
        let m = msg(validate_key_name("a!b", "metrics[0].key"));
        assert_eq!(
            m,
            "Invalid value \"a!b\" for parameter 'metrics[0].key' supplied: Names may only \
             contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), \
             colon(:) and slashes (/)."
        );
        assert!(msg(validate_key_name("a\n", "key")).contains("Names may only"));
        assert_eq!(
            msg(validate_key_name("", "key")),
            "Missing value for required parameter 'key'."
        );
        assert!(msg(validate_key_name("é!", "k")).contains("\"\\u00e9!\""));
    }

    #[test]
    fn lengths_and_truncation() {
        let key = "k".repeat(251);
        assert_eq!(
            msg(validate_param(Param::new(key, "v"), "")),
            "'key' exceeds the maximum length of 250 characters"
        );
        let p = validate_param(Param::new("k", "é".repeat(6001)), "").unwrap();
        assert_eq!(p.value.chars().count(), 6000);
        let t = validate_tag(RunTag::new("k", "x".repeat(9000)), "").unwrap();
        assert_eq!(t.value.len(), 8000);
        let t = validate_tag(RunTag::new("k", "x".repeat(8000)), "").unwrap();
        assert_eq!(t.value.len(), 8000);
        validate_experiment_tag(&ExperimentTag::new("k", "v".repeat(20000)), "").unwrap();
        assert_eq!(
            msg(validate_experiment_tag(
                &ExperimentTag::new("k", "v".repeat(20001)),
                ""
            )),
            "'value' exceeds the maximum length of 20000 characters"
        );
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("hi", 5), "hi");
    }

    #[test]
    fn experiment_names() {
        validate_experiment_name("exp").unwrap();
        validate_experiment_name(&"n".repeat(500)).unwrap();
        assert_eq!(
            msg(validate_experiment_name(&"n".repeat(501))),
            "'name' exceeds the maximum length of 500 characters"
        );
        assert_eq!(
            msg(validate_experiment_name("")),
            "Invalid experiment name: ''"
        );
        assert!(validate_experiment_name("  ").is_err());
    }

    #[test]
    fn metrics_allow_non_finite_values_but_not_negative_timestamps() {
        validate_metric(&Metric::new("m", f64::NAN, 0, -5), "").unwrap();
        validate_metric(&Metric::new("m", f64::INFINITY, 1, 0), "").unwrap();
        let m = msg(validate_metric(&Metric::new("m", 1.0, -1, 0), "metrics[4]"));
        assert!(
            m.starts_with("Invalid value -1 for parameter 'metrics[4].timestamp' supplied"),
            "{m}"
        );
        assert!(m.contains("value=1.0"));
    }

    #[test]
    fn batch_limits_and_duplicates() {
        validate_batch_limits(1000, 0, 0).unwrap();
        assert_eq!(
            msg(validate_batch_limits(1001, 0, 0)),
            "A batch logging request can contain at most 1000 metrics. Got 1001 metrics. \
             Please split up metrics across multiple requests and try again."
        );
        assert!(msg(validate_batch_limits(0, 101, 0)).contains("at most 100 params"));
        assert!(msg(validate_batch_limits(0, 0, 101)).contains("at most 100 tags"));
        assert!(
            msg(validate_batch_limits(900, 100, 1))
                .contains("at most 1000 metrics, params, and tags. Got 1001")
        );
        let params = vec![
            Param::new("a", "1"),
            Param::new("b", "1"),
            Param::new("a", "2"),
        ];
        assert_eq!(
            msg(validate_param_keys_unique(&params)),
            "Duplicate parameter keys have been submitted: ['a']. Please ensure the request \
             contains only one param value per param key."
        );
        let m = msg(validate_log_batch(
            &[
                Metric::new("ok", 1.0, 0, 0),
                Metric::new("bad//k", 1.0, 0, 0),
            ],
            vec![],
            vec![],
        ));
        assert!(m.contains("'metrics[1].key'"), "{m}");
    }

    #[test]
    fn ids() {
        validate_run_id(&"a".repeat(32)).unwrap();
        assert!(validate_run_id("").is_err());
        assert!(validate_run_id("-abc").is_err());
        assert!(validate_run_id("a/b").is_err());
        validate_experiment_id("0").unwrap();
        assert!(validate_experiment_id(&"1".repeat(65)).is_err());
        assert_eq!(parse_integer_experiment_id("12").unwrap(), 12);
        assert_eq!(
            msg(parse_integer_experiment_id("abc")),
            "Invalid experiment ID 'abc'. Experiment ID must be a valid integer."
        );
        assert!(parse_integer_experiment_id("1.5").is_err());
        assert!(parse_integer_experiment_id("").is_err());
    }

    #[test]
    fn datasets_and_models() {
        let ds = Dataset {
            name: "d".into(),
            digest: "x".repeat(37),
            source_type: "local".into(),
            source: "{}".into(),
            schema: None,
            profile: None,
        };
        let input = DatasetInput {
            tags: vec![],
            dataset: ds,
        };
        assert_eq!(
            msg(validate_dataset_inputs(&[input])),
            "'datasets[0].dataset.digest' exceeds the maximum length of 36 characters"
        );
        assert!(
            validate_input_tag(&InputTag::new("k", "v".repeat(501)), "t")
                .unwrap_err()
                .message
                .contains("'t.value'")
        );
        validate_logged_model_name("my-model_1").unwrap();
        for bad in ["", "a/b", "a.b", "a:b", "50%", "a\"b", "a'b"] {
            assert!(validate_logged_model_name(bad).is_err(), "{bad}");
        }
        assert!(validate_artifact_location("runs:/abc").is_err());
        validate_artifact_location("s3://bucket/x").unwrap();
        let allowed = ["file".to_owned(), "s3".to_owned()];
        for ok in [
            "s3://bucket/x",
            "/srv/a",
            "file:///srv/a",
            "mlflow-artifacts:/1",
            "mlflow-artifacts:///1",
        ] {
            validate_artifact_location_scheme(ok, &allowed).unwrap();
        }
        for (bad, scheme) in [
            ("http://169.254.169.254/latest", "http"),
            ("ftp://h/x", "ftp"),
            ("sftp://h/x", "sftp"),
            ("hdfs://h/x", "hdfs"),
            ("mlflow-artifacts://attacker:8080/x", "mlflow-artifacts"),
        ] {
            let m = msg(validate_artifact_location_scheme(bad, &allowed));
            assert!(
                m.starts_with(&format!(
                    "'artifact_location' cannot use the '{scheme}' scheme"
                )),
                "{m}"
            );
        }
        assert!(validate_max_results(0, 10).is_err());
        assert!(validate_max_results(11, 10).is_err());
    }
}
