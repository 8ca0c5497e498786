#!/bin/bash
# Build taint-guard's container image with no image registry: the static
# binary is built here, with this machine's toolchain, and the Containerfile's
# `prebuilt` stage copies it in (its `build` stage, which needs the rust image
# from a registry, is skipped).
#
#   packaging/image/build.sh [TAG]      (default: taint-guard:VERSION)
#
# The binary: glibc linked statically (-C target-feature=+crt-static), since
# the musl target of the Containerfile's build stage is not installable where
# rustup cannot download. It needs no libc at run time either; unlike the
# musl build it cannot resolve host names (static glibc loads NSS modules at
# run time, and the image has none): in a pod the API server is reached by
# the IP in KUBERNETES_SERVICE_HOST, so that does not arise there.
# Needs podman (or BUILDER=docker, with BuildKit). Prints the tag last.
set -euo pipefail
cd "$(dirname "$0")/../.."

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
tag=${1:-taint-guard:$version}
builder=${BUILDER:-podman}
target=${CARGO_TARGET_DIR:-target}
triple=$(rustc -vV | sed -n 's/^host: //p')

RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
	"${CARGO:-cargo}" build --release --locked --bin taint-guard --target "$triple"
bin=$target/$triple/release/taint-guard
# A static binary (no program interpreter), or the image would not start.
if readelf -lW "$bin" | grep -q 'program interpreter'; then
	echo "error: $bin is dynamically linked" >&2
	exit 1
fi
mkdir -p target/image
install -m 0755 "$bin" target/image/taint-guard
strip target/image/taint-guard

extra=()
[ "$builder" = podman ] && extra+=(--pull=never)
"$builder" build "${extra[@]}" -f packaging/Containerfile --build-arg BINARY=prebuilt -t "$tag" . >&2
echo "$tag"
