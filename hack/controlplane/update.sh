#!/usr/bin/env bash
# Re-pin the control-plane wrapper modules: hack/controlplane/update.sh K8S_VERSION ETCD_VERSION KWOK_VERSION
#   e.g. hack/controlplane/update.sh v1.36.4 v3.6.16 v0.8.0
# Why a script: k8s.io/kubernetes requires its ~33 staging modules at v0.0.0 and resolves them through
# ./staging replaces that only apply when it is the main module, so the wrapper must replace each of them
# with the matching published v0.x.y tag. The list is derived from the real go.mod of that tag (a missing
# entry fails with "unknown revision v0.0.0"). Each go.mod is rewritten from scratch, then `go mod tidy`
# pins everything in go.sum. Pick versions that the checksum database knows: tidy fails otherwise
# (k8s v1.36.5 was on the proxy without a sum.golang.org entry when v1.36.4 was pinned).
set -euo pipefail

(($# == 3)) || { sed -n '2,3p' "$0" >&2; exit 2; }
k8s="$1" etcd="$2" kwok="$3"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
export GOTOOLCHAIN=local GOFLAGS="-modcacherw -buildvcs=false"
staging="v0${k8s#v1}"

modfile="$(cd /tmp && "$GO" mod download -json "k8s.io/kubernetes@$k8s" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["GoMod"])')"
mapfile -t modules < <(sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*#\1#p' "$modfile" | sort -u)
((${#modules[@]})) || { echo "no staging replaces found in $modfile" >&2; exit 1; }

{
  cat <<EOF
// Wrapper module that builds the Kubernetes control-plane binaries for the e2e tests.
// \`go install k8s.io/kubernetes/cmd/...@version\` is refused because k8s.io/kubernetes has replace
// directives, so this module requires it and maps its staging modules (required at v0.0.0) to the
// published v0.x.y tags. Regenerate with hack/controlplane/update.sh.
module relmodel.invalid/controlplane/k8s

go 1.26.0

tool (
	k8s.io/kubernetes/cmd/kube-apiserver
	k8s.io/kubernetes/cmd/kube-controller-manager
	k8s.io/kubernetes/cmd/kube-scheduler
	k8s.io/kubernetes/cmd/kubectl
)

require k8s.io/kubernetes $k8s

replace (
EOF
  for m in "${modules[@]}"; do printf '\t%s => %s %s\n' "$m" "$m" "$staging"; done
  echo ")"
} >"$here/k8s/go.mod"

cat >"$here/etcd/go.mod" <<EOF
// Wrapper module that builds etcd for the e2e tests. \`go install go.etcd.io/etcd/server/v3@version\`
// is refused (etcd's server/go.mod has local replaces); a dependency's replaces are ignored, so a
// plain require is enough here.
module relmodel.invalid/controlplane/etcd

go 1.26.0

tool go.etcd.io/etcd/server/v3

require go.etcd.io/etcd/server/v3 $etcd
EOF

cat >"$here/kwok/go.mod" <<EOF
// Wrapper module that builds the kwok controller (fake nodes and pod lifecycles, no kubelet) for
// the e2e tests. A wrapper (instead of \`go install ...@version\`) pins it through go.sum like the rest.
module relmodel.invalid/controlplane/kwok

go 1.26.0

tool sigs.k8s.io/kwok/cmd/kwok

require sigs.k8s.io/kwok $kwok
EOF

for d in k8s etcd kwok; do
  echo "go mod tidy: $d" >&2
  : >"$here/$d/go.sum"
  (cd "$here/$d" && "$GO" mod tidy)
done
echo "pinned k8s $k8s (staging $staging, ${#modules[@]} modules), etcd $etcd, kwok $kwok" >&2
