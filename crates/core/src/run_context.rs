//! Run-context providers: the tags Cairn adds to the runs it creates.
//!
//! `[run_context] providers = ["user", "git", "vendor"]` names the providers, in order; the
//! [`crate::assembly::Assembly`] builds them once ([`RunContextProviders`]) and the server's
//! `runs/create` applies them ([`RunContextProviders::apply`]). A later provider overrides an
//! earlier one's keys; tags given by the user win over every provider.
//!
//! The built-in providers follow MLflow's default run context (api.md §10):
//!
//! | name | tags | when |
//! |---|---|---|
//! | `user` | `mlflow.user`: the run's user (the request's `user_id`), else this process's user (`USER`, `LOGNAME`, `USERNAME`, else `unknown`) | always |
//! | `source` | `mlflow.source.name`: this process's program (`argv[0]`); `mlflow.source.type`: `LOCAL` | always |
//! | `git` | `mlflow.source.git.commit`, `mlflow.source.git.branch`, `mlflow.source.git.repoURL` of the git checkout containing `[settings.git] path` (default: the working directory), read once at start-up | inside a checkout |
//!
//! Providers are synchronous (see [`RunContextProvider`]); they are called on tokio's blocking
//! pool, never on an executor thread.

use crate::registry::PluginEntry;
use cairn_plugin_api::context::RunContext;
use cairn_plugin_api::entities::RunTag;
use cairn_plugin_api::{Build, BuildContext, Error, PluginFactory, Result, RunContextProvider};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The built-in providers' factories (core's own plugins, listed rather than registered with
/// `inventory`, so linking can never drop them).
pub const BUILTIN: &[PluginFactory] = &[
    PluginFactory {
        name: "user",
        plugin: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        build: Build::RunContextProvider(build_user),
    },
    PluginFactory {
        name: "source",
        plugin: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        build: Build::RunContextProvider(build_source),
    },
    PluginFactory {
        name: "git",
        plugin: env!("CARGO_PKG_NAME"),
        version: env!("CARGO_PKG_VERSION"),
        build: Build::RunContextProvider(build_git),
    },
];

/// MLflow's `mlflow.user` tag.
pub const USER_TAG: &str = "mlflow.user";
/// MLflow's `mlflow.source.name` tag.
pub const SOURCE_NAME_TAG: &str = "mlflow.source.name";
/// MLflow's `mlflow.source.type` tag.
pub const SOURCE_TYPE_TAG: &str = "mlflow.source.type";
/// MLflow's `mlflow.source.git.commit` tag.
pub const GIT_COMMIT_TAG: &str = "mlflow.source.git.commit";
/// MLflow's `mlflow.source.git.branch` tag.
pub const GIT_BRANCH_TAG: &str = "mlflow.source.git.branch";
/// MLflow's `mlflow.source.git.repoURL` tag.
pub const GIT_REPO_URL_TAG: &str = "mlflow.source.git.repoURL";

/// Settings of a provider that takes none: any key is an error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct NoSettings {}

fn build_user(ctx: &BuildContext) -> Result<Arc<dyn RunContextProvider>> {
    ctx.settings::<NoSettings>()?;
    let process_user = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    Ok(Arc::new(UserContext { process_user }))
}

/// `user`: `mlflow.user`.
struct UserContext {
    process_user: String,
}

impl RunContextProvider for UserContext {
    fn in_context(&self, _ctx: &RunContext) -> bool {
        true
    }

    fn tags(&self, ctx: &RunContext) -> Result<BTreeMap<String, String>> {
        let user = ctx
            .user
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| self.process_user.clone());
        Ok([(USER_TAG.to_owned(), user)].into())
    }
}

fn build_source(ctx: &BuildContext) -> Result<Arc<dyn RunContextProvider>> {
    ctx.settings::<NoSettings>()?;
    let name = std::env::args_os()
        .next()
        .map(|a| a.to_string_lossy().into_owned())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "<console>".to_owned());
    Ok(Arc::new(FixedTags(
        [
            (SOURCE_NAME_TAG.to_owned(), name),
            (SOURCE_TYPE_TAG.to_owned(), "LOCAL".to_owned()),
        ]
        .into(),
    )))
}

/// A provider adding fixed tags (empty: not in context).
struct FixedTags(BTreeMap<String, String>);

