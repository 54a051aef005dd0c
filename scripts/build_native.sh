#!/usr/bin/env bash
# Regenerates the embedded machine code of one native function from its C source:
#
#   allocator     ffi/allocator.c     -> ffi/allocator.ts     (luagate_alloc, the capped lua_Alloc)
#   data_builder  ffi/data_builder.c  -> ffi/data_builder.ts  (luagate_build_data, a lua_CFunction)
#   call_runner   ffi/call_runner.c   -> ffi/call_runner.ts   (luagate_call, in a shared library)
#   fast_lane     ffi/fast_lane.c     -> ffi/fast_lane.ts     (luagate_fast_lane, a lua_CFunction)
#
#   bash scripts/build_native.sh allocator           # print the generated TypeScript block
#   bash scripts/build_native.sh allocator --write   # also replace it in ffi/allocator.ts (between
#                                                    # the "BEGIN GENERATED" / "END GENERATED" markers)
#
# Needs gcc and binutils (x86_64); for aarch64 also `aarch64-linux-gnu-gcc` and
# `aarch64-linux-gnu-objdump` (Debian: apt-get install -y gcc-aarch64-linux-gnu). A missing cross
# compiler is an error, so that a regeneration never silently drops an architecture; pass
# --x86_64-only to accept that.
#
# The allocator, the data builder and the fast lane are raw code: one global function at offset 0 of
# .text (the fast lane has a static one after it, its count hook), no relocations, no data. The call
# runner is a whole shared library (Deno calls a function it got from Deno.dlopen much faster than a
# bare pointer), with no dependencies and no symbol but its entry. The script checks all of that and
# fails otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { echo "usage: $0 allocator|data_builder|call_runner|fast_lane [--write] [--x86_64-only]" >&2; exit 2; }
kind=code
case "${1:-}" in
  allocator) entry=luagate_alloc ;;
  data_builder) entry=luagate_build_data ;;
  call_runner) entry=luagate_call kind=library ;;
  fast_lane) entry=luagate_fast_lane ;;
  *) usage ;;
esac
name=$1
shift
src=ffi/$name.c
ts=ffi/$name.ts
write=0
archs=(x86_64 aarch64)
for arg in "$@"; do
  case "$arg" in
    --write) write=1 ;;
    --x86_64-only) archs=(x86_64) ;;
    *) usage ;;
  esac
done

# Flags shared by all targets: optimise, no stack protector (it would reference a TLS canary / a
# global guard), no CET/BTI landing pads or PAC, no unwind tables, freestanding (no implicit libc
# calls such as memcpy), PIC so that any accidental global access shows up as a relocation.
common=(-O2 -fPIC -fno-plt -ffreestanding -fno-builtin -fno-stack-protector -fno-asynchronous-unwind-tables
  -fno-unwind-tables -fomit-frame-pointer -fno-jump-tables -fno-exceptions -std=c99 -Wall -Wextra -Werror)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

die() { echo "build_native: $*" >&2; exit 1; }

