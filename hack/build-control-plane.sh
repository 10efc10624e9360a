#!/usr/bin/env bash
# Build the Kubernetes control-plane binaries used by the e2e tests (tests/e2e, relmodel.testing)
# from the Go wrapper modules in hack/controlplane/, with the ordinary `go` tool and the Go module
# proxy only (no Docker, no release downloads). The binaries go to a cache directory OUTSIDE the repo:
#
#   ${RELMODEL_CONTROLPLANE_CACHE:-$HOME/.cache/relmodel/controlplane}/<versions>/bin
#
# Usage: hack/build-control-plane.sh [--force] [--print-bin-dir] [COMPONENT...]
#   COMPONENT: kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok (default: all)
#   --force          rebuild even when the stamps match (the Go build cache still applies)
#   --print-bin-dir  print the bin directory that a build would use, build nothing
#
# The last line on stdout is the directory holding the requested binaries; progress and timings go to
# stderr. Idempotent: a binary is skipped when it exists and its stamp matches the wrapper go.mod/go.sum,
# the Go version and the build flags. If KUBEBUILDER_ASSETS (the envtest convention) holds all the
# requested binaries, that directory is used as is and nothing is built.
#
# Environment:
#   RELMODEL_CONTROLPLANE_CACHE       cache root (default $HOME/.cache/relmodel/controlplane)
#   RELMODEL_CONTROLPLANE_GOMODCACHE  Go module cache (default <root>/go/mod; set to $(go env GOMODCACHE) to share)
#   RELMODEL_CONTROLPLANE_GOCACHE     Go build cache (default <root>/go/build)
#   GO                                the go binary (default: `go` on PATH, else /usr/local/go/bin/go)
set -euo pipefail

readonly ALL_COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler kubectl etcd kwok)

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mods="$here/controlplane"

log() { printf '[build-control-plane] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

force=0
print_only=0
components=()
for arg in "$@"; do
  case "$arg" in
    --force) force=1 ;;
    --print-bin-dir) print_only=1 ;;
    -h | --help) sed -n '2,22p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
    -*) die "unknown option: $arg" ;;
    *)
      [[ " ${ALL_COMPONENTS[*]} " == *" $arg "* ]] || die "unknown component: $arg (known: ${ALL_COMPONENTS[*]})"
      components+=("$arg")
      ;;
  esac
