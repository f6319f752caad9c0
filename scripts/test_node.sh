#!/usr/bin/env bash
# A private RabbitMQ node beside the one on 5672, for test runs that stop, crash or alarm
# a broker without disturbing anyone else's tests:
#
#   bash scripts/test_node.sh up NAME PORT    # start node NAME@localhost on 127.0.0.1:PORT
#   source /tmp/rabbitbus-node-NAME/env       # point tests (and rabbitmqctl) at it
#   bash scripts/test_node.sh down NAME       # stop it and remove its data
#
# The node's management API listens on PORT+10000, its distribution port on PORT+20000.
set -euo pipefail

command=${1:?usage: test_node.sh up NAME PORT | down NAME}
name=${2:?usage: test_node.sh up NAME PORT | down NAME}
base=/tmp/rabbitbus-node-$name

case "$command" in
up)
    port=${3:?usage: test_node.sh up NAME PORT}
    mkdir -p "$base"
    cat >"$base/rabbitmq.conf" <<EOF
listeners.tcp.local = 127.0.0.1:$port
management.tcp.ip = 127.0.0.1
management.tcp.port = $((port + 10000))
EOF
    echo "[rabbitmq_management]." >"$base/enabled_plugins"
    cat >"$base/env" <<EOF
export RABBITMQ_NODENAME=$name@localhost
export RABBITMQ_NODE_PORT=$port
export RABBITMQ_DIST_PORT=$((port + 20000))
export RABBITMQ_MNESIA_BASE=$base/mnesia
export RABBITMQ_LOG_BASE=$base/log
export RABBITMQ_PID_FILE=$base/pid
export RABBITMQ_CONFIG_FILE=$base/rabbitmq
export RABBITMQ_ENABLED_PLUGINS_FILE=$base/enabled_plugins
export RABBITBUS_TEST_AMQP_PORT=$port
export RABBITBUS_TEST_MANAGEMENT_PORT=$((port + 10000))
EOF
    chown -R rabbitmq:rabbitmq "$base" 2>/dev/null || true
    # shellcheck disable=SC1091
    source "$base/env"
    if ! rabbitmq-diagnostics -q ping >/dev/null 2>&1; then
        rabbitmq-server -detached >/dev/null 2>&1 || true
        # await_startup fails at once until the VM is up: wait for a ping first.
        for _ in $(seq 120); do rabbitmq-diagnostics -q ping >/dev/null 2>&1 && break; sleep 0.5; done
        rabbitmqctl -q await_startup --timeout 120
    fi
    echo "node $RABBITMQ_NODENAME on 127.0.0.1:$port; source $base/env"
    ;;
down)
    if [ -f "$base/env" ]; then
        # shellcheck disable=SC1091
        source "$base/env"
        rabbitmqctl -q stop >/dev/null 2>&1 || true
    fi
    rm -rf "$base"
    ;;
*)
    echo "usage: test_node.sh up NAME PORT | down NAME" >&2
    exit 2
    ;;
esac
