"""Fixtures of the web UI's browser tests (scripts/ui-test runs them).

One `cairn server` (tests/compat's ServerProcess: a free port of 127.0.0.1, its own SQLite
file and artifact root), populated by the official `mlflow` client; Debian's Chromium driven by
playwright (`executable_path`, never a downloaded browser), one page per test at 1366×768.
Screenshots go to target/ui-screenshots/ (CAIRN_UI_SCREENSHOTS overrides).

Environment: CAIRN_BIN (the `cairn` binary, required), CHROMIUM (default /usr/bin/chromium).
"""

from __future__ import annotations

import os

os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "compat"))

import mlflow  # noqa: E402
from mlflow.entities import Metric  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from helpers import ServerProcess, log_tail  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("CAIRN_UI_SCREENSHOTS", ROOT / "target" / "ui-screenshots"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
VIEWPORT = {"width": 1366, "height": 768}

XSS_NAME = '<img src=x onerror="window.__xss=1">run'
XSS_TAG = "<script>window.__xss=2</script>"
XSS_ARTIFACT = "<img src=x onerror=window.__xss=3>.txt"
BIG_HISTORY = 20_000
# A one-step spike in the long history: the chart's min/max-per-pixel series must keep it.
SPIKE_STEP, SPIKE_VALUE = 12_345, 5000.0
# Runs in the nested experiment: more than a page of the runs table (50).
NESTED_FILLERS = 50

MLMODEL = """artifact_path: model
flavors:
  python_function:
    loader_module: mlflow.sklearn
    python_version: 3.11.2
  sklearn:
    sklearn_version: 1.5.0
    serialization_format: cloudpickle
signature:
  inputs: '[{"type": "double", "name": "sepal_length", "required": true}, {"type": "long", "name": "petals", "required": true}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
"""

def png(width: int = 4, height: int = 4) -> bytes:
    """A red RGB PNG."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@dataclass
class Data:
    """What the client logged: ids the tests navigate to."""

    url: str
    experiment_id: str
    experiment_name: str
    runs: dict[str, str] = field(default_factory=dict)  # name -> run id
    model: str = "ui-model"
    # An experiment of NESTED_FILLERS + 2 runs: the oldest is a parent whose child is the newest,
    # so the two are on different pages of the runs table.
    nested_experiment_id: str = ""
    nested_runs: dict[str, str] = field(default_factory=dict)  # name -> run id


@pytest.fixture(scope="session")
def server():
    workdir = Path(tempfile.mkdtemp(prefix="cairn-ui-"))
    process = ServerProcess(workdir)
    try:
        process.wait_healthy()
    except RuntimeError as e:
        pytest.exit(str(e), returncode=3)
    yield process
    status = process.terminate()
    if status != 0:
        print(log_tail(process.log_path), file=sys.stderr)
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def data(server) -> Data:
    mlflow.set_tracking_uri(server.url)
    client = MlflowClient(server.url)
    name = "ui-experiment"
    exp = client.create_experiment(name)
    d = Data(server.url, exp, name)
    now = int(time.time() * 1000)

    def run(run_name: str, params: dict, acc: float, parent: str | None = None, tags=None) -> str:
        all_tags = {"team": "vision", **(tags or {})}
        if parent:
            all_tags["mlflow.parentRunId"] = parent
        r = client.create_run(exp, run_name=run_name, tags=all_tags)
        rid = r.info.run_id
        for k, v in params.items():
            client.log_param(rid, k, v)
        metrics = [Metric("acc", acc * (i + 1) / 50, now + i * 1000, i) for i in range(50)]
        metrics += [Metric("loss", 1.0 / (i + 1), now + i * 1000, i) for i in range(50)]
        client.log_batch(rid, metrics=metrics)
        client.set_terminated(rid)
        d.runs[run_name] = rid
        return rid

    parent = run("parent", {"lr": "0.1", "optimizer": "adam"}, 0.9)
    run("child-a", {"lr": "0.01", "optimizer": "adam"}, 0.7, parent=parent)
    run("child-b", {"lr": "0.001", "optimizer": "sgd"}, 0.4, parent=parent)
    run("solo", {"lr": "0.5", "optimizer": "sgd"}, 0.2, tags={"note": XSS_TAG})
    xss = run(XSS_NAME, {"lr": "0.3"}, 0.5)

    # A long history: the chart must get a server-side sample, not 20k points.
    big = client.create_run(exp, run_name="long-history").info.run_id
    for start in range(0, BIG_HISTORY, 1000):
        client.log_batch(big, metrics=[Metric("signal", SPIKE_VALUE if i == SPIKE_STEP else float((i * 7919) % 1000), now + i, i) for i in range(start, start + 1000)])
    client.set_terminated(big)
    d.runs["long-history"] = big

    # Artifacts of every previewed kind (and the XSS file name).
    art = Path(tempfile.mkdtemp(prefix="cairn-ui-art-"))
    (art / "notes.txt").write_text("plain text artifact\n")
    (art / "config.json").write_text(json.dumps({"layers": [64, 32], "dropout": 0.1}))
    (art / "params.yaml").write_text("lr: 0.1\nepochs: 3\n")
    (art / "table.csv").write_text('name,score\nalpha,1\n"beta, with comma",2\n')
    (art / "red.png").write_bytes(png())
    (art / "report.html").write_text("<h1>Report</h1><script>parent.window.__xss=4</script>")
    (art / XSS_ARTIFACT).write_text("xss file")
    (art / "model").mkdir()
    (art / "model" / "MLmodel").write_text(MLMODEL)
    client.log_artifacts(parent, str(art))
    shutil.rmtree(art, ignore_errors=True)

    # The registry: two versions from the parent run, an alias, a stage.
    client.create_registered_model(d.model, tags={"owner": "ui-tests"}, description="the UI's model")
    for _ in range(2):
        client.create_model_version(d.model, f"runs:/{parent}/model", run_id=parent)
    client.set_registered_model_alias(d.model, "champion", "1")
    client.transition_model_version_stage(d.model, "1", "Staging")
    d.runs["xss"] = xss

    # Nested runs on two pages: parent (oldest) … 50 runs … its child (newest).
    nested = client.create_experiment("ui-nested")
    d.nested_experiment_id = nested
    far_parent = client.create_run(nested, run_name="far-parent", start_time=now - 100_000).info.run_id
    for i in range(NESTED_FILLERS):
        client.create_run(nested, run_name=f"filler-{i:02d}", start_time=now - 90_000 + i * 10)
    far_child = client.create_run(
        nested, run_name="far-child", start_time=now, tags={"mlflow.parentRunId": far_parent}
    ).info.run_id
    d.nested_runs.update({"far-parent": far_parent, "far-child": far_child})
    return d


@pytest.fixture(scope="session")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        pytest.exit(f"{CHROMIUM} is missing: scripts/ui-test installs Debian's chromium", returncode=3)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser, data):
    context = browser.new_context(viewport=VIEWPORT)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and "Content Security Policy" in m.text else None)
    pg.errors = errors  # type: ignore[attr-defined]
    yield pg
    context.close()
    assert not [e for e in errors if "Content Security Policy" in e or "Error" in e], errors


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def drawn_pixels(page, selector: str) -> int:
    """How many pixels of the canvas under `selector` are not transparent."""
    return page.eval_on_selector(
        selector,
        """c => { const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                 let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }""",
    )
