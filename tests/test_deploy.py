"""deploy/: the dashboard and alerts query real metrics, and deploy/validate.sh passes.

The validators (hadolint, dclint, promtool, kustomize, kubeconform) are installed
by ``deploy/validate.sh`` itself; this test runs it when they are installed, and
in CI (``CI=true``) they must be.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from consumer.metrics import HealthServer, Metrics

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
VALIDATE = DEPLOY / "validate.sh"
DASHBOARD = DEPLOY / "grafana" / "ticketsort-dashboard.json"
RULES = DEPLOY / "prometheus" / "rules.yml"
METRIC_NAME = re.compile(r"\bticketsort_[a-z0-9_]+\b")


def load_checks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("deploy_checks", DEPLOY / "checks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def exported_names() -> set[str]:
    """Every sample name the consumer's /metrics can serve, read from a live HealthServer.

    Labeled metrics have no samples until labeled, so names come from the
    ``# TYPE`` lines, with the samples each type produces.
    """
    server = HealthServer(Metrics(), "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
    finally:
        server.stop()
    names: set[str] = set()
    for line in body.splitlines():
        if not line.startswith("# TYPE "):
            continue
        _, _, name, kind = line.split()
        if kind == "counter":
            names.add(name if name.endswith("_total") else f"{name}_total")
        elif kind == "histogram":
            names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        elif kind == "summary":
            names.update(f"{name}{suffix}" for suffix in ("", "_sum", "_count"))
        else:
            names.add(name)
    assert "ticketsort_tickets_routed_total" in names, body
    return names


def _dashboard_exprs(node: Any) -> Iterator[str]:
    """Every PromQL expression in the dashboard: panel targets, nested rows, variables."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("expr", "query") and isinstance(value, str):
                yield value
            else:
                yield from _dashboard_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _dashboard_exprs(item)


def _rule_exprs() -> list[str]:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_dashboard_queries_only_exported_metrics(exported_names: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = list(_dashboard_exprs(dashboard["panels"]))
    assert len(exprs) >= 8, "the dashboard lost its queries"
    used = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    unknown = sorted(used - exported_names)
    assert not unknown, f"dashboard queries metrics the consumer does not export: {unknown}"
    # the panels the operations page describes
    for name in (
        "ticketsort_records_consumed_total",
        "ticketsort_tickets_routed_total",
        "ticketsort_dead_letters_total",
        "ticketsort_inference_seconds_bucket",
        "ticketsort_end_to_end_latency_seconds_bucket",
        "ticketsort_consumer_lag",
        "ticketsort_model_info",
    ):
        assert name in used, f"no dashboard panel shows {name}"


def test_alert_rules_query_only_exported_metrics(exported_names: set[str]) -> None:
    used = {name for expr in _rule_exprs() for name in METRIC_NAME.findall(expr)}
    assert used, "the alert rules reference no ticketsort metric"
    unknown = sorted(used - exported_names)
    assert not unknown, f"alert rules query metrics the consumer does not export: {unknown}"


def test_dockerfile_and_compose_reference_existing_files() -> None:
    checks = load_checks()
    assert checks.check_dockerfile(DEPLOY / "docker" / "Dockerfile", REPO) == []
    assert checks.check_compose(DEPLOY / "compose" / "compose.yaml") == []


def test_dockerignore_check_follows_negation() -> None:
    checks = load_checks()
    patterns = [(False, "deploy"), (True, "deploy/docker/no-baked-model"), (False, "**/*.pyc")]
    assert checks._ignored("deploy/k8s", patterns)
    assert not checks._ignored("deploy/docker/no-baked-model", patterns)
    assert checks._ignored("consumer/__pycache__/x.pyc", patterns)
    assert not checks._ignored("consumer", patterns)


def _rendered(max_replicas: int, trigger_group: str) -> list[dict[str, Any]]:
    labels = {"app.kubernetes.io/name": "ticketsort", "app.kubernetes.io/component": "consumer"}
    return [
        {
            "kind": "ConfigMap",
            "metadata": {"name": "ticketsort-config-abc"},
            "data": {
                "TICKETSORT_KAFKA__BOOTSTRAP_SERVERS": "k:9093",
                "TICKETSORT_KAFKA__GROUP_ID": "ticketsort-classifier",
                "TICKETSORT_TOPICS__RAW": "tickets.raw",
                "TICKETSORT_TOPICS__PARTITIONS": "6",
                "TICKETSORT_CONSUMER__METRICS_HOST": "0.0.0.0",
            },
        },
        {
            "kind": "Deployment",
            "metadata": {"name": "ticketsort-consumer"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "terminationGracePeriodSeconds": 60,
                        "containers": [
                            {
                                "name": "consumer",
                                "envFrom": [{"configMapRef": {"name": "ticketsort-config-abc"}}],
                                "ports": [{"name": "metrics", "containerPort": 9108}],
                                "readinessProbe": {"httpGet": {"path": "/readyz"}},
                                "livenessProbe": {"httpGet": {"path": "/healthz"}},
                            }
                        ],
                    },
                },
            },
        },
        {
            "kind": "ScaledObject",
            "metadata": {"name": "ticketsort-consumer"},
            "spec": {
                "scaleTargetRef": {"name": "ticketsort-consumer"},
                "maxReplicaCount": max_replicas,
                "triggers": [
                    {
                        "type": "kafka",
                        "metadata": {
                            "bootstrapServers": "k:9093",
                            "consumerGroup": trigger_group,
                            "topic": "tickets.raw",
                        },
                    }
                ],
            },
        },
    ]


def test_rendered_k8s_checks_catch_drift() -> None:
    checks = load_checks()
    assert checks.check_k8s(_rendered(6, "ticketsort-classifier")) == []
    problems = checks.check_k8s(_rendered(8, "another-group"))
    assert any("exceeds the raw topic's 6 partitions" in p for p in problems), problems
    assert any("consumerGroup='another-group'" in p for p in problems), problems


def test_deploy_validate_sh() -> None:
    """deploy/validate.sh: hadolint, dclint, promtool, kustomize + kubeconform, checks.py."""
    in_ci = os.environ.get("CI", "").lower() == "true"
    present = subprocess.run(["bash", str(VALIDATE), "--tools-present"], check=False)
    if present.returncode != 0:
        message = (
            "the deploy validators are not installed; `deploy/validate.sh --install-only`"
            " installs them (about 4 minutes cold, mostly building promtool)"
        )
        if in_ci:
            pytest.fail(f"{message}. CI must install them before the tests.")
        pytest.skip(message)
    result = subprocess.run(
        ["bash", str(VALIDATE)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"deploy/validate.sh failed:\n{result.stdout}{result.stderr}"
