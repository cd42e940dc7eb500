#!/usr/bin/env bash
# Runs gantry's whole test suite on a Debian machine, installing what the tests need first.
# Usage: bash scripts/test.sh   (as root, or with sudo available for apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker-registry skopeo umoci buildah podman runc busybox-static debootstrap
          apache2-utils jq time hyperfine ca-certificates qemu-user-static binfmt-support
          git python3-venv libssl-dev pkg-config shellcheck)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# npm may come with a Node.js that is not Debian's (NodeSource's bundles it); Debian's otherwise.
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
  echo "installing test prerequisites: ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Servers the build-context tests talk to (tests/it/harness/servers.rs), installed once under
# target/test-servers: moto (S3) and gcp-storage-emulator from PyPI, Azurite from npm.
servers=target/test-servers
if [ ! -x "$servers/venv/bin/moto_server" ] || [ ! -x "$servers/venv/bin/gcp-storage-emulator" ]; then
  echo "installing moto and gcp-storage-emulator into $servers/venv" >&2
  python3 -m venv "$servers/venv"
  "$servers/venv/bin/pip" install -q "moto[server]" gcp-storage-emulator
fi
if [ ! -x "$servers/npm/node_modules/.bin/azurite-blob" ]; then
  echo "installing azurite into $servers/npm" >&2
  mkdir -p "$servers/npm"
  npm install --silent --prefix "$servers/npm" azurite >/dev/null
fi

# The multi-arch tests RUN arm64 binaries under qemu: binfmt_misc mounted and qemu-aarch64 enabled
# (qemu-user-static registers it with the F flag, so it works inside a chroot). Idempotent; the
# tests register it themselves as root too, and skip saying why when they cannot.
if [ "$(id -u)" -eq 0 ] && command -v update-binfmts >/dev/null; then
  [ -e /proc/sys/fs/binfmt_misc/status ] ||
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null || true
  update-binfmts --enable qemu-aarch64 2>/dev/null || true
fi

export CARGO_TERM_COLOR=never
# A fixture scripts/fixtures.sh cannot make (busybox-static:arm64 for the multi-arch tests) fails
# the tests that need it here, with the script's stderr, instead of letting them skip.
export GANTRY_REQUIRE_FIXTURES=1
# The shipping tests' linters (actionlint, check-jsonschema, gitlab-ci-local) and the static
# binary that gantry's own image is built from (tests/it/ship_tests).
bash scripts/ship-tools.sh
bash scripts/build-static.sh >/dev/null
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --no-fail-fast 2>&1
