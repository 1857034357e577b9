"""Three `cairn server` replicas on one PostgreSQL database, driven by the official client.

Runs only under `scripts/compat --backend postgres` (which starts the database); without it
the test fails. Eight threads drive the replicas round-robin — runs, batches, registry
versions, searches and page-by-page reads that hop between replicas — while one replica is
killed with SIGKILL mid-load. Afterwards every acknowledged write must be present exactly
once, version numbers must be 1..n without duplicates or gaps, and every page sequence must
be complete and duplicate-free.
"""

import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from helpers import POSTGRES, ServerProcess, unique

THREADS = 8
OPS_PER_THREAD = 24
KILL_AFTER_OPS = 60
PAGE = 7


def all_pages(clients, experiment_id, start=0, order_by=None):
    """Every run of the experiment, one page of PAGE at a time, each page from the next replica.

    During the load only the default order (start time, run id: keys that never change) can
    promise no duplicates; after it, any order can."""
    seen, token, hop = [], None, start
    while True:
        page = clients[hop % len(clients)].search_runs(
            [experiment_id], max_results=PAGE, page_token=token, order_by=order_by or []
        )
        seen.extend(r.info.run_id for r in page)
        token = page.token
        hop += 1
        if not token:
            return seen


def test_replicas_share_one_database_and_survive_a_sigkill(monkeypatch):
    if not POSTGRES:
        pytest.fail("CAIRN_COMPAT_POSTGRES_URI is not set: run `scripts/compat --backend postgres`")
    # One attempt per request: a request to the killed replica fails instead of being retried
    # (a retried create could be applied twice and would not be the client's acknowledgement).
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    workdir = Path(tempfile.mkdtemp(prefix="cairn-replicas-"))
    replicas = [ServerProcess(workdir, name=f"replica{i}") for i in range(3)]
    try:
        for r in replicas:
            r.wait_healthy()
        clients = [MlflowClient(tracking_uri=r.url) for r in replicas]
        experiment_id = clients[0].create_experiment(unique("replicas"))
        model = unique("replicas-model")
        clients[1].create_registered_model(model)

        lock = threading.Lock()
        acked_runs = {}  # run id -> set of (key, step) acknowledged
        acked_versions = []
        errors = []
        ops_done = [0]
        killed = threading.Event()
        page_checks = [0]

        dead = f"127.0.0.1:{replicas[2].port}/"

        def alive():
            return clients[:2] if killed.is_set() else clients

        def worker(t):
            runs = []
            for i in range(OPS_PER_THREAD):
                pool = alive()
                client = pool[(t + i) % len(pool)]
                try:
                    kind = i % 4
                    if kind == 0 or not runs:
                        run = client.create_run(experiment_id)
                        with lock:
                            acked_runs[run.info.run_id] = set()
                        runs.append(run.info.run_id)
                    elif kind == 1:
                        run_id = runs[-1]
                        step = i
                        now = int(time.time() * 1000)
                        client.log_batch(
                            run_id,
                            metrics=[Metric("v", float(step), now, step), Metric("w", 1.0, now, step)],
                        )
                        with lock:
                            acked_runs[run_id].update({("v", step), ("w", step)})
                    elif kind == 2:
                        mv = client.create_model_version(model, f"runs:/{runs[-1]}/model", run_id=runs[-1])
                        with lock:
                            acked_versions.append(int(mv.version))
                    else:
                        ids = all_pages(alive(), experiment_id, start=t)
                        assert len(ids) == len(set(ids)), f"duplicates while paging: {ids}"
                        with lock:
                            page_checks[0] += 1
                except Exception as e:
                    # Only a request to the replica killed under it may fail (a page read
                    # hops across replicas, so it may reach the killed one from any op).
                    if dead not in str(e):
                        with lock:
                            errors.append(repr(e))
                with lock:
                    ops_done[0] += 1

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
        for th in threads:
            th.start()
        while True:
            with lock:
                if ops_done[0] >= KILL_AFTER_OPS:
                    break
            time.sleep(0.05)
        with lock:
            killed_at = ops_done[0]
        os.kill(replicas[2].pid, signal.SIGKILL)
        replicas[2].proc.wait()
        killed.set()
        for th in threads:
            th.join()
        assert not errors, errors
        # The kill landed mid-load: operations ran on the survivors after it.
        assert killed_at < THREADS * OPS_PER_THREAD - THREADS, killed_at
        assert page_checks[0] > 0

        survivors = clients[:2]
        # Every acknowledged run and metric point exactly once.
        for i, (run_id, points) in enumerate(sorted(acked_runs.items())):
            client = survivors[i % 2]
            run = client.get_run(run_id)
            assert run.info.experiment_id == experiment_id
            for key in ("v", "w"):
                history = client.get_metric_history(run_id, key)
                steps = [m.step for m in history]
                assert len(steps) == len(set(steps)), (run_id, key, steps)
                assert {("%s" % key, s) for s in steps} >= {p for p in points if p[0] == key}
        # Version numbers: the acknowledged ones distinct, all of them 1..n with no gap.
        assert len(acked_versions) == len(set(acked_versions))
        versions = sorted(
            int(v.version) for v in survivors[0].search_model_versions(f"name = '{model}'", max_results=1000)
        )
        assert versions == list(range(1, len(versions) + 1)), versions
        assert set(acked_versions) <= set(versions)
        # Page sequences hopping between replicas: complete and duplicate-free.
        for start in range(2):
            ids = all_pages(survivors, experiment_id, start=start, order_by=["metrics.v DESC"])
            assert len(ids) == len(set(ids)), ids
            assert set(acked_runs) <= set(ids)
            everything = survivors[start].search_runs([experiment_id], max_results=1000)
            assert set(ids) == {r.info.run_id for r in everything}
    finally:
        for r in replicas[:2]:
            if r.proc.poll() is None:
                r.assert_clean_exit(r.terminate())
        if replicas[2].proc.poll() is None:
            replicas[2].proc.kill()
            replicas[2].proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)
