#!/usr/bin/env bash
# Redis 7 run by Redis Sentinel on loopback, from var/ha/redis-N and var/ha/sentinel-N, without
# systemd: the Redis half of `make cluster-ha` (issue 14). redis-server --sentinel is the
# Sentinel (Debian's redis-sentinel package only adds a systemd unit).
#   scripts/sentinel.sh up           fresh: redis 1 the master, redis 2 its replica, three
#                                    Sentinels watching them as "shopd" (quorum 2), waited for
#                                    until the Sentinels agree (SENTINEL CKQUORUM)
#   scripts/sentinel.sh down         stop every one, by pidfile only
#   scripts/sentinel.sh kill-master  SIGKILL of the master the Sentinels name; prints its N
#   scripts/sentinel.sh start N      start redis N again, as a replica of the master named now
#                                    (after waiting until that is another one)
#   scripts/sentinel.sh master       host:port of the master the Sentinels name
#   scripts/sentinel.sh sentinels    the value for SHOPD_REDIS_SENTINELS
#   scripts/sentinel.sh status       say what runs, and each one's role
#   scripts/sentinel.sh pid N        the pid of redis N
# Ports: redis N = REDIS_HA_PORT+N-1 (16391, 16392), Sentinel N = SENTINEL_PORT+N-1 (26391..).
# No persistence: a Redis that restarts is empty, as the tests want it (shopd's data is in
# MariaDB; src/redis/lineage.h says what happens to the keys).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
STATE=${SHOPD_VAR:-$ROOT/var}/ha
REDIS_HA_PORT=${REDIS_HA_PORT:-16391}
SENTINEL_PORT=${SENTINEL_PORT:-26391}
MASTER_NAME=${SHOPD_REDIS_MASTER:-shopd}
REDISES=2
SENTINELS=3
READY_TIMEOUT=${READY_TIMEOUT:-60}

log() { printf 'sentinel: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

redis_port() { echo $((REDIS_HA_PORT + $1 - 1)); }
sentinel_port() { echo $((SENTINEL_PORT + $1 - 1)); }

. "$ROOT/scripts/lib/poll.sh"

pid_in() {  # pid_in PIDFILE: the pid of the redis-server it names, if that runs
  local p
  [ -s "$1" ] || return 1
  p=$(tr -dc 0-9 < "$1"); [ -n "$p" ] || return 1
  kill -0 "$p" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] || return 1
  case "$(cat "/proc/$p/comm" 2>/dev/null)" in redis-server*|redis-sentinel*) echo "$p" ;; *) return 1 ;; esac
}
redis_pid() { pid_in "$STATE/redis-$1/redis.pid"; }
sentinel_pid() { pid_in "$STATE/sentinel-$1/sentinel.pid"; }

answers() { [ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ]; }

# start_redis N [MASTER_PORT]: redis N detached (a replica of MASTER_PORT when given).
start_redis() {
  local n=$1 d port
  d="$STATE/redis-$n"; port=$(redis_port "$n")
  ! redis_pid "$n" >/dev/null || { log "redis $n already runs"; return 0; }
  mkdir -p "$d"
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$d" \
    --daemonize yes --pidfile "$d/redis.pid" --logfile "$d/redis.log" \
    ${2:+--replicaof 127.0.0.1 "$2"}
  wait_until 20 answers "$port" || { tail -n 20 "$d/redis.log" >&2; die "redis $n did not answer"; }
  log "redis $n on 127.0.0.1:$port (pid $(redis_pid "$n"))${2:+, replica of 127.0.0.1:$2}"
}

start_sentinel() {
  local n=$1 d port
  d="$STATE/sentinel-$n"; port=$(sentinel_port "$n")
  mkdir -p "$d"
  # Sentinel rewrites its file with what it learns (replicas, peers, the current master).
  cat > "$d/sentinel.conf" <<CONF
port $port
bind 127.0.0.1
daemonize yes
pidfile $d/sentinel.pid
logfile $d/sentinel.log
dir $d
sentinel monitor $MASTER_NAME 127.0.0.1 $(redis_port 1) 2
sentinel down-after-milliseconds $MASTER_NAME 1000
sentinel failover-timeout $MASTER_NAME 5000
sentinel parallel-syncs $MASTER_NAME 1
CONF
  redis-server "$d/sentinel.conf" --sentinel
  wait_until 20 answers "$port" || { tail -n 20 "$d/sentinel.log" >&2; die "Sentinel $n did not answer"; }
}

