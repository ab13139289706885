"""Builds the CRM Grafana dashboards; the JSON files next to this script are its committed output.

    .venv/bin/python deploy/k8s/components/observability/dashboards/build.py

Why a script rather than hand-written JSON: five dashboards share one datasource/namespace
picker, one layout and the same query idioms (rates without health checks, quantiles from
histogram buckets, streaming RPCs out of latency), and Grafana's JSON repeats all of it per
panel. tests/deploy/test_observability.py fails when a committed file differs from what this
script writes, and checks every metric named here against the running services and Envoy.

Labels the queries rely on: `namespace`, `pod`, and `service` (the CRM service or `gateway`,
set by monitors/monitors.yaml). Envoy's histograms are in milliseconds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

NS = 'namespace="$namespace"'
NOT_HEALTH = 'grpc_service!="grpc.health.v1.Health"'
# gRPC codes that mean "the server failed", as the services record them (upper-case names).
SERVER_ERROR_CODES = "INTERNAL|UNKNOWN|UNAVAILABLE|DATA_LOSS|DEADLINE_EXCEEDED"
# Client- and server-streaming RPCs (from protos/; the test compares with the descriptor): they
# last as long as an import, an export or a watch, so they stay out of latency panels.
STREAMING_METHODS = (
    "ExportCustomers",
    "ExportReport",
    "ImportCustomers",
    "IngestBehaviorEvents",
    "WatchAgenda",
)
UNARY = f'grpc_method!~"{"|".join(STREAMING_METHODS)}"'
CRM_SERVICES = "customer|sales|contract|servicedesk|reporting"
GATEWAY = f'{NS}, envoy_http_conn_manager_prefix="crm_gateway"'
CLUSTERS = f'{NS}, envoy_cluster_name=~"svc_.*"'
RATE = "[$__rate_interval]"
HANDLED = "crm_grpc_server_handled_total"

Panel = dict[str, Any]


# --- panels ------------------------------------------------------------------------------------


def target(expr: str, legend: str = "", **extra: Any) -> dict[str, Any]:
    return {"expr": expr, "legendFormat": legend, **extra}


def timeseries(
    title: str,
    targets: list[dict],
    unit: str = "short",
    *,
    width: int = 12,
    stacked: bool = False,
    description: str = "",
) -> Panel:
    custom: dict[str, Any] = {"lineWidth": 1, "fillOpacity": 10, "showPoints": "never"}
    if stacked:
        custom.update(stacking={"mode": "normal", "group": "A"}, fillOpacity=60)
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
        "options": {
            "legend": {
                "displayMode": "table",
                "placement": "bottom",
                "calcs": ["mean", "max", "lastNotNull"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
        "_width": width,
        "_height": 8,
    }


def stat(
    title: str, expr: str, unit: str, thresholds: list[tuple[float | None, str]], description: str
) -> Panel:
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "targets": [target(expr, instant=True)],
        "fieldConfig": {
            "defaults": {
                "unit": unit,
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"value": value, "color": color} for value, color in thresholds],
                },
            },
            "overrides": [],
        },
        "options": {
            "colorMode": "background",
            "graphMode": "none",
            "reduceOptions": {"calcs": ["lastNotNull"]},
        },
        "_width": 6,
        "_height": 4,
    }


def heatmap(title: str, expr: str, description: str) -> Panel:
    return {
        "type": "heatmap",
        "title": title,
        "description": description,
        "targets": [target(expr, "{{le}}", format="heatmap")],
        "options": {"calculate": False, "yAxis": {"unit": "s"}, "cellGap": 1},
        "_width": 12,
        "_height": 8,
    }


def table(title: str, columns: dict[str, str], description: str) -> Panel:
    """One row per (grpc_service, grpc_method); `columns` maps a header to an instant query."""
    targets = [
        target(expr, format="table", instant=True, refId=chr(ord("A") + index))
        for index, expr in enumerate(columns.values())
    ]
    renames = {f"Value #{chr(ord('A') + index)}": header for index, header in enumerate(columns)}
    return {
        "type": "table",
        "title": title,
        "description": description,
        "targets": targets,
        "transformations": [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True}, "renameByName": renames},
            },
        ],
        "fieldConfig": {"defaults": {"decimals": 3}, "overrides": []},
        "options": {"sortBy": [{"displayName": next(iter(columns)), "desc": True}]},
        "_width": 24,
        "_height": 10,
    }


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": [], "_width": 24, "_height": 1}


def series(metric: str, *matchers: str) -> str:
    """`metric{namespace="$namespace", <matchers>}`."""
    return f"{metric}{{{', '.join((NS, *matchers))}}}"


def rate_by(by: str, selector: str, window: str = RATE) -> str:
    return f"sum by ({by}) (rate({selector}{window}))"


def quantile(q: float, bucket_selector: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({bucket_selector}{RATE})))"


# --- dashboards --------------------------------------------------------------------------------


def _variables(*, with_service: bool) -> list[dict[str, Any]]:
    variables: list[dict[str, Any]] = [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
        {
            "name": "namespace",
            "label": "Namespace",
            "type": "query",
            "datasource": {"type": "prometheus", "uid": "${datasource}"},
            "query": {
                "query": "label_values(crm_grpc_server_handled_total, namespace)",
                "refId": "namespace",
            },
            "definition": "label_values(crm_grpc_server_handled_total, namespace)",
            "current": {"text": "crm", "value": "crm"},
            "refresh": 2,
            "sort": 1,
        },
    ]
    if with_service:
        query = f"label_values(crm_grpc_server_handled_total{{{NS}}}, service)"
        variables.append(
            {
                "name": "service",
                "label": "Service",
                "type": "query",
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "query": {"query": query, "refId": "service"},
                "definition": query,
                "current": {"text": "customer", "value": "customer"},
                "refresh": 2,
                "sort": 1,
            }
        )
    return variables


def _layout(panels: list[Panel]) -> list[Panel]:
    """Left to right, wrapping at Grafana's 24 columns; ids in order."""
    x = y = row_height = 0
    laid_out = []
    for panel_id, panel in enumerate(panels, start=1):
        width, height = panel.pop("_width"), panel.pop("_height")
        if x + width > 24:
            x, y, row_height = 0, y + row_height, 0
        panel["id"] = panel_id
        panel["gridPos"] = {"x": x, "y": y, "w": width, "h": height}
        panel["datasource"] = {"type": "prometheus", "uid": "${datasource}"}
        for index, each in enumerate(panel.get("targets", [])):
            each.setdefault("refId", chr(ord("A") + index))
            each["datasource"] = panel["datasource"]
        x += width
        row_height = max(row_height, height)
        laid_out.append(panel)
    return laid_out


