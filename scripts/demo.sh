#!/usr/bin/env bash
# Run the demo shop at http://127.0.0.1:8000: sets up the virtualenv, checks
# RabbitMQ, migrates, seeds products, declares the topology, then runs the
# workers (consumers, RPC server, outbox relay) and the ASGI server until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

make_venv .venv python3
if ! rabbit_up && ! ensure_rabbitmq; then
    exit 1
fi
ensure_rabbitmq_management 2>/dev/null || true
export DJANGO_SETTINGS_MODULE=demo_shop.settings
# A local demo shows Django's debug pages (DJANGO_DEBUG=0 turns them off; compose runs without).
export DJANGO_DEBUG="${DJANGO_DEBUG:-1}"
PY=.venv/bin/python
$PY manage.py migrate --no-input -v0
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
start_shop_workers $PY
$PY -m daphne -b 127.0.0.1 -p 8000 demo_shop.asgi:application & pids+=($!)

cat <<MSG

  Demo shop:       http://127.0.0.1:8000/
  RPC (Fibonacci): http://127.0.0.1:8000/rpc/fib/30/
  Admin:           http://127.0.0.1:8000/admin/   (admin / admin)
  Invoices:        var/mail/ (one file per email)
  Dead letter:     order the "Carrot crate (on stocktake)": inventory dead-letters it to
                   inventory.orders.dlq; untick Stocktake on the product in the admin, then
                   replay it from Admin > RabbitMQ (docs/dead-letter-demo.md)
  Ctrl-C stops everything.

MSG
wait -n "${pids[@]}"
