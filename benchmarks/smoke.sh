#!/usr/bin/env bash
# Smoke run of every benchmark on the small preset, on SQLite and PostgreSQL: they must complete
# (and give right answers); the targets are for the large preset, run on demand (benchmarks/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
work=$(mktemp -d)
pgdb="nodeauthz_bench_$$"
admin="postgresql://postgres@127.0.0.1:5432/test"
cleanup() {
  rm -rf "$work"
  for db in "$pgdb" "${pgdb}_scale_600" "${pgdb}_scale_3000"; do
    psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS $pgdb" -c "CREATE DATABASE $pgdb"
sqlite="sqlite:///$work/bench.db"
pg="postgresql://postgres@127.0.0.1:5432/$pgdb"
for url in "$sqlite" "$pg"; do
  $PY -m benchmarks.check_cost --database-url "$url" --preset small --load --repeat 50
done
$PY -m benchmarks.scale_curve --database-url "sqlite:///$work/scale.db" --sizes 600,3000 --repeat 50
$PY -m benchmarks.scale_curve --database-url "$admin" --pg-prefix "${pgdb}_scale" --sizes 600,3000 --repeat 50
# Both databases already hold the small preset (check_cost --load); one trivial baseline for both.
$PY -m benchmarks.webhook_load --database-url "$sqlite" --database-url "$pg" --preset small \
  --connections 1,32 --duration 0.5 --warmup 0.2 --churn 50
# Issue 14 part 3: CPU per review in-process, 32 in flight (PostgreSQL: its checks answered together).
for url in "$sqlite" "$pg"; do
  $PY -m benchmarks.request_cpu --database-url "$url" --requests 500 --rounds 1 --concurrency 32
done
# Last: sync_bench empties the databases it is given.
$PY -m benchmarks.sync_bench --database-url "$sqlite" --database-url "$pg" --preset small --duration 3
# Issue 14 part 5: the initial sync by size, extrapolated (empties the database it is given).
$PY -m benchmarks.sync_scale --database-url "sqlite:///$work/sync.db" --sizes 300,600 --target 3000
# Issue 14: nodeauthz load streaming vs whole-file, and the write paths against the raw insert.
$PY -m benchmarks.load_bench --preset small
$PY -m benchmarks.write_path --database-url "sqlite:///$work/write.db" --preset small
$PY -m benchmarks.write_path --database-url "$pg" --preset small
# Issue 12: metrics + denial report on versus off (in-process CPU) and a node's blast radius.
$PY -m benchmarks.observability_cost --rounds 1 --requests 200
$PY -m benchmarks.node_reach --database-url "sqlite:///$work/reach.db" --preset small --load --nodes 3
# Issue 15: reads from a hot standby of the benchmark's own (never the shared server) beside the primary.
$PY -m benchmarks.standby --webhooks 1 --duration 0.5 --warmup 0.2 --rounds 1 --binds 2 --check-rounds 1 \
  --capacity-rates 200 --capacity-seconds 1
