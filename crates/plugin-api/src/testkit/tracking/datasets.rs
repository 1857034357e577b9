//! Dataset and model inputs of runs, and `search_datasets`.

use crate::entities::*;
use crate::testkit::support::*;
use crate::tracking::*;

const CONTEXT: &str = "mlflow.data.context";

fn dataset(name: &str, digest: &str) -> Dataset {
    Dataset {
        name: name.into(),
        digest: digest.into(),
        source_type: "local".into(),
        source: "{\"uri\": \"file:///data/train.csv\"}".into(),
        schema: Some("{\"mlflow_colspec\": [{\"type\": \"double\", \"name\": \"x\"}]}".into()),
        profile: Some("{\"num_rows\": 10}".into()),
    }
}

fn input(dataset: Dataset, context: Option<&str>) -> DatasetInput {
    DatasetInput {
        tags: context
            .map(|c| vec![InputTag::new(CONTEXT, c)])
            .unwrap_or_default(),
        dataset,
    }
}

/// `(experiment, name, digest, context)` of each summary, sorted, for set comparison.
fn summary_set(summaries: Vec<DatasetSummary>) -> Vec<(String, String, String, Option<String>)> {
    sorted(
        summaries
            .into_iter()
            .map(|s| (s.experiment_id, s.name, s.digest, s.context))
            .collect(),
    )
}

/// Logging one dataset twice on a run, and again on another run of the experiment, stores it
/// once: each run lists it once with its tags and every field, and `search_datasets` once.
pub async fn log_inputs_dataset_is_stored_and_listed_once(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::Datasets,
        "log_inputs_dataset_is_stored_and_listed_once",
    ) {
        return;
    }
    let exp = new_experiment(store, "conf-ds-once").await;
    let r1 = new_run(store, &exp).await.info.run_id;
    let r2 = new_run(store, &exp).await.info.run_id;
    let name = unique_name("ds");
    let d = input(dataset(&name, "dg1"), Some("training"));
    for _ in 0..2 {
        ok(
            store.log_inputs(&r1, vec![d.clone()], vec![]).await,
            "log_inputs",
        );
    }
    ok(
        store.log_inputs(&r2, vec![d.clone()], vec![]).await,
        "log_inputs on another run",
    );
    for id in [&r1, &r2] {
        let run = get_run(store, id).await;
        assert_eq!(
            run.inputs.dataset_inputs,
            vec![d.clone()],
            "dataset inputs of run {id}: the dataset once, with its tags and fields"
        );
    }
    let summaries = ok(
        store.search_datasets(std::slice::from_ref(&exp)).await,
        "search_datasets",
    );
    assert_eq!(
        summary_set(summaries),
        vec![(exp.clone(), name, "dg1".into(), Some("training".into()))],
        "search_datasets lists the dataset once"
    );
}

/// The same name with another digest is another dataset; input tags other than the context
/// are kept too.
pub async fn log_inputs_different_digest_is_another_dataset(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::Datasets,
        "log_inputs_different_digest_is_another_dataset",
    ) {
        return;
    }
    let exp = new_experiment(store, "conf-ds-digest").await;
    let run = new_run(store, &exp).await.info.run_id;
    let name = unique_name("ds");
    let first = DatasetInput {
        tags: vec![
            InputTag::new(CONTEXT, "training"),
            InputTag::new("split", "80/20"),
        ],
        dataset: dataset(&name, "digest-one"),
    };
    let second = input(dataset(&name, "digest-two"), Some("eval"));
    ok(
        store.log_inputs(&run, vec![first.clone()], vec![]).await,
        "log_inputs",
    );
    ok(
        store.log_inputs(&run, vec![second.clone()], vec![]).await,
        "log_inputs",
    );
    let got = get_run(store, &run).await.inputs.dataset_inputs;
    assert_eq!(got.len(), 2, "two digests are two dataset inputs: {got:?}");
    let find = |digest: &str| {
        got.iter()
            .find(|i| i.dataset.digest == digest)
            .unwrap_or_else(|| panic!("no dataset input with digest {digest}: {got:?}"))
            .clone()
    };
    let mut a = find("digest-one");
    a.tags.sort_by(|x, y| x.key.cmp(&y.key));
    assert_eq!(a, first, "first dataset input with both input tags");
    assert_eq!(find("digest-two"), second, "second dataset input");
    let summaries = ok(
        store.search_datasets(std::slice::from_ref(&exp)).await,
        "search_datasets",
    );
    assert_eq!(
        summary_set(summaries),
        vec![
            (
                exp.clone(),
                name.clone(),
                "digest-one".into(),
                Some("training".into())
            ),
            (exp.clone(), name, "digest-two".into(), Some("eval".into())),
        ],
        "search_datasets lists both digests"
    );
}

