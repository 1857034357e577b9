"""`cairn models serve` on ONNX models the official client logs (`mlflow.onnx.log_model` of
skl2onnx conversions and of graphs built with `onnx.helper`): every input format MLflow's
scoring server takes, batch sizes 1, 7 and 1000, predictions compared with onnxruntime's
(`mlflow.pyfunc.load_model(...).predict`)."""

from __future__ import annotations

import io
import json
import os
import subprocess

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

from helpers import unique

pytestmark = pytest.mark.cairn_only

BATCHES = [1, 7, 1000]


def _command(model_uri: str, server) -> tuple[list[str], dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["MLFLOW_TRACKING_URI"] = server.url
    cmd = [os.environ["CAIRN_BIN"], "models", "serve", "-m", model_uri, "-p", "0", "--env-manager", "local"]
    return cmd, env


def _serve(model_uri: str, server) -> tuple[subprocess.Popen, str]:
    cmd, env = _command(model_uri, server)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    prefix = "Cairn is serving the model on "
    if not line.startswith(prefix):
        proc.kill()
        raise AssertionError(f"unexpected first line {line!r}: {proc.stderr.read()}")
    return proc, line[len(prefix):].strip()


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=60)


def _data(n: int = 1000):
    from sklearn.datasets import make_classification

    x, y = make_classification(n_samples=n, n_features=4, random_state=0)
    return x.astype(np.float32), y


def _post(url: str, body, content_type: str = "application/json") -> requests.Response:
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    return requests.post(f"{url}/invocations", data=body, headers={"Content-Type": content_type}, timeout=120)


def _assert_tensors(got: dict, expected: dict) -> None:
    """`{"predictions": {output: nested list}}` against onnxruntime's `{output: array}`."""
    assert sorted(got) == sorted(expected), (sorted(got), sorted(expected))
    for name, want in expected.items():
        want = np.asarray(want)
        have = np.asarray(got[name]).reshape(want.shape)
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6, err_msg=name)


def _assert_records(got: list, expected: dict, n: int) -> None:
    """DataFrame answers: one record per row; an output of one value per row is that value (as
    MLflow's ONNX flavor flattens it into a column), a wider one the row's list."""
    assert isinstance(got, list) and len(got) == n, got if not isinstance(got, list) else len(got)
    for name, want in expected.items():
        want = np.asarray(want).reshape(n, -1)
        if want.shape[1] == 1:
            have = np.asarray([r[name] for r in got])
            np.testing.assert_allclose(have, want[:, 0], rtol=1e-5, atol=1e-6, err_msg=name)
        else:
            have = np.asarray([r[name] for r in got])
            np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-6, err_msg=name)


def _table_bodies(df: pd.DataFrame):
    """The DataFrame as every table format: (name, body, content type)."""
    yield "dataframe_split", '{"dataframe_split": ' + df.to_json(orient="split") + "}", "application/json"
    yield "dataframe_records", '{"dataframe_records": ' + df.to_json(orient="records") + "}", "application/json"
    yield "csv", df.to_csv(), "text/csv"
    buf = io.BytesIO()
    df.to_parquet(buf)
    yield "parquet", buf.getvalue(), "application/vnd.apache.parquet"


def _check_all_formats(url: str, reference, x, columns=None, input_name=None) -> None:
    """Every input format at every batch size. `x` is one array (a single-input model) or a dict
    of named arrays; `columns` names the DataFrame's columns for a single array; `input_name`
    (the graph's input) is sent as `{"inputs": {name: ...}}` too when given."""
    for n in BATCHES:
        if isinstance(x, dict):
            batch = {k: v[:n] for k, v in x.items()}
            df = pd.DataFrame(batch)
        else:
            batch = x[:n]
            df = pd.DataFrame(batch, columns=columns)
        expected = reference.predict(batch)  # {output name: array}
        if isinstance(batch, dict):
            tensor_bodies = [
                ("inputs dict", {"inputs": {k: v.tolist() for k, v in batch.items()}}),
                ("instances records", {"instances": df.to_dict(orient="records")}),
            ]
        else:
            tensor_bodies = [
                ("inputs list", {"inputs": batch.tolist()}),
                ("instances", {"instances": batch.tolist()}),
            ]
            if input_name is not None:
                tensor_bodies.append(("inputs dict", {"inputs": {input_name: batch.tolist()}}))
        for label, body in tensor_bodies:
            r = _post(url, body)
            assert r.status_code == 200, (label, n, r.text)
            _assert_tensors(r.json()["predictions"], expected)
        for label, body, content_type in _table_bodies(df):
            r = _post(url, body, content_type)
            assert r.status_code == 200, (label, n, r.text)
            _assert_records(r.json()["predictions"], expected, n)