# compile <arch> -> sets $obj and $bin
compile() {
  local arch=$1 cc objdump objcopy extra
  case "$arch" in
    x86_64)
      cc=gcc objdump=objdump objcopy=objcopy extra=(-m64 -march=x86-64 -mtune=generic -fcf-protection=none)
      ;;
    aarch64)
      cc=aarch64-linux-gnu-gcc objdump=aarch64-linux-gnu-objdump objcopy=aarch64-linux-gnu-objcopy
      extra=(-march=armv8-a -mbranch-protection=none -mno-outline-atomics)
      ;;
  esac
  command -v "$cc" >/dev/null || die "$cc not found (see the header of this script)"
  obj="$tmp/$arch.o"
  bin="$tmp/$arch.bin"
  if [ "$kind" = library ]; then
    compile_library "$arch" "$cc" "${extra[@]}"
    return
  fi
  "$cc" "${common[@]}" "${extra[@]}" -c "$src" -o "$obj"

  # No relocations anywhere in the object.
  if "$objdump" -r "$obj" | grep -q 'RELOCATION RECORDS'; then
    "$objdump" -r "$obj" >&2
    die "$arch: the object has relocations"
  fi
  # No allocated section other than .text has contents (.data, .bss, .rodata, ...).
  local name size
  while read -r name size; do
    [ "$name" = .text ] || [ $((16#$size)) = 0 ] || die "$arch: unexpected allocated section $name"
  done < <("$objdump" -h "$obj" | awk '/^ *[0-9]+ /{name=$2; size=$3; getline; if ($0 ~ /ALLOC/) print name, size}')
  # One global function symbol, the entry, at offset 0 of .text (any other is a static function the
  # entry reaches PC-relative, which the relocation check above has proved), and no undefined symbols.
  local syms
  syms=$("$objdump" -t "$obj")
  echo "$syms" | grep -q "^0000000000000000 g *F \\.text.*$entry\$" || die "$arch: $entry is not at .text+0"
  [ "$(echo "$syms" | grep -c ' g  *F ')" = 1 ] || die "$arch: more than one global function"
  if echo "$syms" | grep -q '\*UND\*'; then die "$arch: undefined symbols"; fi

  "$objcopy" -O binary --only-section=.text "$obj" "$bin"
  [ -s "$bin" ] || die "$arch: empty .text"
}

# compile_library <arch> <cc> <flags...> -> $bin: a stripped shared library with small pages (no
# padding to 64 KiB), no NEEDED entries, no undefined symbols, and $entry its only export.
compile_library() {
  local arch=$1 cc=$2 readelf
  shift 2
  case "$arch" in
    x86_64) readelf=readelf ;;
    aarch64) readelf=aarch64-linux-gnu-readelf ;;
  esac
  "$cc" "${common[@]}" "$@" -shared -nostdlib -Wl,-z,max-page-size=4096 -Wl,-z,noseparate-code \
    -Wl,--hash-style=gnu -Wl,--build-id=none -Wl,-z,norelro -s "$src" -o "$bin"
  if "$readelf" -dW "$bin" | grep -q '(NEEDED)'; then die "$arch: the library needs other libraries"; fi
  if "$readelf" -dW "$bin" | grep -q '(TEXTREL)'; then die "$arch: the library has text relocations"; fi
  local symbols
  symbols=$("$readelf" --dyn-syms -W "$bin" | awk '$1 ~ /^[0-9]+:$/ && $8 != "" { print $8, $5, $7 == "UND" ? "undefined" : "defined" }')
  [ "$symbols" = "$entry GLOBAL defined" ] || die "$arch: dynamic symbols other than $entry: $symbols"
}

# The luagate headers $src includes (`#include "name.h"`, beside it in ffi/), in their order.
source_headers() {
  sed -n 's/^#include "\([^"]*\)"$/ffi\/\1/p' "$src"
}

# Prints `const NAME: string = `...`;`: the bytes in base64, 96 characters a line (ffi/native_code.ts
# decodes it, skipping the line breaks). A string literal costs V8 next to nothing to parse, where an
# array literal of the fast lane's 20,000 numbers per architecture took 25 ms of every process's import.
emit_base64() {
  local name=$1 file=$2
  printf 'const %s: string = `\n' "$name"
  base64 -w 96 "$file"
  printf '`;\n'
}

block="$tmp/block.ts"
{
  echo "// BEGIN GENERATED by scripts/build_native.sh from $src. Do not edit by hand."
  # ffi/${name}_test.ts compares this line with the hash of $src followed by the luagate headers it
  # includes (tests/fixtures/native_helpers.ts, assertBuiltFromSource).
  echo "// $name.c sha256: $(cat "$src" $(source_headers) | sha256sum | cut -d' ' -f1)"
  for arch in "${archs[@]}"; do
    compile "$arch"
    case "$arch" in
      x86_64) cc_version=$(gcc --version | head -n 1) ;;
      aarch64) cc_version=$(aarch64-linux-gnu-gcc --version | head -n 1) ;;
    esac
    const=$(echo "CODE_$arch" | tr '[:lower:]' '[:upper:]')
    what=$entry
    [ "$kind" = library ] && what="the library of $entry"
    echo "/** $what for linux $arch ($(stat -c %s "$tmp/$arch.bin") bytes in base64; $cc_version). */"
    emit_base64 "$const" "$tmp/$arch.bin"
  done
  echo "// END GENERATED"
} >"$block"

cat "$block"

if [ "$write" = 1 ]; then
  grep -q '^// BEGIN GENERATED' "$ts" && grep -q '^// END GENERATED' "$ts" || die "$ts has no generated block"
  awk -v blockfile="$block" '
    /^\/\/ BEGIN GENERATED/ { while ((getline line < blockfile) > 0) print line; skip = 1; next }
    /^\/\/ END GENERATED/ { skip = 0; next }
    !skip { print }
  ' "$ts" >"$tmp/$name.ts"
  cp "$tmp/$name.ts" "$ts"
  deno=.tools/bin/deno
  [ -x "$deno" ] || deno=deno
  "$deno" fmt "$ts" >/dev/null 2>&1 || echo "build_native: could not run deno fmt on $ts" >&2
  echo "build_native: updated $ts" >&2
fi
