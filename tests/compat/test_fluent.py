"""The fluent API (`mlflow.*`) a data scientist uses, end to end against the server."""

from __future__ import annotations

import math

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from helpers import unique


@pytest.fixture(autouse=True)
def no_active_run():
    """Each test starts and ends without an active run, whatever happens inside it."""
    while mlflow.active_run():
        mlflow.end_run()
    yield
    while mlflow.active_run():
        mlflow.end_run()


def test_set_experiment_creates_then_reuses(client):
    name = unique("fluent")
    exp = mlflow.set_experiment(name)
    assert exp.name == name
    assert exp.lifecycle_stage == "active"
    assert client.get_experiment_by_name(name).experiment_id == exp.experiment_id
    again = mlflow.set_experiment(name)
    assert again.experiment_id == exp.experiment_id
    assert mlflow.set_experiment(experiment_id=exp.experiment_id).name == name


def test_run_lifecycle_and_logging(client):
    exp = mlflow.set_experiment(unique("fluent"))
    with mlflow.start_run(run_name="train", tags={"stage": "dev"}) as run:
        run_id = run.info.run_id
        assert mlflow.active_run().info.run_id == run_id
        mlflow.log_param("lr", 0.01)
        mlflow.log_params({"epochs": 3, "optimizer": "adam", "dropout": None})
        mlflow.log_metric("loss", 0.5, step=1)
        mlflow.log_metric("loss", 0.25, step=2)
        mlflow.log_metrics({"acc": 0.9, "f1": 0.75}, step=2)
        mlflow.set_tag("owner", "ana")
        mlflow.set_tags({"k1": "v1", "k2": 2})

    got = client.get_run(run_id)
    assert got.info.experiment_id == exp.experiment_id
    assert got.info.run_name == "train"
    assert got.info.status == "FINISHED"
    assert got.info.end_time is not None and got.info.end_time >= got.info.start_time
    assert got.data.params == {"lr": "0.01", "epochs": "3", "optimizer": "adam", "dropout": "None"}
    assert got.data.metrics == {"loss": 0.25, "acc": 0.9, "f1": 0.75}
    assert [(m.value, m.step) for m in client.get_metric_history(run_id, "loss")] == [
        (0.5, 1),
        (0.25, 2),
    ]
    tags = got.data.tags
    assert {k: tags[k] for k in ("stage", "owner", "k1", "k2", "mlflow.runName")} == {
        "stage": "dev",
        "owner": "ana",
        "k1": "v1",
        "k2": "2",
        "mlflow.runName": "train",
    }
    # start_run adds the context tags every MLflow run carries.
    assert tags["mlflow.source.type"] == "LOCAL"
    assert tags["mlflow.user"]
    assert got.info.user_id == tags["mlflow.user"]


def test_end_run_statuses(client):
    mlflow.set_experiment(unique("fluent"))
    ids = {}
    for status in ("FAILED", "KILLED", "FINISHED"):
        run = mlflow.start_run()
        ids[status] = run.info.run_id
        mlflow.end_run(status=status)
    for status, run_id in ids.items():
        assert client.get_run(run_id).info.status == status

    with pytest.raises(RuntimeError, match="training crashed"):
        with mlflow.start_run() as run:
            failed_id = run.info.run_id
            raise RuntimeError("training crashed")
    assert client.get_run(failed_id).info.status == "FAILED"


