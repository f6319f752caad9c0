#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, beside the node on 127.0.0.1:5672.
#
#   scripts/cluster.sh up        start rbcluster1..3, join 2 and 3 to 1, wait for 3 running nodes
#   scripts/cluster.sh down      stop the three nodes and remove their data and logs
#   scripts/cluster.sh status    the cluster's nodes (running or not)
#   scripts/cluster.sh urls      the AMQP URLs of the three nodes, comma separated
#   scripts/cluster.sh kill N    SIGKILL node N's Erlang VM (tests: a node lost)
#   scripts/cluster.sh stop N    stop node N cleanly
#   scripts/cluster.sh start N   start node N again (it rejoins the cluster it was in)
#   scripts/cluster.sh wait [K]  wait until K (default 3) nodes of the cluster are running
#
# Node N is rbcluster<N>@$RABBITBUS_CLUSTER_HOST (default localhost, as the local node is
# rabbit@localhost here), AMQP on 127.0.0.1:568N, Erlang distribution on 2568N, management
# on 127.0.0.1:1568N, data, logs, pid file, config and enabled-plugins file under
# $RABBITBUS_CLUSTER_DIR (default /tmp/rabbitbus-cluster). The nodes run as the `rabbitmq`
# user with its Erlang cookie (/var/lib/rabbitmq/.erlang.cookie). Every rabbitmqctl here is
# given `-n` one of these nodes: the node on 5672 is never touched. Partition handling is
# RabbitMQ's default (ignore): with pause_minority a node left alone pauses and refuses
# connections, so clients would see BrokerUnavailable, not the quorum queues' own errors.
set -euo pipefail

BASE=${RABBITBUS_CLUSTER_DIR:-/tmp/rabbitbus-cluster}
HOST=${RABBITBUS_CLUSTER_HOST:-localhost}
RABBIT_BIN=${RABBITBUS_RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}
ALL=(1 2 3)
WAIT_SECONDS=${RABBITBUS_CLUSTER_WAIT:-120}

node() { echo "rbcluster$1@$HOST"; }
amqp_port() { echo $((5680 + $1)); }
dist_port() { echo $((25680 + $1)); }
mgmt_port() { echo $((15680 + $1)); }
dir() { echo "$BASE/node$1"; }

# as_rabbitmq CMD...: CMD as the rabbitmq user, with its home (and so its Erlang cookie).
as_rabbitmq() {
    if [ "$(id -u)" = 0 ]; then
        (cd /var/lib/rabbitmq && runuser -u rabbitmq -- env HOME=/var/lib/rabbitmq "$@")
    else
        (cd /var/lib/rabbitmq && env HOME=/var/lib/rabbitmq "$@")
    fi
}

# ctl N ARGS...: rabbitmqctl on node N (never without -n).
ctl() {
    local n=$1
    shift
    as_rabbitmq "$RABBIT_BIN/rabbitmqctl" -q -n "$(node "$n")" "$@"
}

# quiet CMD...: CMD's output only when it fails.
quiet() {
    local out
    if ! out=$("$@" 2>&1); then
        echo "failed: $*" >&2
        echo "$out" >&2
        return 1
    fi
}

prepare() {
    local n=$1 d
    d=$(dir "$n")
    mkdir -p "$d/mnesia" "$d/log"
    cat >"$d/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$(amqp_port "$n")
management.tcp.ip = 127.0.0.1
management.tcp.port = $(mgmt_port "$n")
loopback_users.guest = true
EOF
    echo "[rabbitmq_management]." >"$d/enabled_plugins"
    if [ "$(id -u)" = 0 ]; then chown -R rabbitmq:rabbitmq "$BASE"; fi
}

start_node() {
    local n=$1 d
    d=$(dir "$n")
    [ -f "$d/rabbitmq.conf" ] || prepare "$n"
    if ctl "$n" ping >/dev/null 2>&1; then return 0; fi
    # rabbitmq-server -detached returns once the VM is spawned; await_startup waits for it.
    as_rabbitmq \
        RABBITMQ_NODENAME="$(node "$n")" \
        RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
        RABBITMQ_NODE_PORT="$(amqp_port "$n")" \
        RABBITMQ_DIST_PORT="$(dist_port "$n")" \
        RABBITMQ_MNESIA_BASE="$d/mnesia" \
        RABBITMQ_LOG_BASE="$d/log" \
        RABBITMQ_PID_FILE="$d/pid" \
        RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" \
        "$RABBIT_BIN/rabbitmq-server" -detached >>"$d/log/startup.log" 2>&1
}

