"""Runs, params, tags, metrics, metric history and log_batch through MlflowClient."""

from __future__ import annotations

import math
import re
import time

from mlflow.entities import Metric, Param, RunTag, ViewType

from helpers import raises_mlflow

MISSING_RUN = "0123456789abcdef0123456789abcdef"


def now_ms() -> int:
    return int(time.time() * 1000)


def history(client, run_id: str, key: str) -> list[tuple]:
    return [(m.key, m.value, m.timestamp, m.step) for m in client.get_metric_history(run_id, key)]


# ---- runs ------------------------------------------------------------------------------------


def test_create_and_get_run(client, experiment_id):
    run = client.create_run(
        experiment_id, start_time=1_700_000_000_123, run_name="first", tags={"team": "nlp"}
    )
    info = run.info
    assert re.fullmatch(r"[0-9a-f]{32}", info.run_id)
    assert info.experiment_id == experiment_id
    assert info.run_name == "first"
    assert info.status == "RUNNING"
    assert info.start_time == 1_700_000_000_123
    assert info.end_time is None
    assert info.lifecycle_stage == "active"
    assert info.user_id == "unknown"  # MlflowClient sends the mlflow.user tag's value, or "unknown"
    exp = client.get_experiment(experiment_id)
    assert info.artifact_uri == f"{exp.artifact_location}/{info.run_id}/artifacts"
    assert run.data.tags == {"team": "nlp", "mlflow.runName": "first"}
    assert run.data.metrics == {} and run.data.params == {}

    got = client.get_run(info.run_id)
    assert got.info.to_proto() == info.to_proto()
    assert got.data.tags == run.data.tags
    assert got.inputs.dataset_inputs == [] and got.outputs.model_outputs == []


def test_run_name_is_generated_when_absent(client, experiment_id):
    run = client.create_run(experiment_id)
    name = run.info.run_name
    assert name and len(name) <= 20  # "adjective-noun-123"
    assert run.data.tags["mlflow.runName"] == name
    assert client.get_run(run.info.run_id).info.run_name == name


def test_run_name_from_tag(client, experiment_id):
    run = client.create_run(
        experiment_id, tags={"mlflow.runName": "from-tag", "mlflow.user": "ana"}
    )
    assert run.info.run_name == "from-tag"
    assert run.info.user_id == "ana"


def test_missing_run_is_resource_does_not_exist(client):
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST", f"Run with id={MISSING_RUN} not found"):
        client.get_run(MISSING_RUN)
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.log_param(MISSING_RUN, "p", "v")
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.log_metric(MISSING_RUN, "m", 1.0)
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.set_tag(MISSING_RUN, "t", "v")
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.delete_run(MISSING_RUN)


def test_create_run_in_missing_experiment(client):
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.create_run("987654323")


def test_update_run_status_and_name(client, experiment_id):
    run_id = client.create_run(experiment_id, run_name="before").info.run_id
    client.update_run(run_id, name="after")
    run = client.get_run(run_id)
    assert run.info.run_name == "after"
    assert run.data.tags["mlflow.runName"] == "after"
    assert run.info.status == "RUNNING"

    client.update_run(run_id, status="SCHEDULED")
    assert client.get_run(run_id).info.status == "SCHEDULED"
    assert client.get_run(run_id).info.run_name == "after"


def test_set_terminated(client, experiment_id):
    run_id = client.create_run(experiment_id, start_time=1000).info.run_id
    client.set_terminated(run_id, status="FAILED", end_time=123_456)
    info = client.get_run(run_id).info
    assert (info.status, info.end_time) == ("FAILED", 123_456)

    run_id = client.create_run(experiment_id).info.run_id
    before = now_ms()
    client.set_terminated(run_id)  # defaults: FINISHED, now
    info = client.get_run(run_id).info
    assert info.status == "FINISHED"
    assert before <= info.end_time <= now_ms()

    for status in ("KILLED", "FINISHED"):
        client.set_terminated(run_id, status=status, end_time=5)
        assert client.get_run(run_id).info.status == status


def test_delete_and_restore_run(client, experiment_id):
    keep = client.create_run(experiment_id).info.run_id
    gone = client.create_run(experiment_id).info.run_id
    client.delete_run(gone)

    assert client.get_run(gone).info.lifecycle_stage == "deleted"
    assert [r.info.run_id for r in client.search_runs([experiment_id])] == [keep]
    deleted = client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [gone]
    both = client.search_runs([experiment_id], run_view_type=ViewType.ALL)
    assert sorted(r.info.run_id for r in both) == sorted([keep, gone])

    with raises_mlflow("INVALID_PARAMETER_VALUE", "must be in the 'active' state"):
        client.log_param(gone, "p", "v")
    with raises_mlflow("INVALID_PARAMETER_VALUE", "must be in the 'active' state"):
        client.log_metric(gone, "m", 1.0)

    client.restore_run(gone)
    assert client.get_run(gone).info.lifecycle_stage == "active"
    client.log_param(gone, "p", "v")
    assert client.get_run(gone).data.params == {"p": "v"}


