"""The model registry with the official client: registered models, versions, tags, stages,
aliases, searches and download URIs, and end to end from `log_model(...,
registered_model_name=...)` to `pyfunc.load_model("models:/...")` for scikit-learn and ONNX."""

from __future__ import annotations

import os
import subprocess

import numpy as np
import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException

from helpers import unique


def test_registered_model_crud_tags_and_search(client):
    name = unique("reg")
    m = client.create_registered_model(name, tags={"team": "a"}, description="first")
    assert m.name == name and m.description == "first" and m.tags == {"team": "a"}
    with pytest.raises(MlflowException, match="already exists"):
        client.create_registered_model(name)
    client.update_registered_model(name, description="second")
    assert client.get_registered_model(name).description == "second"
    client.set_registered_model_tag(name, "k", "v")
    client.delete_registered_model_tag(name, "team")
    assert client.get_registered_model(name).tags == {"k": "v"}
    renamed = name + "-renamed"
    client.rename_registered_model(name, renamed)
    with pytest.raises(MlflowException) as e:
        client.get_registered_model(name)
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    prefix = unique("srch")
    for i in range(3):
        client.create_registered_model(f"{prefix}-{i}", tags={"i": str(i)})
    found = client.search_registered_models(filter_string=f"name LIKE '{prefix}-%'")
    assert sorted(m.name for m in found) == [f"{prefix}-{i}" for i in range(3)]
    page = client.search_registered_models(
        filter_string=f"name LIKE '{prefix}-%'", max_results=2, order_by=["name DESC"]
    )
    assert [m.name for m in page] == [f"{prefix}-2", f"{prefix}-1"]
    rest = client.search_registered_models(
        filter_string=f"name LIKE '{prefix}-%'",
        max_results=2,
        order_by=["name DESC"],
        page_token=page.token,
    )
    assert [m.name for m in rest] == [f"{prefix}-0"] and not rest.token
    tagged = client.search_registered_models(filter_string=f"tags.i = '1' AND name LIKE '{prefix}%'")
    assert [m.name for m in tagged] == [f"{prefix}-1"]

    client.delete_registered_model(renamed)
    assert client.search_registered_models(filter_string=f"name = '{renamed}'") == []


def _run_with_file(tmp_path) -> tuple[str, str]:
    with mlflow.start_run() as run:
        f = tmp_path / "model.txt"
        f.write_text("weights")
        mlflow.log_artifact(str(f), artifact_path="model")
    return run.info.run_id, run.info.artifact_uri


def test_versions_stages_aliases_and_download_uri(client, server, tmp_path):
    name = unique("ver")
    client.create_registered_model(name)
    run_id, root = _run_with_file(tmp_path)
    v1 = client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    v2 = client.create_model_version(name, f"{root}/model", run_id=run_id, tags={"t": "x"})
    assert (v1.version, v2.version) == ("1", "2")
    # MLflow keeps a runs:/ source as the download URI; get-artifact resolves it.
    assert client.get_model_version_download_uri(name, "1") == f"runs:/{run_id}/model"
    r = requests.get(
        f"{server.url}/model-versions/get-artifact",
        params={"name": name, "version": "1", "path": "model.txt"},
        timeout=30,
    )
    assert r.status_code == 200 and r.content == b"weights"
    client.update_model_version(name, "1", description="d")
    assert client.get_model_version(name, "1").description == "d"
    client.set_model_version_tag(name, "1", "k", "v")
    client.delete_model_version_tag(name, "2", "t")
    assert client.get_model_version(name, "2").tags == {}

    client.transition_model_version_stage(name, "1", "Staging")
    client.transition_model_version_stage(name, "2", "staging", archive_existing_versions=True)
    assert client.get_model_version(name, "1").current_stage == "Archived"
    latest = client.get_latest_versions(name, stages=["Staging"])
    assert [v.version for v in latest] == ["2"]

    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "champion", "2")
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert client.get_registered_model(name).aliases == {"champion": "2"}
    client.delete_registered_model_alias(name, "champion")
    with pytest.raises(MlflowException) as e:
        client.get_model_version_by_alias(name, "champion")
    assert e.value.error_code == "INVALID_PARAMETER_VALUE"

    found = client.search_model_versions(f"name = '{name}' AND tags.k = 'v'")
    assert [v.version for v in found] == ["1"]
    ordered = client.search_model_versions(f"name = '{name}'", order_by=["version_number ASC"])
    assert [v.version for v in ordered] == ["1", "2"]

    client.delete_model_version(name, "1")
    with pytest.raises(MlflowException) as e:
        client.get_model_version(name, "1")
    assert e.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_local_and_foreign_sources_are_refused(client, server, tmp_path):
    name = unique("src")
    client.create_registered_model(name)
    run_id, root = _run_with_file(tmp_path)
    for source in ["/etc/passwd", "file:///etc/passwd", f"{root}/../../../etc", "relative/path"]:
        r = requests.post(
            f"{server.url}/api/2.0/mlflow/model-versions/create",
            json={"name": name, "source": source, "run_id": run_id},
            timeout=30,
        )
        assert r.status_code == 400, (source, r.text)
        assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
        assert "Invalid model version source" in r.json()["message"]


