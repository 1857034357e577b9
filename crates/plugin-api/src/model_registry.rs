//! The model-registry contract: registered models, versions, stages, aliases, tags.
//!
//! MLflow counterpart: `mlflow.store.model_registry.abstract_store.AbstractStore` (entry point
//! group `mlflow.model_registry_store`), chosen by the scheme of the registry URI, which
//! defaults to the tracking URI. Entities follow api.md §2.1; behaviour and errors §2.3.

use crate::entities::Metric;
use crate::search::{Expr, OrderBy};
use crate::tracking::Page;
use crate::wire::{i64_lenient, mlflow_enum, opt_i64_lenient};
use crate::{Error, Result};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

mlflow_enum! {
    /// A model version's registration status.
    pub enum ModelVersionStatus {
        /// Being registered.
        PendingRegistration = 1 => "PENDING_REGISTRATION",
        /// Registration failed.
        FailedRegistration = 2 => "FAILED_REGISTRATION",
        /// Ready (SQL stores create versions READY).
        Ready = 3 => "READY",
    }
}

/// A model version's stage; names are matched case-insensitively and written canonically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stage {
    /// `None`
    None,
    /// `Staging`
    Staging,
    /// `Production`
    Production,
    /// `Archived`
    Archived,
}

impl Stage {
    /// Every stage, in MLflow's order.
    pub const ALL: [Stage; 4] = [
        Stage::None,
        Stage::Staging,
        Stage::Production,
        Stage::Archived,
    ];

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::None => "None",
            Stage::Staging => "Staging",
            Stage::Production => "Production",
            Stage::Archived => "Archived",
        }
    }

    /// Parses a stage name case-insensitively; anything else is `InvalidArgument` with
    /// MLflow's message.
    pub fn parse(s: &str) -> Result<Stage> {
        Stage::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                Error::invalid(format!(
                    "Invalid Model Version stage: {s}. Value must be one of None, Staging, Production, Archived."
                ))
            })
    }

    /// Whether `archive_existing_versions` may target this stage (Staging, Production).
    pub fn is_active(self) -> bool {
        matches!(self, Stage::Staging | Stage::Production)
    }
}

/// A key/value tag on a registered model or a model version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryTag {
    /// Tag key (at most 250 characters).
    pub key: String,
    /// Tag value (at most 100000 characters).
    #[serde(default)]
    pub value: String,
}

/// An alias pointing at a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredModelAlias {
    /// The alias.
    pub alias: String,
    /// The version it points at.
    pub version: String,
}

/// A parameter of a model version (from its LoggedModel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelParam {
    /// Name.
    pub name: String,
    /// Value.
    pub value: String,
}

/// A version of a registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// The registered model's name.
    pub name: String,
    /// 1, 2, 3, ... per model, as a string.
    pub version: String,
    /// ms since the epoch.
    #[serde(with = "i64_lenient")]
    pub creation_timestamp: i64,
    /// ms since the epoch.
    #[serde(with = "i64_lenient")]
    pub last_updated_timestamp: i64,
    /// Creator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Current stage.
    pub current_stage: Stage,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the model came from (validated, see api.md §2.3).
    pub source: String,
    /// The run that produced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Registration status.
    pub status: ModelVersionStatus,
    /// Detail for the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// Tags, ordered by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<RegistryTag>,
    /// Link to the run in a UI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_link: Option<String>,
    /// Aliases pointing at this version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// The LoggedModel it was created from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// The LoggedModel's params.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_params: Vec<ModelParam>,
    /// The LoggedModel's metrics.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub model_metrics: Vec<Metric>,
}

/// A registered model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisteredModel {
    /// Unique name (no `/` or `:`).
    pub name: String,
    /// ms since the epoch.
    #[serde(with = "i64_lenient")]
    pub creation_timestamp: i64,
    /// ms since the epoch.
    #[serde(
        default,
        with = "opt_i64_lenient",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_updated_timestamp: Option<i64>,
    /// Creator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The highest version in each stage.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub latest_versions: Vec<ModelVersion>,
    /// Tags, ordered by key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<RegistryTag>,
    /// Aliases.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<RegisteredModelAlias>,
}

/// What a registry store supports.
///
/// Grows without breaking plugins: a field missing from a plugin's answer (a plugin built before
/// the capability existed) reads as `false`, and a plugin sets the fields it knows and leaves
/// the rest to `..Default::default()`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RegistryCapabilities {
    /// Aliases (`*_alias` methods).
    pub aliases: bool,
}

/// Arguments of [`ModelRegistryStore::create_model_version`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CreateModelVersion {
    /// The registered model (must exist).
    pub name: String,
    /// Where the model is; the host has validated it against runs and artifact roots.
    pub source: String,
    /// The producing run.
    pub run_id: Option<String>,
    /// Initial tags.
    pub tags: Vec<RegistryTag>,
    /// UI link to the run.
    pub run_link: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// The LoggedModel it comes from.
    pub model_id: Option<String>,
    /// The creator.
    pub user_id: Option<String>,
    /// Where the files are, when the host resolved the source to another place (a `models:/`
    /// source); `None` means the source itself. Returned by
    /// [`ModelRegistryStore::get_model_version_download_uri`].
    #[serde(default)]
    pub storage_location: Option<String>,
}

