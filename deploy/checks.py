"""Consistency checks the schema validators cannot make (run by deploy/validate.sh).

    python deploy/checks.py k8s RENDERED.yaml...   # kustomize output of an overlay
    python deploy/checks.py compose COMPOSE.yaml
    python deploy/checks.py dockerfile DOCKERFILE CONTEXT

Each prints one line per problem and exits 1 if there is any. Needs PyYAML only.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml


def _by_kind(docs: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


def _one(kinds: dict[str, list[dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in kinds.get(kind, []) if d["metadata"]["name"] == name]
    if len(found) != 1:
        raise SystemExit(f"expected one {kind} {name}, found {len(found)}")
    return found[0]


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def check_k8s(docs: list[dict[str, Any]]) -> list[str]:
    """The KEDA trigger, the pods' settings, selectors and probes agree."""
    problems: list[str] = []
    kinds = _by_kind(docs)
    deployment = _one(kinds, "Deployment", "ticketsort-consumer")
    pod = deployment["spec"]["template"]
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "consumer")
    config_names = [e["configMapRef"]["name"] for e in container.get("envFrom", [])]
    configs = [d for d in kinds.get("ConfigMap", []) if d["metadata"]["name"] in config_names]
    if len(configs) != 1:
        return [f"the consumer should read one ConfigMap, reads {config_names}"]
    env: dict[str, str] = configs[0]["data"]

    if "replicas" in deployment["spec"]:
        problems.append("Deployment sets spec.replicas: KEDA's HPA owns the replica count")

    scaled = _one(kinds, "ScaledObject", "ticketsort-consumer")
    spec = scaled["spec"]
    if spec["scaleTargetRef"]["name"] != deployment["metadata"]["name"]:
        problems.append("ScaledObject does not target the consumer Deployment")
    partitions = int(env.get("TICKETSORT_TOPICS__PARTITIONS", "3"))
    if spec.get("maxReplicaCount", 100) > partitions:
        problems.append(
            f"ScaledObject maxReplicaCount {spec.get('maxReplicaCount')} exceeds the raw topic's"
            f" {partitions} partitions: the extra replicas would sit idle"
        )
    kafka = [t for t in spec["triggers"] if t["type"] == "kafka"]
    if len(kafka) != 1:
        problems.append(f"expected one kafka trigger, found {len(kafka)}")
    else:
        meta = kafka[0]["metadata"]
        expected = {
            "bootstrapServers": env.get("TICKETSORT_KAFKA__BOOTSTRAP_SERVERS"),
            "consumerGroup": env.get("TICKETSORT_KAFKA__GROUP_ID", "ticketsort-classifier"),
            "topic": env.get("TICKETSORT_TOPICS__RAW", "tickets.raw"),
        }
        for key, value in expected.items():
            if meta.get(key) != value:
                problems.append(
                    f"KEDA trigger {key}={meta.get(key)!r} but the pods use {value!r}"
                    " (include components/keda-trigger-from-config in the overlay)"
                )
        auth = kafka[0].get("authenticationRef", {}).get("name")
        if auth and not any(
            d["metadata"]["name"] == auth for d in kinds.get("TriggerAuthentication", [])
        ):
            problems.append(
                f"KEDA trigger uses TriggerAuthentication {auth}, which is not rendered"
            )

    pod_labels = pod["metadata"]["labels"]
    if not _selects(deployment["spec"]["selector"]["matchLabels"], pod_labels):
        problems.append("Deployment selector does not match its pod labels")
    for kind in ("Service", "PodDisruptionBudget"):
        for doc in kinds.get(kind, []):
            selector = doc["spec"]["selector"]
            selector = (
                selector.get("matchLabels", selector) if kind == "PodDisruptionBudget" else selector
            )
            if not _selects(selector, pod_labels):
                problems.append(
                    f"{kind} {doc['metadata']['name']} does not select the consumer pods"
                )

    port = int(env.get("TICKETSORT_CONSUMER__METRICS_PORT", "9108"))
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    if ports.get("metrics") != port:
        problems.append(
            f"container port 'metrics' is {ports.get('metrics')}, the settings say {port}"
        )
    if env.get("TICKETSORT_CONSUMER__METRICS_HOST") != "0.0.0.0":
        problems.append("TICKETSORT_CONSUMER__METRICS_HOST must be 0.0.0.0 for probes and scraping")
    for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
        got = container.get(probe, {}).get("httpGet", {}).get("path")
        if got != path:
            problems.append(f"{probe} path is {got!r}, expected {path}")
    if pod["spec"].get("terminationGracePeriodSeconds", 30) < 30:
        problems.append("terminationGracePeriodSeconds under 30 s: a batch may not finish")

    if env.get("TICKETSORT_MODEL__DEVICE") == "cuda":
        jobs = [
            d["spec"]["jobTemplate"]["spec"]["template"]["spec"] for d in kinds.get("CronJob", [])
        ]
        for c in [container, *(c for job in jobs for c in job["containers"])]:
            if "nvidia.com/gpu" not in c.get("resources", {}).get("limits", {}):
                problems.append(
                    f"device cuda but container {c['name']} has no nvidia.com/gpu limit"
                )
    return problems


