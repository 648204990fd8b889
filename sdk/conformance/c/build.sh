#!/usr/bin/env bash
# Builds conformance.wasm next to this script with the C SDK (sdk/c/wasmta.h): clang-14 +
# wasm-ld-14 (Debian: apt-get install clang-14 lld-14), freestanding, no libc, Wasm 1.0 (mvp).
# The output is deterministic: same toolchain, same bytes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
CLANG="${CLANG:-clang-14}"
export PATH="/usr/lib/llvm-14/bin:$PATH" # where Debian's clang-14 finds wasm-ld

"$CLANG" --target=wasm32 -mcpu=mvp -O2 -nostdlib -ffreestanding \
	-Wall -Wextra -Werror \
	-I ../../c \
	-Wl,--no-entry -Wl,-z,stack-size=65536 \
	-o conformance.wasm.tmp conformance.c
chmod 644 conformance.wasm.tmp # clang marks it executable; it is data
mv conformance.wasm.tmp conformance.wasm
echo "built $(pwd)/conformance.wasm ($(wc -c <conformance.wasm) bytes)"
