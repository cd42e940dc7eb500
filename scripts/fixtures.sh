#!/usr/bin/env bash
# Base-image fixtures for gantry's integration tests and benchmark.
#
# Builds OCI image layouts from Debian packages with plain tools (GNU tar, gzip -n, sha256sum, jq),
# never with gantry, so the fixtures stay independent of the code under test. Everything is cached
# under $FIXTURES_DIR (default: <repo>/target/fixtures); a run with everything cached takes well
# under a second. Several processes may run this at once: a lock serialises them.
#
# usage: scripts/fixtures.sh [busybox|busybox-docker|debian|busybox-multi|all]...
#
# stdout: one `name=path` line per layout that exists after the run (tag `latest`, or `bookworm`
#         for debian); logs go to stderr. A fixture that cannot be made (no mirror, no arm64
#         package) is reported on stderr and left out of stdout; the exit code is then 1 for
#         busybox, busybox-docker and debian, 0 for busybox-multi (optional).
#
# environment: FIXTURES_DIR (output), DEBIAN_MIRROR (default: the machine's apt source for
#              bookworm), FIXTURES_FORCE=1 (rebuild even when cached).
set -euo pipefail
export LC_ALL=C
umask 022

# Bump when the content of a fixture changes, so caches made by an older script are rebuilt:
# a layer's version when its tree changes, LAYOUT_VERSION when configs or manifests change.
readonly BUSYBOX_LAYER_VERSION=2
readonly DEBIAN_LAYER_VERSION=1
readonly LAYOUT_VERSION=2
readonly BUSYBOX_VERSION=$BUSYBOX_LAYER_VERSION.$LAYOUT_VERSION
readonly DEBIAN_VERSION=$DEBIAN_LAYER_VERSION.$LAYOUT_VERSION

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
FIXTURES_DIR=${FIXTURES_DIR:-$repo_root/target/fixtures}
mkdir -p "$FIXTURES_DIR"
FIXTURES_DIR=$(cd "$FIXTURES_DIR" && pwd)
readonly FIXTURES_DIR
readonly cache_dir=$FIXTURES_DIR/cache

readonly MT_OCI_INDEX=application/vnd.oci.image.index.v1+json
readonly MT_OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
readonly MT_OCI_CONFIG=application/vnd.oci.image.config.v1+json
readonly MT_OCI_LAYER=application/vnd.oci.image.layer.v1.tar+gzip
readonly MT_DOCKER_MANIFEST=application/vnd.docker.distribution.manifest.v2+json
readonly MT_DOCKER_CONFIG=application/vnd.docker.container.image.v1+json
readonly MT_DOCKER_LAYER=application/vnd.docker.image.rootfs.diff.tar.gzip

readonly BUSYBOX_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
readonly DEBIAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

log() { printf 'fixtures: %s\n' "$*" >&2; }
die() {
	printf 'fixtures: error: %s\n' "$1" >&2
	[[ $# -gt 1 ]] && printf 'hint: %s\n' "$2" >&2
	exit 1
}

need() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 ||
			die "\`$tool\` is not installed" "apt-get install the package that provides \`$tool\`"
	done
}

# Scratch space for this run, inside $FIXTURES_DIR (same filesystem, so results are renamed into
# place atomically). Made under the lock in main, removed on exit.
scratch=$FIXTURES_DIR/.work.$$
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	rm -rf -- "$scratch"
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# new_work_dir: a fresh scratch directory (works from subshells too: nothing to register).
new_work_dir() { mktemp -d "$scratch/dir.XXXXXX"; }
new_work_file() { mktemp "$scratch/file.XXXXXX"; }

sha256_of() { sha256sum "$1" | cut -d' ' -f1; }
size_of() { stat -c %s "$1"; }

# put_blob LAYOUT FILE: moves FILE into LAYOUT's blob store; prints its digest (sha256:...).
put_blob() {
	local layout=$1 file=$2 hex
	hex=$(sha256_of "$file")
	mkdir -p "$layout/blobs/sha256"
	mv -f -- "$file" "$layout/blobs/sha256/$hex"
	chmod 0644 "$layout/blobs/sha256/$hex"
	printf 'sha256:%s\n' "$hex"
}

# descriptor MEDIA_TYPE DIGEST SIZE [PLATFORM_JSON] [ANNOTATIONS_JSON]: one descriptor as compact JSON.
descriptor() {
	jq -cn --arg mt "$1" --arg d "$2" --argjson s "$3" \
		--argjson p "${4:-null}" --argjson a "${5:-null}" \
		'{mediaType: $mt, digest: $d, size: $s}
		 + (if $p == null then {} else {platform: $p} end)
		 + (if $a == null then {} else {annotations: $a} end)'
}

# pack_tree ROOT OUT [tar options...]: a gzip'd tar of ROOT's content (entries without a `./`
# prefix, sorted by name, mtime 0). Prints the uncompressed digest (the diff_id).
pack_tree() {
	local root=$1 out=$2
	shift 2
	local list
	list=$(new_work_file)
	(cd "$root" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | sort) >"$list"
	tar --sort=name --mtime=@0 --numeric-owner "$@" -C "$root" -cf "$out.tar" -T "$list"
	rm -f -- "$list"
	printf 'sha256:%s\n' "$(sha256_of "$out.tar")"
	gzip -n -9 -c "$out.tar" >"$out"
	rm -f -- "$out.tar"
}

# image_config ARCH DIFF_ID PATH CMD_JSON CREATED_BY: the image config JSON (compact, sorted keys).
image_config() {
	jq -c -n -S --arg arch "$1" --arg diff "$2" --arg path "$3" --argjson cmd "$4" --arg by "$5" '{
		architecture: $arch,
		os: "linux",
		created: "1970-01-01T00:00:00Z",
		config: {Env: ["PATH=" + $path], Cmd: $cmd},
		rootfs: {type: "layers", diff_ids: [$diff]},
		history: [{created: "1970-01-01T00:00:00Z", created_by: $by}]
	}'
}

