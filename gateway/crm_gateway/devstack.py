"""`make run`: NATS, every service in services.yaml and the Envoy gateway, on local defaults.

State lives in the data directory (.crm/ under the repo root, or $CRM_DATA_DIR): dev JWT keys,
per-service secrets (0600), SQLite files, the NATS store and the generated Envoy config.
Everything is created on first run and reused after.

Ctrl-C or SIGTERM stops Envoy first (no new requests), then the services (SIGTERM, their
grace period), then NATS. If any child dies on its own, the stack says which and stops.
Every child runs in its own process group and gets SIGKILL if this process dies (Linux
PR_SET_PDEATHSIG), so none outlives it.

  python -m crm_gateway.devstack            run until Ctrl-C
  python -m crm_gateway.devstack --check    start, make authenticated calls through the gateway, stop

Env: CRM_DATA_DIR, CRM_GATEWAY_PORT (8080), CRM_GATEWAY_ADMIN_PORT (9901), CRM_DEVSTACK_NATS_PORT
(14222; the system NATS keeps 4222), CRM_DEVSTACK_<NAME>_MODULE / _PORT / _METRICS_PORT,
CRM_DEVSTACK_CHECK=1 (same as --check).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from crm_gateway import envoy_runner
from crm_gateway.catalog import Catalog, ServiceSpec, load_catalog
from crm_gateway.envoy_config import write_config
from crm_gateway.tokens import REPO_ROOT, data_dir
from crm_shared.auth.dev_keys import DevKeys, generate_dev_keys, mint_token

DEFAULT_NATS_PORT = 14222
SERVICE_START_TIMEOUT = 90.0
SERVICE_GRACE_SECONDS = 15.0
BANNER_TOKEN_TTL = 12 * 3600
# Services that call others without a caller and get a service identity token file.
SERVICE_IDENTITY_SERVICES = frozenset({"servicedesk"})


class StackError(RuntimeError):
    pass


# --- dev secrets -----------------------------------------------------------------------------


def _random_b64(size: int = 32) -> str:
    return base64.b64encode(secrets.token_bytes(size)).decode()


def load_or_create_secrets(path: Path, services: list[str]) -> dict[str, dict[str, str]]:
    """Per-service dev secrets, generated once into `path` (0600) and reused; new services get theirs."""
    stored: dict[str, dict[str, str]] = json.loads(path.read_text()) if path.exists() else {}
    changed = False
    for name in services:
        if name not in stored:
            stored[name] = {
                "page_token_secret": _random_b64(),
                # Key ring "kid:base64key[,...]", first is active: 32-byte AES-256-GCM keys.
                "pii_keys": f"dev1:{_random_b64()}",
                "blind_index_key": _random_b64(),
            }
            changed = True
    if changed or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(stored, handle, indent=2)
    os.chmod(path, 0o600)
    return stored


# --- children --------------------------------------------------------------------------------


def _child_setup() -> None:
    """In the child before exec: own process group; SIGKILL if the dev stack dies."""
    os.setsid()
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


_print_lock = threading.Lock()


def say(label: str, text: str) -> None:
    with _print_lock:
        sys.stdout.write(f"{label:<9}| {text}\n")
        sys.stdout.flush()


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str] | None = None
    grace: float = 5.0
    process: subprocess.Popen | None = None
    stopping: bool = False
    _pump: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup,  # noqa: PLW1509 - only setsid + prctl, both async-signal-safe
        )
        self._pump = threading.Thread(target=self._copy_output, name=f"out-{self.name}", daemon=True)
        self._pump.start()

    def _copy_output(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        # CRM_DEVSTACK_QUIET=1 (benchmarks): drain the pipe but print nothing, so per-request
        # access logs don't cost the measuring process CPU.
        quiet = os.environ.get("CRM_DEVSTACK_QUIET") == "1"
        for raw in self.process.stdout:
            if not quiet:
                say(self.name, raw.decode(errors="replace").rstrip())

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def terminate(self) -> None:
        """SIGTERM the child's process group without waiting."""
        if self.process is None:
            return
        self.stopping = True
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM, wait up to the grace period, then SIGKILL the whole group."""
        if self.process is None:
            return
        if not self.stopping:
            # One SIGTERM only: Stack.stop() terminates a whole group first, then waits here. A
            # second one can land after the service's event loop closed (its handler gone) and
            # kill it with -15 in the middle of its last cleanup.
            self.terminate()
        if self.process.poll() is None:
            try:
                self.process.wait(self.grace)
            except subprocess.TimeoutExpired:
                say("devstack", f"{self.name} did not stop within {self.grace:.0f}s: SIGKILL")
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self._pump is not None:
            self._pump.join(timeout=2)


# --- readiness -------------------------------------------------------------------------------


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


_interrupted = threading.Event()


def wait_until_ready(what: str, ready, child: Child, timeout: float) -> None:
    """Poll `ready()` until true; StackError if `child` exits first, on Ctrl-C, or after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _interrupted.is_set():
            raise StackError(f"interrupted while waiting for {what}")
        status = child.exited()
        if status is not None:
            raise StackError(f"{child.name} exited with status {status} while starting")
        if ready():
            return
        time.sleep(0.2)
    raise StackError(f"{what} not ready after {timeout:.0f}s")


