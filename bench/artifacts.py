"""Artifact-proxy benchmark: a 1 GiB artifact up and down through `mlflow server` and
`cairn server`, same machine, same run. Run it through `bench/run --artifacts`.

Both servers serve artifacts (`--serve-artifacts`, no default artifact root, a local
`--artifacts-destination`), so every byte crosses the server. Each round, per server, in ABBA
order:

- upload: the official client's `log_artifact` of the 1 GiB file (`PUT` through the proxy), and
  the same `PUT` sent by curl;
- download: the official client's `download_artifacts`, and a curl `GET` to /dev/null;

timed end to end (throughput = size / wall time). curl takes the Python client out of the
measurement: what is left is the server. While each transfer runs, a sampler reads the summed
VmRSS of the server's process tree every 20 ms; the figure reported is the peak minus the tree's
settled RSS before the round (and VmHWM, the kernel's own peak, is kept too).

Results: bench/results/artifacts-*.json and a Markdown table on stdout.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "1200"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

import argparse
import datetime
import hashlib
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from tracking_server import (
    Flavor,
    _cpu_model,
    _free_port,
    _healthy,
    loadavg,
    settled_memory,
    stop_server_proc,
    tree_cpu_s,
    tree_memory,
)

MIB = 1 << 20
STARTUP_TIMEOUT_S = 120


class Peak:
    """Samples the summed VmRSS of a process tree every 20 ms until stopped; keeps the maximum."""

    def __init__(self, pid: int):
        self.pid = pid
        self.peak = 0.0
        self.hwm = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            mem = tree_memory(self.pid)
            self.peak = max(self.peak, mem["rss_mib"])
            self.hwm = max(self.hwm, mem["hwm_mib"])
            self._stop.wait(0.02)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        mem = tree_memory(self.pid)
        self.peak = max(self.peak, mem["rss_mib"])
        self.hwm = max(self.hwm, mem["hwm_mib"])


class Server:
    def __init__(self, flavor: Flavor, cairn_bin: str | None, root: Path):
        self.flavor = flavor
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{flavor.name}-", dir=root))
        self.destination = self.workdir / "mlartifacts"
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        common = [
            "--backend-store-uri",
            f"sqlite:///{self.workdir / 'tracking.db'}",
            "--serve-artifacts",
            "--artifacts-destination",
            str(self.destination),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ]
        if flavor.kind == "mlflow":
            command = [sys.executable, "-m", "mlflow", "server", *common, *flavor.extra_args]
        else:
            command = [cairn_bin, "server", *common, *flavor.extra_args]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "MLFLOW_"))}
        env.update(flavor.env)
        with open(self.workdir / "server.log", "wb") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not _healthy(port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                stop_server_proc(self.proc)
                tail = (self.workdir / "server.log").read_text(errors="replace")[-4000:]
                sys.exit(f"{flavor.label} did not become healthy:\n{tail}")
            time.sleep(0.01)
        self.client = MlflowClient(tracking_uri=self.url)
        self.experiment = self.client.create_experiment("artifacts-bench")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        stop_server_proc(self.proc)
        shutil.rmtree(self.workdir, ignore_errors=True)


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as f:
        left = size
        while left:
            chunk = os.urandom(min(8 * MIB, left))
            digest.update(chunk)
            f.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def measured(server: Server, fn) -> dict:
    """Runs `fn` while sampling the server's memory; wall time, peak RSS over the settled
    baseline, server CPU."""
    base = settled_memory(server, timeout_s=30)
    cpu0 = tree_cpu_s(server.pid)
    with Peak(server.pid) as peak:
        t0 = time.perf_counter()
        fn()
        wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "baseline_rss_mib": base["rss_mib"],
        "peak_rss_mib": peak.peak,
        "rss_growth_mib": peak.peak - base["rss_mib"],
        "hwm_mib": peak.hwm,
        "server_cpu_s": tree_cpu_s(server.pid) - cpu0,
    }


def curl(*args: str) -> None:
    subprocess.run(["curl", "--silent", "--show-error", "--fail", *args], check=True)


def one_round(server: Server, src: Path, size: int, digest: str, scratch: Path) -> dict:
    out: dict = {}
    run = server.client.create_run(server.experiment)
    run_id = run.info.run_id
    base = f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{server.experiment}/{run_id}/artifacts"

    res = measured(server, lambda: server.client.log_artifact(run_id, str(src), "client"))
    out["upload_client"] = res
    res = measured(
        server,
        lambda: curl(
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/octet-stream",
            "--upload-file",
            str(src),
            "-o",
            "/dev/null",
            f"{base}/curl/{src.name}",
        ),
    )
    out["upload_curl"] = res

    dl = scratch / "dl"
    got: list[str] = []
    res = measured(
        server,
        lambda: got.append(
            server.client.download_artifacts(run_id, f"client/{src.name}", str(dl))
        ),
    )
    got = Path(got[0])
    if got.stat().st_size != size or sha256(got) != digest:
        sys.exit(f"{server.flavor.name}: the downloaded file differs from the uploaded one")
    shutil.rmtree(dl, ignore_errors=True)
    out["download_client"] = res
    res = measured(server, lambda: curl("-o", "/dev/null", f"{base}/curl/{src.name}"))
    out["download_curl"] = res

    for r in out.values():
        r["mib_per_s"] = size / MIB / r["wall_s"]
    # Free the destination for the next round.
    shutil.rmtree(server.destination / server.experiment / run_id, ignore_errors=True)
    return out


PHASES = ["upload_client", "upload_curl", "download_client", "download_curl"]


def summarize(results: dict) -> dict:
    summary: dict = {}
    for name, rounds in results["servers"].items():
        s = summary.setdefault(name, {})
        start = results["idle_rss_mib"][name]
        for phase in PHASES:
            rs = [r[phase] for r in rounds]
            s[phase] = {
                "mib_per_s": statistics.median(r["mib_per_s"] for r in rs),
                # Worst peak of the tree during this transfer over its idle RSS before any.
                "rss_growth_mib": max(r["peak_rss_mib"] for r in rs) - start,
                "rss_growth_per_transfer_mib": max(r["rss_growth_mib"] for r in rs),
                "peak_rss_mib": max(r["peak_rss_mib"] for r in rs),
                "server_cpu_s": statistics.median(r["server_cpu_s"] for r in rs),
            }
    return summary


def render(results: dict) -> str:
    s = results["summary"]
    size = results["parameters"]["size_mib"]
    lines = [
        f"Artifact proxy, {size} MiB file, {results['parameters']['rounds']} rounds "
        f"(median throughput; RSS +MiB: the tree's highest RSS during the transfer over its "
        f"idle RSS before the first transfer; server CPU seconds, median)",
        "",
        "| transfer | " + " | ".join(f"{n} MiB/s | {n} RSS +MiB | {n} CPU s" for n in s) + " |"
        + (" cairn / mlflow |" if "cairn" in s and "mlflow" in s else ""),
        "|---|" + "---:|" * (3 * len(s)) + ("---:|" if "cairn" in s and "mlflow" in s else ""),
    ]
    for phase in PHASES:
        row = f"| {phase.replace('_', ' ')} | "
        row += " | ".join(
            f"{s[n][phase]['mib_per_s']:.0f} | {s[n][phase]['rss_growth_mib']:.1f} | "
            f"{s[n][phase]['server_cpu_s']:.2f}"
            for n in s
        )
        row += " |"
        if "cairn" in s and "mlflow" in s:
            row += f" {s['cairn'][phase]['mib_per_s'] / s['mlflow'][phase]['mib_per_s']:.1f}x |"
        lines.append(row)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--cairn-bin", help="the cairn binary (bench/run passes the release build)")
    ap.add_argument("--mlflow-only", action="store_true", help="run only mlflow (harness check)")
    ap.add_argument("--quick", action="store_true", help="64 MiB, one round")
    ap.add_argument("--size-mib", type=int, help="artifact size (default 1024)")
    ap.add_argument("--rounds", type=int, help="rounds per server (default 2)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = ap.parse_args()
    size_mib = args.size_mib or (64 if args.quick else 1024)
    rounds = args.rounds or (1 if args.quick else 2)
    if not args.mlflow_only and not args.cairn_bin:
        ap.error("--cairn-bin is required unless --mlflow-only")
    if shutil.which("curl") is None:
        sys.exit("curl is needed for the raw-HTTP transfers")

    flavors = [
        Flavor(
            "mlflow",
            "mlflow",
            "mlflow server (4 workers, job execution off)",
            env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
    ]
    if not args.mlflow_only:
        flavors.append(Flavor("cairn", "cairn", "cairn server (release build)"))
        args.cairn_bin = os.path.abspath(args.cairn_bin)

    root = Path(tempfile.mkdtemp(prefix="cairn-bench-artifacts-"))
    started = datetime.datetime.now(datetime.timezone.utc)
    results: dict = {
        "benchmark": "artifact-proxy",
        "started_utc": started.isoformat(timespec="seconds"),
        "command": " ".join(["bench/run --artifacts", *sys.argv[1:]]),
        "machine": {
            "nproc": os.cpu_count(),
            "cpu": _cpu_model(),
            "loadavg_before": loadavg(),
            "python": platform.python_version(),
            "mlflow": mlflow.__version__,
        },
        "parameters": {"size_mib": size_mib, "rounds": rounds},
        "flavors": {f.name: f.label for f in flavors},
        "servers": {},
    }

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    servers: dict[str, Server] = {}
    try:
        src = root / "artifact.bin"
        log(f"writing a {size_mib} MiB random file")
        digest = make_file(src, size_mib * MIB)
        for f in flavors:
            servers[f.name] = Server(f, args.cairn_bin, root)
        results["idle_rss_mib"] = {
            name: settled_memory(server, timeout_s=60)["rss_mib"] for name, server in servers.items()
        }
        for r in range(rounds):
            names = list(servers) if r % 2 == 0 else list(servers)[::-1]
            for name in names:
                res = one_round(servers[name], src, size_mib * MIB, digest, root)
                results["servers"].setdefault(name, []).append(res)
                log(
                    f"{name} round {r + 1}: "
                    + ", ".join(
                        f"{p} {res[p]['mib_per_s']:.0f} MiB/s +{res[p]['rss_growth_mib']:.1f} MiB"
                        for p in PHASES
                    )
                )
    finally:
        for server in servers.values():
            server.stop()
        shutil.rmtree(root, ignore_errors=True)

    results["loadavg_after"] = loadavg()
    results["summary"] = summarize(results)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"artifacts-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(render(results))
    print(f"\nresults: {path}")


if __name__ == "__main__":
    main()