def _skl2onnx(kind: str, x, y):
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression

    no_zipmap = None
    if kind == "linear_regression":
        model = LinearRegression().fit(x, y.astype(np.float32))
    elif kind == "logistic_regression":
        model, no_zipmap = LogisticRegression().fit(x, y), True
    elif kind == "random_forest":
        model, no_zipmap = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0).fit(x, y), True
    else:
        model = GradientBoostingRegressor(n_estimators=10, max_depth=3, random_state=0).fit(x, y)
    options = {id(model): {"zipmap": False}} if no_zipmap else None
    return to_onnx(model, x[:1], options=options)


@pytest.mark.parametrize("kind", ["linear_regression", "logistic_regression", "random_forest"])
def test_sklearn_onnx_models_are_served_as_onnxruntime_predicts(server, kind):
    """skl2onnx conversions (linear models, a tree ensemble with zipmap off) logged with a
    NumPy input example: every format, every batch size."""
    x, y = _data()
    onx = _skl2onnx(kind, x, y)
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onx, name="m", input_example=x[:2])
    reference = mlflow.pyfunc.load_model(info.model_uri)
    proc, url = _serve(info.model_uri, server)
    try:
        _check_all_formats(url, reference, x, ["a", "b", "c", "d"], onx.graph.input[0].name)
        # A wrong shape: MLflow's error shape.
        r = _post(url, {"inputs": [[1.0, 2.0]]})
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
    finally:
        _stop(proc)


def test_a_column_signature_classifier_answers_where_mlflow_cannot(server):
    """A classifier logged with a DataFrame example has the 4-column signature; MLflow fails to
    score it (it puts `label` and `probabilities` of different lengths into one table): Cairn
    answers each row's label and probabilities. Tensors are refused for a column signature."""
    x, y = _data()
    onx = _skl2onnx("logistic_regression", x, y)
    from mlflow.models import infer_signature

    columns = ["a", "b", "c", "d"]
    signature = infer_signature(pd.DataFrame(x[:2], columns=columns))
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onx, name="m", signature=signature)
    assert mlflow.models.get_model_info(info.model_uri).signature.inputs.input_names() == columns
    import onnxruntime

    session = onnxruntime.InferenceSession(onx.SerializeToString())
    names = [o.name for o in session.get_outputs()]
    proc, url = _serve(info.model_uri, server)
    try:
        for n in BATCHES:
            expected = dict(zip(names, session.run(None, {session.get_inputs()[0].name: x[:n]})))
            # Columns are matched by name: a different order and an extra column change nothing.
            df = pd.DataFrame(x[:n], columns=columns)[["d", "b", "a", "c"]].assign(extra=1)
            for label, body, content_type in _table_bodies(df):
                r = _post(url, body, content_type)
                assert r.status_code == 200, (label, n, r.text)
                _assert_records(r.json()["predictions"], expected, n)
        r = _post(url, {"inputs": x[:2].tolist()})
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
        r = _post(url, {"dataframe_records": [{"a": 1.0, "b": 2.0, "c": 3.0}]})
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
    finally:
        _stop(proc)


