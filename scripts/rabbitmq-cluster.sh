#!/usr/bin/env bash
# Starts (or stops) a three-node RabbitMQ cluster beside the single broker on 127.0.0.1:5672,
# from the same Debian rabbitmq-server: nodes t1@localhost, t2@localhost and t3@localhost with
# AMQP on 127.0.0.1:5681-5683 and Erlang distribution on 25681-25683, each with its own config,
# data and log folders under TIDINGS_RABBITMQ_CLUSTER_DIR and an Erlang cookie of their own. The
# system broker, its config and its cookie are left alone.
#
#   scripts/rabbitmq-cluster.sh start     # about 20-30 s; safe to run again
#   scripts/rabbitmq-cluster.sh stop      # stops the three nodes by name
#   scripts/rabbitmq-cluster.sh ctl N ... # rabbitmqctl against node tN (stop_app, start_app, ...)
#   scripts/rabbitmq-cluster.sh kill N    # kills node tN's Erlang VM at once (a crashed node)
#
# A start with no node running begins from empty data folders: every run gets a fresh cluster.
#
# Needs root (the nodes run as user rabbitmq, like the system broker).
set -euo pipefail

BASE="${TIDINGS_RABBITMQ_CLUSTER_DIR:-/tmp/tidings-rabbitmq-cluster}"
NODES=(1 2 3)

log() { printf '[rabbitmq-cluster] %s\n' "$*" >&2; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

node_name() { printf 't%s@localhost' "$1"; }
amqp_port() { printf '568%s' "$1"; }
dist_port() { printf '2568%s' "$1"; }

cookie() { cat "$BASE/cookie"; }

# Environment of node N: everything of its own, nothing from /etc/rabbitmq.
node_env() {
  local n="$1"
  printf '%s\n' \
    "RABBITMQ_NODENAME=$(node_name "$n")" \
    "RABBITMQ_DIST_PORT=$(dist_port "$n")" \
    "RABBITMQ_CONFIG_FILE=$BASE/t$n.conf" \
    "RABBITMQ_CONF_ENV_FILE=$BASE/rabbitmq-env.conf" \
    "RABBITMQ_ADVANCED_CONFIG_FILE=$BASE/advanced.config" \
    "RABBITMQ_ENABLED_PLUGINS_FILE=$BASE/enabled_plugins" \
    "RABBITMQ_MNESIA_BASE=$BASE/data" \
    "RABBITMQ_LOG_BASE=$BASE/log" \
    "RABBITMQ_ERLANG_COOKIE=$(cookie)" \
    "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS=-kernel inet_dist_use_interface {127,0,0,1}"
}

# rabbitmqctl against node N with the cluster's cookie.
ctl() {
  local n="$1"
  shift
  rabbitmqctl -q -n "$(node_name "$n")" --erlang-cookie "$(cookie)" "$@"
}

prepare() {
  mkdir -p "$BASE/data" "$BASE/log"
  if [ ! -s "$BASE/cookie" ]; then
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 'a-f' 'A-F' >"$BASE/cookie"
  fi
  : >"$BASE/rabbitmq-env.conf"
  printf '[].\n' >"$BASE/advanced.config"
  printf '[].\n' >"$BASE/enabled_plugins"
  for n in "${NODES[@]}"; do
    cat >"$BASE/t$n.conf" <<EOF
listeners.tcp.local = 127.0.0.1:$(amqp_port "$n")
loopback_users = none
log.file.level = warning
log.console = false
EOF
  done
  chmod 400 "$BASE/cookie"
  chown -R rabbitmq:rabbitmq "$BASE"
  chmod 755 "$BASE"
}

start_node() {
  local n="$1"
  if port_open "$(amqp_port "$n")"; then
    if ctl "$n" ping >/dev/null 2>&1; then
      log "$(node_name "$n") is up already"
      return
    fi
    log "port $(amqp_port "$n") is taken by something other than $(node_name "$n")"
    exit 1
  fi
  for port in "$(amqp_port "$n")" "$(dist_port "$n")"; do
    if port_open "$port"; then
      log "port $port is taken by something else"
      exit 1
    fi
  done
  log "starting $(node_name "$n") on 127.0.0.1:$(amqp_port "$n")"
  (
    while IFS= read -r assignment; do export "${assignment?}"; done < <(node_env "$n")
    rabbitmq-server -detached >/dev/null 2>&1
  )
}

await_node() {
  local n="$1"
  for _ in $(seq 1 90); do
    if ctl "$n" await_startup --timeout 5 >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  log "$(node_name "$n") did not start; see $BASE/log"
  return 1
}

in_cluster() {
  ctl 1 cluster_status --formatter json 2>/dev/null | grep -q "\"$(node_name "$1")\""
}

start() {
  if [ "$(id -u)" != 0 ]; then
    log "needs root (the nodes run as user rabbitmq)"
    exit 1
  fi
  command -v rabbitmq-server >/dev/null 2>&1 || {
    log "rabbitmq-server is not installed (run scripts/services.sh)"
    exit 1
  }
  local running=0
  for n in "${NODES[@]}"; do port_open "$(amqp_port "$n")" && running=1; done
  if [ "$running" = 0 ]; then rm -rf "$BASE/data" "$BASE/log"; fi
  prepare
  for n in "${NODES[@]}"; do start_node "$n"; done
  for n in "${NODES[@]}"; do await_node "$n"; done
  for n in 2 3; do
    if in_cluster "$n"; then continue; fi
    log "joining $(node_name "$n") to $(node_name 1)"
    ctl "$n" stop_app >/dev/null 2>&1
    ctl "$n" reset >/dev/null 2>&1
    ctl "$n" join_cluster "$(node_name 1)" >/dev/null 2>&1
    ctl "$n" start_app >/dev/null 2>&1
    await_node "$n"
  done
  log "cluster up: amqp://guest:guest@127.0.0.1:5681, :5682, :5683"
}

stop() {
  [ -s "$BASE/cookie" ] || return 0
  for n in "${NODES[@]}"; do
    if ctl "$n" ping >/dev/null 2>&1; then
      log "stopping $(node_name "$n")"
      ctl "$n" stop >/dev/null 2>&1 || true
    fi
  done
}

kill_node() {
  local pid_file
  pid_file="$BASE/data/$(node_name "$1").pid"
  [ -s "$pid_file" ] || {
    log "no pid file for $(node_name "$1")"
    return 1
  }
  kill -9 "$(cat "$pid_file")"
  rm -f "$pid_file"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  kill) kill_node "$2" ;;
  ctl)
    shift
    ctl "$@"
    ;;
  *)
    log "usage: $0 start|stop|kill N|ctl N <rabbitmqctl command>"
    exit 2
    ;;
esac
