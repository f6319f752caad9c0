#!/usr/bin/env bash
# The demo shop under load: prepares the database as scripts/demo.sh does, starts the
# same workers (consumers, RPC server, outbox relay), runs shop_simulate with the given
# options (in-process checkouts: no web server needed), then stops the workers.
#
#   bash bench/shop.sh --orders 1000 --concurrency 20
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/shop_bench bash bench/shop.sh ...
#
# RABBITBUS_URL picks the broker and vhost (default amqp://guest:guest@127.0.0.1:5672/).
# Worker logs go to var/bench/. Not a test: see docs/benchmarks.md for figures.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
export DJANGO_SETTINGS_MODULE=demo_shop.settings
PY=${PY:-.venv/bin/python}
LOGS=var/bench
mkdir -p "$LOGS"

$PY manage.py migrate --no-input -v0
$PY manage.py shop_seed
$PY manage.py rabbit_setup -v0

pids=()
stop() {
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop EXIT
start_shop_workers "$PY" "$LOGS"

# The first checkout needs the price service: wait until it answers.
for _ in $(seq 60); do
    if $PY manage.py rabbit_call catalog.quote '{}' >/dev/null 2>&1; then break; fi
    sleep 0.5
done
$PY manage.py shop_simulate "$@"
