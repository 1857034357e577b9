"""The basic-auth app (`--app-name basic-auth`) with the official client: credentials from
MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, users and grants through
`get_app_client("basic-auth", ...)` (MLflow 3.18's AuthServiceClient).

A server of its own (the session's runs without auth), started once for this module.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import mlflow
from mlflow.server import get_app_client
import pytest
import requests
from mlflow.tracking import MlflowClient

from helpers import PLUGIN, REFERENCE, ServerProcess, raises_mlflow, unique

ADMIN = ("admin", "admin-password-compat")
PASSWORD = "user-password-compat"


@pytest.fixture(scope="module")
def auth_url():
    workdir = Path(tempfile.mkdtemp(prefix="cairn-compat-auth-"))
    env = {
        "MLFLOW_AUTH_ADMIN_USERNAME": ADMIN[0],
        "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1],
        # MLflow's app needs it (CSRF); Cairn ignores it.
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "compat-secret",
        # Users and grants in a file of their own (also with `--backend jsonl`).
        "CAIRN_AUTH__DATABASE_URI": f"sqlite:///{workdir / 'auth.db'}",
    }
    process = ServerProcess(
        workdir, name="auth", env=env, extra_args=["--app-name", "basic-auth"]
    )
    process.wait_healthy()
    try:
        yield process.url
    finally:
        try:
            process.assert_clean_exit(process.terminate())
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


def as_user(monkeypatch, name: str, password: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", name)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


@pytest.fixture
def admin(monkeypatch, auth_url):
    as_user(monkeypatch, *ADMIN)
    return get_app_client("basic-auth", tracking_uri=auth_url)


@pytest.fixture
def user(admin) -> str:
    """A fresh user (password PASSWORD), created by the admin."""
    name = unique("user")
    created = admin.create_user(name, PASSWORD)
    assert created.username == name and not created.is_admin
    assert admin.get_user(name).id == created.id
    return name


def test_no_or_wrong_credentials_are_refused_with_401(auth_url, monkeypatch):
    r = requests.get(f"{auth_url}/api/2.0/mlflow/experiments/search?max_results=1", timeout=10)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"] == 'Basic realm="mlflow"'
    assert r.text.startswith("You are not authenticated.")
    # MLflow also guards /version; Cairn leaves it open, as /health.
    for path in ["/health"] if REFERENCE else ["/health", "/version"]:
        assert requests.get(f"{auth_url}{path}", timeout=10).status_code == 200
    as_user(monkeypatch, ADMIN[0], "wrong-password-1")
    with raises_mlflow("UNAUTHENTICATED"):
        MlflowClient(tracking_uri=auth_url).search_experiments()


def test_a_read_user_reads_but_every_write_is_denied(admin, user, auth_url, monkeypatch):
    client = MlflowClient(tracking_uri=auth_url)
    exp = client.create_experiment(unique("exp"))
    run = client.create_run(exp).info.run_id
    admin.grant_user_permission(user, "experiment", exp, "READ")
    as_user(monkeypatch, user, PASSWORD)
    assert client.get_experiment(exp).experiment_id == exp
    assert client.get_run(run).info.run_id == run
    for write in [
        lambda: client.set_experiment_tag(exp, "k", "v"),
        lambda: client.create_run(exp),
        lambda: client.log_metric(run, "m", 1.0),
        lambda: client.delete_run(run),
        lambda: client.delete_experiment(exp),
    ]:
        with raises_mlflow("PERMISSION_DENIED", "Permission denied"):
            write()


def test_an_edit_user_logs_but_cannot_delete(admin, user, auth_url, monkeypatch):
    exp = MlflowClient(tracking_uri=auth_url).create_experiment(unique("exp"))
    admin.grant_user_permission(user, "experiment", exp, "EDIT")
    result = admin.get_user_permission(user, "experiment", exp)
    assert (result.allowed, result.permission) == (True, "EDIT")
    as_user(monkeypatch, user, PASSWORD)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(auth_url)
    try:
        with mlflow.start_run(experiment_id=exp) as active:
            mlflow.log_param("p", 1)
            mlflow.log_metric("m", 2.0)
        run = MlflowClient(tracking_uri=auth_url).get_run(active.info.run_id)
    finally:
        mlflow.set_tracking_uri(previous)
    assert run.data.metrics == {"m": 2.0}
    if not REFERENCE:
        # Cairn records the authenticated user as the run's owner.
        assert run.info.user_id == user
        assert run.data.tags["mlflow.user"] == user
    with raises_mlflow("PERMISSION_DENIED"):
        MlflowClient(tracking_uri=auth_url).delete_run(run.info.run_id)


def test_deny_vetoes_and_searches_show_only_what_the_user_may_read(
    admin, user, auth_url, monkeypatch
):
    client = MlflowClient(tracking_uri=auth_url)
    hidden = client.create_experiment(unique("hidden"))
    shown = client.create_experiment(unique("shown"))
    admin.grant_user_permission(user, "experiment", hidden, "DENY")
    for exp in (hidden, shown):
        client.create_run(exp)
    as_user(monkeypatch, user, PASSWORD)
    with raises_mlflow("PERMISSION_DENIED"):
        client.get_experiment(hidden)
    ids = {e.experiment_id for e in client.search_experiments(max_results=1000)}
    assert shown in ids and hidden not in ids
    runs = client.search_runs([hidden, shown])
    assert {r.info.experiment_id for r in runs} == {shown}
    # Revoked: back to the default (READ).
    as_user(monkeypatch, *ADMIN)
    admin.revoke_user_permission(user, "experiment", hidden)
    as_user(monkeypatch, user, PASSWORD)
    assert client.get_experiment(hidden).experiment_id == hidden


def test_creators_manage_what_they_create(admin, user, auth_url, monkeypatch):
    as_user(monkeypatch, user, PASSWORD)
    client = MlflowClient(tracking_uri=auth_url)
    exp = client.create_experiment(unique("own"))
    client.delete_experiment(exp)
    if PLUGIN:
        return  # the jsonl store has no model registry
    client.create_registered_model(name := unique("model"))
    client.set_registered_model_tag(name, "k", "v")
    as_user(monkeypatch, *ADMIN)
    assert admin.get_user_permission(user, "registered_model", name).permission == "MANAGE"


def test_only_admins_manage_users(admin, user, auth_url, monkeypatch):
    admin.update_user_password(user, "changed-password-1")
    as_user(monkeypatch, user, PASSWORD)
    with raises_mlflow("UNAUTHENTICATED"):
        MlflowClient(tracking_uri=auth_url).search_experiments()
    as_user(monkeypatch, user, "changed-password-1")
    own = get_app_client("basic-auth", tracking_uri=auth_url)
    with raises_mlflow("PERMISSION_DENIED"):
        own.create_user(unique("other"), PASSWORD)
    as_user(monkeypatch, *ADMIN)
    admin.update_user_admin(user, True)
    assert admin.get_user(user).is_admin
    admin.delete_user(user)
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        admin.get_user(user)


def test_roles_grant_and_a_deny_beats_a_roles_grant(admin, user, auth_url, monkeypatch):
    client = MlflowClient(tracking_uri=auth_url)
    shared = client.create_experiment(unique("shared"))
    vetoed = client.create_experiment(unique("vetoed"))
    role = admin.create_role("default", unique("editors"), description="team")
    for exp in (shared, vetoed):
        added = admin.add_role_permission(role.id, "experiment", exp, "EDIT")
        assert (added.resource_pattern, added.permission) == (exp, "EDIT")
    assignment = admin.assign_role(user, role.id)
    assert assignment.role_id == role.id
    assert [r.id for r in admin.list_user_roles(user)] == [role.id]
    assert len(admin.get_role(role.id).permissions) == 2
    admin.grant_user_permission(user, "experiment", vetoed, "DENY")
    as_user(monkeypatch, user, PASSWORD)
    client.set_experiment_tag(shared, "k", "v")
    with raises_mlflow("PERMISSION_DENIED"):
        client.set_experiment_tag(vetoed, "k", "v")
    as_user(monkeypatch, *ADMIN)
    admin.unassign_role(user, role.id)
    admin.delete_role(role.id)
