#!/usr/bin/env bash
# Run the whole test suite: lint, types, then pytest on every supported Python.
# Sets up what it needs: virtualenvs, RabbitMQ (started when down), PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh

ensure_rabbitmq
ensure_rabbitmq_management
ensure_postgresql
# The TLS tests make their certificates with openssl.
command -v openssl >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq openssl)
# The browser tests drive Debian's chromium (never `playwright install`).
command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) \
    || echo "chromium could not be installed: the browser tests will be skipped" >&2
# tests/test_prometheus.py runs Debian's prometheus (and promtool) itself, on a free loopback
# port; where the package's postinst starts its service on :9090, the tests do not use it.
command -v prometheus >/dev/null 2>&1 \
    || (apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus) \
    || echo "prometheus could not be installed: tests/test_prometheus.py will be skipped" >&2

# Run a second time with RABBITBUS["FAST_PATHS"] off (docs/architecture.md#the-transport).
FAST_PATH_MODULES=(tests/test_publishing.py tests/test_worker.py tests/test_rpc.py
    tests/test_rpc_server.py tests/test_rpc_failures.py tests/test_fast_paths_off.py)

PY313=/root/.pyenv/versions/3.13.0/bin/python3.13
pythons=("python3:.venv")
if [ -x "$PY313" ]; then pythons+=("$PY313:.venv313"); fi

# pytest exits 5 when a selection has no test: that is not a failure here.
run_pytest() { "$@" || { rc=$?; [ "$rc" -eq 5 ] || return "$rc"; }; }

for entry in "${pythons[@]}"; do
    python=${entry%%:*}
    venv=${entry##*:}
    make_venv "$venv" "$python"
    echo "== $("$venv/bin/python" --version), Django $("$venv/bin/python" -c 'import django; print(django.get_version())')"
    if [ "$venv" = ".venv" ]; then
        "$venv/bin/ruff" check .
        "$venv/bin/ruff" format --check .
        "$venv/bin/mypy"
        # The docs site: a broken link, a missing anchor or a page left out of nav fails.
        "$venv/bin/mkdocs" build --strict --quiet --site-dir site
    fi
    # --durations: where the run's time goes, for whoever keeps CI under its budget.
    run_pytest "$venv/bin/python" -m pytest -m "not fault and not soak and not postgres and not cluster" \
        --durations=15 "$@"
    # The publishing, worker and RPC modules again on the drivers' public API alone (on the
    # first Python: the switch changes which driver calls are made, not how Python runs them).
    if [ "$venv" = ".venv" ]; then
        RABBITBUS_TEST_FAST_PATHS=off run_pytest "$venv/bin/python" -m pytest \
            -m "not fault and not soak and not postgres and not cluster" "${FAST_PATH_MODULES[@]}" "$@"
    fi
    # Outbox concurrency needs PostgreSQL (SKIP LOCKED, LISTEN/NOTIFY).
    run_pytest "$venv/bin/python" -m pytest --ds=tests.settings_pg -m "postgres and not fault and not cluster" "$@"
    # The suites that restart brokers run on the first Python only, to keep CI under 45
    # minutes: the fault tests (the broker restarted, alarmed, cut, black-holed), then
    # the three-node cluster (scripts/cluster.sh, started and removed by the tests).
    if [ "$venv" = ".venv" ]; then
        run_pytest "$venv/bin/python" -m pytest -m "fault and not soak and not cluster" "$@"
        run_pytest "$venv/bin/python" -m pytest -m cluster "$@"
    fi
done
