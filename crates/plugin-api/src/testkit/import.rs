//! The import contract ([`crate::import`]) against a store that offers it: one function that
//! every store calling itself an import destination runs from a test of its own.

use crate::entities::*;
use crate::import::{Chunks, ImportModelVersion, ImportRun, Imported};
use crate::model_registry::{ModelVersion, ModelVersionStatus, RegisteredModel, Stage};
use crate::{Error, ErrorKind, ModelRegistryStore, TrackingStore};

fn chunks(items: Vec<crate::Result<Vec<Metric>>>) -> Chunks<Metric> {
    struct Iter(std::vec::IntoIter<crate::Result<Vec<Metric>>>);
    impl futures_core::Stream for Iter {
        type Item = crate::Result<Vec<Metric>>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(self.0.next())
        }
    }
    Box::pin(Iter(items.into_iter()))
}

fn run(id: &str, experiment_id: &str) -> ImportRun {
    let mut run = ImportRun::new(RunInfo {
        run_id: id.to_string(),
        run_name: "imported".into(),
        experiment_id: experiment_id.into(),
        user_id: "someone".into(),
        status: RunStatus::Finished,
        start_time: 1_000,
        end_time: Some(2_000),
        artifact_uri: format!("s3://bucket/{experiment_id}/{id}/artifacts"),
        lifecycle_stage: LifecycleStage::Active,
    });
    run.params = vec![Param::new("p", "1")];
    run.tags = vec![RunTag::new("mlflow.runName", "imported")];
    run
}

fn history(key: &str, from: i64, n: i64) -> Vec<Metric> {
    (from..from + n)
        .map(|i| Metric::new(key, i as f64, 10 + i, i))
        .collect()
}

/// Checks the import contract: experiments and runs keep their ids and times, a run's history
/// arrives in chunks inside one transaction (a failing chunk leaves no trace of the run), a
/// present id is [`Imported::Present`], a clashing identity `AlreadyExists`, allocation
/// continues after imported ids; registered models keep their version numbers.
pub async fn contract(store: &dyn TrackingStore, registry: &dyn ModelRegistryStore) {
    let import = store.importer().expect("the store offers import");
    let exp = Experiment {
        experiment_id: "41".into(),
        name: "imported-exp".into(),
        artifact_location: "s3://bucket/41".into(),
        lifecycle_stage: LifecycleStage::Active,
        last_update_time: Some(200),
        creation_time: Some(100),
        tags: vec![ExperimentTag::new("team", "a")],
    };
    assert_eq!(
        import.import_experiment(exp.clone()).await.unwrap(),
        Imported::Written
    );
    assert_eq!(store.get_experiment("41").await.unwrap(), exp);
    assert_eq!(
        import.import_experiment(exp.clone()).await.unwrap(),
        Imported::Present
    );
    let mut clash = exp.clone();
    clash.name = "another-name".into();
    let e = import.import_experiment(clash).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");
    let mut clash = exp.clone();
    clash.experiment_id = "42".into();
    let e = import.import_experiment(clash).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::AlreadyExists, "{e}");

    // A run whose history fails half-way leaves nothing.
    let id = "0123456789abcdef0123456789abcdef";
    let failing = chunks(vec![
        Ok(history("loss", 0, 3)),
        Err(Error::internal("the source went away")),
    ]);
    assert!(import.import_run(run(id, "41"), failing).await.is_err());
    assert_eq!(
        store.get_run(id).await.unwrap_err().kind,
        ErrorKind::NotFound
    );
    // Whole: several chunks, the latest value follows the history.
    let whole = chunks(vec![
        Ok(history("loss", 0, 3)),
        Ok(history("loss", 3, 3)),
        Ok(vec![Metric::new("nan", f64::NAN, 5, 0)]),
    ]);
    assert_eq!(
        import.import_run(run(id, "41"), whole).await.unwrap(),
        Imported::Written
    );
    let got = store.get_run(id).await.unwrap();
    assert_eq!(got.info, run(id, "41").info);
    assert_eq!(got.param("p"), Some("1"));
    assert_eq!(
        got.metric("loss").map(|m| (m.value, m.step)),
        Some((5.0, 5))
    );
    assert!(got.metric("nan").is_some_and(|m| m.value.is_nan()));
    let page = store
        .get_metric_history(id, "loss", 100, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 6);
    assert_eq!(
        import
            .import_run(run(id, "41"), chunks(vec![Ok(history("loss", 9, 1))]))
            .await
            .unwrap(),
        Imported::Present
    );
    assert_eq!(
        store
            .get_metric_history(id, "loss", 100, None)
            .await
            .unwrap()
            .items
            .len(),
        6,
        "a present run's history is not read"
    );
    // A run of an experiment that is not there.
    let e = import
        .import_run(
            run("fedcba9876543210fedcba9876543210", "77"),
            chunks(vec![]),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    // New experiments get ids above the imported ones.
    let next = store
        .create_experiment(crate::tracking::CreateExperiment {
            name: "after".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(next.parse::<i64>().unwrap() > 41, "{next}");

    // The registry keeps version numbers; new ones continue after max_version.
    let reg = registry
        .registry_importer()
        .expect("the registry offers import");
    let model = RegisteredModel {
        name: "imported-model".into(),
        creation_timestamp: 300,
        last_updated_timestamp: Some(400),
        user_id: None,
        description: Some("d".into()),
        latest_versions: Vec::new(),
        tags: Vec::new(),
        aliases: vec![crate::model_registry::RegisteredModelAlias {
            alias: "best".into(),
            version: "2".into(),
        }],
    };
    assert_eq!(
        reg.import_registered_model(model.clone(), 3).await.unwrap(),
        Imported::Written
    );
    let version = ModelVersion {
        name: "imported-model".into(),
        version: "2".into(),
        creation_timestamp: 310,
        last_updated_timestamp: 320,
        user_id: None,
        current_stage: Stage::Production,
        description: None,
        source: format!("runs:/{id}/model"),
        run_id: Some(id.into()),
        status: ModelVersionStatus::Ready,
        status_message: None,
        tags: Vec::new(),
        run_link: None,
        aliases: Vec::new(),
        model_id: None,
        model_params: Vec::new(),
        model_metrics: Vec::new(),
    };
    assert_eq!(
        reg.import_model_version(ImportModelVersion::new(version.clone()))
            .await
            .unwrap(),
        Imported::Written
    );
    assert_eq!(
        reg.import_model_version(ImportModelVersion::new(version))
            .await
            .unwrap(),
        Imported::Present
    );
    let got = registry
        .get_model_version_by_alias("imported-model", "best")
        .await
        .unwrap();
    assert_eq!(
        (
            got.version.as_str(),
            got.current_stage,
            got.creation_timestamp
        ),
        ("2", Stage::Production, 310)
    );
    let next = registry
        .create_model_version(crate::model_registry::CreateModelVersion {
            name: "imported-model".into(),
            source: format!("runs:/{id}/model"),
            run_id: Some(id.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(next.version, "4");
}
