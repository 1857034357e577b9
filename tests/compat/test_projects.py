"""`cairn run` of the python_env example project examples/projects/sklearn, whose entry point
trains a scikit-learn model and logs params, metrics, an artifact and a model with the official
client, against the suite's `cairn server`; read back with the official client.

The environment is `--env-manager local` with this venv's Python first on the PATH (it has
mlflow and scikit-learn): building the project's python_env.yaml instead installs mlflow and
scikit-learn from the package index on every fresh CI machine — measured here, the first
`cairn run examples/projects/sklearn` (virtualenv) took 254 s, of which the run itself ~28 s,
and it resolved mlflow 3.17.2, not the suite's pinned 3.18.0 (whose mlflow-skinny is not on the
index; see requirements.txt). The virtualenv path itself is covered by
crates/core/tests/projects.rs with a dependency-free environment.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from helpers import unique

pytestmark = pytest.mark.cairn_only

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "projects" / "sklearn"


def _cairn_run(server, tmp_path: Path, *args: str) -> tuple[str, str]:
    """Runs `cairn run ARGS`; answers (run id, stdout). Fails with the output on a failure."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "MLFLOW_"))}
    env["MLFLOW_TRACKING_URI"] = server.url
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    proc = subprocess.run(
        [os.environ["CAIRN_BIN"], "run", *args, "--env-manager", "local",
         "--storage-dir", str(tmp_path / "storage")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}"
    marker = "in run with ID '"
    start = proc.stderr.index(marker) + len(marker)
    return proc.stderr[start : start + 32], proc.stdout


def _expected(alpha: float, l1_ratio: float, max_iter: int):
    """The model and test split train.py makes for these parameters, made here."""
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import ElasticNet
    from sklearn.model_selection import train_test_split

    x, y = load_diabetes(return_X_y=True, as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=42)
    model = ElasticNet(alpha=alpha, l1_ratio=l1_ratio, max_iter=max_iter, random_state=42)
    model.fit(x_train, y_train)
    return model, x_test, y_test


def _check_run(client: MlflowClient, run_id: str, experiment_name: str, alpha: str, l1_ratio: str,
               max_iter: str, tmp_path: Path):
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == client.get_experiment_by_name(experiment_name).experiment_id
    # Cairn logged the entry point's parameters; train.py added two of its own.
    assert run.data.params == {
        "alpha": alpha, "l1_ratio": l1_ratio, "max_iter": max_iter, "n_train": "331", "n_test": "111",
    }
    tags = run.data.tags
    assert tags["mlflow.source.type"] == "PROJECT"
    assert tags["mlflow.project.entryPoint"] == "main"
    assert tags["mlflow.project.backend"] == "local"
    assert tags["cairn.project.exitCode"] == "0"
    assert json.loads(tags["cairn.project.handle"])["backend"] == "local"

    model, x_test, y_test = _expected(float(alpha), float(l1_ratio), int(max_iter))
    predicted = model.predict(x_test)
    rmse = float(np.sqrt(np.mean((y_test - predicted) ** 2)))
    assert run.data.metrics["rmse"] == pytest.approx(rmse, rel=1e-9)
    assert set(run.data.metrics) == {"rmse", "mae", "r2"}

    # The artifact, and the model: logged against this run, loadable, predicting as trained.
    assert [a.path for a in client.list_artifacts(run_id)] == ["coefficients.json"]
    local = client.download_artifacts(run_id, "coefficients.json", str(tmp_path))
    coefficients = json.loads(Path(local).read_text())
    assert coefficients == pytest.approx(dict(zip(x_test.columns, model.coef_.tolist())))
    models = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert [m.source_run_id for m in models] == [run_id]
    loaded = mlflow.sklearn.load_model(f"models:/{models[0].model_id}")
    np.testing.assert_allclose(loaded.predict(x_test), predicted, rtol=1e-12)
    return tags


def test_the_sklearn_project_logs_params_metrics_and_a_model_into_its_run(server, tmp_path):
    client = MlflowClient()
    name = unique("project")
    run_id, stdout = _cairn_run(
        server, tmp_path, str(EXAMPLE), "-P", "alpha=0.3", "-P", "max_iter=500",
        "--experiment-name", name,
    )
    assert "rmse=" in stdout, stdout
    tags = _check_run(client, run_id, name, "0.3", "0.1", "500", tmp_path)
    # What `mlflow run` records for a local directory: `file://<work tree>#<subdir>` inside Git.
    from mlflow.tracking._tracking_service.utils import _get_git_url_if_present

    assert tags["mlflow.source.name"] == _get_git_url_if_present(str(EXAMPLE))
    assert "mlflow.project.env" not in tags  # as MLflow: not set for the local environment


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.com",
               GIT_COMMITTER_NAME="t", GIT_COMMITTER_EMAIL="t@example.com")
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def test_the_sklearn_project_from_a_git_repository_at_a_commit_and_subdirectory(server, tmp_path):
    # The example under `projects/sklearn`; the second commit changes alpha's default.
    repo = tmp_path / "repo"
    sub = repo / "projects" / "sklearn"
    shutil.copytree(EXAMPLE, sub, ignore=shutil.ignore_patterns("__pycache__"))
    _git(repo, "init", "--quiet", "-b", "main")
    _git(repo, "add", ".")
    _git(repo, "commit", "--quiet", "-m", "first")
    first = _git(repo, "rev-parse", "HEAD")
    spec = (sub / "MLproject").read_text()
    (sub / "MLproject").write_text(spec.replace("alpha: {type: float, default: 0.5}",
                                                "alpha: {type: float, default: 0.9}"))
    _git(repo, "commit", "--quiet", "-am", "second")

    client = MlflowClient()
    name = unique("project-git")
    url = f"file://{repo}"
    uri = f"{url}#projects/sklearn"
    run_id, _ = _cairn_run(server, tmp_path, uri, "--version", first, "--experiment-name", name)
    tags = _check_run(client, run_id, name, "0.5", "0.1", "1000", tmp_path)
    assert tags["mlflow.source.name"] == uri
    assert tags["mlflow.source.git.commit"] == first
    assert tags["mlflow.source.git.repoURL"] == url
