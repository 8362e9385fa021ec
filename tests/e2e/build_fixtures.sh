#!/usr/bin/env bash
# Builds (or finds cached) the real control plane the e2e suite runs against, from Debian packages only:
#   - kube-apiserver v1.20.2 from bookworm's `kubernetes` source package (the full upstream tree with vendor/),
#   - etcd from bookworm's `etcd-server`,
#   - kubectl 1.20 from bookworm's `kubernetes-client`, unpacked (not installed: /usr/bin/kubectl may belong to
#     another package on this machine),
#   - optionally, the v1 API server: our Go glue in tests/e2e/v1server/ on sid's k8s.io library packages (see build_v1).
# Each binary is cached under $EP_E2E_CACHE (default /var/cache/extractedprism-e2e) in a directory named after its
# inputs (package versions, and a hash of our Go files), so only the first run on a machine pays the build.
# Writes the manifest $cache_root/fixtures.env (`KEY=PATH` lines: KUBE_APISERVER, ETCD, KUBECTL, and V1_APISERVER when
# it could be built) and prints it on stdout; everything else goes to stderr.
# Needs root (apt). Exit 0: the required binaries are present; anything else: the suite cannot run, the reason is on
# stderr. EP_E2E_NO_V1=1 leaves the v1 API server out; EP_E2E_REQUIRE_V1=1 makes a failure to build it fatal.
set -euo pipefail

