//! The registry: random registered models and versions (run ids, sources, tags, prompt tags,
//! stages) searched with random filters (OR included) and orderings.

use super::check;
use crate::model_registry::{
    CreateModelVersion, ModelRegistryStore, ModelVersion, RegisteredModel, RegistrySearch,
    RegistryTag, Stage,
};
use crate::search::eval::PROMPT_TAG;
use crate::search::{SearchKind, eval, parse_filter, parse_order_by};
use futures_executor::block_on;
use proptest::prelude::*;

/// For random registered models and versions, filters (with OR), orderings and page sizes,
/// `search_model_versions` returns the versions the reference evaluator ([`eval`]) selects, less
/// prompts unless the filter names the prompt tag (api.md §5.4), in its order, page by page;
/// each of `cases` cases builds its registry in a store `open` returns.
pub fn model_versions_match_the_reference_evaluator<S: ModelRegistryStore>(
    open: impl Fn() -> S,
    cases: u32,
) {
    check(
        cases,
        (
            model_specs(),
            prop::collection::vec(version_comparison(), 0..3),
            prop::collection::vec(any::<bool>(), 2),
            orders(&[
                "name",
                "version_number",
                "creation_timestamp",
                "last_updated_timestamp",
            ]),
            1usize..5,
        ),
        |(specs, parts, ors, order, page_size)| {
            let store = open();
            let (_, versions) = block_on(populate(&store, &specs));
            let text = if parts.is_empty() {
                String::new()
            } else {
                combine(parts, ors)
            };
            let filter = parse_filter(SearchKind::ModelVersions, &text).unwrap();
            let order_by = parse_order_by(SearchKind::ModelVersions, &order).unwrap();
            let shows_prompts = text.contains(PROMPT_TAG);
            let mut expected: Vec<&ModelVersion> = versions
                .iter()
                .filter(|v| shows_prompts || !is_prompt(&v.tags))
                .filter(|v| {
                    filter
                        .as_ref()
                        .is_none_or(|f| eval::matches_model_version(f, v))
                })
                .collect();
            expected.sort_by(|a, b| eval::compare_model_versions(&order_by, a, b));
            let expected: Vec<(String, String)> = expected
                .iter()
                .map(|v| (v.name.clone(), v.version.clone()))
                .collect();
            let got = block_on(all_pages(
                page_size,
                |page_token| RegistrySearch {
                    filter: filter.clone(),
                    max_results: page_size,
                    order_by: order_by.clone(),
                    page_token,
                },
                async |req| store.search_model_versions(req).await,
            ));
            let got: Vec<(String, String)> = got
                .iter()
                .map(|v| (v.name.clone(), v.version.clone()))
                .collect();
            prop_assert_eq!(got, expected, "filter {:?} order {:?}", text, order);
            Ok(())
        },
    );
}

/// The same for `search_registered_models`.
pub fn registered_models_match_the_reference_evaluator<S: ModelRegistryStore>(
    open: impl Fn() -> S,
    cases: u32,
) {
    check(
        cases,
        (
            model_specs(),
            prop::collection::vec(model_comparison(), 0..3),
            prop::collection::vec(any::<bool>(), 2),
            orders(&["name", "last_updated_timestamp"]),
            1usize..4,
        ),
        |(specs, parts, ors, order, page_size)| {
            let store = open();
            let (models, _) = block_on(populate(&store, &specs));
            let text = if parts.is_empty() {
                String::new()
            } else {
                combine(parts, ors)
            };
            let filter = parse_filter(SearchKind::RegisteredModels, &text).unwrap();
            let order_by = parse_order_by(SearchKind::RegisteredModels, &order).unwrap();
            let shows_prompts = text.contains(PROMPT_TAG);
            let mut expected: Vec<&RegisteredModel> = models
                .iter()
                .filter(|m| shows_prompts || !is_prompt(&m.tags))
                .filter(|m| {
                    filter
                        .as_ref()
                        .is_none_or(|f| eval::matches_registered_model(f, m))
                })
                .collect();
            expected.sort_by(|a, b| eval::compare_registered_models(&order_by, a, b));
            let expected: Vec<String> = expected.iter().map(|m| m.name.clone()).collect();
            let got = block_on(all_pages(
                page_size,
                |page_token| RegistrySearch {
                    filter: filter.clone(),
                    max_results: page_size,
                    order_by: order_by.clone(),
                    page_token,
                },
                async |req| store.search_registered_models(req).await,
            ));
            let got: Vec<String> = got.iter().map(|m| m.name.clone()).collect();
            prop_assert_eq!(got, expected, "filter {:?} order {:?}", text, order);
            Ok(())
        },
    );
}

