"""deploy/k8s renders with kustomize, and every object it renders is valid for its kind.

Built-in kinds go through `kubernetes-validate --strict` (the Kubernetes OpenAPI schemas, unknown
fields rejected). Custom resources (CloudNativePG, Prometheus operator) are not in those schemas:
they are checked against tests/deploy/crd_schemas/, written from the upstream CRDs for the fields
we use, with additionalProperties: false. A kind in neither fails the test, so nothing is deployed
unvalidated.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from k8s_manifests import Rendered
from referencing import Registry, Resource

KUBERNETES_VERSION = "1.32.0"  # the kubectl / cluster line we target (kubernetes-validate bundles it)
VALIDATOR = Path(sys.executable).with_name("kubernetes-validate")
SCHEMAS = Path(__file__).resolve().parent / "crd_schemas"
UNKNOWN_KIND_MARK = "Couldn't find schema"


def load_crd_schemas() -> tuple[dict[tuple[str, str], Draft202012Validator], Registry]:
    documents = {path: yaml.safe_load(path.read_text()) for path in sorted(SCHEMAS.glob("*.yaml"))}
    registry: Registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in documents.values()
    )
    validators = {}
    for schema in documents.values():
        properties = schema.get("properties", {})
        if "kind" in properties:
            key = (properties["apiVersion"]["const"], properties["kind"]["const"])
            validators[key] = Draft202012Validator(schema, registry=registry)
    return validators, registry


CRD_VALIDATORS, _ = load_crd_schemas()


def crd_problems(obj: dict[str, Any]) -> list[str]:
    validator = CRD_VALIDATORS[(obj["apiVersion"], obj["kind"])]
    return [
        f"{obj['kind']}/{obj['metadata'].get('name')}: {'.'.join(map(str, e.absolute_path)) or '<root>'}: "
        f"{e.message}"
        for e in validator.iter_errors(obj)
    ]


def is_custom(obj: dict[str, Any]) -> bool:
    return (obj["apiVersion"], obj["kind"]) in CRD_VALIDATORS


def run_kubernetes_validate(
    objects: list[dict[str, Any]], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    stream = tmp_path / "builtin.yaml"
    stream.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return subprocess.run(
        [str(VALIDATOR), "--strict", "--quiet", "-k", KUBERNETES_VERSION, str(stream)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_every_target_renders(target: Rendered) -> None:
    objects = target.require()
    assert objects, f"{target.name} rendered no objects"
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {"crm"}


def test_builtin_objects_pass_strict_kubernetes_validation(target: Rendered, tmp_path: Path) -> None:
    builtin = [o for o in target.require() if not is_custom(o)]
    result = run_kubernetes_validate(builtin, tmp_path)
    output = (result.stdout + result.stderr).strip()
    unknown = [line for line in output.splitlines() if UNKNOWN_KIND_MARK in line]
    assert not unknown, (
        "kinds with no schema (add one under tests/deploy/crd_schemas/ from the upstream CRD):\n"
        + "\n".join(unknown)
    )
    assert result.returncode == 0, output


def test_custom_resources_match_their_crd_schemas(target: Rendered) -> None:
    problems = [p for o in target.require() if is_custom(o) for p in crd_problems(o)]
    assert not problems, "\n".join(problems)


def test_overlays_deploy_the_custom_resources_they_promise(renders: dict[str, Rendered]) -> None:
    kinds = {name: {o["kind"] for o in renders[name].require()} for name in ("dev", "prod")}
    assert "Cluster" in kinds["dev"] and "Cluster" in kinds["prod"]
    assert {"ServiceMonitor", "PrometheusRule"} <= kinds["prod"], "prod has the observability component"


# --- the checks themselves can fail -------------------------------------------------------------


def first(target: Rendered, kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(o for o in target.require() if o["kind"] == kind))


def test_a_misspelt_builtin_field_fails_validation(renders: dict[str, Rendered], tmp_path: Path) -> None:
    deployment = first(renders["base"], "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"grpc": {"port": 50051}}
    result = run_kubernetes_validate([deployment], tmp_path)
    assert result.returncode != 0
    assert "readinesProbe" in result.stdout + result.stderr


def test_an_unknown_kind_is_reported_not_skipped(tmp_path: Path) -> None:
    stray = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "crm"}}
    result = run_kubernetes_validate([stray], tmp_path)
    assert UNKNOWN_KIND_MARK in result.stdout + result.stderr


def test_a_misspelt_custom_resource_field_fails_its_schema(renders: dict[str, Rendered]) -> None:
    cluster = first(renders["dev"], "Cluster")
    assert crd_problems(cluster) == []
    cluster["spec"]["storage"]["sise"] = "1Gi"
    cluster["spec"]["instances"] = "3"
    problems = crd_problems(cluster)
    assert any("sise" in p for p in problems) and any("spec.instances" in p for p in problems), problems


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.yaml")), ids=lambda p: p.name)
def test_crd_schemas_are_valid_json_schemas(path: Path) -> None:
    Draft202012Validator.check_schema(yaml.safe_load(path.read_text()))
