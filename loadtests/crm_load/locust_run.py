"""One headless Locust run as a subprocess, with the stack's and Locust's CPU sampled alongside."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from crm_load import env, projection_lag
from crm_load.cpu import CpuSampler, tree
from crm_load.results import RunResult, read_failures, read_personas, read_stats
from crm_load.stack import Stack

LOCUSTFILE = Path(__file__).resolve().parents[1] / "locustfile.py"


@dataclass
class LoadSpec:
    users: int
    spawn_rate: float
    seconds: int
    out: Path  # directory for CSV, HTML and the persona JSON
    name: str = "crm"  # file prefix inside `out`
    direct: bool = False
    reset_stats: bool = False  # figures from the moment every user is running (capacity steps)

    @property
    def prefix(self) -> Path:
        return self.out / self.name


def command(spec: LoadSpec) -> list[str]:
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "-u",
        str(spec.users),
        "-r",
        str(spec.spawn_rate),
        "-t",
        f"{spec.seconds}s",
        "--csv",
        str(spec.prefix),
        "--html",
        str(spec.out / f"{spec.name}.html"),
        "--only-summary",
        "--stop-timeout",
        "10",
        "--exit-code-on-error",
        "0",  # the CLI judges the error ratio itself
    ]
    return [*argv, "--reset-stats"] if spec.reset_stats else argv


def run(spec: LoadSpec, stack: Stack, seed_file: Path) -> RunResult:
    spec.out.mkdir(parents=True, exist_ok=True)
    persona_file = spec.out / f"{spec.name}_personas.json"
    persona_file.unlink(missing_ok=True)
    child_env = {
        **os.environ,
        env.SEED_FILE: str(seed_file),
        env.TARGET: stack.gateway,
        env.KEYS_DIR: str(stack.keys_dir),
        env.PERSONA_STATS: str(persona_file),
        env.DIRECT: "1" if spec.direct else "",
        "PYTHONUNBUFFERED": "1",
    }
    mode = "direct to each service" if spec.direct else f"through the gateway {stack.gateway}"
    print(f"locust   | {spec.users} users, spawn {spec.spawn_rate}/s, {spec.seconds} s, {mode}", flush=True)
    lag_before = projection_lag.scrape(stack.reporting_metrics)
    process = subprocess.Popen(command(spec), env=child_env)
    with CpuSampler(stack.processes, lambda: tree(process.pid)) as sampler:
        try:
            process.wait(timeout=spec.seconds + spec.users / max(spec.spawn_rate, 0.1) + 180)
        except BaseException:
            process.terminate()  # Ctrl-C or a hang: Locust writes its reports on SIGTERM
            process.wait(30)
            raise
    lag = projection_lag.between(lag_before, projection_lag.scrape(stack.reporting_metrics))
    rpcs, total = read_stats(spec.prefix)
    personas, window = read_personas(persona_file)
    stack_cpu, locust_cpu = sampler.between(*window)
    return RunResult(
        rpcs=rpcs,
        total=total,
        personas=personas,
        failures=read_failures(spec.prefix),
        window=window,
        stack_cpu_seconds=stack_cpu,
        locust_cpu_seconds=locust_cpu,
        cpu_by_process=sampler.breakdown(*window),
        projection_lag=lag,
    )
