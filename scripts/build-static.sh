#!/usr/bin/env bash
# Builds gantry as a static glibc binary for this machine's target (the local image; releases
# build musl targets with cargo-dist on GitHub) and prints its path.
# Usage: bash scripts/build-static.sh [extra cargo args]
set -euo pipefail
cd "$(dirname "$0")/.."
target="${GANTRY_STATIC_TARGET:-x86_64-unknown-linux-gnu}"
# vendored-openssl: OpenSSL (git2's HTTPS) built from source and linked statically, as in the
# release builds; a static binary cannot use the system's shared libssl.
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --target "$target" --bin gantry --features vendored-openssl "$@" >&2
echo "$PWD/target/$target/release/gantry"
