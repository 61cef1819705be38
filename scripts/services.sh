#!/usr/bin/env bash
# Starts what the test suite needs, installing it where missing: RabbitMQ on 127.0.0.1:5672,
# PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`), Debian's kcat (the tests start
# librdkafka's mock Kafka cluster with it), amqp-tools, openssl and chromium.
# Safe to run again. The RabbitMQ cluster tests start a three-node cluster beside the broker
# themselves, with scripts/rabbitmq-cluster.sh (it can also be started by hand).
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_updated=0
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    log "need root to install: $* (install it, or run this script as root)"
    return 1
  fi
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# RabbitMQ
if [ -n "${RABBITMQ_URL:-}" ]; then
  log "RABBITMQ_URL is set: using that broker"
elif port_open 5672; then
  log "RabbitMQ is up on 127.0.0.1:5672"
else
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    log "installing rabbitmq-server"
    apt_install rabbitmq-server
  fi
  log "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 90); do
    port_open 5672 && break
    sleep 1
  done
  rabbitmqctl await_startup >/dev/null 2>&1 || true
  port_open 5672 || { log "RabbitMQ did not come up on 127.0.0.1:5672"; exit 1; }
  log "RabbitMQ is up"
fi

# PostgreSQL, for the outbox and inbox (@tidings/persistence-postgres): trust auth for local
# connections and a database `test`, which the tests use as user postgres.
pg_cluster_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }
if [ -n "${DATABASE_URL:-}" ]; then
  log "DATABASE_URL is set: using that server"
elif port_open 5432; then
  log "PostgreSQL is up on 127.0.0.1:5432"
else
  if [ -z "$(pg_cluster_version)" ]; then
    log "installing postgresql"
    apt_install postgresql
  fi
  version="$(pg_cluster_version)"
  [ -n "$version" ] || { log "no PostgreSQL cluster found after installing postgresql"; exit 1; }
  conf_dir="/etc/postgresql/$version/main"
  # Tests connect as postgres without a password over TCP on 127.0.0.1 only.
  if [ -w "$conf_dir/pg_hba.conf" ] && ! grep -q '^host all all 127.0.0.1/32 trust' "$conf_dir/pg_hba.conf"; then
    sed -i '1i host all all 127.0.0.1/32 trust' "$conf_dir/pg_hba.conf"
  fi
  log "starting PostgreSQL $version"
  # The package's install may have started the cluster already: then reload, for pg_hba.conf.
  pg_ctlcluster --skip-systemctl-redirect "$version" main start ||
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
  for _ in $(seq 1 30); do
    port_open 5432 && break
    sleep 1
  done
  port_open 5432 || { log "PostgreSQL did not come up on 127.0.0.1:5432"; exit 1; }
  log "PostgreSQL is up"
fi
if [ -z "${DATABASE_URL:-}" ] && command -v psql >/dev/null 2>&1; then
  if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>/dev/null | grep -q 1; then
    log "creating database test"
    psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE test' >/dev/null || log "could not create database test"
  fi
fi

# kcat, for librdkafka's mock Kafka cluster (the Kafka tests start and stop it themselves)
if [ -n "${KAFKA_BROKERS:-}" ]; then
  log "KAFKA_BROKERS is set: using that cluster"
elif command -v kcat >/dev/null 2>&1; then
  log "kcat is installed"
else
  log "installing kcat"
  apt_install kcat || log "could not install kcat: the Kafka tests will fail"
fi

# amqp-tools, for the test that runs docs/wire-format.md's CLI example against RabbitMQ
if command -v amqp-publish >/dev/null 2>&1; then
  log "amqp-tools is installed"
else
  log "installing amqp-tools"
  apt_install amqp-tools || log "could not install amqp-tools: the RabbitMQ CLI test will fail"
fi

# openssl, for the certificate of the Service Bus test peer's management endpoint (HTTPS)
if command -v openssl >/dev/null 2>&1; then
  log "openssl is installed"
else
  log "installing openssl"
  apt_install openssl || log "could not install openssl: the Service Bus tests will fail"
fi

# chromium, for the web-callback sample's browser test (playwright-core drives /usr/bin/chromium)
if [ -x /usr/bin/chromium ]; then
  log "chromium is installed"
else
  log "installing chromium"
  apt_install chromium || log "could not install chromium: the web-callback browser test will fail"
fi
