#!/usr/bin/env bash
# Installs what is missing, then runs one task. Called by ./run; see README.md.
set -euo pipefail
root=$(pwd)
deno_version=2.9.6
tools="$root/.tools"
deno_bin="$tools/bin/deno"

log() { printf '[luagate] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

ensure_deno() {
  if [ -x "$deno_bin" ] && "$deno_bin" --version 2>/dev/null | grep -q "^deno $deno_version "; then return; fi
  command -v npm >/dev/null || { log "npm is needed to install Deno $deno_version (apt-get install -y npm)"; exit 1; }
  log "installing Deno $deno_version into .tools/ (npm package deno)"
  mkdir -p "$tools/bin"
  npm install --silent --no-audit --no-fund --prefix "$tools" "deno@$deno_version" >&2
  local real
  real=$(find "$tools/node_modules/@deno" -maxdepth 2 -type f -name deno -perm -u+x | head -n 1)
  [ -n "$real" ] || real="$tools/node_modules/deno/deno"
  ln -sf "$real" "$deno_bin"
  "$deno_bin" --version >&2
}

have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }

# apt-get update, then the packages given
apt_install() {
  log "installing $* with apt-get"
  as_root apt-get update -qq >&2 || true
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

# Debian package per shared library name.
ensure_lua() {
  local missing=()
  for pair in "$@"; do
    local lib=${pair%%=*} pkg=${pair#*=}
    have_lib "$lib" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return
  command -v apt-get >/dev/null || { log "missing ${missing[*]}: install the Lua shared library with your package manager"; exit 1; }
  apt_install "${missing[@]}"
}

# In CI, also the tools that check the native code's aarch64 build against the x86_64 one under qemu
# (tests/fixtures/native_helpers.ts); those tests skip themselves where the tools are missing, so
# this is best effort.
ensure_cross_tools() {
  [ "${CI:-}" = "true" ] || return 0
  local missing=()
  command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(gcc-aarch64-linux-gnu)
  command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
  [ ${#missing[@]} -eq 0 ] && return
  { command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; } || return 0
  apt_install "${missing[@]}" || log "could not install ${missing[*]}"
}

task=${1:-help}
shift || true
case "$task" in
  demo)
    ensure_deno
    ensure_lua "liblua5.4.so.0=liblua5.4-0"
    exec "$deno_bin" run --allow-ffi --allow-env --allow-read examples/demo.ts "$@"
    ;;
  test)
    ensure_deno
    ensure_lua "liblua5.4.so.0=liblua5.4-0" "liblua5.3.so.0=liblua5.3-0" "liblua5.1.so.0=liblua5.1-0" "libluajit-5.1.so.2=libluajit-5.1-2"
    ensure_cross_tools
    exec "$deno_bin" run --allow-all scripts/test.ts "$@"
    ;;
  deno)
    ensure_deno
    exec "$deno_bin" "$@"
    ;;
  *)
    echo "usage: ./run demo | ./run test [--quick] | ./run deno <args>" >&2
    exit 2
    ;;
esac
