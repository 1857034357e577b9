"""Fixtures of the MLflow-client compatibility suite.

One `cairn server` per test session, started on a free port of 127.0.0.1 in a temporary
directory with its own SQLite file and a local artifact root. The suite talks to it only
through the official `mlflow` client (and `requests` for wire details the client hides).

Environment:
- CAIRN_BIN: the `cairn` binary to test (scripts/compat sets it). Required.
- CAIRN_COMPAT_KEEP=1: keep the server's directory (log, database) after a passing run.
- CAIRN_COMPAT_SERVER=mlflow: run the suite against the real `mlflow server` of the venv
  instead, to check the suite's own expectations against MLflow. Tests marked
  `cairn_only` (where Cairn knowingly differs from MLflow) are skipped in that mode only.
"""

from __future__ import annotations

import os

# Set before mlflow is imported: a local server needs no retry back-off (the client's default
# retries a 5xx for minutes, which would hide a failure behind a hang), and the client must not
# try to reach its telemetry service.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "60"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

import contextlib
import logging
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from helpers import REFERENCE, ServerProcess, log_tail, unique


@dataclass
class Server:
    """The session's running tracking server."""

    url: str
    pid: int
    workdir: Path
    artifact_root: Path
    log_path: Path
    reference: bool


_server_log: Path | None = None


@pytest.fixture(scope="session", autouse=True)
def server() -> Server:
    """Starts the server, points the mlflow client at it, and stops it with SIGTERM at the end.

    Teardown fails the session unless the server exits by itself, with status 0, after
    SIGTERM: graceful shutdown is part of the server's contract.
    """
    global _server_log
    process = ServerProcess(Path(tempfile.mkdtemp(prefix="cairn-compat-")))
    _server_log = process.log_path
    try:
        process.wait_healthy()
    except RuntimeError as e:
        pytest.exit(str(e), returncode=3)

    previous_uri = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = process.url
    mlflow.set_tracking_uri(process.url)
    try:
        yield Server(
            process.url,
            process.pid,
            process.workdir,
            process.artifact_root,
            process.log_path,
            REFERENCE,
        )
    finally:
        with contextlib.suppress(Exception):
            while mlflow.active_run():
                mlflow.end_run()
        if previous_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_uri
        process.assert_clean_exit(process.terminate())


def pytest_collection_modifyitems(config, items):
    if not REFERENCE:
        return
    skip = pytest.mark.skip(reason="Cairn knowingly differs from MLflow here")
    for item in items:
        if "cairn_only" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """On any failure, shows the server's own log: most server bugs explain themselves there."""
    if _server_log is None or exitstatus == 0:
        return
    terminalreporter.section("server log (last 200 lines)")
    terminalreporter.write_line(log_tail(_server_log))
    terminalreporter.write_line(f"(whole log and database kept in {_server_log.parent})")


def pytest_sessionfinish(session, exitstatus):
    """Removes the server's directory after a clean run (unless CAIRN_COMPAT_KEEP=1); a failed
    run keeps it for inspection."""
    if _server_log is None:
        return
    if exitstatus == 0 and os.environ.get("CAIRN_COMPAT_KEEP") != "1":
        shutil.rmtree(_server_log.parent, ignore_errors=True)
    else:
        print(f"\nserver directory kept: {_server_log.parent}")


@pytest.fixture(autouse=True)
def artifact_errors_shown(caplog):
    """Records the mlflow client's artifact debug log, shown when a test fails.

    `MlflowClient.download_artifacts` logs why a download failed at DEBUG and raises only
    "Failed to download artifacts from path ..."; the cause (a refused request, a short body,
    a full disk) would be lost without this.
    """
    caplog.set_level(logging.DEBUG, logger="mlflow.store.artifact")


@pytest.fixture
def client(server) -> MlflowClient:
    """The official client, pointed at the server."""
    return MlflowClient(tracking_uri=server.url)


@pytest.fixture
def experiment_id(client) -> str:
    """A fresh, empty experiment."""
    return client.create_experiment(unique("exp"))


@pytest.fixture(scope="module")
def s3():
    """The moto_server that scripts/compat runs the suite under (scripts/s3-test-server): its
    endpoint and a fresh bucket per module, with dummy credentials."""
    endpoint = os.environ.get("CAIRN_TEST_S3_ENDPOINT")
    if not endpoint:
        pytest.fail(
            "CAIRN_TEST_S3_ENDPOINT is not set: run the suite through scripts/test, which starts "
            "moto_server (or start one and export its URL)"
        )
    import boto3

    creds = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
    }
    bucket = f"compat-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    return {"endpoint": endpoint, "bucket": bucket, "creds": creds, "client": client}
