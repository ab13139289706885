"""`make run` for real (NATS from the wheel, the stand-in service, Envoy), on free ports."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from crm_gateway.catalog import load_catalog
from crm_gateway.envoy_runner import free_port

pytestmark = pytest.mark.e2e
REPO_ROOT = Path(__file__).resolve().parents[2]


def _stack_env(data_dir: Path) -> dict[str, str]:
    return dict(
        os.environ,
        CRM_DATA_DIR=str(data_dir),
        CRM_GATEWAY_PORT=str(free_port()),
        CRM_GATEWAY_ADMIN_PORT=str(free_port()),
        CRM_DEVSTACK_NATS_PORT=str(free_port()),
        CRM_DEVSTACK_CUSTOMER_MODULE="crm_gateway.standin",
        CRM_DEVSTACK_CUSTOMER_PORT=str(free_port()),
        CRM_DEVSTACK_CUSTOMER_METRICS_PORT="0",
    )


def _ports(env: dict[str, str]) -> list[int]:
    keys = (
        "CRM_GATEWAY_PORT",
        "CRM_GATEWAY_ADMIN_PORT",
        "CRM_DEVSTACK_NATS_PORT",
        "CRM_DEVSTACK_CUSTOMER_PORT",
    )
    return [int(env[k]) for k in keys]


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) from /proc (Linux), None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[1])


def _alive(pid: int) -> bool:
    stat = _proc_stat(pid)
    return stat is not None and stat[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _descendants(root: int) -> list[int]:
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _proc_stat(int(entry.name))) is not None:
            parents[int(entry.name)] = stat[1]
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent]
        found += children
        frontier += children
    return found


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _assert_all_gone(pids: list[int], env: dict[str, str], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive and not any(_listening(p) for p in _ports(env)):
            return
        time.sleep(0.2)
    raise AssertionError(f"left behind: pids {alive}, ports {[p for p in _ports(env) if _listening(p)]}")


class Running:
    """The dev stack as a child process whose output is collected line by line."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "crm_gateway.devstack", *args],
            env=env,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for(self, text: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            self.lines.append(line)
            if text in line:
                return
        raise AssertionError(f"{text!r} not seen; output:\n" + "\n".join(self.lines[-60:]))

    def finish(self, timeout: float = 60.0) -> int:
        status = self.process.wait(timeout)
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)
        return status

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def descendants(self) -> list[int]:
        return _descendants(self.process.pid)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def stack_env(tmp_path) -> dict[str, str]:
    return _stack_env(tmp_path / "crm")


def test_check_mode_runs_the_banner_examples_and_stops_cleanly(stack_env):
    stack = Running(stack_env, "--check")
    try:
        status = stack.finish(timeout=120)
    finally:
        stack.kill()
    assert status == 0, stack.output
    out = stack.output
    assert "CRM dev stack is up" in out
    assert "export TOKEN=ey" in out
    assert "make token ROLE=sales_rep SUB=bob TEAM=east" in out
    for example in ("REST create: ok", "REST list: ok", "REST get", "gRPC"):
        assert f"check    | {example}" in out
    assert "check passed" in out
    # Shutdown order: Envoy, then the services, then NATS.
    order = [line for line in out.splitlines() if line.startswith("devstack | stopping ")]
    services = {f"devstack | stopping {spec.name}" for spec in load_catalog().services}
    assert order[0] == "devstack | stopping envoy" and order[-1] == "devstack | stopping nats"
    assert set(order[1:-1]) == services
    data = Path(stack_env["CRM_DATA_DIR"])
    assert (data / "secrets.json").stat().st_mode & 0o777 == 0o600
    assert (data / "keys" / "private.pem").stat().st_mode & 0o777 == 0o600
    assert (data / "envoy.yaml").exists()
    assert (data / "nats" / "jetstream").is_dir()
    assert not any(_listening(p) for p in _ports(stack_env))


def test_second_run_reuses_keys_and_secrets(stack_env):
    for _ in range(2):
        stack = Running(stack_env, "--check")
        try:
            assert stack.finish(timeout=120) == 0, stack.output
        finally:
            stack.kill()
        data = Path(stack_env["CRM_DATA_DIR"])
        snapshot = ((data / "keys" / "private.pem").read_bytes(), (data / "secrets.json").read_bytes())
        if _ == 0:
            first = snapshot
    assert snapshot == first


def test_sigterm_stops_every_child_and_exits_zero(stack_env):
    stack = Running(stack_env)
    try:
        stack.wait_for("CRM dev stack is up")
        children = stack.descendants()
        assert len(children) >= 3  # nats, the service, envoy
        stack.process.send_signal(signal.SIGTERM)
        assert stack.finish() == 0, stack.output
        assert "devstack | stopped" in stack.output
        _assert_all_gone(children, stack_env)
    finally:
        stack.kill()


def test_a_child_dying_stops_the_stack_and_names_it(stack_env):
    stack = Running(stack_env)
    try:
        stack.wait_for("CRM dev stack is up")
        children = stack.descendants()
        service = next(p for p in children if "crm_gateway.standin" in _cmdline(p))
        os.kill(service, signal.SIGKILL)
        assert stack.finish() == 1
        assert "customer exited unexpectedly" in stack.output
        _assert_all_gone(children, stack_env)
    finally:
        stack.kill()


def test_children_do_not_outlive_a_killed_dev_stack(stack_env):
    stack = Running(stack_env)
    try:
        stack.wait_for("CRM dev stack is up")
        children = stack.descendants()
        stack.process.kill()  # SIGKILL: no chance to clean up
        stack.process.wait()
        _assert_all_gone(children, stack_env)
    finally:
        stack.kill()


def test_busy_port_is_reported_before_anything_starts(stack_env):
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", int(stack_env["CRM_GATEWAY_PORT"])))
        blocker.listen()
        stack = Running(stack_env, "--check")
        try:
            assert stack.finish() == 1
        finally:
            stack.kill()
    assert "CRM_GATEWAY_PORT" in stack.output
    assert "nats " not in stack.output
