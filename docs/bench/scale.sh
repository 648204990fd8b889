#!/usr/bin/env bash
# scale.sh: how much memory wasmta needs to hold M queued messages, and how long it takes to
# get them back after a crash. Loopback only.
#
#   1. zonedns on loopback answers example.net MX -> 127.0.0.1, and the relay delivers to a port
#      nobody listens on (DEST_PORT): every first attempt is refused, and retry_interval = 24h
#      keeps the queue still afterwards. The destination is down; all mail stays queued.
#   2. smtp-source (Postfix) injects M messages of SIZE bytes over SESSIONS parallel sessions
#      while the relay's VmRSS is sampled from /proc every 0.5 s.
#   3. RSS is read again once the queue has settled (SETTLE seconds after injection; the relay
#      has nothing to do then), the relay is killed with SIGKILL and started again on the same
#      spool. Recovery time is the time from the exec until `wasmta plugin status` answers over
#      the control socket; the "wasmta started" diagnostics line says how many messages were
#      recovered. RSS is read once more after SETTLE seconds.
#
# Prints a Markdown table. Nothing leaves the machine: every address is 127.0.0.1 and the relay
# resolves only through zonedns (never the machine's resolver).
#
# Usage (as root, from anywhere; `make bench-scale` runs it):
#   docs/bench/scale.sh               # M=1000000 messages of 1 KiB
#   M=200000 docs/bench/scale.sh      # a shorter run
# Environment: M, SIZE (bytes, 1024), SESSIONS (50), SETTLE (seconds, 10), SMTP_PORT (2540),
#   DNS_PORT (5409), DEST_PORT (2599; must be free), GOGC / GOMEMLIMIT (passed to the relay),
#   OUT (a directory for the config, spool and logs; default a new one under /tmp; it is
#   removed unless KEEP=1, since the spool of a million messages takes gigabytes).
# Missing tools come from Debian: postfix (smtp-source), iproute2 (ss).
set -euo pipefail
export LC_ALL=C PATH="$PATH:/usr/sbin:/sbin"

M=${M:-1000000}
SIZE=${SIZE:-1024}
SESSIONS=${SESSIONS:-50}
SETTLE=${SETTLE:-10}
SMTP_PORT=${SMTP_PORT:-2540}
DNS_PORT=${DNS_PORT:-5409}
DEST_PORT=${DEST_PORT:-2599}
KEEP=${KEEP:-0}
LOOP=127.0.0.1 # the only address this script ever talks to
FROM=bench@example.com
RCPT=rcpt@example.net

repo=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/wasmta-scale.XXXXXX)}
mkdir -p "$OUT"

say() { echo "scale: $*" >&2; }
fail() { say "$*"; exit 1; }

for v in M SIZE SESSIONS SETTLE SMTP_PORT DNS_PORT DEST_PORT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || fail "$v=${!v}: not a number"
done
[[ $(id -u) == 0 ]] || fail "run as root: it installs Debian packages"