/// `search_datasets` returns one summary per `(experiment, name, digest, context)` used by
/// runs of the given experiments; an input without a context tag has no context.
pub async fn search_datasets_returns_summaries_with_context(store: &dyn TrackingStore) {
    if !supports(
        store,
        Capability::Datasets,
        "search_datasets_returns_summaries_with_context",
    ) {
        return;
    }
    let exp = new_experiment(store, "conf-ds-search").await;
    let other = new_experiment(store, "conf-ds-search-other").await;
    let d1 = unique_name("ds");
    let d2 = unique_name("ds");
    let d3 = unique_name("ds");
    let logs = [
        (&exp, input(dataset(&d1, "a1"), Some("training"))),
        (&exp, input(dataset(&d1, "a1"), Some("eval"))),
        (&exp, input(dataset(&d2, "b2"), None)),
        (&other, input(dataset(&d3, "c3"), Some("test"))),
    ];
    for (e, i) in logs {
        let run = new_run(store, e).await.info.run_id;
        ok(store.log_inputs(&run, vec![i], vec![]).await, "log_inputs");
    }
    let want_exp = vec![
        (
            exp.clone(),
            d1.clone(),
            "a1".to_string(),
            Some("eval".to_string()),
        ),
        (
            exp.clone(),
            d1.clone(),
            "a1".into(),
            Some("training".into()),
        ),
        (exp.clone(), d2.clone(), "b2".into(), None),
    ];
    let got = ok(
        store.search_datasets(std::slice::from_ref(&exp)).await,
        "search_datasets",
    );
    assert_eq!(
        summary_set(got),
        sorted(want_exp.clone()),
        "summaries of one experiment"
    );

    let got = ok(
        store.search_datasets(&[exp.clone(), other.clone()]).await,
        "search_datasets of two experiments",
    );
    let mut want_both = want_exp;
    want_both.push((other.clone(), d3, "c3".into(), Some("test".into())));
    assert_eq!(
        summary_set(got),
        sorted(want_both),
        "summaries of two experiments"
    );

    let empty = new_experiment(store, "conf-ds-none").await;
    let got = ok(
        store.search_datasets(std::slice::from_ref(&empty)).await,
        "search_datasets",
    );
    assert!(
        got.is_empty(),
        "an experiment without datasets has summaries {got:?}"
    );
}

/// `log_inputs` with model inputs lists them in `run.inputs.model_inputs`. Needs the
/// `logged_models` capability.
pub async fn log_inputs_model_inputs(store: &dyn TrackingStore) {
    if !supports(store, Capability::LoggedModels, "log_inputs_model_inputs") {
        return;
    }
    let exp = new_experiment(store, "conf-model-in").await;
    let model = ok(
        store
            .create_logged_model(CreateLoggedModel {
                experiment_id: exp.clone(),
                name: Some(unique_name("model")),
                ..Default::default()
            })
            .await,
        "create_logged_model",
    );
    let run = new_run(store, &exp).await.info.run_id;
    let mi = ModelInput {
        model_id: model.info.model_id.clone(),
    };
    ok(
        store.log_inputs(&run, vec![], vec![mi.clone()]).await,
        "log_inputs with a model input",
    );
    let got = get_run(store, &run).await;
    assert_eq!(got.inputs.model_inputs, vec![mi], "model inputs of the run");
}
