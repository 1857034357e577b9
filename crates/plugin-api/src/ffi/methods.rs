//! The one declaration of each plugin trait's ABI: its methods, their ids and their wire
//! types. Everything else is generated from it:
//!
//! * the method-id enums ([`TrackingMethod`](super::TrackingMethod), ...) with each method's
//!   trait name ([`TrackingMethod::name`](super::TrackingMethod::name));
//! * the library-side dispatch (`plugin.rs`), which decodes a request, calls the plugin and
//!   encodes the response;
//! * the host-side wrappers (`cairn-core`'s loader), which implement the trait over a
//!   library's object;
//! * the golden samples of every request and response (`golden.rs`), whose digest is the
//!   library's [`schema_hash`](super::schema_hash).
//!
//! Each `__cairn_ffi_<trait>!` macro calls back the macro it is given with the declaration:
//!
//! ```text
//! { <the caller's extra tokens> }
//! Trait, IdEnum;
//! cached { Variant = id => method() -> ReturnType [as StoredType]; ... }
//! call   { Variant = id => method(arg: ArgType [as WireType], ...) -> OkType; ... }
//! custom { Variant = id => method(arg: ArgType [as WireType], ...) [-> ResponseType]; ... }
//! ```
//!
//! `cached` methods are synchronous and constant (capabilities, a root URI): the host asks
//! once when it wraps the object. `call` methods are async and answer JSON. `custom` methods
//! need hand-written glue on both sides (streams, objects, the binary `log_batch`, synchronous
//! providers); the generators take that glue as a list in the same order, so neither side can
//! leave one out. `as WireType` names the owned type a borrowed argument travels as (`&str as
//! String`). A test in this module fails when a trait gains a method the declaration lacks.

/// Turns a decoded (owned) argument into the borrowed form a trait method takes.
#[doc(hidden)]
pub trait AsArg<'a, T> {
    /// The borrowed argument.
    fn as_arg(&'a self) -> T;
}

impl<'a> AsArg<'a, &'a str> for String {
    fn as_arg(&'a self) -> &'a str {
        self
    }
}

impl<'a> AsArg<'a, Option<&'a str>> for Option<String> {
    fn as_arg(&'a self) -> Option<&'a str> {
        self.as_deref()
    }
}

impl<'a> AsArg<'a, &'a [String]> for Vec<String> {
    fn as_arg(&'a self) -> &'a [String] {
        self
    }
}

impl<'a> AsArg<'a, &'a std::path::Path> for std::path::PathBuf {
    fn as_arg(&'a self) -> &'a std::path::Path {
        self
    }
}

impl<'a> AsArg<'a, &'a serde_json::Value> for serde_json::Value {
    fn as_arg(&'a self) -> &'a serde_json::Value {
        self
    }
}

impl<'a> AsArg<'a, &'a crate::mlmodel::MlModel> for crate::mlmodel::MlModel {
    fn as_arg(&'a self) -> &'a crate::mlmodel::MlModel {
        self
    }
}

impl<'a> AsArg<'a, &'a crate::context::RunContext> for crate::context::RunContext {
    fn as_arg(&'a self) -> &'a crate::context::RunContext {
        self
    }
}

/// The wire type of a declared argument or stored value: `T as W` travels as `W`, `T` as `T`.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_ffi_wire {
    ($t:ty) => {
        $t
    };
    ($t:ty as $w:ty) => {
        $w
    };
}

/// Passes a decoded argument to the trait method: by value, or borrowed (`as`).
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_ffi_pass {
    ($v:ident) => {
        $v
    };
    ($v:ident as $w:ty) => {
        $crate::ffi::__private::AsArg::as_arg(&$v)
    };
}

/// Returns a cached value: a copy, or borrowed (`as`).
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_ffi_cached {
    ($v:expr) => {
        ::std::clone::Clone::clone(&$v)
    };
    ($v:expr, $w:ty) => {
        &$v
    };
}

