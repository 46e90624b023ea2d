#!/usr/bin/env bash
# Switchyard's benchmark against the physical floor (issue 7).
#
# One run measures, on loopback, with oha as the load generator:
#   direct   oha -> bench-mock                       (what the upstream costs)
#   floor    oha -> bench-floor -> bench-mock        (a minimal hyper 1 proxy)
#   nginx    oha -> nginx (1 worker) -> bench-mock   (if nginx is installed)
#   switchyard oha -> switchyard (release) -> bench-mock, with keys, limits,
#            a budget, pricing and the default log mode on, same-dialect,
#            cross-dialect both ways, a cache hit, the Responses API (native
#            and translated to Anthropic) and a read through the tool proxy
# non-streaming and streaming (20 back-to-back chunks), at 1 and 32
# connections. oha and the mock are pinned to CPU 0, the proxy under test to
# CPU 1. Per row: latency p50/p99, time to first byte, requests/s, the proxy's
# CPU time per request (utime+stime from /proc/<pid>/stat over the run), and
# its RSS. Results: bench/results/latest.{md,json}.
#
# Usage: bench/run.sh [--smoke] [--duration SECONDS] [--out DIR] [--keep] [--no-build]
#   --smoke       1-2 minutes: 2 s per row, fewer cases
#   --duration S  seconds per row (default 10; 2 with --smoke)
#   --out DIR     where latest.md / latest.json go (default bench/results)
#   --keep        keep the temporary directory (configs, logs, raw oha JSON)
#   --no-build    use the release binaries already built (no cargo build)
# Environment: CARGO_TARGET_DIR (where the release build goes; default
# target/), BENCH_PORT_BASE (first of the loopback ports used; default 19400),
# OHA (path to oha; else PATH, else ~/.cache/switchyard-tools/bin/oha, else
# `cargo install oha --locked` into ~/.cache/switchyard-tools).
set -euo pipefail

die() {
    echo "bench/run.sh: error: $*" >&2
    exit 1
}
note() { echo "bench/run.sh: $*" >&2; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ARGS_GIVEN="$*"
MODE=full
DURATION=""
OUT="$ROOT/bench/results"
KEEP=0
BUILD=1
while [[ $# -gt 0 ]]; do
    case "$1" in
    --smoke) MODE=smoke ;;
    --duration)
        [[ $# -ge 2 ]] || die "--duration needs a value"
        DURATION=$2
        shift
        ;;
    --out)
        [[ $# -ge 2 ]] || die "--out needs a value"
        OUT=$2
        shift
        ;;
    --keep) KEEP=1 ;;
    --no-build) BUILD=0 ;;
    -h | --help)
        sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
if [[ -z "$DURATION" ]]; then
    if [[ $MODE == smoke ]]; then DURATION=2; else DURATION=10; fi
fi
[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 1 ]] || die "--duration must be a whole number of seconds >= 1"
RUN_STARTED=$(date +%s)

# ---------------------------------------------------------------- tools
for tool in curl python3 taskset cargo; do
    command -v "$tool" >/dev/null || die "'$tool' is required and not installed"
done
TOOLS_ROOT="$HOME/.cache/switchyard-tools"
if [[ -z "${OHA:-}" ]]; then
    if command -v oha >/dev/null; then
        OHA=$(command -v oha)
    elif [[ -x "$TOOLS_ROOT/bin/oha" ]]; then
        OHA="$TOOLS_ROOT/bin/oha"
    else
        note "oha not found: installing it (cargo install oha --locked --root $TOOLS_ROOT; a few minutes, once)"
        cargo install oha --locked --root "$TOOLS_ROOT" >&2 || die "cargo install oha failed"
        OHA="$TOOLS_ROOT/bin/oha"
    fi
fi
[[ -x "$OHA" ]] || die "oha at '$OHA' is not executable"
"$OHA" --help | grep -q -- '--output-format' || die "this oha ($("$OHA" --version)) has no --output-format; use oha >= 1.5"
NGINX=$(command -v nginx || true)
[[ -n "$NGINX" ]] || { [[ -x /usr/sbin/nginx ]] && NGINX=/usr/sbin/nginx; } || true

NCPU=$(nproc)
if [[ $NCPU -ge 2 ]]; then
    CPU_LOAD=0
    CPU_PROXY=1
    PINNING="load generator + mock on CPU 0, proxy under test on CPU 1"
