"""Load program of the tracking-server benchmark: `mlflow server` against `cairn server`.

Run it through `bench/run`, which prepares the pinned client and builds the release binary.
Both servers run on this machine in the same run, with SQLite stores in a temporary directory,
and the official client (mlflow's `MlflowClient`) drives the same workload against each;
every measured phase alternates between the servers round by round (ABBA order), so the noise
of a shared machine hits both sides alike. What is measured:

- start-up: spawn to the first `GET /health` answering 200, on a fresh database, and the idle
  memory of the whole server process tree once it has settled (sum of VmRSS and of Pss);
- ingest: runs x one `log_batch` of 1000 metrics, with 1 and with 8 client threads;
- sequential `log_metric` calls;
- `search_runs` over an experiment of 2000 runs with a metric + param filter ordered by a
  metric, through the client and as a raw HTTP request; then the same query again once other
  experiments hold 20 000 more runs of the same shape (its cost should not grow).
  With `--backend postgres` each search phase starts once the databases have been quiet for
  `--settle-s` seconds (default 75) after the last server's writes: autovacuum visits a
  database once a minute and then vacuums and analyses what the burst inserted, and without
  the wait the server written last (Cairn, whose population through the client takes longest)
  was searched while that ran and the other was not;
- `get_metric_history` of a 100 000-point metric, through the client and as raw HTTP pages;
- memory of the server tree after the workload.

The workload runs against `mlflow server` with its default 4 workers and job execution off
(`MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false`: the job runner and its huey consumers have nothing
to do with tracking but poll in the background); start-up and idle memory are also taken for
MLflow's full defaults and for `--workers 1`. Both servers run with `--no-serve-artifacts`
(tracking only) unless --serve-artifacts is given.

Server CPU is the utime + stime (+ cutime + cstime) of every process in the server's tree, read
from /proc before and after a phase: it counts only work the server did, so it stays meaningful
when the client or the machine is the bottleneck. Results go to bench/results/ as JSON and a
Markdown summary is printed.
"""

from __future__ import annotations

import os

# Before mlflow is imported: no retry back-off hiding failures, no telemetry.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "600"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

import argparse
import concurrent.futures
import contextlib
import datetime
import http.client
import json
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import mlflow
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

CLK_TCK = os.sysconf("SC_CLK_TCK")
STARTUP_TIMEOUT_S = 120
SEARCH_FILTER = "metrics.loss < 0.5 and params.opt = 'adam'"
SEARCH_ORDER = ["metrics.loss ASC"]
SEARCH_MAX_RESULTS = 100
HISTORY_PAGE = 25000  # what MlflowClient.get_metric_history asks for per page