/// The declaration of [`TrackingStore`](crate::TrackingStore)'s ABI.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_ffi_tracking {
    ($cb:ident { $($extra:tt)* }) => { $cb! { { $($extra)* } TrackingStore, TrackingMethod;
    cached {
        Capabilities = 1 => capabilities() -> TrackingCapabilities;
    }
    call {
        CreateExperiment = 2 => create_experiment(req: CreateExperiment) -> String;
        GetExperiment = 3 => get_experiment(experiment_id: &str as String) -> Experiment;
        GetExperimentByName = 4 => get_experiment_by_name(name: &str as String) -> Option<Experiment>;
        DeleteExperiment = 5 => delete_experiment(experiment_id: &str as String) -> ();
        RestoreExperiment = 6 => restore_experiment(experiment_id: &str as String) -> ();
        RenameExperiment = 7 => rename_experiment(experiment_id: &str as String, new_name: &str as String) -> ();
        SetExperimentTag = 8 => set_experiment_tag(experiment_id: &str as String, tag: ExperimentTag) -> ();
        DeleteExperimentTag = 9 => delete_experiment_tag(experiment_id: &str as String, key: &str as String) -> ();
        SearchExperiments = 10 => search_experiments(req: SearchExperiments) -> Page<Experiment>;
        CreateRun = 11 => create_run(req: CreateRun) -> Run;
        GetRun = 12 => get_run(run_id: &str as String) -> Run;
        UpdateRunInfo = 13 => update_run_info(run_id: &str as String, update: UpdateRun) -> RunInfo;
        DeleteRun = 14 => delete_run(run_id: &str as String) -> ();
        RestoreRun = 15 => restore_run(run_id: &str as String) -> ();
        LogMetric = 17 => log_metric(run_id: &str as String, metric: Metric) -> ();
        LogParam = 18 => log_param(run_id: &str as String, param: Param) -> ();
        SetTag = 19 => set_tag(run_id: &str as String, tag: RunTag) -> ();
        DeleteTag = 20 => delete_tag(run_id: &str as String, key: &str as String) -> ();
        GetMetricHistory = 21 => get_metric_history(run_id: &str as String, metric_key: &str as String, max_results: usize, page_token: Option<String>) -> Page<Metric>;
        GetMetricHistoryBulkInterval = 22 => get_metric_history_bulk_interval(req: BulkIntervalRequest) -> Vec<MetricWithRunId>;
        SearchRuns = 23 => search_runs(req: SearchRuns) -> Page<Run>;
        LogInputs = 24 => log_inputs(run_id: &str as String, datasets: Vec<DatasetInput>, models: Vec<ModelInput>) -> ();
        LogOutputs = 25 => log_outputs(run_id: &str as String, models: Vec<ModelOutput>) -> ();
        SearchDatasets = 26 => search_datasets(experiment_ids: &[String] as Vec<String>) -> Vec<DatasetSummary>;
        RecordLoggedModel = 27 => record_logged_model(run_id: &str as String, model_json: serde_json::Value) -> ();
        CreateLoggedModel = 28 => create_logged_model(req: CreateLoggedModel) -> LoggedModel;
        GetLoggedModel = 29 => get_logged_model(model_id: &str as String, allow_deleted: bool) -> LoggedModel;
        FinalizeLoggedModel = 30 => finalize_logged_model(model_id: &str as String, status: LoggedModelStatus) -> LoggedModel;
        DeleteLoggedModel = 31 => delete_logged_model(model_id: &str as String) -> ();
        SetLoggedModelTags = 32 => set_logged_model_tags(model_id: &str as String, tags: Vec<LoggedModelTag>) -> ();
        DeleteLoggedModelTag = 33 => delete_logged_model_tag(model_id: &str as String, key: &str as String) -> ();
        LogLoggedModelParams = 34 => log_logged_model_params(model_id: &str as String, params: Vec<LoggedModelParameter>) -> ();
        SearchLoggedModels = 35 => search_logged_models(req: SearchLoggedModels) -> Page<LoggedModel>;
    }
    custom {
        // The host sends the request in a versioned, length-prefixed binary form (the hottest
        // write; see `host::log_batch_request`); a library also accepts the JSON tuple.
        LogBatch = 16 => log_batch(run_id: &str as String, metrics: Vec<Metric>, params: Vec<Param>, tags: Vec<RunTag>) -> ();
    }
    } };
}