def dashboard(
    uid: str, title: str, description: str, panels: list[Panel], *, with_service: bool = False
) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["crm"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {"list": _variables(with_service=with_service)},
        "annotations": {"list": []},
        "links": [
            {"type": "dashboards", "tags": ["crm"], "title": "CRM dashboards", "asDropdown": True},
            {
                "type": "link",
                "title": "Runbooks",
                "url": "https://github.com/open-crm/crm/tree/main/docs/runbooks",
                "targetBlank": True,
            },
        ],
        "panels": _layout(panels),
    }


def overview() -> dict:
    handled = series(HANDLED, NOT_HEALTH)
    errors = series(HANDLED, NOT_HEALTH, f'grpc_code=~"{SERVER_ERROR_CODES}"')
    cpu = series("process_cpu_seconds_total", f'service=~"{CRM_SERVICES}"')
    buckets = f"crm_grpc_server_handling_seconds_bucket{{{NS}, {NOT_HEALTH}, {UNARY}}}"
    gateway_buckets = f"envoy_http_downstream_rq_time_bucket{{{GATEWAY}}}"
    panels = [
        row("At a glance"),
        stat(
            "Server error ratio (5m)",
            f"sum(rate({errors}[5m])) / sum(rate({handled}[5m]))",
            "percentunit",
            [(None, "green"), (0.01, "orange"), (0.05, "red")],
            "Share of RPCs (all services) that ended with a server-side error code.",
        ),
        stat(
            "Oldest unpublished event",
            f"max(crm_outbox_oldest_unsent_age_seconds{{{NS}}})",
            "s",
            [(None, "green"), (60, "orange"), (300, "red")],
            "Oldest event still in any service's outbox (~0 while NATS is reachable and relays keep up).",
        ),
        stat(
            "Dead letters (24h)",
            f"sum(increase(crm_consumer_dead_letters_total{{{NS}}}[24h]))",
            "short",
            [(None, "green"), (1, "red")],
            "Events consumers gave up on in the last day: their effects are missing until replayed.",
        ),
        stat(
            "Overdue timers",
            f"sum(crm_timers_due{{{NS}}})",
            "short",
            [(None, "green"), (10, "orange"), (100, "red")],
            "Durable timers due and not fired yet (SLA, reclaims, reminders, expiries).",
        ),
        row("Services: rate, errors, duration"),
        timeseries(
            "Requests / s by service",
            [target(f"sum by (service) (rate({handled}{RATE}))", "{{service}}")],
            "reqps",
            description="Completed RPCs per second, health checks excluded.",
        ),
        timeseries(
            "Server error ratio by service",
            [
                target(
                    f"sum by (service) (rate({errors}{RATE})) / sum by (service) (rate({handled}{RATE}))",
                    "{{service}}",
                )
            ],
            "percentunit",
            description=f"RPCs ending {SERVER_ERROR_CODES.replace('|', ', ')} over all RPCs.",
        ),
        *[
            timeseries(
                f"p{int(q * 100)} latency by service (unary)",
                [target(quantile(q, buckets, "service"), "{{service}}")],
                "s",
                width=8,
            )
            for q in (0.5, 0.95, 0.99)
        ],
        timeseries(
            "Non-OK RPCs / s by code",
            [
                target(
                    rate_by("service, grpc_code", series(HANDLED, NOT_HEALTH, 'grpc_code!="OK"')),
                    "{{service}} {{grpc_code}}",
                )
            ],
            "reqps",
            stacked=True,
            description="Client errors (INVALID_ARGUMENT, NOT_FOUND, ...) are normal in moderation; "
            "server errors are in the ratio panel.",
        ),
        timeseries(
            "RPCs in flight",
            [target(f"sum by (service) (crm_grpc_server_in_flight{{{NS}}})", "{{service}}")],
            description="RPCs being handled right now (all pods).",
        ),
        timeseries(
            "CPU seconds per 1000 RPCs",
            [
                target(
                    f"1000 * {rate_by('service', cpu)} / {rate_by('service', handled)}",
                    "{{service}}",
                )
            ],
            "s",
            description="Process CPU time (background workers included) divided by RPCs served.",
        ),
        timeseries(
            "Process CPU (cores) by service",
            [
                target(
                    rate_by("service", cpu),
                    "{{service}}",
                )
            ],
            "short",
        ),
        row("Gateway (Envoy)"),
        timeseries(
            "Gateway responses / s by status class",
            [
                target(
                    rate_by("envoy_response_code_class", f"envoy_http_downstream_rq_xx{{{GATEWAY}}}"),
                    "{{envoy_response_code_class}}xx",
                )
            ],
            "reqps",
            stacked=True,
            description="HTTP status of what the gateway answered. gRPC calls answer 200 with a grpc-status; "
            "REST calls carry the mapped HTTP status.",
        ),
        timeseries(
            "Upstream responses / s by service and class",
            [
                target(
                    "sum by (envoy_cluster_name, envoy_response_code_class) "
                    f"(rate(envoy_cluster_upstream_rq_xx{{{CLUSTERS}}}{RATE}))",
                    "{{envoy_cluster_name}} {{envoy_response_code_class}}xx",
                )
            ],
            "reqps",
        ),
        timeseries(
            "Gateway latency (downstream)",
            [
                target(quantile(q, gateway_buckets, "namespace"), f"p{int(q * 100)}")
                for q in (0.5, 0.95, 0.99)
            ],
            "ms",
            description="From the first byte received to the last byte sent, gateway included.",
        ),
        timeseries(
            "Upstream latency p99 by service (as the gateway sees it)",
            [
                target(
                    quantile(
                        0.99, f"envoy_cluster_upstream_rq_time_bucket{{{CLUSTERS}}}", "envoy_cluster_name"
                    ),
                    "{{envoy_cluster_name}}",
                )
            ],
            "ms",
        ),
        timeseries(
            "Healthy upstream endpoints",
            [
                target(
                    f"min by (envoy_cluster_name) (envoy_cluster_membership_healthy{{{CLUSTERS}}})",
                    "{{envoy_cluster_name}} healthy",
                ),
                target(
                    f"max by (envoy_cluster_name) (envoy_cluster_membership_total{{{CLUSTERS}}})",
                    "{{envoy_cluster_name}} total",
                ),
            ],
            description="Lowest healthy count over gateway pods; endpoints failing health checks drop out.",
        ),
        timeseries(
            "Upstream timeouts and connect failures / s",
            [
                target(
                    rate_by("envoy_cluster_name", f"envoy_cluster_upstream_rq_timeout{{{CLUSTERS}}}"),
                    "{{envoy_cluster_name}} timeout",
                ),
                target(
                    rate_by("envoy_cluster_name", f"envoy_cluster_upstream_cx_connect_fail{{{CLUSTERS}}}"),
                    "{{envoy_cluster_name}} connect fail",
                ),
            ],
            "reqps",
        ),
    ]
    return dashboard(
        "crm-overview",
        "CRM / Overview",
        "RED per service, the gateway's status codes and health, and the backlog numbers that page.",
        panels,
    )


