//! The [`ModelRegistryStore`] conformance cases: MLflow's model-registry behaviour (api.md
//! §2.3, §4, §5.4, §5.5, §5.7), one `pub async fn` per behaviour.
//!
//! Each case creates its own registered models with [`unique_name`] and scopes every search
//! to them (a `name LIKE '<prefix>%'` filter), so cases may run in parallel on one shared
//! database. Versions need no run: a run id is only recorded.
//!
//! Run them all with
//! [`model_registry_store_conformance!`](crate::model_registry_store_conformance);
//! [`REGISTRY_CASES`] lists their names.

use super::support::{collect_pages, expect_err, filter, ok, order_by, unique_name};
use crate::model_registry::*;
use crate::search::SearchKind;
use crate::search::eval::{compare_model_versions, compare_registered_models};
use crate::tracking::Page;
use crate::{ErrorKind, Result};

/// The name of every registry case, in suite order; the same list the macro stamps tests from.
pub const REGISTRY_CASES: &[&str] = crate::__cairn_registry_cases!(names);

type Store<'a> = &'a dyn ModelRegistryStore;

fn tag(k: &str, v: &str) -> RegistryTag {
    RegistryTag {
        key: k.into(),
        value: v.into(),
    }
}

async fn new_model(store: Store<'_>, prefix: &str) -> String {
    let name = unique_name(prefix);
    ok(
        store.create_registered_model(&name, vec![], None).await,
        "create_registered_model",
    );
    name
}

async fn new_version(store: Store<'_>, name: &str, source: &str) -> ModelVersion {
    ok(
        store
            .create_model_version(CreateModelVersion {
                name: name.into(),
                source: source.into(),
                run_id: Some("0123456789abcdef0123456789abcdef".into()),
                ..Default::default()
            })
            .await,
        "create_model_version",
    )
}

fn search(filter_text: &str, kind: SearchKind, order: &[&str], max: usize) -> RegistrySearch {
    RegistrySearch {
        filter: filter(kind, filter_text),
        max_results: max,
        order_by: order_by(kind, order),
        page_token: None,
    }
}

async fn all_models(store: Store<'_>, req: RegistrySearch) -> Vec<RegisteredModel> {
    let size = req.max_results;
    collect_pages("search_registered_models", size, |token| {
        let mut r = req.clone();
        r.page_token = token;
        store.search_registered_models(r)
    })
    .await
}

async fn all_versions(store: Store<'_>, req: RegistrySearch) -> Vec<ModelVersion> {
    let size = req.max_results;
    collect_pages("search_model_versions", size, |token| {
        let mut r = req.clone();
        r.page_token = token;
        store.search_model_versions(r)
    })
    .await
}

fn names(models: &[RegisteredModel]) -> Vec<String> {
    models.iter().map(|m| m.name.clone()).collect()
}

fn versions(vs: &[ModelVersion]) -> Vec<(String, String)> {
    vs.iter()
        .map(|v| (v.name.clone(), v.version.clone()))
        .collect()
}

fn stage_of(latest: &[ModelVersion], stage: Stage) -> Option<String> {
    latest
        .iter()
        .find(|v| v.current_stage == stage)
        .map(|v| v.version.clone())
}

fn page_of<T>(r: Result<Page<T>>) -> Page<T> {
    ok(r, "search")
}

// ----- registered models ----------------------------------------------------------------------

/// A created model comes back from get with its tags, description and timestamps.
pub async fn registered_model_create_and_get(store: Store<'_>) {
    let name = unique_name("rm-create");
    let created = ok(
        store
            .create_registered_model(
                &name,
                vec![tag("team", "a"), tag("env", "prod")],
                Some("first".into()),
            )
            .await,
        "create",
    );
    assert_eq!(created.name, name);
    assert_eq!(created.description.as_deref(), Some("first"));
    assert!(created.creation_timestamp > 0);
    assert!(created.latest_versions.is_empty());
    let got = ok(store.get_registered_model(&name).await, "get");
    assert_eq!(got.name, name);
    assert_eq!(got.creation_timestamp, created.creation_timestamp);
    assert_eq!(got.description.as_deref(), Some("first"));
    let mut tags: Vec<(String, String)> = got.tags.into_iter().map(|t| (t.key, t.value)).collect();
    tags.sort();
    assert_eq!(
        tags,
        vec![("env".into(), "prod".into()), ("team".into(), "a".into())]
    );
}

/// A taken name is `AlreadyExists` with MLflow's message.
pub async fn registered_model_duplicate_name_is_already_exists(store: Store<'_>) {
    let name = new_model(store, "rm-dup").await;
    let e = expect_err(
        store.create_registered_model(&name, vec![], None).await,
        ErrorKind::AlreadyExists,
        "duplicate create",
    );
    assert_eq!(
        e.message,
        format!("Registered Model (name={name}) already exists.")
    );
}