def test_prompt_registry_register_version_alias_load_and_search(server):
    """MLflow 3's prompt registry (prompts are registered models tagged as prompts, their
    versions created with a placeholder source): register two versions, alias one, load each by
    version and alias, search; a prompt version whose source is not a placeholder is refused."""
    name = unique("prompt")
    first = mlflow.genai.register_prompt(name=name, template="Hello {{who}}", commit_message="first")
    second = mlflow.genai.register_prompt(name=name, template="Hi {{who}}!", commit_message="second")
    assert (first.version, second.version) == (1, 2)
    mlflow.genai.set_prompt_alias(name, alias="prod", version=1)
    assert mlflow.genai.load_prompt(f"prompts:/{name}@prod").format(who="a") == "Hello a"
    assert mlflow.genai.load_prompt(f"prompts:/{name}/2").format(who="b") == "Hi b!"
    assert name in [p.name for p in mlflow.genai.search_prompts(filter_string=f"name = '{name}'")]
    r = requests.post(
        f"{server.url}/api/2.0/mlflow/model-versions/create",
        json={"name": name, "source": "/etc/passwd", "tags": [{"key": "mlflow.prompt.is_prompt", "value": "true"}]},
        timeout=30,
    )
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert r.json()["message"] == (
        "Invalid prompt source: '/etc/passwd'. Prompt sources must use an MLflow placeholder."
    )


LOCAL_SOURCE_MESSAGE = (
    "Invalid model version source: '{}'. To use a local path as a model version source, the "
    "run_id request parameter has to be specified and the local path has to be contained within "
    "the artifact directory of the run specified by the run_id."
)


def test_local_source_without_run_id_is_refused_with_mlflows_message(client, server, tmp_path):
    name = unique("local")
    client.create_registered_model(name)
    _, root = _run_with_file(tmp_path)
    source = f"{root}/model"
    r = requests.post(
        f"{server.url}/api/2.0/mlflow/model-versions/create",
        json={"name": name, "source": source},
        timeout=30,
    )
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert r.json()["message"] == LOCAL_SOURCE_MESSAGE.format(source)


def test_runs_source_of_another_tracking_store_is_accepted(client):
    # MLflow compares only the two ids: the registry may be another store than the tracking one.
    name = unique("foreign")
    client.create_registered_model(name)
    mv = client.create_model_version(name, "runs:/run_id_1/model", run_id="run_id_1")
    assert (mv.source, mv.run_id) == ("runs:/run_id_1/model", "run_id_1")
    assert client.get_model_version_download_uri(name, mv.version) == "runs:/run_id_1/model"
    with pytest.raises(MlflowException):
        client.create_model_version(name, "runs:/run_id_1/model", run_id="run_id_2")