done
((${#components[@]})) || components=("${ALL_COMPONENTS[@]}")

# The envtest convention: a directory of ready binaries wins when it has everything asked for.
if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  have_all=1
  for c in "${components[@]}"; do [[ -x "$KUBEBUILDER_ASSETS/$c" ]] || have_all=0; done
  if ((have_all)); then
    log "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS"
    printf '%s\n' "$KUBEBUILDER_ASSETS"
    exit 0
  fi
  log "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS lacks some of: ${components[*]}; building them instead"
fi

# Versions come from the checked-in wrapper modules, so bumping a go.mod is the only switch.
modver() { awk -v m="$2" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$mods/$1/go.mod"; }
k8s_version="$(modver k8s k8s.io/kubernetes)"
etcd_version="$(modver etcd go.etcd.io/etcd/server/v3)"
kwok_version="$(modver kwok sigs.k8s.io/kwok)"
[[ -n "$k8s_version" && -n "$etcd_version" && -n "$kwok_version" ]] || die "cannot read versions from $mods/*/go.mod"

root="${RELMODEL_CONTROLPLANE_CACHE:-$HOME/.cache/relmodel/controlplane}"
vdir="$root/k8s-${k8s_version}_etcd-${etcd_version}_kwok-${kwok_version}"
bindir="$vdir/bin"
if ((print_only)); then
  printf '%s\n' "$bindir"
  exit 0
fi

GO="${GO:-$(command -v go || true)}"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go; fi
[[ -n "$GO" && -x "$GO" ]] || die "no 'go' tool found (set GO=/path/to/go or install Go >= 1.26)"

export GOTOOLCHAIN=local CGO_ENABLED=0
export GOMODCACHE="${RELMODEL_CONTROLPLANE_GOMODCACHE:-$root/go/mod}"
export GOCACHE="${RELMODEL_CONTROLPLANE_GOCACHE:-$root/go/build}"
# -modcacherw: the module cache can be deleted with rm -rf; -buildvcs=false: no VCS lookups.
export GOFLAGS="-modcacherw -buildvcs=false -mod=readonly"
go_version="$("$GO" env GOVERSION)"

mkdir -p "$bindir"
exec 9>"$vdir/.lock"
flock 9 # one builder per version directory (parallel pytest workers)

k8s_minor="${k8s_version#v1.}"
k8s_minor="${k8s_minor%%.*}"
# Without these the binaries report v0.0.0-master, kubectl warns about skew, and kwokctl-style
# tooling picks wrong flags. The date is fixed so that rebuilds are reproducible and cacheable.
k8s_ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$k8s_minor"
  k8s_ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done
etcd_ldflags="-s -w -X go.etcd.io/etcd/api/v3/version.GitSHA=$etcd_version"
kwok_ldflags="-s -w"

# A binary "matches" when it was built from the same wrapper module, Go version and flags.
stamp_for() {
  local mod="$1" flags="$2"
  cat "$mods/$mod/go.mod" "$mods/$mod/go.sum" | sha256sum | {
    read -r sum _
    printf '%s %s %s %s\n' "$mod" "$sum" "$go_version" "$flags"
  }
}

declare -A want_stamp
for c in "${components[@]}"; do
  case "$c" in
    etcd) want_stamp[$c]="$(stamp_for etcd "$etcd_ldflags")" ;;
    kwok) want_stamp[$c]="$(stamp_for kwok "$kwok_ldflags")" ;;
    *) want_stamp[$c]="$(stamp_for k8s "$k8s_ldflags")" ;;
  esac
done

todo_k8s=()
todo_etcd=0
todo_kwok=0
for c in "${components[@]}"; do
  if ((!force)) && [[ -x "$bindir/$c" && -f "$bindir/.$c.stamp" ]] &&
    [[ "$(cat "$bindir/.$c.stamp")" == "${want_stamp[$c]}" ]]; then
    continue
  fi
  case "$c" in
    etcd) todo_etcd=1 ;;
    kwok) todo_kwok=1 ;;
    *) todo_k8s+=("$c") ;;
  esac
done

if ((${#todo_k8s[@]} == 0 && todo_etcd == 0 && todo_kwok == 0)); then
  log "up to date: $bindir (${components[*]})"
  printf '%s\n' "$bindir"
  exit 0
fi

log "go $go_version, k8s $k8s_version, etcd $etcd_version, kwok $kwok_version"
log "GOMODCACHE=$GOMODCACHE GOCACHE=$GOCACHE"
tmpbin="$(mktemp -d "$vdir/.tmp.XXXXXX")"
trap 'rm -rf "$tmpbin"' EXIT
total_start=$SECONDS

# build MODULE LDFLAGS OUT PKG...: download, then compile all packages in ONE `go build`, so that the
# packages shared between the k8s binaries are compiled once.
build() {
  local mod="$1" ldflags="$2" out="$3"
  shift 3
  local t0=$SECONDS
  (cd "$mods/$mod" && "$GO" mod download) || die "go mod download failed in $mods/$mod"
  local t1=$SECONDS
  (cd "$mods/$mod" && "$GO" build -trimpath -ldflags "$ldflags" -o "$out" "$@") || die "go build failed in $mods/$mod"
  log "$mod: download $((t1 - t0))s, compile+link $((SECONDS - t1))s ($*)"
}

if ((${#todo_k8s[@]})); then
  pkgs=()
  for c in "${todo_k8s[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  build k8s "$k8s_ldflags" "$tmpbin/" "${pkgs[@]}"
fi
if ((todo_etcd)); then
  build etcd "$etcd_ldflags" "$tmpbin/etcd" go.etcd.io/etcd/server/v3
fi
if ((todo_kwok)); then
  build kwok "$kwok_ldflags" "$tmpbin/kwok" sigs.k8s.io/kwok/cmd/kwok
fi

for f in "$tmpbin"/*; do
  c="$(basename "$f")"
  mv -f "$f" "$bindir/$c"
  printf '%s\n' "${want_stamp[$c]}" >"$bindir/.$c.stamp"
  log "$(printf '%-24s %4d MiB' "$c" $(($(stat -c %s "$bindir/$c") / 1048576)))"
done
log "built in $((SECONDS - total_start))s: $bindir"
printf '%s\n' "$bindir"
