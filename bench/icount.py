#!/usr/bin/env python3
"""Instructions per call, counted by callgrind (issue 17).

Runs the gateway (the `profiling` build: release code with symbols) under
`valgrind --tool=callgrind` against bench-mock, with keys, limits, a budget,
prices and records on, as bench/run.sh does, and counts the instructions
each case costs per call: a same-dialect call, a cross-dialect call each
way, a cache hit, a 20-chunk stream, the call's record. Each case is
warmed up, the counters zeroed, CALLS calls made one after another on one
connection, the writer given time to commit their records, and the counts
dumped: so a case's figure includes its records, written by the background
writer and SQLite's thread. The Responses API cases go out natively (same
dialect, `responses = true`) and translated to Anthropic; their default
`store` keeps each response too, through the same writer. The tool case is
a read (GET) through the HTTP tool proxy, its credential injected.

Instruction counts do not move with the machine's load, so they can be
checked in CI: `--check FILE` fails when a case costs more than its budget
in FILE (plus its margin), and names the stages that grew; a run over a
budget is measured once more and each figure's lower value checked, so
only a growth that repeats fails.
A stage is the inclusive count of the functions its patterns name (see
STAGES); stages can nest, so they are read one by one, not summed.

usage: bench/icount.py [--bin DIR] [--calls N] [--check FILE] [--write FILE]
                       [--json FILE] [--keep]
  --bin DIR     the switchyard and bench-mock binaries (default:
                $CARGO_TARGET_DIR/profiling, else target/profiling)
  --calls N     calls counted per case (default 60)
  --check FILE  compare with the budgets in FILE; exit 1 past a budget
                (the margins are MARGINS below, or FILE's "margins")
  --write FILE  write the figures measured as the new budgets in FILE
  --json FILE   write every figure measured to FILE
  --keep        keep the work directory (configs, logs, callgrind dumps)
"""

import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SYSTEM = "You are a concise assistant. Answer in one sentence and do not use lists."
USER = "Summarise the plot of Hamlet in one sentence for a reader who has not seen the play."


def openai_body(model, stream=False):
    b = {
        "model": model,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": USER},
        ],
        "max_tokens": 256,
        "temperature": 0.2,
    }
    if stream:
        b["stream"] = True
        b["stream_options"] = {"include_usage": True}
    return json.dumps(b).encode()


def anthropic_body(model, stream=False):
    b = {
        "model": model,
        "max_tokens": 256,
        "system": SYSTEM,
        "messages": [{"role": "user", "content": USER}],
        "temperature": 0.2,
    }
    if stream:
        b["stream"] = True
    return json.dumps(b).encode()


def responses_body(model, stream=False):
    b = {
        "model": model,
        "instructions": SYSTEM,
        "input": USER,
        "max_output_tokens": 256,
        "temperature": 0.2,
    }
    if stream:
        b["stream"] = True
    return json.dumps(b).encode()


ANT = {"anthropic-version": "2023-06-01"}
# Calls per case in each round of the warm-up.
WARM = 25
CACHE = {"x-switchyard-cache-ttl": "600"}

# name: (path, body (None: a GET), extra headers, what the answer's body
# ends with or holds)
CASES = {
    "same-json": ("/v1/chat/completions", openai_body("mockoai/gpt-4o"), {}, b'"usage"'),
    "oai-to-ant-json": (
        "/v1/chat/completions",
        openai_body("mockant/claude-sonnet-4-5"),
        {},
        b'"usage"',
    ),
    "ant-to-oai-json": ("/v1/messages", anthropic_body("mockoai/gpt-4o"), ANT, b'"usage"'),
    "cache-hit-json": ("/v1/chat/completions", openai_body("mockoai/gpt-4o"), CACHE, b'"usage"'),
    "same-stream": (
        "/v1/chat/completions",
        openai_body("mockoai/gpt-4o", stream=True),
        {},
        b"data: [DONE]",
    ),
    "oai-to-ant-stream": (
        "/v1/chat/completions",
        openai_body("mockant/claude-sonnet-4-5", stream=True),
        {},
        b"data: [DONE]",
    ),
    "ant-to-oai-stream": (
        "/v1/messages",
        anthropic_body("mockoai/gpt-4o", stream=True),
        ANT,
        b"event: message_stop",
    ),
    "responses-same-json": ("/v1/responses", responses_body("mockoai/gpt-4o"), {}, b'"usage"'),
    "responses-to-ant-json": (
        "/v1/responses",
        responses_body("mockant/claude-sonnet-4-5"),
        {},
        b'"usage"',
    ),
    "responses-same-stream": (
        "/v1/responses",
        responses_body("mockoai/gpt-4o", stream=True),
        {},
        b"event: response.completed",
    ),
    "responses-to-ant-stream": (
        "/v1/responses",
        responses_body("mockant/claude-sonnet-4-5", stream=True),
        {},
        b"event: response.completed",
    ),
    "tool-read": ("/tools/bench/repos/bench/switchyard", None, {}, b'"full_name":"bench/switchyard"'),
}

