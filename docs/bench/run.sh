#!/usr/bin/env bash
# Runs ../shared/bench/peers.sh with wasmta as the third system beside Postfix (and the
# smtp-source -> smtp-sink ceiling), as docs/performance.md records. Extra arguments go to
# peers.sh, e.g.  docs/bench/run.sh -n 2000 -R 1
# BENCH_CONFIG=bench-plugin.toml runs wasmta with the router plugin on every message.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
shared=${SHARED:-$root/../shared}
cd "$root"
make build >/dev/null
go build -o bin/zonedns ./host/testutil/zonedns
rm -rf /tmp/wasmta-bench
bin/zonedns -listen 127.0.0.1:5399 -zone docs/bench/bench.zone &
dns=$!
trap 'kill $dns 2>/dev/null' EXIT
export RELAY_NAME=wasmta RELAY_PORT=2530
export RELAY_CMD="cd $root && exec bin/wasmta serve --config $root/docs/bench/${BENCH_CONFIG:-bench.toml} --log-level warn ${WASMTA_FLAGS:-}"
cd "$shared/bench"
SYSTEMS=${SYSTEMS:-"sink postfix relay"} ./peers.sh "$@"
