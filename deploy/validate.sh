#!/usr/bin/env bash
# Validate everything under deploy/ without Docker or a cluster:
#   Dockerfile        hadolint, plus COPY sources vs .dockerignore (deploy/checks.py)
#   Compose           dclint (Compose-spec JSON schema + lint rules), bind-mount sources
#   Prometheus        promtool check config / check rules / test rules
#   Grafana           the dashboard and provisioning files parse
#   Kubernetes        kustomize build of each overlay, kubeconform -strict against the
#                     Kubernetes schemas and KEDA's (deploy/k8s/schemas), deploy/checks.py
#
#   deploy/validate.sh                 install the tools if missing, then validate
#   deploy/validate.sh --install-only  install the tools if missing
#   deploy/validate.sh --tools-present exit 0 if the tools are installed, 1 if not
#
# Tools are pinned in .ci/deploy-tools/ and installed into
# ${TICKETSORT_TOOLS_DIR:-~/.cache/ticketsort-tools}/<hash of the pins>/ with go, pip and
# npm from their registries (needs go >= 1.24, python3 >= 3.9, node >= 20.19 with npm).
# Exit status: 0 when every check passes, 1 when one fails, other when installing fails.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pins="$repo/.ci/deploy-tools"
# shellcheck source=../.ci/deploy-tools/versions.env
source "$pins/versions.env"

pins_hash=$(cat "$pins/versions.env" "$pins/requirements.txt" "$pins/package-lock.json" \
    | sha256sum | cut -c1-12)
tools_root=${TICKETSORT_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ticketsort-tools}
tools="$tools_root/$pins_hash"
bin="$tools/bin"
schemas="$tools/k8s-schemas"

tools_present() {
    [[ -f "$tools/.complete" ]]
}

say() { printf '%s\n' "$*" >&2; }

install_tools() {
    mkdir -p "$tools_root"
    # one installer at a time (pytest and CI may start together)
    exec 9> "$tools_root/.lock"
    command -v flock > /dev/null && flock 9
    if tools_present; then
        exec 9>&-
        return 0
    fi
    local missing=()
    for tool in go python3 npm node; do
        command -v "$tool" > /dev/null || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        say "validate.sh: cannot install the validators: ${missing[*]} not found"
        exit 2
    fi
    local started=$SECONDS
    rm -rf "$tools"
    local stage="$tools.partial"
    rm -rf "$stage"
    mkdir -p "$stage/bin"

    say "validate.sh: installing validators into $tools (pins $pins_hash)"
    say "  go install kubeconform $KUBECONFORM_VERSION, kustomize $KUSTOMIZE_VERSION, promtool $PROMTOOL_VERSION"
    GOBIN="$stage/bin" GOFLAGS="${GOFLAGS:-} -modcacherw" go install \
        "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" \
        > "$stage/go-install.log" 2>&1 || { cat "$stage/go-install.log" >&2; exit 2; }
    GOBIN="$stage/bin" GOFLAGS="${GOFLAGS:-} -modcacherw" go install \
        "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" \
        >> "$stage/go-install.log" 2>&1 || { cat "$stage/go-install.log" >&2; exit 2; }
    # Without Prometheus' cloud service-discovery plugins (their SDKs make the build much
    # longer). static, file, DNS (deploy/compose/prometheus.yml) and kubernetes SD still
    # parse; add an enable_<name>_sd tag here if a checked config needs another.
    GOBIN="$stage/bin" GOFLAGS="${GOFLAGS:-} -modcacherw" go install -tags remove_all_sd,enable_dns_sd \
        "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION" \
        >> "$stage/go-install.log" 2>&1 || { cat "$stage/go-install.log" >&2; exit 2; }
    say "  go: $((SECONDS - started)) s"

    say "  pip install -r .ci/deploy-tools/requirements.txt (hadolint, Kubernetes schemas)"
    python3 -m venv "$stage/venv"
    "$stage/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --require-hashes --only-binary :all: -r "$pins/requirements.txt"
    ln -s ../venv/bin/hadolint "$stage/bin/hadolint"

    say "  npm ci dclint"
    cp "$pins/package.json" "$pins/package-lock.json" "$stage/"
    (cd "$stage" && npm ci --no-audit --no-fund --loglevel=error > /dev/null)
    ln -s ../node_modules/.bin/dclint "$stage/bin/dclint"

    # kubernetes-validate's schemas point at https://kubernetes.io/api/_definitions.json;
    # rewrite them to the file beside them so kubeconform resolves them offline.
    say "  Kubernetes JSON schemas for $K8S_VERSIONS"
    "$stage/venv/bin/python" - "$stage/k8s-schemas" $K8S_VERSIONS <<'PY'
import json, sys
from pathlib import Path
import kubernetes_validate

source = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
target = Path(sys.argv[1])
for version in sys.argv[2:]:
    folder = f"v{version}-local-strict"
    if not (source / folder).is_dir():
        sys.exit(f"kubernetes-validate has no schemas for Kubernetes {version}")
    (target / folder).mkdir(parents=True)
    for schema in (source / folder).glob("*.json"):
        text = schema.read_text(encoding="utf-8").replace('"/api/_definitions.json#', '"_definitions.json#')
        doc = json.loads(text)
        if schema.name != "_definitions.json":
            doc.pop("$id", None)  # else refs resolve against kubernetes.io, not the folder
        (target / folder / schema.name).write_text(json.dumps(doc), encoding="utf-8")
PY
    touch "$stage/.complete"
    mv "$stage" "$tools"
    exec 9>&-
    say "validate.sh: validators installed in $((SECONDS - started)) s"
}

