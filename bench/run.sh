#!/usr/bin/env bash
# gantry against buildah: build the same Dockerfiles from the same contexts onto the same bases,
# push to the same local registry, and compare wall time and peak memory.
#
# usage: bench/run.sh [CASE...]          (default: every case in CASES below, then both probes)
#        bench/run.sh cache_probe        (a probe alone: snapshot_probe, cache_probe)
#
# environment:
#   BENCH_RUNS      measurements per case and tool; the median is reported (default 3)
#   BENCH_DIR       generated contexts, logs and results (default <repo>/target/bench)
#   GANTRY          gantry binary to use; when unset, `cargo build --release` builds one
#   FIXTURES_DIR    base-image fixtures (default <repo>/target/fixtures, see scripts/fixtures.sh)
#
# Every run starts from nothing on the tool's side: buildah gets fresh storage (vfs, chroot
# isolation), gantry a fresh HOME and cache directory, and each run pushes to a repository of its
# own, so no run finds blobs left by another. Both push to the same plain-HTTP docker-registry on
# 127.0.0.1, started here and stopped on exit (Ctrl-C included). Wall time and peak RSS come from
# `/usr/bin/time -f '%e %M'` around the whole build + push; peak RSS is that of the largest single
# process. When gantry fails (its CLI is younger than this script), buildah's figures are still
# printed and gantry's are marked FAILED with the log to read.
# shellcheck disable=SC2317 # ctx_* and run_* are called through variables
set -euo pipefail
export LC_ALL=C
umask 022

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly repo_root
BENCH_RUNS=${BENCH_RUNS:-3}
BENCH_DIR=${BENCH_DIR:-$repo_root/target/bench}
export FIXTURES_DIR=${FIXTURES_DIR:-$repo_root/target/fixtures}

# The cases. Fields, separated by `|`:
#   name | base image (fixture repo:tag, as pushed below) | context generator (a ctx_* function,
#   its output cached under $BENCH_DIR/contexts/<generator>) | Dockerfile lines after FROM (`\n`
#   between lines; `@REGISTRY@` stands for the local registry, for a later stage's FROM) | what
#   it measures
# Add a row to add a case.
readonly CASES=(
	"a|debian:bookworm|ctx_binary|COPY app /usr/local/bin/app|30 MB binary COPY onto debian:bookworm"
	"b|busybox:latest|ctx_tree|COPY . /app/|COPY . of 225 MB in 20,000 files onto busybox"
	"c|debian:bookworm|ctx_none|RUN for d in \$(seq 1 100); do mkdir -p /data/d\$d; for f in \$(seq 1 220); do echo \"\$d \$f\" > /data/d\$d/f\$f; done; done|RUN creating 22,000 files on debian:bookworm"
	"d|debian:bookworm|ctx_none|RUN echo step1 > /s1\nRUN mkdir -p /opt/app && echo two > /opt/app/two\nRUN useradd --uid 1234 --create-home worker\nRUN chown -R worker:worker /opt/app\nRUN rm /s1 && echo step5 > /s5\nRUN ln -s /opt/app /app\nRUN sed -i 's/^/# /' /etc/motd\nRUN mkdir /tmp/t && touch /tmp/t/x && rm -rf /tmp/t\nRUN echo done > /opt/app/done.txt\nRUN chmod 0600 /opt/app/done.txt|ten small RUNs on debian:bookworm"
	"e|debian:bookworm|ctx_artifact|COPY seed.bin /src/seed.bin\nRUN mkdir /out && cat /src/seed.bin > /out/artifact && chmod 0755 /out/artifact\nFROM @REGISTRY@/busybox:latest\nCOPY --from=0 /out/artifact /usr/local/bin/artifact|multi-stage: 50 MB artifact made on debian, copied into busybox"
)

