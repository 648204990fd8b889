#!/usr/bin/env bash
# Builds conformance.wasm from the hand-written conformance.wat (needs wabt's wat2wasm).
set -euo pipefail
cd "$(dirname "$0")"
wat2wasm conformance.wat -o conformance.wasm
