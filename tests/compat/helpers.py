"""Helpers shared by the compatibility tests: names, error assertions, server processes."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
from mlflow.exceptions import MlflowException

# CAIRN_COMPAT_SERVER=mlflow: run the real `mlflow server` instead of cairn (see conftest.py).
REFERENCE = os.environ.get("CAIRN_COMPAT_SERVER", "cairn") == "mlflow"

# CAIRN_COMPAT_PLUGIN=/path/to/libcairn_example_jsonl.so: serve tracking from the example
# dynamic plugin's `jsonl` store, loaded from that library, instead of the built-in SQLite
# store (`scripts/compat --backend jsonl` builds the library and sets it).
PLUGIN = os.environ.get("CAIRN_COMPAT_PLUGIN")

# CAIRN_COMPAT_POSTGRES_URI=postgresql://...: serve tracking and the registry from the
# PostgreSQL store, one schema of that database per server work directory
# (`scripts/compat --backend postgres` starts a throwaway cluster and sets it).
POSTGRES = os.environ.get("CAIRN_COMPAT_POSTGRES_URI")


def postgres_schema(workdir: Path) -> str:
    """The name of `workdir`'s own schema of the test database."""
    import hashlib

    return "w_" + hashlib.sha1(str(workdir).encode()).hexdigest()[:16]


def postgres_uri(workdir: Path) -> str:
    """The store URI of `workdir`'s own schema of the test database (created if missing)."""
    schema = postgres_schema(workdir)
    subprocess.run(
        ["psql", POSTGRES, "-q", "-c", f"CREATE SCHEMA IF NOT EXISTS {schema}"],
        check=True,
        capture_output=True,
    )
    sep = "&" if "?" in POSTGRES else "?"
    return f"{POSTGRES}{sep}options=-csearch_path%3D{schema}"

STARTUP_TIMEOUT_S = 60
SHUTDOWN_TIMEOUT_S = 30


def unique(prefix: str = "compat") -> str:
    """A fresh name, so tests never see each other's experiments and runs."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@contextlib.contextmanager
def raises_mlflow(error_code: str, match: str | None = None):
    """Expects an MlflowException with `error_code` and, if given, `match` in its message."""
    with pytest.raises(MlflowException) as info:
        yield info
    assert info.value.error_code == error_code, (
        f"expected {error_code}, got {info.value.error_code}: {info.value.message}"
    )
    if match is not None:
        assert match in info.value.message, info.value.message


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = 200) -> str:
    """The last `lines` lines of a server log, for failure messages."""
    text = path.read_text(errors="replace") if path.exists() else "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def server_command() -> list[str]:
    """The command that starts the server under test, before its options."""
    if REFERENCE:
        return [sys.executable, "-m", "mlflow", "server", "--workers", "1"]
    binary = os.environ.get("CAIRN_BIN")
    if not binary:
        pytest.exit("CAIRN_BIN is not set: run the suite with scripts/compat", returncode=2)
    if not os.access(binary, os.X_OK):
        pytest.exit(f"CAIRN_BIN={binary} is not an executable file", returncode=2)
    return [binary, "server"]


class ServerProcess:
    """One server process on a free port of 127.0.0.1, with its SQLite file `tracking.db` and
    artifact root `artifacts/` in `workdir`; stdout and stderr go to `workdir/<name>.log`.

    A second ServerProcess on the same `workdir` reopens the same database.

    `artifact_args` replaces the default artifact options (`--default-artifact-root
    <workdir>/artifacts`), e.g. with `--artifacts-destination` for a proxied server; `env`
    adds variables to the server's environment (which otherwise drops every CAIRN_* and
    MLFLOW_* variable of the suite's own); `extra_args` are more server options (e.g.
    `--app-name basic-auth`).
    """

    def __init__(
        self,
        workdir: Path,
        name: str = "server",
        artifact_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        extra_args: list[str] | None = None,
    ):
        self.workdir = workdir
        self.artifact_root = workdir / "artifacts"
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / f"{name}.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            *server_command(),
            "--backend-store-uri",
            f"jsonl://{workdir / 'jsonl-store'}"
            if PLUGIN
            else postgres_uri(workdir)
            if POSTGRES
            else f"sqlite:///{workdir / 'tracking.db'}",  # sqlite:/// + absolute path, as MLflow
            *(
                ["--default-artifact-root", str(self.artifact_root)]
                if artifact_args is None
                else artifact_args
            ),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *(extra_args or []),
        ]
        extra_env = env or {}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CAIRN_", "MLFLOW_"))}
        env.setdefault("RUST_BACKTRACE", "1")
        env.update(extra_env)
        if PLUGIN:
            env["CAIRN_PLUGINS_PATH"] = PLUGIN
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid = self.proc.pid

    def wait_healthy(self) -> None:
        """Waits until GET /health answers 200; raises RuntimeError (with the log) otherwise."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with status {self.proc.returncode} before answering "
                    f"/health:\n{log_tail(self.log_path)}"
                )
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.1)
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError(
            f"server did not answer GET /health within {STARTUP_TIMEOUT_S}s:\n"
            + log_tail(self.log_path)
        )

    def wait_exit(self) -> int:
        """Waits for the process to exit; kills it and raises AssertionError if it does not."""
        try:
            return self.proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"server (pid {self.pid}) did not exit within {SHUTDOWN_TIMEOUT_S}s of SIGTERM:\n"
                + log_tail(self.log_path)
            ) from None

    def terminate(self) -> int:
        """SIGTERM, then the exit status."""
        os.kill(self.pid, signal.SIGTERM)
        return self.wait_exit()

    def assert_clean_exit(self, status: int) -> None:
        assert status == 0, (
            f"server (pid {self.pid}) exited with status {status} after SIGTERM, expected a "
            f"clean exit (0):\n{log_tail(self.log_path)}"
        )
