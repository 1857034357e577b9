"""Artifacts with the official client: through the server's artifact proxy, and straight to S3.

Two servers of their own, besides the session's (which hands out plain local roots):

- `proxy`: no `--default-artifact-root`, so runs get `mlflow-artifacts:/...` roots and every
  byte goes through the `mlflow-artifacts` proxy into `--artifacts-destination`;
- `direct_s3`: `--no-serve-artifacts --default-artifact-root s3://<bucket>/prefix`, so the
  client writes to S3 itself. S3 is the moto_server scripts/test starts; its endpoint comes in
  CAIRN_TEST_S3_ENDPOINT (the test fails, loudly, without it).

Binary files are compared by sha256; the large file is written and hashed in chunks.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.tracking import MlflowClient

from helpers import REFERENCE, ServerProcess, unique

CHUNK = 1 << 20
LARGE_MB = 100
# The listed size of an empty file: MLflow's JSON drops a zero `file_size`, so its client sees
# None; Cairn says 0 (the client reads both).
EMPTY_SIZE = None if REFERENCE else 0


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def write_random(path: Path, size: int) -> str:
    """Writes `size` random bytes to `path` a chunk at a time; returns their sha256."""
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(CHUNK, left))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def tree_hashes(root: Path) -> dict[str, str]:
    """`relative/path` → sha256 of every file under `root`."""
    return {
        p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()
    }


@contextlib.contextmanager
def tracking(url: str):
    """Points the fluent API (and MLFLOW_TRACKING_URI) at `url`, restoring the session's after."""
    previous = mlflow.get_tracking_uri()
    previous_env = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(url)
    os.environ["MLFLOW_TRACKING_URI"] = url
    try:
        yield MlflowClient(tracking_uri=url)
    finally:
        while mlflow.active_run():
            mlflow.end_run()
        mlflow.set_tracking_uri(previous)
        if previous_env is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous_env


@contextlib.contextmanager
def started(process: ServerProcess):
    try:
        process.wait_healthy()
    except RuntimeError as e:
        pytest.fail(str(e))
    try:
        yield process
    finally:
        status = process.terminate()
        process.assert_clean_exit(status)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    """A server proxying artifacts into `<workdir>/destination` (its defaults otherwise)."""
    workdir = tmp_path_factory.mktemp("proxy")
    destination = workdir / "destination"
    process = ServerProcess(
        workdir, name="proxy", artifact_args=["--artifacts-destination", str(destination)]
    )
    process.destination = destination
    with started(process):
        yield process


@pytest.fixture
def proxy_client(proxy):
    with tracking(proxy.url) as client:
        yield client


