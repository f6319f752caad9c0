#!/usr/bin/env bash
# Run the demo shop at http://127.0.0.1:8000: sets up the virtualenv, checks
# RabbitMQ, migrates, declares the topology and serves the ASGI app.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

make_venv .venv python3
if ! rabbit_up && ! ensure_rabbitmq; then
    exit 1
fi
export DJANGO_SETTINGS_MODULE=demo_shop.settings
PY=.venv/bin/python
$PY manage.py migrate --no-input >/dev/null
$PY manage.py rabbit_setup
echo
echo "Demo shop: http://127.0.0.1:8000/admin/   (Ctrl-C stops it)"
exec $PY manage.py runserver 127.0.0.1:8000
