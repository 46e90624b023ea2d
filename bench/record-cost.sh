#!/usr/bin/env bash
# Instructions per call record written into SQLite by the log writer's own
# connection, with and without tags and the requests table's secondary
# indexes, with each call's begin and end in different transactions
# (--split: a call longer than the writer's round, written as it was before
# the writer held begins back; --held: the same calls as the writer writes
# them now), (driver none) for building the entries alone, and (driver
# segments) for a sketch of a segment store: examples/record_cost.rs
# under callgrind, each case run with N calls and with 0, the difference
# divided by N (every thread counted; the same on every run).
#   bench/record-cost.sh [N]        (default 3000)
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchyard-target}"
n="${1:-3000}"
cargo build --quiet --profile profiling --example record_cost
bin="$CARGO_TARGET_DIR/profiling/examples/record_cost"
ir() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$@" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf '| driver | options | instructions per record |\n|---|---|---:|\n'
for driver in none writer segments; do
  for opts in "" "--tags 2" "--bare" "--split" "--held"; do
    [ "$driver" != writer ] && [ -n "$opts" ] && continue
    # shellcheck disable=SC2086
    full=$(ir "$driver" "$n" $opts)
    # shellcheck disable=SC2086
    base=$(ir "$driver" 0 $opts)
    printf '| %s | %s | %s |\n' "$driver" "${opts:-–}" "$(( (full - base) / n ))"
  done
done
