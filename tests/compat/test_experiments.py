"""Experiments through MlflowClient: create, get, rename, delete/restore, tags, search."""

from __future__ import annotations

import time

import pytest
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

from helpers import raises_mlflow, unique


def now_ms() -> int:
    return int(time.time() * 1000)


def artifact_location_of(server, experiment_id: str) -> str:
    """Where a new experiment's artifacts go: `<default-artifact-root>/<id>` (api.md §1.1).
    The suite's server gets a plain local path as its root, which MLflow keeps as a path."""
    return f"{server.artifact_root}/{experiment_id}"


def test_create_get_and_get_by_name(client, server):
    name = unique("exp")
    before = now_ms()
    exp_id = client.create_experiment(name, tags={"team": "vision", "empty": ""})
    after = now_ms()

    assert isinstance(exp_id, str) and exp_id.isdigit()
    exp = client.get_experiment(exp_id)
    assert exp.experiment_id == exp_id
    assert exp.name == name
    assert exp.lifecycle_stage == "active"
    assert exp.artifact_location == artifact_location_of(server, exp_id)
    assert exp.tags == {"team": "vision", "empty": ""}
    assert before <= exp.creation_time <= after
    assert exp.creation_time <= exp.last_update_time <= after

    by_name = client.get_experiment_by_name(name)
    assert by_name.experiment_id == exp_id
    assert by_name.name == name
    assert by_name.tags == exp.tags


def test_create_with_artifact_location(client, server):
    location = f"{server.artifact_root}/custom-{unique()}"
    exp_id = client.create_experiment(unique("exp"), artifact_location=location)
    assert client.get_experiment(exp_id).artifact_location == location


def test_relative_artifact_location_is_made_absolute_on_the_server(client, server):
    # MLflow resolves it against the server's working directory (the suite starts the server
    # in its workdir).
    location = unique("my_location")
    exp_id = client.create_experiment(unique("exp"), artifact_location=location)
    assert client.get_experiment(exp_id).artifact_location == str(server.workdir / location)


def test_default_experiment_exists(client):
    default = client.get_experiment("0")
    assert default.name == "Default"
    assert default.lifecycle_stage == "active"
    assert client.get_experiment_by_name("Default").experiment_id == "0"


def test_missing_experiment(client):
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST", "No Experiment with id=987654321 exists"):
        client.get_experiment("987654321")
    # The client turns RESOURCE_DOES_NOT_EXIST from get-by-name into None.
    assert client.get_experiment_by_name(unique("never-created")) is None


def test_duplicate_name_is_resource_already_exists(client):
    name = unique("exp")
    client.create_experiment(name)
    with raises_mlflow("RESOURCE_ALREADY_EXISTS", name):
        client.create_experiment(name)


def test_duplicate_of_deleted_experiment_name_is_refused(client):
    name = unique("exp")
    client.delete_experiment(client.create_experiment(name))
    with raises_mlflow("RESOURCE_ALREADY_EXISTS"):
        client.create_experiment(name)


def test_invalid_names(client):
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.create_experiment("")
    with raises_mlflow("INVALID_PARAMETER_VALUE", "exceeds the maximum length of 500"):
        client.create_experiment("x" * 501)
    # 500 characters is allowed.
    long_name = unique("x") + "y" * (500 - len(unique("x")))
    assert len(long_name) == 500
    assert client.get_experiment(client.create_experiment(long_name)).name == long_name


def test_rename(client):
    exp_id = client.create_experiment(unique("exp"))
    created = client.get_experiment(exp_id)
    new_name = unique("renamed")
    client.rename_experiment(exp_id, new_name)

    exp = client.get_experiment(exp_id)
    assert exp.name == new_name
    assert exp.last_update_time >= created.last_update_time
    assert client.get_experiment_by_name(new_name).experiment_id == exp_id
    assert client.get_experiment_by_name(created.name) is None


