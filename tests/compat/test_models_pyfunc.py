"""`cairn models serve` on `python_function` models (issue 16): models the official client saves
(a scikit-learn classifier, a scikit-learn pipeline with a DataFrame signature, a custom
`mlflow.pyfunc.PythonModel` taking `params`) served by Cairn's pool of Python workers
(`--env-manager local`, the suite's own interpreter). Every answer is compared with what
MLflow's own scoring server code (`mlflow.pyfunc.scoring_server.invocations`, run in this
process on `mlflow.pyfunc.load_model(...)`) answers for the same request body: same status,
predictions byte for byte, errors the same JSON (same `error_code` and `message`, and a
`stack_trace` ending with the same exception); one test runs the real `mlflow models serve`
next to Cairn and compares the response bytes of every output form."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import mlflow
import numpy as np
import pandas as pd
import pytest
import requests

pytestmark = pytest.mark.cairn_only

BATCHES = [1, 7, 200]


def _serve(model_dir: str, *extra: str, workers: int = 2, env_manager: str = "local",
           path_first: str | None = None) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["PYTHON"] = sys.executable
    if path_first:
        env["PATH"] = path_first + os.pathsep + env["PATH"]
    cmd = [os.environ["CAIRN_BIN"], "models", "serve", "-m", model_dir, "-p", "0",
           "--env-manager", env_manager, "--workers", str(workers), *extra]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Drain stderr (the workers' and an environment build's output) from the start, so that a
    # chatty model or pip never blocks on a full pipe; kept for the failure message.
    stderr: list[str] = []
    drain = threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True)
    drain.start()
    line = proc.stdout.readline()
    prefix = "Cairn is serving the model on "
    if not line.startswith(prefix):
        proc.kill()
        drain.join(10)
        raise AssertionError(f"unexpected first line {line!r}: {''.join(stderr)}")
    return proc, line[len(prefix):].strip()


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=60)


def _post(url: str, body, content_type: str = "application/json") -> requests.Response:
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    return requests.post(f"{url}/invocations", data=body, headers={"Content-Type": content_type},
                         timeout=120)


def _mlflow_answer(model, body, content_type: str) -> tuple[int, str]:
    """What MLflow's scoring server answers for `body`: its status and body."""
    from mlflow.exceptions import MlflowException
    from mlflow.pyfunc import scoring_server

    if isinstance(body, str):
        body = body.encode()
    try:
        r = scoring_server.invocations(body, content_type, model, model.metadata.get_input_schema())
    except MlflowException as e:
        return e.get_http_status_code(), e.serialize_as_json()
    return r.status, r.response


def _same_as_mlflow(url: str, model, body, content_type: str = "application/json", label="") -> dict:
    """Predictions: the same bytes; errors: the same JSON but the stack trace."""
    if not isinstance(body, (str, bytes)):
        body = json.dumps(body)
    want_status, want_text = _mlflow_answer(model, body, content_type)
    r = _post(url, body, content_type)
    if want_status == 200:
        assert (r.status_code, r.text) == (want_status, want_text), label
    got, want = r.json(), json.loads(want_text)
    if "stack_trace" in want:
        # The traceback of the model's exception: its first frames are the server's own
        # (MLflow's scoring server, Cairn's worker), its last the model's and the exception.
        got_trace, want_trace = got.pop("stack_trace"), want.pop("stack_trace")
        assert got_trace.splitlines()[-1] == want_trace.splitlines()[-1], (label, got_trace)
    assert (r.status_code, got) == (want_status, want), label
    return got


def _table_bodies(df: pd.DataFrame):
    yield "dataframe_split", '{"dataframe_split": ' + df.to_json(orient="split") + "}", "application/json"
    yield "dataframe_records", '{"dataframe_records": ' + df.to_json(orient="records") + "}", "application/json"
    yield "csv", df.to_csv(), "text/csv"
    buf = io.BytesIO()
    df.to_parquet(buf)
    yield "parquet", buf.getvalue(), "application/vnd.apache.parquet"


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(n_samples=300, n_features=4, random_state=0)
    model = LogisticRegression().fit(x, y)
    path = str(tmp_path_factory.mktemp("sk") / "model")
    mlflow.sklearn.save_model(model, path, signature=mlflow.models.infer_signature(x, model.predict(x)))
    proc, url = _serve(path)
    yield x, path, url, proc
    _stop(proc)


def test_a_sklearn_classifier_answers_every_format_as_mlflow(classifier):
    x, path, url, _ = classifier
    model = mlflow.pyfunc.load_model(path)
    for n in BATCHES:
        batch = x[:n]
        for label, body in [("inputs", {"inputs": batch.tolist()}), ("instances", {"instances": batch.tolist()})]:
            got = _same_as_mlflow(url, model, body, label=f"{label} {n}")
            assert got["predictions"] == model.predict(batch).tolist()
        df = pd.DataFrame(batch, columns=["a", "b", "c", "d"])
        for label, body, ct in _table_bodies(df):
            if ct == "application/json":
                _same_as_mlflow(url, model, body, ct, label=f"{label} {n}")
            else:
                # MLflow refuses a CSV or Parquet table for a tensor signature (it casts only
                # JSON DataFrames); Cairn answers the model's predictions.
                r = _post(url, body, ct)
                assert r.status_code == 200, (label, n, r.text)
                assert r.json()["predictions"] == model.predict(batch).tolist()
    # Input the signature refuses: MLflow's own error, worded by MLflow.
    _same_as_mlflow(url, model, {"inputs": [[1, 2, 3]]}, label="wrong width")


