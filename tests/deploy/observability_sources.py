"""What the observability component says, read back for tests: alert rules, dashboard queries,
the metric names in them, the metric names a /metrics page exports, and runbook anchors."""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import promql_parser
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPONENT = REPO / "deploy" / "k8s" / "components" / "observability"
RULES_FILE = COMPONENT / "alerts" / "prometheus-rules.yaml"
DASHBOARDS = COMPONENT / "dashboards"
RUNBOOKS = REPO / "docs" / "runbooks"
RUNBOOK_URL_PREFIX = "https://github.com/open-crm/crm/blob/main/docs/runbooks/"

# Grafana's variables, replaced by something PromQL accepts before parsing.
_GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h"}
# Series Prometheus makes itself for every target; no exporter serves them.
PROMETHEUS_SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})


@dataclass(frozen=True)
class Query:
    where: str  # "alert CrmX" / "crm-overview.json: Requests / s by service"
    expr: str  # PromQL as Prometheus will receive it


def alert_rules() -> list[dict]:
    document = yaml.safe_load(RULES_FILE.read_text())
    return [rule for group in document["spec"]["groups"] for rule in group["rules"]]


def load_build_module() -> ModuleType:
    """dashboards/build.py (a script, not a package module)."""
    spec = importlib.util.spec_from_file_location("crm_dashboards_build", DASHBOARDS / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committed_dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def _grafana_to_promql(expr: str) -> str:
    for variable, value in _GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    # Any other variable ($namespace, ${datasource}) only ever stands inside a label value string.
    return re.sub(r"\$\{?\w+\}?", "x", expr)


def _panels(dashboard: dict) -> list[dict]:
    panels = []
    for panel in dashboard.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # collapsed rows keep theirs inside
    return panels


def alert_queries() -> list[Query]:
    return [Query(f"alert {rule['alert']}", rule["expr"]) for rule in alert_rules()]


def dashboard_queries() -> list[Query]:
    queries = []
    for name, dashboard in committed_dashboards().items():
        for panel in _panels(dashboard):
            for target in panel.get("targets", []):
                queries.append(Query(f"{name}: {panel['title']}", _grafana_to_promql(target["expr"])))
        for variable in dashboard["templating"]["list"]:
            if variable["type"] == "query":
                # label_values(<series selector>, <label>): the selector is PromQL.
                inner = re.fullmatch(r"label_values\((.+),\s*\w+\)", variable["definition"])
                assert inner, f"{name}: variable {variable['name']} is not label_values(...)"
                queries.append(Query(f"{name}: ${variable['name']}", _grafana_to_promql(inner.group(1))))
    return queries


def parse(query: Query) -> promql_parser.Expr:
    try:
        return promql_parser.parse(query.expr)
    except ValueError as error:
        raise AssertionError(f"{query.where}: not valid PromQL ({error}):\n{query.expr}") from None


def selectors(expr: promql_parser.Expr) -> list[promql_parser.VectorSelector]:
    found: list[promql_parser.VectorSelector] = []

    def visit(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.append(node)

    promql_parser.walk(expr, visit)
    return found


def _matchers(selector: promql_parser.VectorSelector) -> list:
    groups = selector.matchers
    return [*groups.matchers, *(m for group in groups.or_matchers for m in group)]


def metric_names(expr: promql_parser.Expr) -> set[str]:
    names = set()
    for selector in selectors(expr):
        if selector.name:
            names.add(selector.name)
        names.update(m.value for m in _matchers(selector) if m.name == "__name__")
    return names


def label_values(expr: promql_parser.Expr, label: str) -> set[str]:
    """Values an equality or regex matcher on `label` names (regex alternatives split on '|')."""
    values = set()
    for selector in selectors(expr):
        for matcher in _matchers(selector):
            if matcher.name == label:
                values.update(matcher.value.split("|"))
    return values


_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def exported_names(exposition: str) -> set[str]:
    """Every series name a Prometheus text page offers, including metrics declared without samples yet
    (a labelled counter before its first increment) and a histogram's _bucket/_sum/_count."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names.add(name)
            names.update(name + suffix for suffix in _SUFFIXES.get(kind.strip(), ()))
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


def github_anchor(heading: str) -> str:
    """The fragment GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to '-'."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def runbook_anchors(path: Path) -> set[str]:
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", path.read_text(), flags=re.MULTILINE)
    return {github_anchor(heading) for heading in headings}