/// Blank names and names with `/` or `:` are refused; bad tags too.
pub async fn registered_model_invalid_arguments_are_invalid_argument(store: Store<'_>) {
    for bad in ["", "a/b", "a:b"] {
        expect_err(
            store.create_registered_model(bad, vec![], None).await,
            ErrorKind::InvalidArgument,
            &format!("create {bad:?}"),
        );
    }
    let name = unique_name("rm-badtag");
    expect_err(
        store
            .create_registered_model(&name, vec![tag(&"k".repeat(251), "v")], None)
            .await,
        ErrorKind::InvalidArgument,
        "251-character tag key",
    );
    expect_err(
        store
            .create_registered_model(&name, vec![tag("k", &"v".repeat(100_001))], None)
            .await,
        ErrorKind::InvalidArgument,
        "100001-character tag value",
    );
    // Nothing was created by the refused calls.
    expect_err(
        store.get_registered_model(&name).await,
        ErrorKind::NotFound,
        "get after refused creates",
    );
    ok(
        store
            .create_registered_model(&name, vec![tag("k", &"v".repeat(100_000))], None)
            .await,
        "100000-character tag value",
    );
}

/// Unknown models are `NotFound` with MLflow's message, for every model-level method.
pub async fn registered_model_unknown_is_not_found(store: Store<'_>) {
    let name = unique_name("rm-missing");
    let e = expect_err(
        store.get_registered_model(&name).await,
        ErrorKind::NotFound,
        "get",
    );
    assert_eq!(
        e.message,
        format!("Registered Model with name={name} not found")
    );
    expect_err(
        store.update_registered_model(&name, None).await,
        ErrorKind::NotFound,
        "update",
    );
    expect_err(
        store
            .rename_registered_model(&name, &unique_name("x"))
            .await,
        ErrorKind::NotFound,
        "rename",
    );
    expect_err(
        store.delete_registered_model(&name).await,
        ErrorKind::NotFound,
        "delete",
    );
    expect_err(
        store.set_registered_model_tag(&name, tag("k", "v")).await,
        ErrorKind::NotFound,
        "set tag",
    );
    expect_err(
        store.get_latest_versions(&name, vec![]).await,
        ErrorKind::NotFound,
        "latest versions",
    );
    expect_err(
        store
            .create_model_version(CreateModelVersion {
                name: name.clone(),
                source: "s3://b/m".into(),
                ..Default::default()
            })
            .await,
        ErrorKind::NotFound,
        "create version",
    );
}

/// Renaming moves the model, its versions, tags and aliases to the new name.
pub async fn registered_model_rename_versions_follow(store: Store<'_>) {
    let name = new_model(store, "rm-rename").await;
    ok(
        store.set_registered_model_tag(&name, tag("k", "v")).await,
        "tag",
    );
    new_version(store, &name, "s3://b/1").await;
    new_version(store, &name, "s3://b/2").await;
    ok(
        store.set_registered_model_alias(&name, "champ", "2").await,
        "alias",
    );
    let new_name = unique_name("rm-renamed");
    let renamed = ok(
        store.rename_registered_model(&name, &new_name).await,
        "rename",
    );
    assert_eq!(renamed.name, new_name);
    expect_err(
        store.get_registered_model(&name).await,
        ErrorKind::NotFound,
        "old name",
    );
    let got = ok(store.get_registered_model(&new_name).await, "get new");
    assert_eq!(got.tags, vec![tag("k", "v")]);
    let v1 = ok(store.get_model_version(&new_name, "1").await, "v1");
    assert_eq!(v1.name, new_name);
    assert_eq!(v1.source, "s3://b/1");
    let by_alias = ok(
        store.get_model_version_by_alias(&new_name, "champ").await,
        "alias after rename",
    );
    assert_eq!(by_alias.version, "2");
    let v3 = new_version(store, &new_name, "s3://b/3").await;
    assert_eq!(v3.version, "3", "numbering continues after a rename");
}

/// Renaming to a taken name is `AlreadyExists` and changes nothing.
pub async fn registered_model_rename_to_taken_name_is_already_exists(store: Store<'_>) {
    let a = new_model(store, "rm-taken-a").await;
    let b = new_model(store, "rm-taken-b").await;
    let e = expect_err(
        store.rename_registered_model(&a, &b).await,
        ErrorKind::AlreadyExists,
        "rename onto a taken name",
    );
    assert_eq!(
        e.message,
        format!("Registered Model (name={b}) already exists.")
    );
    ok(store.get_registered_model(&a).await, "a still exists");
    expect_err(
        store.rename_registered_model(&a, "x/y").await,
        ErrorKind::InvalidArgument,
        "rename to an invalid name",
    );
}

/// Update sets the description and moves last_updated_timestamp forward.
pub async fn registered_model_update_description(store: Store<'_>) {
    let name = new_model(store, "rm-update").await;
    let before = ok(store.get_registered_model(&name).await, "get");
    let updated = ok(
        store
            .update_registered_model(&name, Some("new text".into()))
            .await,
        "update",
    );
    assert_eq!(updated.description.as_deref(), Some("new text"));
    assert!(updated.last_updated_timestamp >= before.last_updated_timestamp);
    let got = ok(store.get_registered_model(&name).await, "get");
    assert_eq!(got.description.as_deref(), Some("new text"));
}