# agreed: every Sentinel sees the replica and a quorum of its peers.
agreed() {
  local n out
  for ((n = 1; n <= SENTINELS; n++)); do
    out=$(redis-cli -p "$(sentinel_port "$n")" sentinel ckquorum "$MASTER_NAME" 2>/dev/null) || return 1
    [[ $out == OK* ]] || return 1
    [ "$(redis-cli -p "$(sentinel_port "$n")" sentinel replicas "$MASTER_NAME" | grep -c '^flags$')" -ge 1 ] || return 1
    [[ $out == *" $SENTINELS usable"* ]] || return 1
  done
}

up() {
  local n
  for ((n = 1; n <= REDISES; n++)); do ! redis_pid "$n" >/dev/null || die "redis $n runs: scripts/sentinel.sh down first"; done
  for ((n = 1; n <= SENTINELS; n++)); do ! sentinel_pid "$n" >/dev/null || die "Sentinel $n runs: scripts/sentinel.sh down first"; done
  rm -rf "$STATE"/redis-* "$STATE"/sentinel-*
  start_redis 1
  start_redis 2 "$(redis_port 1)"
  for ((n = 1; n <= SENTINELS; n++)); do start_sentinel "$n"; done
  wait_until "$READY_TIMEOUT" agreed || die "the Sentinels did not agree on master $MASTER_NAME"
  log "$SENTINELS Sentinels on 127.0.0.1:$(sentinel_port 1)-$(sentinel_port "$SENTINELS") agree: master $MASTER_NAME is $(master)"
}

stop_pid() {  # stop_pid WHAT PID
  local p=$2
  kill -TERM "$p"
  gone() { ! kill -0 "$p" 2>/dev/null; }
  wait_until 20 gone || kill -KILL "$p" 2>/dev/null || true
  log "$1 (pid $p) stopped"
}

down() {
  local n p
  for ((n = 1; n <= SENTINELS; n++)); do p=$(sentinel_pid "$n") && stop_pid "Sentinel $n" "$p"; done
  for ((n = REDISES; n >= 1; n--)); do p=$(redis_pid "$n") && stop_pid "redis $n" "$p"; done
  return 0
}

# master: host:port the first Sentinel that answers names.
master() {
  local n out
  for ((n = 1; n <= SENTINELS; n++)); do
    out=$(redis-cli -p "$(sentinel_port "$n")" sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null) || continue
    [ "$(echo "$out" | wc -l)" = 2 ] || continue
    echo "$out" | paste -sd: -
    return 0
  done
  return 1
}

# other_master N: the Sentinels name a master, and it is not redis N.
other_master() { local m; m=$(master) && [ "$m" != "127.0.0.1:$(redis_port "$1")" ]; }

master_n() {  # which redis N the Sentinels name master
  local addr n
  addr=$(master) || die "no Sentinel names the master"
  for ((n = 1; n <= REDISES; n++)); do [ "$addr" != "127.0.0.1:$(redis_port "$n")" ] || { echo "$n"; return 0; }; done
  die "the master $addr is none of ours"
}

sentinels() {
  local n list=''
  for ((n = 1; n <= SENTINELS; n++)); do list+="${list:+,}127.0.0.1:$(sentinel_port "$n")"; done
  echo "$list"
}

status() {
  local n p
  for ((n = 1; n <= REDISES; n++)); do
    if p=$(redis_pid "$n"); then
      echo "redis $n: running (pid $p, port $(redis_port "$n"), $(redis-cli -p "$(redis_port "$n")" role | head -n 1))"
    else
      echo "redis $n: stopped"
    fi
  done
  for ((n = 1; n <= SENTINELS; n++)); do
    if p=$(sentinel_pid "$n"); then echo "Sentinel $n: running (pid $p, port $(sentinel_port "$n"))"; else echo "Sentinel $n: stopped"; fi
  done
  echo "master $MASTER_NAME: $(master || echo unknown)"
}

redis_arg() { [[ ${1:-} =~ ^[1-2]$ ]] || die "redis must be 1 or 2"; echo "$1"; }

case "${1:-}" in
  up) up ;;
  down) down ;;
  kill-master)
    n=$(master_n); p=$(redis_pid "$n") || die "redis $n, the master, does not run"
    kill -KILL "$p"; log "redis $n (pid $p), the master, killed"; echo "$n" ;;
  start)
    # A killed master comes back as a replica of the one promoted in its place: wait for the
    # promotion (down-after-milliseconds, then the election: about 2.5 s).
    n=$(redis_arg "${2:-}")
    wait_until 30 other_master "$n" || die "the Sentinels still name redis $n, or none, the master"
    m=$(master)
    start_redis "$n" "${m##*:}" ;;
  master) master ;;
  sentinels) sentinels ;;
  status) status ;;
  pid) redis_pid "$(redis_arg "${2:-}")" ;;
  *) echo "usage: $0 up|down|kill-master|start N|master|sentinels|status|pid N" >&2; exit 2 ;;
esac
