"""Tracing benchmark: traces sent by the official client to `cairn server` and `mlflow server`,
same machine, same run, SQLite stores for both. Run it through `bench/run --traces`.

Per server (fresh, on its own SQLite database, `--no-serve-artifacts`; MLflow with its default
4 workers and job execution off, as in bench/tracking_server.py):

- ingest: a child Python process (the official client, its default tracing setup: asynchronous
  export, OTel batch span processor) makes `--traces` traces of 20 spans each in a fresh
  experiment: a `@mlflow.trace` root (CHAIN) with 3 `mlflow.start_span` stages, each with 5
  leaf spans (LLM, RETRIEVER, TOOL) carrying inputs, outputs and attributes, and a
  `@mlflow.trace` post-processing leaf; trace tags set with `mlflow.update_current_trace`; one
  trace in 10 raises inside a leaf (state ERROR). The client sends the spans to the server
  (`POST /v1/traces`, 5 spans per request by default) and the trace info (`StartTraceV3`);
  it flushes its export queues every 50 traces and at the end (nothing is dropped: the number
  of traces stored is checked afterwards). Reported: server CPU per trace (utime + stime of
  the server's process tree, from /proc, over the whole ingest including the final flush),
  wall time, and the client process's own CPU;
- search: `MlflowClient.search_traces` over that experiment with a filter on a tag and the
  status, ordered by time, 100 results a page: with `include_spans=False` (trace infos only)
  and with the client's default `include_spans=True` (the 100 traces' spans fetched too).
  Reported: p50/p99 latency seen by the client and server CPU per query. The same requests
  are then made as raw HTTP (`POST traces/search`, and `GET traces/batchGet` 10 ids at a time
  as the client does), which takes the Python client's own object building out of the
  latency: what is left is the server. Answers are parsed only where the next request needs
  them (the page's ids, before its `batchGet`s) and on the first, untimed call.

Results: bench/results/traces-*.json and a Markdown table on stdout.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "600"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
# The client has two queues that drop what does not fit: MLflow's async export queue (tasks,
# about 5 per trace; its size raised here) and the OTel batch span processor's in front of it
# (2048 spans, fixed by MLflow). On an idle machine the producer makes spans faster than the
# export thread sends them (both share the GIL), so the producer flushes every FLUSH_EVERY
# traces: 50 traces are 1000 spans, half the span queue. (At 200, 4000 spans, the client
# dropped a third of the traces against a fast server: "Queue full, dropping Span".)
os.environ["MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE"] = "100000"

import argparse
import datetime
import json
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SPANS_PER_TRACE = 20
FLUSH_EVERY = 50
GROUPS = 10
SEARCH_FILTER = "tags.bench_group = 'g3' AND trace.status = 'OK'"
SEARCH_ORDER = ["timestamp_ms DESC"]
SEARCH_MAX_RESULTS = 100


# ---------------------------------------------------------------------------------------------
# The producer (a child process: its own tracer provider, its own CPU figure)


def produce(url: str, experiment_id: str, traces: int) -> None:
    import mlflow

    mlflow.set_tracking_uri(url)
    mlflow.set_experiment(experiment_id=experiment_id)

    @mlflow.trace(span_type="TOOL")
    def postprocess(text: str) -> str:
        return text.upper()

    @mlflow.trace(name="pipeline", span_type="CHAIN")
    def pipeline(i: int, question: str) -> str:
        mlflow.update_current_trace(tags={"bench_group": f"g{i % GROUPS}", "bench_index": str(i)})
        answer = ""
        for stage, kind in enumerate(("RETRIEVER", "LLM", "TOOL")):
            with mlflow.start_span(name=f"stage-{stage}", span_type="CHAIN") as s:
                s.set_inputs({"question": question, "stage": stage})
                for leaf in range(5):
                    with mlflow.start_span(name=f"{kind.lower()}-{leaf}", span_type=kind) as l:
                        l.set_inputs({"query": question, "k": leaf})
                        l.set_attributes({"model": "bench-model", "temperature": 0.1 * leaf})
                        if i % 10 == 9 and stage == 2 and leaf == 4:
                            raise RuntimeError(f"tool failed on request {i}")
                        out = f"{kind}:{leaf}:{i}"
                        l.set_outputs({"result": out})
                        answer = out
                s.set_outputs({"last": answer})
        return postprocess(answer)

    cpu0, t0 = time.process_time(), time.perf_counter()
    for i in range(traces):
        try:
            pipeline(i, f"question number {i}: what is in the document?")
        except RuntimeError:
            pass
        if (i + 1) % FLUSH_EVERY == 0:
            mlflow.flush_trace_async_logging()
    mlflow.flush_trace_async_logging()
    print(json.dumps({"client_cpu_s": time.process_time() - cpu0, "wall_s": time.perf_counter() - t0}))


# ---------------------------------------------------------------------------------------------
# The benchmark


def ingest(server, experiment_id: str, traces: int) -> dict:
    from tracking_server import tree_cpu_s

    cpu0, t0 = tree_cpu_s(server.pid), time.perf_counter()
    child = subprocess.run(
        [sys.executable, __file__, "--produce", server.url, experiment_id, str(traces)],
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    server_cpu = tree_cpu_s(server.pid) - cpu0
    if child.returncode != 0:
        sys.exit(f"producer against {server.flavor.label} failed:\n{child.stderr[-4000:]}")
    produced = json.loads(child.stdout.strip().splitlines()[-1])
    warnings = [
        line
        for line in child.stderr.splitlines()
        if "discard" in line or "Failed" in line or "dropping" in line
    ]
    return {
        "traces": traces,
        "spans": traces * SPANS_PER_TRACE,
        "wall_s": wall,
        "traces_per_s": traces / wall,
        "server_cpu_s": server_cpu,
        "server_cpu_ms_per_trace": 1000 * server_cpu / traces,
        "client_cpu_s": produced["client_cpu_s"],
        "client_warnings": warnings[:5],
    }


def count_traces(client, experiment_id: str) -> tuple[int, dict]:
    n, states, token = 0, {}, None
    while True:
        page = client.search_traces(
            locations=[experiment_id], max_results=500, page_token=token, include_spans=False
        )
        n += len(page)
        for t in page:
            states[t.info.state.value] = states.get(t.info.state.value, 0) + 1
        token = page.token
        if not token:
            return n, states


def timed_queries(server, once, queries: int) -> dict:
    """Runs `once` `queries` times: latency percentiles seen by the caller and the server's CPU
    (its process tree's, from /proc) per query."""
    from tracking_server import pct, tree_cpu_s

    latencies = []
    cpu0 = tree_cpu_s(server.pid)
    for _ in range(queries):
        t = time.perf_counter()
        once()
        latencies.append(time.perf_counter() - t)
    server_cpu = tree_cpu_s(server.pid) - cpu0
    return {
        "queries": queries,
        "p50_ms": pct(latencies, 50) * 1000,
        "p99_ms": pct(latencies, 99) * 1000,
        "server_cpu_ms_per_query": 1000 * server_cpu / queries,
    }


def search(server, client, experiment_id: str, traces: int, queries: int, include_spans: bool) -> dict:

    def once():
        return client.search_traces(
            locations=[experiment_id],
            filter_string=SEARCH_FILTER,
            order_by=SEARCH_ORDER,
            max_results=SEARCH_MAX_RESULTS,
            include_spans=include_spans,
        )

    first = once()  # warm-up, and the answer checked
    expected = min(SEARCH_MAX_RESULTS, sum(1 for i in range(traces) if i % GROUPS == 3))
    if len(first) != expected:
        sys.exit(f"{server.flavor.label}: search returned {len(first)} traces, not {expected}")
    bad = [t.info.trace_id for t in first if t.info.tags.get("bench_group") != "g3" or t.info.state.value != "OK"]
    if bad:
        sys.exit(f"{server.flavor.label}: search returned traces outside the filter: {bad[:3]}")
    if include_spans and any(len(t.data.spans) != SPANS_PER_TRACE for t in first):
        counts = sorted({len(t.data.spans) for t in first})
        sys.exit(f"{server.flavor.label}: traces with {counts} spans, not {SPANS_PER_TRACE}")
    return timed_queries(server, once, queries)


def raw_search(server, experiment_id: str, queries: int, include_spans: bool) -> dict:
    """The requests `search_traces` makes, as raw HTTP on one keep-alive connection (no client
    objects built): `POST traces/search`, then (with spans) `GET traces/batchGet` of the page's
    ids 10 at a time, as the client does (`_MLFLOW_SEARCH_TRACES_MAX_BATCH_SIZE`)."""
    import urllib.parse

    from tracking_server import RawHttp

    raw = RawHttp(server.url)
    body = json.dumps({
        "locations": [{"type": "MLFLOW_EXPERIMENT", "mlflow_experiment": {"experiment_id": experiment_id}}],
        "filter": SEARCH_FILTER,
        "max_results": SEARCH_MAX_RESULTS,
        "order_by": SEARCH_ORDER,
    }).encode()

    def once(count: bool = False) -> int:
        answer = raw.call("POST", "/api/3.0/mlflow/traces/search", body)
        if not include_spans and not count:
            # The page is parsed on the first, untimed call only, as the `batchGet` answers
            # below are: parsing ~120 KB of JSON is the client's work (0.45 ms here).
            return 0
        page = json.loads(answer)
        ids = [t["trace_id"] for t in page.get("traces", [])]
        spans = 0
        if include_spans:
            for i in range(0, len(ids), 10):
                query = urllib.parse.urlencode([("trace_ids", x) for x in ids[i : i + 10]])
                got = raw.call("GET", f"/api/3.0/mlflow/traces/batchGet?{query}")
                # The spans are counted (parsed) on the first, untimed call only: parsing a
                # few hundred KB of JSON is the client's work, not the server's latency.
                if count:
                    spans += sum(len(t.get("spans", [])) for t in json.loads(got).get("traces", []))
        return spans

    first = once(count=True)
    if include_spans and first == 0:
        sys.exit(f"{server.flavor.label}: batchGet returned no spans")
    timed = timed_queries(server, once, queries)
    raw.close()
    return {"spans_per_query": first, **timed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cairn-bin", help="the cairn binary (bench/run passes the release build)")
    ap.add_argument("--mlflow-only", action="store_true", help="run only mlflow (harness check)")
    ap.add_argument("--quick", action="store_true", help="300 traces, 10 queries per search")
    ap.add_argument("--traces", type=int, help="traces per server (default 10000)")
    ap.add_argument("--queries", type=int, help="queries per search phase (default 50)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results"))
    ap.add_argument("--produce", nargs=3, metavar=("URL", "EXPERIMENT_ID", "TRACES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.produce:
        produce(args.produce[0], args.produce[1], int(args.produce[2]))
        return

    from mlflow.tracking import MlflowClient
    from tracking_server import (
        Flavor,
        _cairn_identity,
        _command_line,
        _cpu_model,
        loadavg,
        start_server,
        stop_server,
    )

    traces = args.traces or (300 if args.quick else 10000)
    queries = args.queries or (10 if args.quick else 50)
    if not args.mlflow_only and not args.cairn_bin:
        ap.error("--cairn-bin is required unless --mlflow-only")
    if args.cairn_bin:
        args.cairn_bin = os.path.abspath(args.cairn_bin)
    args.serve_artifacts = False  # start_server's option: tracking only

    flavors = [
        Flavor("cairn", "cairn", "cairn server"),
        Flavor(
            "mlflow",
            "mlflow",
            "mlflow server (4 workers, job execution off)",
            env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        ),
    ]
    if args.mlflow_only:
        flavors = flavors[1:]
    import mlflow

    results = {
        "command": _command_line().replace("bench/run", "bench/run --traces", 1),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpu": _cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
        "mlflow_client": mlflow.__version__,
        "cairn": _cairn_identity(args.cairn_bin),
        "traces": traces,
        "spans_per_trace": SPANS_PER_TRACE,
        "search_filter": SEARCH_FILTER,
        "loadavg_before": loadavg(),
        "servers": {},
    }
    root = Path(tempfile.mkdtemp(prefix="cairn-bench-traces-"))
    try:
        for flavor in flavors:
            server = start_server(flavor, args, root)
            try:
                client = MlflowClient(tracking_uri=server.url)
                experiment_id = client.create_experiment("traces-bench")
                print(f"{flavor.name}: ingesting {traces} traces", file=sys.stderr)
                res = {"ingest": ingest(server, experiment_id, traces)}
                print(f"{flavor.name}: ingest {json.dumps(res['ingest'])}", file=sys.stderr)
                stored, states = count_traces(client, experiment_id)
                res["stored_traces"], res["states"] = stored, states
                if stored != traces:
                    sys.exit(f"{flavor.label} holds {stored} traces, {traces} were sent ({states})")
                print(f"{flavor.name}: searching", file=sys.stderr)
                res["search_infos"] = search(server, client, experiment_id, traces, queries, False)
                res["search_spans"] = search(server, client, experiment_id, traces, queries, True)
                res["raw_search_infos"] = raw_search(server, experiment_id, queries, False)
                res["raw_search_spans"] = raw_search(server, experiment_id, queries, True)
                res["loadavg_after"] = loadavg()
                results["servers"][flavor.name] = res
                print(f"{flavor.name}: {json.dumps(res)}", file=sys.stderr)
            finally:
                stop_server(server)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    results["loadavg_after"] = loadavg()
    out = Path(args.out) / f"traces-{results['date_utc'].replace(':', '')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(render(results))
    print(f"\n(results: {out})")


def render(results: dict) -> str:
    s = results["servers"]
    lines = [
        f"Command: `{results['command']}`, {results['date_utc']}, {results['machine']['cores']} cores, "
        f"{results['traces']} traces x {results['spans_per_trace']} spans per server, "
        f"load average before {results['loadavg_before']}, after {results['loadavg_after']}.",
        "",
        "| figure | cairn | mlflow | mlflow / cairn |",
        "|---|---|---|---|",
    ]

    def row(label, section, key, fmt):
        values = [s[name][section][key] if name in s else None for name in ("cairn", "mlflow")]
        shown = [fmt.format(v) if v is not None else "-" for v in values]
        ratio = f"{values[1] / values[0]:.1f}×" if None not in values and values[0] else "-"
        lines.append(f"| {label} | {shown[0]} | {shown[1]} | {ratio} |")

    row("ingest: server CPU ms per trace", "ingest", "server_cpu_ms_per_trace", "{:.3f}")
    row("ingest: wall s (client-bound)", "ingest", "wall_s", "{:.1f}")
    row("ingest: client CPU s", "ingest", "client_cpu_s", "{:.1f}")
    row("search_traces (infos): p50 ms", "search_infos", "p50_ms", "{:.2f}")
    row("search_traces (infos): p99 ms", "search_infos", "p99_ms", "{:.2f}")
    row("search_traces (infos): server CPU ms per query", "search_infos", "server_cpu_ms_per_query", "{:.2f}")
    row("search_traces (with spans): p50 ms", "search_spans", "p50_ms", "{:.2f}")
    row("search_traces (with spans): p99 ms", "search_spans", "p99_ms", "{:.2f}")
    row("search_traces (with spans): server CPU ms per query", "search_spans", "server_cpu_ms_per_query", "{:.2f}")
    row("raw HTTP traces/search: p50 ms", "raw_search_infos", "p50_ms", "{:.2f}")
    row("raw HTTP traces/search: server CPU ms per query", "raw_search_infos", "server_cpu_ms_per_query", "{:.2f}")
    row("raw HTTP traces/search + batchGet: p50 ms", "raw_search_spans", "p50_ms", "{:.2f}")
    row("raw HTTP traces/search + batchGet: server CPU ms per query", "raw_search_spans", "server_cpu_ms_per_query", "{:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