const NAMES: &[&str] = &["a", "A", "ab", "a_c", "b%"];
const STRINGS: &[&str] = &["a", "A", "ab", "b%", "a_c", "", "r1", "s3://x/a"];
const PATTERNS: &[&str] = &[
    "a%", "%b%", "A%", "a_", "%", "_", "ab", "%c", "s3://x/%", "R%",
];
const RUN_IDS: &[&str] = &["r1", "R1", "r2"];
const SOURCES: &[&str] = &["s3://x/a", "s3://X/ab", "file:/a_c"];
const PROMPT_VALUES: &[&str] = &["true", "TRUE", "false"];

/// One generated version: run id, source, tag `t1`, prompt tag, stage.
type VersionSpec = (
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Stage,
);

/// One generated model: its name, tag `t1`, prompt tag and versions.
type ModelSpec = (
    &'static str,
    Option<&'static str>,
    Option<&'static str>,
    Vec<VersionSpec>,
);

fn pick<T: Clone + std::fmt::Debug + 'static>(
    items: &'static [T],
) -> impl Strategy<Value = T> + Clone {
    prop::sample::select(items)
}

fn version_spec() -> impl Strategy<Value = VersionSpec> {
    (
        prop::option::of(pick(RUN_IDS)),
        pick(SOURCES),
        prop::option::of(pick(STRINGS)),
        prop::option::weighted(0.2, pick(PROMPT_VALUES)),
        pick(&Stage::ALL[..]),
    )
}

fn model_specs() -> impl Strategy<Value = Vec<ModelSpec>> {
    prop::collection::vec(
        (
            prop::option::of(pick(STRINGS)),
            prop::option::weighted(0.2, pick(PROMPT_VALUES)),
            prop::collection::vec(version_spec(), 0..5),
        ),
        1..=NAMES.len(),
    )
    .prop_map(|models| {
        models
            .into_iter()
            .zip(NAMES)
            .map(|((tag, prompt, versions), name)| (*name, tag, prompt, versions))
            .collect()
    })
}

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn string_comparison(key: &'static str, lists: bool) -> impl Strategy<Value = String> {
    let scalar = (
        pick(&["=", "!=", "LIKE", "ILIKE"][..]),
        pick(STRINGS),
        pick(PATTERNS),
    )
        .prop_map(move |(op, s, p)| {
            let v = if op.contains("LIKE") { p } else { s };
            format!("{key} {op} {}", quoted(v))
        });
    if lists {
        prop_oneof![
            3 => scalar,
            1 => (
                pick(&["IN", "NOT IN"][..]),
                prop::collection::vec(pick(STRINGS), 1..3)
            )
                .prop_map(move |(op, vs)| {
                    let items: Vec<String> = vs.iter().map(|v| quoted(v)).collect();
                    format!("{key} {op} ({})", items.join(", "))
                }),
        ]
        .boxed()
    } else {
        scalar.boxed()
    }
}