/// Deleting a model deletes its versions, tags and aliases; the name is free again.
pub async fn registered_model_delete_removes_everything(store: Store<'_>) {
    let name = new_model(store, "rm-delete").await;
    ok(
        store.set_registered_model_tag(&name, tag("k", "v")).await,
        "tag",
    );
    new_version(store, &name, "s3://b/1").await;
    ok(
        store
            .set_model_version_tag(&name, "1", tag("vk", "vv"))
            .await,
        "version tag",
    );
    ok(
        store.set_registered_model_alias(&name, "a1", "1").await,
        "alias",
    );
    ok(store.delete_registered_model(&name).await, "delete");
    expect_err(
        store.get_registered_model(&name).await,
        ErrorKind::NotFound,
        "get deleted",
    );
    expect_err(
        store.get_model_version(&name, "1").await,
        ErrorKind::NotFound,
        "version of deleted model",
    );
    let found = all_versions(
        store,
        search(
            &format!("name = '{name}'"),
            SearchKind::ModelVersions,
            &[],
            10,
        ),
    )
    .await;
    assert!(
        found.is_empty(),
        "versions of a deleted model are searchable"
    );
    // Re-created under the same name it starts from scratch.
    let again = ok(
        store.create_registered_model(&name, vec![], None).await,
        "re-create",
    );
    assert!(again.tags.is_empty() && again.aliases.is_empty());
    assert_eq!(new_version(store, &name, "s3://b/x").await.version, "1");
}

/// Model tags: set, overwrite, delete; deleting a missing tag is not an error.
pub async fn registered_model_tags_set_overwrite_delete(store: Store<'_>) {
    let name = new_model(store, "rm-tags").await;
    ok(
        store.set_registered_model_tag(&name, tag("a", "1")).await,
        "set a",
    );
    ok(
        store.set_registered_model_tag(&name, tag("b", "2")).await,
        "set b",
    );
    ok(
        store.set_registered_model_tag(&name, tag("a", "3")).await,
        "overwrite a",
    );
    let got = ok(store.get_registered_model(&name).await, "get");
    assert_eq!(got.tags, vec![tag("a", "3"), tag("b", "2")]);
    ok(
        store.delete_registered_model_tag(&name, "a").await,
        "delete a",
    );
    ok(
        store.delete_registered_model_tag(&name, "missing").await,
        "delete a missing tag",
    );
    let got = ok(store.get_registered_model(&name).await, "get");
    assert_eq!(got.tags, vec![tag("b", "2")]);
    expect_err(
        store
            .set_registered_model_tag(&name, tag(&"k".repeat(251), "v"))
            .await,
        ErrorKind::InvalidArgument,
        "long key",
    );
}

// ----- model versions -------------------------------------------------------------------------

/// Versions are numbered 1, 2, 3 per model, READY, in stage None, with what was given.
pub async fn model_version_create_numbering(store: Store<'_>) {
    let a = new_model(store, "mv-num-a").await;
    let b = new_model(store, "mv-num-b").await;
    let v1 = ok(
        store
            .create_model_version(CreateModelVersion {
                name: a.clone(),
                source: "s3://bucket/run/artifacts/model".into(),
                run_id: Some("abc123".into()),
                tags: vec![tag("t", "1")],
                run_link: Some("http://ui/run".into()),
                description: Some("desc".into()),
                model_id: Some("m-123".into()),
                user_id: Some("alice".into()),
                storage_location: None,
            })
            .await,
        "create v1",
    );
    assert_eq!(v1.name, a);
    assert_eq!(v1.version, "1");
    assert_eq!(v1.status, ModelVersionStatus::Ready);
    assert_eq!(v1.current_stage, Stage::None);
    assert_eq!(v1.source, "s3://bucket/run/artifacts/model");
    assert_eq!(v1.run_id.as_deref(), Some("abc123"));
    assert_eq!(v1.run_link.as_deref(), Some("http://ui/run"));
    assert_eq!(v1.description.as_deref(), Some("desc"));
    assert_eq!(v1.model_id.as_deref(), Some("m-123"));
    assert_eq!(v1.user_id.as_deref(), Some("alice"));
    assert_eq!(v1.tags, vec![tag("t", "1")]);
    assert!(v1.creation_timestamp > 0);
    assert_eq!(new_version(store, &a, "s3://b/2").await.version, "2");
    assert_eq!(new_version(store, &b, "s3://b/1").await.version, "1");
    assert_eq!(new_version(store, &a, "s3://b/3").await.version, "3");
    let got = ok(store.get_model_version(&a, "1").await, "get v1");
    assert_eq!(got, v1);
}

/// After a delete, numbering continues from the highest number ever given.
pub async fn model_version_numbers_are_not_reused(store: Store<'_>) {
    let name = new_model(store, "mv-reuse").await;
    new_version(store, &name, "s3://b/1").await;
    new_version(store, &name, "s3://b/2").await;
    ok(store.delete_model_version(&name, "2").await, "delete v2");
    assert_eq!(new_version(store, &name, "s3://b/3").await.version, "3");
}