/// Arguments of the two registry searches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrySearch {
    /// Parsed filter ([`SearchKind::RegisteredModels`](crate::search::SearchKind::RegisteredModels)
    /// or [`SearchKind::ModelVersions`](crate::search::SearchKind::ModelVersions)).
    pub filter: Option<Expr>,
    /// Page size (the host enforces the limits of api.md §5.7).
    pub max_results: usize,
    /// Order keys; the store appends the defaults of api.md §5.4/§5.5 as tie-breakers.
    pub order_by: Vec<OrderBy>,
    /// Token from the previous page.
    pub page_token: Option<String>,
}

/// A model registry store. Unknown models are `NotFound` "Registered Model with name={n} not
/// found"; unknown versions `NotFound` "Model Version (name={n}, version={v}) not found".
#[async_trait]
pub trait ModelRegistryStore: Send + Sync + 'static {
    /// What this store supports.
    fn capabilities(&self) -> RegistryCapabilities;

    /// Writing registered models and versions with the source's numbers and times (`cairn
    /// import`, [`crate::import`]); `None` (the default) means this store cannot be an import
    /// destination. Host-side only: it does not cross the plugin ABI.
    fn registry_importer(&self) -> Option<&dyn crate::import::RegistryImport> {
        None
    }

    /// Creates a model. A taken name is `AlreadyExists` "Registered Model (name={n}) already exists.".
    async fn create_registered_model(
        &self,
        name: &str,
        tags: Vec<RegistryTag>,
        description: Option<String>,
    ) -> Result<RegisteredModel>;

    /// The model with its latest version per stage, tags and aliases.
    async fn get_registered_model(&self, name: &str) -> Result<RegisteredModel>;

    /// Renames a model; its versions follow. A taken name is `AlreadyExists`.
    async fn rename_registered_model(&self, name: &str, new_name: &str) -> Result<RegisteredModel>;

    /// Sets the description.
    async fn update_registered_model(
        &self,
        name: &str,
        description: Option<String>,
    ) -> Result<RegisteredModel>;

    /// Deletes the model with its versions, tags and aliases.
    async fn delete_registered_model(&self, name: &str) -> Result<()>;

    /// One page of models matching the filter (default order `name ASC`).
    async fn search_registered_models(&self, req: RegistrySearch) -> Result<Page<RegisteredModel>>;

    /// The highest version in each of `stages` (all four when empty).
    async fn get_latest_versions(
        &self,
        name: &str,
        stages: Vec<Stage>,
    ) -> Result<Vec<ModelVersion>>;

    /// Sets a model tag.
    async fn set_registered_model_tag(&self, name: &str, tag: RegistryTag) -> Result<()>;

    /// Deletes a model tag; a missing tag is not an error (as MLflow's SQL store).
    async fn delete_registered_model_tag(&self, name: &str, key: &str) -> Result<()>;

    /// Creates the next version (maximum + 1) in stage `None`, status READY.
    async fn create_model_version(&self, req: CreateModelVersion) -> Result<ModelVersion>;

    /// A version; a non-integer `version` is `InvalidArgument` "Parameter 'version' must be an
    /// integer, got '{v}'.".
    async fn get_model_version(&self, name: &str, version: &str) -> Result<ModelVersion>;

    /// Sets a version's description.
    async fn update_model_version(
        &self,
        name: &str,
        version: &str,
        description: Option<String>,
    ) -> Result<ModelVersion>;

    /// Moves a version to `stage`; with `archive_existing_versions` (only for Staging and
    /// Production) other versions in that stage move to Archived.
    async fn transition_model_version_stage(
        &self,
        name: &str,
        version: &str,
        stage: Stage,
        archive_existing_versions: bool,
    ) -> Result<ModelVersion>;

    /// Deletes a version, its tags and the aliases pointing at it.
    async fn delete_model_version(&self, name: &str, version: &str) -> Result<()>;

    /// The URI the version's files are downloaded from.
    async fn get_model_version_download_uri(&self, name: &str, version: &str) -> Result<String>;

    /// One page of versions matching the filter (default order `last_updated_timestamp DESC,
    /// name ASC, version_number DESC`).
    async fn search_model_versions(&self, req: RegistrySearch) -> Result<Page<ModelVersion>>;

    /// Sets a version tag.
    async fn set_model_version_tag(
        &self,
        name: &str,
        version: &str,
        tag: RegistryTag,
    ) -> Result<()>;

    /// Deletes a version tag; a missing tag is not an error (as MLflow's SQL store).
    async fn delete_model_version_tag(&self, name: &str, version: &str, key: &str) -> Result<()>;

    /// Points `alias` at `version`, moving it if it exists. Reserved (`latest`, `v<n>`) or
    /// malformed aliases are `InvalidArgument`.
    async fn set_registered_model_alias(
        &self,
        name: &str,
        alias: &str,
        version: &str,
    ) -> Result<()> {
        let _ = (name, alias, version);
        Err(Error::unsupported("aliases"))
    }

    /// Removes an alias.
    async fn delete_registered_model_alias(&self, name: &str, alias: &str) -> Result<()> {
        let _ = (name, alias);
        Err(Error::unsupported("aliases"))
    }

    /// The version an alias points at; an unknown alias is `InvalidArgument` (HTTP 400, as
    /// MLflow) "Registered model alias {a} not found.".
    async fn get_model_version_by_alias(&self, name: &str, alias: &str) -> Result<ModelVersion> {
        let _ = (name, alias);
        Err(Error::unsupported("aliases"))
    }
}