# write_image LAYOUT LAYER_GZ DIFF_ID ARCH PATH CMD_JSON CREATED_BY FLAVOUR(oci|docker)
# Adds layer, config and manifest blobs to LAYOUT; prints the manifest descriptor (no annotations).
write_image() {
	local layout=$1 layer=$2 diff_id=$3 arch=$4 path=$5 cmd=$6 by=$7 flavour=$8
	local mt_manifest mt_config mt_layer tmp layer_d layer_s config_d config_s manifest_d manifest_s
	case $flavour in
	oci) mt_manifest=$MT_OCI_MANIFEST mt_config=$MT_OCI_CONFIG mt_layer=$MT_OCI_LAYER ;;
	docker) mt_manifest=$MT_DOCKER_MANIFEST mt_config=$MT_DOCKER_CONFIG mt_layer=$MT_DOCKER_LAYER ;;
	*) die "unknown image flavour \`$flavour\`" ;;
	esac
	tmp=$(new_work_file)
	ln -f -- "$layer" "$tmp" 2>/dev/null || cp -- "$layer" "$tmp"
	layer_s=$(size_of "$tmp")
	layer_d=$(put_blob "$layout" "$tmp")

	tmp=$(new_work_file)
	image_config "$arch" "$diff_id" "$path" "$cmd" "$by" | tr -d '\n' >"$tmp"
	config_s=$(size_of "$tmp")
	config_d=$(put_blob "$layout" "$tmp")

	tmp=$(new_work_file)
	jq -cn --arg mt "$mt_manifest" \
		--argjson config "$(descriptor "$mt_config" "$config_d" "$config_s")" \
		--argjson layer "$(descriptor "$mt_layer" "$layer_d" "$layer_s")" \
		'{schemaVersion: 2, mediaType: $mt, config: $config, layers: [$layer]}' |
		tr -d '\n' >"$tmp"
	manifest_s=$(size_of "$tmp")
	manifest_d=$(put_blob "$layout" "$tmp")
	descriptor "$mt_manifest" "$manifest_d" "$manifest_s" "$(jq -cn --arg a "$arch" '{architecture: $a, os: "linux"}')"
}

# finish_layout LAYOUT TAG DESCRIPTOR_JSON: writes oci-layout and index.json naming DESCRIPTOR as TAG.
finish_layout() {
	local layout=$1 tag=$2 desc=$3
	printf '{"imageLayoutVersion":"1.0.0"}' >"$layout/oci-layout"
	jq -cn --arg mt "$MT_OCI_INDEX" --arg tag "$tag" --argjson d "$desc" \
		'{schemaVersion: 2, mediaType: $mt,
		  manifests: [$d + {annotations: {"org.opencontainers.image.ref.name": $tag}}]}' |
		tr -d '\n' >"$layout/index.json"
}

# layer_cached LAYER VERSION: a cached layer tarball made by this version of the script.
layer_cached() {
	[[ ${FIXTURES_FORCE:-0} != 1 && -f $1 && -f $1.diffid && -f $1.version &&
		$(<"$1.version") == "$2" ]]
}

stamp_of() { printf '%s/.%s.done\n' "$FIXTURES_DIR" "$1"; }

