"""Scoring-server benchmark: `cairn models serve` against `mlflow models serve --env-manager
local` on the same ONNX models, same machine, same run. Run it through `bench/run --models`.

Models (saved once with `mlflow.onnx.save_model` into a temporary directory both servers load):
- `logreg`: skl2onnx's LogisticRegression of 4 features (zipmap off): almost no compute, so it
  measures the serving overhead;
- `mlp`: a 64-256-256-10 perceptron built with `onnx.helper` (MatMul, Add, Relu, Softmax);
- `sklearn`: the same LogisticRegression saved with `mlflow.sklearn.save_model` (only the
  `python_function` flavor servable): Cairn's pool of Python workers (`--env-manager local`,
  this interpreter) against MLflow's uvicorn workers, both `--workers 2`; Python's `predict`
  runs on both sides, the difference is parsing, scheduling and micro-batching.

Per model, rounds in ABBA order (cairn, mlflow, mlflow, cairn, ...), each server started fresh:
- cold start: spawn to the first `GET /ping` answering 200 (polled every millisecond);
- memory of the server's process tree once it has settled after that (VmRSS, Pss and RssAnon sums;
  RssAnon leaves out the pages of the executable and its libraries, shared through the page cache);
- batch 1 at concurrency 1 and 8, batch 1000 at concurrency 1: `POST /invocations` with
  `{"inputs": [[...]]}` over keep-alive connections: requests/s,
  p50/p99 latency, and server CPU (utime + stime of the tree, from /proc) per 1000 requests;
- the compute floor: onnxruntime's `InferenceSession.run` on the same batch-1000 input in this
  process (p50/p99).

The load generator is `wrk` (Debian's package; `bench/run --models` installs it when it is
missing), one thread holding 1 or 8 keep-alive connections for a fixed time per phase. It costs
a few microseconds of CPU per request, so on this 2-core machine the cores go to the server
under test rather than to the client. `--loadgen python` keeps the earlier client: Python
`http.client`, one process per connection, a fixed number of requests; at concurrency 8 its
processes used more CPU per request than Cairn's server and capped Cairn's requests/s.
Requests per server-CPU-second is the figure that isolates the server either way. Results go to
bench/results/models-*.json and a Markdown summary is printed.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

import argparse
import concurrent.futures
import datetime
import http.client
import json
import multiprocessing
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tracking_server import (
    Flavor,
    Server,
    _cairn_identity,
    _command_line,
    _cpu_model,
    _free_port,
    loadavg,
    pct,
    settled_memory,
    stop_server_proc,
    tree_cpu_s,
)

STARTUP_TIMEOUT_S = 180


def make_models(root: Path) -> dict[str, tuple[Path, np.ndarray]]:
    """Each model's directory and a 1000-row float32 input for it."""
    import mlflow
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from skl2onnx import to_onnx
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression

    models = {}
    x, y = make_classification(n_samples=1000, n_features=4, random_state=0)
    x = x.astype(np.float32)
    clf = LogisticRegression().fit(x, y)
    onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}})
    mlflow.onnx.save_model(onx, root / "logreg")
    models["logreg"] = (root / "logreg", x)
    mlflow.sklearn.save_model(clf, root / "sklearn", signature=mlflow.models.infer_signature(x, clf.predict(x)))
    models["sklearn"] = (root / "sklearn", x)

    rng = np.random.default_rng(0)
    sizes = [64, 256, 256, 10]
    inits, nodes, prev = [], [], "x"
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        w = (rng.normal(size=(a, b)) / np.sqrt(a)).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(np.zeros(b, np.float32), f"b{i}")]
        nodes += [helper.make_node("MatMul", [prev, f"w{i}"], [f"m{i}"]), helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"])]
        prev = f"a{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [prev], [f"r{i}"]))
            prev = f"r{i}"
    nodes.append(helper.make_node("Softmax", [prev], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", sizes[-1]])],
        inits,
    )
    mlp = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(mlp)
    mlflow.onnx.save_model(mlp, root / "mlp")
    models["mlp"] = (root / "mlp", rng.normal(size=(1000, sizes[0])).astype(np.float32))
    return models


def _ping(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/ping")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def start(flavor: Flavor, args, model: Path, root: Path) -> Server:
    workdir = Path(tempfile.mkdtemp(prefix=f"{flavor.name}-", dir=root))
    port = _free_port()
    python_workers = ["--workers", "2"] if (model / "python_model.pkl").exists() or model.name == "sklearn" else []
    if flavor.kind == "mlflow":
        cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model), "-p", str(port), "--env-manager", "local", *python_workers]
    else:
        cmd = [args.cairn_bin, "models", "serve", "-m", str(model), "-p", str(port)]
        if python_workers:
            cmd += ["--env-manager", "local", "--python", sys.executable, *python_workers]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "MLFLOW_"))}
    # mlflow models serve runs `uvicorn` from PATH: the venv's.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    log = open(workdir / "server.log", "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    while not _ping(port):
        if proc.poll() is not None or time.perf_counter() - t0 > STARTUP_TIMEOUT_S:
            stop_server_proc(proc)
            sys.exit(f"{flavor.label} did not answer /ping:\n{(workdir / 'server.log').read_text()[-4000:]}")
        time.sleep(0.001)
    return Server(flavor, proc, f"http://127.0.0.1:{port}", workdir, time.perf_counter() - t0)