# ---------------------------------------------------------------------------------------------
# /proc: process trees, CPU and memory


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def tree_pids(root: int) -> list[int]:
    """The root and all its live descendants."""
    children = _children_map()
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def _proc_cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return 0
    fields = stat[stat.rfind(")") + 2 :].split()
    # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14-17.
    return sum(int(x) for x in fields[11:15])


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) used so far by the tree, including reaped descendants."""
    return sum(_proc_cpu_ticks(pid) for pid in tree_pids(root)) / CLK_TCK


def _status_kib(pid: int, name: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(root: int) -> dict:
    """Sums over the tree: VmRSS, Pss (shared pages split between sharers), VmHWM (peak RSS),
    RssAnon (the part of VmRSS that is the processes' own memory, not pages of files such as
    the executable and its libraries, which the page cache shares)."""
    pids = tree_pids(root)
    return {
        "processes": len(pids),
        "rss_mib": sum(_status_kib(p, "VmRSS") for p in pids) / 1024,
        "pss_mib": sum(_pss_kib(p) for p in pids) / 1024,
        "hwm_mib": sum(_status_kib(p, "VmHWM") for p in pids) / 1024,
        "anon_mib": sum(_status_kib(p, "RssAnon") for p in pids) / 1024,
    }


def machine_busy_s() -> float:
    """Busy CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        cpu = f.readline().split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in cpu[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def loadavg() -> list[float]:
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def own_cpu_s() -> float:
    """CPU seconds of this (client) process, all threads."""
    return time.process_time()


# ---------------------------------------------------------------------------------------------
# Servers


@dataclass
class Flavor:
    """One way of starting a server."""

    name: str  # key in the results
    kind: str  # "mlflow" or "cairn"
    label: str  # for humans
    env: dict = field(default_factory=dict)
    extra_args: list = field(default_factory=list)


@dataclass
class Server:
    """A running server."""

    flavor: Flavor
    proc: subprocess.Popen
    url: str
    workdir: Path
    startup_s: float
    store_uri: str = ""  # the backend store URI it was started with

    @property
    def pid(self) -> int:
        return self.proc.pid


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# The database server (--backend postgres)


class PgCluster:
    """The throwaway PostgreSQL cluster scripts/pg-test-server started (bench/run --backend
    postgres runs this program under it): one fresh database per server started, and the CPU of
    the cluster's process tree (the postmaster and its backends; a backend that has exited is
    in the postmaster's cutime/cstime)."""

    def __init__(self, admin_uri: str):
        import psycopg2

        self.admin_uri = admin_uri
        parsed = urllib.parse.urlsplit(admin_uri)
        self.base = f"{parsed.username or 'postgres'}@{parsed.hostname}:{parsed.port}"
        conn = psycopg2.connect(admin_uri)
        conn.autocommit = True
        self.conn = conn
        with conn.cursor() as cur:
            cur.execute("SELECT pg_backend_pid(), version()")
            backend, self.version = cur.fetchone()
        with open(f"/proc/{backend}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
        self.postmaster = int(stat[stat.rfind(")") + 2 :].split()[1])

    def create_database(self, name: str) -> str:
        """A fresh database; its URI without a driver (postgresql://user@host:port/name)."""
        with self.conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://{self.base}/{name}"

    def drop_database(self, name: str) -> None:
        with self.conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def cpu_s(self) -> float:
        return tree_cpu_s(self.postmaster)


PG: PgCluster | None = None  # set by main() with --backend postgres


def db_cpu_s() -> float:
    """CPU seconds of the database server so far (0 with SQLite: it runs inside the server)."""
    return PG.cpu_s() if PG else 0.0


def _store_uri(flavor: Flavor, workdir: Path) -> str:
    """The server's backend store: a SQLite file in its work directory, or with --backend
    postgres a fresh database of its own on the shared cluster (MLflow gets SQLAlchemy's
    psycopg2 spelling: with SQLAlchemy 2.1 a bare postgresql:// means psycopg 3)."""
    if PG is None:
        return f"sqlite:///{workdir / 'tracking.db'}"
    uri = PG.create_database(f"{flavor.name}_{workdir.name.rsplit('-', 1)[-1]}".lower())
    if flavor.kind == "mlflow":
        uri = uri.replace("postgresql://", "postgresql+psycopg2://", 1)
    return uri


def _command(flavor: Flavor, args, store_uri: str, artifacts: Path, port: int) -> list[str]:
    common = [
        "--backend-store-uri",
        store_uri,
        "--default-artifact-root",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        # Tracking only: neither server proxies artifacts (MLflow's default is to serve them).
        "--serve-artifacts" if args.serve_artifacts else "--no-serve-artifacts",
    ]
    if flavor.kind == "mlflow":
        return [sys.executable, "-m", "mlflow", "server", *common, *flavor.extra_args]
    return [args.cairn_bin, "server", *common, *flavor.extra_args]


def _healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/health")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def start_server(flavor: Flavor, args, root: Path, store_uri: str | None = None) -> Server:
    """Spawns the server on a fresh database (or on `store_uri`); start-up time is spawn to the
    first healthy GET /health, polled every millisecond."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{flavor.name}-", dir=root))
    artifacts = workdir / "artifacts"
    artifacts.mkdir()
    store_uri = store_uri or _store_uri(flavor, workdir)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "MLFLOW_"))}
    env.update(flavor.env)
    log = open(workdir / "server.log", "wb")
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        _command(flavor, args, store_uri, artifacts, port),
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    deadline = t0 + STARTUP_TIMEOUT_S
    while True:
        if _healthy(port):
            startup = time.perf_counter() - t0
            break
        if proc.poll() is not None or time.perf_counter() > deadline:
            stop_server_proc(proc)
            tail = (workdir / "server.log").read_text(errors="replace")[-4000:]
            sys.exit(f"{flavor.label} did not become healthy (status {proc.returncode}):\n{tail}")
        time.sleep(0.001)
    return Server(flavor, proc, f"http://127.0.0.1:{port}", workdir, startup, store_uri)


def stop_server_proc(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group, SIGKILL after 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        pass
    # The group may outlive the leader (workers); make sure nothing is left behind.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def stop_server(server: Server) -> None:
    stop_server_proc(server.proc)
    shutil.rmtree(server.workdir, ignore_errors=True)


def settled_memory(server: Server, timeout_s: float = 60.0) -> dict:
    """Tree memory once it stops changing: sampled every 0.5 s until the summed RSS and the
    process count are unchanged (within 1 %) for 3 s. MLflow answers /health from its first
    worker while the others are still importing, so a single early sample would be too low."""
    deadline = time.monotonic() + timeout_s
    samples: list[dict] = []
    while time.monotonic() < deadline:
        samples.append(tree_memory(server.pid))
        recent = samples[-7:]
        if len(recent) == 7 and len({s["processes"] for s in recent}) == 1:
            lo, hi = min(s["rss_mib"] for s in recent), max(s["rss_mib"] for s in recent)
            if hi <= lo * 1.01:
                break
        time.sleep(0.5)
    return samples[-1]


def idle_cpu_rate(server: Server, seconds: float) -> float:
    """Server CPU seconds per wall second while no request is made."""
    c0 = tree_cpu_s(server.pid)
    time.sleep(seconds)
    return (tree_cpu_s(server.pid) - c0) / seconds


# ---------------------------------------------------------------------------------------------
# Workload


class Meter:
    """Wall time, server-tree CPU, client CPU of one measured section."""

    def __init__(self, server: Server):
        self.server = server

    def __enter__(self):
        self.server_cpu0 = tree_cpu_s(self.server.pid)
        self.db_cpu0 = db_cpu_s()
        self.client_cpu0 = own_cpu_s()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall_s = time.perf_counter() - self.t0
        self.client_cpu_s = own_cpu_s() - self.client_cpu0
        self.server_cpu_s = tree_cpu_s(self.server.pid) - self.server_cpu0
        # The database server's CPU in the same interval (with --backend postgres; the other
        # server is idle meanwhile, so it is this server's queries, plus autovacuum).
        self.db_cpu_s = db_cpu_s() - self.db_cpu0


def batch_metrics(keys: int, steps: int, seed: int) -> list[Metric]:
    rng = random.Random(seed)
    ts = 1_700_000_000_000
    return [
        Metric(f"m{k}", rng.random(), ts + s, s) for k in range(keys) for s in range(steps)
    ]


def _per_thread_client(url: str) -> Callable[[], MlflowClient]:
    local = threading.local()

    def get() -> MlflowClient:
        if not hasattr(local, "client"):
            local.client = MlflowClient(tracking_uri=url)
        return local.client

    return get


def run_parallel(fn, items, threads: int) -> list:
    if threads == 1:
        return [fn(item) for item in items]
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


def new_experiment(server: Server, prefix: str) -> str:
    return MlflowClient(tracking_uri=server.url).create_experiment(
        f"{prefix}-{uuid.uuid4().hex[:8]}"
    )


def phase_ingest(server: Server, runs: int, threads: int, batch: list[Metric]) -> dict:
    """`runs` fresh runs, one `log_batch` of `batch` each, from `threads` client threads."""
    client = MlflowClient(tracking_uri=server.url)
    exp = new_experiment(server, f"ingest{threads}")
    run_ids = [client.create_run(exp).info.run_id for _ in range(runs)]
    get_client = _per_thread_client(server.url)
    # Connections are opened before the clock starts.
    run_parallel(lambda _: get_client().get_experiment(exp), range(threads), threads)

    def log(run_id: str) -> None:
        get_client().log_batch(run_id, metrics=batch)

    with Meter(server) as m:
        run_parallel(log, run_ids, threads)
    metrics = runs * len(batch)
    return {
        "runs": runs,
        "threads": threads,
        "metrics": metrics,
        "wall_s": m.wall_s,
        "metrics_per_s": metrics / m.wall_s,
        "server_cpu_s": m.server_cpu_s,
        "server_cpu_ms_per_1000": 1000 * m.server_cpu_s / (metrics / 1000),
        "client_cpu_ms_per_1000": 1000 * m.client_cpu_s / (metrics / 1000),
        "db_cpu_ms_per_1000": 1000 * m.db_cpu_s / (metrics / 1000),
    }


def phase_log_metric(server: Server, calls: int) -> dict:
    """`calls` sequential `log_metric` calls on one run."""
    client = MlflowClient(tracking_uri=server.url)
    exp = new_experiment(server, "logmetric")
    run_id = client.create_run(exp).info.run_id
    ts = 1_700_000_000_000
    with Meter(server) as m:
        for i in range(calls):
            client.log_metric(run_id, "seq", i * 0.5, timestamp=ts + i, step=i)
    return {
        "calls": calls,
        "wall_s": m.wall_s,
        "calls_per_s": calls / m.wall_s,
        "server_cpu_ms_per_call": 1000 * m.server_cpu_s / calls,
        "client_cpu_ms_per_call": 1000 * m.client_cpu_s / calls,
        "db_cpu_ms_per_call": 1000 * m.db_cpu_s / calls,
    }


OPTIMIZERS = ["adam", "sgd", "rmsprop"]
PHASES = ["ingest", "log_metric", "search", "history"]
PG_PHASES = ["replicas"]  # only with --backend postgres


def populate_search(server: Server, runs: int, threads: int) -> dict:
    """An experiment of `runs` runs, each with 4 metrics, 3 params and a tag; the same data on
    every server (seeded)."""
    exp = new_experiment(server, "search")
    with Meter(server) as m:
        _log_search_runs(server, exp, range(runs), threads)
    return {"experiment_id": exp, "runs": runs, "wall_s": m.wall_s, "server_cpu_s": m.server_cpu_s}


CROWD_EXPERIMENT_RUNS = 2000


def populate_crowd(server: Server, runs: int, threads: int) -> dict:
    """`runs` more runs of the same shape (same metric, param and tag keys, other seeds) in
    other experiments of 2000 runs each, for the search over the first experiment to ignore.

    Cairn gets them through the client like the searched experiment. MLflow would need about
    40 minutes for that on the 2-core machine (≈ 9 runs/s), so its runs are written straight
    into its database with MLflow's own ORM models (`mlflow.store.tracking.dbmodels`), the
    rows its `create_run` + `log_batch` write (run, params, tags with `mlflow.runName`,
    metric history and latest values), in one transaction per experiment; the experiments
    themselves are created through the client."""
    with Meter(server) as m:
        for start in range(0, runs, CROWD_EXPERIMENT_RUNS):
            exp = new_experiment(server, "crowd")
            seeds = range(1_000_000 + start, 1_000_000 + min(runs, start + CROWD_EXPERIMENT_RUNS))
            if server.flavor.kind == "mlflow":
                _write_mlflow_runs(server, exp, seeds)
            else:
                _log_search_runs(server, exp, seeds, threads)
    return {"runs": runs, "wall_s": m.wall_s, "server_cpu_s": m.server_cpu_s}


def _search_run_data(i: int) -> tuple[int, list[Metric], list[Param], list[RunTag]]:
    """Start time, metrics, params and tags of the search run with seed `i`."""
    rng = random.Random(i)
    ts = 1_700_000_000_000 + i
    metrics = [
        Metric("loss", rng.random(), ts, 0),
        Metric("acc", rng.random(), ts, 0),
        Metric("f1", rng.random(), ts, 0),
        Metric("epoch", float(rng.randrange(100)), ts, 0),
    ]
    params = [
        Param("opt", rng.choice(OPTIMIZERS)),
        Param("lr", str(rng.choice([0.1, 0.01, 0.001]))),
        Param("batch_size", str(rng.choice([32, 64, 128]))),
    ]
    tags = [RunTag("team", rng.choice(["a", "b"]))]
    return ts, metrics, params, tags


def _log_search_runs(server: Server, exp: str, seeds, threads: int) -> None:
    """One run per seed in `exp` through the client: 4 metrics, 3 params and a tag."""
    get_client = _per_thread_client(server.url)

    def make(i: int) -> None:
        client = get_client()
        run_id = client.create_run(exp, run_name=f"r{i:05d}").info.run_id
        _, metrics, params, tags = _search_run_data(i)
        client.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    run_parallel(make, seeds, threads)


def _write_mlflow_runs(server: Server, exp: str, seeds) -> None:
    """One run per seed in `exp`, written into the MLflow server's database with the tables of
    MLflow's ORM models, one multi-row insert per table (see populate_crowd)."""
    import sqlalchemy
    from mlflow.store.tracking.dbmodels import models as db

    rows: dict = {t: [] for t in (db.SqlRun, db.SqlMetric, db.SqlLatestMetric, db.SqlParam, db.SqlTag)}
    artifacts = server.workdir / "artifacts"
    for i in seeds:
        _, metrics, params, tags = _search_run_data(i)
        run_uuid = uuid.uuid4().hex
        name = f"r{i:05d}"
        rows[db.SqlRun].append(
            {
                "run_uuid": run_uuid,
                "name": name,
                "experiment_id": int(exp),
                "user_id": "bench",
                "status": "RUNNING",
                "start_time": int(time.time() * 1000),  # as create_run
                "end_time": None,
                "deleted_time": None,
                "lifecycle_stage": "active",
                "artifact_uri": f"{artifacts}/{exp}/{run_uuid}/artifacts",
                "source_type": "LOCAL",
                "source_name": "",
                "entry_point_name": "",
                "source_version": "",
            }
        )
        for met in metrics:
            row = {
                "key": met.key,
                "value": met.value,
                "timestamp": met.timestamp,
                "step": met.step,
                "is_nan": False,
                "run_uuid": run_uuid,
            }
            rows[db.SqlMetric].append(row)
            rows[db.SqlLatestMetric].append(row)
        for p in params:
            rows[db.SqlParam].append({"key": p.key, "value": p.value, "run_uuid": run_uuid})
        for tag in [*tags, RunTag("mlflow.runName", name)]:
            rows[db.SqlTag].append({"key": tag.key, "value": tag.value, "run_uuid": run_uuid})
    engine = sqlalchemy.create_engine(server.store_uri)
    with engine.begin() as conn:
        for model, values in rows.items():  # runs first: the others reference them
            conn.execute(model.__table__.insert(), values)
    engine.dispose()


def search_signature(runs) -> list:
    return [(r.info.run_name, r.data.metrics["loss"], r.data.params["opt"]) for r in runs]


class RawHttp:
    """One keep-alive connection; `call` returns the status and the whole body, timed to the
    last byte. Lighter than requests, so the raw figures are as close to the server's own
    latency as a Python process gets."""

    def __init__(self, url: str):
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=600)

    def call(self, method: str, path: str, body: bytes | None = None) -> bytes:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server closed an idle keep-alive connection (uvicorn does after 5 s): once
            # more on a new one. Only GETs and searches go through here, so a retry is safe.
            self.conn.close()
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path}: HTTP {response.status}: {data[:500]!r}")
        return data

    def close(self) -> None:
        self.conn.close()


