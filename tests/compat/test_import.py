"""`cairn import`: a real `mlflow server` (3.18, the venv's) is filled through the official
client, stopped, and its database imported into a fresh Cairn store; then `cairn server` on
that store must answer the official client exactly as `mlflow server` did: every experiment,
run (ids, names, times, status, params, tags, latest metrics, full metric histories with NaN
and infinities, dataset and model inputs, outputs), LoggedModel, registered model, version,
stage, alias and tag.

The source is MLflow's SQLite schema, and also MLflow's PostgreSQL schema under `scripts/compat
--backend postgres`, where the destination is the PostgreSQL store too (the destination is the
store every ServerProcess of this suite uses); and MLflow's FileStore (an `mlruns/` directory
that `mlflow server --backend-store-uri <dir>` writes, MLFLOW_ALLOW_FILE_STORE=true). Re-running
the import writes nothing; an MLflow database at an alembic revision Cairn does not know is
refused before anything is written.

Artifact locations are kept, so `runs:/` downloads through `cairn server` keep working for a
local artifact root (the SQL sources) and for MLflow's proxied `mlflow-artifacts:/` locations
once `cairn server --artifacts-destination` names MLflow's (the FileStore source); `--artifacts`
copies MLflow's proxied artifacts into another store (a local `mlartifacts/` into S3, on the
moto_server scripts/compat runs the suite under), resumably.
"""

from __future__ import annotations

import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.entities import (
    Dataset,
    DatasetInput,
    InputTag,
    LoggedModelInput,
    LoggedModelOutput,
    LoggedModelStatus,
    Metric,
    Param,
    RunTag,
    ViewType,
)
from mlflow.tracking import MlflowClient

from helpers import (
    POSTGRES,
    REFERENCE,
    PLUGIN,
    ServerProcess,
    free_port,
    log_tail,
    postgres_schema,
    postgres_uri,
    unique,
)

pytestmark = pytest.mark.skipif(
    REFERENCE or bool(PLUGIN),
    reason="cairn import is Cairn's own command; the jsonl plugin cannot be an import destination",
)

HISTORY = 6000  # more values than one chunk of the importer (5000)


def cairn(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "MLFLOW_"))}
    env.update(extra)
    return subprocess.run(
        [os.environ["CAIRN_BIN"], *args], cwd=cwd, env=env, capture_output=True, text=True
    )