/// A non-integer version is `InvalidArgument` with MLflow's message; unknown ones `NotFound`.
pub async fn model_version_bad_and_unknown_versions(store: Store<'_>) {
    let name = new_model(store, "mv-bad").await;
    new_version(store, &name, "s3://b/1").await;
    let e = expect_err(
        store.get_model_version(&name, "x").await,
        ErrorKind::InvalidArgument,
        "get version x",
    );
    assert_eq!(
        e.message,
        "Parameter 'version' must be an integer, got 'x'."
    );
    let e = expect_err(
        store.get_model_version(&name, "7").await,
        ErrorKind::NotFound,
        "get version 7",
    );
    assert_eq!(
        e.message,
        format!("Model Version (name={name}, version=7) not found")
    );
    expect_err(
        store.update_model_version(&name, "7", None).await,
        ErrorKind::NotFound,
        "update 7",
    );
    expect_err(
        store.delete_model_version(&name, "7").await,
        ErrorKind::NotFound,
        "delete 7",
    );
    expect_err(
        store
            .transition_model_version_stage(&name, "7", Stage::Staging, false)
            .await,
        ErrorKind::NotFound,
        "transition 7",
    );
    expect_err(
        store.get_model_version_download_uri(&name, "7").await,
        ErrorKind::NotFound,
        "download uri 7",
    );
    expect_err(
        store.set_model_version_tag(&name, "7", tag("k", "v")).await,
        ErrorKind::NotFound,
        "tag 7",
    );
    expect_err(
        store.delete_model_version_tag(&name, "x", "k").await,
        ErrorKind::InvalidArgument,
        "delete tag of version x",
    );
}

/// Update sets a version's description and moves its last_updated_timestamp forward.
pub async fn model_version_update_description(store: Store<'_>) {
    let name = new_model(store, "mv-update").await;
    let v = new_version(store, &name, "s3://b/1").await;
    let u = ok(
        store
            .update_model_version(&name, "1", Some("better".into()))
            .await,
        "update",
    );
    assert_eq!(u.description.as_deref(), Some("better"));
    assert!(u.last_updated_timestamp >= v.last_updated_timestamp);
    assert_eq!(u.creation_timestamp, v.creation_timestamp);
    let got = ok(store.get_model_version(&name, "1").await, "get");
    assert_eq!(got.description.as_deref(), Some("better"));
}

/// Deleting a version removes it and only it.
pub async fn model_version_delete(store: Store<'_>) {
    let name = new_model(store, "mv-delete").await;
    new_version(store, &name, "s3://b/1").await;
    new_version(store, &name, "s3://b/2").await;
    ok(store.delete_model_version(&name, "1").await, "delete v1");
    expect_err(
        store.get_model_version(&name, "1").await,
        ErrorKind::NotFound,
        "get deleted",
    );
    ok(store.get_model_version(&name, "2").await, "v2 remains");
    let latest = ok(store.get_latest_versions(&name, vec![]).await, "latest");
    assert_eq!(versions(&latest), vec![(name.clone(), "2".to_string())]);
}

/// Version tags: set, overwrite, delete; deleting a missing tag is not an error.
pub async fn model_version_tags_set_overwrite_delete(store: Store<'_>) {
    let name = new_model(store, "mv-tags").await;
    new_version(store, &name, "s3://b/1").await;
    new_version(store, &name, "s3://b/2").await;
    ok(
        store.set_model_version_tag(&name, "1", tag("a", "1")).await,
        "set",
    );
    ok(
        store.set_model_version_tag(&name, "1", tag("a", "2")).await,
        "overwrite",
    );
    ok(
        store.set_model_version_tag(&name, "1", tag("b", "")).await,
        "empty value",
    );
    let v = ok(store.get_model_version(&name, "1").await, "get");
    assert_eq!(v.tags, vec![tag("a", "2"), tag("b", "")]);
    let other = ok(store.get_model_version(&name, "2").await, "get v2");
    assert!(other.tags.is_empty(), "tags leaked to another version");
    ok(
        store.delete_model_version_tag(&name, "1", "a").await,
        "delete",
    );
    ok(
        store.delete_model_version_tag(&name, "1", "missing").await,
        "delete missing",
    );
    let v = ok(store.get_model_version(&name, "1").await, "get");
    assert_eq!(v.tags, vec![tag("b", "")]);
    expect_err(
        store
            .set_model_version_tag(&name, "1", tag("k", &"v".repeat(100_001)))
            .await,
        ErrorKind::InvalidArgument,
        "long value",
    );
}

