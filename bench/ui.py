"""Browser benchmark of the web UI: Cairn's UI against MLflow's React UI, same machine, same run.

Run it through `bench/ui` (which prepares the venv and the binary). What it does:

1. Populates one data directory per server, each through that server's REST API (the same
   JSON requests the official client sends: `runs/create`, `runs/log-batch`; 8 client threads,
   keep-alive connections): an experiment of N runs (default 100 000), each with 5 params,
   3 metrics and 2 tags, start times one second apart; and one run holding a 100 000-point
   metric `signal` (100 `log-batch` calls of 1000 values). A populated directory is reused on
   the next run (`--data`), since filling MLflow takes long.
2. Starts both servers on their populated stores (`mlflow server` with its default 4 workers
   and job execution off; `cairn server`, release build unless CAIRN_BIN says otherwise).
3. With Debian's Chromium (playwright, `executable_path`; no browser download), a fresh
   browser context (cold cache) per measurement, alternating the servers round by round
   (ABBA), measures:
   - runs table: from `page.goto` of the experiment's page to the newest run's name
     (`run-<N-1>`, first row of both tables, sorted by start time) being in the page;
   - chart: from `page.goto` of the long run's page to its `signal` chart drawn (Cairn: the
     uPlot canvas has pixels; MLflow: its plotly line path is drawn), and, for Cairn, the
     time from the history request to the canvas drawn (`data-drawn-ms`).
Medians and every sample are printed and written to bench/results/ui-<date>.json.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import http.client
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
HISTORY = 100_000
EXPERIMENT = "ui-bench"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process on a data directory."""

    def __init__(self, kind: str, data: Path, cairn_bin: str | None):
        self.kind = kind
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data.mkdir(parents=True, exist_ok=True)
        db = f"sqlite:///{data}/store.db"
        art = str(data / "artifacts")
        log = open(data / "server.log", "ab")
        env = dict(os.environ)
        if kind == "mlflow":
            env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
            mlflow = Path(sys.executable).parent / "mlflow"
            cmd = [str(mlflow), "server", "--backend-store-uri", db, "--default-artifact-root", art,
                   "--host", "127.0.0.1", "--port", str(self.port)]
        else:
            cmd = [cairn_bin, "server", "--backend-store-uri", db, "--default-artifact-root", art,
                   "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, start_new_session=True)
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{kind} server exited; see {data}/server.log")
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{kind} server did not answer /health")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


class Api:
    """Keep-alive JSON requests, one connection per thread."""

    def __init__(self, port: int):
        self.port = port
        self.local = threading.local()

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        for attempt in range(3):
            c = getattr(self.local, "c", None)
            if c is None:
                c = self.local.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
            try:
                data = json.dumps(body).encode() if body is not None else None
                c.request(method, f"/api/2.0/mlflow/{path}", body=data,
                          headers={"Content-Type": "application/json"})
                r = c.getresponse()
                text = r.read()
                if r.status != 200:
                    raise RuntimeError(f"{path}: {r.status} {text[:300]!r}")
                return json.loads(text or b"{}")
            except (OSError, http.client.HTTPException):
                self.local.c = None
                if attempt == 2:
                    raise
        raise AssertionError


def populate(server: Server, runs: int) -> dict:
    """Fills the server through its API; returns what the measurements navigate to."""
    marker = server.data / "populated.json"
    if marker.exists():
        info = json.loads(marker.read_text())
        if info["runs"] == runs:
            return info
        raise SystemExit(f"{server.data} holds {info['runs']} runs, not {runs}: use another --data")
    api = Api(server.port)
    t0 = 1_700_000_000_000
    started = time.time()
    # Resumable: an interrupted fill goes on from the runs already there (named run-<i>).
    have = 0
    found = api.call("GET", f"experiments/get-by-name?experiment_name={EXPERIMENT}") if (server.data / "started").exists() else None
    if found:
        exp = found["experiment"]["experiment_id"]
        token = None
        while True:
            page = api.call("POST", "runs/search", {"experiment_ids": [exp], "max_results": 1000, "page_token": token})
            have += sum(1 for r in page.get("runs", []) if r["info"]["run_name"].startswith("run-"))
            token = page.get("next_page_token")
            if not token:
                break
        # Any run half-written when the fill stopped is the newest; write it again under a new id.
        have = max(0, have - 8)
        print(f"  resuming at run {have}", flush=True)
    else:
        exp = api.call("POST", "experiments/create", {"name": EXPERIMENT})["experiment_id"]
        (server.data / "started").write_text(exp)

    def one(i: int) -> None:
        run = api.call("POST", "runs/create", {
            "experiment_id": exp, "run_name": f"run-{i:06d}", "start_time": t0 + i * 1000,
            "tags": [{"key": "team", "value": ["vision", "nlp", "speech"][i % 3]}],
        })["run"]["info"]["run_id"]
        api.call("POST", "runs/log-batch", {
            "run_id": run,
            "params": [{"key": "lr", "value": str(10 ** -(i % 5))}, {"key": "batch", "value": str(2 ** (i % 8))},
                       {"key": "optimizer", "value": ["adam", "sgd"][i % 2]}, {"key": "depth", "value": str(i % 12)},
                       {"key": "seed", "value": str(i)}],
            "metrics": [{"key": k, "value": v, "timestamp": t0 + i * 1000 + 500, "step": 0}
                        for k, v in (("acc", (i % 1000) / 1000), ("loss", 1 / (1 + i % 97)), ("f1", (i % 777) / 777))],
            "tags": [{"key": "owner", "value": f"user{i % 17}"}],
        })

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        done = 0
        for _ in pool.map(one, range(have, runs)):
            done += 1
            if done % 5000 == 0:
                print(f"  {server.kind}: {done} runs, {time.time() - started:.0f} s", flush=True)
    # The long history, in a run that starts before all others (so it is not the newest).
    long_run = api.call("POST", "runs/create", {"experiment_id": exp, "run_name": "long-history",
                                                 "start_time": t0 - 10_000})["run"]["info"]["run_id"]
    for start in range(0, HISTORY, 1000):
        api.call("POST", "runs/log-batch", {"run_id": long_run, "metrics": [
            {"key": "signal", "value": float((s * 7919) % 1000) + (5000.0 if s == 54_321 else 0.0),
             "timestamp": t0 + s, "step": s} for s in range(start, start + 1000)]})
    info = {"runs": runs, "experiment_id": exp, "long_run": long_run,
            "populate_seconds": round(time.time() - started, 1)}
    marker.write_text(json.dumps(info))
    return info


# ----- measurements -------------------------------------------------------------------------

def measure_table(browser, server: Server, info: dict) -> float:
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    page = ctx.new_page()
    newest = f"run-{info['runs'] - 1:06d}"
    url = f"{server.url}/#/experiments/{info['experiment_id']}"
    if server.kind == "mlflow":
        url += "/runs"
    t = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function(f"() => document.body && document.body.innerText.includes({json.dumps(newest)})",
                           timeout=120_000, polling="raf")
    dt = time.perf_counter() - t
    ctx.close()
    return dt * 1000


CAIRN_DRAWN = """() => { const c = document.querySelector('.chart[data-metric="signal"] canvas');
  if (!c || !c.width) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i]) return true; return false; }"""
# MLflow's run page charts (plotly): the trace's line path with its points.
MLFLOW_DRAWN = """() => { for (const p of document.querySelectorAll('path.js-line'))
  if ((p.getAttribute('d') || '').length > 200) return true; return false; }"""


def measure_chart(browser, server: Server, info: dict) -> tuple[float, float | None]:
    ctx = browser.new_context(viewport={"width": 1366, "height": 768})
    page = ctx.new_page()
    base = f"{server.url}/#/experiments/{info['experiment_id']}/runs/{info['long_run']}"
    url = base if server.kind == "cairn" else base + "/model-metrics"
    t = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function(CAIRN_DRAWN if server.kind == "cairn" else MLFLOW_DRAWN,
                           timeout=120_000, polling="raf")
    dt = (time.perf_counter() - t) * 1000
    inner = None
    if server.kind == "cairn":
        page.wait_for_function("() => document.querySelector('.chart[data-metric=\"signal\"]').dataset.drawnMs")
        inner = float(page.eval_on_selector('.chart[data-metric="signal"]', "e => e.dataset.drawnMs"))
    ctx.close()
    return dt, inner


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--mlflow-runs", type=int, help="runs of MLflow's experiment (default --runs): "
                    "filling MLflow through its API runs at a few runs/s on a busy 2-core machine")
    ap.add_argument("--cairn-also", type=int, help="also measure Cairn on an experiment of this many runs "
                    "(its own data directory), to compare with MLflow at the same size")
    ap.add_argument("--rounds", type=int, default=4, help="measurements per server and page (ABBA)")
    ap.add_argument("--data", type=Path, default=Path("/tmp/cairn-ui-bench"),
                    help="data directories (reused when already populated)")
    ap.add_argument("--only", choices=["cairn", "mlflow"], help="one server only (populate/check)")
    ap.add_argument("--populate-only", action="store_true")
    args = ap.parse_args()
    cairn_bin = os.environ.get("CAIRN_BIN")
    # (label, server kind, runs)
    setups = [("cairn", "cairn", args.runs), ("mlflow", "mlflow", args.mlflow_runs or args.runs)]
    if args.cairn_also:
        setups.insert(1, (f"cairn-{args.cairn_also}", "cairn", args.cairn_also))
    if args.only:
        setups = [x for x in setups if x[1] == args.only]
    labels = [x[0] for x in setups]
    servers: dict[str, Server] = {}
    infos: dict[str, dict] = {}
    try:
        for label, kind, runs in setups:
            servers[label] = Server(kind, args.data / f"{kind}-{runs}", cairn_bin)
            print(f"populating {label} ({runs} runs) through its API…", flush=True)
            infos[label] = populate(servers[label], runs)
            print(f"  {label}: {infos[label]}", flush=True)
        if args.populate_only:
            return
        from playwright.sync_api import sync_playwright

        samples: dict[str, dict[str, list]] = {
            k: {"table_ms": [], "chart_ms": [], "chart_request_to_drawn_ms": []} for k in labels}
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            # One warm-up of each (the servers' caches, Chromium's start), not counted.
            for k in labels:
                measure_table(browser, servers[k], infos[k])
                measure_chart(browser, servers[k], infos[k])
            for r in range(args.rounds):
                order = labels if r % 2 == 0 else list(reversed(labels))
                for k in order:
                    samples[k]["table_ms"].append(round(measure_table(browser, servers[k], infos[k]), 1))
                for k in order:
                    dt, inner = measure_chart(browser, servers[k], infos[k])
                    samples[k]["chart_ms"].append(round(dt, 1))
                    if inner is not None:
                        samples[k]["chart_request_to_drawn_ms"].append(round(inner, 1))
            browser.close()
    finally:
        for s in servers.values():
            s.stop()
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"nproc": os.cpu_count(), "platform": platform.platform()},
        "cairn_bin": cairn_bin, "history_points": HISTORY,
        "populate": infos, "samples": samples,
        "medians": {k: {m: (statistics.median(v) if v else None) for m, v in samples[k].items()} for k in labels},
    }
    out = ROOT / "bench" / "results" / f"ui-{datetime.date.today()}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result["medians"], indent=1))
    for k in labels:
        if k.startswith("cairn") and "mlflow" in labels:
            for m in ("table_ms", "chart_ms"):
                a, b = result["medians"][k][m], result["medians"]["mlflow"][m]
                print(f"{m}: {k} {a} ms, mlflow {b} ms, mlflow / {k} = {b / a:.1f}")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
