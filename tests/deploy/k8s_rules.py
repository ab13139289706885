"""The deployment rules, as functions over rendered Kubernetes objects that return what breaks them.

Each function takes parsed objects (dicts, as `kubectl kustomize` prints them) and returns a list
of human-readable problems, empty when the rule holds; the tests assert on that and also feed
deliberately broken objects in, so every rule is shown to be able to fail.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]

WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod")
LONG_RUNNING_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
PROBES = ("startupProbe", "readinessProbe", "livenessProbe")
# Pod Security "restricted" allows adding this capability and no other.
ALLOWED_ADDED_CAPABILITIES = {"NET_BIND_SERVICE"}
PART_OF = "app.kubernetes.io/part-of"
NAME = "app.kubernetes.io/name"
COMPONENT = "app.kubernetes.io/component"


def ref(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


# --- pod templates -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PodTemplate:
    owner: Obj
    labels: Mapping[str, str]
    spec: Obj

    @property
    def long_running(self) -> bool:
        return self.owner["kind"] in LONG_RUNNING_KINDS

    @property
    def namespace(self) -> str:
        return self.owner["metadata"].get("namespace", "")

    def containers(self, *, init: bool = True) -> Iterator[tuple[str, Obj]]:
        """(where, container) for app containers, then init and ephemeral containers."""
        for c in self.spec.get("containers", []):
            yield f"{ref(self.owner)} container {c['name']}", c
        if init:
            for key in ("initContainers", "ephemeralContainers"):
                for c in self.spec.get(key, []):
                    yield f"{ref(self.owner)} {key[:-1]} {c['name']}", c

    def named_ports(self) -> dict[str, int]:
        return {
            p["name"]: p["containerPort"]
            for _, c in self.containers(init=False)
            for p in c.get("ports", [])
            if "name" in p
        }


def pod_template(obj: Obj) -> PodTemplate | None:
    kind = obj.get("kind")
    if kind not in WORKLOAD_KINDS:
        return None
    if kind == "Pod":
        return PodTemplate(obj, obj["metadata"].get("labels", {}), obj["spec"])
    spec = obj["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else obj["spec"]
    template = spec["template"]
    return PodTemplate(obj, template.get("metadata", {}).get("labels", {}), template["spec"])


def pod_templates(objects: list[Obj]) -> list[PodTemplate]:
    return [t for t in map(pod_template, objects) if t is not None]


# --- security context --------------------------------------------------------------------------


def restricted_security_problems(objects: list[Obj]) -> list[str]:
    """Pod Security "restricted", plus what we add: read-only root filesystem, no service account token."""
    problems: list[str] = []
    for template in pod_templates(objects):
        spec, where = template.spec, ref(template.owner)
        pod_ctx = spec.get("securityContext", {})
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(host):
                problems.append(f"{where}: {host} is set")
        if spec.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: automountServiceAccountToken is not false")
        for volume in spec.get("volumes", []):
            if "hostPath" in volume:
                problems.append(f"{where}: volume {volume['name']} is a hostPath")
        for name, container in template.containers():
            ctx = container.get("securityContext", {})

            def effective(key: str, ctx: Obj = ctx, pod_ctx: Obj = pod_ctx) -> Any:
                return ctx.get(key, pod_ctx.get(key))

            if effective("runAsNonRoot") is not True:
                problems.append(f"{name}: runAsNonRoot is not true")
            if effective("runAsUser") == 0:
                problems.append(f"{name}: runs as UID 0")
            if (effective("seccompProfile") or {}).get("type") not in ("RuntimeDefault", "Localhost"):
                problems.append(f"{name}: seccompProfile is not RuntimeDefault or Localhost")
            if ctx.get("privileged"):
                problems.append(f"{name}: privileged")
            if ctx.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{name}: allowPrivilegeEscalation is not false")
            if ctx.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{name}: readOnlyRootFilesystem is not true")
            capabilities = ctx.get("capabilities", {})
            if "ALL" not in capabilities.get("drop", []):
                problems.append(f"{name}: capabilities do not drop ALL")
            added = set(capabilities.get("add", [])) - ALLOWED_ADDED_CAPABILITIES
            if added:
                problems.append(f"{name}: adds capabilities {sorted(added)}")
    return problems


# --- probes, resources, images -----------------------------------------------------------------


def probe_and_resource_problems(objects: list[Obj]) -> list[str]:
    """Every container has cpu+memory requests and limits; long-running ones all three probes."""
    problems: list[str] = []
    for template in pod_templates(objects):
        for name, container in template.containers():
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(bound, {}):
                        problems.append(f"{name}: no {resource} {bound[:-1]}")
        if template.long_running:
            for name, container in template.containers(init=False):
                problems += [f"{name}: no {probe}" for probe in PROBES if probe not in container]
    return problems


def image_problems(image: str) -> list[str]:
    """A tag (not `latest`) or a digest is required: an untagged image means `latest`."""
    if "@sha256:" in image:
        return []
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return [f"{image}: no tag or digest"]
    if last.rsplit(":", 1)[1] == "latest":
        return [f"{image}: tag latest"]
    return []


def images(objects: list[Obj]) -> list[tuple[str, str]]:
    """(where, image) for every container, and the PostgreSQL image of CloudNativePG clusters."""
    found = [(name, c.get("image", "")) for t in pod_templates(objects) for name, c in t.containers()]
    found += [(ref(o), o["spec"].get("imageName", "")) for o in objects if o["kind"] == "Cluster"]
    return found


def all_image_problems(objects: list[Obj]) -> list[str]:
    return [f"{where}: {p}" for where, image in images(objects) for p in image_problems(image)]


# --- label selectors ---------------------------------------------------------------------------


def selector_matches(selector: Obj | None, labels: Mapping[str, str]) -> bool:
    """A LabelSelector (matchLabels + matchExpressions); an empty one matches everything."""
    if selector is None:
        return False
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    return all(_expression_holds(e, labels) for e in selector.get("matchExpressions") or [])


def _expression_holds(expression: Obj, labels: Mapping[str, str]) -> bool:
    key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
    present = key in labels
    holds = {
        "In": present and labels.get(key) in values,
        "NotIn": not (present and labels.get(key) in values),
        "Exists": present,
        "DoesNotExist": not present,
    }
    return holds[operator]


def service_selects(service: Obj, labels: Mapping[str, str]) -> bool:
    """A Service's selector is a plain map; no selector selects nothing."""
    selector = service["spec"].get("selector")
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