/// Stage transitions, latest version per stage, and get_latest_versions with stage lists.
pub async fn transition_stage_and_latest_versions(store: Store<'_>) {
    let name = new_model(store, "mv-stage").await;
    for i in 1..=4 {
        new_version(store, &name, &format!("s3://b/{i}")).await;
    }
    let t = ok(
        store
            .transition_model_version_stage(&name, "1", Stage::Production, false)
            .await,
        "v1 -> Production",
    );
    assert_eq!(t.current_stage, Stage::Production);
    ok(
        store
            .transition_model_version_stage(&name, "2", Stage::Staging, false)
            .await,
        "v2 -> Staging",
    );
    ok(
        store
            .transition_model_version_stage(&name, "3", Stage::Staging, false)
            .await,
        "v3 -> Staging",
    );
    let got = ok(store.get_model_version(&name, "1").await, "get v1");
    assert_eq!(got.current_stage, Stage::Production);
    let all = ok(store.get_latest_versions(&name, vec![]).await, "all stages");
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(stage_of(&all, Stage::None).as_deref(), Some("4"));
    assert_eq!(stage_of(&all, Stage::Staging).as_deref(), Some("3"));
    assert_eq!(stage_of(&all, Stage::Production).as_deref(), Some("1"));
    let staging = ok(
        store.get_latest_versions(&name, vec![Stage::Staging]).await,
        "Staging only",
    );
    assert_eq!(versions(&staging), vec![(name.clone(), "3".to_string())]);
    let archived = ok(
        store
            .get_latest_versions(&name, vec![Stage::Archived])
            .await,
        "Archived",
    );
    assert!(archived.is_empty());
    let model = ok(store.get_registered_model(&name).await, "get model");
    assert_eq!(model.latest_versions.len(), 3);
    assert_eq!(
        stage_of(&model.latest_versions, Stage::Staging).as_deref(),
        Some("3")
    );
}

/// `archive_existing_versions` moves the other versions of the target stage to Archived.
pub async fn transition_archive_existing_versions(store: Store<'_>) {
    let name = new_model(store, "mv-archive").await;
    for i in 1..=3 {
        new_version(store, &name, &format!("s3://b/{i}")).await;
    }
    for v in ["1", "2"] {
        ok(
            store
                .transition_model_version_stage(&name, v, Stage::Production, false)
                .await,
            "to Production",
        );
    }
    ok(
        store
            .transition_model_version_stage(&name, "3", Stage::Staging, false)
            .await,
        "v3 to Staging",
    );
    let t = ok(
        store
            .transition_model_version_stage(&name, "3", Stage::Production, true)
            .await,
        "v3 to Production, archiving",
    );
    assert_eq!(t.current_stage, Stage::Production);
    for v in ["1", "2"] {
        let got = ok(store.get_model_version(&name, v).await, "get");
        assert_eq!(got.current_stage, Stage::Archived, "version {v}");
    }
    // Without the flag, nothing else moves.
    new_version(store, &name, "s3://b/4").await;
    ok(
        store
            .transition_model_version_stage(&name, "4", Stage::Production, false)
            .await,
        "v4 to Production",
    );
    let v3 = ok(store.get_model_version(&name, "3").await, "get v3");
    assert_eq!(v3.current_stage, Stage::Production);
}

/// `archive_existing_versions` towards None or Archived is an `Internal` error (as MLflow).
pub async fn transition_archive_to_inactive_stage_is_internal(store: Store<'_>) {
    let name = new_model(store, "mv-archive-bad").await;
    new_version(store, &name, "s3://b/1").await;
    for stage in [Stage::None, Stage::Archived] {
        let e = expect_err(
            store
                .transition_model_version_stage(&name, "1", stage, true)
                .await,
            ErrorKind::Internal,
            &format!("archive towards {stage:?}"),
        );
        assert!(
            e.message.contains("is not an Active stage"),
            "{}",
            e.message
        );
    }
    ok(
        store
            .transition_model_version_stage(&name, "1", Stage::Archived, false)
            .await,
        "plain transition to Archived",
    );
}

/// The download URI is the version's source when no storage location was resolved.
pub async fn download_uri_is_storage_location_or_source(store: Store<'_>) {
    let name = new_model(store, "mv-uri").await;
    new_version(store, &name, "s3://bucket/path/model").await;
    assert_eq!(
        ok(
            store.get_model_version_download_uri(&name, "1").await,
            "uri"
        ),
        "s3://bucket/path/model"
    );
    ok(
        store
            .create_model_version(CreateModelVersion {
                name: name.clone(),
                source: format!("models:/{name}/1"),
                storage_location: Some("s3://bucket/path/model".into()),
                ..Default::default()
            })
            .await,
        "create from models:/",
    );
    assert_eq!(
        ok(
            store.get_model_version_download_uri(&name, "2").await,
            "uri"
        ),
        "s3://bucket/path/model"
    );
    let v2 = ok(store.get_model_version(&name, "2").await, "get v2");
    assert_eq!(v2.source, format!("models:/{name}/1"));
}

// ----- aliases --------------------------------------------------------------------------------