@pytest.fixture
def scratch():
    path = Path(tempfile.mkdtemp(prefix="cairn-artifacts-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


# ----- locations ------------------------------------------------------------------------------


def test_roots_are_proxied_when_serving_without_a_default_root(proxy, proxy_client):
    exp_id = proxy_client.create_experiment(unique("exp"))
    assert proxy_client.get_experiment(exp_id).artifact_location == f"mlflow-artifacts:/{exp_id}"
    run = proxy_client.create_run(exp_id)
    assert run.info.artifact_uri == f"mlflow-artifacts:/{exp_id}/{run.info.run_id}/artifacts"
    info = requests.get(f"{proxy.url}/api/3.0/mlflow/server-info", timeout=10).json()
    assert info["artifact_serving_enabled"] is True
    # A local destination cannot do multipart or presigned transfers, and says so.
    assert info["multipart_uploads_enabled"] is False
    assert info["multipart_downloads_enabled"] is False


# ----- through the proxy ----------------------------------------------------------------------


def test_log_artifact_binary_round_trip(proxy, proxy_client, scratch):
    exp_id = proxy_client.create_experiment(unique("exp"))
    run_id = proxy_client.create_run(exp_id).info.run_id
    src = scratch / "weights.bin"
    digest = write_random(src, 3 * CHUNK + 17)
    proxy_client.log_artifact(run_id, str(src), artifact_path="model/data")

    # It went through the proxy into the destination.
    stored = proxy.destination / exp_id / run_id / "artifacts" / "model" / "data" / "weights.bin"
    assert sha256_file(stored) == digest

    files = proxy_client.list_artifacts(run_id, "model/data")
    assert [(f.path, f.is_dir, f.file_size) for f in files] == [
        ("model/data/weights.bin", False, 3 * CHUNK + 17)
    ]
    out = Path(proxy_client.download_artifacts(run_id, "model/data/weights.bin", str(scratch / "dl")))
    assert sha256_file(out) == digest


def test_log_artifacts_nested_unicode_spaces_and_empty(proxy, proxy_client, scratch):
    src = scratch / "tree"
    (src / "a" / "b" / "c").mkdir(parents=True)
    (src / "dir with spaces").mkdir()
    (src / "ünïcødé 日本").mkdir()
    digests = {
        "top.txt": None,
        "a/one.bin": None,
        "a/b/two.bin": None,
        "a/b/c/three.bin": None,
        "dir with spaces/file with spaces.txt": None,
        "ünïcødé 日本/データ ü.bin": None,
    }
    for i, rel in enumerate(digests):
        write_random(src / rel, 1000 * (i + 1))
    (src / "a" / "empty.txt").touch()
    expected = tree_hashes(src)

    with mlflow.start_run() as run:
        mlflow.log_artifacts(str(src), artifact_path="tree")
    run_id = run.info.run_id

    root = [(f.path, f.is_dir) for f in proxy_client.list_artifacts(run_id)]
    assert root == [("tree", True)]
    listed = {f.path: f for f in proxy_client.list_artifacts(run_id, "tree")}
    assert set(listed) == {
        "tree/a",
        "tree/dir with spaces",
        "tree/top.txt",
        "tree/ünïcødé 日本",
    }
    assert listed["tree/a"].is_dir and not listed["tree/top.txt"].is_dir
    nested = {f.path: f.file_size for f in proxy_client.list_artifacts(run_id, "tree/a")}
    assert nested == {"tree/a/b": None, "tree/a/empty.txt": EMPTY_SIZE, "tree/a/one.bin": 2000}
    unicode = [f.path for f in proxy_client.list_artifacts(run_id, "tree/ünïcødé 日本")]
    assert unicode == ["tree/ünïcødé 日本/データ ü.bin"]
    # Listing a missing directory is empty, not an error.
    assert proxy_client.list_artifacts(run_id, "tree/nope") == []

    out = Path(
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"runs:/{run_id}/tree", dst_path=str(scratch / "dl")
        )
    )
    assert tree_hashes(out) == expected
    assert (out / "a" / "empty.txt").stat().st_size == 0


def test_empty_file(proxy_client, scratch):
    src = scratch / "empty.bin"
    src.touch()
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src))
    files = proxy_client.list_artifacts(run.info.run_id)
    assert [(f.path, f.file_size) for f in files] == [("empty.bin", EMPTY_SIZE)]
    out = Path(proxy_client.download_artifacts(run.info.run_id, "empty.bin", str(scratch)))
    assert out.read_bytes() == b""


def test_log_dict_text_figure_and_table(proxy_client):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    with mlflow.start_run() as run:
        mlflow.log_dict({"a": 1, "nested": {"b": [1, 2]}}, "config/params.json")
        mlflow.log_dict({"x": "y"}, "config/params.yaml")
        mlflow.log_text("héllo wörld\n", "notes/readme.txt")
        fig, ax = plt.subplots()
        ax.plot([0, 1, 2], [2, 1, 3])
        mlflow.log_figure(fig, "plots/line.png")
        plt.close(fig)
        table = pd.DataFrame({"name": ["a", "b"], "score": [0.5, 0.75]})
        mlflow.log_table(table, artifact_file="tables/scores.json")
    run_id = run.info.run_id
    uri = f"runs:/{run_id}"

    assert mlflow.artifacts.load_dict(f"{uri}/config/params.json") == {"a": 1, "nested": {"b": [1, 2]}}
    assert mlflow.artifacts.load_text(f"{uri}/config/params.yaml") == "x: y\n"
    assert mlflow.artifacts.load_text(f"{uri}/notes/readme.txt") == "héllo wörld\n"
    png = Path(mlflow.artifacts.download_artifacts(f"{uri}/plots/line.png"))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = mlflow.load_table("tables/scores.json", run_ids=[run_id])
    assert list(loaded["name"]) == ["a", "b"]
    assert list(loaded["score"]) == [0.5, 0.75]
    paths = sorted(f.path for f in proxy_client.list_artifacts(run_id))
    assert paths == ["config", "notes", "plots", "tables"]