impl RunContextProvider for FixedTags {
    fn in_context(&self, _ctx: &RunContext) -> bool {
        !self.0.is_empty()
    }

    fn tags(&self, _ctx: &RunContext) -> Result<BTreeMap<String, String>> {
        Ok(self.0.clone())
    }
}

/// `[settings.git]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GitSettings {
    /// A directory inside the checkout to report; default the working directory.
    path: Option<PathBuf>,
}

fn build_git(ctx: &BuildContext) -> Result<Arc<dyn RunContextProvider>> {
    let settings: GitSettings = ctx.settings()?;
    let dir = match settings.path {
        Some(path) => path,
        None => std::env::current_dir()
            .map_err(|e| Error::internal(format!("cannot read the working directory: {e}")))?,
    };
    let tags = git_info(&dir).map(GitInfo::tags).unwrap_or_default();
    Ok(Arc::new(FixedTags(tags)))
}

/// What `git` reports of a checkout.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GitInfo {
    /// The commit checked out.
    pub commit: Option<String>,
    /// The branch checked out (none on a detached `HEAD`).
    pub branch: Option<String>,
    /// The URL of the repository's first remote, as MLflow reports it.
    pub repo_url: Option<String>,
}

impl GitInfo {
    /// MLflow's git tags; absent values are left out.
    pub fn tags(self) -> BTreeMap<String, String> {
        [
            (GIT_COMMIT_TAG, self.commit),
            (GIT_BRANCH_TAG, self.branch),
            (GIT_REPO_URL_TAG, self.repo_url),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v)))
        .collect()
    }
}

/// The git checkout containing `dir`, read from its files (no `git` binary needed): `HEAD`,
/// loose and packed refs, and the remotes of its config; linked worktrees (`.git` a file)
/// included. `None` outside a checkout.
pub fn git_info(dir: &Path) -> Option<GitInfo> {
    let dot_git = dir
        .ancestors()
        .map(|d| d.join(".git"))
        .find(|p| p.exists())?;
    let git_dir = if dot_git.is_file() {
        let text = std::fs::read_to_string(&dot_git).ok()?;
        let target = text.trim().strip_prefix("gitdir:")?.trim();
        dot_git.parent()?.join(target)
    } else {
        dot_git
    };
    let common = match std::fs::read_to_string(git_dir.join("commondir")) {
        Ok(rel) => git_dir.join(rel.trim()),
        Err(_) => git_dir.clone(),
    };
    let head = std::fs::read_to_string(git_dir.join("HEAD")).ok()?;
    let head = head.trim();
    let (commit, branch) = match head.strip_prefix("ref:") {
        Some(name) => {
            let name = name.trim();
            let commit = [&git_dir, &common]
                .iter()
                .find_map(|d| std::fs::read_to_string(d.join(name)).ok())
                .map(|c| c.trim().to_owned())
                .or_else(|| packed_ref(&common, name));
            (commit, name.strip_prefix("refs/heads/").map(str::to_owned))
        }
        None => (Some(head.to_owned()), None),
    };
    Some(GitInfo {
        commit: commit.filter(|c| !c.is_empty()),
        branch,
        repo_url: first_remote_url(&common),
    })
}

fn packed_ref(common: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(common.join("packed-refs")).ok()?;
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('^'))
        .find_map(|l| {
            let (sha, refname) = l.split_once(' ')?;
            (refname.trim() == name).then(|| sha.to_owned())
        })
}

/// The `url` of the first `[remote "..."]` section of the repository's config.
fn first_remote_url(common: &Path) -> Option<String> {
    let text = std::fs::read_to_string(common.join("config")).ok()?;
    let mut in_remote = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_remote = line.starts_with("[remote ");
        } else if in_remote
            && let Some((key, value)) = line.split_once('=')
            && key.trim().eq_ignore_ascii_case("url")
        {
            return Some(value.trim().trim_matches('"').to_owned());
        }
    }
    None
}

/// The configured providers, built, in order.
#[derive(Clone, Default)]
pub struct RunContextProviders {
    providers: Arc<Vec<(String, Arc<dyn RunContextProvider>)>>,
}

impl std::fmt::Debug for RunContextProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.providers.iter().map(|(name, _)| name))
            .finish()
    }
}

