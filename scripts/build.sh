#!/usr/bin/env bash
# Configures (if needed) and builds currant.
#
#   BUILD_DIR  build directory, relative to the repository root or absolute
#              (default: build)
#
# A missing or never-configured build directory gets
# `meson setup --buildtype=release`. An existing one is reconfigured only
# when its configuration is unusable (setup died before writing build.ninja,
# or it was made by another meson version); otherwise ninja's own
# regeneration rule picks up edited meson.build files. A build directory
# configured by hand with other options keeps them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
build_dir=${BUILD_DIR:-build}

configured_meson_version() {
  # meson-info.json holds {"meson_version": {"full": "1.0.1", ...}, ...}
  local info=$build_dir/meson-info/meson-info.json
  [[ -f $info ]] || return 0
  sed -n 's/.*"meson_version": *{[^}]*"full": *"\([^"]*\)".*/\1/p' "$info"
}

if [[ ! -f $build_dir/meson-private/coredata.dat ]]; then
  meson setup "$build_dir" --buildtype=release
elif [[ ! -f $build_dir/build.ninja ]] ||
     [[ $(configured_meson_version) != "$(meson --version)" ]]; then
  meson setup --reconfigure "$build_dir"
fi

ninja -C "$build_dir"