def check_compose(path: Path) -> list[str]:
    """Build contexts, Dockerfiles and bind-mount sources exist (compose creates empty dirs)."""
    problems: list[str] = []
    base = path.parent
    compose = yaml.safe_load(path.read_text(encoding="utf-8"))
    for name, service in compose["services"].items():
        build = service.get("build")
        if isinstance(build, dict):
            context = base / build.get("context", ".")
            if not context.is_dir():
                problems.append(f"{name}: build context {context} is missing")
            elif not (context / build.get("dockerfile", "Dockerfile")).is_file():
                problems.append(f"{name}: dockerfile {build.get('dockerfile')} is missing")
        for volume in service.get("volumes", []):
            source = (
                volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            )
            local = source.startswith((".", "/")) and "${" not in source
            if local and not (base / source).exists():
                problems.append(f"{name}: bind mount source {source} does not exist")
    return problems


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: ``**`` any path, ``*`` and ``?`` within a name."""
    out = ""
    for token in re.split(r"(\*\*|\*|\?)", pattern):
        out += {"**": ".*", "*": "[^/]*", "?": "[^/]"}.get(token, re.escape(token))
    return re.compile(out + r"\Z")


def _ignored(path: str, patterns: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for negated, pattern in patterns:
        if any(_glob_regex(pattern).match(c) for c in candidates):
            ignored = not negated
    return ignored


def check_dockerfile(dockerfile: Path, context: Path) -> list[str]:
    """Every local COPY source exists in the context and is not excluded by .dockerignore."""
    problems: list[str] = []
    patterns: list[tuple[bool, str]] = []
    ignore_file = context / ".dockerignore"
    if ignore_file.is_file():
        for line in ignore_file.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                negated = line.startswith("!")
                patterns.append((negated, line.lstrip("!").strip("/")))
    defaults = dict(re.findall(r"^ARG (\w+)=(\S+)", dockerfile.read_text(encoding="utf-8"), re.M))
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if not words or words[0] != "COPY" or any(w.startswith("--from=") for w in words):
            continue
        sources = [w for w in words[1:-1] if not w.startswith("--")]
        for source in sources:
            source = re.sub(r"\$\{(\w+)\}", lambda m: defaults.get(m.group(1), m.group(0)), source)
            source = source.rstrip("/")
            if not (context / source).exists():
                problems.append(f"COPY source {source} does not exist in the build context")
            elif _ignored(source, patterns):
                problems.append(f"COPY source {source} is excluded by .dockerignore")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    command, args = argv[1], argv[2:]
    problems: list[str] = []
    if command == "k8s":
        for arg in args:
            docs = [d for d in yaml.safe_load_all(Path(arg).read_text(encoding="utf-8")) if d]
            problems += [f"{arg}: {p}" for p in check_k8s(docs)]
    elif command == "compose":
        problems = [f"{args[0]}: {p}" for p in check_compose(Path(args[0]))]
    elif command == "dockerfile":
        problems = [f"{args[0]}: {p}" for p in check_dockerfile(Path(args[0]), Path(args[1]))]
    else:
        print(f"unknown check {command!r}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
