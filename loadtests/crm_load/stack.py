"""The stack under load: the one already listening on the target, or our own `make run`.

Our own is `python -m crm_gateway.devstack` in a fresh temporary data dir (its own dev keys,
SQLite files and NATS store), gateway on the target port, everything else on free ports so it
never collides with another stack on the machine. It runs in its own session and is stopped by
its PID (SIGTERM: the devstack stops Envoy, the services, NATS in order), always, Ctrl-C included.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

READY_LINE = "CRM dev stack is up"
START_TIMEOUT = 240.0
STOP_TIMEOUT = 60.0


@dataclass
class Stack:
    gateway: str
    direct: dict[str, str]  # gRPC service full name -> the service's own address
    keys_dir: Path
    issuer: str
    audience: str
    process: subprocess.Popen | None = None  # None: a stack someone else runs
    data_dir: Path | None = None
    log: Path | None = None
    pids: list[int] = field(default_factory=list)
    # host:port of the reporting service's /metrics: the event-to-report lag under load.
    reporting_metrics: str | None = None

    def processes(self) -> list[psutil.Process]:
        """The stack's processes (services, Envoy, NATS; the devstack supervisor too)."""
        root = self._root()
        if root is None:
            return []
        with contextlib.suppress(psutil.Error):
            return [root, *root.children(recursive=True)]
        return []

    def _root(self) -> psutil.Process | None:
        if self.process is not None:
            return psutil.Process(self.process.pid)
        # Someone else's `make run`: the devstack that owns the process listening on the gateway.
        port = int(self.gateway.rsplit(":", 1)[1])
        with contextlib.suppress(psutil.Error):
            for conn in psutil.net_connections(kind="tcp"):
                if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                    listener = psutil.Process(conn.pid)
                    parent = listener.parent()
                    if parent is not None and "crm_gateway.devstack" in " ".join(parent.cmdline()):
                        return parent
                    return listener
        return None


def listening(target: str) -> bool:
    host, port = target.rsplit(":", 1)
    with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=1):
        return True
    return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _direct(catalog) -> dict[str, str]:
    return {name: f"127.0.0.1:{spec.dev_port}" for spec in catalog.services for name in spec.grpc_services}


def _reporting_metrics(catalog) -> str | None:
    port = catalog.service("reporting").metrics_port
    return f"127.0.0.1:{port}" if port else None


def existing(target: str, keys_dir: Path | None) -> Stack:
    from crm_gateway.catalog import load_catalog
    from crm_gateway.tokens import default_keys_dir

    catalog = load_catalog()
    return Stack(
        gateway=target,
        direct=_direct(catalog),
        keys_dir=keys_dir or default_keys_dir(),
        issuer=catalog.jwt_issuer,
        audience=catalog.jwt_audience,
        reporting_metrics=_reporting_metrics(catalog),
    )


def _stack_env(data: Path, gateway_port: int) -> dict[str, str]:
    from crm_gateway.catalog import load_catalog

    values = {
        "CRM_DATA_DIR": str(data),
        "CRM_GATEWAY_PORT": str(gateway_port),
        "CRM_GATEWAY_ADMIN_PORT": str(free_port()),
        "CRM_DEVSTACK_NATS_PORT": str(free_port()),
        # Access logs per request would cost the stack CPU that is not the services' work.
        "CRM_DEVSTACK_QUIET": "1",
    }
    for spec in load_catalog(env={}).services:
        upper = spec.name.upper()
        values[f"CRM_DEVSTACK_{upper}_PORT"] = str(free_port())
        values[f"CRM_DEVSTACK_{upper}_METRICS_PORT"] = str(free_port())
        values[f"CRM_{upper}_LOG_LEVEL"] = "WARNING"
    environ = {k: v for k, v in os.environ.items() if k != "OTEL_EXPORTER_OTLP_ENDPOINT"}
    return {**environ, **values}


@contextlib.contextmanager
def own_stack(target: str, log: Path) -> Iterator[Stack]:
    from crm_gateway.catalog import load_catalog

    host, port = target.rsplit(":", 1)
    if host not in ("127.0.0.1", "localhost"):
        raise SystemExit(f"nothing listens on {target}, and a stack can only be started on this machine")
    data = Path(tempfile.mkdtemp(prefix="crm-load-"))
    env = _stack_env(data, int(port))
    catalog = load_catalog(env=env)
    log.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"stack    | nothing on {target}: starting `python -m crm_gateway.devstack` (data {data}, log {log})"
    )
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "crm_gateway.devstack"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = Stack(
        gateway=f"127.0.0.1:{port}",
        direct=_direct(catalog),
        keys_dir=data / "keys",
        issuer=catalog.jwt_issuer,
        audience=catalog.jwt_audience,
        process=process,
        data_dir=data,
        log=log,
        reporting_metrics=_reporting_metrics(catalog),
    )
    try:
        _wait_ready(process, log)
        print(f"stack    | up in {data}; gateway {stack.gateway}")
        yield stack
    finally:
        stop(process)
        shutil.rmtree(data, ignore_errors=True)  # keys, SQLite files, NATS store of this run only


def _wait_ready(process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(
                f"the dev stack exited with {process.returncode}; see {log}:\n{log.read_text()[-3000:]}"
            )
        if READY_LINE in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise SystemExit(f"the dev stack was not up after {START_TIMEOUT:.0f} s; see {log}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM the devstack (it stops its children in order); SIGKILL its group if it hangs."""
    if process.poll() is None:
        print("stack    | stopping the dev stack")
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@contextlib.contextmanager
def stack_for(target: str, keys_dir: Path | None, log: Path) -> Iterator[Stack]:
    if listening(target):
        print(f"stack    | using the stack listening on {target}")
        yield existing(target, keys_dir)
    else:
        with own_stack(target, log) as stack:
            yield stack