else
    CPU_LOAD=0
    CPU_PROXY=0
    PINNING="ONE CPU ONLY: load generator, mock and proxy share CPU 0 (numbers are not comparable with 2-core runs)"
    note "warning: $PINNING"
fi

# ---------------------------------------------------------------- build
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ $BUILD == 1 ]]; then
    note "building release binaries (switchyard, bench-mock, bench-floor) into $TARGET_DIR"
    (cd "$ROOT" && cargo build --release --locked -p switchyard -p switchyard-bench --bins) >&2 ||
        die "cargo build --release failed"
fi
BIN="$TARGET_DIR/release"
for b in switchyard bench-mock bench-floor; do
    [[ -x "$BIN/$b" ]] || die "missing binary $BIN/$b after the build"
done

# ---------------------------------------------------------------- processes
WORK=$(mktemp -d "${TMPDIR:-/tmp}/switchyard-bench.XXXXXX")
PIDS=()
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ $KEEP == 1 || $rc != 0 ]]; then
        note "temporary files (configs, logs, raw oha output) kept in $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

PORT_BASE=${BENCH_PORT_BASE:-19400}
MOCK_PORT=$PORT_BASE
PACED_PORT=$((PORT_BASE + 1))
FLOOR_PORT=$((PORT_BASE + 2))
NGINX_PORT=$((PORT_BASE + 3))
SY_PORT=$((PORT_BASE + 4))
SY_ADMIN_PORT=$((PORT_BASE + 5))
FLOOR_PACED_PORT=$((PORT_BASE + 6))
for p in $MOCK_PORT $PACED_PORT $FLOOR_PORT $NGINX_PORT $SY_PORT $SY_ADMIN_PORT $FLOOR_PACED_PORT; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
        die "port $p on 127.0.0.1 is already in use (set BENCH_PORT_BASE to move the range)"
    fi
done

# Starts a command in the background with its output in $WORK/NAME.log; its
# pid is left in LAST_PID (not printed: a $(...) subshell would lose track).
LAST_PID=""
start() {
    local name=$1
    shift
    "$@" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# wait_http NAME PID CHECK... : runs CHECK until it succeeds (30 s at most).
wait_ready() {
    local name=$1 pid=$2
    shift 2
    local i
    for i in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 30 "$WORK/$name.log" >&2 || true
            die "$name exited during start-up (log above, $WORK/$name.log)"
        fi
        if "$@" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    tail -n 30 "$WORK/$name.log" >&2 || true
    die "$name did not become ready within 30 s (log above)"
}

post_ok() { # URL BODYFILE [curl args...]: POST, expect 200
    local url=$1 body=$2
    shift 2
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'content-type: application/json' "$@" --data-binary "@$body" "$url") == 200 ]]
}

# ---------------------------------------------------------------- request bodies
B=$WORK/bodies
mkdir -p "$B"
SYSTEM="You are a concise assistant. Answer in one sentence and do not use lists."
USER="Summarise the plot of Hamlet in one sentence for a reader who has not seen the play."
openai_body() { # MODEL STREAM
    local stream=""
    [[ $2 == 1 ]] && stream=',"stream":true,"stream_options":{"include_usage":true}'
    printf '{"model":"%s","messages":[{"role":"system","content":"%s"},{"role":"user","content":"%s"}],"max_tokens":256,"temperature":0.2%s}' \
        "$1" "$SYSTEM" "$USER" "$stream"
}
anthropic_body() { # MODEL STREAM
    local stream=""
    [[ $2 == 1 ]] && stream=',"stream":true'
    printf '{"model":"%s","max_tokens":256,"system":"%s","messages":[{"role":"user","content":"%s"}],"temperature":0.2%s}' \
        "$1" "$SYSTEM" "$USER" "$stream"
}
responses_body() { # MODEL STREAM
    local stream=""
    [[ $2 == 1 ]] && stream=',"stream":true'
    printf '{"model":"%s","instructions":"%s","input":"%s","max_output_tokens":256,"temperature":0.2%s}' \
        "$1" "$SYSTEM" "$USER" "$stream"
}
for s in 0 1; do
    responses_body gpt-4o $s >"$B/resp-direct-$s.json"
    responses_body mockoai/gpt-4o $s >"$B/resp-same-$s.json"
    responses_body mockant/claude-sonnet-4-5 $s >"$B/resp-to-ant-$s.json"
    openai_body gpt-4o $s >"$B/oai-direct-$s.json"
    anthropic_body claude-sonnet-4-5 $s >"$B/ant-direct-$s.json"
    openai_body mockoai/gpt-4o $s >"$B/oai-same-$s.json"
    openai_body mockant/claude-sonnet-4-5 $s >"$B/oai-to-ant-$s.json"
    anthropic_body mockoai/gpt-4o $s >"$B/ant-to-oai-$s.json"
