#!/usr/bin/env bash
# Smoke run of every benchmark on the small preset, on SQLite and PostgreSQL: they must complete
# (and give right answers); the targets are for the large preset, run on demand (benchmarks/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
work=$(mktemp -d)
pgdb="nodeauthz_bench_$$"
cleanup() { rm -rf "$work"; psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS $pgdb" >/dev/null 2>&1 || true; }
trap cleanup EXIT
psql -h 127.0.0.1 -U postgres -d test -qc "DROP DATABASE IF EXISTS $pgdb" -c "CREATE DATABASE $pgdb"
for url in "sqlite:///$work/bench.db" "postgresql://postgres@127.0.0.1:5432/$pgdb"; do
  $PY -m benchmarks.check_cost --database-url "$url" --preset small --load --repeat 50
done