/// The declaration of [`ArtifactRepository`](crate::ArtifactRepository)'s ABI.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_ffi_artifacts {
    ($cb:ident { $($extra:tt)* }) => { $cb! { { $($extra)* } ArtifactRepository, ArtifactMethod;
    cached {
        Capabilities = 1 => capabilities() -> ArtifactCapabilities;
        RootUri = 2 => root_uri() -> &str as String;
    }
    call {
        List = 5 => list(path: Option<&str> as Option<String>) -> Vec<FileInfo>;
        Delete = 6 => delete(path: Option<&str> as Option<String>) -> ();
        CreateMultipartUpload = 7 => create_multipart_upload(path: &str as String, num_parts: u32) -> MultipartUpload;
        CompleteMultipartUpload = 9 => complete_multipart_upload(path: &str as String, upload_id: &str as String, parts: Vec<CompletedPart>) -> ();
        AbortMultipartUpload = 10 => abort_multipart_upload(path: &str as String, upload_id: &str as String) -> ();
        PresignedDownloadUrl = 11 => presigned_download_url(path: &str as String, expiration_secs: u64) -> PresignedUrl;
        PresignedUploadUrl = 12 => presigned_upload_url(path: &str as String, expiration_secs: u64) -> PresignedUrl;
        Head = 13 => head(path: &str as String) -> FileInfo;
    }
    custom {
        // `open`: a sink (`StreamMethod`); finishing it answers the bytes written.
        Put = 3 => put(path: &str as String) -> u64;
        // `open`: a source (`StreamMethod`) of the file's bytes; `Size` answers its size.
        Get = 4 => get(path: &str as String) -> Option<u64>;
        // `open`: a sink; finishing it answers the part's ETag.
        UploadPart = 8 => upload_part(path: &str as String, upload_id: &str as String, part_number: u32) -> String;
    }
    } };
}

/// The declaration of [`RunContextProvider`](crate::RunContextProvider)'s ABI. Its methods are
/// synchronous by contract.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_ffi_context {
    ($cb:ident { $($extra:tt)* }) => { $cb! { { $($extra)* } RunContextProvider, ContextMethod;
    cached {}
    call {}
    custom {
        InContext = 1 => in_context(ctx: &RunContext as RunContext) -> bool;
        Tags = 2 => tags(ctx: &RunContext as RunContext) -> BTreeMap<String, String>;
    }
    } };
}

