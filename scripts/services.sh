#!/usr/bin/env bash
# Make sure the local RabbitMQ (and PostgreSQL, when installed) are running.
# Sourced by scripts/test.sh, scripts/demo.sh and bench/shop.sh.

rabbit_up() { rabbitmq-diagnostics -q ping >/dev/null 2>&1; }

ensure_rabbitmq() {
    local how="start it with 'docker compose up -d rabbitmq' or 'apt-get install rabbitmq-server'"
    if rabbit_up; then
        rabbit_has_sockets_enough && return 0
        raise_rabbit_file_limit || return 0
        echo "RabbitMQ accepted only $(rabbit_socket_limit) sockets (1,024 file descriptors);"
        echo "restarting it with $RABBIT_FILE_LIMIT (set in $RABBIT_ENV_CONF)."
        rabbitmqctl -q stop >/dev/null 2>&1 || true
    fi
    if ! command -v rabbitmq-server >/dev/null 2>&1; then
        echo "RabbitMQ is not reachable on 127.0.0.1:5672 and not installed here: $how." >&2
        return 1
    fi
    echo "Starting RabbitMQ..."
    rabbit_up || rabbitmq-server -detached >/dev/null 2>&1 || true
    if ! rabbit_started; then
        echo "RabbitMQ did not start on 127.0.0.1:5672 (see /var/log/rabbitmq/): $how." >&2
        return 1
    fi
}

# rabbit_started: whether the node finished booting within about a minute (a service manager
# may be bringing it back at the same time as we do: one of the two starts it).
rabbit_started() {
    local try
    for try in 1 2 3 4 5 6; do
        rabbitmqctl -q await_startup --timeout 10 >/dev/null 2>&1 && return 0
        sleep 2
    done
    return 1
}

# A node started with the system's default of 1,024 file descriptors accepts about 830
# sockets; a long test run (hundreds of worker processes and connections) reaches that, and
# the node then takes TCP connections without ever answering them ("Timeout during AMQP
# handshake"). The Debian package starts the node through `su rabbitmq`, which resets the
# limit, so it is raised where the node's own scripts read it: rabbitmq-env.conf.
RABBIT_ENV_CONF=/etc/rabbitmq/rabbitmq-env.conf
RABBIT_FILE_LIMIT=20000

rabbit_socket_limit() {
    rabbitmqctl -q status 2>/dev/null | sed -n 's/^Sockets: [0-9]*, limit: \([0-9]*\).*/\1/p' | head -1
}

raise_rabbit_file_limit() {
    [ -w "$RABBIT_ENV_CONF" ] || return 1
    grep -q "^ulimit -n" "$RABBIT_ENV_CONF" && return 1
    printf '%s\n' "# rabbitbus scripts/services.sh: room for more than 830 sockets" \
        "ulimit -n $RABBIT_FILE_LIMIT 2>/dev/null || true" >> "$RABBIT_ENV_CONF"
}

rabbit_has_sockets_enough() {
    local limit
    limit=$(rabbit_socket_limit)
    [ -z "$limit" ] || ! command -v rabbitmq-server >/dev/null 2>&1 || [ "$limit" -ge 4000 ]
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
