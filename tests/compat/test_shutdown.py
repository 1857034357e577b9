"""Graceful shutdown: SIGTERM lets an in-flight request finish, and nothing written is lost."""

from __future__ import annotations

import http.client
import json
import os
import signal
import time

import pytest
from mlflow.tracking import MlflowClient

from helpers import ServerProcess, unique


@pytest.fixture
def own_server(tmp_path):
    """A server of this test's own (the session's server must keep running)."""
    started: list[ServerProcess] = []

    def start(name: str) -> ServerProcess:
        process = ServerProcess(tmp_path, name)
        started.append(process)
        process.wait_healthy()
        return process

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait()


def test_sigterm_finishes_the_request_in_flight_and_loses_nothing(own_server):
    first = own_server("first")
    client = MlflowClient(tracking_uri=first.url)
    run_id = client.create_run(client.create_experiment(unique("shutdown"))).info.run_id
    client.log_param(run_id, "before", "sigterm")

    metrics = [
        {"key": "m", "value": float(i), "timestamp": 1000 + i, "step": i} for i in range(1000)
    ]
    body = json.dumps({"run_id": run_id, "metrics": metrics}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", first.port, timeout=60)
    # One whole request first, so the connection is certainly accepted and being served.
    conn.request("GET", "/health")
    assert conn.getresponse().read() == b"OK"
    # Then the head and half the body of a log-batch: the request is in flight...
    conn.putrequest("POST", "/api/2.0/mlflow/runs/log-batch")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body[: len(body) // 2])
    time.sleep(1)  # ordering only: let the server read the head before the signal
    # ... when SIGTERM arrives. The rest of the body follows; the request must complete.
    os.kill(first.pid, signal.SIGTERM)
    conn.send(body[len(body) // 2 :])
    response = conn.getresponse()
    assert (response.status, json.loads(response.read())) == (200, {})
    conn.close()
    first.assert_clean_exit(first.wait_exit())

    # A new server on the same database sees everything, including the last batch.
    second = own_server("second")
    client = MlflowClient(tracking_uri=second.url)
    run = client.get_run(run_id)
    assert run.data.params == {"before": "sigterm"}
    assert run.data.metrics == {"m": 999.0}
    assert len(client.get_metric_history(run_id, "m")) == 1000
    second.assert_clean_exit(second.terminate())
