#!/usr/bin/env bash
# Make sure the local RabbitMQ (and PostgreSQL, when installed) are running.
# Sourced by scripts/test.sh, scripts/demo.sh and bench/shop.sh.

rabbit_up() { rabbitmq-diagnostics -q ping >/dev/null 2>&1; }

ensure_rabbitmq() {
    if rabbit_up; then return 0; fi
    local how="start it with 'docker compose up -d rabbitmq' or 'apt-get install rabbitmq-server'"
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        echo "RabbitMQ is not reachable on 127.0.0.1:5672 and not installed here: $how." >&2
        return 1
    fi
    echo "Starting RabbitMQ..."
    rabbitmq-server -detached >/dev/null 2>&1 || true
    if ! rabbitmqctl await_startup >/dev/null 2>&1; then
        echo "RabbitMQ did not start on 127.0.0.1:5672 (see /var/log/rabbitmq/): $how." >&2
        return 1
    fi
}

# ensure_rabbitmq_management: enable RabbitMQ's management plugin (the HTTP API behind the
# dashboard's rates and charts, and the UI on :15672) unless it is on; says why when it fails.
ensure_rabbitmq_management() {
    local out
    rabbitmq-plugins -q is_enabled rabbitmq_management >/dev/null 2>&1 && return 0
    echo "Enabling RabbitMQ's management plugin (rabbitmq-plugins enable rabbitmq_management):"
    echo "its UI and HTTP API listen on port 15672, on every interface unless rabbitmq.conf"
    echo "sets management.tcp.ip; it stays enabled after the demo (rabbitmq-plugins disable ...)."
    if ! out=$(rabbitmq-plugins -q enable rabbitmq_management 2>&1); then
        echo "Could not enable the management plugin: the dashboard shows no rates or charts." >&2
        echo "$out" >&2
        return 1
    fi
}

ensure_postgresql() {
    command -v pg_ctlcluster >/dev/null 2>&1 || return 0
    pg_isready -q -h 127.0.0.1 && return 0
    echo "Starting PostgreSQL..."
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
}

# make_venv DIR PYTHON: a virtualenv with requirements.txt installed (skipped when unchanged).
make_venv() {
    local dir=$1 python=$2 stamp
    stamp=$(sha256sum requirements.txt | cut -c1-16)
    if [ ! -x "$dir/bin/python" ]; then "$python" -m venv "$dir"; fi
    if [ "$(cat "$dir/.requirements" 2>/dev/null)" != "$stamp" ]; then
        echo "Installing requirements into $dir..."
        "$dir/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt \
            >"$dir/pip.log" 2>&1 || { cat "$dir/pip.log" >&2; return 1; }
        echo "$stamp" >"$dir/.requirements"
    fi
}

# start_shop_workers PYTHON [LOGDIR]: the demo shop's workers in the background, one
# process per service as in production (demo_shop/processes.py lists them, and
# docker-compose.yml runs the same commands). Appends their pids to the caller's
# `pids` array; with LOGDIR, each logs to LOGDIR/NAME.log.
start_shop_workers() {
    local python=$1 logs=${2:-} name command
    while read -r name command; do
        # shellcheck disable=SC2086 # the command's words are its arguments
        if [ -n "$logs" ]; then
            "$python" manage.py $command >"$logs/$name.log" 2>&1 & pids+=($!)
        else
            "$python" manage.py $command & pids+=($!)
        fi
    done < <("$python" -m demo_shop.processes)
}