done

# ---------------------------------------------------------------- start everything
CHUNKS=20
note "mode $MODE, $DURATION s per row; $PINNING; work dir $WORK"
start mock taskset -c $CPU_LOAD "$BIN/bench-mock" --listen 127.0.0.1:$MOCK_PORT --chunks $CHUNKS
MOCK_PID=$LAST_PID
wait_ready mock "$MOCK_PID" post_ok "http://127.0.0.1:$MOCK_PORT/v1/chat/completions" "$B/oai-direct-0.json"
PACED_DELAY_US=1000
if [[ $MODE == full ]]; then
    start mock-paced taskset -c $CPU_LOAD "$BIN/bench-mock" --listen 127.0.0.1:$PACED_PORT --chunks $CHUNKS --chunk-delay-us $PACED_DELAY_US
    PACED_PID=$LAST_PID
    wait_ready mock-paced "$PACED_PID" post_ok "http://127.0.0.1:$PACED_PORT/v1/chat/completions" "$B/oai-direct-0.json"
fi

start floor taskset -c $CPU_PROXY "$BIN/bench-floor" --listen 127.0.0.1:$FLOOR_PORT --upstream 127.0.0.1:$MOCK_PORT
FLOOR_PID=$LAST_PID
wait_ready floor "$FLOOR_PID" post_ok "http://127.0.0.1:$FLOOR_PORT/v1/chat/completions" "$B/oai-direct-0.json"

NGINX_PIDS=""
NGINX_VERSION=""
if [[ -n "$NGINX" ]]; then
    NGINX_VERSION=$("$NGINX" -v 2>&1 | sed 's/^nginx version: //')
    N=$WORK/nginx
    mkdir -p "$N/tmp"
    upstream_block() { # NAME PORT
        printf '    upstream %s {\n        server 127.0.0.1:%s;\n        keepalive 64;\n    }\n' "$1" "$2"
    }
    {
        cat <<EOF
worker_processes 1;
daemon off;
pid $N/nginx.pid;
error_log $N/error.log warn;
events {
    worker_connections 4096;
}
http {
    access_log off;
    client_body_temp_path $N/tmp/body;
    proxy_temp_path $N/tmp/proxy;
    fastcgi_temp_path $N/tmp/fastcgi;
    uwsgi_temp_path $N/tmp/uwsgi;
    scgi_temp_path $N/tmp/scgi;
    keepalive_requests 1000000;
    tcp_nodelay on;
EOF
        upstream_block mock $MOCK_PORT
        upstream_block paced $PACED_PORT
        cat <<EOF
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location /paced/ {
            proxy_pass http://paced/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
        location / {
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
        }
    }
}
EOF
    } >"$N/nginx.conf"
    "$NGINX" -t -q -c "$N/nginx.conf" -p "$N" -e "$N/error.log" >"$WORK/nginx-check.log" 2>&1 ||
        { cat "$WORK/nginx-check.log" >&2; die "nginx rejected its configuration"; }
    start nginx taskset -c $CPU_PROXY "$NGINX" -c "$N/nginx.conf" -p "$N" -e "$N/error.log"
    NGINX_MASTER=$LAST_PID
    wait_ready nginx "$NGINX_MASTER" post_ok "http://127.0.0.1:$NGINX_PORT/v1/chat/completions" "$B/oai-direct-0.json"
    NGINX_PIDS="$NGINX_MASTER $(pgrep -P "$NGINX_MASTER" | tr '\n' ' ')"
else
    note "nginx is not installed: its rows are skipped (Debian: apt-get install -y nginx-light)"
fi

SYD=$WORK/switchyard
mkdir -p "$SYD/spool"
cat >"$SYD/switchyard.toml" <<EOF
# Switchyard as a user would run it: keys required, a key with limits and a
# budget, prices for the models (cost tracking), default log mode, cache on
# request.
[server]
listen = "127.0.0.1:$SY_PORT"
admin_listen = "127.0.0.1:$SY_ADMIN_PORT"

[storage]
url = "sqlite://$SYD/switchyard.db"

[auth]
require_keys = true

