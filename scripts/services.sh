#!/usr/bin/env bash
# Make sure the services the tests talk to are installed and running (idempotent).
# PostgreSQL: the catalog's production database. Installed with apt-get when missing.
# Storage servers (Apache httpd, ...): installed only; the tests start their own instances.
set -euo pipefail

log() { printf 'services: %s\n' "$*"; }

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }

ensure_postgres() {
  if postgres_up; then log "PostgreSQL is up"; return; fi
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    log "installing PostgreSQL"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  conf="/etc/postgresql/$version/main/pg_hba.conf"
  if ! grep -q "^host all all 127.0.0.1/32 trust" "$conf"; then
    sed -i '1i host all all 127.0.0.1/32 trust' "$conf"
  fi
  log "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do postgres_up && break; sleep 1; done
  postgres_up || { log "PostgreSQL did not start"; exit 1; }
}

# Apache httpd with mod_dav and mod_ssl: the WebDAV storage tests start their own (tests/servers).
ensure_apache() {
  if [ -x /usr/sbin/apache2 ] || command -v apache2 >/dev/null 2>&1; then
    log "Apache httpd is installed"; return
  fi
  log "installing Apache httpd"
  apt_install apache2
}

# XRootD with XrdHttp and HTTP-TPC, and xrdcp/xrdfs (the server runs xrdcp for root:// third-party
# copies): installed only; the root:// tests start their own server (tests/servers/xrootd.py).
# The Python client comes from PyPI (the xrootd extra in pyproject.toml), not from python3-xrootd,
# which is built for Debian's python3 and not the venv's.
ensure_xrootd() {
  local package missing=()
  for package in xrootd-server xrootd-server-plugins xrootd-plugins xrootd-client \
      xrootd-client-http-plugins; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" \
      || missing+=("$package")
  done
  if [ ${#missing[@]} -eq 0 ]; then log "XRootD is installed"; return; fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# RabbitMQ with its STOMP plugin (port 61613): the event sender's STOMP tests publish to it
# (guest/guest on 127.0.0.1, the default). The plugin is enabled online when the node is up,
# offline otherwise (it is then loaded when the node starts).
ensure_rabbitmq() {
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    log "installing RabbitMQ"
    apt_install rabbitmq-server
  fi
  if ! rabbitmq-plugins list -e -m 2>/dev/null | grep -qx rabbitmq_stomp; then
    log "enabling RabbitMQ's STOMP plugin"
    rabbitmq-plugins enable rabbitmq_stomp >/dev/null 2>&1 \
      || rabbitmq-plugins enable --offline rabbitmq_stomp >/dev/null
  fi
  if ! port_open 5672; then
    log "starting RabbitMQ"
    rabbitmq-server -detached || true
  fi
  for _ in $(seq 1 60); do port_open 5672 && port_open 61613 && break; sleep 1; done
  if port_open 61613; then log "RabbitMQ (STOMP 61613) is up"; else
    log "RabbitMQ's STOMP port 61613 did not open"; exit 1; fi
}

# NATS with JetStream (port 4222): the event sender's JetStream tests publish to it.
ensure_nats() {
  if [ ! -x /usr/sbin/nats-server ]; then
    log "installing nats-server"
    apt_install nats-server
  fi
  if ! port_open 4222; then
    log "starting nats-server with JetStream"
    mkdir -p /var/lib/nats-server
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  fi
  for _ in $(seq 1 30); do port_open 4222 && break; sleep 1; done
  if port_open 4222; then log "NATS (JetStream 4222) is up"; else
    log "NATS did not start"; exit 1; fi
}

# Chromium (Debian's): the dashboard tests drive it with Playwright (never a downloaded browser).
ensure_chromium() {
  if [ -x /usr/bin/chromium ]; then log "Chromium is installed"; return; fi
  log "installing Chromium"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends chromium >/dev/null
}

ensure_postgres
ensure_apache
ensure_xrootd
ensure_rabbitmq
ensure_nats
ensure_chromium