def test_large_file_round_trip(proxy, proxy_client, scratch):
    src = scratch / "large.bin"
    digest = write_random(src, LARGE_MB * CHUNK)
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src), artifact_path="big")
    files = proxy_client.list_artifacts(run.info.run_id, "big")
    assert [(f.path, f.file_size) for f in files] == [("big/large.bin", LARGE_MB * CHUNK)]
    out = Path(proxy_client.download_artifacts(run.info.run_id, "big/large.bin", str(scratch / "dl")))
    assert out.stat().st_size == LARGE_MB * CHUNK
    assert sha256_file(out) == digest


def test_proxy_download_headers_and_traversal(proxy, proxy_client, scratch):
    src = scratch / "résumé 1.json"
    src.write_text('{"k": 1}')
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(src))
    exp_id, run_id = run.info.experiment_id, run.info.run_id
    base = f"{proxy.url}/api/2.0/mlflow-artifacts/artifacts/{exp_id}/{run_id}/artifacts"
    r = requests.get(f"{base}/r%C3%A9sum%C3%A9%201.json", timeout=10)
    assert r.status_code == 200
    assert r.content == b'{"k": 1}'
    assert r.headers["Content-Length"] == "8"
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Content-Disposition"].startswith("attachment; filename=")
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9%201.json" in r.headers["Content-Disposition"]
    for bad in ["%2e%2e%2f%2e%2e%2fsecret", "%252e%252e%252fsecret", "..%5Csecret", "a%3Bb/x"]:
        r = requests.get(f"{base}/{bad}", timeout=10)
        if REFERENCE:
            # MLflow on Linux takes `\` and `;` as ordinary characters (then finds no file).
            assert r.status_code in (400, 404), (bad, r.text)
            continue
        assert r.status_code == 400, (bad, r.text)
        assert r.json() == {"error_code": "INVALID_PARAMETER_VALUE", "message": "Invalid path"}
    # The UI's download endpoint.
    r = requests.get(
        f"{proxy.url}/get-artifact", params={"run_id": run_id, "path": "résumé 1.json"}, timeout=10
    )
    assert r.status_code == 200 and r.content == b'{"k": 1}'


# ----- the cairn CLI through the server -------------------------------------------------------