[[providers]]
name = "mockoai"
kind = "openai-compatible"
base_url = "http://127.0.0.1:$MOCK_PORT/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
models = ["gpt-4o"]
responses = true

[[providers]]
name = "mockant"
kind = "anthropic"
base_url = "http://127.0.0.1:$MOCK_PORT/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
models = ["claude-sonnet-4-5"]

[[providers]]
name = "pacedoai"
kind = "openai-compatible"
base_url = "http://127.0.0.1:$PACED_PORT/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
models = ["gpt-4o"]

[[tools]]
name = "bench"
base_url = "http://127.0.0.1:$MOCK_PORT"
auth = { header = "Authorization", value_env = "BENCH_TOOL_TOKEN", prefix = "Bearer " }

[cache]
max_entries = 100000

[logs]
spool_dir = "$SYD/spool"

[pricing."mockoai/gpt-4o"]
input_per_mtok_usd = 2.5
output_per_mtok_usd = 10.0
cached_input_per_mtok_usd = 1.25

[pricing."pacedoai/gpt-4o"]
input_per_mtok_usd = 2.5
output_per_mtok_usd = 10.0

[pricing."mockant/claude-sonnet-4-5"]
input_per_mtok_usd = 3.0
output_per_mtok_usd = 15.0
cached_input_per_mtok_usd = 0.3
EOF
export BENCH_UPSTREAM_KEY=sk-bench-upstream-not-a-secret
export BENCH_TOOL_TOKEN=ghp-bench-tool-not-a-secret
export SWITCHYARD_ADMIN_TOKEN="bench-admin-token-$RANDOM$RANDOM$RANDOM" # unused, but must be set (>= 16 characters)
SY_VERSION=$("$BIN/switchyard" --version)
"$BIN/switchyard" check-config "$SYD/switchyard.toml" >"$WORK/check-config.log" 2>&1 ||
    { cat "$WORK/check-config.log" >&2; die "switchyard check-config refused the benchmark configuration"; }
(cd "$SYD" && "$BIN/switchyard" keys create --config "$SYD/switchyard.toml" --name bench \
    --models 'mockoai/*,mockant/*,pacedoai/*' --tools bench --rpm 100000000 --tpm 100000000000 \
    --budget-usd 1000000 --budget-period total) >"$SYD/key.json" 2>"$WORK/keys.log" ||
    { cat "$WORK/keys.log" >&2; die "switchyard keys create failed"; }
SY_KEY=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["key"])' "$SYD/key.json") ||
    die "no key in the output of 'switchyard keys create': $(cat "$SYD/key.json")"
start switchyard env -C "$SYD" taskset -c $CPU_PROXY "$BIN/switchyard" serve --config "$SYD/switchyard.toml"
SY_PID=$LAST_PID
wait_ready switchyard "$SY_PID" curl -sf --max-time 2 "http://127.0.0.1:$SY_PORT/healthz"
wait_ready switchyard "$SY_PID" curl -sf --max-time 2 "http://127.0.0.1:$SY_PORT/readyz"
SY_AUTH=(-H "authorization: Bearer $SY_KEY")
ANT_HDR=(-H "anthropic-version: 2023-06-01")

# Checks one Switchyard answer before measuring a case: status, headers, end of body.
sy_check() { # NAME PATH BODY(file, or GET) EXPECT_TAIL [curl args]
    local name=$1 path=$2 body=$3 tail=$4
    shift 4
    local hdr="$WORK/check-$name.headers" out="$WORK/check-$name.body" code
    local -a send=(-H 'content-type: application/json' --data-binary "@$body")
    [[ $body == GET ]] && send=()
    code=$(curl -s -D "$hdr" -o "$out" -w '%{http_code}' --max-time 10 \
        "${SY_AUTH[@]}" "$@" "${send[@]}" "http://127.0.0.1:$SY_PORT$path") || code=000
    if [[ $code != 200 ]] || ! grep -q -- "$tail" "$out"; then
        note "switchyard answered $code for case '$name':"
        head -c 2000 "$out" >&2 || true
        echo >&2
        die "switchyard case '$name' does not work; not measuring it"
    fi
}

# ---------------------------------------------------------------- measuring
CLK_TCK=$(getconf CLK_TCK)
ROWS=$WORK/rows.jsonl
: >"$ROWS"