# Stages: each is the inclusive count of the functions its patterns name,
# matched against callgrind's `file:function` (a pattern's largest match
# counts; a stage's patterns are summed). Stages nest (admit holds decode,
# policy and plan; connection holds most of the rest), so read them one by
# one. Release inlining folds small functions into their callers: these are
# the roots that stay functions of their own.
STAGES = {
    # hyper's server side of the call, the middleware and the handler
    "connection": [r"src/server\.rs:switchyard::server::serve::\{\{closure\}\}::\{\{closure\}\}$"],
    "decode": [r":switchyard::dialect::Dialect::decode_request$"],
    "policy": [r":switchyard::policy::admit::\{\{closure\}\}$"],
    "plan": [r":switchyard::routing::plan$"],
    "admit": [r"src/pipeline/admit\.rs:switchyard::pipeline::admit::prepare::\{\{closure\}\}$"],
    # the request sent and the answer's head read through the client
    "upstream": [r":switchyard::providers::client::Client::execute::\{\{closure\}\}$"],
    "translate": [r":switchyard::pipeline::answer::translate_response$"],
    "deliver": [r":switchyard::pipeline::deliver::deliver$"],
    "stream": [r":switchyard::pipeline::pump::pump::\{\{closure\}\}$"],
    "finish": [r":switchyard::pipeline::finish::finish$"],
    # the call's begin and end written to the spool
    "spool": [r":switchyard::log_store::Recorder::begin$", r":switchyard::log_store::Journal::close$"],
    # the writer: spool read, entries decoded, the batch bound and sent
    "writer": [r":switchyard::log_store::writer::run::\{\{closure\}\}$"],
    # SQLite's threads: the records' own connection (the writer's
    # transactions) and sqlx's worker (any other query)
    "sqlite": [
        r":switchyard::log_store::writer::lite::serve$",
        r"sqlx-sqlite-[^/]*/src/connection/worker\.rs:std::sys::backtrace::__rust_begin_short_backtrace$",
    ],
    # a tool call through the HTTP tool proxy (classify, decide, send,
    # scrub); its audit record is group-committed by a task of its own
    # (spawn, sqlite)
    "tool": [r":switchyard::tools::proxy::run::\{\{closure\}\}$"],
    # tasks spawned: the call's own task, hyper's, the writer's wake-ups
    "spawn": [r"src/task/spawn\.rs:tokio::task::spawn::spawn$"],
}