def _nats_ready(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            return sock.recv(4).startswith(b"INFO")
    except OSError:
        return False


def grpc_serving(port: int) -> bool:
    """True when the gRPC server on 127.0.0.1:`port` answers health v1 with SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


# --- the stack -------------------------------------------------------------------------------


@dataclass
class Stack:
    catalog: Catalog
    data: Path
    nats_port: int
    keys: DevKeys
    secrets: dict[str, dict[str, str]]
    children: list[Child] = field(default_factory=list)  # start order

    def service_env(self, spec: ServiceSpec) -> dict[str, str]:
        prefix = spec.env_prefix
        values = {
            "SERVICE_NAME": spec.name,
            "GRPC_HOST": "127.0.0.1",
            "GRPC_PORT": str(spec.dev_port),
            "METRICS_PORT": str(spec.metrics_port),
            "DATABASE_URL": f"sqlite+aiosqlite:///{self.data / 'data' / (spec.name + '.db')}",
            "NATS_URL": f"nats://127.0.0.1:{self.nats_port}",
            "JWT_ISSUER": self.catalog.jwt_issuer,
            "JWT_AUDIENCE": self.catalog.jwt_audience,
            "JWT_JWKS_FILE": str(self.keys.jwks_path),
            "PAGE_TOKEN_SECRET": self.secrets[spec.name]["page_token_secret"],
            "PII_KEYS": self.secrets[spec.name]["pii_keys"],
            "BLIND_INDEX_KEY": self.secrets[spec.name]["blind_index_key"],
            "LOG_JSON": "true",
            "SHUTDOWN_GRACE_SECONDS": str(SERVICE_GRACE_SECONDS),
        }
        # Where every other service listens (e.g. CRM_SALES_CUSTOMER_TARGET for ConvertLead).
        for other in self.catalog.services:
            if other.name != spec.name:
                values[f"{other.name.upper()}_TARGET"] = f"127.0.0.1:{other.dev_port}"
        if spec.name in SERVICE_IDENTITY_SERVICES:
            values["SERVICE_TOKEN_FILE"] = str(self.write_service_token(spec.name))
        env = dict(os.environ)
        env.update({prefix + key: value for key, value in values.items()})
        env["CRM_DEVSTACK_SERVICE_NAME"] = spec.name
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("OTEL_SERVICE_NAME", f"crm-{spec.name}")
        return env

    def write_service_token(self, service: str) -> Path:
        """A service identity (role `service`) for work done without a caller (e.g. the servicedesk's
        snapshot retries), minted with the dev keys; in production the platform keeps it fresh."""
        path = self.data / "data" / f"{service}-service.jwt"
        path.parent.mkdir(parents=True, exist_ok=True)
        token = mint_token(
            self.keys,
            subject=f"service:{service}",
            roles=["service"],
            team="",
            issuer=self.catalog.jwt_issuer,
            audience=self.catalog.jwt_audience,
            ttl_seconds=BANNER_TOKEN_TTL,
        )
        path.write_text(token)
        path.chmod(0o600)
        return path

    def check_ports(self) -> None:
        wanted = {
            "gateway (CRM_GATEWAY_PORT)": self.catalog.listen_port,
            "gateway admin (CRM_GATEWAY_ADMIN_PORT)": self.catalog.admin_port,
            "NATS (CRM_DEVSTACK_NATS_PORT)": self.nats_port,
        }
        for spec in self.catalog.services:
            wanted[f"{spec.name} gRPC (CRM_DEVSTACK_{spec.name.upper()}_PORT)"] = spec.dev_port
            if spec.metrics_port:
                wanted[f"{spec.name} metrics (CRM_DEVSTACK_{spec.name.upper()}_METRICS_PORT)"] = (
                    spec.metrics_port
                )
        busy = [f"{port} for {what}" for what, port in wanted.items() if _port_in_use(port)]
        if busy:
            raise StackError(
                "ports already in use (another `make run`?): "
                + "; ".join(busy)
                + ". Stop it or choose other ports with the variables named."
            )

    def start(self) -> None:
        self.check_ports()
        (self.data / "data").mkdir(parents=True, exist_ok=True)
        self.data.chmod(0o700)  # keys, secrets and PII-bearing databases: owner only
        nats = Child(
            "nats",
            [
                str(Path(sys.executable).with_name("nats-server")),
                "-js",
                "-sd",
                str(self.data / "nats"),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.nats_port),
                "-n",
                "crm-dev",
            ],
            grace=10,
        )
        self._launch(nats)
        wait_until_ready("NATS", lambda: _nats_ready(self.nats_port), nats, 30)
        say("devstack", f"NATS ready on nats://127.0.0.1:{self.nats_port}")

        started = []
        for spec in self.catalog.services:
            child = Child(
                spec.name,
                [sys.executable, "-m", spec.module],
                env=self.service_env(spec),
                grace=SERVICE_GRACE_SECONDS + 5,
            )
            self._launch(child)
            started.append((spec, child))
        for spec, child in started:
            wait_until_ready(
                f"{spec.name} (gRPC health on {spec.dev_port})",
                lambda p=spec.dev_port: grpc_serving(p),
                child,
                SERVICE_START_TIMEOUT,
            )
            say("devstack", f"{spec.name} SERVING on 127.0.0.1:{spec.dev_port} ({spec.module})")

        descriptor = REPO_ROOT / "build" / "crm.binpb"
        if not descriptor.exists():
            raise StackError(f"{descriptor} missing: run `make proto`")
        config = write_config(
            self.data / "envoy.yaml", descriptor=descriptor, jwks=self.keys.jwks_path, catalog=self.catalog
        )
        try:
            envoy_runner.validate(config)
        except RuntimeError as exc:
            raise StackError(str(exc)) from exc
        envoy = Child("envoy", envoy_runner.command(config), grace=10)
        self._launch(envoy)
        wait_until_ready("Envoy (/ready)", lambda: _envoy_ready(self.catalog.admin_port), envoy, 30)

    def _launch(self, child: Child) -> None:
        self.children.append(child)
        child.start()

    def died(self) -> Child | None:
        for child in self.children:
            if not child.stopping and child.exited() is not None:
                return child
        return None

    def stop(self) -> None:
        # Envoy first (no new requests), then every service at once (each drains within its
        # grace period), NATS last so the services' outbox relays can still publish while draining.
        groups: list[list[Child]] = [
            [c for c in self.children if c.name == "envoy"],
            [c for c in self.children if c.name not in ("envoy", "nats")],
            [c for c in self.children if c.name == "nats"],
        ]
        for group in groups:
            for child in group:
                if child.exited() is None and child.process is not None:
                    say("devstack", f"stopping {child.name}")
                child.terminate()
            for child in group:
                child.stop()


def _envoy_ready(admin_port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


# --- banner and check ------------------------------------------------------------------------


def examples(gateway: str) -> list[tuple[str, str]]:
    """(title, shell command) pairs printed in the banner and executed by --check."""
    auth = '-H "authorization: Bearer $TOKEN"'
    body = json.dumps(
        {"display_name": "Acme Ltd", "kind": "CUSTOMER_KIND_COMPANY", "industry": "manufacturing"}
    )
    return [
        (
            "REST create",
            f"curl -sS -X POST http://{gateway}/v1/customers {auth} "
            f"-H 'content-type: application/json' -d '{body}'",
        ),
        ("REST list", f"curl -sS 'http://{gateway}/v1/customers?page_size=5' {auth}"),
        ("REST get (<id> from the create reply)", f"curl -sS http://{gateway}/v1/customers/<id> {auth}"),
        (
            "gRPC (grpcurl is not installable here; this helper uses the generated stubs)",
            f'.venv/bin/python -m crm_gateway.grpc_call --target {gateway} --token "$TOKEN" '
            "crm.customer.v1.CustomerService/ListCustomers '{\"page_size\": 5}'",
        ),
    ]


def banner(stack: Stack, token: str) -> str:
    catalog = stack.catalog
    gateway = f"127.0.0.1:{catalog.listen_port}"
    lines = [
        "",
        "=" * 100,
        f"CRM dev stack is up. Data in {stack.data}. Ctrl-C stops everything.",
        "",
        f"  gateway  gRPC (h2c)  {gateway}",
        f"           REST/JSON   http://{gateway}/v1/...",
        f"  admin    http://127.0.0.1:{catalog.admin_port}  (/ready, /stats/prometheus, /clusters)",
    ]
    for spec in catalog.services:
        metrics = f", metrics :{spec.metrics_port}" if spec.metrics_port else ""
        lines.append(f"  {spec.name:<8} 127.0.0.1:{spec.dev_port}  ({spec.module}{metrics})")
    lines += [
        f"  nats     nats://127.0.0.1:{stack.nats_port}  (JetStream, store {stack.data / 'nats'})",
        "",
        "Dev token (admin, subject alice, team east, valid 12 h):",
        f"  export TOKEN={token}",
        "Mint others:  make token ROLE=sales_rep SUB=bob TEAM=east",
        "",
        "Try it (from the repo root, after the export above):",
    ]
    for title, command in examples(gateway):
        lines += [f"  # {title}", f"  {command}"]
    lines += ["=" * 100, ""]
    return "\n".join(lines)


def run_check(stack: Stack, token: str) -> None:
    """Run the banner's examples for real (create, list, get, gRPC) and fail on any error."""
    gateway = f"127.0.0.1:{stack.catalog.listen_port}"
    env = dict(os.environ, TOKEN=token)
    name = ""
    for title, example in examples(gateway):
        command = example
        if "<id>" in command:
            if not name:
                raise StackError("check: the create example returned no customer name")
            command = command.replace("customers/<id>", name)
        argv = shlex.split(command.replace("$TOKEN", token))
        if argv[0] == "curl":
            argv[1:1] = ["--fail-with-body", "--max-time", "15"]
        if argv[0].startswith(".venv/"):
            argv[0] = sys.executable
        result = subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=REPO_ROOT, check=False, timeout=60
        )
        if result.returncode != 0:
            raise StackError(f"check: {title} failed ({result.returncode}): {result.stdout}{result.stderr}")
        say("check", f"{title}: ok")
        if title == "REST create":
            name = json.loads(result.stdout)["name"]


