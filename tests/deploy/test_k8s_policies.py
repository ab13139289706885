"""What every rendered overlay must hold to be safe to run: restricted pods, probes and limits,
pinned images, a PDB/HPA/NetworkPolicy/migrations Job per service, no committed secrets, Services
that reach real ports, network policies that let exactly the right traffic through, and the
gateway config in the cluster equal to the one generated from services.yaml.

The rules are functions in k8s_rules.py; the last tests feed them broken objects to show each
one can fail.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from k8s_manifests import REPO, Rendered
from k8s_rules import (
    COMPONENT,
    NAME,
    PART_OF,
    Endpoint,
    all_image_problems,
    committed_secret_problems,
    connection_allowed,
    coverage_problems,
    endpoints,
    image_problems,
    pod_template,
    probe_and_resource_problems,
    referenced_secrets,
    restricted_security_problems,
    service_port_problems,
)

from crm_gateway.catalog import load_catalog
from crm_gateway.envoy_config import write_config

SERVICES = ("customer", "sales", "contract", "servicedesk", "reporting")
# Who calls whom directly (besides the gateway): CRM_<CALLER>_<TARGET>_TARGET in the ConfigMaps.
DIRECT_CALLS = {("sales", "customer"), ("servicedesk", "customer")}
EXPECTED_SECRETS = {
    "crm-jwt",
    "crm-servicedesk-service-token",
    *(f"crm-{svc}-secrets" for svc in SERVICES),
    *(f"crm-{svc}-db-app" for svc in SERVICES),
}
DEPLOY_DOC = REPO / "docs" / "deploy.md"
ENVOY_CONFIG_FILE = REPO / "deploy" / "k8s" / "base" / "gateway" / "envoy.yaml"
MAKE_PROTO_DESCRIPTOR = REPO / "build" / "crm.binpb"


def assert_none(problems: list[str]) -> None:
    assert not problems, "\n".join(problems)


# --- pods --------------------------------------------------------------------------------------


def test_every_pod_is_restricted(target: Rendered) -> None:
    assert_none(restricted_security_problems(target.require()))


def test_every_container_has_resources_and_long_running_ones_probes(target: Rendered) -> None:
    assert_none(probe_and_resource_problems(target.require()))


def test_images_are_pinned(target: Rendered) -> None:
    assert_none(all_image_problems(target.require()))


def test_namespace_enforces_restricted_pod_security(renders: dict[str, Rendered]) -> None:
    (namespace,) = renders["base"].of_kind("Namespace")
    labels = namespace["metadata"]["labels"]
    for mode in ("enforce", "audit", "warn"):
        assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"
        assert re.fullmatch(r"v1\.\d+", labels[f"pod-security.kubernetes.io/{mode}-version"])


def test_every_object_carries_the_shared_labels(target: Rendered) -> None:
    problems = []
    for obj in target.require():
        labels = obj["metadata"].get("labels", {})
        if labels.get(PART_OF) != "crm":
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: no {PART_OF}=crm")
        namespace_wide = obj["kind"] == "Namespace" or (
            obj["kind"] == "NetworkPolicy" and not obj["spec"].get("podSelector")
        )
        if not namespace_wide and not (labels.get(NAME) and labels.get(COMPONENT)):
            problems.append(f"{obj['kind']}/{obj['metadata']['name']}: no {NAME} / {COMPONENT}")
    assert_none(problems)


def service_deployments(target: Rendered) -> dict[str, dict[str, Any]]:
    """The five services and the gateway (not, say, the OpenTelemetry collector)."""
    return {
        d["metadata"]["name"]: d
        for d in target.of_kind("Deployment")
        if d["metadata"]["labels"].get(COMPONENT) in ("service", "gateway")
    }


def config_of(target: Rendered, service: str) -> dict[str, str]:
    (config,) = [
        c for c in target.of_kind("ConfigMap") if c["metadata"]["name"].startswith(f"crm-{service}-config")
    ]
    return config["data"]


def test_termination_grace_covers_pre_stop_and_the_services_shutdown_grace(target: Rendered) -> None:
    for service in SERVICES:
        pod = service_deployments(target)[service]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        grace = float(config_of(target, service)[f"CRM_{service.upper()}_SHUTDOWN_GRACE_SECONDS"])
        assert pod["terminationGracePeriodSeconds"] > pre_stop + grace, service


def test_services_run_with_the_contracted_settings(target: Rendered) -> None:
    catalog = load_catalog(env={})
    for service in SERVICES:
        config = config_of(target, service)
        prefix = f"CRM_{service.upper()}_"
        assert config[prefix + "GRPC_HOST"] == "0.0.0.0"
        assert config[prefix + "GRPC_PORT"] == str(catalog.service(service).k8s_port)
        assert config[prefix + "METRICS_PORT"] == "9090"
        # The schema comes from the migrations Job, never from a replica racing its siblings.
        assert config[prefix + "MIGRATE_ON_START"] == "false"
        assert (config[prefix + "JWT_ISSUER"], config[prefix + "JWT_AUDIENCE"]) == (
            catalog.jwt_issuer,
            catalog.jwt_audience,
        )
    for caller, callee in DIRECT_CALLS:
        assert config_of(target, caller)[f"CRM_{caller.upper()}_{callee.upper()}_TARGET"] == f"{callee}:50051"


def test_each_service_stream_has_a_replica_per_nats_node(overlay: Rendered) -> None:
    # A stream on one node of a 3-node cluster stops every event of its service while that node is
    # down; crm_shared applies CRM_<SVC>_STREAM_REPLICAS to the service's own stream at start.
    [nats] = [obj for obj in overlay.of_kind("StatefulSet") if obj["metadata"]["name"] == "nats"]
    nodes = nats["spec"]["replicas"]
    for service in SERVICES:
        replicas = config_of(overlay, service).get(f"CRM_{service.upper()}_STREAM_REPLICAS", "1")
        assert int(replicas) == min(nodes, 3), f"{service}: {replicas} stream replicas on {nodes} NATS nodes"


# --- what every service has --------------------------------------------------------------------


def test_every_service_and_the_gateway_have_pdb_hpa_policy_and_migrations(target: Rendered) -> None:
    objects = target.require()
    assert set(service_deployments(target)) == {*SERVICES, "gateway"}
    with_policies = target.name != "base"
    assert_none(coverage_problems(objects, with_network_policies=with_policies))


def test_secrets_are_referenced_never_committed(target: Rendered) -> None:
    objects = target.require()
    assert_none(committed_secret_problems(objects))
    assert referenced_secrets(objects) == EXPECTED_SECRETS


def test_deploy_doc_names_every_secret_an_operator_must_have(renders: dict[str, Rendered]) -> None:
    doc = DEPLOY_DOC.read_text()
    missing = sorted(name for name in referenced_secrets(renders["base"].require()) if name not in doc)
    assert not missing, f"docs/deploy.md does not tell how to create {missing}"


def test_service_ports_target_container_ports_that_exist(target: Rendered) -> None:
    assert_none(service_port_problems(target.require()))


def test_service_selectors_do_not_pick_up_migration_pods(target: Rendered) -> None:
    jobs = [pod_template(j) for j in target.of_kind("Job")]
    for service in target.of_kind("Service"):
        selector = service["spec"]["selector"]
        grabbed = [j for j in jobs if j and all(j.labels.get(k) == v for k, v in selector.items())]
        assert not grabbed, f"Service/{service['metadata']['name']} selects migration pods"


ROLLOUT_LABEL = "crm.open-crm.io/rollout"


def test_first_rollout_phase_has_what_migrations_need_and_no_service(target: Rendered) -> None:
    """docs/deploy.md applies `-l crm.open-crm.io/rollout!=after-migrations` first, waits for the
    Jobs, then applies the rest: the first phase must hold every Job and what it mounts, no server."""
    first_phase = [
        o
        for o in target.require()
        if o["metadata"].get("labels", {}).get(ROLLOUT_LABEL) != "after-migrations"
    ]
    names = {(o["kind"], o["metadata"]["name"]) for o in first_phase}
    assert not [n for n in names if n[0] == "Deployment" and n[1] in {*SERVICES, "gateway"}]
    jobs = [pod_template(o) for o in first_phase if o["kind"] == "Job"]
    assert {j.labels[NAME] for j in jobs if j} == set(SERVICES)
    for job in jobs:
        assert job is not None
        for _, container in job.containers():
            for source in container.get("envFrom", []):
                assert ("ConfigMap", source["configMapRef"]["name"]) in names


# --- network policies --------------------------------------------------------------------------

OUTSIDE = Endpoint("the internet", None)
PROMETHEUS = Endpoint("prometheus", "monitoring", {"app.kubernetes.io/name": "prometheus"})
STRANGER = Endpoint("a pod in another namespace", "default", {"app": "curious"})


@pytest.fixture
def pods(overlay: Rendered) -> dict[str, Endpoint]:
    return endpoints(overlay.require())


def reachable(overlay: Rendered, source: Endpoint, destination: Endpoint, port: int) -> bool:
    return connection_allowed(overlay.require(), source, destination, port)


def test_the_gateway_is_public_and_reaches_every_service(
    overlay: Rendered, pods: dict[str, Endpoint]
) -> None:
    gateway = pods["gateway/gateway"]
    assert reachable(overlay, OUTSIDE, gateway, 8080)
    assert reachable(overlay, STRANGER, gateway, 8080)
    assert not reachable(overlay, OUTSIDE, gateway, 9901), "Envoy admin open to the world"
    assert reachable(overlay, PROMETHEUS, gateway, 9901)
    for service in SERVICES:
        assert reachable(overlay, gateway, pods[f"{service}/service"], 50051), service
        assert not reachable(overlay, gateway, pods[f"{service}/database"], 5432), service


def test_services_are_reached_only_by_the_gateway_their_callers_and_monitoring(
    overlay: Rendered, pods: dict[str, Endpoint]
) -> None:
    for target in SERVICES:
        pod = pods[f"{target}/service"]
        assert not reachable(overlay, OUTSIDE, pod, 50051), target
        assert not reachable(overlay, STRANGER, pod, 50051), target
        assert reachable(overlay, PROMETHEUS, pod, 9090), target
        for caller in SERVICES:
            if caller != target:
                allowed = reachable(overlay, pods[f"{caller}/service"], pod, 50051)
                assert allowed == ((caller, target) in DIRECT_CALLS), f"{caller} -> {target}"


def test_each_service_reaches_its_own_database_nats_and_collector(
    overlay: Rendered, pods: dict[str, Endpoint]
) -> None:
    collector = pods.get("otel-collector/observability")  # with the observability component only
    for service in SERVICES:
        pod, migrations = pods[f"{service}/service"], pods[f"{service}/migrations"]
        assert reachable(overlay, pod, pods["nats/messaging"], 4222), service
        assert collector is None or reachable(overlay, pod, collector, 4317), service
        assert not reachable(overlay, pod, OUTSIDE, 443), f"{service} may call the internet"
        assert not reachable(overlay, migrations, pods["nats/messaging"], 4222), service
        for owner in SERVICES:
            database = pods[f"{owner}/database"]
            assert reachable(overlay, pod, database, 5432) == (owner == service), f"{service} -> {owner} db"
            assert reachable(overlay, migrations, database, 5432) == (owner == service)


def test_databases_and_nats_keep_their_cluster_traffic(overlay: Rendered, pods: dict[str, Endpoint]) -> None:
    operator = Endpoint("cnpg operator", "cnpg-system", {"app.kubernetes.io/name": "cloudnative-pg"})
    for service in SERVICES:
        database = pods[f"{service}/database"]
        assert reachable(overlay, operator, database, 8000)
        assert reachable(overlay, database, database, 5432), "replication between instances"
        assert reachable(overlay, PROMETHEUS, database, 9187)
    nats = pods["nats/messaging"]
    assert reachable(overlay, nats, nats, 6222)
    assert not reachable(overlay, OUTSIDE, nats, 4222)
    assert not reachable(overlay, pods["gateway/gateway"], nats, 4222)


# --- the gateway's config ----------------------------------------------------------------------


def gateway_config(rendered: Rendered) -> str:
    (config,) = [
        c for c in rendered.of_kind("ConfigMap") if c["metadata"]["name"].startswith("crm-gateway-envoy")
    ]
    return config["data"]["envoy.yaml"]


def generate_k8s_envoy_config(tmp_path: Path) -> str:
    if not MAKE_PROTO_DESCRIPTOR.exists():
        pytest.fail(f"{MAKE_PROTO_DESCRIPTOR} is missing: run `make proto`")
    out = write_config(
        tmp_path / "envoy.yaml",
        descriptor=MAKE_PROTO_DESCRIPTOR,
        jwks="/etc/crm/jwt/jwks.json",
        catalog=load_catalog(env={}),
        profile="k8s",
        descriptor_out=tmp_path / "envoy.binpb",
        descriptor_path_in_config="/etc/envoy/envoy.binpb",
    )
    return out.read_text()


def test_gateway_config_in_the_cluster_is_the_generated_one(target: Rendered, tmp_path: Path) -> None:
    expected = generate_k8s_envoy_config(tmp_path)
    assert gateway_config(target) == expected, (
        "deploy/k8s/base/gateway/envoy.yaml is stale: services.yaml or envoy_config.py changed; "
        "run `make k8s-config`"
    )


def test_gateway_reads_its_config_and_keys_where_they_are_mounted(target: Rendered) -> None:
    gateway = service_deployments(target)["gateway"]["spec"]["template"]["spec"]
    (envoy,) = gateway["containers"]
    config = yaml.safe_load(gateway_config(target))
    assert envoy["args"][envoy["args"].index("-c") + 1] == "/etc/envoy/envoy.yaml"
    mounts = {m["mountPath"]: m for m in envoy["volumeMounts"]}
    assert mounts["/etc/envoy/envoy.yaml"]["subPath"] == "envoy.yaml"
    jwks = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "http_filters"
    ]
    (jwt_filter,) = [f for f in jwks if f["name"] == "envoy.filters.http.jwt_authn"]
    jwks_file = next(iter(jwt_filter["typed_config"]["providers"].values()))["local_jwks"]["filename"]
    assert Path(jwks_file).parent.as_posix() in mounts
    volumes = {v["name"]: v for v in gateway["volumes"]}
    assert volumes[mounts[Path(jwks_file).parent.as_posix()]["name"]]["secret"]["secretName"] == "crm-jwt"


def test_every_gateway_upstream_is_a_service_port(target: Rendered) -> None:
    config = yaml.safe_load(gateway_config(target))
    services = {s["metadata"]["name"]: s for s in target.of_kind("Service")}
    for cluster in config["static_resources"]["clusters"]:
        address = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        host, port = address["socket_address"]["address"], address["socket_address"]["port_value"]
        assert host in services, f"Envoy cluster {cluster['name']} points at no Service {host}"
        assert port in {p["port"] for p in services[host]["spec"]["ports"]}


# --- each rule can fail ------------------------------------------------------------------------


def a_deployment(renders: dict[str, Rendered]) -> dict[str, Any]:
    return copy.deepcopy(service_deployments(renders["base"])["customer"])


def test_rules_catch_a_root_container_and_missing_probes(renders: dict[str, Rendered]) -> None:
    deployment = a_deployment(renders)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"] = {"runAsUser": 0, "runAsNonRoot": False}
    del container["livenessProbe"]
    del container["resources"]["limits"]["memory"]
    deployment["spec"]["template"]["spec"]["initContainers"] = [{"name": "init", "image": "busybox:1.36"}]
    security = "\n".join(restricted_security_problems([deployment]))
    for expected in ("runAsNonRoot", "UID 0", "allowPrivilegeEscalation", "drop ALL", "init"):
        assert expected in security
    probes = probe_and_resource_problems([deployment])
    assert "Deployment/customer container customer: no livenessProbe" in probes
    assert "Deployment/customer container customer: no memory limit" in probes
    assert "Deployment/customer initContainer init: no cpu request" in probes


def test_rules_catch_unpinned_images() -> None:
    assert image_problems("ghcr.io/open-crm/crm-customer") == [
        "ghcr.io/open-crm/crm-customer: no tag or digest"
    ]
    assert image_problems("nats:latest") == ["nats:latest: tag latest"]
    assert image_problems("registry:5000/crm") == ["registry:5000/crm: no tag or digest"]
    assert image_problems("registry:5000/crm:1.2") == []
    assert image_problems("ghcr.io/x/y@sha256:" + "0" * 64) == []


def test_rules_catch_a_service_without_pdb_hpa_policy_or_job(renders: dict[str, Rendered]) -> None:
    objects = [
        o
        for o in renders["dev"].require()
        if not (o["metadata"]["name"] == "sales" and o["kind"] in ("PodDisruptionBudget", "NetworkPolicy"))
        and o["metadata"]["name"] != "sales-migrations"
    ]
    problems = coverage_problems(objects, with_network_policies=True)
    assert problems == [
        "Deployment/sales: no PodDisruptionBudget selects its pods",
        "Deployment/sales: no NetworkPolicy of its own selects its pods",
        "Deployment/sales: no migrations Job",
    ]


def test_rules_catch_a_committed_secret_and_a_wrong_port(renders: dict[str, Rendered]) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "crm-jwt"},
        "data": {"jwks.json": "e30="},
    }
    assert committed_secret_problems([secret]) == ["Secret/crm-jwt: a Secret with values in the manifests"]
    objects = copy.deepcopy(renders["base"].require())
    service = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "contract")
    service["spec"]["ports"][0]["targetPort"] = "gprc"
    assert service_port_problems(objects) == [
        "Service/contract port grpc: Deployment/contract has no container port gprc"
    ]


def test_network_evaluation_sees_a_missing_allow(renders: dict[str, Rendered]) -> None:
    objects = copy.deepcopy(renders["dev"].require())
    pods = endpoints(objects)
    policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "reporting")
    policy["spec"]["ingress"] = policy["spec"]["ingress"][1:]  # drop the rule letting the gateway in
    assert not connection_allowed(objects, pods["gateway/gateway"], pods["reporting/service"], 50051)
    assert connection_allowed(objects, pods["gateway/gateway"], pods["contract/service"], 50051)
