#!/usr/bin/env bash
# Builds conformance.wasm (the conformance plugin, ../SPEC.md) from conformance.ts and the
# AssemblyScript SDK (../../assemblyscript/index.ts), next to this script. Deterministic: the
# compiler is pinned by package-lock.json and the output depends only on the sources.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

want=$(node -p 'require("./package-lock.json").packages["node_modules/assemblyscript"].version')
have=$(node -p 'try { require("./node_modules/assemblyscript/package.json").version } catch { "" }')
if [[ ! -x node_modules/.bin/asc || "$have" != "$want" ]]; then
	npm ci --no-audit --no-fund
fi

# --use abort=…: AssemblyScript's default abort is an env.abort import, which the host refuses;
# the SDK's wasmta_abort logs the reason and traps instead.
node_modules/.bin/asc conformance.ts \
	-O3 --runtime incremental \
	--use abort=../../assemblyscript/index/wasmta_abort \
	-o conformance.wasm.tmp

# A plugin may import only module "wasmta" (and a few WASI functions, which this one does not need).
node -e '
const fs = require("fs");
const bad = WebAssembly.Module.imports(new WebAssembly.Module(fs.readFileSync(process.argv[1])))
  .filter((i) => i.module !== "wasmta");
if (bad.length) { console.error("unexpected imports:", bad); process.exit(1); }
' conformance.wasm.tmp
mv conformance.wasm.tmp conformance.wasm
echo "conformance.wasm: $(wc -c <conformance.wasm) bytes"
