#!/usr/bin/env bash
# The same e2e suite on kind: a cluster with two workers labelled as accelerator nodes, the image
# built and loaded, the chart installed and smoke-tested with its own pods (helm test, a handoff),
# then `npm test` against that cluster. Where no Docker engine answers it says so and exits 0.
# For users with Docker. Untested on this project's machines, which have no Docker engine: there
# the chart's pods run on real-0, a real kubelet beside the local control plane
# (`npm run cluster:node`, `npm run test:node`; README, "A real node").
#
#   e2e/kind.sh                       # create, test, delete the cluster
#   KEEP_CLUSTER=1 e2e/kind.sh        # leave it running (kind delete cluster --name accel-lease)
#   KIND_NODE_IMAGE=kindest/node:v1.33.1 e2e/kind.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! docker info >/dev/null 2>&1; then
  echo "e2e/kind.sh: skipped, no Docker engine answers (docker info failed); the local control plane runs the suite: npm test"
  exit 0
fi

CLUSTER=${KIND_CLUSTER_NAME:-accel-lease}
NAMESPACE=accel-lease-system
RELEASE=accel-lease
KIND_VERSION=v0.29.0
IMAGE_REPO=ghcr.io/accel-lease/accel-lease
IMAGE_TAG=kind-$(git rev-parse --short HEAD 2>/dev/null || echo dev)
STATE=$PWD/.cluster/kind
KUBECONFIG_FILE=$STATE/kubeconfig
NODE=${NODE:-$PWD/node_modules/node/bin/node}
mkdir -p "$STATE"

step() { printf '\n[kind] %s\n' "$*"; }

# kind, kubectl and helm: from PATH, else kind from its pinned module, kubectl and helm from the
# local control plane's cache (built from the pinned modules if missing).
if command -v kind >/dev/null 2>&1; then
  kind() { command kind "$@"; }
elif command -v go >/dev/null 2>&1 || [ -x /usr/local/go/bin/go ]; then
  GO=$(command -v go || echo /usr/local/go/bin/go)
  kind() { GOWORK=off "$GO" run "sigs.k8s.io/kind@$KIND_VERSION" "$@"; }
else
  echo "e2e/kind.sh: kind is not on PATH and there is no Go to run sigs.k8s.io/kind@$KIND_VERSION" >&2
  exit 1
fi
tool() {
  if command -v "$1" >/dev/null 2>&1; then
    command -v "$1"
  else
    "$NODE" --input-type=module -e \
      "const m = await import('./e2e/cluster/index.ts'); console.log((await m.ensureBinaries())['$1']);"
  fi
}
KUBECTL=$(tool kubectl)
HELM=$(tool helm)
export KUBECONFIG=$KUBECONFIG_FILE
k() { "$KUBECTL" "$@"; }

cleanup() {
  if [ "${KEEP_CLUSTER:-0}" = 1 ]; then
    echo "[kind] cluster $CLUSTER kept: export KUBECONFIG=$KUBECONFIG_FILE"
  else
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

step "creating cluster $CLUSTER: one control plane, two accelerator workers"
cat >"$STATE/cluster.yaml" <<EOF
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
  - role: worker
    labels: { accel.dmabuf.io/accelerator: "true" }
  - role: worker
    labels: { accel.dmabuf.io/accelerator: "true" }
EOF
kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true
kind create cluster --name "$CLUSTER" --config "$STATE/cluster.yaml" --kubeconfig "$KUBECONFIG_FILE" \
  ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s

step "building $IMAGE_REPO:$IMAGE_TAG and loading it into the nodes"
docker build -t "$IMAGE_REPO:$IMAGE_TAG" .
kind load docker-image "$IMAGE_REPO:$IMAGE_TAG" --name "$CLUSTER"

step "installing the chart (namespace $NAMESPACE: privileged, for the agent's hostPath)"
k create namespace "$NAMESPACE"
k label namespace "$NAMESPACE" pod-security.kubernetes.io/enforce=privileged
"$HELM" install "$RELEASE" charts/accel-lease --namespace "$NAMESPACE" \
  --set image.tag="$IMAGE_TAG" --set image.pullPolicy=Never --wait --timeout 5m
k -n "$NAMESPACE" rollout status deployment/$RELEASE-controller --timeout 2m
k -n "$NAMESPACE" rollout status daemonset/$RELEASE-agent --timeout 2m
"$HELM" test "$RELEASE" --namespace "$NAMESPACE" --logs --timeout 2m

step "smoke test with the chart's own pods: one device per worker, a handoff between two tenants"
workers=$(k get nodes -l accel.dmabuf.io/accelerator=true -o jsonpath='{.items[*].metadata.name}')
for w in $workers; do
  k wait --for=create "accelerator/$w-hl0" --timeout 60s
  k wait --for=jsonpath='{.status.phase}'=Free "accelerator/$w-hl0" --timeout 60s
done
device=$(echo "$workers" | cut -d' ' -f1)-hl0
for t in a b; do
  k create namespace "kind-team-$t"
  k apply -f - <<EOF
apiVersion: accel.dmabuf.io/v1alpha1
kind: AcceleratorLease
metadata: { name: train, namespace: kind-team-$t }
spec:
  accelerator: $device
  holder: { podSelector: { matchLabels: { app: train } } }
EOF
  if [ "$t" = a ]; then
    k -n kind-team-a wait --for=jsonpath='{.status.phase}'=Granted acceleratorlease/train --timeout 60s
  fi
done
k -n kind-team-b wait --for=jsonpath='{.status.queuePosition}'=1 acceleratorlease/train --timeout 60s
k -n kind-team-a delete acceleratorlease train --timeout 60s
k -n kind-team-b wait --for=jsonpath='{.status.phase}'=Granted acceleratorlease/train --timeout 60s
k -n kind-team-b wait --for=jsonpath='{.status.epoch}'=2 acceleratorlease/train --timeout 10s
k -n kind-team-b delete acceleratorlease train --timeout 60s
k delete namespace kind-team-a kind-team-b --wait=false

# The suite runs its own controller and agents as host processes and installs the chart itself;
# this release's pods and admission policy would compete with them.
step "uninstalling the release before the suite"
"$HELM" uninstall "$RELEASE" --namespace "$NAMESPACE" --wait --timeout 2m
k delete accelerators --all --wait=false

step "npm test against kind (KUBECONFIG=$KUBECONFIG_FILE)"
npm test
