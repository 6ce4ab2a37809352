#!/usr/bin/env bash
# Runs the project's own MariaDB 10.11 and Redis 7 from var/svc, on loopback, without systemd.
#   scripts/services.sh up       start both (idempotent: running ones are left alone)
#   scripts/services.sh down     stop both, by pidfile only
#   scripts/services.sh redis-up|redis-down   Redis alone
#   scripts/services.sh status   say what runs
#   scripts/services.sh urls     print SHOPD_DB_URL=… and SHOPD_REDIS_URL=… for the running pair:
#                                their Unix sockets where they exist, TCP otherwise
# Ports: MariaDB 127.0.0.1:${DB_PORT:-13306}, Redis 127.0.0.1:${REDIS_PORT:-16379}; Unix sockets
# var/svc/mariadb/mariadb.sock and var/svc/redis/redis.sock (mode 700: this user only), the
# latter only when its path fits a socket address (107 bytes), else Redis is TCP only.
# MariaDB user shop/shop-pass owns database `shop` and the test databases `shopd_t_*`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${SHOPD_VAR:-$ROOT/var}/svc
DB_PORT=${DB_PORT:-13306}
REDIS_PORT=${REDIS_PORT:-16379}
DB_BUFFER_POOL=${DB_BUFFER_POOL:-512M}
READY_TIMEOUT=${READY_TIMEOUT:-60}
MY=$STATE/mariadb
RD=$STATE/redis
SOCK=$MY/mariadb.sock
MYPID=$MY/mariadb.pid
RPID=$RD/redis.pid
RSOCK=$RD/redis.sock
CNF=$MY/my.cnf

# pid_alive PIDFILE EXE: the pidfile names a live (not zombie) process of that binary.
pid_alive() {
  local f=$1 want=$2 p exe
  [ -s "$f" ] || return 1
  p=$(tr -dc 0-9 < "$f"); [ -n "$p" ] || return 1
  kill -0 "$p" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] || return 1
  exe="$(readlink "/proc/$p/exe" 2>/dev/null) $(cat "/proc/$p/comm" 2>/dev/null)"
  case "$exe" in *"$want"*) return 0 ;; *) return 1 ;; esac
}

sock_fits() { [ "${#1}" -le 107 ]; }  # sun_path holds 108 bytes with the NUL

. "$ROOT/scripts/lib/poll.sh"

mariadb_up() {
  mkdir -p "$MY/data" "$MY/tmp"
  local user_opt=
  [ "$(id -u)" = 0 ] && user_opt="user = root"
  # --defaults-file keeps /etc/mysql out. Durability: flush at every commit, as production.
  cat > "$CNF" <<CNF
[client]
socket = $SOCK
port = $DB_PORT

[mariadbd]
$user_opt
datadir = $MY/data
tmpdir = $MY/tmp
socket = $SOCK
pid-file = $MYPID
log-error = $MY/mariadb.err
port = $DB_PORT
bind-address = 127.0.0.1
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
innodb_buffer_pool_size = $DB_BUFFER_POOL
innodb_log_file_size = 256M
max_connections = 2000
thread_cache_size = 256
# A pool of threads (one group per CPU) instead of a thread per connection: shopd keeps up to
# SHOPD_THREADS connections per instance busy, far more than the host has cores, and with a
# thread each MariaDB spent its CPU switching between them. Measured in docs/PERFORMANCE.md
# ("MariaDB's thread pool"). A transaction waiting on a row lock lets another thread run.
thread_handling = pool-of-threads
${DB_EXTRA_CNF:-}
CNF
  if pid_alive "$MYPID" mariadbd; then
    echo "services: mariadb already running (pid $(cat "$MYPID"))"; return 0
  fi
  rm -f "$SOCK" "$SOCK.lock" "$MYPID"
  if [ ! -d "$MY/data/mysql" ]; then
    mariadb-install-db --defaults-file="$CNF" --auth-root-authentication-method=normal \
      --skip-test-db --skip-name-resolve ${user_opt:+--user=root} --datadir="$MY/data" \
      > "$MY/install-db.log" 2>&1 || { cat "$MY/install-db.log" >&2; return 1; }
  fi
  setsid nohup mariadbd --defaults-file="$CNF" >> "$MY/mariadb.out" 2>&1 < /dev/null &
  if ! wait_until "$READY_TIMEOUT" mariadb-admin --defaults-file="$CNF" -uroot --connect-timeout=1 ping; then
    echo "services: mariadb did not become ready" >&2; tail -n 30 "$MY/mariadb.err" >&2; return 1
  fi
  mariadb --defaults-file="$CNF" -uroot <<'SQL'
CREATE DATABASE IF NOT EXISTS shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'shop'@'localhost' IDENTIFIED BY 'shop-pass';
CREATE USER IF NOT EXISTS 'shop'@'%' IDENTIFIED BY 'shop-pass';
GRANT ALL PRIVILEGES ON `shop`.* TO 'shop'@'localhost', 'shop'@'%';
GRANT ALL PRIVILEGES ON `shopd\_t\_%`.* TO 'shop'@'localhost', 'shop'@'%';
-- The integration tests watch lock waits and kill connections to their own database.
GRANT PROCESS ON *.* TO 'shop'@'localhost', 'shop'@'%';
FLUSH PRIVILEGES;
SQL
  echo "services: mariadb ready on 127.0.0.1:$DB_PORT and $SOCK (pid $(cat "$MYPID"))"
}

