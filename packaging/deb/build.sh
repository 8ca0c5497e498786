#!/bin/bash
# Build the Debian package with cargo-deb.
#
#   packaging/deb/build.sh [cargo-deb options...]
#
# Builds taint-guard (release profile unless --profile is given; not at all
# with --no-build), generates the man pages and shell completions from that
# binary into target/deb-assets (cargo-deb's assets name them there), then
# runs `cargo deb --no-build` with the options given (e.g. -o DIR, --fast).
# Prints the path of the .deb on the last line.
# Needs cargo-deb (`cargo install cargo-deb`).
set -euo pipefail
cd "$(dirname "$0")/../.."

profile=release
build=yes
args=()
prev=
for a in "$@"; do
	case "$prev" in --profile) profile=$a ;; esac
	case "$a" in
	--profile=*) profile=${a#--profile=} ;;
	--no-build) build=no; prev=$a; continue ;;
	esac
	args+=("$a")
	prev=$a
done
case "$profile" in
dev | test) dir=debug ;;
*) dir=$profile ;;
esac
target=${CARGO_TARGET_DIR:-target}

if [ "$build" = yes ]; then
	"${CARGO:-cargo}" build --profile "$profile" --bin taint-guard
fi
bin=$target/$dir/taint-guard

assets=target/deb-assets
mkdir -p target
# One package build at a time in this checkout: the assets' path is fixed
# (Cargo.toml names it).
exec 9>target/deb-assets.lock
flock 9
rm -rf "$assets"
mkdir -p "$assets/man" "$assets/completions"
"$bin" man --out "$assets/man" >/dev/null
"$bin" completions bash >"$assets/completions/taint-guard"
"$bin" completions zsh >"$assets/completions/_taint-guard"
"$bin" completions fish >"$assets/completions/taint-guard.fish"
# The kubectl plugin: `kubectl taint-guard explain …` runs
# /usr/bin/kubectl-taint_guard, a relative symlink to the binary (cargo-deb
# packages a symlink asset as a symlink), its manual page one to
# taint-guard-explain(1).
ln -s taint-guard "$assets/kubectl-taint_guard"
ln -s taint-guard-explain.1.gz "$assets/kubectl-taint_guard.1.gz"

# The binary is built by now (or was, with --no-build).
"${CARGO:-cargo}" deb --no-build "${args[@]}"