/// The declaration of [`ModelRegistryStore`](crate::ModelRegistryStore)'s ABI.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_ffi_registry {
    ($cb:ident { $($extra:tt)* }) => { $cb! { { $($extra)* } ModelRegistryStore, RegistryMethod;
    cached {
        Capabilities = 1 => capabilities() -> RegistryCapabilities;
    }
    call {
        CreateRegisteredModel = 2 => create_registered_model(name: &str as String, tags: Vec<RegistryTag>, description: Option<String>) -> RegisteredModel;
        GetRegisteredModel = 3 => get_registered_model(name: &str as String) -> RegisteredModel;
        RenameRegisteredModel = 4 => rename_registered_model(name: &str as String, new_name: &str as String) -> RegisteredModel;
        UpdateRegisteredModel = 5 => update_registered_model(name: &str as String, description: Option<String>) -> RegisteredModel;
        DeleteRegisteredModel = 6 => delete_registered_model(name: &str as String) -> ();
        SearchRegisteredModels = 7 => search_registered_models(req: RegistrySearch) -> Page<RegisteredModel>;
        GetLatestVersions = 8 => get_latest_versions(name: &str as String, stages: Vec<Stage>) -> Vec<ModelVersion>;
        SetRegisteredModelTag = 9 => set_registered_model_tag(name: &str as String, tag: RegistryTag) -> ();
        DeleteRegisteredModelTag = 10 => delete_registered_model_tag(name: &str as String, key: &str as String) -> ();
        CreateModelVersion = 11 => create_model_version(req: CreateModelVersion) -> ModelVersion;
        GetModelVersion = 12 => get_model_version(name: &str as String, version: &str as String) -> ModelVersion;
        UpdateModelVersion = 13 => update_model_version(name: &str as String, version: &str as String, description: Option<String>) -> ModelVersion;
        TransitionModelVersionStage = 14 => transition_model_version_stage(name: &str as String, version: &str as String, stage: Stage, archive_existing_versions: bool) -> ModelVersion;
        DeleteModelVersion = 15 => delete_model_version(name: &str as String, version: &str as String) -> ();
        GetModelVersionDownloadUri = 16 => get_model_version_download_uri(name: &str as String, version: &str as String) -> String;
        SearchModelVersions = 17 => search_model_versions(req: RegistrySearch) -> Page<ModelVersion>;
        SetModelVersionTag = 18 => set_model_version_tag(name: &str as String, version: &str as String, tag: RegistryTag) -> ();
        DeleteModelVersionTag = 19 => delete_model_version_tag(name: &str as String, version: &str as String, key: &str as String) -> ();
        SetRegisteredModelAlias = 20 => set_registered_model_alias(name: &str as String, alias: &str as String, version: &str as String) -> ();
        DeleteRegisteredModelAlias = 21 => delete_registered_model_alias(name: &str as String, alias: &str as String) -> ();
        GetModelVersionByAlias = 22 => get_model_version_by_alias(name: &str as String, alias: &str as String) -> ModelVersion;
    }
    custom {}
    } };
}

/// The declaration of [`ProjectBackend`](crate::ProjectBackend)'s ABI.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_ffi_backend {
    ($cb:ident { $($extra:tt)* }) => { $cb! { { $($extra)* } ProjectBackend, BackendMethod;
    cached {
        Capabilities = 1 => capabilities() -> ProjectCapabilities;
    }
    call {}
    custom {
        // `open`: a submitted run (`SubmittedRunMethod`).
        Submit = 2 => submit(run: ProjectRun);
        // `open`: a submitted run (`SubmittedRunMethod`).
        Attach = 3 => attach(handle: RunHandle);
    }
    } };
}

/// The declaration of [`SubmittedRun`](crate::SubmittedRun)'s ABI.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_ffi_submitted_run {
    ($cb:ident { $($extra:tt)* }) => { $cb! { { $($extra)* } SubmittedRun, SubmittedRunMethod;
    cached {
        RunId = 1 => run_id() -> &str as String;
        Handle = 6 => handle() -> &RunHandle as RunHandle;
    }
    call {
        Status = 3 => status() -> RunState;
        Cancel = 4 => cancel() -> ();
    }
    custom {
        // `open`: a source of the output's bytes (`StreamMethod`).
        Logs = 5 => logs(options: LogOptions);
    }
    } };
}

/// The declaration of [`ModelFlavor`](crate::ModelFlavor)'s ABI.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_ffi_flavor {
    ($cb:ident { $($extra:tt)* }) => { $cb! { { $($extra)* } ModelFlavor, FlavorMethod;
    cached {}
    call {}
    custom {
        // `open`: a loaded model (`ModelMethod`).
        Load = 1 => load(model_dir: &Path as PathBuf, model: &MlModel as MlModel);
    }
    } };
}