await_node() {
    # await_startup fails at once while the VM has not registered its name yet: try again.
    local n=$1 deadline=$((SECONDS + WAIT_SECONDS))
    until ctl "$n" await_startup --timeout 10 >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "$(node "$n") did not start within ${WAIT_SECONDS}s: see $(dir "$n")/log/" >&2
            tail -n 20 "$(dir "$n")/log/startup.log" >&2 || true
            return 1
        fi
        sleep 0.5
    done
}

# running_count: how many of the cluster's nodes are running, as node 1 (or any up node) sees it.
running_count() {
    local n out
    for n in "${ALL[@]}"; do
        if out=$(ctl "$n" cluster_status --formatter json 2>/dev/null); then
            python3 -c 'import json,sys; print(len(json.load(sys.stdin)["running_nodes"]))' <<<"$out"
            return 0
        fi
    done
    echo 0
}

wait_running() {
    local want=${1:-3} deadline=$((SECONDS + WAIT_SECONDS))
    until [ "$(running_count)" -ge "$want" ]; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "the cluster has $(running_count) running nodes, not $want, after ${WAIT_SECONDS}s" >&2
            return 1
        fi
        sleep 1
    done
}

joined() {
    # joined N: node N's cluster includes node 1.
    ctl "$1" cluster_status --formatter json 2>/dev/null |
        python3 -c 'import json,sys; sys.exit(sys.argv[1] not in json.load(sys.stdin)["disk_nodes"])' "$(node 1)"
}

up() {
    local n
    for n in "${ALL[@]}"; do start_node "$n"; done
    for n in "${ALL[@]}"; do await_node "$n"; done
    for n in 2 3; do
        if joined "$n"; then continue; fi
        quiet ctl "$n" stop_app
        quiet ctl "$n" reset
        quiet ctl "$n" join_cluster "$(node 1)"
        quiet ctl "$n" start_app
    done
    wait_running 3
    status
}

pid_of() {
    local f
    f="$(dir "$1")/pid"
    [ -s "$f" ] && cat "$f"
}

kill_node() {
    local n=$1 pid
    pid=$(pid_of "$n") || { echo "no pid file for $(node "$n")" >&2; return 1; }
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}

stop_node() {
    local n=$1 pid
    ctl "$n" stop >/dev/null 2>&1 || true
    if pid=$(pid_of "$n"); then
        while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    fi
}

down() {
    local n pid
    for n in "${ALL[@]}"; do stop_node "$n"; done
    for n in "${ALL[@]}"; do
        # A node that would not stop: its VM alone (by its own pid file).
        if pid=$(pid_of "$n") && kill -0 "$pid" 2>/dev/null; then kill_node "$n"; fi
    done
    rm -rf "$BASE"
}

status() {
    local n state
    for n in "${ALL[@]}"; do
        if ctl "$n" ping >/dev/null 2>&1; then state=running; else state=down; fi
        printf '%s\tamqp://127.0.0.1:%s\tmanagement http://127.0.0.1:%s\t%s\n' \
            "$(node "$n")" "$(amqp_port "$n")" "$(mgmt_port "$n")" "$state"
    done
    echo "running nodes: $(running_count)"
}

urls() {
    local n out=()
    for n in "${ALL[@]}"; do out+=("amqp://guest:guest@127.0.0.1:$(amqp_port "$n")/"); done
    (IFS=,; echo "${out[*]}")
}

check_node_arg() {
    case ${1:-} in
        1 | 2 | 3) ;;
        *) echo "usage: $0 $2 1|2|3" >&2; exit 2 ;;
    esac
}

case ${1:-} in
    up) up ;;
    down) down ;;
    status) status ;;
    urls) urls ;;
    kill) check_node_arg "${2:-}" kill; kill_node "$2" ;;
    stop) check_node_arg "${2:-}" stop; stop_node "$2" ;;
    start) check_node_arg "${2:-}" start; start_node "$2"; await_node "$2" ;;
    wait) wait_running "${2:-3}" ;;
    *)
        echo "usage: $0 up|down|status|urls|kill N|stop N|start N|wait [K]" >&2
        exit 2
        ;;
esac
