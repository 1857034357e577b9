"""`cairn models serve` on ONNX models the official client logs (`mlflow.onnx.log_model` of
skl2onnx conversions): requests as `mlflow models predict` sends them, predictions compared
with onnxruntime's (`mlflow.pyfunc.load_model(...).predict`)."""

from __future__ import annotations

import os
import subprocess

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

pytestmark = pytest.mark.cairn_only


def _serve(model_uri: str, server) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["MLFLOW_TRACKING_URI"] = server.url
    proc = subprocess.Popen(
        [os.environ["CAIRN_BIN"], "models", "serve", "-m", model_uri, "-p", "0", "--env-manager", "local"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    prefix = "Cairn is serving the model on "
    if not line.startswith(prefix):
        proc.kill()
        raise AssertionError(f"unexpected first line {line!r}: {proc.stderr.read()}")
    return proc, line[len(prefix):].strip()


def _data():
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=200, n_features=4, random_state=0)
    return x.astype(np.float32), y


@pytest.mark.parametrize("kind", ["linear_regression", "logistic_regression"])
def test_official_onnx_models_are_served_as_onnxruntime_predicts(server, kind):
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression, LogisticRegression

    x, y = _data()
    if kind == "linear_regression":
        model = LinearRegression().fit(x, y.astype(np.float32))
        onx = to_onnx(model, x[:1])
    else:
        model = LogisticRegression().fit(x, y)
        onx = to_onnx(model, x[:1], options={id(model): {"zipmap": False}})
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onx, name="m", input_example=x[:2])
    reference = mlflow.pyfunc.load_model(info.model_uri)
    proc, url = _serve(info.model_uri, server)
    try:
        for n in [1, 7, 200]:
            batch = x[:n]
            expected = reference.predict(batch)  # {output name: array}
            r = requests.post(
                f"{url}/invocations",
                json={"inputs": batch.tolist()},
                headers={"Content-Type": "application/json"},
                timeout=60,
            )
            assert r.status_code == 200, r.text
            got = r.json()["predictions"]
            assert sorted(got) == sorted(expected), (got.keys(), expected.keys())
            for name, want in expected.items():
                have = np.asarray(got[name]).reshape(np.asarray(want).shape)
                np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6)
        # A DataFrame request, as `mlflow models predict` sends one.
        df = pd.DataFrame(x[:5], columns=["a", "b", "c", "d"])
        r = requests.post(
            f"{url}/invocations",
            data='{"dataframe_split": ' + df.to_json(orient="split") + "}",
            headers={"Content-Type": "application/json"},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        assert len(r.json()["predictions"]) == 5
        # A wrong shape: MLflow's error shape.
        r = requests.post(f"{url}/invocations", json={"inputs": [[1.0, 2.0]]}, timeout=60)
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
    finally:
        proc.terminate()
        proc.wait(timeout=60)