def rpcs() -> dict:
    selector = f'{NS}, service="$service", {NOT_HEALTH}'
    handled = f"{HANDLED}{{{selector}}}"
    errors = f'{HANDLED}{{{selector}, grpc_code=~"{SERVER_ERROR_CODES}"}}'
    buckets = f"crm_grpc_server_handling_seconds_bucket{{{selector}}}"
    by = "grpc_service, grpc_method"
    panels = [
        table(
            "RPCs of $service (last 5 minutes)",
            {
                "req/s": f"sum by ({by}) (rate({handled}[5m]))",
                "server error ratio": f"{rate_by(by, errors, '[5m]')} / {rate_by(by, handled, '[5m]')}",
                "p50 s": f"histogram_quantile(0.5, sum by ({by}, le) (rate({buckets}[5m])))",
                "p99 s": f"histogram_quantile(0.99, sum by ({by}, le) (rate({buckets}[5m])))",
            },
            "Every RPC the service answered in the window; streaming RPCs' durations are whole streams.",
        ),
        timeseries(
            "Requests / s by RPC",
            [target(f"sum by (grpc_method) (rate({handled}{RATE}))", "{{grpc_method}}")],
            "reqps",
            stacked=True,
        ),
        timeseries(
            "Non-OK RPCs / s by RPC and code",
            [
                target(
                    rate_by("grpc_method, grpc_code", f'{HANDLED}{{{selector}, grpc_code!="OK"}}'),
                    "{{grpc_method}} {{grpc_code}}",
                )
            ],
            "reqps",
        ),
        timeseries(
            "p99 latency by RPC",
            [target(quantile(0.99, buckets, "grpc_method"), "{{grpc_method}}")],
            "s",
        ),
        timeseries(
            "p50 latency by RPC",
            [target(quantile(0.5, buckets, "grpc_method"), "{{grpc_method}}")],
            "s",
        ),
        timeseries(
            "Server errors / s by RPC",
            [
                target(
                    f"sum by (grpc_method, grpc_code) (rate({errors}{RATE}))", "{{grpc_method}} {{grpc_code}}"
                )
            ],
            "reqps",
        ),
        timeseries(
            "RPCs in flight by pod",
            [target(f'sum by (pod) (crm_grpc_server_in_flight{{{NS}, service="$service"}})', "{{pod}}")],
        ),
    ]
    return dashboard(
        "crm-rpcs",
        "CRM / RPCs",
        "Per RPC of one service: rate, codes, latency quantiles.",
        panels,
        with_service=True,
    )


