#!/usr/bin/env bash
# Run the demo shop at http://127.0.0.1:8000: sets up the virtualenv, checks
# RabbitMQ (and enables its management plugin), migrates, collects static files,
# seeds products, declares the topology, then runs the workers (consumers, RPC
# server, outbox relay) and the ASGI server until Ctrl-C.
#
# Environment: DEMO_PORT (default 8000); DEMO_PYTHON, an interpreter that already
# has requirements.txt (default: make .venv); DATABASE_URL and RABBITBUS_URL as
# demo_shop/settings.py reads them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

PORT=${DEMO_PORT:-8000}
if [ -n "${DEMO_PYTHON:-}" ]; then
    PY=$DEMO_PYTHON
else
    make_venv .venv python3
    PY=.venv/bin/python
fi
if ! rabbit_up && ! ensure_rabbitmq; then
    exit 1
fi
management="enabled: rates, unacked counts and charts in the dashboard"
ensure_rabbitmq_management || management="NOT enabled (see above): the dashboard has no rates"
export DJANGO_SETTINGS_MODULE=demo_shop.settings
# A local demo shows Django's debug pages (DJANGO_DEBUG=0 turns them off; compose runs without).
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"
$PY manage.py migrate --no-input -v0
$PY manage.py collectstatic --no-input -v0
$PY manage.py shop_seed
$PY manage.py rabbit_setup -v0
DJANGO_SUPERUSER_PASSWORD=admin $PY manage.py createsuperuser --no-input \
    --username admin --email admin@example.com 2>/dev/null || true

pids=()
stop() {
    trap - INT TERM EXIT
    echo "Stopping the demo..."
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

# One worker per service, as in production: inventory and billing never share a process.
start_shop_workers "$PY"
$PY -m daphne -b 127.0.0.1 -p "$PORT" demo_shop.asgi:application & pids+=($!)

cat <<MSG

  Demo shop:       http://127.0.0.1:$PORT/
  RPC (Fibonacci): http://127.0.0.1:$PORT/rpc/fib/30/
  Admin:           http://127.0.0.1:$PORT/admin/   (admin / admin)
  Dashboard:       http://127.0.0.1:$PORT/admin/rabbitbus/dashboard/   (live queues, charts)
  Topology:        http://127.0.0.1:$PORT/admin/rabbitbus/dashboard/topology/
  RabbitMQ UI:     http://127.0.0.1:15672/   (guest / guest; management plugin $management)
  Invoices:        var/mail/ (one file per email, sent by a django.tasks task;
                   its result on the order page and in Admin > Task results)
  Dead letter:     order the "Carrot crate (on stocktake)": inventory dead-letters it to
                   inventory.orders.dlq; untick Stocktake on the product in the admin, then
                   replay it from Admin > RabbitMQ (docs/dead-letter-demo.md)
  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
