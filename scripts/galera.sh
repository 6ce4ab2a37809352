#!/usr/bin/env bash
# A 3-node MariaDB Galera cluster (Debian 12's galera-4 with mariadb-server 10.11) on loopback,
# from var/ha/galera-N, without systemd: the database half of `make cluster-ha` (issue 14).
#   scripts/galera.sh up          a fresh cluster: node 1 bootstraps it, nodes 2 and 3 join by
#                                 rsync SST; user shop/shop-pass owns `shop` and `shopd_t_*`
#   scripts/galera.sh down        stop every node, by pidfile only
#   scripts/galera.sh kill N      SIGKILL node N (a machine lost), for the failure tests
#   scripts/galera.sh start N     start node N again: it rejoins (IST, or SST) and is waited for
#   scripts/galera.sh status      say what runs and each node's wsrep state
#   scripts/galera.sh url         SHOPD_DB_URL for the three nodes, node 1 preferred
#   scripts/galera.sh sql N ARGS  the mariadb client as root on node N
# Ports (each node N = 1..3): SQL GALERA_PORT+N-1 (13311…), group communication 14567+10(N-1),
# IST 14568+10(N-1), SST 14569+10(N-1). A fresh cluster each `up`: it is a test cluster.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${SHOPD_VAR:-$ROOT/var}/ha
GALERA_PORT=${GALERA_PORT:-13311}
GCOMM_PORT=${GCOMM_PORT:-14567}
NODES=3
READY_TIMEOUT=${READY_TIMEOUT:-120}
PROVIDER=${GALERA_PROVIDER:-/usr/lib/galera/libgalera_smm.so}

log() { printf 'galera: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

dir_of() { echo "$STATE/galera-$1"; }
sql_port() { echo $((GALERA_PORT + $1 - 1)); }
gcomm_port() { echo $((GCOMM_PORT + 10 * ($1 - 1))); }

. "$ROOT/scripts/lib/poll.sh"

pid_of() {  # the pid of node N's mariadbd, if it runs
  local f p
  f="$(dir_of "$1")/mariadb.pid"
  [ -s "$f" ] || return 1
  p=$(tr -dc 0-9 < "$f"); [ -n "$p" ] || return 1
  kill -0 "$p" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] || return 1
  case "$(cat "/proc/$p/comm" 2>/dev/null)" in mariadbd*|mysqld*) echo "$p" ;; *) return 1 ;; esac
}

client() {  # client N [args…]: the mariadb client as root on node N's socket
  local n=$1; shift
  mariadb --defaults-file="$(dir_of "$n")/my.cnf" -uroot "$@"
}