def test_concurrent_requests_get_their_own_predictions(classifier):
    x, path, url, _ = classifier
    want = mlflow.pyfunc.load_model(path).predict(x).tolist()
    from concurrent.futures import ThreadPoolExecutor

    def one(i):
        return _post(url, {"inputs": [x[i].tolist()]}).json()["predictions"]

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(one, range(len(x))))
    assert got == [[w] for w in want]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    n = 300
    df = pd.DataFrame({
        "age": rng.integers(18, 90, n).astype("int64"),
        "income": rng.normal(50_000, 15_000, n),
        "city": rng.choice(["paris", "lyon", "nice"], n),
    })
    y = ((df["age"] > 40) ^ (df["city"] == "nice")).astype(int).map({0: "no", 1: "yes"})
    pipe = Pipeline([
        ("prep", ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                                    ("cat", OneHotEncoder(), ["city"])])),
        ("lr", LogisticRegression()),
    ]).fit(df, y)
    path = str(tmp_path_factory.mktemp("pipe") / "model")
    mlflow.sklearn.save_model(pipe, path, signature=mlflow.models.infer_signature(df, pipe.predict(df)),
                              pyfunc_predict_fn="predict_proba")
    proc, url = _serve(path)
    yield df, path, url
    _stop(proc)


def test_a_sklearn_pipeline_with_a_dataframe_signature(pipeline):
    df, path, url = pipeline
    model = mlflow.pyfunc.load_model(path)
    for n in BATCHES:
        batch = df[:n]
        for label, body, ct in _table_bodies(batch):
            r = _post(url, body, ct)
            assert r.status_code == 200, (label, n, r.text)
            np.testing.assert_allclose(np.asarray(r.json()["predictions"]), model.predict(batch),
                                       err_msg=label)
            if ct == "application/json":
                _same_as_mlflow(url, model, body, ct, label=f"{label} {n}")
    # A missing required column: MLflow's own schema enforcement refuses it, in its words.
    _same_as_mlflow(url, model, {"dataframe_records": [{"age": 30, "income": 1.0}]}, label="missing")


MODEL_CODE = textwrap.dedent('''
    import os
    import time

    import mlflow
    import pandas as pd


    class Scaled(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            params = params or {}
            if params.get("sleep"):
                if params.get("pidfile"):
                    with open(params["pidfile"], "w") as f:
                        f.write(str(os.getpid()))
                time.sleep(params["sleep"])
            if (model_input["x"] < 0).any():
                raise ValueError("negative x is not allowed")
            out = pd.DataFrame({"y": model_input["x"] * params.get("k", 1.0)})
            out["tag"] = params.get("tag", "t") + model_input["name"]
            out["pid"] = os.getpid()
            return out


    mlflow.models.set_model(Scaled())
''')


@pytest.fixture(scope="module")
def custom(tmp_path_factory):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    root = tmp_path_factory.mktemp("custom")
    code = root / "scaled.py"
    code.write_text(MODEL_CODE)
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", "x"), ColSpec("string", "name")]),
        params=ParamSchema([ParamSpec("k", "double", 1.0), ParamSpec("tag", "string", "t"),
                            ParamSpec("sleep", "double", 0.0), ParamSpec("pidfile", "string", "")]),
    )
    path = str(root / "model")
    mlflow.pyfunc.save_model(path, python_model=str(code), signature=signature)
    proc, url = _serve(path, "--timeout", "20")
    yield path, url, proc
    _stop(proc)


def _no_pid(predictions):
    return [{k: v for k, v in r.items() if k != "pid"} for r in predictions]


def test_a_custom_python_model_takes_params(custom):
    path, url, _ = custom
    model = mlflow.pyfunc.load_model(path)
    df = pd.DataFrame({"x": [1.0, 2.5, 4.0], "name": ["a", "b", "c"]})
    for params in [None, {"k": 2.0}, {"k": 0.5, "tag": "z"}]:
        want = model.predict(df, params=params)
        for label, body, ct in _table_bodies(df):
            if ct != "application/json":
                continue
            body = json.loads(body)
            if params:
                body["params"] = params
            r = _post(url, body)
            assert r.status_code == 200, (label, params, r.text)
            assert _no_pid(r.json()["predictions"]) == _no_pid(want.to_dict(orient="records"))
    # A parameter of the wrong type: MLflow's own message.
    got = _post(url, {"dataframe_records": [{"x": 1.0, "name": "a"}], "params": {"k": "big"}})
    assert got.status_code == 400, got.text
    assert got.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "k" in got.json()["message"]