def phase_search(server: Server, exp: str, queries: int) -> dict:
    """`queries` searches through MlflowClient, then the same number as raw HTTP."""
    client = MlflowClient(tracking_uri=server.url)
    raw = RawHttp(server.url)
    body = json.dumps(
        {
            "experiment_ids": [exp],
            "filter": SEARCH_FILTER,
            "order_by": SEARCH_ORDER,
            "max_results": SEARCH_MAX_RESULTS,
        }
    ).encode()
    path = "/api/2.0/mlflow/runs/search"

    def search():
        return client.search_runs(
            [exp], SEARCH_FILTER, order_by=SEARCH_ORDER, max_results=SEARCH_MAX_RESULTS
        )

    # Warm-ups (connections, caches) right before each loop, and the results for the
    # cross-server check.
    runs = search()
    client_s, raw_s = [], []
    with Meter(server) as mc:
        for _ in range(queries):
            t0 = time.perf_counter()
            search()
            client_s.append(time.perf_counter() - t0)
    raw_body = raw.call("POST", path, body)
    raw_runs = json.loads(raw_body).get("runs", [])
    with Meter(server) as mr:
        for _ in range(queries):
            t0 = time.perf_counter()
            raw.call("POST", path, body)
            raw_s.append(time.perf_counter() - t0)
    raw.close()
    return {
        "queries": queries,
        "matches": len(runs),
        "client_s": client_s,
        "raw_http_s": raw_s,
        "server_cpu_ms_per_query": 1000 * (mc.server_cpu_s + mr.server_cpu_s) / (2 * queries),
        "db_cpu_ms_per_query": 1000 * (mc.db_cpu_s + mr.db_cpu_s) / (2 * queries),
        "client_cpu_ms_per_query": 1000 * mc.client_cpu_s / queries,
        "raw_count_matches": len(raw_runs) == len(runs),
        "raw_response_bytes": len(raw_body),
        "signature": search_signature(runs),
    }