cache_root="${EP_E2E_CACHE:-/var/cache/extractedprism-e2e}"
src_list=/etc/apt/sources.list.d/extractedprism-e2e-src.sources
log() { printf 'e2e fixtures: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get)"
export DEBIAN_FRONTEND=noninteractive

apt_updated=0
apt_update() {
  if [ "$apt_updated" = 0 ]; then
    log "apt-get update"
    apt-get update -qq >&2
    apt_updated=1
  fi
}

# deb-src for bookworm in a file of its own, only when missing: the security suite carries the patched kubernetes.
if [ ! -e "$src_list" ]; then
  log "adding $src_list"
  cat >"$src_list" <<'SRC'
# Added by extractedprism tests/e2e/build_fixtures.sh: source packages for the e2e fixtures (kube-apiserver 1.20).
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_update
fi

need_pkgs=()
for p in golang-go rsync make etcd-server dpkg-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need_pkgs+=("$p")
done
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  apt_update
  log "installing ${need_pkgs[*]}"
  apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >&2
fi
# etcd-server's unit would start a system etcd on 127.0.0.1:2379; the suite runs its own in a namespace.
if command -v systemctl >/dev/null && systemctl is-active -q etcd 2>/dev/null; then systemctl stop etcd || true; fi

src_version() {
  apt-cache showsrc kubernetes 2>/dev/null | awk '/^Version:/ {print $2}' | sort -V | tail -n1
}
kver="$(src_version)"
if [ -z "$kver" ]; then
  apt_update
  kver="$(src_version)"
fi
[ -n "$kver" ] || die "no source package 'kubernetes' known to apt (deb-src for bookworm missing?)"
gover="$(dpkg-query -W -f='${Version}' golang-go)"
# The key names every input of the build; a change of either makes a new directory and a new build.
key="kube-apiserver_${kver}_go${gover}"
key="${key//[^A-Za-z0-9._+-]/_}"
api_dir="$cache_root/$key"

if [ ! -x "$api_dir/kube-apiserver" ]; then
  work="$(mktemp -d "${TMPDIR:-/tmp}/ep-e2e-build.XXXXXX")"
  trap 'rm -rf "$work"' EXIT
  log "building kube-apiserver from kubernetes $kver with golang-go $gover in $work (minutes)"
  start=$(date +%s)
  (cd "$work" && apt-get source -qq --only-source "kubernetes=$kver" >&2)
  tree="$(find "$work" -mindepth 1 -maxdepth 1 -type d | head -n1)"
  [ -n "$tree" ] || die "apt-get source left no tree in $work"
  # No .git in a source package: version.sh takes the version from these instead of asking git.
  (cd "$tree" && nice -n 10 env CGO_ENABLED=0 GOFLAGS=-mod=vendor GO111MODULE=on GOTOOLCHAIN=local \
    KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean KUBE_GIT_MAJOR=1 KUBE_GIT_MINOR=20 \
    make WHAT=cmd/kube-apiserver >&2)
  bin="$(find "$tree/_output" -type f -name kube-apiserver -perm -u+x | head -n1)"
  [ -n "$bin" ] || die "make finished but left no kube-apiserver under $tree/_output"
  mkdir -p "$api_dir"
  install -m 0755 "$bin" "$api_dir/kube-apiserver.tmp"
  mv "$api_dir/kube-apiserver.tmp" "$api_dir/kube-apiserver"
  log "kube-apiserver built in $(($(date +%s) - start)) s, cached in $api_dir"
else
  log "kube-apiserver cached in $api_dir"
fi

# kubectl 1.20 from bookworm's kubernetes-client, unpacked into the cache (nothing installed system-wide).
cver="$(apt-cache policy kubernetes-client 2>/dev/null | awk '/Candidate:/ {print $2}')"
if [ -z "$cver" ] || [ "$cver" = "(none)" ]; then
  apt_update
  cver="$(apt-cache policy kubernetes-client 2>/dev/null | awk '/Candidate:/ {print $2}')"
fi
[ -n "$cver" ] && [ "$cver" != "(none)" ] || die "no package 'kubernetes-client' known to apt"
ckey="kubectl_${cver}"
ckey="${ckey//[^A-Za-z0-9._+-]/_}"
kubectl_dir="$cache_root/$ckey"
if [ ! -x "$kubectl_dir/kubectl" ]; then
  dl="$(mktemp -d "${TMPDIR:-/tmp}/ep-e2e-kubectl.XXXXXX")"
  (cd "$dl" && apt-get download -qq "kubernetes-client=$cver" >&2)
  dpkg-deb -x "$dl"/kubernetes-client_*.deb "$dl/root"
  mkdir -p "$kubectl_dir"
  install -m 0755 "$dl/root/usr/bin/kubectl" "$kubectl_dir/kubectl"
  rm -rf "$dl"
  log "kubectl $cver unpacked into $kubectl_dir"
fi

etcd_bin="$(command -v etcd || true)"
[ -x "$etcd_bin" ] || die "etcd-server is installed but no etcd on PATH"

# The v1 API server (discovery.k8s.io/v1, coordination.k8s.io/v1), from sid's k8s.io library packages: our Go glue
# in tests/e2e/v1server/, built in GOPATH mode from the unpacked .debs with sid's Go. apt works on a private state
# directory under the cache (its own sources list and package lists), so nothing of sid reaches the system's apt.
# Optional: when any step fails the manifest names no V1_APISERVER and the suite skips the scenarios that need it.
build_v1() {
  local here sid apt_opts pkgs key dir work root goroot gopath start
  here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
  sid="$cache_root/sid-apt"
  mkdir -p "$sid/lists/partial" "$sid/cache/archives/partial"
  cat >"$sid/sid.sources" <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  apt_opts=(-o "Dir::Etc::SourceList=$sid/sid.sources" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$sid/lists" -o "Dir::Cache=$sid/cache" -o Dir::State::status=/dev/null
    -o APT::Architecture=amd64)
  if [ -z "$(find "$sid/lists" -name '*_Packages*' -mmin -1440 2>/dev/null | head -n1)" ]; then
    log "apt-get update (sid, private lists in $sid)"
    apt-get "${apt_opts[@]}" update -qq >&2 || return 1
  fi
  # Every package the libraries need, with its version: the key changes when any of them does.
  pkgs="$(apt-cache "${apt_opts[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances golang-k8s-apiserver-dev golang-k8s-component-base-dev golang-github-spf13-pflag-dev \
    2>/dev/null | grep -E '^golang-' | grep -vE '^golang-(go|any|src|doc)$' | sort -u)"
  # shellcheck disable=SC2086
  pkgs="$(apt-cache "${apt_opts[@]}" policy $pkgs kube-openapi |
    awk '/^[^ ].*:$/ {name = substr($1, 1, length($1) - 1)} /Candidate:/ {print name "=" $2}')"
  [ -n "$pkgs" ] || return 1
  key="v1-apiserver_$( { printf '%s\n' "$pkgs"; cat "$here"/v1server/*.go; } | sha256sum | cut -c1-16)"
  dir="$cache_root/$key"
  if [ -x "$dir/e2e-v1-apiserver" ]; then
    log "v1 API server cached in $dir"
    echo "$dir/e2e-v1-apiserver"
    return 0
  fi
  start=$(date +%s)
  # Fixed paths (not a fresh temp dir): Go's build cache keys on them, so a rebuild after a change of the glue or of
  # one package recompiles only what changed.
  work="$cache_root/sid-work"
  root="$work/root"
  rm -rf "$work"
  mkdir -p "$work/debs" "$root"
  log "downloading $(wc -l <<<"$pkgs") sid packages for the v1 API server"
  # shellcheck disable=SC2086
  (cd "$work/debs" && apt-get "${apt_opts[@]}" download -qq $pkgs >&2) || { rm -rf "$work"; return 1; }
  for d in "$work"/debs/*.deb; do dpkg-deb -x "$d" "$root"; done
  goroot="$(find "$root/usr/lib" -maxdepth 1 -name 'go-1.*' | sort -V | tail -n1)"
  [ -x "$goroot/bin/go" ] || { log "no Go toolchain among the sid packages"; rm -rf "$work"; return 1; }
  gopath="$work/gopath"
  mkdir -p "$gopath/src/e2ev1server/openapi"
  cp "$here"/v1server/*.go "$gopath/src/e2ev1server/"
  : >"$work/header.txt"
  local goenv=(env "GOROOT=$goroot" "PATH=$goroot/bin:$PATH" "GOPATH=$gopath:$root/usr/share/gocode" GO111MODULE=off
    GOFLAGS= GOTOOLCHAIN=local CGO_ENABLED=0 "GOCACHE=$cache_root/sid-gocache")
  # Server-side apply needs the OpenAPI models of the served types.
  nice -n 10 "${goenv[@]}" "$root/usr/bin/openapi-gen" --output-dir "$gopath/src/e2ev1server/openapi" \
    --output-pkg e2ev1server/openapi --output-file zz_generated.openapi.go --report-filename /dev/null \
    --go-header-file "$work/header.txt" k8s.io/apimachinery/pkg/apis/meta/v1 k8s.io/apimachinery/pkg/runtime \
    k8s.io/apimachinery/pkg/version k8s.io/apimachinery/pkg/api/resource k8s.io/apimachinery/pkg/util/intstr \
    k8s.io/api/core/v1 k8s.io/api/discovery/v1 k8s.io/api/coordination/v1 >&2 || { rm -rf "$work"; return 1; }
  nice -n 10 "${goenv[@]}" "$goroot/bin/go" build -trimpath -o "$work/e2e-v1-apiserver" e2ev1server >&2 ||
    { rm -rf "$work"; return 1; }
  mkdir -p "$dir"
  install -m 0755 "$work/e2e-v1-apiserver" "$dir/e2e-v1-apiserver"
  rm -rf "$work"
  log "v1 API server built in $(($(date +%s) - start)) s, cached in $dir"
  echo "$dir/e2e-v1-apiserver"
}
v1_bin=""
if [ "${EP_E2E_NO_V1:-}" = "" ]; then
  if ! v1_bin="$(build_v1)"; then
    # CI sets EP_E2E_REQUIRE_V1=1: there, scenarios that silently skip would prove nothing.
    [ "${EP_E2E_REQUIRE_V1:-}" = "" ] || die "the v1 API server could not be built (see above)"
    log "the v1 API server could not be built (see above); its scenarios will be skipped"
    v1_bin=""
  fi
fi

manifest="$cache_root/fixtures.env"
{
  echo "KUBE_APISERVER=$api_dir/kube-apiserver"
  echo "KUBECTL=$kubectl_dir/kubectl"
  echo "ETCD=$etcd_bin"
  if [ -n "$v1_bin" ]; then echo "V1_APISERVER=$v1_bin"; fi
} >"$manifest.tmp"
mv "$manifest.tmp" "$manifest"
log "manifest: $manifest (EXTRACTEDPRISM_E2E_FIXTURES=$manifest runs tests/e2e_test.ts)"
cat "$manifest"