def events() -> dict:
    by = "service, consumer"
    panels = [
        row("Outbox (transactional, per producing service)"),
        timeseries(
            "Outbox backlog",
            [target(f"max by (service) (crm_outbox_backlog{{{NS}}})", "{{service}}")],
            description="Events committed but not yet acknowledged by JetStream.",
        ),
        timeseries(
            "Oldest unpublished event age",
            [target(f"max by (service) (crm_outbox_oldest_unsent_age_seconds{{{NS}}})", "{{service}}")],
            "s",
        ),
        timeseries(
            "Published / s",
            [target(f"sum by (service) (rate(crm_outbox_published_total{{{NS}}}{RATE}))", "{{service}}")],
            "ops",
        ),
        timeseries(
            "Publish errors / s",
            [
                target(
                    f"sum by (service) (rate(crm_outbox_publish_errors_total{{{NS}}}{RATE}))", "{{service}}"
                )
            ],
            "ops",
            description="Failed publish attempts (retried with backoff). Several services at once: NATS.",
        ),
        row("Consumers"),
        timeseries(
            "Event-to-apply lag p50 / p99",
            [
                target(
                    quantile(q, f"crm_consumer_lag_seconds_bucket{{{NS}}}", by),
                    f"{{{{service}}}}/{{{{consumer}}}} p{int(q * 100)}",
                )
                for q in (0.5, 0.99)
            ],
            "s",
            description="From an event's occurrence to its application (reporting: the event-to-report lag).",
        ),
        heatmap(
            "Event-to-apply lag (all consumers)",
            f"sum by (le) (rate(crm_consumer_lag_seconds_bucket{{{NS}}}{RATE}))",
            "Distribution of consumer lag over time.",
        ),
        timeseries(
            "Pending (not yet delivered)",
            [target(f"max by ({by}) (crm_consumer_pending{{{NS}}})", "{{service}}/{{consumer}}")],
        ),
        timeseries(
            "Redeliveries / s",
            [
                target(
                    f"sum by ({by}) (rate(crm_consumer_redeliveries_total{{{NS}}}{RATE}))",
                    "{{service}}/{{consumer}}",
                )
            ],
            "ops",
        ),
        timeseries(
            "Dead letters (per hour)",
            [
                target(
                    f"sum by ({by}) (increase(crm_consumer_dead_letters_total{{{NS}}}[1h]))",
                    "{{service}}/{{consumer}}",
                )
            ],
            description="Events given up on after the maximum deliveries: see docs/runbooks/consumers.md.",
        ),
        timeseries(
            "Events applied / s",
            [
                target(
                    f"sum by ({by}) (rate(crm_consumer_lag_seconds_count{{{NS}}}{RATE}))",
                    "{{service}}/{{consumer}}",
                )
            ],
            "ops",
        ),
    ]
    return dashboard("crm-events", "CRM / Events", "Outbox relay, NATS publishing and consumers.", panels)


