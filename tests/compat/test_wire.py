"""Wire details the mlflow client hides, checked with raw HTTP (api.md §0, §1.3)."""

from __future__ import annotations

import re
from urllib.parse import urlparse

import pytest
import requests

from helpers import unique

API = "/api/2.0/mlflow"


@pytest.fixture
def http(server):
    """`http(method, path, **kwargs)` -> requests.Response against the server."""

    def call(method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, server.url + path, timeout=30, **kwargs)

    return call


def _ok_json(response: requests.Response) -> dict:
    assert response.status_code == 200, f"{response.status_code}: {response.text}"
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def _error(response: requests.Response, status: int, code: str) -> str:
    """Checks MLflow's error envelope and returns its message."""
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = response.json()
    assert body["error_code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    return body["message"]


def test_health_and_version(http):
    health = http("GET", "/health")
    assert health.status_code == 200
    assert health.text == "OK"
    version = http("GET", "/version")
    assert version.status_code == 200
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", version.text.strip()), version.text


def test_error_envelope_for_missing_run(http):
    run_id = "f" * 32
    message = _error(
        http("GET", f"{API}/runs/get", params={"run_id": run_id}), 404, "RESOURCE_DOES_NOT_EXIST"
    )
    assert message == f"Run with id={run_id} not found"


def test_error_envelope_same_under_ajax_api(http):
    response = http(
        "GET", "/ajax-api/2.0/mlflow/experiments/get", params={"experiment_id": "987654325"}
    )
    assert (
        _error(response, 404, "RESOURCE_DOES_NOT_EXIST") == "No Experiment with id=987654325 exists"
    )


def test_duplicate_experiment_is_400_resource_already_exists(http):
    name = unique("wire")
    _ok_json(http("POST", f"{API}/experiments/create", json={"name": name}))
    message = _error(
        http("POST", f"{API}/experiments/create", json={"name": name}),
        400,
        "RESOURCE_ALREADY_EXISTS",
    )
    assert name in message


def test_missing_required_parameter(http):
    message = _error(
        http("POST", f"{API}/experiments/create", json={}), 400, "INVALID_PARAMETER_VALUE"
    )
    assert message.startswith("Missing value for required parameter 'name'")


def test_text_plain_post_is_refused(http):
    name = unique("csrf")
    response = http(
        "POST",
        f"{API}/experiments/create",
        data=f'{{"name": "{name}"}}',
        headers={"Content-Type": "text/plain"},
    )
    message = _error(response, 400, "INVALID_PARAMETER_VALUE")
    assert message == "Bad Request. Content-Type must be one of ['application/json']."
    lookup = http("GET", f"{API}/experiments/get-by-name", params={"experiment_name": name})
    assert lookup.status_code == 404  # nothing was created


def test_missing_content_type_is_refused(http):
    response = http("POST", f"{API}/experiments/create", data=b'{"name": "x"}')
    assert "Content-Type" not in response.request.headers
    assert (
        _error(response, 400, "INVALID_PARAMETER_VALUE")
        == "Bad Request. Content-Type header is missing."
    )


def test_json_with_charset_is_accepted(http):
    name = unique("charset")
    response = http(
        "POST",
        f"{API}/experiments/create",
        data=f'{{"name": "{name}"}}'.encode(),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert _ok_json(response)["experiment_id"].isdigit()


@pytest.mark.parametrize(
    "method, path",
    [("GET", f"{API}/experiments/get?experiment_id=0"), ("POST", f"{API}/experiments/create")],
)
def test_forged_host_header_is_refused(http, method, path):
    name = unique("rebind")
    response = http(method, path, json={"name": name}, headers={"Host": "evil.example.com"})
    assert response.status_code == 403, response.text
    assert "Invalid Host header" in response.text
    lookup = http("GET", f"{API}/experiments/get-by-name", params={"experiment_name": name})
    assert lookup.status_code == 404


def test_health_answers_any_host(http):
    """/health and /version are exempt from the Host check (load balancers probe them by IP)."""
    for path in ("/health", "/version"):
        assert http("GET", path, headers={"Host": "evil.example.com"}).status_code == 200


def test_local_host_headers_are_allowed(http, server):
    port = urlparse(server.url).port
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", "localhost"):
        response = http(
            "GET", f"{API}/experiments/get", params={"experiment_id": "0"}, headers={"Host": host}
        )
        assert response.status_code == 200, (host, response.status_code, response.text)


@pytest.mark.parametrize("origin", ["http://evil.example.com", "null"])
def test_cross_origin_state_change_is_refused(http, origin):
    """api.md §1.3: a state-changing API request from a foreign Origin is refused with 403
    "Cross-origin request blocked" (a page on another site must not drive the server)."""
    name = unique("cors")
    response = http(
        "POST", f"{API}/experiments/create", json={"name": name}, headers={"Origin": origin}
    )
    assert response.status_code == 403, response.text
    assert "Cross-origin request blocked" in response.text
    lookup = http("GET", f"{API}/experiments/get-by-name", params={"experiment_name": name})
    assert lookup.status_code == 404


def test_local_origins_and_cross_origin_reads_are_allowed(http, server):
    port = urlparse(server.url).port
    for origin in (f"http://127.0.0.1:{port}", f"http://localhost:{port}", "http://localhost:3000"):
        response = http(
            "POST",
            f"{API}/experiments/create",
            json={"name": unique("origin")},
            headers={"Origin": origin},
        )
        assert response.status_code == 200, (origin, response.status_code, response.text)
    response = http(
        "GET",
        f"{API}/experiments/get",
        params={"experiment_id": "0"},
        headers={"Origin": "http://evil.example.com"},
    )
    assert response.status_code == 200, response.text


def test_camel_case_request_fields(http):
    """Fields may be named in lowerCamelCase. (MLflow checks *required* fields by their
    snake_case name before decoding, so `run_id` stays snake_case where it is required.)"""
    exp_id = _ok_json(http("POST", f"{API}/experiments/create", json={"name": unique("camel")}))[
        "experiment_id"
    ]
    run = _ok_json(
        http(
            "POST",
            f"{API}/runs/create",
            json={"experimentId": exp_id, "runName": "camel", "startTime": "1234", "userId": "u1"},
        )
    )["run"]
    info = run["info"]
    # Responses use snake_case names and int64 as JSON numbers.
    assert info["experiment_id"] == exp_id
    assert info["run_name"] == "camel"
    assert info["start_time"] == 1234
    assert info["user_id"] == "u1"
    assert info["status"] == "RUNNING"
    assert info["lifecycle_stage"] == "active"
    assert "end_time" not in info  # unset fields are omitted
    run_id = info["run_id"]
    assert info["run_uuid"] == run_id

    metric = {
        "run_id": run_id,
        "key": "m",
        "value": 1.5,
        "timestamp": 7,
        "step": 2,
        "datasetName": "d",
        "datasetDigest": "x",
    }
    assert _ok_json(http("POST", f"{API}/runs/log-metric", json=metric)) == {}  # empty response: {}
    _ok_json(
        http("POST", f"{API}/runs/log-parameter", json={"run_id": run_id, "key": "p", "value": "v"})
    )
    _ok_json(
        http("POST", f"{API}/runs/update", json={"run_id": run_id, "status": 3, "endTime": 99})
    )  # enum by number

    got = _ok_json(http("GET", f"{API}/runs/get", params={"run_id": run_id}))["run"]
    assert got["info"]["status"] == "FINISHED"
    assert got["info"]["end_time"] == 99
    assert got["data"]["metrics"] == [{"key": "m", "value": 1.5, "timestamp": 7, "step": 2}]
    assert got["data"]["params"] == [{"key": "p", "value": "v"}]

    hist = _ok_json(
        http(
            "GET",
            f"{API}/metrics/get-history",
            params={"run_id": run_id, "metric_key": "m", "maxResults": 10},
        )
    )
    assert [(m["key"], m["value"], m["timestamp"], m["step"]) for m in hist["metrics"]] == [
        ("m", 1.5, 7, 2)
    ]


def test_field_named_both_ways_is_refused(http):
    exp_id = _ok_json(http("POST", f"{API}/experiments/create", json={"name": unique("both")}))[
        "experiment_id"
    ]
    run_id = _ok_json(http("POST", f"{API}/runs/create", json={"experiment_id": exp_id}))["run"][
        "info"
    ]["run_id"]
    body = {"run_id": run_id, "runId": run_id, "key": "k", "value": 1, "timestamp": 1}
    message = _error(
        http("POST", f"{API}/runs/log-metric", json=body), 400, "INVALID_PARAMETER_VALUE"
    )
    assert message == "Request specifies both 'run_id' and 'runId'; provide only one of them."


def test_rename_deleted_experiment_is_500_invalid_state(http):
    exp_id = _ok_json(http("POST", f"{API}/experiments/create", json={"name": unique("state")}))[
        "experiment_id"
    ]
    _ok_json(http("POST", f"{API}/experiments/delete", json={"experiment_id": exp_id}))
    response = http(
        "POST", f"{API}/experiments/update", json={"experiment_id": exp_id, "new_name": unique("x")}
    )
    assert _error(response, 500, "INVALID_STATE") == "Cannot rename a non-active experiment."


def test_nan_and_infinity_on_the_wire(http):
    exp_id = _ok_json(http("POST", f"{API}/experiments/create", json={"name": unique("nan")}))[
        "experiment_id"
    ]
    run_id = _ok_json(http("POST", f"{API}/runs/create", json={"experiment_id": exp_id}))["run"][
        "info"
    ]["run_id"]
    _ok_json(
        http(
            "POST",
            f"{API}/runs/log-metric",
            json={"run_id": run_id, "key": "n", "value": "NaN", "timestamp": 1},
        )
    )
    metrics = _ok_json(http("GET", f"{API}/runs/get", params={"run_id": run_id}))["run"]["data"][
        "metrics"
    ]
    assert metrics == [{"key": "n", "value": "NaN", "timestamp": 1, "step": 0}]


def test_non_numeric_metric_value_is_invalid(http):
    exp_id = _ok_json(http("POST", f"{API}/experiments/create", json={"name": unique("str")}))[
        "experiment_id"
    ]
    run_id = _ok_json(http("POST", f"{API}/runs/create", json={"experiment_id": exp_id}))["run"][
        "info"
    ]["run_id"]
    response = http(
        "POST",
        f"{API}/runs/log-metric",
        json={"run_id": run_id, "key": "s", "value": "high", "timestamp": 1},
    )
    assert "Invalid value \"high\" for parameter 'value' supplied" in _error(
        response, 400, "INVALID_PARAMETER_VALUE"
    )
    response = http(
        "POST", f"{API}/runs/log-metric", json={"run_id": run_id, "key": "s", "timestamp": 1}
    )
    assert _error(response, 400, "INVALID_PARAMETER_VALUE").startswith(
        "Missing value for required parameter 'value'"
    )
    # A numeric string is a number (int64/double fields accept them).
    _ok_json(
        http(
            "POST",
            f"{API}/runs/log-metric",
            json={"run_id": run_id, "key": "n", "value": "1.5", "timestamp": 1},
        )
    )
    metrics = _ok_json(http("GET", f"{API}/runs/get", params={"run_id": run_id}))["run"]["data"][
        "metrics"
    ]
    assert metrics == [{"key": "n", "value": 1.5, "timestamp": 1, "step": 0}]


@pytest.mark.cairn_only
def test_bool_metric_value_is_invalid(http):
    """api.md §1.2: a bool metric value is rejected. MLflow's store has that check, but its REST
    layer has already coerced JSON `true` to 1.0 by then, so MLflow's server stores 1.0."""
    exp_id = _ok_json(http("POST", f"{API}/experiments/create", json={"name": unique("bool")}))[
        "experiment_id"
    ]
    run_id = _ok_json(http("POST", f"{API}/runs/create", json={"experiment_id": exp_id}))["run"][
        "info"
    ]["run_id"]
    response = http(
        "POST",
        f"{API}/runs/log-metric",
        json={"run_id": run_id, "key": "b", "value": True, "timestamp": 1},
    )
    _error(response, 400, "INVALID_PARAMETER_VALUE")
    metrics = _ok_json(http("GET", f"{API}/runs/get", params={"run_id": run_id}))["run"][
        "data"
    ].get("metrics", [])
    assert metrics == []


def test_malformed_json_body_gets_the_error_envelope(http):
    response = http(
        "POST",
        f"{API}/experiments/create",
        data=b'{"name": ',
        headers={"Content-Type": "application/json"},
    )
    _error(response, 400, "INVALID_PARAMETER_VALUE")


def test_experiments_search_by_get(http):
    name = unique("getsearch")
    _ok_json(http("POST", f"{API}/experiments/create", json={"name": name}))
    body = _ok_json(
        http(
            "GET",
            f"{API}/experiments/search",
            params={"max_results": 5, "filter": f"name = '{name}'"},
        )
    )
    assert [e["name"] for e in body["experiments"]] == [name]
    assert "next_page_token" not in body


def test_metric_history_pages(http):
    exp_id = _ok_json(http("POST", f"{API}/experiments/create", json={"name": unique("hist")}))[
        "experiment_id"
    ]
    run_id = _ok_json(http("POST", f"{API}/runs/create", json={"experiment_id": exp_id}))["run"][
        "info"
    ]["run_id"]
    metrics = [{"key": "h", "value": float(i), "timestamp": 100 + i, "step": i} for i in range(5)]
    _ok_json(http("POST", f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": metrics}))
    seen, token, pages = [], None, 0
    while True:
        params = {"run_id": run_id, "metric_key": "h", "max_results": 2}
        if token:
            params["page_token"] = token
        body = _ok_json(http("GET", f"{API}/metrics/get-history", params=params))
        seen += [m["step"] for m in body["metrics"]]
        pages += 1
        token = body.get("next_page_token")
        if not token:
            break
        assert pages < 10
    assert seen == [0, 1, 2, 3, 4]
    assert pages == 3


def test_search_datasets_ajax_route(http):
    exp_id = _ok_json(http("POST", f"{API}/experiments/create", json={"name": unique("dsum")}))[
        "experiment_id"
    ]
    run_id = _ok_json(http("POST", f"{API}/runs/create", json={"experiment_id": exp_id}))["run"][
        "info"
    ]["run_id"]
    dataset = {"name": "iris", "digest": "abc123", "source_type": "local", "source": "{}"}
    inputs = [
        {"dataset": dataset, "tags": [{"key": "mlflow.data.context", "value": "training"}]},
        {"dataset": {**dataset, "name": "wine", "digest": "def456"}, "tags": []},
    ]
    _ok_json(http("POST", f"{API}/runs/log-inputs", json={"run_id": run_id, "datasets": inputs}))
    body = _ok_json(
        http(
            "POST",
            "/ajax-api/2.0/mlflow/experiments/search-datasets",
            json={"experiment_ids": [exp_id]},
        )
    )
    summaries = sorted(body["dataset_summaries"], key=lambda s: s["name"])
    assert summaries == [
        {"experiment_id": exp_id, "name": "iris", "digest": "abc123", "context": "training"},
        {"experiment_id": exp_id, "name": "wine", "digest": "def456"},
    ]


def test_log_batch_limit_message_on_the_wire(http):
    exp_id = _ok_json(http("POST", f"{API}/experiments/create", json={"name": unique("limits")}))[
        "experiment_id"
    ]
    run_id = _ok_json(http("POST", f"{API}/runs/create", json={"experiment_id": exp_id}))["run"][
        "info"
    ]["run_id"]
    params = [{"key": f"p{i}", "value": "v"} for i in range(101)]
    message = _error(
        http("POST", f"{API}/runs/log-batch", json={"run_id": run_id, "params": params}),
        400,
        "INVALID_PARAMETER_VALUE",
    )
    assert message == (
        "A batch logging request can contain at most 100 params. Got 101 params. "
        "Please split up params across multiple requests and try again."
    )


def test_experiments_search_view_type_by_name_or_number(http):
    name = unique("view")
    exp_id = _ok_json(http("POST", f"{API}/experiments/create", json={"name": name}))[
        "experiment_id"
    ]
    _ok_json(http("POST", f"{API}/experiments/delete", json={"experiment_id": exp_id}))
    for view_type, found in (("DELETED_ONLY", True), (2, True), ("ACTIVE_ONLY", False), (3, True)):
        body = {"max_results": 10, "filter": f"name = '{name}'", "view_type": view_type}
        got = _ok_json(http("POST", f"{API}/experiments/search", json=body))
        assert [e["name"] for e in got.get("experiments", [])] == ([name] if found else []), (
            view_type
        )
    deleted = _ok_json(http("GET", f"{API}/experiments/get", params={"experiment_id": exp_id}))
    assert deleted["experiment"]["lifecycle_stage"] == "deleted"


def _runs_with_history(http, lengths: list[int]) -> list[str]:
    """Runs whose metric `k` has one point per step 0..n-1 (value = step, timestamp = 100+step)."""
    exp_id = _ok_json(http("POST", f"{API}/experiments/create", json={"name": unique("bulk")}))[
        "experiment_id"
    ]
    run_ids = []
    for n in lengths:
        run = _ok_json(http("POST", f"{API}/runs/create", json={"experiment_id": exp_id}))
        run_id = run["run"]["info"]["run_id"]
        points = [
            {"key": "k", "value": float(s), "timestamp": 100 + s, "step": s} for s in range(n)
        ]
        _ok_json(http("POST", f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": points}))
        run_ids.append(run_id)
    return run_ids


def test_get_history_bulk_ajax(http):
    """The UI's bulk history: points of several runs, ordered by run_id, then timestamp, step,
    value, and cut at max_results. The runs are requested in descending id order so that
    request order and the required order differ."""
    created = _runs_with_history(http, [3, 4])
    lengths = dict(zip(created, [3, 4], strict=True))
    run_ids = sorted(created, reverse=True)
    path = "/ajax-api/2.0/mlflow/metrics/get-history-bulk"
    body = _ok_json(http("GET", path, params={"run_id": run_ids, "metric_key": "k"}))
    got = [(m["run_id"], m["step"], m["value"], m["timestamp"], m["key"]) for m in body["metrics"]]
    expected = [(r, s, float(s), 100 + s, "k") for r in sorted(run_ids) for s in range(lengths[r])]
    assert got == expected
    body = _ok_json(
        http("GET", path, params={"run_id": run_ids, "metric_key": "k", "max_results": 2})
    )
    assert [(m["run_id"], m["step"]) for m in body["metrics"]] == [
        (r, s) for r, s, *_ in expected[:2]
    ]


def test_get_history_bulk_interval(http):
    run_ids = _runs_with_history(http, [10, 20])
    path = f"{API}/metrics/get-history-bulk-interval"

    def steps(**params) -> dict[str, list[int]]:
        body = _ok_json(http("GET", path, params={"run_ids": run_ids, "metric_key": "k", **params}))
        by_run: dict[str, list[int]] = {r: [] for r in run_ids}
        for m in body["metrics"]:
            assert m["key"] == "k" and m["value"] == float(m["step"])
            by_run[m["run_id"]].append(m["step"])
        return by_run

    # Fewer points than max_results: everything in the range, per run, by step.
    assert steps(start_step=8, end_step=11) == {run_ids[0]: [8, 9], run_ids[1]: [8, 9, 10, 11]}
    assert steps() == {run_ids[0]: list(range(10)), run_ids[1]: list(range(20))}
    # Sampling returns fewer points, and keeps each run's first and last step of the range, in
    # order. Which steps in between is not pinned down: MLflow's SQL store samples each run's
    # rows on its own (NTILE), its AbstractStore (and api.md §1.2) samples the union of steps.
    for params, first, last, in_range in (
        ({"max_results": 5}, 0, (9, 19), (10, 20)),
        ({"max_results": 4, "start_step": 3, "end_step": 12}, 3, (9, 12), (7, 10)),
    ):
        sampled = steps(**params)
        for run_id, run_last, n in zip(run_ids, last, in_range, strict=True):
            got = sampled[run_id]
            assert got == sorted(set(got)), got
            assert got[0] == first and got[-1] == run_last, got
            assert len(got) < n, got

    response = http(
        "GET", path, params={"run_ids": run_ids, "metric_key": "k", "max_results": 2501}
    )
    assert _error(response, 400, "INVALID_PARAMETER_VALUE").startswith(
        "max_results must be between 1 and 2500."
    )
    response = http("GET", path, params={"run_ids": run_ids, "metric_key": "k", "start_step": 5})
    assert _error(response, 400, "INVALID_PARAMETER_VALUE") == (
        "If either start step or end step are specified, both must be specified."
    )