cpu_ticks() { # PIDS...: utime+stime summed
    local total=0 pid line rest
    for pid in "$@"; do
        line=$(<"/proc/$pid/stat") || die "process $pid is gone"
        rest=${line##*) }
        read -r -a f <<<"$rest"
        total=$((total + f[11] + f[12]))
    done
    echo $total
}
mem_kb() { # FIELD PIDS...: a /proc/PID/status field (VmRSS, VmHWM, RssAnon, RssFile) summed, in kB
    local field=$1 total=0 pid v
    shift
    for pid in "$@"; do
        v=$(awk -v f="$field:" '$1 == f { print $2 }' "/proc/$pid/status")
        total=$((total + ${v:-0}))
    done
    echo $total
}
# Waits until PIDS stop using CPU (at most 3 s), so work a row deferred
# (log records written after the answer, settled budgets) is counted in that
# row and not in the next.
settle_cpu() {
    local a b i
    a=$(cpu_ticks "$@")
    for i in $(seq 1 15); do
        sleep 0.2
        b=$(cpu_ticks "$@")
        [[ $((b - a)) -le 1 ]] && return 0
        a=$b
    done
}
alive() {
    local pid
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null || return 1; done
}

# row ID TARGET CASE INBOUND UPSTREAM STREAM CONNS URL BODY PIDS -- [extra oha args]
# (BODY GET: a GET with no body)
row() {
    local id=$1 target=$2 case=$3 inbound=$4 upstream=$5 stream=$6 conns=$7 url=$8 body=$9 pids=${10}
    shift 10
    [[ ${1:-} == -- ]] && shift
    local -a pid_list
    read -r -a pid_list <<<"$pids"
    alive "${pid_list[@]}" || die "$target is not running before row $id"
    local -a common=(--no-tui --output-format json --worker-threads 1)
    if [[ $body == GET ]]; then
        common+=(-m GET "$@")
    else
        common+=(-m POST -T application/json -D "$body" "$@")
    fi
    # Warm-up: connections, pools, caches; not recorded.
    taskset -c $CPU_LOAD "$OHA" "${common[@]}" -c "$conns" -z 500ms -w "$url" >"$WORK/warm-$id.json" 2>"$WORK/warm-$id.err" ||
        { cat "$WORK/warm-$id.err" >&2; die "oha failed warming up row $id"; }
    local t0 t1
    settle_cpu "${pid_list[@]}"
    t0=$(cpu_ticks "${pid_list[@]}")
    taskset -c $CPU_LOAD "$OHA" "${common[@]}" -c "$conns" -z "${DURATION}s" -w "$url" >"$WORK/oha-$id.json" 2>"$WORK/oha-$id.err" ||
        { cat "$WORK/oha-$id.err" >&2; die "oha failed on row $id"; }
    settle_cpu "${pid_list[@]}"
    t1=$(cpu_ticks "${pid_list[@]}")
    alive "${pid_list[@]}" || die "$target died during row $id (see $WORK)"
    local rss hwm
    rss=$(mem_kb VmRSS "${pid_list[@]}")
    hwm=$(mem_kb VmHWM "${pid_list[@]}")
    python3 - "$WORK/oha-$id.json" "$id" "$target" "$case" "$inbound" "$upstream" "$stream" "$conns" \
        "$((t1 - t0))" "$CLK_TCK" "$rss" "$hwm" >>"$ROWS" <<'PY' || die "row $id: bad or failed oha result (see $WORK/oha-$id.json)"
import json, sys
path, rid, target, case, inbound, upstream, stream, conns, ticks, tck, rss, hwm = sys.argv[1:]
r = json.load(open(path))
codes = r.get("statusCodeDistribution", {})
errors = r.get("errorDistribution", {})
ok = codes.get("200", 0)
bad = {k: v for k, v in codes.items() if k != "200"}
if bad or errors or ok == 0:
    sys.exit(f"row {rid}: {ok} answers 200, other statuses {bad}, errors {errors}")
lat = r["latencyPercentiles"]
fb = r.get("firstBytePercentiles", {})
ms = lambda d, k: None if d.get(k) is None else d[k] * 1000.0
cpu_s = int(ticks) / int(tck)
print(json.dumps({
    "id": rid, "target": target, "case": case, "inbound": inbound, "upstream": upstream,
    "stream": stream == "1", "conns": int(conns), "requests": ok,
    "seconds": r["summary"]["total"], "rps": r["summary"]["requestsPerSec"],
    "body_bytes_per_req": r["summary"].get("sizePerRequest"),
    "p50_ms": ms(lat, "p50"), "p90_ms": ms(lat, "p90"), "p99_ms": ms(lat, "p99"),
    "ttfb_p50_ms": ms(fb, "p50"), "ttfb_p99_ms": ms(fb, "p99"),
    "cpu_s": cpu_s, "cpu_us_per_req": cpu_s * 1e6 / ok,
    "rss_after_kb": int(rss), "hwm_after_kb": int(hwm),
}))
PY
    python3 -c 'import json,sys; r=json.loads(sys.stdin.readlines()[-1]); print("  {id:<36} {rps:>8.0f} req/s  p50 {p50_ms:.3f} ms  p99 {p99_ms:.3f} ms  cpu {cpu_us_per_req:.0f} us/req".format(**r))' <"$ROWS" >&2
}

# Reference rows for one target (direct, floor, nginx): DIALECTS CONNS... on BASE URL.
reference() { # TARGET BASEURL PIDS DIALECTS STREAMS CONNS
    local target=$1 base=$2 pids=$3 dialects=$4 streams=$5 conns_list=$6 d s c path body
    local -a extra
    for d in $dialects; do
        for s in $streams; do
            for c in $conns_list; do
                if [[ $d == openai ]]; then
                    path=/v1/chat/completions
                    body="$B/oai-direct-$s.json"
                    extra=()
                elif [[ $d == responses ]]; then
                    path=/v1/responses
                    body="$B/resp-direct-$s.json"
                    extra=()
                elif [[ $d == tool ]]; then
                    [[ $s == 1 ]] && continue # a tool's answer is not a stream
                    path=/repos/bench/switchyard
                    body=GET
                    extra=(-H "authorization: Bearer ghp-bench")
                else
                    path=/v1/messages
                    body="$B/ant-direct-$s.json"
                    extra=(-H "x-api-key: sk-bench" -H "anthropic-version: 2023-06-01")
                fi
                row "$target-$d-$([[ $s == 1 ]] && echo stream || echo json)-c$c" "$target" "$target" "$d" "$d" "$s" "$c" \
                    "$base$path" "$body" "$pids" -- "${extra[@]}"
            done
        done
    done
}

# Switchyard rows for one case.
sy_case() { # CASE INBOUND UPSTREAM PATH BODYPREFIX(or GET) STREAMS CONNS [extra headers...]
    local case=$1 inbound=$2 upstream=$3 path=$4 prefix=$5 streams=$6 conns_list=$7 s c tail body
    shift 7
    for s in $streams; do
        body="$B/$prefix-$s.json"
        if [[ $prefix == GET ]]; then
            body=GET
            tail='"full_name"'
        elif [[ $s == 1 ]]; then
            case $inbound in
            openai) tail='\[DONE\]' ;;
            responses) tail='event: response.completed' ;;
            *) tail='message_stop' ;;
            esac
        else
            tail='"usage"'
        fi
        sy_check "$case-$s" "$path" "$body" "$tail" "$@"
        if [[ $case == cache-hit ]]; then
            sy_check "$case-$s-again" "$path" "$B/$prefix-$s.json" "$tail" "$@"
            grep -qi '^x-switchyard-cache: *HIT' "$WORK/check-$case-$s-again.headers" ||
                die "case cache-hit: the second identical request was not a cache HIT ($(grep -i '^x-switchyard-cache' "$WORK/check-$case-$s-again.headers" || echo 'no x-switchyard-cache header'))"
        fi
        for c in $conns_list; do
            row "switchyard-$case-$([[ $s == 1 ]] && echo stream || echo json)-c$c" switchyard "$case" "$inbound" "$upstream" "$s" "$c" \
                "http://127.0.0.1:$SY_PORT$path" "$body" "$SY_PID" -- "${SY_AUTH[@]}" "$@"
        done
    done
}