impl RunContextProviders {
    /// The providers of `entries`, in order (each the entry it was built from and the
    /// provider).
    pub fn new(providers: Vec<(&PluginEntry, Arc<dyn RunContextProvider>)>) -> Self {
        RunContextProviders {
            providers: Arc::new(
                providers
                    .into_iter()
                    .map(|(entry, p)| (entry.name.clone(), p))
                    .collect(),
            ),
        }
    }

    /// Whether no provider is configured.
    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    /// The tags of a run about to be created in `experiment_id` for `user` with the user's
    /// `tags`: the user's tags (unchanged, in order) followed by the providers' tags for keys
    /// the user did not give, a later provider overriding an earlier one. Providers run on
    /// tokio's blocking pool (inline without a tokio runtime). As in MLflow's `resolve_tags`,
    /// a provider that fails (an error, or a panic caught at the plugin boundary) is logged as a
    /// warning naming it and contributes no tags; the run is still created.
    pub async fn apply(
        &self,
        experiment_id: &str,
        user: Option<&str>,
        tags: Vec<RunTag>,
    ) -> Result<Vec<RunTag>> {
        if self.is_empty() {
            return Ok(tags);
        }
        let ctx = RunContext {
            experiment_id: experiment_id.to_owned(),
            user: user.filter(|u| !u.is_empty()).map(str::to_owned),
            tags: tags
                .iter()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect(),
        };
        let providers = self.providers.clone();
        let added = match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(move || collect_tags(&providers, ctx))
                .await
                .map_err(|e| {
                    Error::internal(format!("the run-context providers did not complete: {e}"))
                })?,
            Err(_) => collect_tags(&providers, ctx),
        };
        let mut tags = tags;
        tags.extend(added.into_iter().map(|(key, value)| RunTag { key, value }));
        Ok(tags)
    }
}

