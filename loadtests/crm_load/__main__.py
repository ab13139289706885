"""python -m crm_load {run,capacity,gateway,seed}: see crm_load/__init__.py and docs/loadtest.md."""

from __future__ import annotations

import argparse
import asyncio
import math
import shlex
import sys
import time
from pathlib import Path

from crm_load import report
from crm_load.locust_run import LoadSpec, run
from crm_load.results import RunResult
from crm_load.seed import seed
from crm_load.stack import Stack, existing, stack_for

DEFAULT_TARGET = "127.0.0.1:8080"
# A step "fails badly" (stop climbing) when this many calls fail or p99 passes this.
BAD_ERROR_RATIO = 0.05
BAD_P99_MS = 3000.0
SEED_SECONDS_PER_USER = 0.05  # rough, for the time budget printed up front


def seconds(text: str) -> int:
    """60, 60s, 5m, 1h -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    text = text.strip().lower()
    return int(float(text[:-1]) * units[text[-1]]) if text[-1] in units else int(float(text))


def _seed(stack: Stack, users: int, out: Path, label: str) -> Path:
    seed_file = out / "seed.json"
    asyncio.run(
        seed(
            target=stack.gateway,
            direct=stack.direct,
            keys_dir=stack.keys_dir,
            issuer=stack.issuer,
            audience=stack.audience,
            users=users,
            out=seed_file,
            label=label,
        )
    )
    return seed_file


def _print_result(result: RunResult) -> None:
    print()
    print("\n".join(report.table(result.personas, "persona")))
    print()
    print("\n".join(report.table(result.rpcs, "RPC")))
    t = result.total
    print(
        f"\nTOTAL {t.requests} requests, {t.rps:.1f} req/s, p50 {t.p50:.0f} ms, p95 {t.p95:.0f} ms, "
        f"p99 {t.p99:.0f} ms, {t.failures} failures ({100 * result.error_ratio:.2f} %); stack CPU "
        f"{result.stack_cpu_ms_per_request:.1f} ms/request, "
        f"Locust {result.locust_cpu_ms_per_request:.1f} ms/request"
    )
    print(f"stack CPU by process: {report.cpu_split(result)}")
    if result.failures:
        print("\nFailures (RPC: status reason × count):")
        print("\n".join(report.failures(result)))


def cmd_run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    duration = seconds(args.duration)
    with stack_for(args.target, args.keys_dir, out / "stack.log") as stack:
        seed_file = _seed(stack, max(args.users, args.seed_users or 0), out, args.label)
        spec = LoadSpec(args.users, args.spawn_rate, duration, out, direct=args.direct)
        result = run(spec, stack, seed_file)
    _print_result(result)
    print(f"\nreports: {out}/crm.html, {out}/crm_stats.csv, {out}/crm_failures.csv, {out}/crm_personas.json")
    if args.write:
        mode = "direct to each service" if args.direct else "through the Envoy gateway"
        body = report.run_body(result, users=args.users, seconds=duration, command=_command_line(), mode=mode)
        report.write("loadtest-run", "Load test: Locust personas (make loadtest)", body)
    if result.error_ratio > args.max_error_rate:
        print(
            f"\nFAILED: error ratio {100 * result.error_ratio:.2f} % is above "
            f"{100 * args.max_error_rate:.2f} % (--max-error-rate); failing RPCs above",
            file=sys.stderr,
        )
        return 1
    return 0


def _step_spec(users: int, step_seconds: int, out: Path, name: str, *, direct: bool = False) -> LoadSpec:
    spawn_rate = max(25.0, users / 10)  # everyone running within ~10 s, then measured
    ramp = math.ceil(users / spawn_rate)
    return LoadSpec(users, spawn_rate, ramp + step_seconds, out, name=name, direct=direct, reset_stats=True)


def cmd_capacity(args: argparse.Namespace) -> int:
    steps = sorted(int(s) for s in args.steps.split(","))
    out = Path(args.out)
    budget = sum(_step_spec(u, args.step_seconds, out, "x").seconds + 15 for u in steps)
    if args.gateway_users:
        budget += 2 * (_step_spec(args.gateway_users, args.gateway_seconds, out, "x").seconds + 15)
    budget += SEED_SECONDS_PER_USER * max(steps) + 60
    print(f"capacity | steps {steps}, {args.step_seconds} s each; at most ~{budget / 60:.0f} min in total")
    measured: list[report.Step] = []
    comparison = None
    with stack_for(args.target, args.keys_dir, out / "stack.log") as stack:
        seed_file = _seed(stack, max([*steps, args.gateway_users]), out, args.label)
        for users in steps:
            result = run(_step_spec(users, args.step_seconds, out, f"step-{users}"), stack, seed_file)
            step = report.Step(users, result)
            measured.append(step)
            t = result.total
            print(
                f"capacity | {users} users: {t.rps:.1f} req/s, p50 {t.p50:.0f} ms, p99 {t.p99:.0f} ms, "
                f"{t.failures} failures, stack CPU {result.stack_cpu_ms_per_request:.1f} ms/req, "
                f"Locust CPU {result.locust_cpu_ms_per_request:.1f} ms/req "
                f"-> {'ok' if step.passed else 'over'}",
                flush=True,
            )
            if result.error_ratio > BAD_ERROR_RATIO or t.p99 > BAD_P99_MS:
                print(f"capacity | {users} users fails badly: not climbing further")
                break
        if args.gateway_users:
            comparison = gateway_comparison(stack, seed_file, args.gateway_users, args.gateway_seconds, out)
    body = report.capacity_body(measured, comparison, step_seconds=args.step_seconds, command=_command_line())
    print("\n" + body)
    if args.write:
        report.write("loadtest-capacity", "Load test: capacity, CPU per request, gateway overhead", body)
    return 0


def gateway_comparison(stack: Stack, seed_file: Path, users: int, step_seconds: int, out: Path):
    via = run(_step_spec(users, step_seconds, out, f"gateway-{users}"), stack, seed_file)
    direct = run(_step_spec(users, step_seconds, out, f"direct-{users}", direct=True), stack, seed_file)
    comparison = report.GatewayComparison(users, via, direct)
    p50, p99, rps = comparison.ratios()
    print(
        f"gateway  | via Envoy / direct at {users} users: p50 {p50:.2f}, p99 {p99:.2f}, throughput {rps:.2f}"
    )
    return comparison


def cmd_gateway(args: argparse.Namespace) -> int:
    out = Path(args.out)
    with stack_for(args.target, args.keys_dir, out / "stack.log") as stack:
        seed_file = _seed(stack, args.users, out, args.label)
        comparison = gateway_comparison(stack, seed_file, args.users, args.seconds, out)
    print(report.capacity_body([], comparison, step_seconds=args.seconds, command=_command_line()))
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    stack = existing(args.target, args.keys_dir)
    _seed(stack, args.users, Path(args.out), args.label)
    return 0


def _command_line() -> str:
    return "python -m crm_load " + shlex.join(sys.argv[1:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m crm_load", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--target", default=DEFAULT_TARGET, help="the gateway; started here when nothing listens"
        )
        sub.add_argument(
            "--keys-dir", type=Path, help="signing key dir (default: $CRM_DATA_DIR/keys or .crm/keys)"
        )
        sub.add_argument("--out", default="build/loadtest", help="CSV, HTML, seed file and stack log go here")
        sub.add_argument("--label", default="load", help="seed label: same label, same records")

    run_cmd = commands.add_parser("run", help="one headless Locust run with every persona")
    common(run_cmd)
    run_cmd.add_argument("--users", type=int, default=500)
    run_cmd.add_argument("--spawn-rate", type=float, default=50)
    run_cmd.add_argument("--duration", default="60s", help="e.g. 60s, 5m")
    run_cmd.add_argument("--max-error-rate", type=float, default=0.01, help="exit 1 above this ratio")
    run_cmd.add_argument("--direct", action="store_true", help="each service on its own port, no gateway")
    run_cmd.add_argument("--seed-users", type=int, help="seed for this many users (default: --users)")
    run_cmd.add_argument(
        "--write", action="store_true", help="write the loadtest-run section of benchmarks.md"
    )
    run_cmd.set_defaults(handler=cmd_run)

    capacity = commands.add_parser("capacity", help="step load: the users sustained, CPU per request")
    common(capacity)
    capacity.add_argument("--steps", default="250,500,1000,2000,3000")
    capacity.add_argument("--step-seconds", type=int, default=45)
    capacity.add_argument("--gateway-users", type=int, default=200, help="0: skip the gateway comparison")
    capacity.add_argument("--gateway-seconds", type=int, default=30)
    capacity.add_argument("--write", action="store_true", help="write the loadtest-capacity section")
    capacity.set_defaults(handler=cmd_capacity)

    gateway = commands.add_parser("gateway", help="the same load via Envoy and direct, back to back")
    common(gateway)
    gateway.add_argument("--users", type=int, default=200)
    gateway.add_argument("--seconds", type=int, default=30)
    gateway.set_defaults(handler=cmd_gateway)

    seed_cmd = commands.add_parser("seed", help="seed a running stack and write the seed file only")
    common(seed_cmd)
    seed_cmd.add_argument("--users", type=int, default=500)
    seed_cmd.set_defaults(handler=cmd_seed)

    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        return args.handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        print(f"({args.command}: {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
