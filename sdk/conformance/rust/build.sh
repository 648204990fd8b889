#!/usr/bin/env bash
# Builds conformance.wasm next to this script: the conformance plugin (../SPEC.md) written with
# the Rust SDK (../../rust/src/lib.rs). Plain rustc, no cargo, no crates: Debian's rustc 1.63
# with the wasm32 std (apt-get install rustc libstd-rust-dev-wasm32). Two steps: the SDK as an
# rlib in a temporary directory, then the plugin as a cdylib linked against it with LTO.
# The output is deterministic: same sources and rustc, same bytes, wherever the checkout is.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sdk="$(cd "$here/../../rust" && pwd)"
RUSTC=/usr/bin/rustc # not a rustup rustc that may come first on PATH

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp" "$here/.conformance.wasm.tmp"' EXIT

common=(
	--edition 2021 --target wasm32-unknown-unknown
	-C opt-level=s -C panic=abort -C codegen-units=1
	--remap-path-prefix "$sdk=sdk/rust" --remap-path-prefix "$here=sdk/conformance/rust"
	--remap-path-prefix "$tmp=tmp"
)

"$RUSTC" "${common[@]}" --crate-type rlib --crate-name wasmta \
	-o "$tmp/libwasmta.rlib" "$sdk/src/lib.rs"

"$RUSTC" "${common[@]}" --crate-type cdylib --crate-name conformance \
	-C lto -C strip=symbols -C link-arg=-zstack-size=65536 \
	--extern wasmta="$tmp/libwasmta.rlib" \
	-o "$here/.conformance.wasm.tmp" "$here/lib.rs"

# Replace atomically (same directory): the conformance test may be reading the committed file.
chmod 644 "$here/.conformance.wasm.tmp"
mv -f "$here/.conformance.wasm.tmp" "$here/conformance.wasm"
echo "$here/conformance.wasm: $(wc -c <"$here/conformance.wasm") bytes"
