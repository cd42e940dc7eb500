#!/usr/bin/env bash
# Builds the example image in examples/hello into an OCI layout (out/hello) and a docker-archive
# tarball (out/hello.tar): no registry, no root, no network needed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked
mkdir -p out
./target/release/gantry build \
  --context examples/hello \
  --dockerfile examples/hello/Dockerfile \
  --destination localhost/hello:latest \
  --no-push \
  --reproducible \
  --oci-layout-path out/hello \
  --tar-path out/hello.tar \
  --digest-file out/hello.digest
echo "image digest: $(cat out/hello.digest)"
echo "OCI layout:   out/hello   (try: skopeo inspect oci:out/hello:latest)"
echo "tarball:      out/hello.tar (try: podman load -i out/hello.tar)"
