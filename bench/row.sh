#!/usr/bin/env bash
# One row of bench/run.sh, quickly, for an A/B of a setting: oha ($C
# connections, 32 unless set, 10 s after a 0.5 s warm-up) -> switchyard (release, CPU 1,
# SQLite, a key with limits and a budget, prices) -> bench-mock (CPU 0).
# Prints req/s, p50/p99/p99.9, the proxy's CPU per request (user and system apart), and the spool
# bytes and paced requests it reports at the end.
#
# usage: bench/row.sh ["<lines for [logs]>"] [MODEL] [PATH]
#   bench/row.sh                                   # chat, defaults
#   bench/row.sh "backlog_bytes = 0"               # chat, pacing off
#   bench/row.sh "" mockoai/gpt-4o /v1/responses   # Responses API, store on
#   C=1 bench/row.sh                               # one connection
#   STREAM=1 bench/row.sh "" mockoai/gpt-4o /v1/messages
#                                                  # ant-to-oai 20-chunk stream
# Needs the release build (bench/run.sh builds it) and oha
# (~/.cache/switchyard-tools/bin/oha, as bench/run.sh installs it).
set -euo pipefail
EXTRA=${1:-}
MODEL=${2:-mockoai/gpt-4o}
PATH_=${3:-/v1/chat/completions}
C=${C:-32}
STREAM=${STREAM:-0}
BIN=${CARGO_TARGET_DIR:-target}/release
OHA=${OHA:-$HOME/.cache/switchyard-tools/bin/oha}
W=$(mktemp -d)
mkdir -p $W/spool
taskset -c 0 $BIN/bench-mock --listen 127.0.0.1:19600 --chunks 20 >/dev/null 2>&1 &
MP=$!
cat > $W/sy.toml <<T
[server]
listen = "127.0.0.1:19601"
admin_listen = "127.0.0.1:19602"
[storage]
url = "sqlite://$W/switchyard.db"
[auth]
require_keys = true
[[providers]]
name = "mockoai"
kind = "openai-compatible"
base_url = "http://127.0.0.1:19600/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
models = ["gpt-4o"]
responses = true
[[providers]]
name = "mockant"
kind = "anthropic"
base_url = "http://127.0.0.1:19600/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
models = ["claude-sonnet-4-5"]
[logs]
spool_dir = "$W/spool"
$EXTRA
[pricing."mockoai/gpt-4o"]
input_per_mtok_usd = 2.5
output_per_mtok_usd = 10.0
[pricing."mockant/claude-sonnet-4-5"]
input_per_mtok_usd = 3.0
output_per_mtok_usd = 15.0
T
export BENCH_UPSTREAM_KEY=x SWITCHYARD_ADMIN_TOKEN=bench-admin-token-12345678
(cd $W && $BIN/switchyard keys create --config $W/sy.toml --name b --models 'mockoai/*,mockant/*' --rpm 100000000 --tpm 100000000000 --budget-usd 1000000 --budget-period total) > $W/key.json 2>/dev/null
KEY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' $W/key.json)
(cd $W && taskset -c 1 $BIN/switchyard serve --config $W/sy.toml > $W/sy.log 2>&1) &
for i in $(seq 50); do curl -sf http://127.0.0.1:19601/readyz >/dev/null && break; sleep 0.1; done
SP=$(pgrep -f "serve --config $W/sy.toml" | head -1)
S=$([[ $STREAM == 1 ]] && echo true || echo false)
if [[ $PATH_ == /v1/responses ]]; then
  BODY='{"model":"'$MODEL'","instructions":"You are terse.","input":"Say hello in five words.","max_output_tokens":256,"temperature":0.2,"stream":'$S'}'
elif [[ $PATH_ == /v1/messages ]]; then
  BODY='{"model":"'$MODEL'","system":"You are terse.","messages":[{"role":"user","content":"Say hello in five words."}],"max_tokens":256,"temperature":0.2,"stream":'$S'}'
else
  BODY='{"model":"'$MODEL'","messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Say hello in five words."}],"max_tokens":256,"temperature":0.2,"stream":'$S'}'
fi
taskset -c 0 $OHA --no-tui --output-format json --worker-threads 1 -m POST -T application/json -d "$BODY" -H "authorization: Bearer $KEY" -H "anthropic-version: 2023-06-01" -c $C -z 500ms -w http://127.0.0.1:19601$PATH_ > /dev/null
t0=$(awk '{print $14, $15}' /proc/$SP/stat)
taskset -c 0 $OHA --no-tui --output-format json --worker-threads 1 -m POST -T application/json -d "$BODY" -H "authorization: Bearer $KEY" -H "anthropic-version: 2023-06-01" -c $C -z 10s -w http://127.0.0.1:19601$PATH_ > $W/oha.json
t1=$(awk '{print $14, $15}' /proc/$SP/stat)
python3 - $W/oha.json $t0 $t1 <<'P'
import json,sys
d=json.load(open(sys.argv[1])); s=d['summary']; p=d['latencyPercentiles']
n=sum(v for k,v in d['statusCodeDistribution'].items())
# utime and stime in clock ticks (100 a second) before and after.
u0, s0, u1, s1 = map(int, sys.argv[2:6])
user, system = (u1 - u0) * 10000 / n, (s1 - s0) * 10000 / n
print(f"req/s {s['requestsPerSec']:.0f} p50 {p['p50']*1000:.2f} ms p99 {p['p99']*1000:.2f} ms p99.9 {p['p99.9']*1000:.2f} ms cpu {user + system:.0f} us/req (user {user:.1f} sys {system:.1f}) codes {d['statusCodeDistribution']}")
P
curl -s http://127.0.0.1:19601/metrics | grep -E "^switchyard_requests_paced_total|^switchyard_spool_bytes" || true
kill $SP $MP 2>/dev/null; wait 2>/dev/null || true
rm -rf $W