/// The declaration of [`LoadedModel`](crate::LoadedModel)'s ABI.
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_ffi_model {
    ($cb:ident { $($extra:tt)* }) => { $cb! { { $($extra)* } LoadedModel, ModelMethod;
    cached {
        Signature = 1 => signature() -> Signature;
        Capabilities = 3 => capabilities() -> ModelCapabilities;
    }
    call {}
    custom {
        // Request and response in the binary form of `ffi/tensors.rs` (tensors as raw
        // elements); a library also accepts the JSON tuple.
        Predict = 2 => predict(input: ModelData, params: Params) -> ModelData;
    }
    } };
}

/// Calls `$cb! { { $extra } <declaration> }` once per plugin trait (and returned object).
#[doc(hidden)]
#[macro_export]
macro_rules! __cairn_ffi_each {
    ($cb:ident) => {
        $crate::__cairn_ffi_tracking!($cb {});
        $crate::__cairn_ffi_artifacts!($cb {});
        $crate::__cairn_ffi_context!($cb {});
        $crate::__cairn_ffi_registry!($cb {});
        $crate::__cairn_ffi_backend!($cb {});
        $crate::__cairn_ffi_submitted_run!($cb {});
        $crate::__cairn_ffi_flavor!($cb {});
        $crate::__cairn_ffi_model!($cb {});
    };
}

/// Generates a method-id enum from a declaration.
macro_rules! method_enum {
    (
        { } $trait:ident, $enum:ident;
        cached { $( $cv:ident = $cid:literal => $cname:ident () -> $cret:ty $(as $cw:ty)?; )* }
        call { $( $v:ident = $id:literal => $name:ident ( $($arg:ident : $aty:ty $(as $aw:ty)?),* ) -> $ret:ty; )* }
        custom { $( $xv:ident = $xid:literal => $xname:ident ( $($xarg:ident : $xaty:ty $(as $xaw:ty)?),* ) $(-> $xret:ty)?; )* }
    ) => {
        #[doc = concat!("The methods of [`", stringify!($trait), "`](crate::", stringify!($trait),
            "), generated from its declaration in `ffi/methods.rs`. A request is the JSON array \
            of a method's arguments after `&self` (borrowed ones owned), a response the JSON of \
            its `Ok` value.")]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $enum {
            $(
                #[doc = concat!("`", stringify!($cname), "()` → `", stringify!($cret), "` (constant: asked once)")]
                $cv = $cid,
            )*
            $(
                #[doc = concat!("`", stringify!($name), "(", stringify!($($arg: $aty),*), ")` → `", stringify!($ret), "`")]
                $v = $id,
            )*
            $(
                #[doc = concat!("`", stringify!($xname), "(", stringify!($($xarg: $xaty),*), ")`: hand-written glue (see the declaration)")]
                $xv = $xid,
            )*
        }

        impl $enum {
            /// Every method, in declaration order.
            pub const ALL: &'static [$enum] = &[$($enum::$cv,)* $($enum::$v,)* $($enum::$xv,)*];

            /// The method with `id`, if this version knows it.
            pub fn from_id(id: u32) -> Option<Self> {
                Self::ALL.iter().copied().find(|m| m.id() == id)
            }

            /// The id that crosses the boundary.
            pub fn id(self) -> u32 {
                self as u32
            }

            /// The trait method's name.
            pub fn name(self) -> &'static str {
                match self {
                    $($enum::$cv => stringify!($cname),)*
                    $($enum::$v => stringify!($name),)*
                    $($enum::$xv => stringify!($xname),)*
                }
            }
        }
    };
}

__cairn_ffi_each!(method_enum);