def _mlp():
    """A 4-8-3 perceptron (MatMul, Add, Relu, Softmax) built with `onnx.helper`."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(size=(4, 8)).astype(np.float32), rng.normal(size=8).astype(np.float32)
    w2, b2 = rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h"]),
        helper.make_node("MatMul", ["h", "w2"], ["z0"]),
        helper.make_node("Add", ["z0", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 3]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3]),
        ],
        [numpy_helper.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_an_onnx_helper_mlp_with_a_tensor_signature(server):
    """A graph built with `onnx.helper`, logged with an explicit (unnamed) tensor signature."""
    from mlflow.models import infer_signature

    x, _ = _data()
    onx = _mlp()
    reference_outputs = {"probabilities": np.zeros((2, 3), np.float32), "logits": np.zeros((2, 3), np.float32)}
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onx, name="m", signature=infer_signature(x[:2], reference_outputs))
    signature = mlflow.models.get_model_info(info.model_uri).signature
    assert signature.inputs.is_tensor_spec()
    reference = mlflow.pyfunc.load_model(info.model_uri)
    proc, url = _serve(info.model_uri, server)
    try:
        _check_all_formats(url, reference, x, ["a", "b", "c", "d"])
    finally:
        _stop(proc)


def _two_inputs():
    """`y = 2a + b` and `p = a * b` over two named 1-D inputs (`onnx.helper`)."""
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Mul", ["a", "two"], ["a2"]),
        helper.make_node("Add", ["a2", "b"], ["y"]),
        helper.make_node("Mul", ["a", "b"], ["p"]),
    ]
    graph = helper.make_graph(
        nodes,
        "two_inputs",
        [
            helper.make_tensor_value_info("a", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("b", TensorProto.FLOAT, ["batch"]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch"]),
            helper.make_tensor_value_info("p", TensorProto.FLOAT, ["batch"]),
        ],
        [numpy_helper.from_array(np.array(2.0, np.float32), "two")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_a_two_input_model_takes_named_inputs_in_every_format(server):
    x, _ = _data()
    inputs = {"a": x[:, 0].copy(), "b": x[:, 1].copy()}
    with mlflow.start_run():
        info = mlflow.onnx.log_model(_two_inputs(), name="m", input_example={k: v[:2] for k, v in inputs.items()})
    reference = mlflow.pyfunc.load_model(info.model_uri)
    proc, url = _serve(info.model_uri, server)
    try:
        _check_all_formats(url, reference, inputs)
        r = _post(url, {"inputs": {"a": [1.0]}})
        assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE", r.text
        assert "'b'" in r.json()["message"], r.text
    finally:
        _stop(proc)


@pytest.mark.parametrize(
    "kind, operator",
    [("gradient_boosting_regressor", "TreeEnsembleRegressor"), ("zipmap_classifier", "ZipMap")],
)
def test_an_operator_tract_lacks_is_refused_naming_it(server, kind, operator):
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    x, y = _data(100)
    if kind == "zipmap_classifier":
        onx = to_onnx(LogisticRegression().fit(x, y), x[:1])  # zipmap on: a sequence of maps
    else:
        onx = _skl2onnx(kind, x, y)
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onx, name="m", input_example=x[:2])
    cmd, env = _command(info.model_uri, server)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0, done.stdout
    assert f"'{operator}'" in done.stderr and "does not implement" in done.stderr, done.stderr


def test_a_registered_alias_is_served_from_the_tracking_servers_registry(server, client):
    """`models:/name@alias` resolved and downloaded through the running cairn server."""
    x, y = _data()
    onx = _skl2onnx("linear_regression", x, y)
    name = unique("served")
    with mlflow.start_run():
        info = mlflow.onnx.log_model(onx, name="m", input_example=x[:2], registered_model_name=name)
    client.set_registered_model_alias(name, "champion", "1")
    reference = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    proc, url = _serve(f"models:/{name}@champion", server)
    try:
        r = _post(url, {"inputs": x[:7].tolist()})
        assert r.status_code == 200, r.text
        _assert_tensors(r.json()["predictions"], reference.predict(x[:7]))
        assert str(info.registered_model_version) == "1"
    finally:
        _stop(proc)
