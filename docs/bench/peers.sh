#!/usr/bin/env bash
# peers.sh: wasmta's whole-relay load harness, beside Postfix, on loopback only.
#
# Three systems receive the same load from Postfix's smtp-source and hand every message to one
# smtp-sink on 127.0.0.1:
#
#   ceiling  smtp-source -> smtp-sink                 what the load generator and sink can do alone
#   postfix  smtp-source -> Postfix -> smtp-sink      Postfix as a relay (its own queue, one fsync
#                                                     per message), relayhost = the sink
#   wasmta   smtp-source -> wasmta -> smtp-sink       wasmta on docs/bench/$BENCH_CONFIG, resolving
#                                                     example.net through zonedns on loopback
#
# For each system: sync(1) (nothing another system left dirty is written back during its runs), an
# unmeasured warm-up, then RUNS runs of N messages; a run's "accepted" rate is
# N over the time smtp-source took, its "delivered" rate N over the time until the sink has counted
# all N, and "CPU ms/msg" the CPU time of the relay's process tree over the run divided by N. The
# table prints the median run of each, with "syscalls/msg": the read and write system calls of
# the relay's process tree (syscr + syscw of /proc/PID/io) over the run divided by N, a count that,
# unlike CPU time, other load on the machine does not inflate. Nothing is sent off the machine: every address is 127.0.0.1,
# and Postfix runs from a private configuration directory with DNS lookups off (the system's
# /etc/postfix is never touched).
#
# Usage (as root, from anywhere; `make bench-peers` runs it):
#   docs/bench/peers.sh                     # N=5000 messages of 4 KiB, 20 sessions, 3 runs each
#   N=20000 RUNS=1 SYSTEMS="wasmta" docs/bench/peers.sh
#   SYSTEMS="ceiling postfix wasmta wasmta:bench-dkim-ed25519.toml wasmta:bench-dkim-rsa.toml" docs/bench/peers.sh
#                                           # wasmta:CONFIG runs wasmta on docs/bench/CONFIG (several in one run)
# Environment: N, SIZE (bytes), SESSIONS, RUNS, WARMUP, SYSTEMS ("ceiling postfix wasmta"),
#   SINK_PORT (2526), POSTFIX_PORT (2527), WASMTA_PORT (2530; must match the config's
#   smtp.listen), DNS_PORT (5399; must match the config's dns.resolvers), BENCH_CONFIG
#   (bench.toml; bench-plugin.toml runs the router plugin on every message), WASMTA_FLAGS (extra
#   flags for `wasmta serve`, e.g. --cpu-profile /tmp/w.prof), OUT (a directory for logs; default
#   a new one under /tmp).
# Missing tools come from Debian: postfix (smtp-source, smtp-sink, postfix), iproute2 (ss).
set -euo pipefail
export LC_ALL=C PATH="$PATH:/usr/sbin:/sbin"

N=${N:-5000}
SIZE=${SIZE:-4096}
SESSIONS=${SESSIONS:-20}
RUNS=${RUNS:-3}
WARMUP=${WARMUP:-500}
SYSTEMS=${SYSTEMS:-"ceiling postfix wasmta"}
SINK_PORT=${SINK_PORT:-2526}
POSTFIX_PORT=${POSTFIX_PORT:-2527}
WASMTA_PORT=${WASMTA_PORT:-2530}
DNS_PORT=${DNS_PORT:-5399}
BENCH_CONFIG=${BENCH_CONFIG:-bench.toml}
WASMTA_FLAGS=${WASMTA_FLAGS:-}
LOOP=127.0.0.1 # the only address this script ever talks to
FROM=bench@example.com
RCPT=rcpt@example.net
HZ=$(getconf CLK_TCK)

repo=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$(mktemp -d /tmp/wasmta-peers.XXXXXX)}
mkdir -p "$OUT"

say() { echo "peers: $*" >&2; }
fail() { say "$*"; exit 1; }

for v in N SIZE SESSIONS RUNS WARMUP SINK_PORT POSTFIX_PORT WASMTA_PORT DNS_PORT; do
	[[ ${!v} =~ ^[0-9]+$ ]] || fail "$v=${!v}: not a number"
done
[[ $(id -u) == 0 ]] || fail "run as root: it installs Debian packages and starts Postfix"