# is_cached NAME VERSION: the layout exists and was made by this version of the script.
is_cached() {
	local stamp
	stamp=$(stamp_of "$1")
	[[ ${FIXTURES_FORCE:-0} != 1 && -f $FIXTURES_DIR/$1/index.json && -f $stamp &&
		$(<"$stamp") == "$2" ]]
}

# install_layout NAME STAGED_DIR VERSION: replaces $FIXTURES_DIR/NAME with STAGED_DIR, stamps it.
install_layout() {
	local name=$1 staged=$2 version=$3
	rm -f -- "$(stamp_of "$name")"
	rm -rf -- "${FIXTURES_DIR:?}/$name"
	mv -- "$staged" "$FIXTURES_DIR/$name"
	printf '%s' "$version" >"$(stamp_of "$name")"
}

# ---------------------------------------------------------------------------------------------
# busybox

# busybox_binary ARCH DEST: copies a static busybox for ARCH to DEST. amd64 comes from the host's
# busybox-static package when installed; other architectures (and amd64 otherwise) from the
# package fetched with `apt-get download` (cached). Returns 1 if the package cannot be had.
busybox_binary() {
	local arch=$1 dest=$2 host_arch deb_dir deb extract
	host_arch=$(dpkg --print-architecture)
	if [[ $arch == "$host_arch" ]] && dpkg-query -W -f '${Status}' busybox-static 2>/dev/null |
		grep -q 'install ok installed' && [[ -x /bin/busybox ]]; then
		cp -- /bin/busybox "$dest"
		return 0
	fi
	deb_dir=$cache_dir/debs/$arch
	mkdir -p "$deb_dir"
	deb=$(find "$deb_dir" -maxdepth 1 -name 'busybox-static_*.deb' | sort | tail -n 1)
	if [[ -z $deb ]]; then
		if [[ $arch != "$host_arch" ]] && ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
			log "adding dpkg architecture $arch and updating apt lists"
			dpkg --add-architecture "$arch" || return 1
			apt-get update -qq >&2 || return 1
		fi
		log "downloading busybox-static:$arch"
		(cd "$deb_dir" && apt-get download -qq -o APT::Sandbox::User=root "busybox-static:$arch" >&2) || return 1
		deb=$(find "$deb_dir" -maxdepth 1 -name 'busybox-static_*.deb' | sort | tail -n 1)
		[[ -n $deb ]] || return 1
	fi
	extract=$(new_work_dir)
	dpkg-deb -x "$deb" "$extract" || return 1
	[[ -f $extract/bin/busybox ]] || return 1
	cp -- "$extract/bin/busybox" "$dest"
}

# busybox_layer ARCH: builds (once) the busybox rootfs layer for ARCH into the cache; prints
# `<layer.tar.gz> <diff_id>`. Applet links come from the host busybox's `--list-full`, so every
# architecture gets the same tree (the arm64 binary cannot run here).
busybox_layer() {
	local arch=$1 layer work root applet diff_id
	layer=$cache_dir/busybox-$arch.tar.gz
	if layer_cached "$layer" "$BUSYBOX_LAYER_VERSION"; then
		printf '%s %s\n' "$layer" "$(<"$layer.diffid")"
		return 0
	fi
	need busybox tar gzip
	work=$(new_work_dir)
	root=$work/rootfs
	mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp}
	chmod 0755 "$root"/{bin,sbin,usr,usr/bin,usr/sbin,etc}
	chmod 0700 "$root/root"
	chmod 1777 "$root/tmp"
	busybox_binary "$arch" "$root/bin/busybox" || return 1
	chmod 0755 "$root/bin/busybox"
	while IFS= read -r applet; do
		[[ -z $applet || $applet == bin/busybox ]] && continue
		mkdir -p "$root/$(dirname "$applet")"
		ln -sfn /bin/busybox "$root/$applet"
	done < <(busybox --list-full | sort)
	cat >"$root/etc/passwd" <<-'EOF'
		root:x:0:0:root:/root:/bin/sh
		nobody:x:65534:65534:nobody:/nonexistent:/bin/false
		app:x:1000:1000:app:/home/app:/bin/sh
	EOF
	cat >"$root/etc/group" <<-'EOF'
		root:x:0:
		nobody:x:65534:
		app:x:1000:
	EOF
	chmod 0644 "$root/etc/passwd" "$root/etc/group"
	mkdir -p "$cache_dir"
	diff_id=$(pack_tree "$root" "$work/layer.tar.gz" --owner=0 --group=0 --format=gnu)
	mv -f -- "$work/layer.tar.gz" "$layer"
	printf '%s' "$diff_id" >"$layer.diffid"
	printf '%s' "$BUSYBOX_LAYER_VERSION" >"$layer.version"
	printf '%s %s\n' "$layer" "$diff_id"
}