class MlflowServer:
    """The venv's real `mlflow server` on `backend` with artifacts under `workdir` (a local
    default artifact root, or `artifact_args`), `env` added to its environment."""

    def __init__(
        self,
        workdir: Path,
        backend: str,
        artifact_args: list[str] | None = None,
        env: dict[str, str] | None = None,
    ):
        self.log_path = workdir / "mlflow-server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        extra_env = env or {}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "MLFLOW_"))}
        env["MLFLOW_DISABLE_TELEMETRY"] = "true"
        env.update(extra_env)
        if artifact_args is None:
            artifact_args = ["--default-artifact-root", str(workdir / "mlflow-artifacts")]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable, "-m", "mlflow", "server", "--workers", "1",
                    "--backend-store-uri", backend, *artifact_args,
                    "--host", "127.0.0.1", "--port", str(self.port),
                ],
                cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited:\n{log_tail(self.log_path)}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"mlflow server did not start:\n{log_tail(self.log_path)}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def populate(client: MlflowClient) -> dict:
    """Everything the import must carry, written through the official client."""
    a = client.create_experiment(unique("imp-a"), tags={"team": "vision", "mlflow.note.content": "n"})
    b = client.create_experiment(unique("imp-b"))
    gone = client.create_experiment(unique("imp-gone"))

    first = client.create_run(a, run_name="first", tags={"kind": "train"})
    rid = first.info.run_id
    for start in range(0, HISTORY, 1000):
        client.log_batch(
            rid,
            metrics=[Metric("loss", 1.0 / (i + 1), 1_000 + i, i) for i in range(start, start + 1000)],
        )
    client.log_batch(
        rid,
        metrics=[
            Metric("odd", float("nan"), 10, 0),
            Metric("odd", float("inf"), 11, 1),
            Metric("odd", float("-inf"), 12, 2),
            Metric("odd", 3.5, 12, 2),
        ],
        params=[Param("lr", "0.01"), Param("layers", "3")],
        tags=[RunTag("phase", "one")],
    )
    client.log_inputs(
        rid,
        [
            DatasetInput(
                Dataset("train-set", "abc123", "local", '{"uri": "/data/train"}', '{"cols": 2}', '{"rows": 9}'),
                [InputTag("mlflow.data.context", "training")],
            )
        ],
    )
    model = client.create_logged_model(
        a, name="produced", source_run_id=rid, params={"alpha": "0.5"}, tags={"t": "1"}, model_type="clf"
    )
    client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    client.log_metric(rid, "acc", 0.91, timestamp=500, step=4, model_id=model.model_id,
                      dataset_name="eval-set", dataset_digest="d1")
    client.log_outputs(rid, [LoggedModelOutput(model.model_id, step=3)])
    client.set_terminated(rid, "FINISHED", end_time=int(time.time() * 1000) + 5)

    second = client.create_run(b, run_name="second")
    client.log_inputs(second.info.run_id, models=[LoggedModelInput(model.model_id)])
    client.log_metric(second.info.run_id, "m", 1.0, timestamp=7, step=0)
    client.set_terminated(second.info.run_id, "FAILED")
    deleted = client.create_run(b, run_name="deleted")
    client.log_param(deleted.info.run_id, "x", "1")
    client.delete_run(deleted.info.run_id)
    client.create_run(gone, run_name="in-a-deleted-experiment")
    default_run = client.create_run("0", run_name="in-default")
    client.log_param(default_run.info.run_id, "where", "default")
    client.delete_experiment(gone)
    unused = client.create_logged_model(b, name="dropped")
    client.delete_logged_model(unused.model_id)

    name = unique("imp-model")
    client.create_registered_model(name, tags={"owner": "ml"}, description="the model")
    for i in range(3):
        client.create_model_version(
            name, f"runs:/{rid}/model", run_id=rid, tags={"n": str(i)}, description=f"v{i + 1}"
        )
    client.transition_model_version_stage(name, "1", "Production")
    client.transition_model_version_stage(name, "2", "Staging")
    client.set_registered_model_alias(name, "champion", "2")
    client.set_model_version_tag(name, "2", "validated", "yes")
    client.delete_model_version(name, "3")
    empty = unique("imp-empty")
    client.create_registered_model(empty)
    client.log_text(rid, ARTIFACT_TEXT, ARTIFACT_PATH)
    return {"experiments": ["0", a, b, gone], "model": name, "empty": empty, "run": rid}


ARTIFACT_PATH = "notes/hello.txt"
ARTIFACT_TEXT = "written through mlflow before the import\n"


def assert_artifact_downloads(url: str, run_id: str, dst: Path) -> None:
    """`runs:/<run>/notes/hello.txt` through the server at `url` is what MLflow stored."""
    got = mlflow.artifacts.download_artifacts(
        artifact_uri=f"runs:/{run_id}/{ARTIFACT_PATH}", dst_path=str(dst), tracking_uri=url
    )
    assert Path(got).read_text() == ARTIFACT_TEXT


def num(v: float):
    return "nan" if math.isnan(v) else v


