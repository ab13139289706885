"""The observability component: alerts an on-call engineer can act on, dashboards that show data,
and the metrics behind both exported by the real services and Envoy.

- every alert has a severity, a summary, a description and a runbook link to an existing heading;
- every alert and dashboard query is valid PromQL, and every metric it names is served by the
  running stack (make run's devstack: five services and Envoy) — renaming a metric fails here;
- the committed dashboards are exactly dashboards/build.py's output;
- the component renders with the base, and its selectors meet the objects they are meant for;
- the DB pool gauges follow connections really held, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa
import yaml
from google.protobuf import descriptor_pb2
from observability_sources import (
    COMPONENT,
    PROMETHEUS_SYNTHETIC,
    REPO,
    RUNBOOK_URL_PREFIX,
    RUNBOOKS,
    Query,
    alert_queries,
    alert_rules,
    committed_dashboards,
    dashboard_queries,
    exported_names,
    label_values,
    load_build_module,
    metric_names,
    parse,
    runbook_anchors,
)
from prometheus_client import CollectorRegistry

from crm_gateway.envoy_config import streaming_methods
from crm_shared.db.engine import Database
from crm_shared.observability.db_pool import track_pool

CRM_SERVICES = ("customer", "sales", "contract", "servicedesk", "reporting")


def all_queries() -> list[Query]:
    return alert_queries() + dashboard_queries()


# --- alerts and runbooks -------------------------------------------------------------------------


def test_every_alert_says_how_bad_it_is_what_happened_and_where_the_runbook_is():
    rules = alert_rules()
    assert len(rules) >= 20
    for rule in rules:
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), name
        annotations = rule["annotations"]
        assert annotations["summary"].strip() and annotations["description"].strip(), name
        url = annotations["runbook_url"]
        assert url.startswith(RUNBOOK_URL_PREFIX), f"{name}: {url}"
        page, _, anchor = url.removeprefix(RUNBOOK_URL_PREFIX).partition("#")
        runbook = RUNBOOKS / page
        assert runbook.is_file(), f"{name}: {runbook} does not exist"
        assert anchor in runbook_anchors(runbook), f"{name}: no heading #{anchor} in {runbook.name}"


def test_each_alert_has_its_own_runbook_heading_and_the_index_lists_every_page():
    for rule in alert_rules():
        assert rule["annotations"]["runbook_url"].endswith("#" + rule["alert"].lower()), rule["alert"]
    index = (RUNBOOKS / "README.md").read_text()
    pages = {p.name for p in RUNBOOKS.glob("*.md")} - {"README.md"}
    assert pages and all(f"({page})" in index for page in pages), pages
    for rule in alert_rules():
        assert rule["alert"] in index, f"{rule['alert']} missing from docs/runbooks/README.md"


def test_runbooks_explain_meaning_impact_diagnosis_and_mitigation_for_each_alert():
    for page in sorted(RUNBOOKS.glob("*.md")):
        if page.name == "README.md":
            continue
        sections = page.read_text().split("\n## ")[1:]
        assert sections, page.name
        for section in sections:
            heading = section.splitlines()[0]
            for part in ("**Meaning.**", "**Impact.**", "**Diagnosis.**", "**Mitigation.**"):
                assert part in section, f"{page.name} ## {heading}: no {part}"


# --- queries -------------------------------------------------------------------------------------


def test_every_alert_and_dashboard_query_is_valid_promql():
    queries = all_queries()
    assert len(queries) > 60
    for query in queries:
        assert metric_names(parse(query)), f"{query.where}: names no metric"


def test_grpc_code_matchers_use_the_code_names_the_services_record():
    # The interceptor records StatusCode.name (INTERNAL, DEADLINE_EXCEEDED, ...), not "Internal".
    known = {code.name for code in grpc.StatusCode}
    used = set()
    for query in all_queries():
        codes = label_values(parse(query), "grpc_code")
        assert codes <= known, f"{query.where}: unknown gRPC codes {sorted(codes - known)}"
        used |= codes
    assert {"INTERNAL", "UNAVAILABLE", "DEADLINE_EXCEEDED"} <= used


def test_latency_queries_leave_out_exactly_the_streaming_rpcs_of_the_protos():
    descriptor = REPO / "build" / "crm.binpb"
    image = descriptor_pb2.FileDescriptorSet.FromString(descriptor.read_bytes())
    streaming = {method for methods in streaming_methods(image).values() for method in methods}
    assert streaming, "no streaming RPC found in the descriptor"
    assert set(load_build_module().STREAMING_METHODS) == streaming
    for rule in alert_rules():
        if "handling_seconds_bucket" in rule["expr"]:
            excluded = label_values(parse(Query(rule["alert"], rule["expr"])), "grpc_method")
            assert excluded == streaming, rule["alert"]


def test_committed_dashboards_are_what_build_py_writes():
    rendered = load_build_module().render()
    committed = {path.name: path.read_text() for path in (COMPONENT / "dashboards").glob("*.json")}
    assert committed == rendered, (
        "run: .venv/bin/python deploy/k8s/components/observability/dashboards/build.py"
    )


def test_dashboards_have_unique_uids_panel_ids_and_layouts_inside_the_grid():
    dashboards = committed_dashboards()
    assert {
        "crm-overview.json",
        "crm-rpcs.json",
        "crm-events.json",
        "crm-timers-sla.json",
        "crm-db-pool.json",
    } <= set(dashboards)
    assert len({d["uid"] for d in dashboards.values()}) == len(dashboards)
    for name, dashboard in dashboards.items():
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids)), name
        for panel in dashboard["panels"]:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, f"{name}: {panel['title']}"


# --- the metric names, against the real stack ---------------------------------------------------


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture(scope="module")
def scraped(e2e_stack) -> dict[str, str]:
    """/metrics of every service and Envoy's /stats/prometheus, after a few calls through the gateway."""
    token = e2e_stack.token()
    gateway = f"http://{e2e_stack.gateway}"
    assert _get(f"{gateway}/v1/customers?page_size=1", token)[0] == 200
    assert _get(f"{gateway}/v1/tickets?page_size=1", token)[0] == 200
    assert _get(f"{gateway}/v1/customers/does-not-exist", token)[0] in (400, 404)
    pages = {}
    for spec in e2e_stack.stack.catalog.services:
        status, pages[spec.name] = _get(f"http://127.0.0.1:{spec.metrics_port}/metrics")
        assert status == 200, spec.name
    status, pages["gateway"] = _get(f"http://127.0.0.1:{e2e_stack.stack.catalog.admin_port}/stats/prometheus")
    assert status == 200
    return pages


