#!/usr/bin/env bash
# Build helm (v3, the CLI the chart in helm/relmodel is linted and rendered with) from the Go module proxy
# with the ordinary `go` tool: no Docker, no release downloads. The binary goes to a cache OUTSIDE the repo:
#
#   ${RELMODEL_HELM_CACHE:-$HOME/.cache/relmodel/helm}/<version>/helm
#
# Usage: hack/build-helm.sh [--force] [--print-path]
#   --force       rebuild even when the stamp matches (the Go build cache still applies)
#   --print-path  print the path a build would produce, build nothing
#
# The last line on stdout is the helm binary's path; progress and timings go to stderr. Idempotent: nothing
# is built when the binary exists and its stamp (version, Go version, flags) matches.
#
# helm v3.21.4: go.mod says `go 1.26.0`, requires k8s.io/* v0.36.2 (the 1.36 libraries, the minor of the
# e2e control plane) and has no replace/exclude directives, so `go install helm.sh/helm/v3/cmd/helm@v3.21.4`
# works as is. `.Capabilities.KubeVersion` is stamped to 1.36 (helm otherwise defaults to v1.20.0).
#
# Environment:
#   RELMODEL_HELM_VERSION   helm version (default v3.21.4)
#   RELMODEL_HELM_CACHE     cache root (default $HOME/.cache/relmodel/helm)
#   RELMODEL_HELM_GOMODCACHE / RELMODEL_HELM_GOCACHE   Go module / build caches (default <root>/go/{mod,build})
#   GO                      the go binary (default: `go` on PATH, else /usr/local/go/bin/go)
set -euo pipefail

readonly HELM_VERSION="${RELMODEL_HELM_VERSION:-v3.21.4}"
readonly KUBE_MAJOR=1 KUBE_MINOR=36

log() { printf '[build-helm] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

force=0
print_only=0
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --print-path) print_only=1 ;;
    -h | --help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    *) die "unknown argument: $arg" ;;
  esac
done
[[ "$HELM_VERSION" =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "RELMODEL_HELM_VERSION must be a helm v3 release like v3.21.4, got '$HELM_VERSION'"

root="${RELMODEL_HELM_CACHE:-$HOME/.cache/relmodel/helm}"
vdir="$root/$HELM_VERSION"
out="$vdir/helm"
if ((print_only)); then
  printf '%s\n' "$out"
  exit 0
fi

GO="${GO:-$(command -v go || true)}"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; fi
[[ -n "$GO" && -x "$GO" ]] || die "no 'go' tool found (set GO=/path/to/go or install Go >= 1.26)"

export GOTOOLCHAIN=local CGO_ENABLED=0
export GOMODCACHE="${RELMODEL_HELM_GOMODCACHE:-$root/go/mod}"
export GOCACHE="${RELMODEL_HELM_GOCACHE:-$root/go/build}"
export GOFLAGS="-modcacherw -buildvcs=false"
unset GOBIN GOOS GOARCH 2>/dev/null || true
go_version="$("$GO" env GOVERSION)"

# The same -X list as helm's own Makefile: version string and the default .Capabilities.KubeVersion.
ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
  ldflags+=" -X $p.k8sVersionMajor=$KUBE_MAJOR -X $p.k8sVersionMinor=$KUBE_MINOR"
done
stamp="helm $HELM_VERSION $go_version CGO_ENABLED=0 -trimpath $ldflags"

mkdir -p "$vdir"
exec 9>"$vdir/.lock"
flock 9 # one builder per version (parallel pytest workers)

if ((!force)) && [[ -x "$out" && -f "$vdir/.stamp" && "$(cat "$vdir/.stamp")" == "$stamp" ]]; then
  log "up to date: $out"
  printf '%s\n' "$out"
  exit 0
fi

log "go $go_version, helm $HELM_VERSION (GOMODCACHE=$GOMODCACHE GOCACHE=$GOCACHE)"
tmp="$(mktemp -d "$vdir/.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
t0=$SECONDS
# `go install pkg@version` builds outside any module, from the module's own go.mod and go.sum (checked
# against the checksum database), with GOBIN pointing into the temp dir: the cache never holds a half binary.
GOBIN="$tmp" "$GO" install -trimpath -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" ||
  die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed"
"$tmp/helm" version --short >/dev/null || die "the built helm does not run"
mv -f "$tmp/helm" "$out"
printf '%s\n' "$stamp" >"$vdir/.stamp"
log "built $("$out" version --short) in $((SECONDS - t0))s: $out ($(($(stat -c %s "$out") / 1048576)) MiB)"
printf '%s\n' "$out"