def test_version_of_a_logged_model_is_listed_in_its_tag(client, experiment_id):
    name = unique("lm")
    client.create_registered_model(name)
    model = client.create_logged_model(experiment_id=experiment_id)
    for _ in range(2):
        client.create_model_version(name, source=model.artifact_location, model_id=model.model_id)
    tag = client.get_logged_model(model.model_id).tags["mlflow.modelVersions"]
    assert tag == f'[{{"name": "{name}", "version": 1}}, {{"name": "{name}", "version": 2}}]'


def test_double_slash_is_merged_before_routing(client, server):
    r = requests.get(
        f"{server.url}//model-versions/get-artifact",
        params={"name": "model", "version": 1, "path": "../path"},
        timeout=30,
    )
    assert r.status_code == 400, r.text
    assert (r.json()["error_code"], r.json()["message"]) == ("INVALID_PARAMETER_VALUE", "Invalid path")


def test_archiving_to_an_inactive_stage_is_a_500(client, server, tmp_path):
    name = unique("arch")
    client.create_registered_model(name)
    run_id, _ = _run_with_file(tmp_path)
    client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    r = requests.post(
        f"{server.url}/api/2.0/mlflow/model-versions/transition-stage",
        json={"name": name, "version": "1", "stage": "Archived", "archive_existing_versions": True},
        timeout=30,
    )
    assert r.status_code == 500
    assert r.json()["error_code"] == "INTERNAL_ERROR"
    assert "is not an Active stage" in r.json()["message"]


def _training_data():
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=200, n_features=4, random_state=0)
    return x.astype(np.float32), y


def test_sklearn_log_model_register_and_load_by_version_stage_and_alias():
    from sklearn.linear_model import LogisticRegression

    x, y = _training_data()
    model = LogisticRegression().fit(x, y)
    name = unique("churn")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="m", registered_model_name=name)
    client = mlflow.MlflowClient()
    # The 3.18 client registers `models:/<model_id>` with the run's id beside it; the version
    # keeps the run (issue 9 §6: it came back with run_id None).
    assert client.get_model_version(name, "1").run_id == run.info.run_id
    client.set_registered_model_alias(name, "champion", "1")
    client.transition_model_version_stage(name, "1", "Production")
    expected = model.predict(x)
    for uri in [f"models:/{name}/1", f"models:/{name}/Production", f"models:/{name}@champion"]:
        loaded = mlflow.pyfunc.load_model(uri)
        np.testing.assert_array_equal(np.asarray(loaded.predict(x)), expected)


def test_onnx_log_model_register_and_load_by_alias():
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    x, y = _training_data()
    model = LinearRegression().fit(x, y.astype(np.float32))
    onx = to_onnx(model, x[:1])
    name = unique("onnx")
    with mlflow.start_run():
        mlflow.onnx.log_model(onx, name="m", registered_model_name=name)
    mlflow.MlflowClient().set_registered_model_alias(name, "champion", "1")
    expected = model.predict(x)
    for uri in [f"models:/{name}/1", f"models:/{name}@champion"]:
        loaded = mlflow.pyfunc.load_model(uri)
        got = loaded.predict(x)
        if isinstance(got, dict):  # a numpy input gives {output name: array}
            got = next(iter(got.values()))
        got = np.asarray(got.iloc[:, 0] if hasattr(got, "iloc") else got).reshape(-1)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.cairn_only
def test_cairn_cli_downloads_models_uris(client, server, tmp_path):
    name = unique("cli")
    client.create_registered_model(name)
    run_id, _ = _run_with_file(tmp_path)
    client.create_model_version(name, f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias(name, "champion", "1")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["MLFLOW_TRACKING_URI"] = server.url
    for i, uri in enumerate([f"models:/{name}@champion", f"models:/{name}/1", f"models:/{name}/latest"]):
        dst = tmp_path / f"out{i}"
        done = subprocess.run(
            [os.environ["CAIRN_BIN"], "artifacts", "download", uri, "--dst-path", str(dst)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        files = list(dst.rglob("model.txt"))
        assert [f.read_text() for f in files] == ["weights"], list(dst.rglob("*"))