def test_a_model_whose_predict_raises_answers_400_with_mlflows_message(custom):
    path, url, _ = custom
    model = mlflow.pyfunc.load_model(path)
    body = {"dataframe_records": [{"x": -1.0, "name": "a"}]}
    got = _same_as_mlflow(url, model, body, label="raises")
    assert got["error_code"] == "BAD_REQUEST"
    # The worker survived its model's exception.
    assert _post(url, {"dataframe_records": [{"x": 1.0, "name": "a"}]}).status_code == 200


def _workers(proc) -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(proc.pid)], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def test_a_worker_killed_mid_request_is_replaced(custom, tmp_path):
    path, url, proc = custom
    before = _workers(proc)
    assert len(before) == 2, before
    # A slow request occupies one worker, which writes its pid; SIGKILL it mid-call.
    pidfile = tmp_path / "pid"
    slow = {"dataframe_records": [{"x": 1.0, "name": "a"}],
            "params": {"sleep": 15.0, "pidfile": str(pidfile)}}
    result = {}
    t = threading.Thread(target=lambda: result.update(r=_post(url, slow)))
    t.start()
    while not (pidfile.exists() and pidfile.read_text()):
        time.sleep(0.1)
    victim = int(pidfile.read_text())
    assert victim in before and t.is_alive()
    os.kill(victim, signal.SIGKILL)
    t.join()
    # The in-flight request is answered with an error, not left hanging.
    assert result["r"].status_code >= 400, result["r"].text
    assert "exited while predicting" in result["r"].json()["message"]
    # A replacement starts; later requests succeed, on a new process.
    while len(_workers(proc) - {victim}) < 2:
        time.sleep(0.5)
    pids = set()
    for _ in range(20):
        r = _post(url, {"dataframe_records": [{"x": 2.0, "name": "b"}]})
        assert r.status_code == 200, r.text
        pids.add(r.json()["predictions"][0]["pid"])
    assert victim not in pids


def test_a_worker_slower_than_the_timeout_answers_504_and_is_replaced(tmp_path, custom):
    path, _, _ = custom
    proc, url = _serve(path, "--timeout", "2", workers=1)
    try:
        slow = {"dataframe_records": [{"x": 1.0, "name": "a"}], "params": {"sleep": 30.0}}
        r = _post(url, slow)
        assert r.status_code == 504
        assert r.text == "Request processing time exceeded limit"
        # The stopped worker's replacement loads the model; until then requests time out too.
        for _ in range(100):
            r = _post(url, {"dataframe_records": [{"x": 1.0, "name": "a"}]})
            if r.status_code != 504:
                break
        assert r.status_code == 200, r.text
    finally:
        _stop(proc)


def test_a_python_without_the_models_libraries_is_named(tmp_path, classifier):
    _, path, _, _ = classifier
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    # The interpreter the suite's venv was made from has no mlflow.
    cmd = [os.environ["CAIRN_BIN"], "models", "predict", "-m", path, "--env-manager", "local",
           "--python", sys._base_executable]
    r = subprocess.run(cmd, env=env, input='{"inputs": [[1, 2, 3, 4]]}', capture_output=True,
                       text=True, timeout=300)
    assert r.returncode != 0
    assert "cannot import mlflow" in r.stderr, r.stderr


HUNGRY_CODE = textwrap.dedent('''
    import mmap
    import os
    import time

    import mlflow
    import numpy as np
    import pandas as pd


    class Hungry(mlflow.pyfunc.PythonModel):
        """Allocates `mib` MiB per call: on the heap (numpy), or in a shared anonymous mapping
        (resident, but not counted by RLIMIT_DATA), held for `hold` seconds."""

        def predict(self, context, model_input, params=None):
            params = params or {}
            mib = int(params.get("mib", 0))
            kept = None
            if mib and params.get("how") == "mmap":
                kept = mmap.mmap(-1, mib << 20)
                for offset in range(0, mib << 20, 1 << 20):
                    kept[offset:offset + (1 << 20)] = b"x" * (1 << 20)
            elif mib:
                kept = np.ones(mib << 17)  # 8-byte floats
            time.sleep(float(params.get("hold", 0)))
            return pd.DataFrame({"y": model_input["x"] * 2, "pid": os.getpid()})


    mlflow.models.set_model(Hungry())
''')


@pytest.fixture(scope="module")
def hungry(tmp_path_factory):
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    root = tmp_path_factory.mktemp("hungry")
    code = root / "hungry.py"
    code.write_text(HUNGRY_CODE)
    signature = ModelSignature(
        inputs=Schema([ColSpec("double", "x")]),
        params=ParamSchema([ParamSpec("mib", "long", 0), ParamSpec("how", "string", "heap"),
                            ParamSpec("hold", "double", 0.0)]),
    )
    path = str(root / "model")
    mlflow.pyfunc.save_model(path, python_model=str(code), signature=signature)
    return path