redis_up() {
  mkdir -p "$RD"
  cat > "$RD/redis.conf" <<CNF
bind 127.0.0.1
protected-mode yes
port $REDIS_PORT
daemonize yes
pidfile $RPID
dir $RD
logfile $RD/redis.log
save ""
appendonly no
$(sock_fits "$RSOCK" && printf 'unixsocket %s\nunixsocketperm 700\n' "$RSOCK")
CNF
  if pid_alive "$RPID" redis; then
    echo "services: redis already running (pid $(cat "$RPID"))"; return 0
  fi
  rm -f "$RPID"
  sock_fits "$RSOCK" || echo "services: $RSOCK is longer than 107 bytes: redis on TCP only" >&2
  redis-server "$RD/redis.conf"
  redis_ready() { pid_alive "$RPID" redis && [ "$(redis-cli -p "$REDIS_PORT" ping)" = PONG ]; }
  if ! wait_until "$READY_TIMEOUT" redis_ready; then
    echo "services: redis did not become ready" >&2; tail -n 30 "$RD/redis.log" >&2; return 1
  fi
  echo "services: redis ready on 127.0.0.1:$REDIS_PORT$([ -S "$RSOCK" ] && echo " and $RSOCK") (pid $(cat "$RPID"))"
}

urls() {  # what shopd should use for the running pair: the sockets where they exist
  if [ -S "$SOCK" ] && sock_fits "$SOCK"; then
    echo "SHOPD_DB_URL=mysql://shop:shop-pass@localhost/shop?socket=$SOCK"
  else
    echo "SHOPD_DB_URL=mysql://shop:shop-pass@127.0.0.1:$DB_PORT/shop"
  fi
  if [ -S "$RSOCK" ] && sock_fits "$RSOCK"; then
    echo "SHOPD_REDIS_URL=unix://$RSOCK?db=0"
  else
    echo "SHOPD_REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0"
  fi
}

stop_pidfile() {  # name pidfile exe
  local name=$1 f=$2 want=$3 p
  if ! pid_alive "$f" "$want"; then rm -f "$f"; echo "services: $name not running"; return 0; fi
  p=$(tr -dc 0-9 < "$f")
  kill -TERM "$p"
  gone() { ! kill -0 "$p" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" = Z ]; }
  if ! wait_until 60 gone; then kill -KILL "$p" 2>/dev/null || true; fi
  rm -f "$f"
  echo "services: $name (pid $p) stopped"
}

status() {
  local rc=0
  if pid_alive "$MYPID" mariadbd; then echo "mariadb: running (pid $(cat "$MYPID"), port $DB_PORT)"; else echo "mariadb: stopped"; rc=1; fi
  if pid_alive "$RPID" redis; then echo "redis: running (pid $(cat "$RPID"), port $REDIS_PORT)"; else echo "redis: stopped"; rc=1; fi
  return $rc
}

case "${1:-}" in
  up) mariadb_up && redis_up ;;
  redis-up) redis_up ;;      # Redis alone (scripts/chaos.sh on a Galera cluster)
  redis-down) stop_pidfile redis "$RPID" redis ;;
  down) stop_pidfile redis "$RPID" redis; stop_pidfile mariadb "$MYPID" mariadbd ;;
  status) status ;;
  urls) urls ;;
  redis-pid) cat "$RPID" ;;
  *) echo "usage: $0 up|down|status|urls" >&2; exit 2 ;;
esac