def test_rename_to_taken_name_is_refused(client):
    taken = unique("exp")
    client.create_experiment(taken)
    name = unique("exp")
    exp_id = client.create_experiment(name)
    with pytest.raises(MlflowException) as info:
        client.rename_experiment(exp_id, taken)
    # MLflow's SQL store lets the database's UNIQUE constraint answer: BAD_REQUEST with the SQL
    # error text. RESOURCE_ALREADY_EXISTS says the same thing properly; both are HTTP 400.
    assert info.value.error_code in ("RESOURCE_ALREADY_EXISTS", "BAD_REQUEST")
    assert client.get_experiment(exp_id).name == name


def test_rename_deleted_experiment_is_refused(client):
    """MLflow answers INVALID_STATE with HTTP 500, which the client retries and then reports as
    a failed request; test_wire checks the error body itself."""
    name = unique("exp")
    exp_id = client.create_experiment(name)
    client.delete_experiment(exp_id)
    with pytest.raises(MlflowException):
        client.rename_experiment(exp_id, unique("renamed"))
    assert client.get_experiment(exp_id).name == name


def test_delete_and_restore_cascade_to_runs(client):
    exp_id = client.create_experiment(unique("exp"))
    run = client.create_run(exp_id)
    run_id = run.info.run_id

    client.delete_experiment(exp_id)
    exp = client.get_experiment(exp_id)  # still readable
    assert exp.lifecycle_stage == "deleted"
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs([exp_id]) == []
    deleted = client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)
    assert [r.info.run_id for r in deleted] == [run_id]

    # A deleted experiment can be neither deleted again nor given new runs.
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.delete_experiment(exp_id)
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.create_run(exp_id)

    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    assert [r.info.run_id for r in client.search_runs([exp_id])] == [run_id]
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.restore_experiment(exp_id)  # only a deleted experiment can be restored


def test_delete_missing_experiment(client):
    with raises_mlflow("RESOURCE_DOES_NOT_EXIST"):
        client.delete_experiment("987654322")


def test_experiment_tags(client):
    exp_id = client.create_experiment(unique("exp"))
    client.set_experiment_tag(exp_id, "stage", "dev")
    client.set_experiment_tag(exp_id, "owner", "ana")
    client.set_experiment_tag(exp_id, "stage", "prod")  # overwrites
    client.set_experiment_tag(exp_id, "long", "v" * 20000)  # the limit, not truncated
    assert client.get_experiment(exp_id).tags == {
        "stage": "prod",
        "owner": "ana",
        "long": "v" * 20000,
    }

    client.delete_experiment_tag(exp_id, "owner")
    assert client.get_experiment(exp_id).tags == {"stage": "prod", "long": "v" * 20000}

    with raises_mlflow("RESOURCE_DOES_NOT_EXIST", "No tag with name: owner"):
        client.delete_experiment_tag(exp_id, "owner")
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.set_experiment_tag(exp_id, "too-long", "v" * 20001)
    with raises_mlflow("INVALID_PARAMETER_VALUE", "Names may only contain"):
        client.set_experiment_tag(exp_id, "bad!key", "v")


def _search_names(client, **kwargs) -> list[str]:
    return [e.name for e in client.search_experiments(**kwargs)]


def _make_family(client, size: int) -> tuple[str, list[str], list[str]]:
    """`size` experiments sharing a fresh prefix; returns (prefix, names, ids) in creation order."""
    prefix = unique("fam")
    names = [f"{prefix}-{i:02d}" for i in range(size)]
    ids = [
        client.create_experiment(n, tags={"idx": str(i), "parity": "odd" if i % 2 else "even"})
        for i, n in enumerate(names)
    ]
    return prefix, names, ids