def test_run_tags(client, experiment_id):
    run_id = client.create_run(experiment_id, run_name="n").info.run_id
    client.set_tag(run_id, "a", "1")
    client.set_tag(run_id, "b", 2)  # the client stringifies
    client.set_tag(run_id, "a", "overwritten")
    client.set_tag(run_id, "mlflow.runName", "renamed-by-tag")
    client.set_tag(run_id, "empty", "")
    tags = client.get_run(run_id).data.tags
    assert {k: tags[k] for k in ("a", "b", "empty", "mlflow.runName")} == {
        "a": "overwritten",
        "b": "2",
        "empty": "",
        "mlflow.runName": "renamed-by-tag",
    }
    assert client.get_run(run_id).info.run_name == "renamed-by-tag"

    client.delete_tag(run_id, "a")
    assert "a" not in client.get_run(run_id).data.tags
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST", "No tag with name: a"):
        client.delete_tag(run_id, "a")


def test_tag_value_limits(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.set_tag(run_id, "max", "t" * 8000)
    client.set_tag(run_id, "over", "t" * 8001)  # truncated to 8000 (MLFLOW_TRUNCATE_LONG_VALUES)
    tags = client.get_run(run_id).data.tags
    assert tags["max"] == "t" * 8000
    assert tags["over"] == "t" * 8000
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.set_tag(run_id, "k" * 251, "v")
    client.set_tag(run_id, "k" * 250, "v")


# ---- params ----------------------------------------------------------------------------------


def test_params(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "lr", 0.01)
    client.log_param(run_id, "layers", 3)
    client.log_param(run_id, "name", "resnet")
    client.log_param(run_id, "path/with spaces:and.dots-ok", "x")
    client.log_param(run_id, "lr", 0.01)  # the same value again is fine
    assert client.get_run(run_id).data.params == {
        "lr": "0.01",
        "layers": "3",
        "name": "resnet",
        "path/with spaces:and.dots-ok": "x",
    }


def test_conflicting_param_is_invalid_parameter_value(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "lr", "0.1")
    with raises_mlflow("INVALID_PARAMETER_VALUE", "Changing param values is not allowed"):
        client.log_param(run_id, "lr", "0.2")
    assert client.get_run(run_id).data.params == {"lr": "0.1"}


def test_param_value_limits(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "max", "p" * 6000)
    client.log_param(run_id, "over", "p" * 6001)  # truncated to 6000 (MLFLOW_TRUNCATE_LONG_VALUES)
    params = client.get_run(run_id).data.params
    assert params["max"] == "p" * 6000
    assert params["over"] == "p" * 6000


def test_invalid_param_keys(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    for key in ("bad!key", "a//b", "/abs", "a/../b", "k" * 251):
        with raises_mlflow("INVALID_PARAMETER_VALUE"):
            client.log_param(run_id, key, "v")
    assert client.get_run(run_id).data.params == {}


# ---- metrics ---------------------------------------------------------------------------------


def test_metrics_and_history(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "loss", 0.9, timestamp=1000, step=0)
    client.log_metric(run_id, "loss", 0.5, timestamp=2000, step=1)
    client.log_metric(run_id, "loss", 0.7, timestamp=1500, step=1)
    client.log_metric(run_id, "acc", 3, timestamp=10, step=2**40)  # int value, int64 step
    client.log_metric(run_id, "neg", -1.25e-7, timestamp=0)

    assert client.get_run(run_id).data.metrics == {"loss": 0.5, "acc": 3.0, "neg": -1.25e-7}
    # History is ordered by (timestamp, step, value).
    assert history(client, run_id, "loss") == [
        ("loss", 0.9, 1000, 0),
        ("loss", 0.7, 1500, 1),
        ("loss", 0.5, 2000, 1),
    ]
    assert history(client, run_id, "acc") == [("acc", 3.0, 10, 2**40)]
    assert history(client, run_id, "never-logged") == []


def test_latest_metric_is_max_step_then_timestamp(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "m", 1.0, timestamp=1000, step=5)
    client.log_metric(run_id, "m", 2.0, timestamp=9000, step=3)  # later, but a smaller step
    assert client.get_run(run_id).data.metrics["m"] == 1.0
    client.log_metric(run_id, "m", 3.0, timestamp=500, step=5)  # same step, earlier
    assert client.get_run(run_id).data.metrics["m"] == 1.0
    client.log_metric(run_id, "m", 4.0, timestamp=1001, step=5)
    assert client.get_run(run_id).data.metrics["m"] == 4.0


def test_nan_and_infinite_metrics(client, experiment_id, server):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "nan", float("nan"), timestamp=1)
    client.log_metric(run_id, "pinf", float("inf"), timestamp=1)
    client.log_metric(run_id, "ninf", float("-inf"), timestamp=1)
    metrics = client.get_run(run_id).data.metrics
    assert math.isnan(metrics["nan"])
    assert math.isnan(client.get_metric_history(run_id, "nan")[0].value)
    # MLflow's SQL store clamps ±Inf to ±max double; Cairn keeps them (a documented choice of
    # its SQLite store). Either way the client gets a float of the right sign.
    big = 1.7976931348623157e308
    expected = (big, -big) if server.reference else (math.inf, -math.inf)
    assert (metrics["pinf"], metrics["ninf"]) == expected


def test_invalid_metrics_are_invalid_parameter_value(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    with raises_mlflow("INVALID_PARAMETER_VALUE", "Names may only contain"):
        client.log_metric(run_id, "bad!key", 1.0)
    for key in ("a//b", "./a", "k" * 251):
        with raises_mlflow("INVALID_PARAMETER_VALUE"):
            client.log_metric(run_id, key, 1.0)
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.log_metric(run_id, "m", 1.0, timestamp=-1)
    assert client.get_run(run_id).data.metrics == {}


# ---- log_batch -------------------------------------------------------------------------------


def test_log_batch(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_batch(
        run_id,
        metrics=[Metric("m1", 0.5, 100, 0), Metric("m1", 0.6, 200, 1), Metric("m2", -3.0, 100, 7)],
        params=[Param("p1", "a"), Param("p2", "b")],
        tags=[RunTag("t1", "x"), RunTag("t2", "")],
    )
    run = client.get_run(run_id)
    assert run.data.metrics == {"m1": 0.6, "m2": -3.0}
    assert run.data.params == {"p1": "a", "p2": "b"}
    assert {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")} == {
        "t1": "x",
        "t2": "",
    }
    assert history(client, run_id, "m1") == [("m1", 0.5, 100, 0), ("m1", 0.6, 200, 1)]


def _rest_store(client):
    """The client's REST store: one call is exactly one log-batch request.

    MlflowClient.log_batch splits a large batch into requests within the limits, so the limits
    themselves are exercised through the store the client uses underneath.
    """
    return client._tracking_client.store


def _batch(n_metrics=0, n_params=0, n_tags=0, prefix=""):
    metrics = [Metric(f"{prefix}m{i}", float(i), 1000 + i, i) for i in range(n_metrics)]
    params = [Param(f"{prefix}p{i}", str(i)) for i in range(n_params)]
    tags = [RunTag(f"{prefix}t{i}", str(i)) for i in range(n_tags)]
    return metrics, params, tags


def _user_data(client, run_id):
    data = client.get_run(run_id).data
    tags = {k: v for k, v in data.tags.items() if not k.startswith("mlflow.")}
    return data.metrics, data.params, tags


def test_log_batch_at_the_limits(client, experiment_id):
    store = _rest_store(client)
    run_id = client.create_run(experiment_id).info.run_id
    metrics, _, _ = _batch(n_metrics=1000)
    store.log_batch(run_id, metrics=metrics, params=[], tags=[])
    assert client.get_run(run_id).data.metrics == {f"m{i}": float(i) for i in range(1000)}

    run_id = client.create_run(experiment_id).info.run_id
    metrics, params, tags = _batch(n_metrics=800, n_params=100, n_tags=100)  # 1000 entities
    store.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    got_metrics, got_params, got_tags = _user_data(client, run_id)
    assert got_metrics == {f"m{i}": float(i) for i in range(800)}
    assert got_params == {f"p{i}": str(i) for i in range(100)}
    assert got_tags == {f"t{i}": str(i) for i in range(100)}


def test_log_batch_over_each_limit_writes_nothing(client, experiment_id):
    store = _rest_store(client)
    run_id = client.create_run(experiment_id).info.run_id
    cases = [
        ((1001, 0, 0), "at most 1000 metrics. Got 1001 metrics."),
        ((0, 101, 0), "at most 100 params. Got 101 params."),
        ((0, 0, 101), "at most 100 tags. Got 101 tags."),
        (
            (801, 100, 100),
            "at most 1000 metrics, params, and tags. Got 1001 metrics, params, and tags.",
        ),
    ]
    for (n_metrics, n_params, n_tags), message in cases:
        metrics, params, tags = _batch(n_metrics, n_params, n_tags)
        with raises_mlflow("INVALID_PARAMETER_VALUE", message):
            store.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    assert _user_data(client, run_id) == ({}, {}, {})

    # MlflowClient.log_batch itself splits the same data into accepted requests.
    metrics, params, tags = _batch(1001, 101, 101)
    client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
    got_metrics, got_params, got_tags = _user_data(client, run_id)
    assert (len(got_metrics), len(got_params), len(got_tags)) == (1001, 101, 101)


def test_log_batch_rejects_bad_entries_and_writes_nothing(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "fixed", "1")
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.log_batch(run_id, metrics=[Metric("ok", 1.0, 1, 0)], params=[Param("fixed", "2")])
    with raises_mlflow("INVALID_PARAMETER_VALUE", "Duplicate parameter keys have been submitted"):
        client.log_batch(run_id, params=[Param("dup", "1"), Param("dup", "2")])
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.log_batch(run_id, metrics=[Metric("ok", 1.0, 1, 0), Metric("bad!", 1.0, 1, 0)])
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.log_batch(run_id, tags=[RunTag("ok", "1"), RunTag("a//b", "1")])
    assert _user_data(client, run_id) == ({}, {"fixed": "1"}, {})


def test_log_batch_on_missing_run(client):
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.log_batch(MISSING_RUN, metrics=[Metric("m", 1.0, 1, 0)])


def test_metric_history_of_missing_run_is_empty(client):
    # MLflow reads the metrics table without looking the run up (issue 9 §6).
    assert list(client.get_metric_history(MISSING_RUN, "m")) == []


def test_metric_history_beyond_25000_points(client, experiment_id):
    """get_metric_history pages 25,000 points at a time; the whole history must come back."""
    run_id = client.create_run(experiment_id).info.run_id
    n = 25_000 + 1_234
    points = [Metric("long", i * 0.5, 1_000_000 + i, i) for i in range(n)]
    client.log_batch(run_id, metrics=points)  # the client sends 1000 per request
    got = client.get_metric_history(run_id, "long")
    assert len(got) == n
    assert [(m.value, m.timestamp, m.step) for m in got] == [
        (i * 0.5, 1_000_000 + i, i) for i in range(n)
    ]
    assert client.get_run(run_id).data.metrics == {"long": (n - 1) * 0.5}


def test_run_status_names_round_trip(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    for status in ("SCHEDULED", "FAILED", "KILLED", "FINISHED", "RUNNING"):
        client.update_run(run_id, status=status)
        assert client.get_run(run_id).info.status == status


# ---- non-ASCII data: limits count characters, not bytes --------------------------------------


def test_unicode_keys_and_values(client, experiment_id):
    run_id = client.create_run(experiment_id, run_name="прогон-1").info.run_id
    client.log_param(run_id, "größe", "λ=0.5 ✓")
    client.log_metric(run_id, "精度", 0.5, timestamp=1)
    client.set_tag(run_id, "note", "naïve café ☕")
    run = client.get_run(run_id)
    assert run.info.run_name == "прогон-1"
    assert run.data.params == {"größe": "λ=0.5 ✓"}
    assert run.data.metrics == {"精度": 0.5}
    assert run.data.tags["note"] == "naïve café ☕"
    assert [m.value for m in client.get_metric_history(run_id, "精度")] == [0.5]
    found = client.search_runs([experiment_id], filter_string="params.`größe` LIKE 'λ%'")
    assert [r.info.run_id for r in found] == [run_id]


def test_value_limits_count_characters(client, experiment_id):
    run_id = client.create_run(experiment_id).info.run_id
    client.log_param(run_id, "p-max", "é" * 6000)  # 12000 bytes of UTF-8, 6000 characters
    client.log_param(run_id, "p-over", "é" * 6001)
    client.set_tag(run_id, "t-max", "€" * 8000)
    client.set_tag(run_id, "t-over", "€" * 8001)
    run = client.get_run(run_id)
    assert run.data.params == {"p-max": "é" * 6000, "p-over": "é" * 6000}
    assert (run.data.tags["t-max"], run.data.tags["t-over"]) == ("€" * 8000, "€" * 8000)

    name = "ü" * 500
    exp = client.get_experiment(client.create_experiment(name))
    assert exp.name == name
    client.set_experiment_tag(exp.experiment_id, "k", "ß" * 20000)
    assert client.get_experiment(exp.experiment_id).tags == {"k": "ß" * 20000}
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.set_experiment_tag(exp.experiment_id, "k", "ß" * 20001)
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.create_experiment("ü" * 501)