def cairn(*args: str, tracking_uri: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    done = subprocess.run(
        [os.environ["CAIRN_BIN"], "artifacts", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"cairn artifacts {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.mark.cairn_only
def test_cairn_cli_lists_downloads_and_uploads_through_the_server(proxy, proxy_client, scratch):
    src = scratch / "up"
    (src / "sub dir").mkdir(parents=True)
    digest = write_random(src / "sub dir" / "ü.bin", 5 * CHUNK + 3)
    (src / "a.txt").write_text("a")
    run_id = proxy_client.create_run(proxy_client.create_experiment(unique("exp"))).info.run_id

    out = cairn("upload", "--local-path", str(src), f"runs:/{run_id}/from-cli", tracking_uri=proxy.url, cwd=scratch)
    assert out.startswith("uploaded 2 files"), out
    # The official client sees what the CLI uploaded.
    listed = sorted(f.path for f in proxy_client.list_artifacts(run_id, "from-cli"))
    assert listed == ["from-cli/a.txt", "from-cli/sub dir"]

    listing = json.loads(cairn("list", f"runs:/{run_id}/from-cli/sub dir", tracking_uri=proxy.url, cwd=scratch))
    assert listing == [{"path": "ü.bin", "is_dir": False, "file_size": 5 * CHUNK + 3}]
    # --run-id/--artifact-path spell the same URI.
    same = json.loads(
        cairn("list", "--run-id", run_id, "--artifact-path", "from-cli/sub dir", tracking_uri=proxy.url, cwd=scratch)
    )
    assert same == listing

    dst = scratch / "dl"
    out = cairn("download", f"runs:/{run_id}/from-cli", "--dst-path", str(dst), tracking_uri=proxy.url, cwd=scratch)
    assert Path(out.strip()) == dst / "from-cli"
    assert sha256_file(dst / "from-cli" / "sub dir" / "ü.bin") == digest
    assert (dst / "from-cli" / "a.txt").read_text() == "a"


# ----- straight to S3 (no proxy) --------------------------------------------------------------


@pytest.fixture(scope="module")
def direct_s3(tmp_path_factory, s3):
    workdir = tmp_path_factory.mktemp("direct-s3")
    root = f"s3://{s3['bucket']}/prefix"
    process = ServerProcess(
        workdir,
        name="direct-s3",
        artifact_args=["--no-serve-artifacts", "--default-artifact-root", root],
        env={**s3["creds"], "MLFLOW_S3_ENDPOINT_URL": s3["endpoint"], "AWS_ALLOW_HTTP": "true"},
    )
    process.root = root
    with started(process):
        yield process


@pytest.fixture
def s3_client(direct_s3, s3, monkeypatch):
    for key, value in s3["creds"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", s3["endpoint"])
    with tracking(direct_s3.url) as client:
        yield client


def test_no_serve_artifacts_with_an_s3_root_writes_straight_to_s3(direct_s3, s3, s3_client, scratch):
    exp_id = s3_client.create_experiment(unique("exp"))
    assert s3_client.get_experiment(exp_id).artifact_location == f"{direct_s3.root}/{exp_id}"
    run = s3_client.create_run(exp_id)
    run_id = run.info.run_id
    assert run.info.artifact_uri == f"{direct_s3.root}/{exp_id}/{run_id}/artifacts"

    src = scratch / "tree"
    (src / "nested dir").mkdir(parents=True)
    digest = write_random(src / "nested dir" / "blob ü.bin", 2 * CHUNK + 5)
    (src / "empty.txt").touch()
    s3_client.log_artifacts(run_id, str(src), artifact_path="out")

    # The objects are in the bucket, where the client put them itself.
    key = f"prefix/{exp_id}/{run_id}/artifacts/out/nested dir/blob ü.bin"
    head = s3["client"].head_object(Bucket=s3["bucket"], Key=key)
    assert head["ContentLength"] == 2 * CHUNK + 5

    # The proxy is off...
    r = requests.get(f"{direct_s3.url}/api/2.0/mlflow-artifacts/artifacts/x", timeout=10)
    assert r.status_code == 503
    # ...but the server lists the run's S3 root itself (artifacts/list, as the UI uses it).
    r = requests.get(
        f"{direct_s3.url}/api/2.0/mlflow/artifacts/list",
        params={"run_id": run_id, "path": "out"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["root_uri"] == run.info.artifact_uri
    assert sorted((f["path"], f.get("is_dir", False)) for f in body["files"]) == [
        ("out/empty.txt", False),
        ("out/nested dir", True),
    ]

    listed = sorted(f.path for f in s3_client.list_artifacts(run_id, "out"))
    assert listed == ["out/empty.txt", "out/nested dir"]
    out = Path(s3_client.download_artifacts(run_id, "out", str(scratch / "dl")))
    assert sha256_file(out / "nested dir" / "blob ü.bin") == digest
    assert (out / "empty.txt").stat().st_size == 0
