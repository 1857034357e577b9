"""MLflow 3 LoggedModels through MlflowClient and the fluent API (no artifact upload)."""

from __future__ import annotations

import re
import time

import mlflow
import pytest
from mlflow.entities import LoggedModelInput, LoggedModelOutput, LoggedModelStatus
from mlflow.tracking import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_IS_EXTERNAL

from helpers import raises_mlflow, unique


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(autouse=True)
def no_active_run():
    while mlflow.active_run():
        mlflow.end_run()
    yield
    while mlflow.active_run():
        mlflow.end_run()


def test_create_get_finalize(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    before = now_ms()
    model = client.create_logged_model(
        experiment_id,
        name="classifier",
        source_run_id=run_id,
        tags={"team": "vision"},
        params={"depth": "3"},
        model_type="agent",
    )
    after = now_ms()
    assert re.fullmatch(r"m-[0-9a-f]{32}", model.model_id)
    assert model.name == "classifier"
    assert model.experiment_id == experiment_id
    assert model.source_run_id == run_id
    assert model.model_type == "agent"
    assert model.status == LoggedModelStatus.PENDING
    assert model.tags == {"team": "vision"}
    assert model.params == {"depth": "3"}
    assert model.model_uri == f"models:/{model.model_id}"
    exp = client.get_experiment(experiment_id)
    assert model.artifact_location == f"{exp.artifact_location}/models/{model.model_id}/artifacts"
    assert before <= model.creation_timestamp <= after
    assert model.creation_timestamp <= model.last_updated_timestamp

    got = client.get_logged_model(model.model_id)
    assert got.to_dictionary() == model.to_dictionary()

    ready = client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    assert ready.status == LoggedModelStatus.READY
    assert client.get_logged_model(model.model_id).status == LoggedModelStatus.READY
    assert ready.last_updated_timestamp >= model.last_updated_timestamp


def test_finalize_failed(client, experiment_id):
    model = client.create_logged_model(experiment_id)
    assert model.name  # a generated name
    assert client.finalize_logged_model(model.model_id, "FAILED").status == LoggedModelStatus.FAILED


def test_tags_and_params(client, experiment_id):
    model = client.create_logged_model(experiment_id, name="tagged", tags={"a": "1"})
    client.set_logged_model_tags(model.model_id, {"b": "2", "a": "overwritten", "n": 3})
    assert client.get_logged_model(model.model_id).tags == {"a": "overwritten", "b": "2", "n": "3"}
    client.delete_logged_model_tag(model.model_id, "a")
    assert client.get_logged_model(model.model_id).tags == {"b": "2", "n": "3"}

    client.log_model_params(model.model_id, {"lr": "0.1", "layers": "4"})
    assert client.get_logged_model(model.model_id).params == {"lr": "0.1", "layers": "4"}


def test_delete_logged_model(client, experiment_id):
    keep = client.create_logged_model(experiment_id, name="keep")
    gone = client.create_logged_model(experiment_id, name="gone")
    client.delete_logged_model(gone.model_id)
    with raises_mlflow(
        "RESOURCE_DOES_NOT_EXIST", f"Logged model with ID '{gone.model_id}' not found"
    ):
        client.get_logged_model(gone.model_id)
    assert [m.model_id for m in client.search_logged_models([experiment_id])] == [keep.model_id]


def test_missing_model_and_bad_names(client, experiment_id):
    missing = "m-" + "0" * 32
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST", f"Logged model with ID '{missing}' not found"):
        client.get_logged_model(missing)
    for bad in ("a/b", "a:b", "a.b", "50%", "it's"):
        with raises_mlflow("INVALID_PARAMETER_VALUE", "Invalid model name"):
            client.create_logged_model(experiment_id, name=bad)
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.create_logged_model("987654324", name="orphan")


def test_link_models_to_runs(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    produced = client.create_logged_model(experiment_id, name="produced", source_run_id=run_id)
    consumed = client.create_logged_model(experiment_id, name="consumed")
    client.log_outputs(run_id, [LoggedModelOutput(produced.model_id, step=3)])
    client.log_inputs(run_id, models=[LoggedModelInput(consumed.model_id)])

    run = client.get_run(run_id)
    assert run.outputs.model_outputs == [LoggedModelOutput(produced.model_id, 3)]
    assert [m.model_id for m in run.inputs.model_inputs] == [consumed.model_id]


def test_metrics_linked_to_a_model(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    model = client.create_logged_model(experiment_id, name="scored", source_run_id=run_id)
    client.log_metric(
        run_id,
        "acc",
        0.9,
        timestamp=100,
        step=1,
        model_id=model.model_id,
        dataset_name="eval-set",
        dataset_digest="d1",
    )
    client.log_metric(run_id, "loss", 0.1, timestamp=100, step=1, model_id=model.model_id)
    metrics = {m.key: m for m in client.get_logged_model(model.model_id).metrics}
    assert sorted(metrics) == ["acc", "loss"]
    acc = metrics["acc"]
    assert (acc.value, acc.timestamp, acc.step, acc.run_id, acc.model_id) == (
        0.9,
        100,
        1,
        run_id,
        model.model_id,
    )
    assert (acc.dataset_name, acc.dataset_digest) == ("eval-set", "d1")
    # The metric is also an ordinary metric of the run.
    assert client.get_run(run_id).data.metrics == {"acc": 0.9, "loss": 0.1}


class Models:
    """Three models in one experiment, created in this order:
    a (ready, acc 0.7), b (pending, acc 0.9), c (ready, no acc, no source run)."""

    def __init__(self, client):
        self.client = client
        self.experiment_id = client.create_experiment(unique("models"))
        run_id = client.create_run(self.experiment_id).info.run_id
        self.run_id = run_id
        self.ids = {}
        for name, model_type, acc, ready in (
            ("a", "clf", 0.7, True),
            ("b", "clf", 0.9, False),
            ("c", "agent", None, True),
        ):
            model = client.create_logged_model(
                self.experiment_id,
                name=f"model-{name}",
                source_run_id=run_id if name != "c" else None,
                tags={"letter": name},
                params={"p": name.upper()},
                model_type=model_type,
            )
            if acc is not None:
                client.log_metric(
                    run_id,
                    "acc",
                    acc,
                    timestamp=1,
                    model_id=model.model_id,
                    dataset_name="ds",
                    dataset_digest="x1",
                )
            if ready:
                client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
            self.ids[name] = model.model_id
            time.sleep(0.002)  # distinct creation timestamps for the default order
        self.names = {v: k for k, v in self.ids.items()}

    def search(self, filter_string=None, order_by=None, datasets=None) -> list[str]:
        models = self.client.search_logged_models(
            [self.experiment_id], filter_string=filter_string, order_by=order_by, datasets=datasets
        )
        return [self.names[m.model_id] for m in models]


@pytest.fixture(scope="module")
def models(server):
    return Models(MlflowClient(tracking_uri=server.url))


@pytest.mark.parametrize(
    "filter_string, expected",
    [
        ("name = 'model-a'", {"a"}),
        ("name != 'model-a'", {"b", "c"}),
        ("name LIKE 'model-%'", {"a", "b", "c"}),
        ("name ILIKE 'MODEL-B'", {"b"}),
        ("model_type = 'agent'", {"c"}),
        ("tags.letter = 'b'", {"b"}),
        ("params.p = 'C'", {"c"}),
        ("metrics.acc > 0.8", {"b"}),
        ("metrics.acc >= 0.7", {"a", "b"}),
        ("metrics.acc < 0.8 AND model_type = 'clf'", {"a"}),
        ("creation_timestamp > 0", {"a", "b", "c"}),
    ],
)
def test_search_logged_models_filters(models, filter_string, expected):
    assert set(models.search(filter_string)) == expected


@pytest.mark.cairn_only
@pytest.mark.parametrize(
    "filter_string, expected",
    [
        ("status = 'LOGGED_MODEL_READY'", {"a", "c"}),
        ("status = 'LOGGED_MODEL_PENDING'", {"b"}),
        ("status != 'LOGGED_MODEL_READY' AND name LIKE 'model-%'", {"b"}),
    ],
)
def test_search_logged_models_by_status_name(models, filter_string, expected):
    """MLflow's SQL store keeps the status as its enum number, so a status *name* never matches
    there (only `status = '2'` does). Cairn compares the proto name, as api.md §1.4 spells it."""
    assert set(models.search(filter_string)) == expected


@pytest.mark.cairn_only
def test_search_logged_models_dataset_name_alone(models):
    """`datasets` entries need only `dataset_name` (the client documents `dataset_digest` as
    optional); MLflow's REST handler turns the missing digest into "" and matches nothing."""
    assert models.search(datasets=[{"dataset_name": "ds"}], filter_string="metrics.acc > 0.1") == [
        "b",
        "a",
    ]
    assert (
        models.search(datasets=[{"dataset_name": "other"}], filter_string="metrics.acc > 0.1") == []
    )


def test_search_logged_models_by_source_run(models):
    assert set(models.search(f"source_run_id = '{models.run_id}'")) == {"a", "b"}


def test_search_logged_models_order_and_pages(models):
    assert models.search() == ["c", "b", "a"]  # creation_timestamp DESC
    assert models.search(order_by=[{"field_name": "name", "ascending": True}]) == ["a", "b", "c"]
    assert models.search(order_by=[{"field_name": "name", "ascending": False}]) == ["c", "b", "a"]
    by_acc = models.search(order_by=[{"field_name": "metrics.acc", "ascending": False}])
    assert by_acc == ["b", "a", "c"]  # c has no acc: last
    by_acc = models.search(order_by=[{"field_name": "metrics.acc", "ascending": True}])
    assert by_acc == ["a", "b", "c"]
    in_ds = [{"dataset_name": "ds", "dataset_digest": "x1"}]
    assert models.search(datasets=in_ds, filter_string="metrics.acc > 0.1") == ["b", "a"]
    other = [{"dataset_name": "other", "dataset_digest": "x1"}]
    assert models.search(datasets=other, filter_string="metrics.acc > 0.1") == []

    pages, token = [], None
    while True:
        page = models.client.search_logged_models(
            [models.experiment_id],
            max_results=2,
            page_token=token,
            order_by=[{"field_name": "name", "ascending": True}],
        )
        pages.append([models.names[m.model_id] for m in page])
        token = page.token
        if not token:
            break
        assert len(pages) < 10
    assert pages == [["a", "b"], ["c"]]


def test_fluent_logged_models(client):
    mlflow.set_experiment(unique("fluent-models"))
    with mlflow.start_run() as run:
        model = mlflow.initialize_logged_model(
            name="fluent-model", params={"k": "v"}, tags={"t": "1"}, model_type="m"
        )
        assert model.status == LoggedModelStatus.PENDING
        assert model.source_run_id == run.info.run_id
        assert model.experiment_id == run.info.experiment_id
        assert mlflow.last_logged_model().model_id == model.model_id
        mlflow.log_model_params({"extra": "1"}, model_id=model.model_id)
        mlflow.set_logged_model_tags(model.model_id, {"t2": "2"})
        mlflow.delete_logged_model_tag(model.model_id, "t")
        finalized = mlflow.finalize_logged_model(model.model_id, "READY")
        assert finalized.status == LoggedModelStatus.READY

    got = mlflow.get_logged_model(model.model_id)
    assert got.params == {"k": "v", "extra": "1"}
    assert got.tags.get("t2") == "2" and "t" not in got.tags
    assert got.tags["mlflow.user"]  # fluent creation adds the run-context tags
    found = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string="name = 'fluent-model'",
        output_format="list",
    )
    assert [m.model_id for m in found] == [model.model_id]
    df = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert list(df["model_id"]) == [model.model_id]


def test_create_external_model(client, server):
    """External models write one MLmodel file; the root here is a local directory, so the client
    writes it itself and no artifact upload through the server is involved."""
    exp = mlflow.set_experiment(unique("external"))
    model = mlflow.create_external_model(name="ext", params={"a": "1"}, model_type="agent")
    assert model.status == LoggedModelStatus.READY
    got = client.get_logged_model(model.model_id)
    assert got.status == LoggedModelStatus.READY
    assert got.experiment_id == exp.experiment_id
    assert got.tags[MLFLOW_MODEL_IS_EXTERNAL] == "true"
    assert got.params == {"a": "1"}