# build_busybox NAME FLAVOUR: a single-platform amd64 busybox layout.
build_busybox() {
	local name=$1 flavour=$2 layer diff_id staged desc
	is_cached "$name" "$BUSYBOX_VERSION" && return 0
	need jq sha256sum
	read -r layer diff_id < <(busybox_layer amd64) || true
	[[ -n ${layer:-} ]] || die "could not make the amd64 busybox layer" \
		"install busybox-static (apt-get install busybox-static)"
	staged=$(new_work_dir)/layout
	mkdir -p "$staged"
	desc=$(write_image "$staged" "$layer" "$diff_id" amd64 "$BUSYBOX_PATH" '["sh"]' \
		'fixtures.sh: busybox-static with applet links' "$flavour")
	if [[ $flavour == docker ]]; then
		# skopeo 1.9's oci: transport skips index.json entries whose mediaType is not OCI's, so
		# the entry says OCI while the manifest blob itself (what skopeo pushes, with the Content-Type
		# guessed from the blob, digest unchanged) is Docker schema 2 throughout.
		desc=$(jq -c --arg mt "$MT_OCI_MANIFEST" '.mediaType = $mt' <<<"$desc")
	fi
	finish_layout "$staged" latest "$desc"
	install_layout "$name" "$staged" "$BUSYBOX_VERSION"
	log "built $name"
}

# build_busybox_multi: an index of amd64 + arm64 busybox images. Sets multi_made=1 when the
# layout exists afterwards; when arm64 busybox cannot be had it says so and sets multi_made=0
# (the multi-arch fixture is optional). Any other failure stops the script.
multi_made=0
build_busybox_multi() {
	local name=busybox-multi staged amd_layer='' amd_diff arm_layer='' arm_diff d_amd d_arm tmp idx_d idx_s
	multi_made=0
	if is_cached "$name" "$BUSYBOX_VERSION"; then
		multi_made=1
		return 0
	fi
	need jq sha256sum
	read -r amd_layer amd_diff < <(busybox_layer amd64) || true
	[[ -n $amd_layer ]] || die "could not make the amd64 busybox layer" \
		"install busybox-static (apt-get install busybox-static)"
	read -r arm_layer arm_diff < <(busybox_layer arm64) || true
	if [[ -z $arm_layer ]]; then
		log "skipping busybox-multi: busybox-static:arm64 could not be fetched with apt"
		return 0
	fi
	staged=$(new_work_dir)/layout
	mkdir -p "$staged"
	d_amd=$(write_image "$staged" "$amd_layer" "$amd_diff" amd64 "$BUSYBOX_PATH" '["sh"]' \
		'fixtures.sh: busybox-static with applet links' oci)
	d_arm=$(write_image "$staged" "$arm_layer" "$arm_diff" arm64 "$BUSYBOX_PATH" '["sh"]' \
		'fixtures.sh: busybox-static with applet links' oci)
	d_arm=$(jq -c '.platform.variant = "v8"' <<<"$d_arm")
	tmp=$(new_work_file)
	jq -cn --arg mt "$MT_OCI_INDEX" --argjson a "$d_amd" --argjson b "$d_arm" \
		'{schemaVersion: 2, mediaType: $mt, manifests: [$a, $b]}' | tr -d '\n' >"$tmp"
	idx_s=$(size_of "$tmp")
	idx_d=$(put_blob "$staged" "$tmp")
	finish_layout "$staged" latest "$(descriptor "$MT_OCI_INDEX" "$idx_d" "$idx_s")"
	install_layout "$name" "$staged" "$BUSYBOX_VERSION"
	multi_made=1
	log "built $name"
}

# ---------------------------------------------------------------------------------------------
# debian