def test_a_worker_over_its_memory_limit_is_replaced_and_its_request_answers_an_error(hungry):
    proc, url = _serve(hungry, "--worker-memory-limit", "700MiB", workers=1)
    try:
        def call(**params):
            return _post(url, {"dataframe_records": [{"x": 1.5}], "params": params})

        def pid_of(r):
            assert r.status_code == 200, r.text
            assert r.json()["predictions"][0]["y"] == 3.0
            return r.json()["predictions"][0]["pid"]

        first = pid_of(call(mib=64))
        # A heap allocation past the limit fails at once (the worker's RLIMIT_DATA): MLflow's
        # error shape, a message naming the limit, and a new worker for the next request.
        r = call(mib=2048)
        assert r.status_code == 400, r.text
        assert r.json()["error_code"] == "BAD_REQUEST"
        assert "exceeded its memory limit of 700 MiB (--worker-memory-limit)" in r.json()["message"]
        second = pid_of(call())
        assert second != first
        # Resident memory the data limit does not count (a shared mapping), held: Cairn's
        # sampling of the worker's resident size stops it.
        r = call(mib=1024, how="mmap", hold=60)
        assert r.status_code == 400, r.text
        assert r.json()["error_code"] == "BAD_REQUEST"
        message = r.json()["message"]
        assert "exceeded its memory limit of 700 MiB" in message and "resident:" in message, message
        third = pid_of(call())
        assert third not in (first, second)
        # Under the limit, the replacement works as the first worker did.
        assert pid_of(call(mib=128)) == third
    finally:
        _stop(proc)


def test_a_worker_memory_limit_that_is_not_a_size_is_named(hungry):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env["PYTHON"] = sys.executable
    cmd = [os.environ["CAIRN_BIN"], "models", "serve", "-m", hungry, "-p", "0",
           "--env-manager", "local", "--worker-memory-limit", "lots"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "--worker-memory-limit" in r.stderr and "'lots' is not a size" in r.stderr, r.stderr


def _served_in_an_environment_built_from_its_requirements(tmp_path_factory, manager: str) -> None:
    """`--env-manager virtualenv|uv`: the model's python_env.yaml and requirements.txt, as the
    official client wrote them, built into an environment (venv + pip, or uv, from the package
    index) in the environment cache shared with `cairn run` (`<storage>/envs/<manager>-<hash>`)
    and reused by later runs; the workers run there.

    The requirements name `mlflow-skinny` rather than `mlflow`: `mlflow==3.18.0` cannot be
    installed from this package index (it requires mlflow-tracing==3.18.0, which the index does
    not carry; mlflow-skinny 3.18.0, which holds `mlflow.pyfunc` and `mlflow.sklearn`, it does).
    The list is otherwise the official client's own for a scikit-learn model
    (`mlflow.sklearn.get_default_pip_requirements`) plus what its pyfunc loader and Cairn's
    worker import (numpy, pandas, pyarrow: the full mlflow wheel would bring them)."""
    import pyarrow
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    x, y = make_classification(n_samples=100, n_features=4, random_state=1)
    model = LogisticRegression().fit(x, y)
    requirements = [f"mlflow-skinny=={mlflow.__version__}",
                    *mlflow.sklearn.get_default_pip_requirements(include_skops=True),
                    f"numpy=={np.__version__}", f"pandas=={pd.__version__}",
                    f"pyarrow=={pyarrow.__version__}"]
    path = str(tmp_path_factory.mktemp(manager) / "model")
    mlflow.sklearn.save_model(model, path, signature=mlflow.models.infer_signature(x, model.predict(x)),
                              pip_requirements=requirements)
    # uv is the suite's own (tests/compat/requirements.txt installs it into this venv).
    proc, url = _serve(path, workers=1, env_manager=manager,
                       path_first=os.path.dirname(sys.executable))
    try:
        (worker,) = _workers(proc)
        environ = open(f"/proc/{worker}/environ", "rb").read().split(b"\0")
        venv = next(v for v in environ if v.startswith(b"VIRTUAL_ENV=")).decode()
        assert f"/envs/{manager}-" in venv, venv
        # The worker's libraries (numpy's extension modules, ...) are the environment's.
        env_dir = venv.split("=", 1)[1]
        maps = open(f"/proc/{worker}/maps").read()
        assert f"{env_dir}/lib/" in maps and f"{os.path.dirname(np.__file__)}/" not in maps
        loaded = mlflow.pyfunc.load_model(path)
        for body in [{"inputs": x[:7].tolist()},
                     {"dataframe_split": pd.DataFrame(x[:7]).to_dict(orient="split")}]:
            got = _same_as_mlflow(url, loaded, body)
            assert got["predictions"] == model.predict(x[:7]).tolist()
    finally:
        _stop(proc)


def test_a_model_served_in_a_virtualenv_built_from_its_requirements(tmp_path_factory):
    _served_in_an_environment_built_from_its_requirements(tmp_path_factory, "virtualenv")


def test_a_model_served_in_a_uv_environment_built_from_its_requirements(tmp_path_factory):
    _served_in_an_environment_built_from_its_requirements(tmp_path_factory, "uv")


def test_conda_environments_name_the_missing_conda(classifier):
    _, path, _, _ = classifier
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    env.pop("MLFLOW_CONDA_HOME", None)
    env.pop("CONDA_EXE", None)
    # This machine has no conda; a PATH without any directory holding one makes sure of it.
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep)
                                  if not os.path.exists(os.path.join(p, "conda")))
    cmd = [os.environ["CAIRN_BIN"], "models", "serve", "-m", path, "-p", "0", "--env-manager", "conda"]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "need the `conda` executable, which is not on the PATH" in r.stderr, r.stderr