def snapshot(client: MlflowClient, made: dict) -> dict:
    """What the official client reads back, in a comparable form."""
    out: dict = {"experiments": {}, "runs": {}, "histories": {}, "models": {}, "registry": {}}
    for e in client.search_experiments(view_type=ViewType.ALL, max_results=1000):
        if e.experiment_id not in made["experiments"]:
            continue
        out["experiments"][e.experiment_id] = (
            e.name, e.artifact_location, e.lifecycle_stage, e.creation_time, e.last_update_time,
            sorted(e.tags.items()),
        )
    runs = client.search_runs(made["experiments"], run_view_type=ViewType.ALL, max_results=1000)
    for found in runs:
        # get_run: MLflow's search_runs leaves model inputs out, get_run has them.
        r = client.get_run(found.info.run_id)
        i = r.info
        out["runs"][i.run_id] = (
            i.run_name, i.experiment_id, i.user_id, i.status, i.start_time, i.end_time,
            i.artifact_uri, i.lifecycle_stage,
            sorted(r.data.params.items()), sorted(r.data.tags.items()),
            sorted((k, num(v)) for k, v in r.data.metrics.items()),
            [
                (d.dataset.name, d.dataset.digest, d.dataset.source_type, d.dataset.source,
                 d.dataset.schema, d.dataset.profile, sorted((t.key, t.value) for t in d.tags))
                for d in r.inputs.dataset_inputs
            ],
            sorted(m.model_id for m in r.inputs.model_inputs or []),
            sorted((m.model_id, m.step) for m in (r.outputs.model_outputs if r.outputs else []) or []),
        )
        for key in r.data.metrics:
            history = client.get_metric_history(i.run_id, key)
            out["histories"][(i.run_id, key)] = sorted(
                (m.timestamp, m.step, str(num(m.value))) for m in history
            )
    for m in client.search_logged_models(experiment_ids=made["experiments"], max_results=100):
        out["models"][m.model_id] = (
            m.name, m.experiment_id, m.artifact_location, m.creation_timestamp,
            m.last_updated_timestamp, str(m.status), m.model_type, m.source_run_id,
            m.status_message, sorted(m.tags.items()), sorted(m.params.items()),
            sorted((x.key, x.value, x.timestamp, x.step, x.dataset_name, x.dataset_digest, x.run_id)
                   for x in m.metrics or []),
        )
    for name in (made["model"], made["empty"]):
        rm = client.get_registered_model(name)
        # get_model_version: MLflow's search_model_versions leaves aliases out.
        versions = [
            client.get_model_version(name, v.version)
            for v in client.search_model_versions(f"name = '{name}'")
        ]
        out["registry"][name] = (
            rm.creation_timestamp, rm.last_updated_timestamp, rm.description,
            sorted(rm.tags.items()), sorted(rm.aliases.items()),
            sorted((v.version, v.current_stage) for v in rm.latest_versions or []),
            sorted(
                (v.version, v.creation_timestamp, v.last_updated_timestamp, v.description,
                 v.user_id, v.current_stage, v.source, v.run_id, v.status, v.status_message,
                 sorted(v.tags.items()), v.run_link, sorted(v.aliases))
                for v in versions
            ),
        )
    out["by_alias"] = client.get_model_version_by_alias(made["model"], "champion").version
    return out


@pytest.mark.parametrize("source", ["sqlite", "postgresql"])
def test_import_from_mlflow_reads_back_equal(source):
    if source == "postgresql" and not POSTGRES:
        pytest.skip("MLflow on PostgreSQL runs under `scripts/compat --backend postgres`")
    workdir = Path(tempfile.mkdtemp(prefix="cairn-import-"))
    mlflow_dir = workdir / "mlflow"
    mlflow_dir.mkdir()
    # MLflow's SQLAlchemy spelling: with SQLAlchemy 2.1 a bare postgresql:// means psycopg 3.
    backend = (
        f"sqlite:///{mlflow_dir / 'mlflow.db'}"
        if source == "sqlite"
        else postgres_uri(mlflow_dir).replace("postgresql://", "postgresql+psycopg2://", 1)
    )
    mlflow = MlflowServer(mlflow_dir, backend)
    try:
        client = MlflowClient(tracking_uri=mlflow.url)
        made = populate(client)
        expected = snapshot(client, made)
    finally:
        mlflow.stop()

    cairn_dir = workdir / "cairn"
    cairn_dir.mkdir()
    dest = postgres_uri(cairn_dir) if POSTGRES else f"sqlite:///{cairn_dir / 'tracking.db'}"

    dry = cairn("import", "--from", backend, "--dry-run", "--backend-store-uri", dest, cwd=cairn_dir)
    assert dry.returncode == 0, dry.stderr
    assert "runs               would write        5" in dry.stdout, dry.stdout

    done = cairn("import", "--from", backend, "--backend-store-uri", dest, cwd=cairn_dir)
    assert done.returncode == 0, done.stderr + done.stdout
    lines = done.stdout
    # Default (experiment 0) exists in every Cairn store; it takes MLflow's location and times.
    assert "experiments        written        4" in lines, lines
    assert "runs               written        5" in lines, lines
    assert "logged models      written        2" in lines, lines
    assert "model versions     written        2" in lines, lines
    assert f"metric values      written     {HISTORY + 6}" in lines, lines
    if POSTGRES:
        assert_analyzed(postgres_schema(cairn_dir))

    again = cairn("import", "--from", backend, "--backend-store-uri", dest, cwd=cairn_dir)
    assert again.returncode == 0, again.stderr
    assert "runs               written        0, already present        5" in again.stdout, again.stdout
    assert "experiments        written        0, already present        4" in again.stdout
    assert "model versions     written        0, already present        2" in again.stdout

    server = ServerProcess(cairn_dir)
    try:
        server.wait_healthy()
        cairn_client = MlflowClient(tracking_uri=server.url)
        actual = snapshot(cairn_client, made)
        for part in expected:
            if isinstance(expected[part], dict):
                assert sorted(actual[part]) == sorted(expected[part]), part
                for key, value in expected[part].items():
                    assert actual[part][key] == value, (part, key, repr(actual[part][key]), repr(value))
            else:
                assert actual[part] == expected[part], part
        # Allocation continues after the imported ids: version 4 (3 was deleted in MLflow)
        # and a new experiment id above every imported one.
        v = cairn_client.create_model_version(
            made["model"], f"runs:/{made['run']}/model", run_id=made["run"]
        )
        assert v.version == "4"
        new = cairn_client.create_experiment(unique("after-import"))
        assert int(new) > max(int(e) for e in made["experiments"])
        # The run's artifact location is MLflow's local artifact root, kept verbatim.
        assert_artifact_downloads(server.url, made["run"], workdir / "downloaded")
    finally:
        server.assert_clean_exit(server.terminate())
    shutil.rmtree(workdir, ignore_errors=True)