# Bump a generator's version when its output changes, so cached contexts are regenerated.
readonly CTX_BINARY_VERSION=1
readonly CTX_TREE_VERSION=1
readonly CTX_NONE_VERSION=1
readonly CTX_ARTIFACT_VERSION=1

log() { printf 'bench: %s\n' "$*" >&2; }
die() {
	printf 'bench: error: %s\n' "$1" >&2
	[[ $# -gt 1 ]] && printf 'hint: %s\n' "$2" >&2
	exit 1
}

for tool in buildah skopeo docker-registry curl jq openssl python3 /usr/bin/time; do
	command -v "$tool" >/dev/null 2>&1 || die "\`$tool\` is not installed" \
		"apt-get install the package that provides \`$tool\` (time, curl, jq, openssl, buildah, skopeo, docker-registry)"
done
[[ $BENCH_RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, not \`$BENCH_RUNS\`"
[[ $(id -u) == 0 ]] || die "the benchmark runs as root (buildah's chroot isolation, debootstrap)" \
	"run it with sudo"

mkdir -p "$BENCH_DIR"
BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
readonly BENCH_DIR
run_dir=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
readonly run_dir
registry_pid=

# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [[ -n $registry_pid ]]; then
		kill "$registry_pid" 2>/dev/null || true
		wait "$registry_pid" 2>/dev/null || true
	fi
	rm -rf -- "$run_dir"
	return 0
}
# The cleanup trap is set before anything is started.
trap cleanup EXIT
trap 'log interrupted; exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# contexts (deterministic: the same bytes on every machine and every run)

# ctx_binary DIR: `app`, 30 MiB of AES-256-CTR keystream under a fixed key (random-looking, so
# incompressible, and repeatable).
ctx_binary() {
	local dir=$1
	head -c 30M /dev/zero |
		openssl enc -aes-256-ctr -nosalt \
			-K 67616e7472792d62656e63682d62696e6172792d636f6e746578742d6b657931 \
			-iv 00000000000000000000000000000000 >"$dir/app"
	chmod 0755 "$dir/app"
}

# ctx_none DIR: nothing but the Dockerfile (the RUN cases make their files themselves).
ctx_none() { :; }

# ctx_artifact DIR: `seed.bin`, 50 MiB of AES-256-CTR keystream under a fixed key, the input the
# multi-stage case's build stage turns into its artifact.
ctx_artifact() {
	head -c 50M /dev/zero |
		openssl enc -aes-256-ctr -nosalt \
			-K 67616e7472792d62656e63682d61727469666163742d636f6e746578742d6b65 \
			-iv 00000000000000000000000000000000 >"$1/seed.bin"
}

# ctx_tree DIR: 20,000 files in 300 directories (20 x 15) adding up to 225 MiB: even-numbered
# files random bytes, odd-numbered files text, sizes drawn from a seeded generator.
ctx_tree() {
	python3 - "$1" <<-'EOF'
		import os, random, sys
		root = sys.argv[1]
		rng = random.Random(20240601)
		files, total = 20000, 225 * 1024 * 1024
		words = ("gantry build layer image registry manifest digest context copy stage "
		         "config index platform push pull cache tar gzip sha256 blob mount user "
		         "fn let mut impl struct enum match return async await").split()
		corpus = []
		while sum(len(line) for line in corpus) < 2 * 1024 * 1024:
		    corpus.append(" ".join(rng.choice(words) for _ in range(rng.randint(3, 14))) + "\n")
		corpus = "".join(corpus).encode()
		# Random files are twice the size of text files on average; scale to the exact total.
		raw = [rng.randint(1, 30000) if i % 2 == 0 else rng.randint(1, 15000) for i in range(files)]
		scale = total / sum(raw)
		sizes = [max(1, int(s * scale)) for s in raw]
		sizes[-1] += total - sum(sizes)
		for i, size in enumerate(sizes):
		    d = os.path.join(root, "d%02d" % (i % 20), "s%02d" % (i // 20 % 15))
		    os.makedirs(d, exist_ok=True)
		    if i % 2 == 0:
		        data = rng.randbytes(size)
		        name = "blob%05d.bin" % i
		    else:
		        start = rng.randrange(0, len(corpus) - size) if size < len(corpus) else 0
		        data = (corpus * (size // len(corpus) + 1))[start:start + size]
		        name = "file%05d.txt" % i
		    with open(os.path.join(d, name), "wb") as f:
		        f.write(data)
	EOF
}

# context GENERATOR: the cached context directory for GENERATOR, made on first use.
context() {
	local gen=$1 version dir stamp tmp
	case $gen in
	ctx_binary) version=$CTX_BINARY_VERSION ;;
	ctx_tree) version=$CTX_TREE_VERSION ;;
	ctx_none) version=$CTX_NONE_VERSION ;;
	ctx_artifact) version=$CTX_ARTIFACT_VERSION ;;
	*) die "unknown context generator \`$gen\`" "define a ctx_* function and its version" ;;
	esac
	dir=$BENCH_DIR/contexts/$gen
	stamp=$dir.done
	if [[ -d $dir && -f $stamp && $(<"$stamp") == "$version" ]]; then
		printf '%s\n' "$dir"
		return
	fi
	log "generating context $gen (cached for later runs)"
	mkdir -p "$BENCH_DIR/contexts"
	rm -rf -- "$dir" "$stamp"
	tmp=$(mktemp -d "$BENCH_DIR/contexts/.$gen.XXXXXX")
	"$gen" "$tmp"
	chmod 0755 "$tmp"
	mv -- "$tmp" "$dir"
	printf '%s' "$version" >"$stamp"
	printf '%s\n' "$dir"
}

# ---------------------------------------------------------------------------------------------
# registry

free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_registry() {
	local port config
	port=$(free_port)
	config=$run_dir/registry.yml
	cat >"$config" <<-EOF
		version: 0.1
		storage:
		  filesystem:
		    rootdirectory: $run_dir/registry
		  delete:
		    enabled: true
		http:
		  addr: 127.0.0.1:$port
		log:
		  level: warn
	EOF
	docker-registry serve "$config" >"$run_dir/registry.log" 2>&1 &
	registry_pid=$!
	registry=127.0.0.1:$port
	local i
	for i in $(seq 100); do
		curl -fsS -o /dev/null "http://$registry/v2/" 2>/dev/null && return 0
		kill -0 "$registry_pid" 2>/dev/null || break
		sleep 0.1
	done
	cat "$run_dir/registry.log" >&2
	die "docker-registry did not start on $registry"
}

push_fixture() {
	local name=$1 tag=$2 layout=$3
	skopeo copy --quiet --all --preserve-digests --dest-tls-verify=false \
		"oci:$layout:$tag" "docker://$registry/$name:$tag" >&2
}

# ---------------------------------------------------------------------------------------------
# measuring

# measure LOG CMD...: runs CMD under /usr/bin/time, output to LOG; prints `<seconds> <kB>` and
# returns CMD's status.
measure() {
	local logf=$1 timef=$run_dir/time.txt status=0
	shift
	/usr/bin/time -f '%e %M' -o "$timef" "$@" >"$logf" 2>&1 || status=$?
	# On failure GNU time writes "Command exited with non-zero status N" before the figures.
	tail -n 1 "$timef"
	return "$status"
}

# pushed REF: the registry has a manifest for REF (a tool that exits 0 but pushed nothing must
# not be timed as a success).
pushed() {
	skopeo inspect --raw --tls-verify=false "docker://$1" >/dev/null 2>&1
}

run_buildah() {
	local ctx=$1 ref=$2 logf=$3 store
	store=$(mktemp -d "$run_dir/buildah.XXXXXX")
	local common=(--root "$store/root" --runroot "$store/runroot" --storage-driver vfs)
	local status=0
	# shellcheck disable=SC2016 # expanded by the inner bash
	measure "$logf" bash -c '
		set -e
		buildah "${@:3}" bud --isolation chroot --layers --tls-verify=false \
			-f "$1/Dockerfile" -t "$2" "$1"
		buildah "${@:3}" push --tls-verify=false "$2"
	' bench "$ctx" "$ref" "${common[@]}" || status=$?
	rm -rf -- "$store"
	return "$status"
}

run_gantry() {
	local ctx=$1 ref=$2 logf=$3 home
	home=$(mktemp -d "$run_dir/gantry.XXXXXX")
	local status=0
	measure "$logf" env HOME="$home" XDG_CACHE_HOME="$home/cache" \
		"$GANTRY" build --context "$ctx" --dockerfile "$ctx/Dockerfile" \
		--destination "$ref" --insecure-registry "$registry" || status=$?
	rm -rf -- "$home"
	return "$status"
}

# snapshot_probe: the time gantry logs (at debug level) for the snapshot of a RUN that changes
# one file on the Debian base (goal: under 20 ms with overlay), three builds, every figure shown.
snapshot_probe() {
	local ctx=$run_dir/probe i home logf line figures=()
	mkdir -p "$ctx"
	printf 'FROM %s/debian:bookworm\nRUN echo one > /one-file\n' "$registry" >"$ctx/Dockerfile"
	for i in 1 2 3; do
		home=$(mktemp -d "$run_dir/gantry.XXXXXX")
		logf=$BENCH_DIR/logs/probe-gantry-$i.log
		if ! env HOME="$home" XDG_CACHE_HOME="$home/cache" "$GANTRY" build --context "$ctx" \
			--dockerfile "$ctx/Dockerfile" --no-push --insecure-registry "$registry" \
			--verbosity debug >"$logf" 2>&1; then
			printf 'snapshot probe: gantry FAILED (see %s)\n' "$logf"
			return 0
		fi
		rm -rf -- "$home"
		line=$(grep -o 'snapshot of .*' "$logf" | head -n 1)
		figures+=("${line##* in }")
	done
	printf 'snapshot of a RUN changing one file on debian:bookworm (gantry, debug log): %s\n' "${figures[*]}"
}

# cache_probe: the ten-small-RUNs case (d) built by gantry with --cache twice, the second time
# after no change: both wall times, the warm one as a share of the cold one (goal: under 1 s and
# under 10 %), and whether both builds gave the same image digest.
cache_probe() {
	local ctx=$run_dir/cache-probe body home logf t0 t1 cold warm d1 d2 row
	mkdir -p "$ctx"
	for row in "${CASES[@]}"; do
		[[ ${row%%|*} == d ]] && body=$(cut -d'|' -f4 <<<"$row")
	done
	printf 'FROM %s/debian:bookworm\n%b\n' "$registry" "$body" >"$ctx/Dockerfile"
	local ref=$registry/bench/cache-probe:latest times=() digests=()
	for i in 1 2; do
		home=$(mktemp -d "$run_dir/gantry.XXXXXX")
		logf=$BENCH_DIR/logs/cache-probe-$i.log
		t0=$(date +%s.%N)
		if ! env HOME="$home" "$GANTRY" build --context "$ctx" --dockerfile "$ctx/Dockerfile" \
			--destination "$ref" --insecure-registry "$registry" --cache --reproducible \
			--digest-file "$home/digest" >"$logf" 2>&1; then
			printf 'cache probe: gantry FAILED (see %s)\n' "$logf"
			return 0
		fi
		t1=$(date +%s.%N)
		times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')")
		digests+=("$(cat "$home/digest")")
		rm -rf -- "$home"
	done
	cold=${times[0]} warm=${times[1]}
	d1=${digests[0]} d2=${digests[1]}
	printf 'ten small RUNs with --cache: cold %s s, rebuilt after no change %s s (%s of cold), same digest: %s\n' \
		"$cold" "$warm" "$(awk -v a="$warm" -v b="$cold" 'BEGIN { printf "%.1f%%", 100 * a / b }')" \
		"$([[ $d1 == "$d2" ]] && echo "yes ($d1)" || echo "NO ($d1 vs $d2)")"
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# ---------------------------------------------------------------------------------------------

main() {
	local selected=() probes=() arg row name base gen body what ctx tool i ref logf figures
	local -A wall=() rss=() failed=() failed_log=() described=()
	local case_names=()
	# The probes can be named like cases; naming only probes runs no case.
	for arg in "$@"; do
		case $arg in
		snapshot_probe | cache_probe) probes+=("$arg") ;;
		*) selected+=("$arg") ;;
		esac
	done
	for row in "${CASES[@]}"; do
		IFS='|' read -r name base gen body what <<<"$row"
		if [[ ${#selected[@]} -gt 0 ]] && ! printf '%s\n' "${selected[@]}" | grep -qx -- "$name"; then
			continue
		fi
		[[ ${#selected[@]} -eq 0 && ${#probes[@]} -gt 0 ]] && continue
		case_names+=("$name")
	done
	if [[ ${#case_names[@]} -lt ${#selected[@]} ]]; then
		die "no case named \`${selected[*]}\`" \
			"cases: $(printf '%s\n' "${CASES[@]}" | cut -d'|' -f1 | tr '\n' ' ') snapshot_probe cache_probe"
	fi
	# Without probes named, both run after the cases (unless BENCH_NO_PROBE is set).
	if [[ ${#probes[@]} -eq 0 && -z ${BENCH_NO_PROBE:-} ]]; then
		probes=(snapshot_probe cache_probe)
	fi

	log "fixtures"
	local fixtures
	fixtures=$(bash "$repo_root/scripts/fixtures.sh" busybox debian)
	start_registry
	log "registry on $registry"
	push_fixture busybox latest "$(sed -n 's/^busybox=//p' <<<"$fixtures")"
	push_fixture debian bookworm "$(sed -n 's/^debian=//p' <<<"$fixtures")"

	local gantry_ok=1
	mkdir -p "$BENCH_DIR/logs"
	if [[ -z ${GANTRY:-} ]]; then
		GANTRY=$repo_root/target/release/gantry
		log "cargo build --release (log: $BENCH_DIR/logs/cargo-build.log)"
		if ! (cd "$repo_root" && cargo build --release --bin gantry) >"$BENCH_DIR/logs/cargo-build.log" 2>&1; then
			log "gantry did not build: its figures will be marked FAILED"
			gantry_ok=0
		fi
	fi
	[[ -x $GANTRY ]] || gantry_ok=0

	for row in "${CASES[@]}"; do
		IFS='|' read -r name base gen body what <<<"$row"
		printf '%s\n' "${case_names[@]}" | grep -qx -- "$name" || continue
		described[$name]=$what
		ctx=$(context "$gen")
		# The registry's port changes per run, so the Dockerfile is rewritten every time (COPY .
		# then copies it too: a few bytes, the same for both tools).
		printf 'FROM %s/%s\n%b\n' "$registry" "$base" "${body//@REGISTRY@/$registry}" >"$ctx/Dockerfile"
		for tool in buildah gantry; do
			local walls=() rsss=()
			for i in $(seq "$BENCH_RUNS"); do
				ref=$registry/bench/$name-$tool-$i:latest
				logf=$BENCH_DIR/logs/$name-$tool-$i.log
				if [[ $tool == gantry && $gantry_ok != 1 ]]; then
					failed[$name.$tool]=1
					failed_log[$name.$tool]=$BENCH_DIR/logs/cargo-build.log
					break
				fi
				log "case $name: $tool, run $i/$BENCH_RUNS"
				local problem=
				if ! figures=$("run_$tool" "$ctx" "$ref" "$logf"); then
					problem="exited with an error"
				elif ! pushed "$ref"; then
					problem="exited 0 but the registry has no manifest for \`$ref\`"
					printf 'bench: %s %s\n' "$tool" "$problem" >>"$logf"
				fi
				if [[ -z $problem ]]; then
					walls+=("${figures% *}")
					rsss+=("${figures#* }")
				else
					log "case $name: $tool $problem (log: $logf)"
					failed[$name.$tool]=1
					failed_log[$name.$tool]=$logf
					break
				fi
			done
			if [[ -z ${failed[$name.$tool]:-} ]]; then
				wall[$name.$tool]=$(printf '%s\n' "${walls[@]}" | median)
				rss[$name.$tool]=$(printf '%s\n' "${rsss[@]}" | median | awk '{ printf "%.1f", $1 / 1024 }')
			fi
		done
	done

	: >"$BENCH_DIR/results.txt"
	if [[ ${#case_names[@]} -gt 0 ]]; then
		report "${case_names[@]}" | tee "$BENCH_DIR/results.txt"
	fi
	local probe
	for probe in "${probes[@]}"; do
		if [[ $gantry_ok == 1 ]]; then
			"$probe" | tee -a "$BENCH_DIR/results.txt"
		else
			printf '%s: gantry FAILED to build (see %s)\n' "$probe" "$BENCH_DIR/logs/cargo-build.log" |
				tee -a "$BENCH_DIR/results.txt"
		fi
	done
	log "results also in $BENCH_DIR/results.txt, logs in $BENCH_DIR/logs"
}

# report CASE...: the table and the summary lines (reads main's arrays).
report() {
	local name tool w r ratio_t ratio_m
	printf '\n%-5s %-8s %10s %14s %13s %13s\n' case tool "wall s" "peak RSS MB" "time ratio" "RSS ratio"
	for name in "$@"; do
		for tool in buildah gantry; do
			if [[ -n ${failed[$name.$tool]:-} ]]; then
				printf '%-5s %-8s %10s %14s %13s %13s\n' "$name" "$tool" FAILED FAILED - -
				continue
			fi
			w=${wall[$name.$tool]} r=${rss[$name.$tool]} ratio_t=- ratio_m=-
			if [[ $tool == gantry && -z ${failed[$name.buildah]:-} ]]; then
				ratio_t=$(ratio "${wall[$name.buildah]}" "$w")
				ratio_m=$(ratio "${rss[$name.buildah]}" "$r")
			fi
			printf '%-5s %-8s %10.2f %14s %13s %13s\n' "$name" "$tool" "$w" "$r" "$ratio_t" "$ratio_m"
		done
	done
	printf '(median of %s runs; ratio = buildah / gantry, higher is better for gantry)\n' "$BENCH_RUNS"
	for name in "$@"; do
		printf '  %s: %s\n' "$name" "${described[$name]}"
	done
	printf '\n'

	for name in "$@"; do
		local g b
		if [[ -n ${failed[$name.gantry]:-} ]]; then
			g="gantry FAILED (see ${failed_log[$name.gantry]})"
		else
			g=$(printf 'gantry %.1f s / %.0f MB' "${wall[$name.gantry]}" "${rss[$name.gantry]}")
		fi
		if [[ -n ${failed[$name.buildah]:-} ]]; then
			b="buildah FAILED (see ${failed_log[$name.buildah]})"
		else
			b=$(printf 'buildah %.1f s / %.0f MB' "${wall[$name.buildah]}" "${rss[$name.buildah]}")
		fi
		if [[ -z ${failed[$name.gantry]:-} && -z ${failed[$name.buildah]:-} ]]; then
			printf 'case %s: %s, %s, ratio %s\n' "$name" "$g" "$b" "$(ratio "${wall[$name.buildah]}" "${wall[$name.gantry]}")"
		else
			printf 'case %s: %s, %s\n' "$name" "$g" "$b"
		fi
	done
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1fx", a / b; else print "-" }'; }

main "$@"; exit