SHAPES_CODE = textwrap.dedent('''
    import datetime
    import time

    import mlflow
    import numpy as np
    import pandas as pd


    class Shapes(mlflow.pyfunc.PythonModel):
        """Returns the output form the `kind` param names, built from the input column x."""

        def predict(self, context, model_input, params=None):
            kind = (params or {}).get("kind", "frame")
            time.sleep((params or {}).get("sleep", 0.0))
            x = model_input["x"].to_numpy()
            n = len(x)
            if kind == "frame":
                return pd.DataFrame({
                    "y": x * 1e-5,
                    "big": x * 1e16,
                    "third": x / 3,
                    "f32": (x / 10).astype(np.float32),
                    "nan": np.where(x > 1, np.nan, x),
                    "inf": np.where(x > 1, np.inf, -np.inf),
                    "n": np.arange(n, dtype=np.int64) - 2,
                    "u8": np.arange(n, dtype=np.uint8),
                    "ok": x > 1,
                    "s": [f'r\\u00e9sum\\u00e9 "{i}" \\\\ \\u20ac\\U0001F600\\t' for i in range(n)],
                    "when": pd.Timestamp("2024-02-29 13:45:01.5") + pd.to_timedelta(np.arange(n), unit="h"),
                    "day": [datetime.date(2024, 1, 1 + i) for i in range(n)],
                    # object dtype: None stays None (pandas 3's default str dtype turns it
                    # into NaN, which MLflow writes as NaN and Cairn as null).
                    "maybe": pd.Series(["a" if i % 2 else None for i in range(n)], dtype=object),
                    "half": (x / 7).astype(np.float16),
                })
            if kind == "series":
                return pd.Series(x * 0.1, name="score")
            if kind == "unnamed_series":
                return pd.Series(x.astype(np.int32))
            if kind == "matrix":
                return np.stack([x / 7, x * 1e20, x * 1e-7]).T
            if kind == "ints":
                return (x * 3).astype(np.int64).reshape(n, 1)
            if kind == "half":
                return (x / 3).astype(np.float16)
            if kind == "strings":
                return np.array([f"\\u00fc{i}" for i in range(n)])
            if kind == "list":
                return [float(v) / 3 for v in x]
            if kind == "scalar":
                return float(x.sum()) / 3
            if kind == "dict":
                return {"a": x * 2, "b": (x > 1).reshape(n, 1)}
            if kind == "datetimes":
                return np.datetime64("2024-02-29T13:45:01") + np.arange(n).astype("timedelta64[h]")
            if kind == "nanoseconds":
                return np.datetime64("2024-02-29T13:45:01", "ns") + np.arange(n).astype("timedelta64[s]")
            # Values no tensor or table carries exactly: rendered by MLflow's own code.
            if kind == "mixed":
                return [1, 2.5] * n
            if kind == "bool_int":
                return [True, 1, "a", None] * n
            if kind == "ragged":
                return [list(range(i + 1)) for i in range(n)]
            if kind == "nested_array":
                return np.array([np.arange(i + 1) / 3 for i in range(n)], dtype=object)
            if kind == "column_of_lists":
                return pd.DataFrame({"v": [[float(v), float(v) * 2] for v in x], "i": np.arange(n)})
            if kind == "records":
                return [{"z": float(v), "a": {"deep": [int(v), v / 7]}} for v in x]
            if kind == "dict_of_dicts":
                return {"z": {"b": x.tolist(), "a": int(n)}, "a": {"nan": np.nan}}
            if kind == "unsorted_dict":
                return {"b": x * 2, "a": (x > 1).reshape(n, 1)}
            if kind == "true_column":
                return pd.DataFrame({True: x, 1.5: np.arange(n), None: ["s"] * n})
            if kind == "str_nan":
                return pd.DataFrame({"s": pd.Series(["a" if i % 2 else None for i in range(n)],
                                                    dtype="str"), "x": x})
            if kind == "none":
                return None
            if kind == "raise":
                raise ValueError("a model error \u00e9")
            raise ValueError(kind)


    mlflow.models.set_model(Shapes())
''')


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_answers_are_byte_for_byte_mlflow_models_serves(tmp_path_factory):
    """The real `mlflow models serve --env-manager local` and `cairn models serve` on the same
    model, the same requests: the same status and the same response bytes, for DataFrames
    (floats in every notation, NaN, infinities, ints, bools, non-ASCII strings, timestamps,
    dates, missing strings, half floats), Series, ndarrays, lists, scalars and dicts, and the
    values the worker renders with MLflow's own code (lists mixing ints, floats, bools and
    strings; ragged and nested lists; a DataFrame column of lists; dicts of dicts; a dict out
    of name order; `True`/`1.5`/`None` column names; NaN in a pandas string column; None),
    also when concurrent requests are merged into one call; a model's exception answers the
    same error body but for the first frames of its stack trace."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    root = tmp_path_factory.mktemp("shapes")
    code = root / "shapes.py"
    code.write_text(SHAPES_CODE)
    signature = ModelSignature(inputs=Schema([ColSpec("double", "x")]),
                               params=ParamSchema([ParamSpec("kind", "string", "frame"),
                                                   ParamSpec("sleep", "double", 0.0)]))
    path = str(root / "model")
    mlflow.pyfunc.save_model(path, python_model=str(code), signature=signature)

    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
    # MLflow's scoring server runs `uvicorn` from the PATH: this venv's first.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    mlflow_cli = os.path.join(os.path.dirname(sys.executable), "mlflow")
    real = subprocess.Popen([mlflow_cli, "models", "serve", "-m", path, "-p", str(port),
                             "--env-manager", "local"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    proc, url = _serve(path, workers=1)
    try:
        real_url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if requests.get(f"{real_url}/ping", timeout=5).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert real.poll() is None, "mlflow models serve exited"
            time.sleep(0.2)
        rows = [{"x": 1.0}, {"x": 2.5}, {"x": 0.3}]
        for kind in ["frame", "series", "unnamed_series", "matrix", "ints", "half", "strings",
                     "list", "scalar", "dict", "datetimes", "nanoseconds", "mixed", "bool_int",
                     "ragged", "nested_array", "column_of_lists", "records", "dict_of_dicts",
                     "unsorted_dict", "true_column", "str_nan", "none"]:
            for body in [{"dataframe_records": rows, "params": {"kind": kind}},
                         {"dataframe_records": rows[:1], "params": {"kind": kind}}]:
                body = json.dumps(body)
                want = requests.post(f"{real_url}/invocations", data=body,
                                     headers={"Content-Type": "application/json"}, timeout=60)
                got = _post(url, body)
                assert (got.status_code, got.content) == (want.status_code, want.content), \
                    f"{kind}:\ncairn:  {got.text}\nmlflow: {want.text}"
                assert want.status_code == 200, want.text
        # Rendered rows split by rows: concurrent one-row requests merged into one call (the
        # one worker is busy with the first for 0.3 s) each get their own row, as MLflow
        # answers each alone.
        bodies = [json.dumps({"dataframe_records": [{"x": i / 4}],
                              "params": {"kind": "records", "sleep": 0.3}}) for i in range(12)]
        want = [requests.post(f"{real_url}/invocations", data=b, timeout=60,
                              headers={"Content-Type": "application/json"}).content for b in bodies]
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(len(bodies)) as pool:
            got = list(pool.map(lambda b: _post(url, b).content, bodies))
        assert got == want
        metrics = requests.get(f"{url}/metrics", timeout=60).text
        merged = [line for line in metrics.splitlines()
                  if line.startswith("cairn_models_batch_requests_")]
        count = next(float(v.split()[-1]) for v in merged if v.startswith("cairn_models_batch_requests_count"))
        alone = next(float(v.split()[-1]) for v in merged if 'le="1"' in v)
        assert count > alone, metrics  # at least one call took several requests
        # A model's exception: MLflow's error body, the same bytes up to its stack trace,
        # which ends as MLflow's does (the model's frame, then the exception).
        body = json.dumps({"dataframe_records": rows, "params": {"kind": "raise"}})
        want = requests.post(f"{real_url}/invocations", data=body,
                             headers={"Content-Type": "application/json"}, timeout=60)
        got = _post(url, body)
        assert (got.status_code, want.status_code) == (400, 400), (got.text, want.text)
        got_trace, want_trace = got.json()["stack_trace"], want.json()["stack_trace"]
        assert got.text.replace(json.dumps(got_trace), json.dumps(want_trace)) == want.text
        assert got_trace.splitlines()[-3:] == want_trace.splitlines()[-3:], (got_trace, want_trace)
    finally:
        real.terminate()
        real.wait(timeout=60)
        _stop(proc)


ECHO_CODE = textwrap.dedent('''
    import math

    import mlflow
    import numpy as np
    import pandas as pd


    def describe(v):
        """What the model was given, every part with its Python (or numpy) type."""
        if isinstance(v, pd.DataFrame):
            return {"DataFrame": {str(c): {"dtype": str(v[c].dtype),
                                           "cells": [describe(x) for x in v[c].tolist()]}
                                  for c in v.columns}}
        if isinstance(v, np.ndarray):
            return {"ndarray": str(v.dtype), "shape": list(v.shape),
                    "items": [describe(x) for x in v.reshape(-1)]}
        if isinstance(v, np.generic):
            return {type(v).__name__: v.item()}
        if isinstance(v, dict):
            return {"dict": {str(k): describe(x) for k, x in v.items()}}
        if isinstance(v, (list, tuple)):
            return {type(v).__name__: [describe(x) for x in v]}
        if isinstance(v, float) and math.isnan(v):
            return "NaN"
        return {type(v).__name__: v}


    def answer(messages):
        """A chat model's answer: the last message's content, and how many came before."""
        if isinstance(messages, np.ndarray):
            messages = messages.tolist()
        if not len(messages):
            return "nobody said anything"
        last = messages[-1]
        return f"{last['role']} said {last['content']!r} after {len(messages) - 1} messages"


    class Echo(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):
            out = {"given": describe(model_input)}
            if isinstance(model_input, pd.DataFrame) and "messages" in model_input:
                out["answers"] = [answer(m) for m in model_input["messages"]]
            return [out]


    mlflow.models.set_model(Echo())
''')

CHAT = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi \u00e9"}]
CHAT_RECORDS = [
    {"messages": CHAT, "weights": {"a": 1.5, "b": -2.0}, "extra": [1, "two", None], "user": "u1"},
    {"messages": CHAT[1:], "weights": {}, "user": "u2"},
    {"messages": [], "weights": {"c": 0.25}, "extra": {"k": {"deep": [True]}}, "user": "u3"},
]


@pytest.fixture(scope="module")
def real_mlflow_serve():
    """Starts the real `mlflow models serve --env-manager local` on a model directory: its URL
    (the servers stop with the module)."""
    procs = []

    def start(path: str) -> str:
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAIRN_")}
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
        mlflow_cli = os.path.join(os.path.dirname(sys.executable), "mlflow")
        real = subprocess.Popen([mlflow_cli, "models", "serve", "-m", path, "-p", str(port),
                                 "--env-manager", "local"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(real)
        url = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if requests.get(f"{url}/ping", timeout=5).status_code == 200:
                    return url
            except requests.ConnectionError:
                pass
            assert real.poll() is None, "mlflow models serve exited"
            time.sleep(0.2)
        raise AssertionError("mlflow models serve did not answer /ping")

    yield start
    for real in procs:
        real.terminate()
        real.wait(timeout=60)


def _same_bytes_as_real_mlflow(url: str, real_url: str, body, label: str) -> requests.Response:
    """The same status and the same response bytes as the real `mlflow models serve`; for an
    error with a stack trace (the model's own exception) the same body but for the trace's
    first frames."""
    body = body if isinstance(body, str) else json.dumps(body)
    want = requests.post(f"{real_url}/invocations", data=body,
                         headers={"Content-Type": "application/json"}, timeout=60)
    got = _post(url, body)
    if want.status_code == 400 and "stack_trace" in want.json():
        got_trace, want_trace = got.json()["stack_trace"], want.json()["stack_trace"]
        assert got.text.replace(json.dumps(got_trace), json.dumps(want_trace)) == want.text, label
        assert got_trace.splitlines()[-1] == want_trace.splitlines()[-1], (label, got_trace)
    else:
        assert (got.status_code, got.content) == (want.status_code, want.content), \
            f"{label}:\ncairn:  {got.text}\nmlflow: {want.text}"
    return got


def _echo_model(tmp_path_factory, name: str, signature) -> str:
    root = tmp_path_factory.mktemp(name)
    code = root / "echo.py"
    code.write_text(ECHO_CODE)
    path = str(root / "model")
    mlflow.pyfunc.save_model(path, python_model=str(code), signature=signature)
    return path


def _chat_split(records) -> dict:
    columns = ["messages", "weights", "extra", "user"]
    return {"dataframe_split": {"columns": columns,
                                "data": [[r.get(c) for c in columns] for r in records]}}


def test_list_and_dict_cells_reach_a_schemaless_model_as_mlflow_passes_them(tmp_path_factory,
                                                                            real_mlflow_serve):
    """No signature: list and dict cells (chat messages, nested objects) reach the model as the
    lists and dicts `mlflow models serve` gives it, in every JSON form: the same answer bytes
    (the model describes every value it was given, with its type)."""
    path = _echo_model(tmp_path_factory, "echo-schemaless", None)
    assert mlflow.models.Model.load(path).signature is None
    real_url = real_mlflow_serve(path)
    proc, url = _serve(path, workers=1)
    try:
        bodies = {
            "dataframe_records": {"dataframe_records": CHAT_RECORDS},
            "dataframe_split": _chat_split(CHAT_RECORDS),
            "dataframe_split of mixed cells": {"dataframe_split": {
                "columns": ["v"], "data": [[1], ["s"], [[1, 2]], [None], [{"a": None}]]}},
            "inputs: a list of messages": {"inputs": CHAT},
            "inputs: named": {"inputs": {"messages": CHAT, "n": [1, 2]}},
            "inputs: one row of messages": {"inputs": [CHAT]},
            "instances": {"instances": [{"messages": CHAT}, {"messages": CHAT[::-1]}]},
            "params are kept apart": {"inputs": CHAT, "params": {}},
        }
        for label, body in bodies.items():
            got = _same_bytes_as_real_mlflow(url, real_url, body, label)
            assert got.status_code == 200, (label, got.text)
        # The chat answers are derived from the dicts themselves.
        got = _post(url, {"dataframe_records": CHAT_RECORDS}).json()["predictions"][0]
        assert got["answers"][0] == "user said 'hi \u00e9' after 1 messages"
        # A ragged list: both refuse it (numpy cannot make an array of it) with a bad request.
        ragged = {"inputs": [CHAT, CHAT[:1]]}
        want = requests.post(f"{real_url}/invocations", json=ragged, timeout=60)
        got = _post(url, ragged)
        assert (got.status_code, got.json()["error_code"]) == (want.status_code, want.json()["error_code"]) \
            == (400, "BAD_REQUEST"), (got.text, want.text)
    finally:
        _stop(proc)


def test_array_object_map_and_any_columns_are_checked_as_mlflow_checks_them(tmp_path_factory,
                                                                            real_mlflow_serve):
    """A signature with MLflow 3's composite column types (Array of Object, Map, AnyType) next
    to a string column: the model gets MLflow's values (its casts of them included) in the
    DataFrame forms and in `inputs`/`instances`, and what MLflow refuses is refused with the same
    error body, byte for byte."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, Array, ColSpec, Map, Object, Property, Schema

    signature = ModelSignature(inputs=Schema([
        ColSpec(Array(Object([Property("role", "string"), Property("content", "string")])), "messages"),
        ColSpec(Map("double"), "weights"),
        ColSpec(AnyType(), "extra", required=False),
        ColSpec("string", "user"),
    ]))
    path = _echo_model(tmp_path_factory, "echo-typed", signature)
    mlmodel = open(os.path.join(path, "MLmodel")).read()
    assert '"type": "array"' in mlmodel and '"type": "map"' in mlmodel, mlmodel
    real_url = real_mlflow_serve(path)
    proc, url = _serve(path, workers=1)
    try:
        records = [{k: v for k, v in r.items() if k != "weights"} | {"weights": {"w": 1.0}}
                   for r in CHAT_RECORDS]
        ok = {
            "dataframe_records": {"dataframe_records": CHAT_RECORDS},
            "dataframe_split": _chat_split(CHAT_RECORDS),
            "dataframe_records in another key order": {"dataframe_records": records[::-1]},
            "inputs: records": {"inputs": CHAT_RECORDS[:2]},
        }
        for label, body in ok.items():
            got = _same_bytes_as_real_mlflow(url, real_url, body, label)
            assert got.status_code == 200, (label, got.text)
        # The model got the messages as lists of dicts (checked by MLflow's Array(Object)),
        # the weights as dicts of numpy doubles (MLflow's Map(double) cast), the Any column as
        # it was sent (NaN where a record lacks it).
        given = _post(url, {"dataframe_records": CHAT_RECORDS}).json()["predictions"][0]
        assert given["answers"] == ["user said 'hi \u00e9' after 1 messages",
                                    "user said 'hi \u00e9' after 0 messages", "nobody said anything"]
        columns = given["given"]["DataFrame"]
        assert list(columns["messages"]["cells"][1]) == ["list"]
        assert columns["weights"]["cells"][0] == {"dict": {"a": {"float64": 1.5}, "b": {"float64": -2.0}}}
        assert columns["extra"]["cells"][1] == "NaN"
        refused = {
            "messages not a list": {"dataframe_records": [
                {"messages": "hi", "weights": {}, "user": "u"}]},
            "a message without content": {"dataframe_split": {
                "columns": ["messages", "weights", "user"],
                "data": [[[{"role": "user"}], {}, "u"]]}},
            "a weight that is not a double": {"dataframe_records": [
                {"messages": CHAT, "weights": {"a": "heavy"}, "user": "u"}]},
            "inputs: a dict of columns (MLflow reads each column as one array)": {"inputs": {
                "messages": [CHAT, CHAT], "weights": [{}, {}], "user": ["a", "b"]}},
            # MLflow stacks each column of `instances` into one array: the messages become a
            # 2-D array, which its Array check refuses (MLflow's log says: use `inputs`).
            "instances": {"instances": [
                {"messages": CHAT, "weights": {"w": 1.0}, "user": "a", "extra": 1},
                {"messages": CHAT[::-1], "weights": {"w": 2.0}, "user": "b", "extra": "x"}]},
            "instances: conversations of different lengths (numpy cannot stack them)":
                {"instances": records[:2]},
            "instances: an int weight": {"instances": [
                {"messages": CHAT, "weights": {"a": 2}, "user": "u"}]},
            "a missing required column": {"dataframe_records": [{"messages": CHAT, "user": "u"}]},
        }
        for label, body in refused.items():
            got = _same_bytes_as_real_mlflow(url, real_url, body, label)
            assert got.status_code == 400, (label, got.text)
    finally:
        _stop(proc)
