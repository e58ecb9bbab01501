#!/usr/bin/env bash
# Starts the example cluster on this machine: two routers, three mail
# services (by hash of account), two match services (master and backup),
# two game services (random and broadcast) and a client. Ctrl-C stops all.
#   bash examples/cluster/run.sh
# With discovery and master leases on Redis:
#   CLUSTER_REDIS=127.0.0.1:6379 bash examples/cluster/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet
LUNA=target/release/luna
export CLUSTER_ROUTERS=${CLUSTER_ROUTERS:-127.0.0.1:7101,127.0.0.1:7102}

pids=()
stop() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap stop EXIT INT TERM

IFS=, read -ra routers <<< "$CLUSTER_ROUTERS"
discovery=()
[ -n "${CLUSTER_REDIS:-}" ] && discovery=(--redis "$CLUSTER_REDIS" --prefix cluster)
for address in "${routers[@]}"; do
    "$LUNA" -m luna.router --listen "$address" "${discovery[@]}" & pids+=($!)
done
sleep 0.5
for id in 2.1 2.2 2.3; do "$LUNA" examples/cluster/mail.lua "$id" & pids+=($!); done
for id in 3.1 3.2; do "$LUNA" examples/cluster/match.lua "$id" & pids+=($!); done
for id in 4.1 4.2; do "$LUNA" examples/cluster/game.lua "$id" & pids+=($!); done
sleep 0.5
"$LUNA" examples/cluster/client.lua 10.1 "$@" & pids+=($!)
echo "cluster running (pids ${pids[*]}); Ctrl-C stops it" >&2
wait