def timers_and_sla() -> dict:
    panels = [
        row("Durable timers"),
        timeseries(
            "Due and not fired (backlog)",
            [target(f"max by (service) (crm_timers_due{{{NS}}})", "{{service}}")],
        ),
        timeseries(
            "Parked (failed 10 times)",
            [target(f"max by (service) (crm_timers_parked{{{NS}}})", "{{service}}")],
        ),
        timeseries(
            "Fired / s by kind",
            [target(f"sum by (service, kind) (rate(crm_timers_fired_total{{{NS}}}{RATE}))", "{{kind}}")],
            "ops",
            stacked=True,
        ),
        timeseries(
            "Failures / s by kind",
            [target(f"sum by (service, kind) (rate(crm_timers_failed_total{{{NS}}}{RATE}))", "{{kind}}")],
            "ops",
        ),
        row("Service desk SLA"),
        timeseries(
            "SLA breaches per hour by target",
            [target(f"sum by (metric) (increase(crm_sla_breaches_total{{{NS}}}[1h]))", "{{metric}}")],
            stacked=True,
        ),
        timeseries(
            "SLA breaches per hour by priority",
            [target(f"sum by (priority) (increase(crm_sla_breaches_total{{{NS}}}[1h]))", "{{priority}}")],
            stacked=True,
        ),
        timeseries(
            "SLA warnings per hour by target",
            [target(f"sum by (metric) (increase(crm_sla_warnings_total{{{NS}}}[1h]))", "{{metric}}")],
            stacked=True,
        ),
        timeseries(
            "Warnings that became breaches (24h)",
            [
                target(
                    f"sum by (metric) (increase(crm_sla_breaches_total{{{NS}}}[24h]))"
                    f" / sum by (metric) (increase(crm_sla_warnings_total{{{NS}}}[24h]))",
                    "{{metric}}",
                )
            ],
            "percentunit",
            description="Near 1: warnings do not lead to action in time.",
        ),
    ]
    return dashboard(
        "crm-timers-sla", "CRM / Timers and SLA", "Durable timers and service desk SLA outcomes.", panels
    )


def db_pool() -> dict:
    panels = [
        timeseries(
            "Pool saturation by pod",
            [
                target(
                    f"max by (service, pod) ({series('crm_db_pool_checked_out')}"
                    f" / {series('crm_db_pool_max_connections')})",
                    "{{pod}}",
                )
            ],
            "percentunit",
            description="Connections lent out over the most the pool opens; at 1 transactions queue.",
        ),
        timeseries(
            "Checked out by service",
            [target(f"sum by (service) (crm_db_pool_checked_out{{{NS}}})", "{{service}}")],
        ),
        timeseries(
            "Open connections vs pool size by service",
            [
                target(f"sum by (service) (crm_db_pool_open{{{NS}}})", "{{service}} open"),
                target(f"sum by (service) (crm_db_pool_size{{{NS}}})", "{{service}} pool_size"),
            ],
            description="Summed over pods: what the database server sees from each service.",
        ),
        timeseries(
            "Overflow connections by pod",
            [target(f"max by (service, pod) (crm_db_pool_overflow{{{NS}}})", "{{pod}}")],
            description="Connections beyond pool_size (PostgreSQL only; SQLite has no overflow).",
        ),
    ]
    return dashboard(
        "crm-db-pool", "CRM / Database pools", "SQLAlchemy connection pools per service and pod.", panels
    )


DASHBOARDS = {
    "crm-overview.json": overview,
    "crm-rpcs.json": rpcs,
    "crm-events.json": events,
    "crm-timers-sla.json": timers_and_sla,
    "crm-db-pool.json": db_pool,
}


def render() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {
        name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()
    }


def main() -> int:
    for name, text in render().items():
        (HERE / name).write_text(text)
        print(f"wrote {HERE / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