def test_every_metric_in_alerts_and_dashboards_is_exported_by_the_running_stack(scraped):
    exported = set().union(*(exported_names(page) for page in scraped.values()))
    missing = {}
    for query in all_queries():
        for name in metric_names(parse(query)) - exported - PROMETHEUS_SYNTHETIC:
            missing.setdefault(name, query.where)
    assert not missing, f"metrics nobody exports (name: first use): {missing}"


def test_every_service_reports_its_db_pool_and_the_servicedesk_its_sla_counters(scraped):
    for service in CRM_SERVICES:
        assert f'crm_db_pool_size{{service="{service}"}} 10.0' in scraped[service], service
        assert f'crm_db_pool_max_connections{{service="{service}"}}' in scraped[service], service
    for name in ("crm_sla_breaches_total", "crm_sla_warnings_total"):
        assert f"# TYPE {name} counter" in scraped["servicedesk"]


# --- the component rendered ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> list[dict]:
    """kubectl kustomize of the base with this component, as a prod overlay would include it."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed (CI has it): cannot render the component")
    overlay = tmp_path_factory.mktemp("observability-overlay")
    # kustomize wants the paths relative to the kustomization.
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(REPO / "deploy" / "k8s" / "base", overlay)],
                "components": [os.path.relpath(COMPONENT, overlay)],
            }
        )
    )
    result = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _objects(rendered, kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in rendered if doc["kind"] == kind}


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_every_service_sends_spans_to_the_collector_service(rendered):
    collector = _objects(rendered, "Service")["otel-collector"]
    assert {"name": "otlp-grpc", "port": 4317} in [
        {"name": p["name"], "port": p["port"]} for p in collector["spec"]["ports"]
    ]
    deployments = _objects(rendered, "Deployment")
    for service in CRM_SERVICES:
        env = {e["name"]: e for e in deployments[service]["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector:4317", service
        assert "k8s.pod.name=$(CRM_K8S_POD_NAME)" in env["OTEL_RESOURCE_ATTRIBUTES"]["value"]
    # Only the services: the gateway and the collector itself get nothing.
    for name in ("gateway", "otel-collector"):
        env = deployments[name]["spec"]["template"]["spec"]["containers"][0].get("env", [])
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in {e["name"] for e in env}, name
    pods = collector["spec"]["selector"]
    assert _matches(pods, deployments["otel-collector"]["spec"]["template"]["metadata"]["labels"])


def test_the_collector_pipeline_takes_otlp_batches_and_exports_to_the_configured_backend(rendered):
    config_maps = [
        doc for doc in rendered if doc["kind"] == "ConfigMap" and doc["metadata"]["name"].startswith("otel")
    ]
    config = yaml.safe_load(config_maps[0]["data"]["config.yaml"])
    traces = config["service"]["pipelines"]["traces"]
    assert traces == {"receivers": ["otlp"], "processors": ["memory_limiter", "batch"], "exporters": ["otlp"]}
    assert config["exporters"]["otlp"]["endpoint"] == "${env:OTEL_BACKEND_ENDPOINT}"
    deployment = _objects(rendered, "Deployment")["otel-collector"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "OTEL_BACKEND_ENDPOINT", "value": "tempo.monitoring:4317"} in container["env"]
    volume = deployment["spec"]["template"]["spec"]["volumes"][0]
    assert volume["configMap"]["name"] == config_maps[0]["metadata"]["name"]
    assert container["readinessProbe"]["httpGet"]["port"] == "health"
    assert config["extensions"]["health_check"]["endpoint"].endswith(":13133")


def test_the_service_monitor_selects_the_five_services_on_a_port_they_have(rendered):
    monitor = _objects(rendered, "ServiceMonitor")["crm-services"]
    selector = monitor["spec"]["selector"]["matchLabels"]
    port = monitor["spec"]["endpoints"][0]["port"]
    selected = {
        name: service
        for name, service in _objects(rendered, "Service").items()
        if _matches(selector, service["metadata"].get("labels", {}))
    }
    assert set(selected) == set(CRM_SERVICES)
    for name, service in selected.items():
        assert port in {p["name"] for p in service["spec"]["ports"]}, name


def test_the_gateway_pod_monitor_scrapes_envoys_admin_port(rendered):
    monitor = _objects(rendered, "PodMonitor")["crm-gateway"]
    gateway = _objects(rendered, "Deployment")["gateway"]["spec"]["template"]
    assert _matches(monitor["spec"]["selector"]["matchLabels"], gateway["metadata"]["labels"])
    endpoint = monitor["spec"]["podMetricsEndpoints"][0]
    ports = {p["name"]: p["containerPort"] for c in gateway["spec"]["containers"] for p in c.get("ports", [])}
    assert ports[endpoint["port"]] == 9901
    assert endpoint["path"] == "/stats/prometheus"


def test_dashboards_ship_as_stable_configmaps_the_grafana_sidecar_picks_up(rendered):
    shipped = {
        doc["metadata"]["name"]: doc
        for doc in rendered
        if doc["kind"] == "ConfigMap" and doc["metadata"].get("labels", {}).get("grafana_dashboard") == "1"
    }
    committed = committed_dashboards()
    assert {key for doc in shipped.values() for key in doc["data"]} == set(committed)
    for name, doc in shipped.items():
        assert name.startswith("crm-dashboard-"), name  # no hash suffix
        for key, text in doc["data"].items():
            assert json.loads(text) == committed[key]


def test_every_alert_is_in_the_rendered_prometheus_rule(rendered):
    rule = _objects(rendered, "PrometheusRule")["crm-alerts"]
    rendered_alerts = [r["alert"] for group in rule["spec"]["groups"] for r in group["rules"]]
    assert rendered_alerts == [r["alert"] for r in alert_rules()]
    for doc in rendered:
        if doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "observability":
            assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "crm", doc["metadata"]["name"]
            assert doc["metadata"]["namespace"] == "crm", doc["metadata"]["name"]


# --- DB pool gauges --------------------------------------------------------------------------------


@pytest.mark.asyncio(loop_scope="session")
async def test_db_pool_gauges_follow_the_connections_held(database_url):
    registry = CollectorRegistry()
    db = await Database.connect(database_url, pool_size=2)
    try:
        track_pool("customer", db.engine, registry=registry)

        def gauge(name: str) -> float | None:
            return registry.get_sample_value(f"crm_db_pool_{name}", {"service": "customer"})

        assert gauge("size") == 2
        # SQLite: one writer anyway, no overflow; PostgreSQL: as many again as overflow.
        assert gauge("max_connections") == (2 if db.is_sqlite else 4)
        assert gauge("checked_out") == 0
        async with db.engine.connect() as first:
            await first.execute(sa.text("SELECT 1"))
            assert gauge("checked_out") == 1
            async with db.engine.connect() as second:
                await second.execute(sa.text("SELECT 1"))
                assert (gauge("checked_out"), gauge("open"), gauge("overflow")) == (2, 2, 0)
                if not db.is_sqlite:
                    async with db.engine.connect() as third:
                        await third.execute(sa.text("SELECT 1"))
                        assert (gauge("checked_out"), gauge("open"), gauge("overflow")) == (3, 3, 1)
        assert gauge("checked_out") == 0
        assert gauge("open") == 2  # returned to the pool, kept open
    finally:
        await db.dispose()


@pytest.mark.asyncio(loop_scope="session")
async def test_db_pool_gauges_report_the_latest_engine_of_a_service_and_forget_dropped_ones(tmp_path: Path):
    registry = CollectorRegistry()
    old = await Database.connect(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}", pool_size=3)
    new = await Database.connect(f"sqlite+aiosqlite:///{tmp_path / 'new.db'}", pool_size=5)
    track_pool("sales", old.engine, registry=registry)
    track_pool("sales", new.engine, registry=registry)
    assert registry.get_sample_value("crm_db_pool_size", {"service": "sales"}) == 5
    await old.dispose()
    await new.dispose()
    del old, new
    await asyncio.sleep(0)
    gc.collect()
    assert registry.get_sample_value("crm_db_pool_size", {"service": "sales"}) is None