fn version_comparison() -> impl Strategy<Value = String> {
    prop_oneof![
        string_comparison("name", true),
        string_comparison("run_id", true),
        string_comparison("source_path", false),
        string_comparison("tags.t1", false),
        (pick(&["=", "!=", "<", "<=", ">", ">="][..]), 0i64..5)
            .prop_map(|(op, n)| format!("version_number {op} {n}")),
        (pick(&["=", "!="][..]), pick(&["true", "false"][..]))
            .prop_map(|(op, v)| format!("tags.`{PROMPT_TAG}` {op} '{v}'")),
    ]
}

fn model_comparison() -> impl Strategy<Value = String> {
    prop_oneof![
        string_comparison("name", true),
        string_comparison("tags.t1", false),
        (pick(&["=", "!="][..]), pick(&["true", "false"][..]))
            .prop_map(|(op, v)| format!("tags.`{PROMPT_TAG}` {op} '{v}'")),
    ]
}

fn combine(parts: Vec<String>, ors: Vec<bool>) -> String {
    let mut out = parts[0].clone();
    for (p, or) in parts[1..].iter().zip(ors) {
        out = format!("{out} {} {p}", if or { "OR" } else { "AND" });
    }
    out
}

fn orders(keys: &'static [&'static str]) -> impl Strategy<Value = Vec<String>> {
    prop::sample::subsequence(keys, 0..=2)
        .prop_flat_map(|ks| {
            let n = ks.len();
            (Just(ks), prop::collection::vec(any::<bool>(), n))
        })
        .prop_map(|(ks, asc)| {
            ks.iter()
                .zip(asc)
                .map(|(k, a)| format!("{k} {}", if a { "ASC" } else { "DESC" }))
                .collect()
        })
}

fn is_prompt(tags: &[RegistryTag]) -> bool {
    tags.iter()
        .any(|t| t.key == PROMPT_TAG && t.value.eq_ignore_ascii_case("true"))
}

fn tags(t1: Option<&str>, prompt: Option<&str>) -> Vec<RegistryTag> {
    let mut out = Vec::new();
    if let Some(v) = t1 {
        out.push(RegistryTag {
            key: "t1".into(),
            value: v.into(),
        });
    }
    if let Some(v) = prompt {
        out.push(RegistryTag {
            key: PROMPT_TAG.into(),
            value: v.into(),
        });
    }
    out
}

/// Builds the registry and returns every model and version as the store reports them.
async fn populate(
    store: &dyn ModelRegistryStore,
    specs: &[ModelSpec],
) -> (Vec<RegisteredModel>, Vec<ModelVersion>) {
    let mut versions = Vec::new();
    let mut models = Vec::new();
    for (name, t1, prompt, vspecs) in specs {
        store
            .create_registered_model(name, tags(*t1, *prompt), None)
            .await
            .unwrap();
        for (run_id, source, vt1, vprompt, stage) in vspecs {
            let v = store
                .create_model_version(CreateModelVersion {
                    name: name.to_string(),
                    source: source.to_string(),
                    run_id: run_id.map(str::to_string),
                    tags: tags(*vt1, *vprompt),
                    ..Default::default()
                })
                .await
                .unwrap();
            if *stage != Stage::None {
                store
                    .transition_model_version_stage(name, &v.version, *stage, false)
                    .await
                    .unwrap();
            }
        }
        for v in 1..=vspecs.len() {
            versions.push(store.get_model_version(name, &v.to_string()).await.unwrap());
        }
        models.push(store.get_registered_model(name).await.unwrap());
    }
    (models, versions)
}

async fn all_pages<T>(
    page_size: usize,
    mut fetch: impl FnMut(Option<String>) -> RegistrySearch,
    search: impl AsyncFn(RegistrySearch) -> crate::Result<crate::tracking::Page<T>>,
) -> Vec<T> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let page = search(fetch(token)).await.unwrap();
        assert!(page.items.len() <= page_size);
        out.extend(page.items);
        match page.next_page_token {
            Some(t) => token = Some(t),
            None => return out,
        }
    }
}
