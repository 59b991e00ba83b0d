#!/usr/bin/env bash
# Make the services the test suite talks to reachable: PostgreSQL, Redis and clamd.
# Starts a local server that is installed but stopped, installs clamd from Debian's
# packages when it is missing (it runs on the project's own test signature DB). Any
# service still unreachable is an error: the suite never skips a real part.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VAR="$ROOT/.var"
mkdir -p "$VAR"

PG_HOST=127.0.0.1 PG_PORT=5432
REDIS_PORT=6379
CLAMD_PORT=${CLAMD_TEST_PORT:-3310}

say() { echo "services: $*"; }
fail() { echo "services: ERROR: $*" >&2; exit 1; }
wait_for() {  # wait_for SECONDS CHECK...
  local tries=$(( $1 * 5 )); shift
  for _ in $(seq "$tries"); do "$@" && return 0; sleep 0.2; done
  return 1
}
apt_install() {
  command -v apt-get >/dev/null || return 1
  [ "$(id -u)" = 0 ] || return 1
  say "installing $* from Debian's packages"
  [ -n "$(ls -A /var/lib/apt/lists 2>/dev/null | grep -v lock)" ] || apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# --- PostgreSQL ---------------------------------------------------------------------
pg_up() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" 2>/dev/null; }
if ! pg_up; then
  command -v pg_ctlcluster >/dev/null || apt_install postgresql || true
  if command -v pg_ctlcluster >/dev/null; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    say "starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
  wait_for 20 pg_up || fail "PostgreSQL is not reachable on $PG_HOST:$PG_PORT"
fi

# --- Redis ----------------------------------------------------------------------------
redis_up() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG; }
if ! redis_up; then
  command -v redis-server >/dev/null || apt_install redis-server || true
  command -v redis-server >/dev/null || fail "redis-server is not installed"
  say "starting Redis on $REDIS_PORT"
  redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" --save "" \
    --appendonly no --dir "$VAR" --logfile "$VAR/redis-$REDIS_PORT.log"
  wait_for 10 redis_up || fail "Redis is not reachable on 127.0.0.1:$REDIS_PORT"
fi

# --- clamd, on the project's own signature DB -----------------------------------------
clamd_up() {
  ( exec 3<>"/dev/tcp/127.0.0.1/$CLAMD_PORT" || exit 1
    printf 'zPING\0' >&3
    IFS= read -r -t 2 -d '' reply <&3 || true
    [ "$reply" = "PONG" ] ) 2>/dev/null
}
if ! clamd_up; then
  command -v clamd >/dev/null || [ -x /usr/sbin/clamd ] || apt_install clamav-daemon || true
  CLAMD=$(command -v clamd || echo /usr/sbin/clamd)
  [ -x "$CLAMD" ] || fail "clamd is not installed (Debian package clamav-daemon)"
  mkdir -p "$VAR/clamd"
  cat > "$VAR/clamd/clamd.conf" <<CONF
TCPSocket $CLAMD_PORT
TCPAddr 127.0.0.1
DatabaseDirectory $ROOT/tests/clamav
PidFile $VAR/clamd/clamd.pid
LogFile $VAR/clamd/clamd.log
TemporaryDirectory /tmp
Foreground no
CONF
  say "starting clamd on $CLAMD_PORT with tests/clamav signatures"
  "$CLAMD" --config-file="$VAR/clamd/clamd.conf"
  wait_for 30 clamd_up || fail "clamd is not answering on 127.0.0.1:$CLAMD_PORT (see $VAR/clamd/clamd.log)"
fi
say "PostgreSQL, Redis and clamd are up"