# --- what every service needs ------------------------------------------------------------------


def coverage_problems(objects: list[Obj], *, with_network_policies: bool) -> list[str]:
    """Each Deployment of a service or the gateway has a PDB, an HPA on it, a NetworkPolicy selecting
    its pods (when policies are deployed) and, for services, a migrations Job."""
    problems: list[str] = []
    by_kind: dict[str, list[Obj]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    jobs = [t for t in pod_templates(by_kind.get("Job", []))]
    for deployment in by_kind.get("Deployment", []):
        template = pod_template(deployment)
        assert template is not None
        if template.labels.get(COMPONENT) not in ("service", "gateway"):
            continue
        name = deployment["metadata"]["name"]
        if not any(
            selector_matches(p["spec"].get("selector"), template.labels)
            for p in by_kind.get("PodDisruptionBudget", [])
        ):
            problems.append(f"Deployment/{name}: no PodDisruptionBudget selects its pods")
        if not any(
            (h["spec"]["scaleTargetRef"]["kind"], h["spec"]["scaleTargetRef"]["name"]) == ("Deployment", name)
            for h in by_kind.get("HorizontalPodAutoscaler", [])
        ):
            problems.append(f"Deployment/{name}: no HorizontalPodAutoscaler targets it")
        if with_network_policies and not any(
            # A namespace-wide policy (empty selector, e.g. default deny) does not count.
            p["spec"].get("podSelector") and selector_matches(p["spec"]["podSelector"], template.labels)
            for p in by_kind.get("NetworkPolicy", [])
        ):
            problems.append(f"Deployment/{name}: no NetworkPolicy of its own selects its pods")
        if template.labels.get(COMPONENT) == "service" and not any(
            j.labels.get(NAME) == template.labels.get(NAME) and j.labels.get(COMPONENT) == "migrations"
            for j in jobs
        ):
            problems.append(f"Deployment/{name}: no migrations Job")
    return problems


# --- secrets -----------------------------------------------------------------------------------


def referenced_secrets(objects: list[Obj]) -> set[str]:
    names: set[str] = set()
    for template in pod_templates(objects):
        for _, container in template.containers():
            for env in container.get("env", []):
                secret_ref = env.get("valueFrom", {}).get("secretKeyRef")
                if secret_ref:
                    names.add(secret_ref["name"])
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    names.add(source["secretRef"]["name"])
        for volume in template.spec.get("volumes", []):
            if "secret" in volume:
                names.add(volume["secret"]["secretName"])
            for source in volume.get("projected", {}).get("sources", []):
                if "secret" in source:
                    names.add(source["secret"]["name"])
    return names


def committed_secret_problems(objects: list[Obj]) -> list[str]:
    return [
        f"{ref(o)}: a Secret with values in the manifests"
        for o in objects
        if o["kind"] == "Secret" and (o.get("data") or o.get("stringData"))
    ]


# --- Services ----------------------------------------------------------------------------------


def service_port_problems(objects: list[Obj]) -> list[str]:
    """Every Service selects at least one pod template, and every port targets a container port
    that each selected template has (by name, or by number)."""
    problems: list[str] = []
    templates = pod_templates(objects)
    for service in (o for o in objects if o["kind"] == "Service"):
        selected = [t for t in templates if service_selects(service, t.labels)]
        if not selected:
            problems.append(f"{ref(service)}: selects no pods")
        for port in service["spec"].get("ports", []):
            target = port.get("targetPort", port["port"])
            for template in selected:
                named = template.named_ports()
                numbers = {
                    p["containerPort"] for _, c in template.containers(init=False) for p in c.get("ports", [])
                }
                if (isinstance(target, str) and target not in named) or (
                    isinstance(target, int) and target not in numbers
                ):
                    problems.append(
                        f"{ref(service)} port {port.get('name', port['port'])}: "
                        f"{ref(template.owner)} has no container port {target}"
                    )
    return problems


# --- network policies --------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """One end of a connection: a pod (namespace + labels + named ports) or something outside."""

    description: str
    namespace: str | None  # None: outside the cluster
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: Mapping[str, int] = field(default_factory=dict)
    ip: str = "203.0.113.10"

    def namespace_labels(self) -> dict[str, str]:
        return {"kubernetes.io/metadata.name": self.namespace} if self.namespace else {}


def _peer_matches(peer: Obj, policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        if other.namespace is not None:
            return False  # pod traffic is matched by selectors here (ipBlocks are for the outside)
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(cidr) for cidr in block.get("except", [])
        )
    if other.namespace is None:
        return False
    namespace_selector = peer.get("namespaceSelector")
    if namespace_selector is None:
        in_namespace = other.namespace == policy_namespace
    else:
        in_namespace = selector_matches(namespace_selector, other.namespace_labels())
    pod_selector = peer.get("podSelector")
    return in_namespace and (pod_selector is None or selector_matches(pod_selector, other.labels))


def _port_matches(rule_ports: list[Obj] | None, port: int, protocol: str, destination: Endpoint) -> bool:
    if not rule_ports:
        return True
    for rule_port in rule_ports:
        if rule_port.get("protocol", "TCP") != protocol:
            continue
        wanted = rule_port.get("port")
        if wanted is None:
            return True
        number = destination.ports.get(wanted) if isinstance(wanted, str) else wanted
        if number is not None and number <= port <= rule_port.get("endPort", number):
            return True
    return False


def _policy_types(policy: Obj) -> list[str]:
    spec = policy["spec"]
    return spec.get("policyTypes") or (["Ingress", "Egress"] if "egress" in spec else ["Ingress"])


def _direction_allows(
    policies: list[Obj],
    direction: str,
    subject: Endpoint,
    other: Endpoint,
    port: int,
    protocol: str,
    destination: Endpoint,
) -> bool:
    if subject.namespace is None:
        return True  # the outside is not governed by our policies
    rules_key, peers_key = ("ingress", "from") if direction == "Ingress" else ("egress", "to")
    selecting = [
        p
        for p in policies
        if p["metadata"].get("namespace") == subject.namespace
        and direction in _policy_types(p)
        and selector_matches(p["spec"].get("podSelector", {}), subject.labels)
    ]
    if not selecting:
        return True
    return any(
        (
            not rule.get(peers_key)
            or any(_peer_matches(peer, subject.namespace, other) for peer in rule[peers_key])
        )
        and _port_matches(rule.get("ports"), port, protocol, destination)
        for policy in selecting
        for rule in policy["spec"].get(rules_key) or []
    )


def connection_allowed(
    objects: list[Obj], source: Endpoint, destination: Endpoint, port: int, protocol: str = "TCP"
) -> bool:
    """Whether the NetworkPolicies let `source` open a connection to `destination`:`port` (egress
    of the source and ingress of the destination must both allow it)."""
    policies = [o for o in objects if o["kind"] == "NetworkPolicy"]
    return _direction_allows(
        policies, "Egress", source, destination, port, protocol, destination
    ) and _direction_allows(policies, "Ingress", destination, source, port, protocol, destination)


def endpoints(objects: list[Obj]) -> dict[str, Endpoint]:
    """Pods the manifests create, keyed "<name>/<component>"; CloudNativePG instances included
    with the labels the operator puts on them."""
    found: dict[str, Endpoint] = {}
    for template in pod_templates(objects):
        key = f"{template.labels.get(NAME)}/{template.labels.get(COMPONENT)}"
        found[key] = Endpoint(key, template.namespace, dict(template.labels), template.named_ports())
    for cluster in (o for o in objects if o["kind"] == "Cluster"):
        labels = dict(cluster["spec"].get("inheritedMetadata", {}).get("labels", {}))
        labels.update({"cnpg.io/cluster": cluster["metadata"]["name"], "cnpg.io/podRole": "instance"})
        key = f"{labels.get(NAME)}/database"
        ports = {"postgresql": 5432, "metrics": 9187, "status": 8000}
        found[key] = Endpoint(key, cluster["metadata"].get("namespace"), labels, ports)
    return found