def populate_history(server: Server, points: int, threads: int) -> dict:
    """One run with a `points`-point metric 'hist', logged in batches of 1000."""
    client = MlflowClient(tracking_uri=server.url)
    exp = new_experiment(server, "history")
    run_id = client.create_run(exp).info.run_id
    ts = 1_700_000_000_000
    get_client = _per_thread_client(server.url)

    def log(start: int) -> None:
        stop = min(start + 1000, points)
        get_client().log_batch(
            run_id, metrics=[Metric("hist", s * 0.001, ts + s, s) for s in range(start, stop)]
        )

    with Meter(server) as m:
        run_parallel(log, range(0, points, 1000), threads)
    return {
        "run_id": run_id,
        "points": points,
        "wall_s": m.wall_s,
        "server_cpu_s": m.server_cpu_s,
        "db_cpu_s": m.db_cpu_s,
    }


NEXT_PAGE_TOKEN = re.compile(rb'"next_page_token"\s*:\s*"([^"]*)"')


def phase_history(server: Server, run_id: str, points: int, fetches: int) -> dict:
    """`fetches` x MlflowClient.get_metric_history of the whole series, then the same pages
    (25 000 points each, as the client asks) as raw HTTP, timed to the last byte of each page;
    the raw pages are parsed only after the clock stops."""
    client = MlflowClient(tracking_uri=server.url)
    raw = RawHttp(server.url)
    base = f"/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=hist"
    client.get_run(run_id)  # warm-up
    client_s, raw_s = [], []
    with Meter(server) as mc:
        for _ in range(fetches):
            t0 = time.perf_counter()
            history = client.get_metric_history(run_id, "hist")
            client_s.append(time.perf_counter() - t0)
    raw.call("GET", f"{base}&max_results=1")  # warm-up
    with Meter(server) as mr:
        for _ in range(fetches):
            pages, token = [], None
            t0 = time.perf_counter()
            while True:
                path = f"{base}&max_results={HISTORY_PAGE}"
                if token:
                    path += "&page_token=" + urllib.parse.quote(token)
                pages.append(raw.call("GET", path))
                found = NEXT_PAGE_TOKEN.search(pages[-1])
                token = found.group(1).decode() if found else None
                if not token:
                    break
            raw_s.append(time.perf_counter() - t0)
    raw.close()
    raw_steps = sorted(m["step"] for page in pages for m in json.loads(page).get("metrics", []))
    steps = sorted(h.step for h in history)
    expected = list(range(points))
    return {
        "fetches": fetches,
        "client_s": client_s,
        "raw_http_s": raw_s,
        "raw_pages": len(pages),
        "raw_bytes": sum(len(p) for p in pages),
        "server_cpu_s_per_fetch": (mc.server_cpu_s + mr.server_cpu_s) / (2 * fetches),
        "db_cpu_s_per_fetch": (mc.db_cpu_s + mr.db_cpu_s) / (2 * fetches),
        "client_cpu_s_per_fetch": mc.client_cpu_s / fetches,
        "complete": steps == expected and [int(x) for x in raw_steps] == expected,
    }


# ---------------------------------------------------------------------------------------------
# Several Cairn replicas on one PostgreSQL database (--backend postgres)


def _replica_worker(urls, run_ids, body_tail, threads, barrier, results) -> None:
    """One client process: `threads` threads, each with a keep-alive connection to every
    replica, sending its share of `run_ids` one `log_batch` each, request i to replica
    i mod len(urls) (client-side round-robin, as a load balancer would). The body is encoded
    once (only the run id changes), so the client's own CPU stays far below the servers'."""
    conns_by_thread = [[RawHttp(u) for u in urls] for _ in range(threads)]
    shares = [run_ids[t::threads] for t in range(threads)]
    errors: list[str] = []

    def work(t: int) -> None:
        conns = conns_by_thread[t]
        for i, run_id in enumerate(shares[t]):
            body = b'{"run_id": "' + run_id.encode() + body_tail
            try:
                conns[(i + t) % len(conns)].call("POST", "/api/2.0/mlflow/runs/log-batch", body)
            except Exception as e:  # noqa: BLE001 - reported to the parent
                errors.append(str(e))
                return

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    barrier.wait()  # every process connected: the parent starts the clock
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    for conns in conns_by_thread:
        for c in conns:
            c.close()
    results.put(errors)


def phase_replicas(
    replicas: list[Server], processes: int, threads: int, runs: int, batch: list[Metric]
) -> dict:
    """`runs` fresh runs x one `log_batch` of `batch`, from `processes` client processes of
    `threads` threads each, round-robin over `replicas`; wall time from the moment every
    client is connected to the last response; CPU of every replica's tree and of the
    database."""
    import multiprocessing

    urls = [r.url for r in replicas]
    client = MlflowClient(tracking_uri=urls[0])
    exp = new_experiment(replicas[0], f"replicas{len(replicas)}")
    run_ids = [client.create_run(exp).info.run_id for _ in range(runs)]
    tail = (
        '", "metrics": '
        + json.dumps(
            [{"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step} for m in batch]
        )
        + "}"
    ).encode()
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(processes + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_replica_worker,
            args=(urls, run_ids[p::processes], tail, threads, barrier, results),
        )
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    barrier.wait()
    cpu0 = sum(tree_cpu_s(r.pid) for r in replicas)
    db0 = db_cpu_s()
    t0 = time.perf_counter()
    errors = [e for _ in procs for e in results.get()]
    wall = time.perf_counter() - t0
    server_cpu = sum(tree_cpu_s(r.pid) for r in replicas) - cpu0
    db_cpu = db_cpu_s() - db0
    for proc in procs:
        proc.join()
    if errors:
        raise RuntimeError(f"{len(errors)} log_batch calls failed, first: {errors[0]}")
    # Every batch is there: each run has its 10 keys at their last step.
    sample = client.get_run(run_ids[-1]).data.metrics
    metrics = runs * len(batch)
    return {
        "replicas": len(replicas),
        "processes": processes,
        "threads": threads,
        "runs": runs,
        "metrics": metrics,
        "wall_s": wall,
        "metrics_per_s": metrics / wall,
        "server_cpu_ms_per_1000": 1000 * server_cpu / (metrics / 1000),
        "db_cpu_ms_per_1000": 1000 * db_cpu / (metrics / 1000),
        "complete": len(sample) == len({m.key for m in batch}),
    }


# ---------------------------------------------------------------------------------------------
# Driver


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, min(len(s) - 1, round(q / 100 * len(s) + 0.5) - 1))]