def _post_loop(port: int, body: bytes, n: int, label: str) -> list[float]:
    """`n` POSTs of `body` over one keep-alive connection: each one's latency in seconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", "/invocations", body=body, headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise RuntimeError(f"{label}: HTTP {r.status}: {data[:300]!r}")
        out.append(time.perf_counter() - t)
    conn.close()
    return out


# wrk's script: every request is the same POST; at the end, the figures as one JSON line.
WRK_SCRIPT = """
local f = assert(io.open(os.getenv("CAIRN_BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def load(server: Server, body: bytes, requests: int, clients: int, seconds: float, loadgen: str) -> dict:
    """Load on `POST /invocations` with `body` from `clients` keep-alive connections: for `seconds`
    through wrk, or `requests` POSTs through Python processes (`loadgen`)."""
    if loadgen == "wrk":
        return _load_wrk(server, body, clients, seconds)
    return _load_python(server, body, requests, clients)


def _load_wrk(server: Server, body: bytes, clients: int, seconds: float) -> dict:
    """One wrk thread, `clients` connections, `seconds` of load after a one-second warm-up."""
    with tempfile.TemporaryDirectory(prefix="cairn-bench-wrk-") as d:
        script, payload = Path(d) / "post.lua", Path(d) / "body.json"
        script.write_text(WRK_SCRIPT)
        payload.write_bytes(body)
        env = {**os.environ, "CAIRN_BENCH_BODY": str(payload)}

        def run(duration: float) -> dict:
            cmd = ["wrk", "-t1", f"-c{clients}", f"-d{duration}s", "--timeout", "600s", "-s", str(script), server.url + "/invocations"]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            figures = json.loads(out.strip().splitlines()[-1])
            if figures["status_errors"] or figures["socket_errors"] or not figures["requests"]:
                raise RuntimeError(f"{server.flavor.label}: wrk saw errors: {out}")
            return figures

        run(1)
        cpu0 = tree_cpu_s(server.pid)
        w = run(seconds)
        cpu = tree_cpu_s(server.pid) - cpu0
    return {
        "requests": w["requests"],
        "rps": w["requests"] / (w["duration_us"] / 1e6),
        "p50_ms": w["p50_us"] / 1000,
        "p99_ms": w["p99_us"] / 1000,
        "server_cpu_s_per_1000": cpu / w["requests"] * 1000,
    }


def _load_python(server: Server, body: bytes, requests: int, clients: int) -> dict:
    """`requests` POSTs of `body` from `clients` keep-alive connections, each in a process of its
    own: threads of one Python process share one GIL, which caps the client near one core."""
    port = int(server.url.rsplit(":", 1)[1])
    label = server.flavor.label
    _post_loop(port, body, min(20, requests), label)  # warm-up
    per = [requests // clients] * clients
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(clients, mp_context=context) as pool:
        # The processes are started (and each has made a request) before the clock starts.
        list(pool.map(_post_loop, [port] * clients, [body] * clients, [1] * clients, [label] * clients))
        cpu0, t0 = tree_cpu_s(server.pid), time.perf_counter()
        parts = pool.map(_post_loop, [port] * clients, [body] * clients, per, [label] * clients)
        lat = [x for part in parts for x in part]
        wall, cpu = time.perf_counter() - t0, tree_cpu_s(server.pid) - cpu0
    return {
        "requests": len(lat),
        "rps": len(lat) / wall,
        "p50_ms": pct(lat, 50) * 1000,
        "p99_ms": pct(lat, 99) * 1000,
        "server_cpu_s_per_1000": cpu / len(lat) * 1000,
    }


def calls(server: Server) -> tuple[float, float]:
    """Cairn's /metrics: (requests answered by inference calls, inference calls) so far."""
    if server.flavor.kind != "cairn":
        return (0.0, 0.0)
    conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=60)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    values = dict(line.split(" ", 1) for line in text.splitlines() if line.startswith("cairn_models_batch_requests_"))
    return float(values["cairn_models_batch_requests_sum"]), float(values["cairn_models_batch_requests_count"])


def ort_floor(model: Path, x: np.ndarray, runs: int) -> dict:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(model / "model.onnx"))
    feed = {session.get_inputs()[0].name: x}
    session.run(None, feed)
    lat = []
    for _ in range(runs):
        t = time.perf_counter()
        session.run(None, feed)
        lat.append(time.perf_counter() - t)
    return {"p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cairn-bin", required=True)
    p.add_argument("--rounds", type=int, default=2, help="per server, ABBA order")
    p.add_argument("--requests", type=int, default=2000, help="batch-1 requests per phase")
    p.add_argument("--big-requests", type=int, default=40, help="batch-1000 requests per phase")
    p.add_argument("--loadgen", choices=["wrk", "python"], default="wrk", help="load generator (see above)")
    p.add_argument("--seconds", type=float, default=5, help="wrk: seconds of load per phase")
    p.add_argument("--quick", action="store_true", help="1 round, 200 / 10 requests (wrk: 1 s)")
    p.add_argument("--only", action="append", help="run only this model (logreg, mlp, sklearn); repeatable")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.requests, args.big_requests, args.seconds = 1, 200, 10, 1
    if args.loadgen == "wrk" and not shutil.which("wrk"):
        p.error("wrk is not installed (apt-get install wrk, or bench/run --models does it); or --loadgen python")

    flavors = [
        Flavor("cairn", "cairn", "cairn models serve"),
        Flavor("mlflow", "mlflow", "mlflow models serve --env-manager local"),
    ]
    root = Path(tempfile.mkdtemp(prefix="cairn-bench-models-"))
    results = {
        "command": _command_line().replace("bench/run", "bench/run --models", 1),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "cairn": _cairn_identity(args.cairn_bin),
        "loadgen": args.loadgen,
        "loadavg_before": loadavg(),
        "models": {},
    }
    try:
        for name, (path, x) in make_models(root).items():
            if args.only and name not in args.only:
                continue
            one = json.dumps({"inputs": x[:1].tolist()}).encode()
            big = json.dumps({"inputs": x.tolist()}).encode()
            per: dict[str, list[dict]] = {f.name: [] for f in flavors}
            for r in range(args.rounds):
                for flavor in flavors if r % 2 == 0 else flavors[::-1]:
                    server = start(flavor, args, path, root)
                    try:
                        memory = settled_memory(server)
                        b1_c1 = load(server, one, args.requests, 1, args.seconds, args.loadgen)
                        before = calls(server)
                        b1_c8 = load(server, one, args.requests, 8, args.seconds, args.loadgen)
                        after = calls(server)
                        if after[1] > before[1]:  # cairn: how many requests one call answered
                            b1_c8["requests_per_call"] = (after[0] - before[0]) / (after[1] - before[1])
                        per[flavor.name].append({
                            "startup_s": server.startup_s,
                            "rss_mib": memory["rss_mib"],
                            "pss_mib": memory["pss_mib"],
                            "anon_mib": memory["anon_mib"],
                            "b1_c1": b1_c1,
                            "b1_c8": b1_c8,
                            "b1000_c1": load(server, big, args.big_requests, 1, args.seconds, args.loadgen),
                        })
                    finally:
                        stop_server_proc(server.proc)
            onnx_model = (path / "model.onnx").exists()
            results["models"][name] = {"rounds": per, "ort_b1000": ort_floor(path, x, args.big_requests) if onnx_model else None}
            print(f"{name}: done", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["loadavg_after"] = loadavg()
    out = Path(__file__).parent / "results" / f"models-{results['date_utc'].replace(':', '')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    print(f"\n(results: {out})")


def _median(rounds: list[dict], *keys: str) -> float:
    values = []
    for r in rounds:
        for k in keys:
            r = r[k]
        values.append(r)
    return statistics.median(values)


def render(results: dict) -> str:
    lines = [
        f"Command: `{results['command']}`, {results['date_utc']}, {results['machine']['cores']} cores, "
        f"load average before {results['loadavg_before']}.",
        "",
        "| model | figure | cairn | mlflow | cairn / mlflow |",
        "|---|---|---|---|---|",
    ]
    for name, m in results["models"].items():
        c, f = m["rounds"]["cairn"], m["rounds"]["mlflow"]

        def row(label, *keys, fmt="{:.1f}", inverse=False):
            a, b = _median(c, *keys), _median(f, *keys)
            ratio = (b / a) if inverse else (a / b)
            lines.append(f"| {name} | {label} | {fmt.format(a)} | {fmt.format(b)} | {'1/' if inverse else ''}{ratio:.1f}{'' if inverse else '×'} |")

        row("batch 1, conc. 1: requests/s", "b1_c1", "rps", fmt="{:.0f}")
        row("batch 1, conc. 1: p50 ms", "b1_c1", "p50_ms", fmt="{:.2f}", inverse=True)
        row("batch 1, conc. 1: p99 ms", "b1_c1", "p99_ms", fmt="{:.2f}", inverse=True)
        row("batch 1, conc. 8: requests/s", "b1_c8", "rps", fmt="{:.0f}")
        row("batch 1, conc. 8: p50 ms", "b1_c8", "p50_ms", fmt="{:.2f}", inverse=True)
        row("batch 1, conc. 8: p99 ms", "b1_c8", "p99_ms", fmt="{:.2f}", inverse=True)
        row("batch 1, conc. 8: server CPU s / 1000 req", "b1_c8", "server_cpu_s_per_1000", fmt="{:.3f}", inverse=True)
        row("batch 1, conc. 1: server CPU s / 1000 req", "b1_c1", "server_cpu_s_per_1000", fmt="{:.3f}", inverse=True)
        row("batch 1000: p50 ms", "b1000_c1", "p50_ms", fmt="{:.2f}", inverse=True)
        row("batch 1000: p99 ms", "b1000_c1", "p99_ms", fmt="{:.2f}", inverse=True)
        row("cold start to /ping, s", "startup_s", fmt="{:.3f}", inverse=True)
        row("RSS after load, MiB", "rss_mib", inverse=True)
        row("of which anonymous (not file pages), MiB", "anon_mib", inverse=True)
        merged = [r["b1_c8"].get("requests_per_call") for r in c if r["b1_c8"].get("requests_per_call")]
        if merged:
            lines.append(f"| {name} | batch 1, conc. 8: requests per inference call (micro-batching) | {statistics.median(merged):.2f} | 1 | |")
        ort = m["ort_b1000"]
        if ort is None:
            continue
        b1000 = _median(c, "b1000_c1", "p50_ms")
        lines.append(
            f"| {name} | onnxruntime `InferenceSession.run`, batch 1000: p50 ms | {b1000:.2f} (cairn, over HTTP) | "
            f"{ort['p50_ms']:.2f} (raw) | {b1000 / ort['p50_ms']:.1f}× the floor |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
