#!/usr/bin/env bash
# Makes a fresh machine ready to run fitlamp's demo and tests: pnpm, dependencies, a running
# Postgres and Redis, and (with --browser) Chromium for the browser tests. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bootstrap] %s\n' "$*" >&2; }

if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "12.4.2" ]; then
  log "installing pnpm 12.4.2"
  npm install -g pnpm@12.4.2 >/dev/null 2>&1
fi

log "installing dependencies (frozen lockfile)"
pnpm install --frozen-lockfile --reporter=silent

pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }
redis_up() { [ "$(redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null)" = "PONG" ]; }

if ! pg_up; then
  log "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
  pg_up || { log "PostgreSQL is not reachable on 127.0.0.1:5432; start it and try again"; exit 1; }
fi

if ! redis_up; then
  log "starting Redis"
  if command -v redis-server >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  fi
  for _ in $(seq 1 30); do redis_up && break; sleep 1; done
  redis_up || { log "Redis is not reachable on 127.0.0.1:6379; start it and try again"; exit 1; }
fi

if [ "${1:-}" = "--browser" ] && ! [ -x /usr/bin/chromium ]; then
  log "installing Chromium (Debian package) for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
fi
log "ready"