/// Calls each provider in order (blocking); returns the tags they add for keys the user did
/// not give. A failing provider is logged and skipped.
fn collect_tags(
    providers: &[(String, Arc<dyn RunContextProvider>)],
    mut ctx: RunContext,
) -> BTreeMap<String, String> {
    let given: std::collections::BTreeSet<String> = ctx.tags.keys().cloned().collect();
    let mut added = BTreeMap::new();
    for (name, provider) in providers {
        if !provider.in_context(&ctx) {
            continue;
        }
        let tags = match provider.tags(&ctx) {
            Ok(tags) => tags,
            Err(e) => {
                tracing::warn!(
                    provider = %name,
                    "run-context provider '{name}' failed, its tags are left out: {e}"
                );
                continue;
            }
        };
        for (key, value) in tags {
            if !given.contains(&key) {
                ctx.tags.insert(key.clone(), value.clone());
                added.insert(key, value);
            }
        }
    }
    added
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{Origin, Registry};
    use std::process::Command;

    fn registry() -> Registry {
        Registry::new(
            BUILTIN
                .iter()
                .map(|f| PluginEntry::from_factory(f, Origin::BuiltIn)),
        )
        .unwrap()
    }

    fn providers(names: &[&str], settings: serde_json::Value) -> RunContextProviders {
        let registry = registry();
        let built = names
            .iter()
            .map(|name| {
                let entry = registry
                    .for_name(cairn_plugin_api::PluginKind::RunContextProvider, name)
                    .unwrap();
                let ctx = BuildContext {
                    settings: settings[name].clone(),
                    ..BuildContext::default()
                };
                (entry, registry.run_context_provider(name, ctx).unwrap())
            })
            .collect();
        RunContextProviders::new(built)
    }

    fn tag(key: &str, value: &str) -> RunTag {
        RunTag {
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn user_tags_win_and_the_request_user_is_mlflow_user() {
        let p = providers(&["user", "source"], serde_json::json!({}));
        let tags = block_on(p.apply(
            "0",
            Some("ada"),
            vec![tag("mlflow.source.type", "NOTEBOOK"), tag("a", "1")],
        ))
        .unwrap();
        let map: BTreeMap<_, _> = tags.iter().map(|t| (&*t.key, &*t.value)).collect();
        assert_eq!(map["mlflow.user"], "ada");
        assert_eq!(map["mlflow.source.type"], "NOTEBOOK");
        assert_eq!(map["a"], "1");
        assert!(map.contains_key("mlflow.source.name"), "{map:?}");
        // The user's tags come first, unchanged.
        assert_eq!(tags[0], tag("mlflow.source.type", "NOTEBOOK"));
        assert_eq!(tags.len(), 4, "{tags:?}");
    }

    #[test]
    fn without_a_user_mlflow_user_is_the_process_user() {
        let p = providers(&["user"], serde_json::json!({}));
        let tags = block_on(p.apply("0", Some(""), vec![])).unwrap();
        assert_eq!(tags.len(), 1);
        assert_eq!(tags[0].key, "mlflow.user");
        assert!(!tags[0].value.is_empty());
    }

    #[test]
    fn built_ins_refuse_unknown_settings() {
        let registry = registry();
        for name in ["user", "source", "git"] {
            let ctx = BuildContext {
                settings: serde_json::json!({"nope": 1}),
                ..BuildContext::default()
            };
            let err = registry.run_context_provider(name, ctx).err().unwrap();
            let cause = std::error::Error::source(&err).unwrap().to_string();
            assert!(cause.contains("unknown field `nope`"), "{name}: {cause}");
        }
    }

    /// Drives `fut` on a current-thread runtime (providers go to its blocking pool).
    fn block_on<F: std::future::Future>(fut: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(fut)
    }

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@example.invalid",
                "-c",
                "commit.gpgsign=false",
                "-c",
                "init.defaultBranch=trunk",
            ])
            .args(args)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    #[test]
    fn git_info_matches_what_git_reports() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        assert_eq!(git_info(&repo), None);
        git(&repo, &["init", "-q"]);
        std::fs::write(repo.join("f"), "x").unwrap();
        git(&repo, &["add", "f"]);
        git(&repo, &["commit", "-q", "-m", "one"]);
        git(
            &repo,
            &["remote", "add", "origin", "https://example.invalid/r.git"],
        );
        git(
            &repo,
            &["remote", "add", "other", "https://example.invalid/o.git"],
        );
        let commit = git(&repo, &["rev-parse", "HEAD"]);
        let sub = repo.join("sub/dir");
        std::fs::create_dir_all(&sub).unwrap();
        let expected = GitInfo {
            commit: Some(commit.clone()),
            branch: Some("trunk".into()),
            repo_url: Some("https://example.invalid/r.git".into()),
        };
        assert_eq!(git_info(&sub), Some(expected.clone()));

        // Packed refs, as after `git gc`.
        git(&repo, &["pack-refs", "--all"]);
        assert!(!repo.join(".git/refs/heads/trunk").exists());
        assert_eq!(git_info(&repo), Some(expected.clone()));

        // A linked worktree (`.git` is a file) on another branch.
        let wt = dir.path().join("wt");
        git(
            &repo,
            &["worktree", "add", "-q", "-b", "side", wt.to_str().unwrap()],
        );
        assert_eq!(
            git_info(&wt),
            Some(GitInfo {
                branch: Some("side".into()),
                ..expected.clone()
            })
        );

        // A detached HEAD has a commit and no branch.
        git(&repo, &["checkout", "-q", "--detach"]);
        let info = git_info(&repo).unwrap();
        assert_eq!(info.commit.as_deref(), Some(commit.as_str()));
        assert_eq!(info.branch, None);

        let tags = info.tags();
        assert_eq!(tags[GIT_COMMIT_TAG], commit);
        assert!(!tags.contains_key(GIT_BRANCH_TAG));

        // The provider reads the configured path once, when built.
        let p = providers(
            &["git"],
            serde_json::json!({"git": {"path": wt.to_str().unwrap()}}),
        );
        let tags = block_on(p.apply("0", None, vec![])).unwrap();
        let map: BTreeMap<_, _> = tags.iter().map(|t| (&*t.key, &*t.value)).collect();
        assert_eq!(map[GIT_BRANCH_TAG], "side");
        assert_eq!(map[GIT_COMMIT_TAG], commit);
    }

    #[test]
    fn outside_a_checkout_git_adds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            git_info(dir.path()),
            None,
            "the temporary directory is in a checkout"
        );
        let p = providers(
            &["git"],
            serde_json::json!({"git": {"path": dir.path().to_str().unwrap()}}),
        );
        let tags = block_on(p.apply("0", None, vec![tag("a", "b")])).unwrap();
        assert_eq!(tags, vec![tag("a", "b")]);
    }
}