/// Aliases: set, resolve, move, delete; both entities list them.
pub async fn aliases_set_move_delete_resolve(store: Store<'_>) {
    let name = new_model(store, "alias").await;
    if !store.capabilities().aliases {
        super::support::skipped(
            "aliases_set_move_delete_resolve",
            "the store lacks the `aliases` capability",
        );
        return;
    }
    new_version(store, &name, "s3://b/1").await;
    new_version(store, &name, "s3://b/2").await;
    ok(
        store
            .set_registered_model_alias(&name, "champion", "1")
            .await,
        "set",
    );
    ok(
        store.set_registered_model_alias(&name, "backup", "1").await,
        "set 2",
    );
    let v = ok(
        store.get_model_version_by_alias(&name, "champion").await,
        "resolve",
    );
    assert_eq!(v.version, "1");
    assert_eq!(
        v.aliases,
        vec!["backup".to_string(), "champion".to_string()]
    );
    ok(
        store
            .set_registered_model_alias(&name, "champion", "2")
            .await,
        "move",
    );
    let v = ok(
        store.get_model_version_by_alias(&name, "champion").await,
        "resolve moved",
    );
    assert_eq!(v.version, "2");
    assert_eq!(v.aliases, vec!["champion".to_string()]);
    let model = ok(store.get_registered_model(&name).await, "get model");
    assert_eq!(
        model.aliases,
        vec![
            RegisteredModelAlias {
                alias: "backup".into(),
                version: "1".into()
            },
            RegisteredModelAlias {
                alias: "champion".into(),
                version: "2".into()
            },
        ]
    );
    ok(
        store.delete_registered_model_alias(&name, "champion").await,
        "delete",
    );
    let e = expect_err(
        store.get_model_version_by_alias(&name, "champion").await,
        ErrorKind::InvalidArgument,
        "resolve deleted alias",
    );
    assert_eq!(e.message, "Registered model alias champion not found.");
    let v2 = ok(store.get_model_version(&name, "2").await, "get v2");
    assert!(v2.aliases.is_empty());
}

/// Reserved, malformed and too long aliases are `InvalidArgument`; an unknown version or
/// model is `NotFound`.
pub async fn aliases_invalid_and_unknown(store: Store<'_>) {
    let name = new_model(store, "alias-bad").await;
    if !store.capabilities().aliases {
        super::support::skipped(
            "aliases_invalid_and_unknown",
            "the store lacks the `aliases` capability",
        );
        return;
    }
    new_version(store, &name, "s3://b/1").await;
    let e = expect_err(
        store.set_registered_model_alias(&name, "Latest", "1").await,
        ErrorKind::InvalidArgument,
        "latest",
    );
    assert_eq!(
        e.message,
        "'latest' alias name (case insensitive) is reserved."
    );
    let e = expect_err(
        store.set_registered_model_alias(&name, "v1", "1").await,
        ErrorKind::InvalidArgument,
        "v1",
    );
    assert_eq!(e.message, "Version alias name 'v1' is reserved.");
    for bad in ["", "a b", "a/b", "a.b"] {
        expect_err(
            store.set_registered_model_alias(&name, bad, "1").await,
            ErrorKind::InvalidArgument,
            &format!("alias {bad:?}"),
        );
    }
    expect_err(
        store
            .set_registered_model_alias(&name, &"a".repeat(256), "1")
            .await,
        ErrorKind::InvalidArgument,
        "256 characters",
    );
    ok(
        store
            .set_registered_model_alias(&name, &"a".repeat(255), "1")
            .await,
        "255 characters",
    );
    expect_err(
        store.set_registered_model_alias(&name, "ok", "9").await,
        ErrorKind::NotFound,
        "unknown version",
    );
    expect_err(
        store
            .set_registered_model_alias(&unique_name("nope"), "ok", "1")
            .await,
        ErrorKind::NotFound,
        "unknown model",
    );
    expect_err(
        store
            .get_model_version_by_alias(&unique_name("nope"), "ok")
            .await,
        ErrorKind::NotFound,
        "resolve on unknown model",
    );
}

/// Deleting a version drops the aliases that point at it.
pub async fn deleting_a_version_drops_its_aliases(store: Store<'_>) {
    let name = new_model(store, "alias-del").await;
    if !store.capabilities().aliases {
        return;
    }
    new_version(store, &name, "s3://b/1").await;
    new_version(store, &name, "s3://b/2").await;
    ok(
        store.set_registered_model_alias(&name, "keep", "2").await,
        "alias v2",
    );
    ok(
        store.set_registered_model_alias(&name, "gone", "1").await,
        "alias v1",
    );
    ok(store.delete_model_version(&name, "1").await, "delete v1");
    expect_err(
        store.get_model_version_by_alias(&name, "gone").await,
        ErrorKind::InvalidArgument,
        "alias of a deleted version",
    );
    let model = ok(store.get_registered_model(&name).await, "get");
    assert_eq!(
        model.aliases,
        vec![RegisteredModelAlias {
            alias: "keep".into(),
            version: "2".into()
        }]
    );
}

// ----- searches -------------------------------------------------------------------------------

