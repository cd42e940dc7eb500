#!/usr/bin/env bash
# gantry's peak memory on images much larger than memory should matter: a Dockerfile that COPYs a
# 2 GiB file and one that RUNs a command writing 2 GiB, each built and pushed to a local registry.
# Prints wall time and peak RSS (GNU time's %M, the largest single process) per case; the goal is
# a peak under 100 MB whatever the image size. A benchmark figure, not a test.
#
# usage: bench/memory.sh            (as root: RUN needs namespaces; GANTRY=path to skip the build)
set -euo pipefail
export LC_ALL=C
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/gantry-memory.XXXXXX")
registry_pid=
cleanup() {
	[[ -n $registry_pid ]] && kill "$registry_pid" 2>/dev/null && wait "$registry_pid" 2>/dev/null
	rm -rf -- "$work"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[[ $(id -u) == 0 ]] || { echo "memory: run as root (RUN needs namespaces)" >&2; exit 1; }
if [[ -z ${GANTRY:-} ]]; then
	(cd "$repo_root" && cargo build --release --bin gantry) >&2
	GANTRY=$repo_root/target/release/gantry
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<EOF
version: 0.1
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
log:
  level: warn
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
registry_pid=$!
registry=127.0.0.1:$port
for _ in $(seq 100); do
	curl -fsS -o /dev/null "http://$registry/v2/" 2>/dev/null && break
	sleep 0.1
done
fixtures=$(bash "$repo_root/scripts/fixtures.sh" busybox)
skopeo copy --quiet --all --preserve-digests --dest-tls-verify=false \
	"oci:${fixtures#busybox=}:latest" "docker://$registry/busybox:latest" >&2

# 2 GiB of incompressible, repeatable bytes (AES-256-CTR keystream under a fixed key).
mkdir -p "$work/copy" "$work/run"
head -c 2G /dev/zero | openssl enc -aes-256-ctr -nosalt \
	-K 67616e7472792d6d656d6f72792d62656e63682d326769422d66696c652d6b31 \
	-iv 00000000000000000000000000000000 >"$work/copy/big.bin"
printf 'FROM %s/busybox:latest\nCOPY big.bin /big.bin\n' "$registry" >"$work/copy/Dockerfile"
printf 'FROM %s/busybox:latest\nRUN head -c 2147483648 /dev/urandom > /big.bin\n' "$registry" \
	>"$work/run/Dockerfile"

printf '%-28s %8s %13s\n' case "wall s" "peak RSS MB"
for case in copy run; do
	/usr/bin/time -f '%e %M' -o "$work/time-$case" \
		env HOME="$work/home-$case" "$GANTRY" build --context "$work/$case" --dockerfile "$work/$case/Dockerfile" \
		--destination "$registry/memory/$case:latest" --insecure-registry "$registry" \
		>"$work/log-$case" 2>&1 || { cat "$work/log-$case" >&2; exit 1; }
	read -r wall rss <"$work/time-$case"
	printf '%-28s %8.1f %13.1f\n' "$case: 2 GiB $([[ $case == copy ]] && echo COPY || echo RUN)" \
		"$wall" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"
done
