#!/usr/bin/env bash
# Prepares the build context for gantry's own image (the root Dockerfile): the static gantry
# binary, the CA bundle, the in-place isolation marker, an empty /workspace and, for the debug
# target, a static busybox with its applet links.
# Usage: bash scripts/image-context.sh OUT_DIR GANTRY_BINARY [BUSYBOX_BINARY]
#   BUSYBOX_BINARY defaults to /bin/busybox (Debian's busybox-static is the static one).
#   The CA bundle comes from $CA_BUNDLE, default /etc/ssl/certs/ca-certificates.crt.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 OUT_DIR GANTRY_BINARY [BUSYBOX_BINARY]" >&2
  exit 2
fi
out="$1" bin="$2" busybox="${3:-/bin/busybox}"
ca="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"
for f in "$bin" "$busybox" "$ca"; do
  [ -f "$f" ] || { echo "image-context: \`$f\` does not exist" >&2; exit 1; }
done
if file -b "$bin" 2>/dev/null | grep -q 'dynamically linked'; then
  echo "image-context: \`$bin\` is dynamically linked; build it with scripts/build-static.sh" >&2
  exit 1
fi
rm -rf "$out"
mkdir -p "$out/workspace" "$out/busybox"
install -m 0755 "$bin" "$out/gantry"
install -m 0644 "$ca" "$out/ca-certificates.crt"
printf 'gantry image: in-place isolation may overwrite / here\n' > "$out/gantry-image"
install -m 0755 "$busybox" "$out/busybox/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$out/busybox/$applet"
done
echo "$out"