/// Registered-model search by name (=, LIKE, ILIKE, IN) and by tags.
pub async fn search_registered_models_filters(store: Store<'_>) {
    let prefix = unique_name("rms");
    let rm = SearchKind::RegisteredModels;
    for (suffix, team) in [("alpha", "x"), ("beta", "y"), ("Gamma", "x")] {
        ok(
            store
                .create_registered_model(
                    &format!("{prefix}-{suffix}"),
                    vec![tag("team", team)],
                    None,
                )
                .await,
            "create",
        );
    }
    let found =
        |f: String| async move { names(&all_models(store, search(&f, rm, &[], 100)).await) };
    assert_eq!(
        found(format!("name LIKE '{prefix}-%'")).await,
        vec![
            format!("{prefix}-Gamma"),
            format!("{prefix}-alpha"),
            format!("{prefix}-beta")
        ]
    );
    assert_eq!(
        found(format!("name = '{prefix}-beta'")).await,
        vec![format!("{prefix}-beta")]
    );
    assert_eq!(
        found(format!("name ILIKE '{prefix}-g%'")).await,
        vec![format!("{prefix}-Gamma")]
    );
    assert!(found(format!("name LIKE '{prefix}-g%'")).await.is_empty());
    assert_eq!(
        found(format!(
            "name IN ('{prefix}-alpha', '{prefix}-beta', 'other')"
        ))
        .await,
        vec![format!("{prefix}-alpha"), format!("{prefix}-beta")]
    );
    assert_eq!(
        found(format!("name LIKE '{prefix}-%' AND tags.team = 'x'")).await,
        vec![format!("{prefix}-Gamma"), format!("{prefix}-alpha")]
    );
    assert_eq!(
        found(format!("name LIKE '{prefix}-%' AND tags.team != 'x'")).await,
        vec![format!("{prefix}-beta")]
    );
    // Results carry their latest versions.
    new_version(store, &format!("{prefix}-beta"), "s3://b/1").await;
    let models = all_models(
        store,
        search(&format!("name = '{prefix}-beta'"), rm, &[], 10),
    )
    .await;
    assert_eq!(models[0].latest_versions.len(), 1);
}

/// Registered-model ordering (name, last_updated_timestamp) with the `name ASC` tie-breaker,
/// and complete, stable pages.
pub async fn search_registered_models_order_and_pages(store: Store<'_>) {
    let prefix = unique_name("rmo");
    let rm = SearchKind::RegisteredModels;
    for i in 0..7 {
        new_model(store, &format!("{prefix}-{i}")).await;
    }
    let f = format!("name LIKE '{prefix}-%'");
    let all = all_models(store, search(&f, rm, &[], 1000)).await;
    assert_eq!(all.len(), 7);
    let asc = names(&all);
    let mut sorted = asc.clone();
    sorted.sort();
    assert_eq!(asc, sorted, "default order is name ASC");
    let desc = names(&all_models(store, search(&f, rm, &["name DESC"], 1000)).await);
    let mut rev = sorted.clone();
    rev.reverse();
    assert_eq!(desc, rev);
    for clauses in [&["last_updated_timestamp DESC"][..], &["timestamp"][..]] {
        let got = all_models(store, search(&f, rm, clauses, 1000)).await;
        let order = order_by(rm, clauses);
        for w in got.windows(2) {
            assert!(
                compare_registered_models(&order, &w[0], &w[1]).is_le(),
                "{clauses:?}: {} before {}",
                w[0].name,
                w[1].name
            );
        }
    }
    for size in [1, 2, 3, 7] {
        let paged = names(&all_models(store, search(&f, rm, &[], size)).await);
        assert_eq!(paged, sorted, "pages of {size}");
    }
}

/// Prompts (tag `mlflow.prompt.is_prompt=true`) are hidden unless the filter mentions the tag.
pub async fn search_registered_models_hides_prompts(store: Store<'_>) {
    let prefix = unique_name("rmp");
    let rm = SearchKind::RegisteredModels;
    let model = format!("{prefix}-model");
    let prompt = format!("{prefix}-prompt");
    ok(
        store.create_registered_model(&model, vec![], None).await,
        "model",
    );
    ok(
        store
            .create_registered_model(&prompt, vec![tag("mlflow.prompt.is_prompt", "true")], None)
            .await,
        "prompt",
    );
    let f = format!("name LIKE '{prefix}-%'");
    assert_eq!(
        names(&all_models(store, search(&f, rm, &[], 100)).await),
        vec![model.clone()]
    );
    let shown = format!("{f} AND tags.`mlflow.prompt.is_prompt` = 'true'");
    assert_eq!(
        names(&all_models(store, search(&shown, rm, &[], 100)).await),
        vec![prompt.clone()]
    );
    let not_prompt = format!("{f} AND tags.`mlflow.prompt.is_prompt` = 'false'");
    assert_eq!(
        names(&all_models(store, search(&not_prompt, rm, &[], 100)).await),
        vec![model.clone()]
    );
}

