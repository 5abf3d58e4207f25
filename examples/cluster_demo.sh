#!/usr/bin/env bash
# The demo of `make demo`: a local cluster (a master and 2 agents on loopback ports), a workflow
# spread over the agents, the agents, the results and a metrics summary; then the cluster stops.
# KEEP=1 leaves it running to look further (stop it with `slothlab down`).
set -euo pipefail
cd "$(dirname "$0")/.."
SLOTHLAB="${SLOTHLAB:-.venv/bin/slothlab}"
KEEP="${KEEP:-0}"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# Heartbeats (which carry each agent's metrics to the master's history) every 2 s instead of 10,
# so the summary below has samples within seconds; any setting can be set this way.
export SLOTHLAB_MASTER_HEARTBEAT_INTERVAL_S="${SLOTHLAB_MASTER_HEARTBEAT_INTERVAL_S:-2}"

step "1. start a local cluster: slothlab up --agents 2"
"$SLOTHLAB" up --agents 2
if [ "$KEEP" != 1 ]; then
    trap 'step "5. stop it: slothlab down"; "$SLOTHLAB" down' EXIT
fi

step "2. the agents: slothlab agents list"
"$SLOTHLAB" agents list

step "3. a workflow spread over them: slothlab run examples/cluster_demo.lua"
"$SLOTHLAB" run examples/cluster_demo.lua
"$SLOTHLAB" exec agent-2 -- echo "and a one-off command on agent-2: slothlab exec agent-2 -- ..."

step "4. metrics the agents reported, from the master's history: slothlab query ..."
for _ in $(seq 1 40); do  # the first heartbeats reach the history within a few seconds
    n="$("$SLOTHLAB" query --json "select count(distinct host) as n from samples" | tr -dc '0-9')"
    [ "${n:-0}" -ge 2 ] && break
    sleep 0.5
done
"$SLOTHLAB" query "select host, metric, count(*) as samples, round(avg(value), 3) as mean,
    round(max(value), 3) as peak from samples
    where metric in ('slothlab_cpu_usage_ratio', 'slothlab_memory_usage_ratio', 'slothlab_load1')
    group by host, metric order by host, metric"

MASTER="$("$SLOTHLAB" status --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["master_url"])')"
cat <<EOF

Look further (while the cluster runs; \`make demo KEEP=1\` leaves it up):
  master API    $MASTER  (OpenAPI: $MASTER/docs; the token is in the file \`slothlab up\` named)
  slothlab agents list · slothlab exec agent-1 -- uname -a · slothlab tasks get ID · slothlab logs ID
  slothlab run examples/cluster_demo.lua · slothlab run FILE -d agent-2 · slothlab down
EOF