sleep 1
IDLE_FLOOR=$(mem_kb VmRSS "$FLOOR_PID")
IDLE_SY=$(mem_kb VmRSS "$SY_PID")
IDLE_NGINX=0
[[ -n "$NGINX_PIDS" ]] && IDLE_NGINX=$(mem_kb VmRSS $NGINX_PIDS)
IDLE_MOCK=$(mem_kb VmRSS "$MOCK_PID")
# Idle RSS in its two parts: memory the process allocated (RssAnon), and
# its binary's and libraries' pages mapped from the page cache (RssFile,
# shared with every other process that maps them, and reclaimable).
IDLE_ANON_SY=$(mem_kb RssAnon "$SY_PID")
IDLE_FILE_SY=$(mem_kb RssFile "$SY_PID")
IDLE_ANON_NGINX=0 IDLE_FILE_NGINX=0
if [[ -n "$NGINX_PIDS" ]]; then
    IDLE_ANON_NGINX=$(mem_kb RssAnon $NGINX_PIDS)
    IDLE_FILE_NGINX=$(mem_kb RssFile $NGINX_PIDS)
fi

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
MEASURE_STARTED=$(date +%s)
note "measuring (each row: 0.5 s warm-up, then $DURATION s)"
if [[ $MODE == smoke ]]; then
    reference direct "http://127.0.0.1:$MOCK_PORT" "$MOCK_PID" "openai" "0 1" "1 32"
    reference direct "http://127.0.0.1:$MOCK_PORT" "$MOCK_PID" "anthropic" "0 1" "32"
    reference floor "http://127.0.0.1:$FLOOR_PORT" "$FLOOR_PID" "openai" "0 1" "1 32"
    reference floor "http://127.0.0.1:$FLOOR_PORT" "$FLOOR_PID" "anthropic" "0 1" "32"
    if [[ -n "$NGINX_PIDS" ]]; then
        reference nginx "http://127.0.0.1:$NGINX_PORT" "$NGINX_PIDS" "openai" "0 1" "1 32"
        reference nginx "http://127.0.0.1:$NGINX_PORT" "$NGINX_PIDS" "anthropic" "0 1" "32"
    fi
    sy_case same openai openai /v1/chat/completions oai-same "0 1" "1 32"
    sy_case oai-to-ant openai anthropic /v1/chat/completions oai-to-ant "0 1" "32"
    sy_case cache-hit openai none /v1/chat/completions oai-same "0" "1 32" -H "x-switchyard-cache-ttl: 600"
    reference direct "http://127.0.0.1:$MOCK_PORT" "$MOCK_PID" "responses tool" "0" "32"
    reference floor "http://127.0.0.1:$FLOOR_PORT" "$FLOOR_PID" "responses tool" "0" "32"
    sy_case resp-same responses responses /v1/responses resp-same "0" "32"
    sy_case tool-read tool tool /tools/bench/repos/bench/switchyard GET "0" "32"