def test_nested_runs(client):
    mlflow.set_experiment(unique("fluent"))
    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_run(run_name="child-1", nested=True) as child1:
            mlflow.log_metric("x", 1.0)
            with mlflow.start_run(run_name="grandchild", nested=True) as grandchild:
                mlflow.log_metric("x", 2.0)
        with mlflow.start_run(run_name="child-2", nested=True) as child2:
            mlflow.log_metric("x", 3.0)

    parent_id = parent.info.run_id
    assert client.get_run(child1.info.run_id).data.tags["mlflow.parentRunId"] == parent_id
    assert client.get_run(child2.info.run_id).data.tags["mlflow.parentRunId"] == parent_id
    assert (
        client.get_run(grandchild.info.run_id).data.tags["mlflow.parentRunId"] == child1.info.run_id
    )
    assert "mlflow.parentRunId" not in client.get_run(parent_id).data.tags
    assert client.get_parent_run(child2.info.run_id).info.run_id == parent_id
    assert client.get_parent_run(parent_id) is None
    for run in (parent, child1, child2, grandchild):
        assert client.get_run(run.info.run_id).info.status == "FINISHED"

    exp_id = parent.info.experiment_id
    children = client.search_runs(
        [exp_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'"
    )
    assert {r.info.run_name for r in children} == {"child-1", "child-2"}


def test_resume_run_by_id(client):
    mlflow.set_experiment(unique("fluent"))
    with mlflow.start_run() as run:
        mlflow.log_metric("m", 1.0, step=0)
    with mlflow.start_run(run_id=run.info.run_id):
        mlflow.log_metric("m", 2.0, step=1)
    assert client.get_run(run.info.run_id).data.metrics == {"m": 2.0}
    assert len(client.get_metric_history(run.info.run_id, "m")) == 2


def test_fluent_search_runs_dataframe():
    exp = mlflow.set_experiment(unique("fluent"))
    for i in range(3):
        with mlflow.start_run(run_name=f"r{i}"):
            mlflow.log_metric("score", float(i))
            mlflow.log_param("i", i)
    df = mlflow.search_runs(
        experiment_ids=[exp.experiment_id],
        filter_string="metrics.score >= 1",
        order_by=["metrics.score DESC"],
    )
    assert list(df["tags.mlflow.runName"]) == ["r2", "r1"]
    assert list(df["metrics.score"]) == [2.0, 1.0]
    assert list(df["params.i"]) == ["2", "1"]
    assert list(df["status"]) == ["FINISHED", "FINISHED"]
    runs = mlflow.search_runs(experiment_names=[exp.name], output_format="list")
    assert sorted(r.info.run_name for r in runs) == ["r0", "r1", "r2"]


def test_log_input_pandas_and_numpy_datasets(client):
    mlflow.set_experiment(unique("fluent"))
    df = pd.DataFrame({"a": [1, 2, 3], "b": [0.5, 1.5, math.pi], "y": [0, 1, 0]})
    train = mlflow.data.from_pandas(df, name="train-df", targets="y")
    features = mlflow.data.from_numpy(
        np.arange(12, dtype=np.float64).reshape(4, 3), name="features"
    )
    with mlflow.start_run() as run:
        mlflow.log_input(train, context="training", tags={"split": "80%"})
        mlflow.log_input(features, context="eval")
        mlflow.log_input(train, context="training")  # the same input again is not duplicated

    inputs = client.get_run(run.info.run_id).inputs.dataset_inputs
    by_name = {i.dataset.name: i for i in inputs}
    assert sorted(by_name) == ["features", "train-df"]
    assert len(inputs) == 2

    logged = by_name["train-df"]
    assert logged.dataset.digest == train.digest
    assert logged.dataset.source_type == train.source._get_source_type()
    assert logged.dataset.source == train.source.to_json()
    assert logged.dataset.schema == train._to_mlflow_entity().schema
    assert logged.dataset.profile == train._to_mlflow_entity().profile
    assert {t.key: t.value for t in logged.tags} == {
        "mlflow.data.context": "training",
        "split": "80%",
    }

    logged = by_name["features"]
    assert logged.dataset.digest == features.digest
    assert logged.dataset.schema == features._to_mlflow_entity().schema
    assert {t.key: t.value for t in logged.tags} == {"mlflow.data.context": "eval"}

    exp_id = run.info.experiment_id
    found = client.search_runs([exp_id], filter_string=f"datasets.digest = '{train.digest}'")
    assert [r.info.run_id for r in found] == [run.info.run_id]


def test_fluent_client_agree(client):
    """A run logged fluently reads back identically through MlflowClient and mlflow.get_run."""
    mlflow.set_experiment(unique("fluent"))
    with mlflow.start_run() as run:
        mlflow.log_metrics({"a": 1.0, "b": 2.0})
    fluent = mlflow.get_run(run.info.run_id)
    direct = MlflowClient().get_run(run.info.run_id)
    assert fluent.to_dictionary() == direct.to_dictionary()


def test_asynchronous_logging(client):
    """synchronous=False queues the data and sends it as log-batch requests from a background
    thread; once flushed (or the run ended) everything is on the server."""
    mlflow.set_experiment(unique("fluent"))
    with mlflow.start_run() as run:
        for step in range(50):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step, synchronous=False)
        mlflow.log_param("mode", "async", synchronous=False)
        mlflow.set_tag("queued", "yes", synchronous=False)
        mlflow.log_metrics({"a": 1.0, "b": 2.0}, step=3, synchronous=False)
        mlflow.flush_async_logging()
        got = client.get_run(run.info.run_id)
        assert got.data.params == {"mode": "async"}
        assert got.data.tags["queued"] == "yes"
        assert got.data.metrics == {"loss": 1.0 / 50, "a": 1.0, "b": 2.0}
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
    assert sorted(steps) == list(range(50))