def main() -> None:
    global PG
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cairn-bin", help="the cairn binary (bench/run passes the release build)")
    ap.add_argument("--mlflow-only", action="store_true", help="run only mlflow (harness check)")
    ap.add_argument(
        "--cairn-only",
        action="store_true",
        help="run only cairn (to compare cairn builds quickly; no ratios against mlflow)",
    )
    ap.add_argument(
        "--quick",
        action="store_true",
        help="a small run to check the harness (coarse CPU figures: /proc counts 10 ms ticks)",
    )
    ap.add_argument(
        "--serve-artifacts",
        action="store_true",
        help="start both servers with --serve-artifacts (default: --no-serve-artifacts)",
    )
    ap.add_argument(
        "--no-mlflow-variants",
        action="store_true",
        help="skip the start-up/idle figures of MLflow's default and --workers 1 setups",
    )
    ap.add_argument("--rounds", type=int, help="rounds of each phase (default 2, quick 1)")
    ap.add_argument("--ingest-runs", type=int, help="runs per ingest round (default 100)")
    ap.add_argument("--log-metric-calls", type=int, help="default 1000")
    ap.add_argument("--search-runs", type=int, help="runs in the search experiment (default 2000)")
    ap.add_argument("--search-queries", type=int, help="queries per round (default 100)")
    ap.add_argument(
        "--crowd-runs",
        type=int,
        help="runs then added in other experiments before the search is repeated "
        "(default 20000, quick 2000; 0: no repeat)",
    )
    ap.add_argument(
        "--settle-s",
        type=float,
        help="with --backend postgres, seconds of quiet after the last population before a "
        "search phase (default 75: longer than autovacuum's one-minute naptime; quick 0)",
    )
    ap.add_argument(
        "--phases",
        help=f"the workload phases to run, comma-separated (default: all, {','.join(PHASES)}; "
        f"with --backend postgres also {','.join(PG_PHASES)})",
    )
    ap.add_argument(
        "--backend",
        choices=["sqlite", "postgres"],
        default="sqlite",
        help="the servers' store: a SQLite file each (default), or a database each on the "
        "PostgreSQL cluster named by CAIRN_TEST_POSTGRES_ADMIN_URI (bench/run --backend "
        "postgres starts one with scripts/pg-test-server)",
    )
    ap.add_argument("--replicas", type=int, default=3, help="cairn replicas (default 3)")
    ap.add_argument(
        "--replica-processes", type=int, default=4, help="client processes (default 4)"
    )
    ap.add_argument(
        "--replica-threads", type=int, default=4, help="threads per client process (default 4)"
    )
    ap.add_argument(
        "--replica-runs",
        type=int,
        help="runs x one 1000-metric log_batch per replicas round (default 400, quick 80)",
    )
    ap.add_argument("--history-points", type=int, help="default 100000")
    ap.add_argument("--history-fetches", type=int, help="fetches per round (default 3)")
    ap.add_argument("--startup-repeats", type=int, help="start-ups per flavor (default 3)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()

    quick = args.quick
    rounds = args.rounds or (1 if quick else 2)
    ingest_runs = args.ingest_runs or (16 if quick else 100)
    log_metric_calls = args.log_metric_calls or (200 if quick else 1000)
    search_runs = args.search_runs or (300 if quick else 2000)
    search_queries = args.search_queries or (10 if quick else 100)
    crowd_runs = args.crowd_runs if args.crowd_runs is not None else (2000 if quick else 20000)
    if args.backend != "postgres":
        settle_s = 0.0
    else:
        settle_s = args.settle_s if args.settle_s is not None else (0.0 if quick else 75.0)
    known = PHASES + (PG_PHASES if args.backend == "postgres" else [])
    phases = [p for p in (args.phases or ",".join(known)).split(",") if p]
    if unknown := set(phases) - set(known):
        ap.error(f"unknown phase(s) {', '.join(sorted(unknown))}; known: {', '.join(known)}")
    replica_runs = args.replica_runs or (80 if quick else 400)
    if args.backend == "postgres":
        admin = os.environ.get("CAIRN_TEST_POSTGRES_ADMIN_URI")
        if not admin:
            ap.error(
                "--backend postgres needs CAIRN_TEST_POSTGRES_ADMIN_URI (run it as "
                "bench/run --backend postgres, which starts scripts/pg-test-server)"
            )
        PG = PgCluster(admin)
    history_points = args.history_points or (20000 if quick else 100000)
    history_fetches = args.history_fetches or (1 if quick else 3)
    startup_repeats = (
        args.startup_repeats if args.startup_repeats is not None else (1 if quick else 3)
    )
    if args.mlflow_only and args.cairn_only:
        ap.error("--mlflow-only and --cairn-only exclude each other")
    if not args.mlflow_only and not args.cairn_bin:
        ap.error("--cairn-bin is required unless --mlflow-only")
    if args.cairn_bin:
        args.cairn_bin = os.path.abspath(args.cairn_bin)  # the servers run in their own dirs

    mlflow_main = Flavor(
        "mlflow",
        "mlflow",
        "mlflow server (4 workers, job execution off)",
        env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    )
    startup_flavors = [
        Flavor("mlflow_default", "mlflow", "mlflow server (defaults: 4 workers + job runner)"),
        mlflow_main,
        Flavor(
            "mlflow_lean",
            "mlflow",
            "mlflow server --workers 1 (job execution off)",
            env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
            extra_args=["--workers", "1"],
        ),
    ]
    if args.no_mlflow_variants:
        startup_flavors = [mlflow_main]
    cairn = Flavor("cairn", "cairn", "cairn server (release build)")
    main_flavors = [mlflow_main]
    if args.cairn_only:
        startup_flavors, main_flavors = [], []
    if not args.mlflow_only:
        startup_flavors.append(cairn)
        main_flavors.append(cairn)

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="cairn-bench-"))
    started = datetime.datetime.now(datetime.timezone.utc)
    results: dict = {
        "benchmark": "tracking-server",
        "started_utc": started.isoformat(timespec="seconds"),
        "command": _command_line(),
        "cairn": _cairn_identity(args.cairn_bin),
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": _cpu_model(),
            "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "loadavg_before": loadavg(),
            "python": platform.python_version(),
            "mlflow": mlflow.__version__,
            "postgresql": PG.version if PG else None,
        },
        "parameters": {
            "rounds": rounds,
            "ingest_runs": ingest_runs,
            "ingest_batch": 1000,
            "log_metric_calls": log_metric_calls,
            "search_runs": search_runs,
            "search_queries": search_queries,
            "crowd_runs": crowd_runs,
            "settle_s": settle_s,
            "phases": phases,
            "search_filter": SEARCH_FILTER,
            "search_order_by": SEARCH_ORDER,
            "search_max_results": SEARCH_MAX_RESULTS,
            "history_points": history_points,
            "history_fetches": history_fetches,
            "startup_repeats": startup_repeats,
            "serve_artifacts": args.serve_artifacts,
            "backend": args.backend,
            "replicas": args.replicas,
            "replica_processes": args.replica_processes,
            "replica_threads": args.replica_threads,
            "replica_runs": replica_runs,
        },
        "flavors": {f.name: f.label for f in startup_flavors},
        "startup": {},
        "servers": {},
    }
    busy0 = machine_busy_s()
    own0 = own_cpu_s()
    db0 = db_cpu_s()
    ours = 0.0  # CPU of the server trees we started, stopped ones included
    servers: dict[str, Server] = {}  # the workload's servers while they run

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    try:
        # --- start-up and idle memory, alternating flavors
        for rep in range(startup_repeats):
            order = startup_flavors if rep % 2 == 0 else startup_flavors[::-1]
            for flavor in order:
                server = start_server(flavor, args, root)
                mem = settled_memory(server)
                idle = idle_cpu_rate(server, 2.0 if quick else 5.0)
                ours += tree_cpu_s(server.pid)
                stop_server(server)
                entry = results["startup"].setdefault(flavor.name, [])
                entry.append({"startup_s": server.startup_s, "idle": mem, "idle_cpu_frac": idle})
                log(
                    f"start-up {flavor.name}: {server.startup_s * 1000:.1f} ms, idle RSS "
                    f"{mem['rss_mib']:.1f} MiB / Pss {mem['pss_mib']:.1f} MiB in "
                    f"{mem['processes']} processes, idle CPU {idle * 100:.2f} %"
                )

        # --- the workload, both servers up at once, phases alternating between them
        for f in main_flavors:
            servers[f.name] = start_server(f, args, root)
        for name, server in servers.items():
            results["servers"][name] = {
                "label": server.flavor.label,
                "idle": settled_memory(server),
                "phases": {},
            }

        def settle() -> None:
            """Waits `settle_s` after the populations just made (see the module docstring)."""
            if settle_s > 0:
                log(f"letting the databases settle for {settle_s:.0f} s")
                time.sleep(settle_s)

        def rounds_of(phase: str, fn) -> None:
            for r in range(rounds):
                names = list(servers) if r % 2 == 0 else list(servers)[::-1]
                for name in names:
                    res = fn(servers[name])
                    results["servers"][name]["phases"].setdefault(phase, []).append(res)
                    log(f"{phase} {name} round {r + 1}: {_brief(res)}")

        if "ingest" in phases:
            batch = batch_metrics(10, 100, seed=1)
            rounds_of("ingest_1", lambda s: phase_ingest(s, ingest_runs, 1, batch))
            rounds_of("ingest_8", lambda s: phase_ingest(s, ingest_runs, 8, batch))
        if "log_metric" in phases:
            rounds_of("log_metric", lambda s: phase_log_metric(s, log_metric_calls))

        if "search" in phases:
            search_exp = {}
            for name, server in servers.items():
                res = populate_search(server, search_runs, 8)
                search_exp[name] = res["experiment_id"]
                results["servers"][name]["populate_search"] = res
                log(f"populated search experiment on {name}: {res['wall_s']:.1f} s")
            search = lambda s: phase_search(s, search_exp[s.flavor.name], search_queries)  # noqa: E731
            settle()
            rounds_of("search", search)
            if crowd_runs:
                # The same query once other experiments hold `crowd_runs` more runs of the same
                # shape: its cost should follow the searched experiment, not the database.
                for name, server in servers.items():
                    res = populate_crowd(server, crowd_runs, 8)
                    results["servers"][name]["populate_crowd"] = res
                    log(f"added {crowd_runs} runs in other experiments on {name}: {res['wall_s']:.1f} s")
                settle()
                rounds_of("search_crowded", search)

        if "history" in phases:
            history_run = {}
            for name, server in servers.items():
                res = populate_history(server, history_points, 8)
                history_run[name] = res["run_id"]
                results["servers"][name]["populate_history"] = res
                log(f"populated {history_points}-point history on {name}: {res['wall_s']:.1f} s")
            rounds_of(
                "history",
                lambda s: phase_history(
                    s, history_run[s.flavor.name], history_points, history_fetches
                ),
            )

        for name, server in servers.items():
            results["servers"][name]["loaded"] = tree_memory(server.pid)
            results["servers"][name]["server_cpu_total_s"] = tree_cpu_s(server.pid)
            ours += tree_cpu_s(server.pid)
            stop_server(server)
        servers.clear()

        if "replicas" in phases and not args.mlflow_only:
            # N cairn replicas on one fresh database, then the same ingest through 1 and
            # through all N (ABBA), from several client processes.
            uri = PG.create_database("cairn_replicas")
            replicas = []
            try:
                for i in range(args.replicas):
                    replicas.append(start_server(cairn, args, root, store_uri=uri))
                batch = batch_metrics(10, 100, seed=2)
                out = results["replicas"] = {}
                for r in range(max(rounds, 2)):
                    for n in (1, args.replicas) if r % 2 == 0 else (args.replicas, 1):
                        res = phase_replicas(
                            replicas[:n],
                            args.replica_processes,
                            args.replica_threads,
                            replica_runs,
                            batch,
                        )
                        out.setdefault(str(n), []).append(res)
                        log(f"replicas {n} round {r + 1}: {_brief(res)}")
            finally:
                for server in replicas:
                    ours += tree_cpu_s(server.pid)
                    stop_server(server)
    except BaseException as e:
        # Keep what was measured, say where it stopped, and leave no server behind.
        results["error"] = f"{type(e).__name__}: {e}"
        path = out_dir / f"tracking-server-{started.strftime('%Y%m%dT%H%M%SZ')}-partial.json"
        path.write_text(json.dumps(results, indent=1) + "\n")
        print(f"partial results: {path}", file=sys.stderr)
        raise
    finally:
        for server in servers.values():
            stop_server(server)
        shutil.rmtree(root, ignore_errors=True)

    results["machine"]["loadavg_after"] = loadavg()
    busy = machine_busy_s() - busy0
    own = own_cpu_s() - own0
    results["machine"]["busy_cpu_s"] = busy
    db = db_cpu_s() - db0
    results["machine"]["db_cpu_s"] = db
    results["machine"]["bench_cpu_s"] = own + ours + db
    results["machine"]["other_cpu_s"] = max(0.0, busy - own - ours - db)
    results["finished_utc"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"
    )
    results["wall_s"] = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds()

    summary = summarize(results)
    results["summary"] = summary
    path = out_dir / f"tracking-server-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print()
    print(render(results))
    print(f"\nresults: {path}")