# ---- tools -------------------------------------------------------------------------------------
need=()
command -v smtp-source >/dev/null || need+=(postfix)
command -v ss >/dev/null || need+=(iproute2)
if ((${#need[@]})); then
	say "installing from Debian: ${need[*]}"
	# "No configuration": the package must not set up (or start) a system-wide Postfix.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
		{ apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
fi
(cd "$repo" && make -s build >/dev/null && go build -o bin/zonedns ./host/testutil/zonedns) >&2

# ---- process bookkeeping: everything started here is stopped by its own PID -------------------
pids=()
cleanup() {
	set +e
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	if [[ $KEEP == 1 ]]; then say "config, spool and logs in $OUT"; else rm -rf "$OUT/data"; say "logs in $OUT"; fi
}
trap cleanup EXIT

listening() { [[ -n $(ss -Htln "src $LOOP:$1") ]]; }
for p in $SMTP_PORT $DEST_PORT; do listening "$p" && fail "port $LOOP:$p is taken"; done

# ---- configuration: the destination is down and nothing retries during the run ----------------
cat >"$OUT/scale.zone" <<EOF
example.net.      300 MX 10 down.example.net.
down.example.net. 300 A  127.0.0.1
EOF
cat >"$OUT/scale.toml" <<EOF
hostname = "scale.localdomain"
watch = false
control_socket = "$OUT/data/wasmta.sock"
wasm_cache = "$OUT/data/wasm-cache"

[spool]
path = "$OUT/data/spool"

[smtp]
listen = ["$LOOP:$SMTP_PORT"]
max_connections_per_ip = 10000  # every smtp-source session comes from 127.0.0.1

[http]
listen = ""

[logs]
dir = "$OUT/data/logs"

[dns]
resolvers = ["$LOOP:$DNS_PORT"]

[delivery]
smtp_port = $DEST_PORT
prohibited_hosts = ["0.0.0.0/8", "::/128"]  # the (absent) destination is on loopback
enable_tls = "Disabled"

[queue]
retry_interval = "24h"

[bounce]
enabled = false
EOF
rm -rf "$OUT/data"
mkdir -p "$OUT/data"

"$repo/bin/zonedns" -listen "$LOOP:$DNS_PORT" -zone "$OUT/scale.zone" >"$OUT/zonedns.log" 2>&1 &
pids+=($!)

# ---- the relay ---------------------------------------------------------------------------------
relay=""
# start_relay LOG: starts wasmta on the config (sets relay to its PID) and polls (bounded, with
# no limit other than the relay staying alive) until the control socket answers.
start_relay() {
	local log=$1
	# shellcheck disable=SC2086
	(cd "$repo" && exec bin/wasmta serve --config "$OUT/scale.toml" --log-level info) >"$log" 2>&1 &
	relay=$!
	pids+=("$relay")
	until "$repo/bin/wasmta" plugin status --config "$OUT/scale.toml" >/dev/null 2>&1; do
		kill -0 "$relay" 2>/dev/null || fail "wasmta exited while starting (see $log)"
		sleep 0.05
	done
}
kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }
now() { date +%s.%N; }
queued_field() { grep -o '"recovered":[0-9]*\|recovered=[0-9]*' "$1" | tail -1 | grep -o '[0-9]*$' || true; }

say "M=$M size=$SIZE sessions=$SESSIONS; $(nproc) CPUs; GOGC=${GOGC:-} GOMEMLIMIT=${GOMEMLIMIT:-}; out $OUT"
start_relay "$OUT/wasmta-1.log"

# ---- injection, with RSS sampled ---------------------------------------------------------------
(while kill -0 "$relay" 2>/dev/null; do echo "$(now) $(kib "$relay" VmRSS)"; sleep 0.5; done) >"$OUT/rss-1.txt" 2>/dev/null &
sampler=$!
pids+=("$sampler")
t0=$(now)
smtp-source -s "$SESSIONS" -m "$M" -l "$SIZE" -f "$FROM" -t "$RCPT" "$LOOP:$SMTP_PORT" >"$OUT/source.log" 2>&1 ||
	fail "smtp-source failed (see $OUT/source.log)"
t1=$(now)
rss_inject=$(kib "$relay" VmRSS)
# A fixed wait is a measurement interval here, not a proof: the relay is idle by then.
sleep "$SETTLE"
rss_settled=$(kib "$relay" VmRSS)
hwm_1=$(kib "$relay" VmHWM)
kill "$sampler" 2>/dev/null || true
rss_peak=$(awk 'BEGIN { m = 0 } $2 > m { m = $2 } END { print m }' "$OUT/rss-1.txt")
((hwm_1 > rss_peak)) && rss_peak=$hwm_1
disk=$(du -sm "$OUT/data/spool" | cut -f1)

# ---- crash and recovery ------------------------------------------------------------------------
kill -9 "$relay"
wait "$relay" 2>/dev/null || true
t2=$(now)
start_relay "$OUT/wasmta-2.log"
t3=$(now)
recovered=$(queued_field "$OUT/wasmta-2.log")
hwm_rec=$(kib "$relay" VmHWM)
sleep "$SETTLE"
rss_rec=$(kib "$relay" VmRSS)

rate=$(awk -v n="$M" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
rec_s=$(awk -v a="$t2" -v b="$t3" 'BEGIN { printf "%.1f", b - a }')
{
	echo "| M | size | injected msg/s | RSS peak during injection | RSS after injection (+${SETTLE}s) | spool on disk | recovery time | recovered | RSS peak in recovery | RSS after recovery (+${SETTLE}s) |"
	echo "|---|---|---|---|---|---|---|---|---|---|"
	echo "| $M | $SIZE B | $rate | $(mib "$rss_peak") MiB | $(mib "$rss_settled") MiB | $disk MiB | $rec_s s | ${recovered:-?} | $(mib "$hwm_rec") MiB | $(mib "$rss_rec") MiB |"
} | tee "$OUT/table.md"
say "RSS at the end of injection: $(mib "$rss_inject") MiB"
[[ ${recovered:-0} == "$M" ]] || say "warning: recovered ${recovered:-?} of $M (see $OUT/wasmta-1.log and $OUT/source.log)"