/// Model-version search by name, run_id, source_path, version_number and tags.
pub async fn search_model_versions_filters(store: Store<'_>) {
    let prefix = unique_name("mvs");
    let mv = SearchKind::ModelVersions;
    let a = format!("{prefix}-a");
    let b = format!("{prefix}-b");
    for n in [&a, &b] {
        ok(
            store.create_registered_model(n, vec![], None).await,
            "create",
        );
    }
    for (name, run, src) in [
        (&a, "run1", "s3://x/one"),
        (&a, "run2", "s3://x/two"),
        (&a, "run1", "s3://y/three"),
        (&b, "run3", "s3://x/four"),
    ] {
        ok(
            store
                .create_model_version(CreateModelVersion {
                    name: name.clone(),
                    source: src.into(),
                    run_id: Some(run.into()),
                    ..Default::default()
                })
                .await,
            "version",
        );
    }
    ok(
        store.set_model_version_tag(&a, "2", tag("ok", "yes")).await,
        "tag",
    );
    let scope = format!("name LIKE '{prefix}-%'");
    let found = |f: String| async move {
        let mut v = versions(&all_versions(store, search(&f, mv, &[], 100)).await);
        v.sort();
        v
    };
    let pair = |n: &String, v: &str| (n.clone(), v.to_string());
    assert_eq!(found(scope.clone()).await.len(), 4);
    assert_eq!(
        found(format!("name = '{a}'")).await,
        vec![pair(&a, "1"), pair(&a, "2"), pair(&a, "3")]
    );
    assert_eq!(
        found(format!("{scope} AND run_id = 'run1'")).await,
        vec![pair(&a, "1"), pair(&a, "3")]
    );
    assert_eq!(
        found(format!("{scope} AND run_id IN ('run2', 'run3')")).await,
        vec![pair(&a, "2"), pair(&b, "1")]
    );
    assert_eq!(
        found(format!("{scope} AND source_path LIKE 's3://x/%'")).await,
        vec![pair(&a, "1"), pair(&a, "2"), pair(&b, "1")]
    );
    assert_eq!(
        found(format!("name = '{a}' AND version_number >= 2")).await,
        vec![pair(&a, "2"), pair(&a, "3")]
    );
    assert_eq!(
        found(format!("{scope} AND tags.ok = 'yes'")).await,
        vec![pair(&a, "2")]
    );
    assert_eq!(found(format!("name IN ('{b}')")).await, vec![pair(&b, "1")]);
    // Prompt versions are hidden unless the filter mentions the prompt tag.
    ok(
        store
            .set_model_version_tag(&b, "1", tag("mlflow.prompt.is_prompt", "true"))
            .await,
        "prompt tag",
    );
    assert!(found(format!("name IN ('{b}')")).await.is_empty());
    assert_eq!(
        found(format!(
            "name IN ('{b}') AND tags.`mlflow.prompt.is_prompt` = 'true'"
        ))
        .await,
        vec![pair(&b, "1")]
    );
}

/// Model-version ordering: the default (`last_updated_timestamp DESC, name ASC,
/// version_number DESC`) and explicit keys, with complete and stable pages.
pub async fn search_model_versions_order_and_pages(store: Store<'_>) {
    let prefix = unique_name("mvo");
    let mv = SearchKind::ModelVersions;
    for n in ["a", "b"] {
        let name = format!("{prefix}-{n}");
        ok(
            store.create_registered_model(&name, vec![], None).await,
            "create",
        );
        for i in 0..4 {
            new_version(store, &name, &format!("s3://b/{i}")).await;
        }
    }
    ok(
        store
            .update_model_version(&format!("{prefix}-a"), "1", Some("touched".into()))
            .await,
        "touch a/1",
    );
    let f = format!("name LIKE '{prefix}-%'");
    for clauses in [
        &[][..],
        &["version_number"][..],
        &["name DESC", "version_number"][..],
        &["creation_timestamp DESC"][..],
        &["last_updated_timestamp"][..],
    ] {
        let all = all_versions(store, search(&f, mv, clauses, 1000)).await;
        assert_eq!(all.len(), 8, "{clauses:?}");
        let order = order_by(mv, clauses);
        for w in all.windows(2) {
            assert!(
                compare_model_versions(&order, &w[0], &w[1]).is_lt(),
                "{clauses:?}: {}/{} before {}/{}",
                w[0].name,
                w[0].version,
                w[1].name,
                w[1].version
            );
        }
        for size in [1, 3, 8] {
            let paged = all_versions(store, search(&f, mv, clauses, size)).await;
            assert_eq!(
                versions(&paged),
                versions(&all),
                "{clauses:?} pages of {size}"
            );
        }
    }
    let all = page_of(store.search_model_versions(search(&f, mv, &[], 1000)).await).items;
    let touched = all
        .iter()
        .find(|v| v.name == format!("{prefix}-a") && v.version == "1")
        .expect("a/1 is found");
    assert!(
        all.iter()
            .all(|v| v.last_updated_timestamp <= touched.last_updated_timestamp),
        "an update moves last_updated_timestamp to now"
    );
}

/// A malformed page token is `InvalidArgument`, in both searches.
pub async fn search_malformed_page_token_is_invalid_argument(store: Store<'_>) {
    let mut req = search("name = 'x'", SearchKind::RegisteredModels, &[], 10);
    req.page_token = Some("not a token!".into());
    expect_err(
        store.search_registered_models(req).await,
        ErrorKind::InvalidArgument,
        "registered models",
    );
    let mut req = search("name = 'x'", SearchKind::ModelVersions, &[], 10);
    req.page_token = Some("not a token!".into());
    expect_err(
        store.search_model_versions(req).await,
        ErrorKind::InvalidArgument,
        "model versions",
    );
}

#[cfg(test)]
mod tests {
    use super::REGISTRY_CASES;

    #[test]
    fn case_names_are_unique() {
        let mut seen = std::collections::BTreeSet::new();
        for name in REGISTRY_CASES {
            assert!(seen.insert(*name), "case {name} listed twice");
        }
        assert!(REGISTRY_CASES.len() > 20);
    }
}
