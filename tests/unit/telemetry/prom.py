"""Reading Prometheus text with prometheus_client's own parser, and the metric names a dashboard uses."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REPO = Path(__file__).resolve().parents[3]
DASHBOARD = REPO / "deploy" / "grafana" / "baton-dashboard.json"
BATON_NAME = re.compile(r"\bbaton_[a-z0-9_]+")


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


class Scrape:
    """One scrape, parsed: families by name and every sample."""

    def __init__(self, text: str) -> None:
        families = list(text_string_to_metric_families(text))
        self.types = {f.name: f.type for f in families}
        self.samples = [Sample(s.name, dict(s.labels), s.value) for f in families for s in f.samples]

    @property
    def names(self) -> set[str]:
        return {s.name for s in self.samples}

    def find(self, name: str, **labels: str) -> list[Sample]:
        return [
            s for s in self.samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        ]

    def total(self, name: str, **labels: str) -> float:
        """The sum of the matching samples (0 when there is none)."""
        return sum(s.value for s in self.find(name, **labels))


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def panel_exprs(doc: dict[str, Any]) -> dict[str, list[str]]:
    """Panel title → the PromQL expressions of its targets (rows' nested panels included)."""
    out: dict[str, list[str]] = {}
    for panel in doc.get("panels", []):
        for p in [panel, *panel.get("panels", [])]:
            exprs = [t["expr"] for t in p.get("targets", []) if "expr" in t]
            if exprs:
                out[p["title"]] = exprs
    return out


@dataclass
class Used:
    """What PromQL expressions refer to: series names, and the labels they match on or group by."""

    names: set[str] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)


def walk(expr: Any, used: Used) -> Used:
    """Collect the selectors and label names of a parsed expression (promql_parser's AST)."""
    if type(expr).__name__ == "VectorSelector":
        used.names.add(expr.name)
        used.labels |= {m.name for m in expr.matchers.matchers}
        return used
    modifier = getattr(expr, "modifier", None)
    if type(modifier).__name__ == "AggModifier":
        used.labels |= set(modifier.labels)
    for attr in ("lhs", "rhs", "expr", "vector_selector"):
        child = getattr(expr, attr, None)
        if child is not None:
            walk(child, used)
    for arg in getattr(expr, "args", None) or ():
        walk(arg, used)
    return used


def dashboard_exprs(doc: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: its panels' targets and its templating queries."""
    texts = [e for exprs in panel_exprs(doc).values() for e in exprs]
    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            query = var.get("query")
            texts.append(query.get("query", "") if isinstance(query, dict) else str(query or ""))
    return texts


def dashboard_metric_names(doc: dict[str, Any]) -> set[str]:
    """Every `baton_...` series name the dashboard's queries use (read as text, so a query the PromQL
    parser would reject still counts)."""
    return {m for text in dashboard_exprs(doc) for m in BATON_NAME.findall(text)}