def test_search_experiments_filters(client):
    prefix, names, ids = _make_family(client, 4)
    scope = f"name LIKE '{prefix}-%'"

    assert sorted(_search_names(client, filter_string=scope)) == names
    assert _search_names(client, filter_string=f"name = '{names[2]}'") == [names[2]]
    assert sorted(_search_names(client, filter_string=f"{scope} AND name != '{names[2]}'")) == [
        names[0],
        names[1],
        names[3],
    ]
    assert sorted(_search_names(client, filter_string=f"name ILIKE '{prefix.upper()}-%'")) == names
    assert (
        _search_names(client, filter_string=f"name LIKE '{prefix.upper()}-%'") == []
    )  # LIKE is case-sensitive
    assert sorted(_search_names(client, filter_string=f"{scope} AND tags.parity = 'odd'")) == [
        names[1],
        names[3],
    ]
    assert sorted(_search_names(client, filter_string=f"{scope} AND tags.parity != 'odd'")) == [
        names[0],
        names[2],
    ]
    assert sorted(_search_names(client, filter_string=f"{scope} AND tags.idx LIKE '%3'")) == [
        names[3]
    ]
    assert sorted(_search_names(client, filter_string=f"{scope} AND tags.parity ILIKE 'EV%'")) == [
        names[0],
        names[2],
    ]
    assert _search_names(client, filter_string=f"{scope} AND tags.missing IS NOT NULL") == []
    assert sorted(_search_names(client, filter_string=f"{scope} AND tags.missing IS NULL")) == names
    assert sorted(
        _search_names(client, filter_string=f"attribute.experiment_id IN ('{ids[0]}', '{ids[3]}')")
    ) == [names[0], names[3]]
    assert sorted(
        _search_names(
            client, filter_string=f"{scope} AND experiment_id NOT IN ('{ids[0]}', '{ids[3]}')"
        )
    ) == [names[1], names[2]]

    created = [client.get_experiment(i).creation_time for i in ids]
    newer = _search_names(client, filter_string=f"{scope} AND creation_time >= {created[0]}")
    assert sorted(newer) == names
    assert _search_names(client, filter_string=f"{scope} AND creation_time < {created[0]}") == []
    assert (
        _search_names(
            client, filter_string=f"{scope} AND last_update_time > {max(created) + 10**9}"
        )
        == []
    )


def test_search_experiments_order_by(client):
    prefix, names, ids = _make_family(client, 5)
    scope = f"name LIKE '{prefix}-%'"
    assert _search_names(client, filter_string=scope, order_by=["name ASC"]) == names
    assert _search_names(client, filter_string=scope, order_by=["name DESC"]) == names[::-1]
    by_id = [
        e.experiment_id
        for e in client.search_experiments(filter_string=scope, order_by=["experiment_id DESC"])
    ]
    assert by_id == sorted(ids, key=int, reverse=True)  # ids compare as integers
    by_id = [
        e.experiment_id
        for e in client.search_experiments(filter_string=scope, order_by=["experiment_id"])
    ]
    assert by_id == sorted(ids, key=int)
    # Default order: creation_time DESC, then experiment_id; the family was created in order.
    default = [e.experiment_id for e in client.search_experiments(filter_string=scope)]
    created = {i: client.get_experiment(i).creation_time for i in ids}
    assert [created[i] for i in default] == sorted(created.values(), reverse=True)


def test_search_experiments_view_type(client):
    prefix, names, ids = _make_family(client, 3)
    scope = f"name LIKE '{prefix}-%'"
    client.delete_experiment(ids[1])
    assert sorted(_search_names(client, filter_string=scope)) == [names[0], names[2]]
    assert sorted(_search_names(client, filter_string=scope, view_type=ViewType.ACTIVE_ONLY)) == [
        names[0],
        names[2],
    ]
    assert _search_names(client, filter_string=scope, view_type=ViewType.DELETED_ONLY) == [names[1]]
    assert sorted(_search_names(client, filter_string=scope, view_type=ViewType.ALL)) == names


def test_search_experiments_pagination(client):
    prefix, names, _ = _make_family(client, 7)
    scope = f"name LIKE '{prefix}-%'"
    pages, token = [], None
    while True:
        page = client.search_experiments(
            filter_string=scope, max_results=3, order_by=["name"], page_token=token
        )
        pages.append([e.name for e in page])
        token = page.token
        if not token:
            break
        assert len(pages) < 10, "pagination does not end"
    assert pages == [names[0:3], names[3:6], names[6:7]]


def test_search_experiments_bad_filter(client):
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.search_experiments(filter_string="name = unquoted")
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.search_experiments(filter_string="metrics.x > 1")  # no metrics on experiments
    with raises_mlflow("INVALID_PARAMETER_VALUE"):
        client.search_experiments(max_results=50001)
