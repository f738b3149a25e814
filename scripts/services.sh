#!/usr/bin/env bash
# Starts the local services the tests talk to, when they are not already up: PostgreSQL
# (127.0.0.1:5432, database `test`) and Redis (127.0.0.1:6379). Idempotent; prints what it did.
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- ; }

if ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  else
    echo "services: PostgreSQL is not installed (apt-get install postgresql); tests that need it will fail" >&2
  fi
fi
if ! port_open 6379; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "services: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  else
    echo "services: Redis is not installed (apt-get install redis-server); tests that need it will fail" >&2
  fi
fi
for i in $(seq 1 30); do
  port_open 5432 && port_open 6379 && exit 0
  sleep 1
done
echo "services: PostgreSQL or Redis did not come up" >&2
exit 0