def die(msg):
    print(f"bench/icount.py: error: {msg}", file=sys.stderr)
    sys.exit(2)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(proc, port, path, log, seconds=180):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            die(f"{log} exited during start-up:\n{open(log).read()[-3000:]}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            c.request("GET", path)
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    die(f"not ready within {seconds} s: {log}")


def call(conn, path, body, headers, key):
    h = {"authorization": f"Bearer {key}"}
    if body is not None:
        h["content-type"] = "application/json"
    h.update(headers)
    conn.request("GET" if body is None else "POST", path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


def totals(dump):
    """The Ir total of one callgrind dump."""
    with open(dump) as f:
        for line in f:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    die(f"no totals in {dump}")


def inclusive(dump):
    """Inclusive Ir by `file:function` (callgrind_annotate's figures)."""
    out = subprocess.run(
        ["callgrind_annotate", "--inclusive=yes", "--threshold=100", dump],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    costs = {}
    line_re = re.compile(r"^\s*([\d,]+)\s+\([^)]*\)\s+(.+?)(?: \[[^\]]*\])?$")
    for line in out.splitlines():
        m = line_re.match(line)
        if not m:
            continue
        name = m.group(2).strip()
        costs[name] = max(costs.get(name, 0), int(m.group(1).replace(",", "")))
    return costs


def stages(costs, calls):
    out = {}
    for stage, patterns in STAGES.items():
        total = 0
        for p in patterns:
            rx = re.compile(p)
            total += max((ir for name, ir in costs.items() if rx.search(name)), default=0)
        out[stage] = round(total / calls)
    return out


CONFIG = """
[server]
listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"

[storage]
url = "sqlite://{work}/switchyard.db"

[auth]
require_keys = true

[[providers]]
name = "mockoai"
kind = "openai-compatible"
base_url = "http://127.0.0.1:{mock}/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
models = ["gpt-4o"]
responses = true

[[providers]]
name = "mockant"
kind = "anthropic"
base_url = "http://127.0.0.1:{mock}/v1"
api_key_env = "BENCH_UPSTREAM_KEY"
models = ["claude-sonnet-4-5"]

[[tools]]
name = "bench"
base_url = "http://127.0.0.1:{mock}"
auth = {{ header = "Authorization", value_env = "BENCH_TOOL_TOKEN", prefix = "Bearer " }}

[cache]
max_entries = 100000

[logs]
spool_dir = "{work}/spool"

[pricing."mockoai/gpt-4o"]
input_per_mtok_usd = 2.5
output_per_mtok_usd = 10.0
cached_input_per_mtok_usd = 1.25

[pricing."mockant/claude-sonnet-4-5"]
input_per_mtok_usd = 3.0
output_per_mtok_usd = 15.0
cached_input_per_mtok_usd = 0.3
"""


def measure(bin_dir, calls, work):
    sy = os.path.join(bin_dir, "switchyard")
    mock = os.path.join(bin_dir, "bench-mock")
    for b in (sy, mock):
        if not os.access(b, os.X_OK):
            die(f"missing {b}: build it with `cargo build --profile profiling -p switchyard -p switchyard-bench --bins`")
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate"):
        if not shutil.which(tool):
            die(f"{tool} is not installed (Debian: apt-get install valgrind)")
    env = dict(os.environ)
    env["BENCH_UPSTREAM_KEY"] = "sk-bench-upstream-not-a-secret"
    env["BENCH_TOOL_TOKEN"] = "ghp-bench-tool-not-a-secret"
    env["SWITCHYARD_ADMIN_TOKEN"] = "icount-admin-token-0123456789"
    env.pop("RUST_LOG", None)
    procs = []
    try:
        mock_port = free_port()
        mlog = os.path.join(work, "mock.log")
        procs.append(
            subprocess.Popen(
                [mock, "--listen", f"127.0.0.1:{mock_port}", "--chunks", "20"],
                stdout=open(mlog, "w"),
                stderr=subprocess.STDOUT,
            )
        )
        port, admin = free_port(), free_port()
        os.makedirs(os.path.join(work, "spool"), exist_ok=True)
        cfg = os.path.join(work, "switchyard.toml")
        with open(cfg, "w") as f:
            f.write(CONFIG.format(port=port, admin=admin, work=work, mock=mock_port))
        created = subprocess.run(
            [sy, "keys", "create", "--config", cfg, "--name", "icount",
             "--models", "mockoai/*,mockant/*", "--tools", "bench", "--rpm", "100000000",
             "--tpm", "100000000000", "--budget-usd", "1000000", "--budget-period", "total"],
            cwd=work, env=env, capture_output=True, text=True,
        )
        if created.returncode != 0:
            die(f"switchyard keys create failed: {created.stderr}")
        key = json.loads(created.stdout)["key"]
        out = os.path.join(work, "callgrind.out")
        slog = os.path.join(work, "switchyard.log")
        gw = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             "--dump-instr=no", "--dump-line=no", "--collect-atstart=yes",
             sy, "serve", "--config", cfg],
            cwd=work, env=env, stdout=open(slog, "w"), stderr=subprocess.STDOUT,
        )
        procs.append(gw)
        wait_ready(gw, port, "/readyz", slog)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        # Warm every case first, long enough for the writer to have met
        # every batch shape (each is prepared once per connection, and a
        # prepare costs more than a batch).
        for _ in range(3):
            for name, (path, body, headers, tail) in CASES.items():
                for _ in range(WARM):
                    status, _, data = call(conn, path, body, headers, key)
                    if status != 200 or tail not in data:
                        die(f"case {name}: switchyard answered {status}: {data[:500]!r}")
            time.sleep(1.0)
        results = {}
        for name, (path, body, headers, tail) in CASES.items():
            # Warm: this case's connection state and cache entry.
            for _ in range(10):
                status, hdrs, data = call(conn, path, body, headers, key)
                if status != 200 or tail not in data:
                    die(f"case {name}: switchyard answered {status}: {data[:500]!r}")
            if name.startswith("cache-hit") and hdrs.get("x-switchyard-cache", "").upper() != "HIT":
                die(f"case {name}: not a cache hit ({hdrs.get('x-switchyard-cache')})")
            time.sleep(1.5)
            subprocess.run(["callgrind_control", "--zero", str(gw.pid)], check=True, capture_output=True)
            for _ in range(calls):
                status, _, data = call(conn, path, body, headers, key)
                if status != 200 or tail not in data:
                    die(f"case {name}: switchyard answered {status}: {data[:500]!r}")
            # The writer commits the calls' records off the request path.
            time.sleep(2.0)
            before = set(os.listdir(work))
            subprocess.run(["callgrind_control", f"--dump={name}", str(gw.pid)], check=True, capture_output=True)
            dump = None
            for _ in range(100):
                new = [f for f in set(os.listdir(work)) - before if f.startswith("callgrind.out")]
                if new:
                    dump = os.path.join(work, sorted(new)[-1])
                    break
                time.sleep(0.1)
            if dump is None:
                die(f"case {name}: callgrind wrote no dump")
            time.sleep(0.5)  # the dump is written by the process itself
            total = totals(dump)
            results[name] = {"per_call": round(total / calls), "stages": stages(inclusive(dump), calls)}
            print(f"{name}: {results[name]['per_call']:,} instructions per call", file=sys.stderr)
        return results
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()


# Margins over the budgets: the request's own stages repeat to within a
# few percent; the writer's batches (and so SQLite's work per record) depend
# on how calls fell into them, so those stages and the totals get more. The
# writer's own stage is small since SQLite's records have their own
# connection (about 6-16k per call), and its housekeeping every 5 s (the
# heartbeat, the threads' priorities) lands in a case's window or not:
# +2.5k per call, so it gets the SQLite stage's margin. Going back to
# writing through sqlx (+20k) still fails.
MARGINS = {"per_call": 0.15, "stage": 0.05, "writer": 0.35, "sqlite": 0.35}
# Growth below this many instructions per call is noise, whatever its share.
MIN_GROWTH = 1500


def check(results, budgets):
    """The report lines, and whether every case is within its budgets."""
    margins = dict(MARGINS)
    margins.update(budgets.get("margins", {}))
    lines = []
    failed = False
    for name, got in results.items():
        want = budgets["cases"].get(name)
        if want is None:
            lines.append(f"{name}: {got['per_call']:,} per call (no budget)")
            continue
        over = []

        def past(label, n, base, margin):
            if n > base * (1 + margin) and n - base > MIN_GROWTH:
                over.append(f"{label} grew {base:,} -> {n:,} per call (+{(n - base) / max(base, 1):.0%}; allowed +{margin:.0%})")

        past("the whole call", got["per_call"], want["per_call"], margins["per_call"])
        for stage, n in got["stages"].items():
            past(f"stage {stage}", n, want["stages"].get(stage, 0), margins.get(stage, margins["stage"]))
        lines.append(f"{name}: {got['per_call']:,} per call, budget {want['per_call']:,}: {'OVER' if over else 'ok'}")
        lines.extend(f"    {line}" for line in over)
        failed = failed or bool(over)
    return lines, not failed


def lower(a, b):
    """Each case's and stage's lower figure of two runs."""
    return {
        name: {
            "per_call": min(r["per_call"], b[name]["per_call"]),
            "stages": {st: min(n, b[name]["stages"].get(st, n)) for st, n in r["stages"].items()},
        }
        for name, r in a.items()
    }


def main(argv):
    bin_dir = None
    calls = 60
    check_file = write_file = json_file = None
    keep = False
    args = list(argv)
    while args:
        a = args.pop(0)
        if a in ("-h", "--help"):
            print(__doc__)
            return 0
        if a == "--keep":
            keep = True
            continue
        if not args:
            die(f"{a} needs a value")
        v = args.pop(0)
        if a == "--bin":
            bin_dir = v
        elif a == "--calls":
            calls = int(v)
        elif a == "--check":
            check_file = v
        elif a == "--write":
            write_file = v
        elif a == "--json":
            json_file = v
        else:
            die(f"unknown argument {a} (see --help)")
    if bin_dir is None:
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
        bin_dir = os.path.join(target, "profiling")
    work = tempfile.mkdtemp(prefix="switchyard-icount.")
    ok = True
    try:
        results = measure(bin_dir, calls, work)
        if check_file:
            with open(check_file) as f:
                budgets = json.load(f)
            lines, ok = check(results, budgets)
            if not ok:
                # A real growth shows in every run; how calls fell into the
                # writer's batches does not repeat. One more run, and each
                # figure's lower value is checked.
                print("over a budget: measuring once more", file=sys.stderr)
                again = tempfile.mkdtemp(prefix="switchyard-icount.")
                try:
                    results = lower(results, measure(bin_dir, calls, again))
                finally:
                    shutil.rmtree(again, ignore_errors=True)
                lines, ok = check(results, budgets)
            print("\n".join(lines))
        if json_file:
            with open(json_file, "w") as f:
                json.dump(results, f, indent=2)
        if write_file:
            with open(write_file, "w") as f:
                json.dump({"calls": calls, "cases": results}, f, indent=2)
                f.write("\n")
        if not check_file:
            for name, r in results.items():
                print(f"{name}: {r['per_call']:,} per call")
                for stage, n in r["stages"].items():
                    print(f"    {stage:14} {n:>10,}")
    finally:
        if keep or not ok:
            print(f"bench/icount.py: work directory kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