def _command_line() -> str:
    """What was typed: bench/run's arguments, without the --cairn-bin it adds itself."""
    argv, skip = [], False
    for a in sys.argv[1:]:
        if skip:
            skip = False
        elif a == "--cairn-bin":
            skip = True
        else:
            argv.append(a)
    return " ".join(["bench/run", *argv])


def _cairn_identity(binary: str | None) -> dict | None:
    """Which cairn was measured: the binary's path and time, the work tree's commit."""
    if not binary:
        return None
    st = os.stat(binary)
    repo = Path(__file__).resolve().parent.parent
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return {
        "binary": binary,
        "binary_mtime_utc": datetime.datetime.fromtimestamp(
            st.st_mtime, datetime.timezone.utc
        ).isoformat(timespec="seconds"),
        "git_head": head,
        "work_tree_modified": bool(dirty),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor()


def _brief(res: dict) -> str:
    keys = [
        "metrics_per_s",
        "server_cpu_ms_per_1000",
        "client_cpu_ms_per_1000",
        "db_cpu_ms_per_1000",
        "calls_per_s",
        "server_cpu_ms_per_call",
        "server_cpu_ms_per_query",
        "server_cpu_s_per_fetch",
        "db_cpu_ms_per_query",
        "db_cpu_s_per_fetch",
        "client_cpu_ms_per_query",
        "client_cpu_s_per_fetch",
    ]
    parts = [f"{k}={res[k]:.3g}" for k in keys if k in res]
    for k in ("client_s", "raw_http_s"):
        if k in res:
            parts.append(f"{k} p50={statistics.median(res[k]) * 1000:.1f}ms")
    if "complete" in res:
        parts.append(f"complete={res['complete']}")
    return ", ".join(parts)


def summarize(results: dict) -> dict:
    """Headline figures per server (best round for throughput and CPU, pooled samples for
    latency), the mlflow / cairn ratios, and the cross-server result checks."""
    s: dict = {"per_server": {}, "ratios": {}, "checks": {}}
    for name, entries in results["startup"].items():
        s["per_server"].setdefault(name, {}).update(
            {
                "startup_ms": 1000 * statistics.median(e["startup_s"] for e in entries),
                "idle_rss_mib": statistics.median(e["idle"]["rss_mib"] for e in entries),
                "idle_pss_mib": statistics.median(e["idle"]["pss_mib"] for e in entries),
                "idle_processes": entries[0]["idle"]["processes"],
            }
        )
    for name, srv in results["servers"].items():
        p = srv["phases"]
        out = s["per_server"].setdefault(name, {})
        out["loaded_rss_mib"] = srv["loaded"]["rss_mib"]
        out["loaded_pss_mib"] = srv["loaded"]["pss_mib"]
        out["peak_rss_mib"] = srv["loaded"]["hwm_mib"]
        for t in (1, 8):
            rs = p.get(f"ingest_{t}")
            if not rs:
                continue
            out[f"ingest{t}_metrics_per_s"] = max(r["metrics_per_s"] for r in rs)
            out[f"ingest{t}_server_cpu_ms_per_1000"] = min(r["server_cpu_ms_per_1000"] for r in rs)
            out[f"ingest{t}_client_cpu_ms_per_1000"] = min(r["client_cpu_ms_per_1000"] for r in rs)
            if PG:
                out[f"ingest{t}_db_cpu_ms_per_1000"] = min(r["db_cpu_ms_per_1000"] for r in rs)
                out[f"ingest{t}_server_db_cpu_ms_per_1000"] = min(
                    r["server_cpu_ms_per_1000"] + r["db_cpu_ms_per_1000"] for r in rs
                )
        if lm := p.get("log_metric"):
            out["log_metric_calls_per_s"] = max(r["calls_per_s"] for r in lm)
            out["log_metric_server_cpu_ms_per_call"] = min(r["server_cpu_ms_per_call"] for r in lm)
            if PG:
                out["log_metric_db_cpu_ms_per_call"] = min(r["db_cpu_ms_per_call"] for r in lm)
        for phase in ("search", "search_crowded"):
            if phase not in p:
                continue
            client = [x for r in p[phase] for x in r["client_s"]]
            raw = [x for r in p[phase] for x in r["raw_http_s"]]
            out[f"{phase}_client_p50_ms"] = 1000 * pct(client, 50)
            out[f"{phase}_client_p95_ms"] = 1000 * pct(client, 95)
            out[f"{phase}_raw_p50_ms"] = 1000 * pct(raw, 50)
            out[f"{phase}_raw_p95_ms"] = 1000 * pct(raw, 95)
            for who in ("server", "client", "db") if PG else ("server", "client"):
                out[f"{phase}_{who}_cpu_ms_per_query"] = min(
                    r[f"{who}_cpu_ms_per_query"] for r in p[phase]
                )
        if "search_crowded" in p and out["search_server_cpu_ms_per_query"] > 0:
            # Crowded / alone: 1.0 means the other experiments' runs cost the query nothing.
            # (A --quick run may see no CPU tick at all: /proc counts 10 ms ticks.)
            s.setdefault("search_growth", {})[name] = {
                "server_cpu": out["search_crowded_server_cpu_ms_per_query"]
                / out["search_server_cpu_ms_per_query"],
                "raw_p50": out["search_crowded_raw_p50_ms"] / out["search_raw_p50_ms"],
            }
        if hs := p.get("history"):
            hc = [x for r in hs for x in r["client_s"]]
            hr = [x for r in hs for x in r["raw_http_s"]]
            out["history_client_s"] = statistics.median(hc)
            out["history_raw_s"] = statistics.median(hr)
            out["history_server_cpu_s"] = min(r["server_cpu_s_per_fetch"] for r in hs)
            out["history_client_cpu_s"] = min(r["client_cpu_s_per_fetch"] for r in hs)
            if PG:
                out["history_db_cpu_s"] = min(r["db_cpu_s_per_fetch"] for r in hs)
            out["history_complete"] = all(r["complete"] for r in hs)
    if reps := results.get("replicas"):
        # Best round per replica count; growth = N replicas / 1 replica.
        out = s["replicas"] = {
            n: {
                "metrics_per_s": max(r["metrics_per_s"] for r in rs),
                "server_cpu_ms_per_1000": min(r["server_cpu_ms_per_1000"] for r in rs),
                "db_cpu_ms_per_1000": min(r["db_cpu_ms_per_1000"] for r in rs),
                "complete": all(r["complete"] for r in rs),
            }
            for n, rs in reps.items()
        }
        if "1" in out and len(out) > 1:
            n = max(out, key=int)
            s["replicas_growth"] = out[n]["metrics_per_s"] / out["1"]["metrics_per_s"]
    per = s["per_server"]
    if "cairn" in per and "mlflow" in per:
        c = per["cairn"]
        higher_better = {
            "ingest1_metrics_per_s",
            "ingest8_metrics_per_s",
            "log_metric_calls_per_s",
        }
        for key, cv in c.items():
            if not isinstance(cv, (int, float)) or isinstance(cv, bool) or key == "idle_processes":
                continue
            for ref in ("mlflow", "mlflow_default", "mlflow_lean"):
                mv = per.get(ref, {}).get(key)
                if mv is None or cv == 0 or mv == 0:
                    continue
                ratio = cv / mv if key in higher_better else mv / cv
                s["ratios"].setdefault(key, {})[ref] = ratio
        names = list(results["servers"])
        for phase in ("search", "search_crowded"):
            if phase not in results["servers"]["cairn"]["phases"]:
                continue
            sig = {n: results["servers"][n]["phases"][phase][0]["signature"] for n in names}
            # Same runs in the same order; and bit-identical metric values (the data is the
            # same, so a difference means a value changed on its way through a server).
            s["checks"][f"{phase}_same_runs_in_order"] = [x[0] for x in sig["mlflow"]] == [
                x[0] for x in sig["cairn"]
            ]
            s["checks"][f"{phase}_values_identical"] = sig["mlflow"] == sig["cairn"]
            s["checks"][f"{phase}_results_count"] = {n: len(v) for n, v in sig.items()}
        if "search_crowded" in results["servers"]["cairn"]["phases"]:
            # The other experiments' runs must not change the searched experiment's page.
            s["checks"]["search_crowded_same_page"] = {
                n: results["servers"][n]["phases"]["search"][0]["signature"]
                == results["servers"][n]["phases"]["search_crowded"][0]["signature"]
                for n in names
            }
        if all("history_complete" in per[n] for n in names):
            s["checks"]["history_complete"] = {n: per[n]["history_complete"] for n in names}
    return s


def render(results: dict) -> str:
    s = results["summary"]
    per = s["per_server"]
    names = [n for n in ("mlflow_default", "mlflow", "mlflow_lean", "cairn") if n in per]
    points = results["parameters"]["history_points"]
    rows = [
        ("start-up to healthy /health (ms, median)", "startup_ms", "{:.1f}"),
        ("idle RSS, tree sum (MiB)", "idle_rss_mib", "{:.1f}"),
        ("idle Pss, tree sum (MiB)", "idle_pss_mib", "{:.1f}"),
        ("processes in the tree", "idle_processes", "{}"),
        ("ingest 1 thread: metrics/s", "ingest1_metrics_per_s", "{:.0f}"),
        ("ingest 1 thread: server CPU ms/1000 metrics", "ingest1_server_cpu_ms_per_1000", "{:.2f}"),
        ("ingest 1 thread: client CPU ms/1000 metrics", "ingest1_client_cpu_ms_per_1000", "{:.2f}"),
        ("ingest 1 thread: database CPU ms/1000 metrics", "ingest1_db_cpu_ms_per_1000", "{:.2f}"),
        ("ingest 1 thread: server + database CPU ms/1000", "ingest1_server_db_cpu_ms_per_1000", "{:.2f}"),
        ("ingest 8 threads: metrics/s", "ingest8_metrics_per_s", "{:.0f}"),
        ("ingest 8 threads: server CPU ms/1000 metrics", "ingest8_server_cpu_ms_per_1000", "{:.2f}"),
        ("ingest 8 threads: client CPU ms/1000 metrics", "ingest8_client_cpu_ms_per_1000", "{:.2f}"),
        ("ingest 8 threads: database CPU ms/1000 metrics", "ingest8_db_cpu_ms_per_1000", "{:.2f}"),
        ("ingest 8 threads: server + database CPU ms/1000", "ingest8_server_db_cpu_ms_per_1000", "{:.2f}"),
        ("log_metric: calls/s", "log_metric_calls_per_s", "{:.0f}"),
        ("log_metric: server CPU ms / call", "log_metric_server_cpu_ms_per_call", "{:.3f}"),
        ("log_metric: database CPU ms / call", "log_metric_db_cpu_ms_per_call", "{:.3f}"),
        ("search_runs via client: p50 (ms)", "search_client_p50_ms", "{:.2f}"),
        ("search_runs via client: p95 (ms)", "search_client_p95_ms", "{:.2f}"),
        ("search_runs raw HTTP: p50 (ms)", "search_raw_p50_ms", "{:.2f}"),
        ("search_runs raw HTTP: p95 (ms)", "search_raw_p95_ms", "{:.2f}"),
        ("search_runs: server CPU ms / query", "search_server_cpu_ms_per_query", "{:.2f}"),
        ("search_runs: database CPU ms / query", "search_db_cpu_ms_per_query", "{:.2f}"),
        ("search_runs via client: client CPU ms/query", "search_client_cpu_ms_per_query", "{:.2f}"),
        ("search_runs, crowded: raw HTTP p50 (ms)", "search_crowded_raw_p50_ms", "{:.2f}"),
        ("search_runs, crowded: raw HTTP p95 (ms)", "search_crowded_raw_p95_ms", "{:.2f}"),
        ("search_runs, crowded: server CPU ms / query", "search_crowded_server_cpu_ms_per_query", "{:.2f}"),
        ("search_runs, crowded: database CPU ms / query", "search_crowded_db_cpu_ms_per_query", "{:.2f}"),
        (f"get_metric_history {points} points via client (s)", "history_client_s", "{:.3f}"),
        (f"get_metric_history {points} points raw HTTP (s)", "history_raw_s", "{:.3f}"),
        ("get_metric_history: server CPU s / fetch", "history_server_cpu_s", "{:.3f}"),
        ("get_metric_history: database CPU s / fetch", "history_db_cpu_s", "{:.3f}"),
        ("get_metric_history via client: client CPU s / fetch", "history_client_cpu_s", "{:.3f}"),
        ("RSS after the workload, tree sum (MiB)", "loaded_rss_mib", "{:.1f}"),
        ("Pss after the workload, tree sum (MiB)", "loaded_pss_mib", "{:.1f}"),
        ("peak RSS, sum of VmHWM (MiB)", "peak_rss_mib", "{:.1f}"),
    ]
    head = "| | " + " | ".join(names) + (" | ratio |" if "cairn" in per else " |")
    lines = [head, "|---" * (len(names) + 1 + ("cairn" in per)) + "|"]
    for label, key, fmt in rows:
        cells = [fmt.format(per[n][key]) if key in per[n] else "" for n in names]
        line = f"| {label} | " + " | ".join(cells) + " |"
        if "cairn" in per:
            r = s["ratios"].get(key, {})
            ref = "mlflow" if "mlflow" in r else next(iter(r), None)
            line += f" {r[ref]:.1f}× |" if ref else " |"
        lines.append(line)
    m = results["machine"]
    lines.append("")
    lines.append(
        f"machine: nproc {m['nproc']}, {m['cpu']}, {m['mem_gib']} GiB; loadavg before "
        f"{m['loadavg_before']}, after {m['loadavg_after']}; busy CPU {m['busy_cpu_s']:.0f} s, "
        f"of which this benchmark {m['bench_cpu_s']:.0f} s and other processes "
        f"{m['other_cpu_s']:.0f} s; wall {results['wall_s']:.0f} s"
    )
    if s.get("search_growth"):
        crowd = results["parameters"]["crowd_runs"]
        growth = ", ".join(
            f"{n} server CPU ×{g['server_cpu']:.2f}, raw p50 ×{g['raw_p50']:.2f}"
            for n, g in s["search_growth"].items()
        )
        lines.append(f"search_runs with {crowd} more runs in other experiments: {growth}")
    if s.get("replicas"):
        p = results["parameters"]
        lines.append("")
        lines.append(
            f"cairn replicas on one PostgreSQL database: {p['replica_runs']} x log_batch of 1000 "
            f"metrics per round from {p['replica_processes']} client processes x "
            f"{p['replica_threads']} threads, round-robin (best round):"
        )
        for n, r in sorted(s["replicas"].items(), key=lambda kv: int(kv[0])):
            lines.append(
                f"- {n} replica(s): {r['metrics_per_s']:.0f} metrics/s, server CPU "
                f"{r['server_cpu_ms_per_1000']:.2f} ms/1000, database CPU "
                f"{r['db_cpu_ms_per_1000']:.2f} ms/1000, complete={r['complete']}"
            )
        if "replicas_growth" in s:
            lines.append(f"- throughput, most replicas / 1: ×{s['replicas_growth']:.2f}")
    if results["machine"].get("postgresql"):
        lines.append(
            f"database: {results['machine']['postgresql'].split(',')[0]}, one database per "
            f"server on the same cluster; its CPU over the whole run "
            f"{results['machine']['db_cpu_s']:.0f} s"
        )
    if s["checks"]:
        lines.append(f"checks: {json.dumps(s['checks'])}")
    lines.append(
        "ratios: mlflow / cairn for times, CPU and memory; cairn / mlflow for rates "
        "(so > 1 means cairn is better); the ratio column uses the 'mlflow' flavor "
        "(4 workers, job execution off)."
    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