# ---- tools -------------------------------------------------------------------------------------
need=()
command -v smtp-source >/dev/null && command -v smtp-sink >/dev/null && command -v postfix >/dev/null || need+=(postfix)
command -v ss >/dev/null || need+=(iproute2)
if ((${#need[@]})); then
	say "installing from Debian: ${need[*]}"
	# "No configuration": the package must not set up (or start) a system-wide Postfix.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 ||
		{ apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
fi

# ---- process bookkeeping: everything started here is stopped by its own PID -------------------
pids=()
pf_dir=""
cleanup() {
	set +e
	[[ -n $pf_dir && -f $pf_dir/etc/main.cf ]] && postfix -c "$pf_dir/etc" stop >/dev/null 2>&1
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	say "logs in $OUT"
}
trap cleanup EXIT

listening() { [[ -n $(ss -Htln "src $LOOP:$1") ]]; }
# wait_listen PORT WHAT [PID]: bounded poll (30 s) for a listener, failing early if PID died.
wait_listen() {
	local i
	for ((i = 0; i < 300; i++)); do
		listening "$1" && return 0
		[[ -n ${3:-} ]] && ! kill -0 "$3" 2>/dev/null && fail "$2 exited before listening on $LOOP:$1"
		sleep 0.1
	done
	fail "$2 did not listen on $LOOP:$1 within 30 s"
}
for p in $SINK_PORT $POSTFIX_PORT $WASMTA_PORT; do listening "$p" && fail "port $LOOP:$p is taken"; done

# CPU ticks (user + system, children included) of PID and all its descendants. (cat fails when a
# process exits while the glob is read; under pipefail that must not fail the measurement.)
tree_ticks() {
	local root=$1
	# The command name (field 2) may hold spaces: fields are counted after its closing ")".
	{ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$root" '
		{ pid = $1; line = $0; sub(/.*\) /, "", line); split(line, f, " ")
		  parent[pid] = f[2]; ticks[pid] = f[12] + f[13] + f[14] + f[15] }
		END { want[root] = 1; grew = 1
		      while (grew) { grew = 0; for (p in parent) if (!(p in want) && (parent[p] in want)) { want[p] = 1; grew = 1 } }
		      s = 0; for (p in want) s += ticks[p]; print s }'
}

# Read and write system calls (syscr + syscw) of PID and all its descendants.
tree_syscalls() {
	local root=$1 p s=0 v want
	want=$({ cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v root="$root" '
		{ pid = $1; line = $0; sub(/.*\) /, "", line); split(line, f, " "); parent[pid] = f[2] }
		END { want[root] = 1; grew = 1
		      while (grew) { grew = 0; for (p in parent) if (!(p in want) && (parent[p] in want)) { want[p] = 1; grew = 1 } }
		      for (p in want) print p }')
	for p in $want; do
		v=$(awk '/^sysc[rw]:/ { n += $2 } END { print n + 0 }' "/proc/$p/io" 2>/dev/null) || v=0 # it exited
		s=$((s + ${v:-0}))
	done
	echo "$s"
}

# ---- the sink: smtp-sink -c rewrites one status line with \r; its last mesg= is the count -----
smtp-sink -c -u postfix "$LOOP:$SINK_PORT" 256 >"$OUT/sink.out" 2>"$OUT/sink.err" &
sink_pid=$!
pids+=("$sink_pid")
wait_listen "$SINK_PORT" smtp-sink "$sink_pid"
sunk() { tr '\r' '\n' <"$OUT/sink.out" | grep -o 'mesg=[0-9]*' | tail -1 | cut -d= -f2 || true; }
# wait_sunk COUNT: bounded poll until the sink has COUNT messages; gives up after 60 s without progress.
wait_sunk() {
	local last=-1 still=0 got
	while :; do
		got=$(sunk); got=${got:-0}
		((got >= $1)) && return 0
		if ((got == last)); then ((++still > 600)) && { say "stalled at $got of $1"; return 1; }; else still=0; fi
		last=$got
		sleep 0.1
	done
}

# ---- one measured run: run SYSTEM PORT ROOTPID COUNT -> "accepted/s delivered/s cpu_ms/msg syscalls/msg" ----
now() { date +%s.%N; }
run() {
	local sys=$1 port=$2 root=$3 count=$4 base t0 t1 t2 c0 c1 s0=0 s1=0
	base=$(sunk); base=${base:-0}
	c0=0; [[ -n $root ]] && c0=$(tree_ticks "$root") && s0=$(tree_syscalls "$root")
	t0=$(now)
	smtp-source -s "$SESSIONS" -m "$count" -l "$SIZE" -f "$FROM" -t "$RCPT" "$LOOP:$port" >>"$OUT/source-$sys.log" 2>&1 ||
		fail "smtp-source against $sys failed (see $OUT/source-$sys.log)"
	t1=$(now)
	wait_sunk $((base + count)) || fail "$sys did not deliver all $count messages"
	t2=$(now)
	c1=0; [[ -n $root ]] && c1=$(tree_ticks "$root") && s1=$(tree_syscalls "$root")
	awk -v n="$count" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v c="$((c1 - c0))" -v hz="$HZ" -v r="$root" -v sc="$((s1 - s0))" \
		'BEGIN { printf "%.0f %.0f %s %s\n", n / (t1 - t0), n / (t2 - t0), (r == "" ? "-" : sprintf("%.3f", c / hz * 1000 / n)), (r == "" ? "-" : sprintf("%.1f", sc / n)) }'
}
# bench SYSTEM PORT ROOTPID: warm-up, RUNS runs, then one table row from the run with the median delivered rate.
bench() {
	local sys=$1 port=$2 root=$3 i row rows=()
	# What the previous system (or wasmta's build) left dirty in the page cache is written
	# back before this one is measured, so that no system's fsyncs queue behind another's
	# writeback.
	sync
	if ((WARMUP > 0)); then run "$sys" "$port" "$root" "$WARMUP" >/dev/null || exit 1; fi
	for ((i = 1; i <= RUNS; i++)); do
		row=$(run "$sys" "$port" "$root" "$N") || exit 1
		rows+=("$row")
		say "$sys run $i: ${rows[-1]} (accepted/s delivered/s CPU-ms/msg syscalls/msg)"
	done
	printf '%s\n' "${rows[@]}" | sort -k2,2n | sed -n "$(((RUNS + 1) / 2))p" | {
		read -r acc del cpu sc
		printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$4" "$N" "$SIZE" "$SESSIONS" "$acc" "$del" "$cpu" "$sc"
	} >>"$OUT/table.md"
}

# ---- Postfix, from a private configuration and queue directory (sets root to its master PID) ---
postfix_up() {
	pf_dir=/var/tmp/wasmta-peers-postfix # under /var: Postfix accepts log files there
	postfix -c "$pf_dir/etc" stop >/dev/null 2>&1 || true
	rm -rf "$pf_dir"
	mkdir -p "$pf_dir/etc" "$pf_dir/queue" "$pf_dir/data"
	chown postfix "$pf_dir/data" # master's lock file and the TLS caches live there
	cat >"$pf_dir/etc/main.cf" <<-EOF
		# written by wasmta's docs/bench/peers.sh: a loopback relay to smtp-sink, defaults otherwise
		compatibility_level = 3.6
		queue_directory = $pf_dir/queue
		data_directory = $pf_dir/data
		myhostname = postfix.bench.localdomain
		mydestination =
		inet_interfaces = $LOOP
		inet_protocols = ipv4
		mynetworks = 127.0.0.0/8
		smtpd_relay_restrictions = permit_mynetworks, reject
		relayhost = [$LOOP]:$SINK_PORT
		smtp_dns_support_level = disabled
		smtp_host_lookup = native
		smtpd_peername_lookup = no
		alias_maps =
		alias_database =
		smtputf8_enable = no
		maillog_file = $pf_dir/postfix.log
	EOF
	# Debian's services, unchrooted (the private queue has no chroot jail), smtpd on the bench port.
	cat >"$pf_dir/etc/master.cf" <<-EOF
		$LOOP:$POSTFIX_PORT inet n - n - - smtpd
		pickup     unix  n - n 60 1 pickup
		cleanup    unix  n - n -  0 cleanup
		qmgr       unix  n - n 300 1 qmgr
		rewrite    unix  - - n -  - trivial-rewrite
		bounce     unix  - - n -  0 bounce
		defer      unix  - - n -  0 bounce
		trace      unix  - - n -  0 bounce
		verify     unix  - - n -  1 verify
		flush      unix  n - n 1000? 0 flush
		proxymap   unix  - - n -  - proxymap
		smtp       unix  - - n -  - smtp
		relay      unix  - - n -  - smtp
		showq      unix  n - n -  - showq
		error      unix  - - n -  - error
		retry      unix  - - n -  - error
		discard    unix  - - n -  - discard
		anvil      unix  - - n -  1 anvil
		scache     unix  - - n -  1 scache
		postlog    unix-dgram n - n - 1 postlogd
	EOF
	postfix -c "$pf_dir/etc" check >"$OUT/postfix-check.log" 2>&1 || true
	postfix -c "$pf_dir/etc" start >>"$OUT/postfix-check.log" 2>&1 || fail "postfix start failed: $(tail -3 "$pf_dir/postfix.log")"
	wait_listen "$POSTFIX_PORT" postfix
	root=$(tr -d ' \n' <"$pf_dir/queue/pid/master.pid")
}

# ---- wasmta and its DNS server, on loopback (sets root to the wasmta PID) -------------------
# wasmta_up CONFIG: a fresh spool each time; the DKIM configs sign with keys made here.
wasmta_up() {
	local config=$1
	(cd "$repo" && make -s build >/dev/null && go build -o bin/zonedns ./host/testutil/zonedns) >&2
	rm -rf /tmp/wasmta-bench /dev/shm/wasmta-bench # the tmpfs experiment (bench-plugin-tmpfs.toml)
	if grep -q /tmp/wasmta-bench-keys "$repo/docs/bench/$config"; then
		mkdir -p /tmp/wasmta-bench-keys
		[[ -f /tmp/wasmta-bench-keys/ed25519.pem ]] || openssl genpkey -algorithm ed25519 -out /tmp/wasmta-bench-keys/ed25519.pem 2>/dev/null
		[[ -f /tmp/wasmta-bench-keys/rsa2048.pem ]] || openssl genpkey -algorithm rsa -pkeyopt rsa_keygen_bits:2048 -out /tmp/wasmta-bench-keys/rsa2048.pem 2>/dev/null
	fi
	"$repo/bin/zonedns" -listen "$LOOP:$DNS_PORT" -zone "$repo/docs/bench/bench.zone" >"$OUT/zonedns.log" 2>&1 &
	dns_pid=$!
	pids+=("$dns_pid")
	# wasmta reads paths relative to its working directory (the router plugin: bin/plugins/…).
	# shellcheck disable=SC2086
	(cd "$repo" && exec bin/wasmta serve --config "docs/bench/$config" --log-level warn $WASMTA_FLAGS) >"$OUT/wasmta-$config.log" 2>&1 &
	root=$!
	pids+=("$root")
	wait_listen "$WASMTA_PORT" wasmta "$root"
}
# wasmta_down: stop the relay and its DNS server before the next configuration.
wasmta_down() {
	kill "$root" "$dns_pid" 2>/dev/null
	wait "$root" "$dns_pid" 2>/dev/null || true
}

{
	echo "| system | N | size | sessions | accepted msg/s | delivered msg/s | relay CPU ms/msg | relay syscalls/msg |"
	echo "|---|---|---|---|---|---|---|---|"
} >"$OUT/table.md"
say "N=$N size=$SIZE sessions=$SESSIONS runs=$RUNS systems: $SYSTEMS; $(nproc) CPUs; out $OUT"
for sys in $SYSTEMS; do
	case $sys in
	ceiling) bench ceiling "$SINK_PORT" "" "ceiling (smtp-source → smtp-sink)" ;;
	postfix)
		postfix_up
		bench postfix "$POSTFIX_PORT" "$root" "Postfix $(postconf -c "$pf_dir/etc" -h mail_version)"
		postfix -c "$pf_dir/etc" stop >/dev/null 2>&1
		;;
	wasmta | wasmta:*)
		config=$BENCH_CONFIG
		[[ $sys == wasmta:* ]] && config=${sys#wasmta:}
		wasmta_up "$config"
		bench wasmta "$WASMTA_PORT" "$root" "wasmta $(git -C "$repo" describe --always --dirty 2>/dev/null || echo dev) ($config)"
		wasmta_down
		;;
	*) fail "unknown system $sys (ceiling, postfix, wasmta, wasmta:CONFIG)" ;;
	esac
done
cat "$OUT/table.md"