# debian_mirror: DEBIAN_MIRROR, else the first apt source that serves bookworm (main archive, not
# security), else deb.debian.org.
debian_mirror() {
	if [[ -n ${DEBIAN_MIRROR:-} ]]; then
		printf '%s\n' "$DEBIAN_MIRROR"
		return
	fi
	local uri
	uri=$(
		{
			# deb822 sources: a stanza with URIs and a bookworm suite.
			for f in /etc/apt/sources.list.d/*.sources; do
				[[ -f $f ]] && awk '
					/^[[:space:]]*$/ { if (u != "" && s ~ /(^| )bookworm( |$)/) print u; u = ""; s = ""; next }
					/^URIs:/ { u = $2 }
					/^Suites:/ { $1 = ""; s = $0 " " }
					END { if (u != "" && s ~ /(^| )bookworm( |$)/) print u }' "$f"
			done
			# one-line sources: deb URI bookworm ...
			for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
				[[ -f $f ]] && awk '$1 == "deb" {
					i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
					if ($(i + 1) == "bookworm") print $i }' "$f"
			done
		} 2>/dev/null | grep -v -- '-security' | head -n 1
	)
	printf '%s\n' "${uri:-http://deb.debian.org/debian}"
}

debian_layer() {
	local layer=$cache_dir/debian-bookworm.tar.gz work root mirror diff_id
	if layer_cached "$layer" "$DEBIAN_LAYER_VERSION"; then
		printf '%s %s\n' "$layer" "$(<"$layer.diffid")"
		return 0
	fi
	need debootstrap tar gzip
	[[ $(id -u) == 0 ]] || die "debootstrap needs root (running as uid $(id -u))" \
		"run the tests or the benchmark as root"
	mirror=$(debian_mirror)
	work=$(new_work_dir)
	root=$work/rootfs
	log "debootstrap --variant=minbase bookworm from $mirror (takes a minute)"
	if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1; then
		tail -n 20 "$work/debootstrap.log" >&2
		die "debootstrap of bookworm from \`$mirror\` failed" \
			"set DEBIAN_MIRROR to a reachable Debian mirror"
	fi
	# Leave out what is specific to this machine or this run.
	rm -rf -- "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/* \
		"$root"/debootstrap "$root"/tmp/* "$root"/var/tmp/*
	: >"$root/etc/hostname"
	rm -f -- "$root/etc/resolv.conf" "$root/etc/hosts"
	mkdir -p "$cache_dir"
	diff_id=$(pack_tree "$root" "$work/layer.tar.gz" --format=posix \
		--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
		--xattrs --xattrs-include='*' --acls)
	mv -f -- "$work/layer.tar.gz" "$layer"
	printf '%s' "$diff_id" >"$layer.diffid"
	printf '%s' "$DEBIAN_LAYER_VERSION" >"$layer.version"
	printf '%s %s\n' "$layer" "$diff_id"
}

build_debian() {
	local name=debian layer diff_id staged desc
	is_cached "$name" "$DEBIAN_VERSION" && return 0
	need jq sha256sum
	read -r layer diff_id < <(debian_layer) || true
	[[ -n ${layer:-} ]] || die "could not make the debian layer"
	staged=$(new_work_dir)/layout
	mkdir -p "$staged"
	desc=$(write_image "$staged" "$layer" "$diff_id" amd64 "$DEBIAN_PATH" '["bash"]' \
		'fixtures.sh: debootstrap --variant=minbase bookworm' oci)
	finish_layout "$staged" bookworm "$desc"
	install_layout "$name" "$staged" "$DEBIAN_VERSION"
	log "built $name"
}

# ---------------------------------------------------------------------------------------------

main() {
	local targets=("$@") t out=()
	[[ ${#targets[@]} -gt 0 ]] || targets=(all)
	for t in "${targets[@]}"; do
		case $t in
		all) targets+=(busybox busybox-docker debian busybox-multi) ;;
		busybox | busybox-docker | debian | busybox-multi) ;;
		*) die "unknown fixture \`$t\`" "choose from busybox, busybox-docker, debian, busybox-multi, all" ;;
		esac
	done
	need flock
	# Scratch left by runs that were killed.
	local d
	for d in "$FIXTURES_DIR"/.work.*; do
		if [[ -d $d ]] && ! kill -0 "${d##*.work.}" 2>/dev/null; then
			rm -rf -- "$d"
		fi
	done
	mkdir -p "$scratch"
	for t in "${targets[@]}"; do
		case $t in
		all) continue ;;
		esac
		# One lock per fixture: processes wanting the same fixture wait for one another, and a
		# test wanting busybox does not wait for debootstrap.
		exec 9>"$FIXTURES_DIR/.lock.$t"
		flock 9
		case $t in
		busybox) build_busybox busybox oci ;;
		busybox-docker) build_busybox busybox-docker docker ;;
		debian) build_debian ;;
		busybox-multi)
			build_busybox_multi
			if [[ $multi_made != 1 ]]; then
				exec 9>&-
				continue
			fi
			;;
		esac
		exec 9>&-
		out+=("$t")
	done
	for t in $(printf '%s\n' "${out[@]}" | sort -u); do
		printf '%s=%s\n' "$t" "$FIXTURES_DIR/$t"
	done
}

# On one line, so a run never reads past it (an edit of this file during a run stays harmless).
main "$@"; exit