def assert_analyzed(schema: str) -> None:
    """The import ended with ANALYZE of the destination's tables (its schema's only), so the
    first searches are planned on statistics of the imported rows, not of empty tables."""
    searched = ("runs", "params", "tags", "latest_metrics", "experiments")
    out = subprocess.run(
        [
            "psql",
            POSTGRES,
            "-tA",
            "-c",
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = '"
            + schema
            + "' AND last_analyze IS NOT NULL ORDER BY relname",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert set(searched) <= set(out), out


def test_import_from_mlflow_filestore_reads_back_equal():
    """MLflow 3.18's FileStore, written by `mlflow server --backend-store-uri <mlruns>` with
    proxied artifacts (`mlflow-artifacts:/` locations under its --artifacts-destination)."""
    workdir = Path(tempfile.mkdtemp(prefix="cairn-import-fs-"))
    mlflow_dir = workdir / "mlflow"
    mlflow_dir.mkdir()
    mlruns = mlflow_dir / "mlruns"
    mlartifacts = mlflow_dir / "mlartifacts"
    mlflow_server = MlflowServer(
        mlflow_dir,
        str(mlruns),
        artifact_args=["--artifacts-destination", str(mlartifacts)],
        env={"MLFLOW_ALLOW_FILE_STORE": "true"},
    )
    try:
        client = MlflowClient(tracking_uri=mlflow_server.url)
        made = populate(client)
        expected = snapshot(client, made)
        artifact_uri = client.get_run(made["run"]).info.artifact_uri
    finally:
        mlflow_server.stop()
    # A FileStore's experiment ids are random 18-digit integers, its registry under models/.
    assert all((mlruns / e / "meta.yaml").is_file() for e in made["experiments"][:3])
    assert (mlruns / "models" / made["model"] / "version-2" / "meta.yaml").is_file()
    assert artifact_uri.startswith("mlflow-artifacts:/"), artifact_uri
    # MLflow's FileStore writes a metric logged with a dataset as "<ts> <value> <step> <name>
    # <digest>" but reads the step back only from 3-field lines (`_get_metric_from_line`), so
    # its own history says step 0; the step on disk, which Cairn imports, is the one logged.
    acc = mlruns / made["experiments"][1] / made["run"] / "metrics" / "acc"
    assert acc.read_text().split() == ["500", "0.91", "4", "eval-set", "d1"]
    assert expected["histories"][(made["run"], "acc")] == [(500, 0, "0.91")]
    expected["histories"][(made["run"], "acc")] = [(500, 4, "0.91")]

    cairn_dir = workdir / "cairn"
    cairn_dir.mkdir()
    dest = postgres_uri(cairn_dir) if POSTGRES else f"sqlite:///{cairn_dir / 'tracking.db'}"
    source = f"file://{mlruns}"

    dry = cairn("import", "--from", source, "--dry-run", "--backend-store-uri", dest, cwd=cairn_dir)
    assert dry.returncode == 0, dry.stderr
    assert "runs               would write        5" in dry.stdout, dry.stdout
    assert f"metric values      would write     {HISTORY + 6}" in dry.stdout, dry.stdout

    done = cairn("import", "--from", source, "--backend-store-uri", dest, cwd=cairn_dir)
    assert done.returncode == 0, done.stderr + done.stdout
    if POSTGRES:
        assert_analyzed(postgres_schema(cairn_dir))
    lines = done.stdout
    assert "experiments        written        4" in lines, lines
    assert "runs               written        5" in lines, lines
    assert "logged models      written        2" in lines, lines
    assert "registered models  written        2" in lines, lines
    assert "model versions     written        2" in lines, lines
    assert f"metric values      written     {HISTORY + 6}" in lines, lines

    # A plain path names the same FileStore (as MLflow reads a tracking URI without a scheme).
    again = cairn("import", "--from", str(mlruns), "--backend-store-uri", dest, cwd=cairn_dir)
    assert again.returncode == 0, again.stderr
    assert "runs               written        0, already present        5" in again.stdout, again.stdout
    assert "experiments        written        0, already present        4" in again.stdout
    assert "logged models      written        0, already present        2" in again.stdout
    assert "model versions     written        0, already present        2" in again.stdout

    # Proxied artifacts: cairn serves MLflow's artifacts destination.
    server = ServerProcess(cairn_dir, artifact_args=["--artifacts-destination", str(mlartifacts)])
    try:
        server.wait_healthy()
        cairn_client = MlflowClient(tracking_uri=server.url)
        actual = snapshot(cairn_client, made)
        for part in expected:
            if isinstance(expected[part], dict):
                assert sorted(actual[part]) == sorted(expected[part]), part
                for key, value in expected[part].items():
                    assert actual[part][key] == value, (part, key, repr(actual[part][key]), repr(value))
            else:
                assert actual[part] == expected[part], part
        v = cairn_client.create_model_version(
            made["model"], f"runs:/{made['run']}/model", run_id=made["run"]
        )
        assert v.version == "4"
        assert_artifact_downloads(server.url, made["run"], workdir / "downloaded")
    finally:
        server.assert_clean_exit(server.terminate())
    shutil.rmtree(workdir, ignore_errors=True)


def test_import_copies_proxied_artifacts_into_another_store(s3):
    """`--artifacts <MLflow's --artifacts-destination>` with an S3 artifacts destination: the
    proxied files land in S3 under the same paths, `runs:/` downloads through `cairn server` on
    that bucket give MLflow's bytes, a re-run copies nothing, and a file lost at the destination
    is copied again on the next run (only that one)."""
    workdir = Path(tempfile.mkdtemp(prefix="cairn-import-art-"))
    mlflow_dir = workdir / "mlflow"
    mlflow_dir.mkdir()
    mlartifacts = mlflow_dir / "mlartifacts"
    mlflow_server = MlflowServer(
        mlflow_dir,
        f"sqlite:///{mlflow_dir / 'mlflow.db'}",
        artifact_args=["--artifacts-destination", str(mlartifacts)],
    )
    big = os.urandom(3 * 1024 * 1024 + 17)  # several chunks of any stream
    try:
        client = MlflowClient(tracking_uri=mlflow_server.url)
        exp = client.create_experiment(unique("exp"))
        run = client.create_run(exp).info.run_id
        local = workdir / "to-log"
        (local / "notes").mkdir(parents=True)
        (local / "notes" / "hello.txt").write_text(ARTIFACT_TEXT)
        (local / "data").mkdir()
        (local / "data" / "big.bin").write_bytes(big)
        (local / "data" / "empty.txt").write_bytes(b"")
        client.log_artifacts(run, str(local))
        client.set_terminated(run)
        assert client.get_run(run).info.artifact_uri.startswith("mlflow-artifacts:/")
    finally:
        mlflow_server.stop()
    files = sorted(p.relative_to(mlartifacts).as_posix() for p in mlartifacts.rglob("*") if p.is_file())
    assert len(files) == 3, files

    cairn_dir = workdir / "cairn"
    cairn_dir.mkdir()
    dest = postgres_uri(cairn_dir) if POSTGRES else f"sqlite:///{cairn_dir / 'tracking.db'}"
    root = f"s3://{s3['bucket']}/moved"
    env = {**s3["creds"], "MLFLOW_S3_ENDPOINT_URL": s3["endpoint"], "AWS_ALLOW_HTTP": "true"}
    common = ["--from", f"sqlite:///{mlflow_dir / 'mlflow.db'}", "--artifacts", str(mlartifacts),
              "--backend-store-uri", dest, "--artifacts-destination", root]

    dry = cairn("import", *common, "--dry-run", cwd=cairn_dir, env=env)
    assert dry.returncode == 0, dry.stderr
    assert "artifact files     would write        3, already present        0" in dry.stdout, dry.stdout
    assert f"artifact bytes     would write {len(big) + len(ARTIFACT_TEXT):>8}" in dry.stdout, dry.stdout
    listed = s3["client"].list_objects_v2(Bucket=s3["bucket"], Prefix="moved/")
    assert listed.get("KeyCount", 0) == 0, "a dry run wrote to the destination"

    done = cairn("import", *common, cwd=cairn_dir, env=env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "artifact files     written        3, already present        0" in done.stdout, done.stdout
    keys = sorted(o["Key"] for o in s3["client"].list_objects_v2(Bucket=s3["bucket"], Prefix="moved/")["Contents"])
    assert keys == [f"moved/{f}" for f in files]

    again = cairn("import", *common, cwd=cairn_dir, env=env)
    assert again.returncode == 0, again.stderr
    assert "artifact files     written        0, already present        3" in again.stdout, again.stdout

    lost = next(f for f in files if f.endswith("big.bin"))
    s3["client"].delete_object(Bucket=s3["bucket"], Key=f"moved/{lost}")
    resumed = cairn("import", *common, cwd=cairn_dir, env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert "artifact files     written        1, already present        2" in resumed.stdout, resumed.stdout

    # The same storage on both sides is refused before anything is written.
    same = cairn("import", "--from", f"sqlite:///{mlflow_dir / 'mlflow.db'}", "--artifacts", str(mlartifacts),
                 "--backend-store-uri", f"sqlite:///{cairn_dir / 'other.db'}",
                 "--artifacts-destination", str(mlartifacts), cwd=cairn_dir)
    assert same.returncode != 0
    assert "is Cairn's artifacts destination itself" in same.stderr, same.stderr
    assert not (cairn_dir / "other.db").exists()

    server = ServerProcess(cairn_dir, artifact_args=["--artifacts-destination", root], env=env)
    try:
        server.wait_healthy()
        assert_artifact_downloads(server.url, run, workdir / "downloaded")
        got = mlflow.artifacts.download_artifacts(
            artifact_uri=f"runs:/{run}/data", dst_path=str(workdir / "data"), tracking_uri=server.url
        )
        assert (Path(got) / "big.bin").read_bytes() == big
        assert (Path(got) / "empty.txt").read_bytes() == b""
    finally:
        server.assert_clean_exit(server.terminate())
    shutil.rmtree(workdir, ignore_errors=True)


def test_import_refuses_a_directory_that_is_not_a_filestore():
    workdir = Path(tempfile.mkdtemp(prefix="cairn-import-notfs-"))
    (workdir / "src").mkdir()
    (workdir / "src" / "notes.txt").write_text("not mlruns")
    dest = workdir / "dest.db"
    done = cairn(
        "import", "--from", f"file://{workdir / 'src'}", "--backend-store-uri", f"sqlite:///{dest}",
        cwd=workdir,
    )
    assert done.returncode == 1
    assert "is not an MLflow FileStore" in done.stderr, done.stderr
    assert not dest.exists(), "nothing may be written for a refused source"
    shutil.rmtree(workdir, ignore_errors=True)


def test_unknown_mlflow_revision_is_refused():
    workdir = Path(tempfile.mkdtemp(prefix="cairn-import-rev-"))
    db = workdir / "mlflow.db"
    conn = sqlite3.connect(db)
    conn.executescript(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY);"
        "INSERT INTO alembic_version VALUES ('ffff00000000');"
        "CREATE TABLE experiments (experiment_id INTEGER PRIMARY KEY, name TEXT);"
    )
    conn.commit()
    conn.close()
    dest = workdir / "dest.db"
    done = cairn("import", "--from", f"sqlite:///{db}", "--backend-store-uri", f"sqlite:///{dest}", cwd=workdir)
    assert done.returncode == 1
    assert "alembic revision 'ffff00000000'" in done.stderr, done.stderr
    assert not dest.exists(), "nothing may be written for a refused source"
    shutil.rmtree(workdir, ignore_errors=True)