# --- main ------------------------------------------------------------------------------------


def build_stack(nats_port: int | None = None) -> Stack:
    data = data_dir()
    catalog = load_catalog()
    keys = generate_dev_keys(data / "keys")
    return Stack(
        catalog=catalog,
        data=data,
        nats_port=nats_port or int(os.environ.get("CRM_DEVSTACK_NATS_PORT", DEFAULT_NATS_PORT)),
        keys=keys,
        secrets=load_or_create_secrets(data / "secrets.json", [s.name for s in catalog.services]),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m crm_gateway.devstack", description="run the CRM dev stack"
    )
    parser.add_argument(
        "--check",
        action="store_true",
        default=os.environ.get("CRM_DEVSTACK_CHECK") == "1",
        help="start, run the banner's examples through the gateway, stop (CI smoke test)",
    )
    args = parser.parse_args(argv)

    stop_requested = _interrupted

    received: list[str] = []

    def request_stop(signum, _frame) -> None:
        # No printing here: the handler runs on the main thread, which may hold the print lock.
        received.append(signal.Signals(signum).name)
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)

    try:
        stack = build_stack()
    except (OSError, ValueError) as exc:
        say("devstack", f"cannot start: {exc}")
        return 1
    status = 0
    try:
        stack.start()
        token = mint_token(
            stack.keys,
            subject="alice",
            roles=["admin"],
            team="east",
            issuer=stack.catalog.jwt_issuer,
            audience=stack.catalog.jwt_audience,
            ttl_seconds=BANNER_TOKEN_TTL,
        )
        with _print_lock:
            print(banner(stack, token), flush=True)
        if args.check:
            run_check(stack, token)
            say("devstack", "check passed")
        else:
            while not stop_requested.wait(0.5):
                dead = stack.died()
                if dead is not None:
                    say(
                        "devstack",
                        f"{dead.name} exited unexpectedly with status {dead.exited()}: stopping all",
                    )
                    status = 1
                    break
            if received:
                say("devstack", f"{received[0]}: stopping")
    except StackError as exc:
        say("devstack", f"error: {exc}")
        status = 1
    finally:
        # A second Ctrl-C while stopping must not interrupt the orderly shutdown.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        say("devstack", "stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
