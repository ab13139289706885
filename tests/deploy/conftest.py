"""Renders deploy/k8s (base and every overlay) once per session with `kubectl kustomize`.

Tests get the parsed objects; a target that does not render fails the tests that need it with
kustomize's own message. Without kubectl every deploy test is skipped with the reason (CI has it).
"""

from __future__ import annotations

import pytest
from k8s_manifests import KUBECTL, OVERLAYS, TARGETS, Rendered, render


@pytest.fixture(scope="session")
def renders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    if KUBECTL is None:
        pytest.skip("kubectl is not on PATH: the Kubernetes manifests cannot be rendered (CI installs it)")
    out_dir = tmp_path_factory.mktemp("k8s-render")
    return {name: render(name, source, out_dir) for name, source in TARGETS.items()}


@pytest.fixture(params=OVERLAYS)
def overlay(request: pytest.FixtureRequest, renders: dict[str, Rendered]) -> Rendered:
    """Each overlay in turn (what a cluster would receive)."""
    return renders[request.param]


@pytest.fixture(params=list(TARGETS))
def target(request: pytest.FixtureRequest, renders: dict[str, Rendered]) -> Rendered:
    """Base and each overlay in turn."""
    return renders[request.param]