case "${1:-}" in
    --tools-present)
        tools_present
        exit $?
        ;;
    --install-only)
        install_tools
        exit 0
        ;;
    "") ;;
    *)
        say "usage: deploy/validate.sh [--install-only | --tools-present]"
        exit 2
        ;;
esac

install_tools # exits 2 when a tool cannot be installed
export PATH="$bin:$PATH"
py="$tools/venv/bin/python"
cd "$repo"
rendered=$(mktemp -d)
trap 'rm -rf "$rendered"' EXIT

failed=()
total=0
check() { # check NAME COMMAND...: run one check, print its output only when it fails
    local name=$1
    shift
    total=$((total + 1))
    local out
    if out=$("$@" 2>&1); then
        say "ok      $name"
    else
        say "FAILED  $name"
        printf '%s\n' "$out" | sed 's/^/        /' >&2
        failed+=("$name")
    fi
}

kubeconform_rendered() {
    local version
    for version in $K8S_VERSIONS; do
        kubeconform -strict -summary -kubernetes-version "$version" \
            -schema-location "$schemas/{{ .NormalizedKubernetesVersion }}-local{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
            -schema-location "$repo/deploy/k8s/schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json" \
            "$@" || return 1
    done
}

parse_json_yaml() {
    "$py" - "$@" <<'PY'
import json, sys, yaml
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        json.load(f) if path.endswith(".json") else list(yaml.safe_load_all(f))
PY
}

check "Dockerfile: hadolint" hadolint --no-color --config deploy/docker/.hadolint.yaml deploy/docker/Dockerfile
check "Dockerfile: COPY sources vs .dockerignore" "$py" deploy/checks.py dockerfile deploy/docker/Dockerfile .
check "compose: dclint (Compose-spec schema, lint rules)" \
    dclint --config deploy/compose/.dclintrc.yaml --max-warnings 0 deploy/compose/compose.yaml
check "compose: build and bind-mount sources" "$py" deploy/checks.py compose deploy/compose/compose.yaml
check "prometheus.yml: promtool check config" promtool check config --syntax-only deploy/compose/prometheus.yml
check "rules.yml: promtool check rules" promtool check rules deploy/prometheus/rules.yml
check "rules.yml: promtool test rules" promtool test rules deploy/prometheus/rules.test.yml
check "grafana: dashboard and provisioning parse" parse_json_yaml deploy/grafana/ticketsort-dashboard.json \
    deploy/grafana/provisioning/datasources/prometheus.yaml deploy/grafana/provisioning/dashboards/ticketsort.yaml
for overlay in deploy/k8s/overlays/*/; do
    name=$(basename "$overlay")
    check "k8s $name: kustomize build" kustomize build "$overlay" -o "$rendered/$name.yaml"
    if [[ -s "$rendered/$name.yaml" ]]; then
        check "k8s $name: kubeconform -strict (Kubernetes $K8S_VERSIONS, KEDA)" kubeconform_rendered "$rendered/$name.yaml"
        check "k8s $name: KEDA trigger, selectors, probes agree" "$py" deploy/checks.py k8s "$rendered/$name.yaml"
    fi
done

if ((${#failed[@]})); then
    say "deploy/validate.sh: ${#failed[@]} of $total checks failed:"
    printf '  %s\n' "${failed[@]}" >&2
    exit 1
fi
say "deploy/validate.sh: all $total checks passed"