/// The trait each method enum belongs to, with the enum's method names, for the test below and
/// the golden files.
#[cfg(test)]
pub(super) fn declared_traits() -> Vec<(&'static str, Vec<&'static str>)> {
    fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
        all.iter().map(|m| name(*m)).collect()
    }
    vec![
        (
            "TrackingStore",
            names(TrackingMethod::ALL, TrackingMethod::name),
        ),
        (
            "ArtifactRepository",
            names(ArtifactMethod::ALL, ArtifactMethod::name),
        ),
        (
            "RunContextProvider",
            names(ContextMethod::ALL, ContextMethod::name),
        ),
        (
            "ModelRegistryStore",
            names(RegistryMethod::ALL, RegistryMethod::name),
        ),
        (
            "ProjectBackend",
            names(BackendMethod::ALL, BackendMethod::name),
        ),
        (
            "SubmittedRun",
            names(SubmittedRunMethod::ALL, SubmittedRunMethod::name),
        ),
        ("ModelFlavor", names(FlavorMethod::ALL, FlavorMethod::name)),
        ("LoadedModel", names(ModelMethod::ALL, ModelMethod::name)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The sources of the plugin traits: every `fn` a trait declares must have an ABI path.
    const TRAIT_SOURCES: &[&str] = &[
        include_str!("../tracking.rs"),
        include_str!("../artifacts.rs"),
        include_str!("../context.rs"),
        include_str!("../model_registry.rs"),
        include_str!("../projects.rs"),
        include_str!("../flavor.rs"),
    ];

    /// The methods `pub trait <name>` declares in `source`: the `fn` items at the trait body's
    /// top level (comments skipped, default bodies skipped by brace depth).
    fn trait_methods(source: &str, name: &str) -> Option<BTreeSet<String>> {
        let header = format!("pub trait {name}:");
        let start = source.find(&header)?;
        let body = &source[start..];
        let mut methods = BTreeSet::new();
        let mut depth = 0usize;
        for line in body.lines() {
            let code = line.split("//").next().unwrap_or_default();
            if depth == 1 {
                let mut words = code.split_whitespace().peekable();
                while let Some(word) = words.next() {
                    if word == "fn" {
                        let next = words.peek().copied().unwrap_or_default();
                        let ident: String = next
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect();
                        methods.insert(ident);
                    }
                }
            }
            for c in code.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
            if depth == 0 && code.contains('}') {
                break;
            }
        }
        Some(methods)
    }

    /// Trait methods that are host-side only (see the test below).
    const HOST_ONLY: &[(&str, &str)] = &[
        ("TrackingStore", "trace_store"),
        ("TrackingStore", "importer"),
        ("TrackingStore", "run_keys"),
        ("TrackingStore", "get_metric_history_downsampled"),
        ("ModelRegistryStore", "registry_importer"),
    ];

    #[test]
    fn every_trait_method_has_an_abi_path() {
        for (trait_name, declared) in declared_traits() {
            let in_trait = TRAIT_SOURCES
                .iter()
                .find_map(|s| trait_methods(s, trait_name))
                .unwrap_or_else(|| panic!("trait {trait_name} not found in the trait sources"));
            assert!(
                in_trait.len() >= 2 || trait_name == "ModelFlavor",
                "{trait_name}: parsed too few methods: {in_trait:?}"
            );
            let mut declared: BTreeSet<String> = declared.iter().map(|s| s.to_string()).collect();
            // Host-side only, by design: these do not cross the ABI, and a dynamic plugin gets
            // the trait's default (traces and import: none; the UI's reads: computed from
            // `search_runs` / `get_metric_history`, which do cross it).
            for (t, method) in HOST_ONLY {
                if *t == trait_name {
                    declared.insert(method.to_string());
                }
            }
            let missing: Vec<_> = in_trait.difference(&declared).collect();
            let extra: Vec<_> = declared.difference(&in_trait).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{trait_name}: methods without an ABI path (add them to its declaration in \
                 ffi/methods.rs): {missing:?}; declared but not in the trait: {extra:?}"
            );
        }
    }

    #[test]
    fn the_trait_parser_sees_default_methods() {
        let artifacts = trait_methods(TRAIT_SOURCES[1], "ArtifactRepository").unwrap();
        // `head` has a default body containing a `while` loop: still one method, no extras.
        assert!(artifacts.contains("head"), "{artifacts:?}");
        assert!(artifacts.contains("presigned_upload_url"), "{artifacts:?}");
        assert_eq!(artifacts.len(), 13, "{artifacts:?}");
    }
}
