"""Rendering deploy/k8s with `kubectl kustomize`: where the targets are, and the parsed result."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = ("dev", "prod")
TARGETS = {"base": K8S / "base", **{name: K8S / "overlays" / name for name in OVERLAYS}}
KUBECTL = shutil.which("kubectl")
RENDER_TIMEOUT_SECONDS = 120


@dataclass
class Rendered:
    name: str
    stream: Path  # the YAML stream as kustomize printed it
    error: str = ""
    objects: list[dict[str, Any]] = field(default_factory=list)

    def require(self) -> list[dict[str, Any]]:
        if self.error:
            pytest.fail(f"deploy/k8s {self.name} does not render:\n{self.error}")
        return self.objects

    def of_kind(self, *kinds: str) -> list[dict[str, Any]]:
        return [obj for obj in self.require() if obj["kind"] in kinds]


def render(name: str, source: Path, out_dir: Path) -> Rendered:
    stream = out_dir / f"{name}.yaml"
    result = subprocess.run(
        [KUBECTL or "kubectl", "kustomize", str(source)],
        capture_output=True,
        text=True,
        timeout=RENDER_TIMEOUT_SECONDS,
        check=False,
    )
    if result.returncode != 0:
        return Rendered(name, stream, error=result.stderr.strip() or f"exit status {result.returncode}")
    stream.write_text(result.stdout)
    objects = [obj for obj in yaml.safe_load_all(result.stdout) if obj]
    return Rendered(name, stream, objects=objects)
