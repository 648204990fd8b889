#!/usr/bin/env bash
# Builds a wasmta plugin written with the Rust SDK: build-plugin.sh plugin.rs out.wasm
#
# Plain rustc, no cargo, no crates (Debian: apt-get install rustc libstd-rust-dev-wasm32).
# Step 1 compiles the SDK (src/lib.rs, crate `wasmta`) to an rlib in a temporary directory;
# step 2 compiles the plugin as a cdylib against it with LTO. RUSTC overrides the compiler
# (default /usr/bin/rustc, Debian's 1.63; any rustc >= 1.63 with the wasm32-unknown-unknown
# target works). Extra arguments after OUT go to both rustc calls (e.g. --cfg wasmta_panic_message).
set -euo pipefail

if [ $# -lt 2 ]; then
	echo "usage: $0 plugin.rs out.wasm [rustc args...]" >&2
	exit 2
fi
src="$1"
out="$2"
shift 2
sdk="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUSTC="${RUSTC:-/usr/bin/rustc}"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

common=(--edition 2021 --target wasm32-unknown-unknown -C opt-level=s -C panic=abort -C codegen-units=1
	--remap-path-prefix "$sdk=wasmta" "$@")

"$RUSTC" "${common[@]}" --crate-type rlib --crate-name wasmta -o "$tmp/libwasmta.rlib" "$sdk/src/lib.rs"
"$RUSTC" "${common[@]}" --crate-type cdylib --crate-name plugin -C lto -C strip=symbols -C link-arg=-zstack-size=65536 \
	--extern wasmta="$tmp/libwasmta.rlib" -o "$out" "$src"
echo "$out: $(wc -c <"$out") bytes"
