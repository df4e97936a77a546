#!/usr/bin/env bash
# Installs the Debian 12 packages currant needs to build and test.
#
# Idempotent: every package is checked with dpkg-query first, and apt-get
# (including `apt-get update`) runs only when something is missing, so an
# up-to-date machine does no network access. Run as root (or with sudo
# available). Prints exactly one line saying what it did; apt's own output
# is kept in a log and shown only if apt fails.
set -euo pipefail

packages=(
  build-essential g++ pkg-config meson ninja-build clang libclang-rt-dev
  libboost-dev libpq-dev libcli11-dev catch2 libbenchmark-dev
  python3-dev python3-pybind11 python3-mesonpy python3-pytest python3-pip patchelf
  postgresql
  chromium
)

is_installed() {
  local status
  status=$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) || return 1
  # "install ok installed" or "hold ok installed"; anything else
  # (half-installed, config-files, not-installed) counts as missing.
  [[ $status == *" ok installed" ]]
}

missing=()
for p in "${packages[@]}"; do
  is_installed "$p" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: nothing to install (all ${#packages[@]} packages present)"
  exit 0
fi

sudo=()
if ((EUID != 0)); then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "install-deps: missing ${missing[*]}; run this script as root" >&2
    exit 1
  fi
fi

log=$(mktemp "${TMPDIR:-/tmp}/install-deps.XXXXXX.log")
run_apt() {
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "$@" >>"$log" 2>&1; then
    echo "install-deps: '$*' failed; its output:" >&2
    cat "$log" >&2
    rm -f "$log"
    exit 1
  fi
}

run_apt apt-get update
run_apt apt-get install -y --no-install-recommends "${missing[@]}"
rm -f "$log"

still=()
for p in "${missing[@]}"; do
  is_installed "$p" || still+=("$p")
done
if ((${#still[@]} != 0)); then
  echo "install-deps: apt-get finished but these are still not installed: ${still[*]}" >&2
  exit 1
fi

echo "install-deps: installed ${missing[*]}"