else
    reference direct "http://127.0.0.1:$MOCK_PORT" "$MOCK_PID" "openai anthropic responses tool" "0 1" "1 32"
    reference floor "http://127.0.0.1:$FLOOR_PORT" "$FLOOR_PID" "openai anthropic responses tool" "0 1" "1 32"
    [[ -n "$NGINX_PIDS" ]] && reference nginx "http://127.0.0.1:$NGINX_PORT" "$NGINX_PIDS" "openai anthropic responses tool" "0 1" "1 32"
    sy_case same openai openai /v1/chat/completions oai-same "0 1" "1 32"
    sy_case oai-to-ant openai anthropic /v1/chat/completions oai-to-ant "0 1" "1 32"
    sy_case ant-to-oai anthropic openai /v1/messages ant-to-oai "0 1" "1 32" "${ANT_HDR[@]}"
    sy_case cache-hit openai none /v1/chat/completions oai-same "0 1" "1 32" -H "x-switchyard-cache-ttl: 600"
    sy_case resp-same responses responses /v1/responses resp-same "0 1" "1 32"
    sy_case resp-to-ant responses anthropic /v1/responses resp-to-ant "0 1" "1 32"
    sy_case tool-read tool tool /tools/bench/repos/bench/switchyard GET "0" "1 32"
    # The same row twice more, back to back: RSS must not grow between
    # identical runs.
    for again in again again-2; do
        row "switchyard-same-json-c32-$again" switchyard "same-$again" openai openai 0 32 \
            "http://127.0.0.1:$SY_PORT/v1/chat/completions" "$B/oai-same-0.json" "$SY_PID" -- "${SY_AUTH[@]}"
    done
    # Paced streams: 20 chunks, ~1 ms apart (CPU per SSE event when events come one by one).
    row "direct-paced-stream-c32" direct paced openai openai 1 32 \
        "http://127.0.0.1:$PACED_PORT/v1/chat/completions" "$B/oai-direct-1.json" "$PACED_PID"
    start floor-paced taskset -c $CPU_PROXY "$BIN/bench-floor" --listen 127.0.0.1:$FLOOR_PACED_PORT --upstream 127.0.0.1:$PACED_PORT
    FLOOR_PACED_PID=$LAST_PID
    wait_ready floor-paced "$FLOOR_PACED_PID" post_ok "http://127.0.0.1:$FLOOR_PACED_PORT/v1/chat/completions" "$B/oai-direct-0.json"
    row "floor-paced-stream-c32" floor paced openai openai 1 32 \
        "http://127.0.0.1:$FLOOR_PACED_PORT/v1/chat/completions" "$B/oai-direct-1.json" "$FLOOR_PACED_PID"
    [[ -n "$NGINX_PIDS" ]] && row "nginx-paced-stream-c32" nginx paced openai openai 1 32 \
        "http://127.0.0.1:$NGINX_PORT/paced/v1/chat/completions" "$B/oai-direct-1.json" "$NGINX_PIDS"
    openai_body pacedoai/gpt-4o 1 >"$B/paced-same-1.json"
    sy_check paced-same /v1/chat/completions "$B/paced-same-1.json" '\[DONE\]'
    row "switchyard-paced-stream-c32" switchyard paced openai openai 1 32 \
        "http://127.0.0.1:$SY_PORT/v1/chat/completions" "$B/paced-same-1.json" "$SY_PID" -- "${SY_AUTH[@]}"