# synced N: node N is Synced in the primary component and takes queries.
synced() {
  [ "$(client "$1" -N -e "SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE_COMMENT'" 2>/dev/null)" = Synced ]
}

# reachable_by_mysql DIR: as root, lets the mysql user pass through DIR's parents. A checkout
# under `mktemp -d` (mode 0700) would keep the nodes out of their own data directories; only
# the search bit is added, to the parents that lack it, and each is said.
reachable_by_mysql() {
  local p
  p=$(dirname "$1")
  while [ "$p" != / ]; do
    if ! runuser -u mysql -- test -x "$p" 2>/dev/null; then
      chmod o+x "$p"
      log "gave others the search bit on $p, for the nodes (they run as mysql)"
    fi
    p=$(dirname "$p")
  done
}

write_cnf() {
  local n=$1 d addrs='' i user_opt=
  d=$(dir_of "$n")
  for ((i = 1; i <= NODES; i++)); do addrs+="${addrs:+,}127.0.0.1:$(gcomm_port "$i")"; done
  # As root the nodes run as mysql: the joiner's rsync daemon (SST) would run as nobody and could
  # not write the data directory of a root-run node.
  [ "$(id -u)" = 0 ] && user_opt="user = mysql"
  mkdir -p "$d/data" "$d/tmp"
  if [ "$(id -u)" = 0 ]; then
    chown -R mysql:mysql "$d"
    reachable_by_mysql "$d"
  fi
  cat > "$d/my.cnf" <<CNF
[client]
socket = $d/mariadb.sock
port = $(sql_port "$n")

[mariadbd]
$user_opt
datadir = $d/data
tmpdir = $d/tmp
socket = $d/mariadb.sock
pid-file = $d/mariadb.pid
log-error = $d/mariadb.err
port = $(sql_port "$n")
bind-address = 127.0.0.1
skip-name-resolve
character-set-server = utf8mb4
collation-server = utf8mb4_unicode_ci
innodb_buffer_pool_size = ${GALERA_BUFFER_POOL:-256M}
innodb_log_file_size = 128M
innodb_flush_log_at_trx_commit = 1
max_connections = 1000
# Galera: row-based replication, interleaved auto-increment locks, InnoDB only.
binlog_format = ROW
default_storage_engine = InnoDB
innodb_autoinc_lock_mode = 2
wsrep_on = ON
wsrep_provider = $PROVIDER
wsrep_cluster_name = shopd
wsrep_cluster_address = gcomm://$addrs
wsrep_node_name = node$n
wsrep_node_address = 127.0.0.1:$(gcomm_port "$n")
wsrep_provider_options = "gmcast.listen_addr=tcp://127.0.0.1:$(gcomm_port "$n");ist.recv_addr=127.0.0.1:$(($(gcomm_port "$n") + 1));gcache.size=256M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT6S"
wsrep_sst_method = rsync
wsrep_sst_receive_address = 127.0.0.1:$(($(gcomm_port "$n") + 2))
CNF
}

# start_node N [--wsrep-new-cluster]: starts node N detached and waits until it is Synced.
start_node() {
  local n=$1 d; shift
  d=$(dir_of "$n")
  ! pid_of "$n" >/dev/null || { log "node $n already runs (pid $(pid_of "$n"))"; return 0; }
  rm -f "$d/mariadb.sock" "$d/mariadb.pid"
  setsid nohup mariadbd --defaults-file="$d/my.cnf" "$@" >> "$d/mariadb.out" 2>&1 < /dev/null &
  if ! wait_until "$READY_TIMEOUT" synced "$n"; then
    tail -n 30 "$d/mariadb.err" >&2; die "node $n did not become Synced"
  fi
  log "node $n Synced on 127.0.0.1:$(sql_port "$n") (pid $(pid_of "$n"))"
}

stop_node() {
  local n=$1 p
  p=$(pid_of "$n") || return 0
  kill -TERM "$p"
  gone() { ! kill -0 "$p" 2>/dev/null; }
  wait_until 60 gone || kill -KILL "$p" 2>/dev/null || true
  log "node $n (pid $p) stopped"
}

up() {
  local n d user_opt=
  [ "$(id -u)" = 0 ] && user_opt=1
  for ((n = 1; n <= NODES; n++)); do ! pid_of "$n" >/dev/null || die "node $n runs: scripts/galera.sh down first"; done
  [ -e "$PROVIDER" ] || die "$PROVIDER is missing (package galera-4)"
  rm -rf "$STATE"/galera-*
  for ((n = 1; n <= NODES; n++)); do
    write_cnf "$n"
    d=$(dir_of "$n")
    mariadb-install-db --defaults-file="$d/my.cnf" --auth-root-authentication-method=normal \
      --skip-test-db --skip-name-resolve --datadir="$d/data" ${user_opt:+--user=mysql} \
      > "$d/install-db.log" 2>&1 \
      || { cat "$d/install-db.log" >&2; die "mariadb-install-db failed for node $n"; }
  done
  start_node 1 --wsrep-new-cluster
  client 1 <<'SQL'
CREATE DATABASE IF NOT EXISTS shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE USER IF NOT EXISTS 'shop'@'localhost' IDENTIFIED BY 'shop-pass';
CREATE USER IF NOT EXISTS 'shop'@'%' IDENTIFIED BY 'shop-pass';
GRANT ALL PRIVILEGES ON `shop`.* TO 'shop'@'localhost', 'shop'@'%';
GRANT ALL PRIVILEGES ON `shopd\_t\_%`.* TO 'shop'@'localhost', 'shop'@'%';
GRANT PROCESS ON *.* TO 'shop'@'localhost', 'shop'@'%';
FLUSH PRIVILEGES;
SQL
  for ((n = 2; n <= NODES; n++)); do start_node "$n"; done
  log "cluster of $NODES nodes: $(client 1 -N -e "SHOW STATUS LIKE 'wsrep_cluster_size'" | awk '{print $2}') in the primary component"
}

down() {
  local n
  for ((n = NODES; n >= 1; n--)); do stop_node "$n"; done
}

status() {
  local n p
  for ((n = 1; n <= NODES; n++)); do
    if p=$(pid_of "$n"); then
      echo "node $n: running (pid $p, port $(sql_port "$n"), $(client "$n" -N -e "SHOW STATUS LIKE 'wsrep_local_state_comment'" 2>/dev/null | awk '{print $2}'))"
    else
      echo "node $n: stopped"
    fi
  done
}

url() {
  local n nodes=''
  for ((n = 1; n <= NODES; n++)); do nodes+="${nodes:+,}127.0.0.1:$(sql_port "$n")"; done
  echo "mysql://shop:shop-pass@$nodes/shop"
}

node_arg() { [[ ${1:-} =~ ^[1-3]$ ]] || die "node must be 1, 2 or 3"; echo "$1"; }

case "${1:-}" in
  up) up ;;
  down) down ;;
  kill) n=$(node_arg "${2:-}"); p=$(pid_of "$n") || die "node $n does not run"; kill -KILL "$p"; log "node $n (pid $p) killed" ;;
  start) n=$(node_arg "${2:-}"); write_cnf "$n"; start_node "$n" ;;
  stop) n=$(node_arg "${2:-}"); stop_node "$n" ;;
  status) status ;;
  url) url ;;
  pid) pid_of "$(node_arg "${2:-}")" ;;
  sql) n=$(node_arg "${2:-}"); shift 2; client "$n" "$@" ;;
  *) echo "usage: $0 up|down|kill N|start N|stop N|status|url|pid N|sql N ARGS" >&2; exit 2 ;;
esac