fi
MEASURE_ENDED=$(date +%s)
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
procs_json() {
    local nginx_rss=0 nginx_hwm=0
    if [[ -n "$NGINX_PIDS" ]]; then
        nginx_rss=$(mem_kb VmRSS $NGINX_PIDS)
        nginx_hwm=$(mem_kb VmHWM $NGINX_PIDS)
    fi
    printf '{"floor":{"idle_rss_kb":%s,"rss_end_kb":%s,"peak_rss_kb":%s},' "$IDLE_FLOOR" "$(mem_kb VmRSS "$FLOOR_PID")" "$(mem_kb VmHWM "$FLOOR_PID")"
    printf '"switchyard":{"idle_rss_kb":%s,"idle_anon_kb":%s,"idle_file_kb":%s,"rss_end_kb":%s,"peak_rss_kb":%s},' "$IDLE_SY" "$IDLE_ANON_SY" "$IDLE_FILE_SY" "$(mem_kb VmRSS "$SY_PID")" "$(mem_kb VmHWM "$SY_PID")"
    printf '"mock":{"idle_rss_kb":%s,"rss_end_kb":%s,"peak_rss_kb":%s}' "$IDLE_MOCK" "$(mem_kb VmRSS "$MOCK_PID")" "$(mem_kb VmHWM "$MOCK_PID")"
    if [[ -n "$NGINX_PIDS" ]]; then
        printf ',"nginx":{"idle_rss_kb":%s,"idle_anon_kb":%s,"idle_file_kb":%s,"rss_end_kb":%s,"peak_rss_kb":%s}' "$IDLE_NGINX" "$IDLE_ANON_NGINX" "$IDLE_FILE_NGINX" "$nginx_rss" "$nginx_hwm"
    fi
    printf '}'
}
PROCS=$(procs_json)
MEASURE_S=$((MEASURE_ENDED - MEASURE_STARTED))
TOTAL_S=$(($(date +%s) - RUN_STARTED))
CMD="bench/run.sh${ARGS_GIVEN:+ $ARGS_GIVEN}"
mkdir -p "$OUT"
python3 "$ROOT/bench/report.py" \
    --rows "$ROWS" --out "$OUT" --mode "$MODE" --duration "$DURATION" --command "$CMD" \
    --procs "$PROCS" --pinning "$PINNING" --chunks "$CHUNKS" --paced-delay-us "$PACED_DELAY_US" \
    --measure-seconds "$MEASURE_S" --total-seconds "$TOTAL_S" --load "$LOAD_BEFORE" --load "$LOAD_AFTER" \
    --version "switchyard=$SY_VERSION" --version "oha=$("$OHA" --version)" \
    --version "nginx=${NGINX_VERSION:-not installed}" --version "rustc=$(rustc --version)" \
    --version "commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$(git -C "$ROOT" diff --quiet HEAD -- crates 2>/dev/null || echo ' (with uncommitted changes)')" ||
    die "writing the report failed"
note "done in ${TOTAL_S} s (measuring ${MEASURE_S} s): $OUT/latest.md, $OUT/latest.json"
cat "$OUT/latest.md"
