#!/usr/bin/env bash
# scripts/cluster-ha.sh (`make cluster-ha`, `make cluster-ha-down`): shopd past one machine's
# single points of failure, on loopback (issue 14): a 3-node MariaDB Galera cluster
# (scripts/galera.sh), a Redis master and replica watched by three Sentinels
# (scripts/sentinel.sh), and N `shopd serve` behind nginx with `shopd platform`
# (scripts/cluster.sh), every instance given all three MariaDB nodes and the Sentinels.
#
#   scripts/cluster-ha.sh up [N]   start it all (N instances, default 3), migrate, seed the demo
#                                  data, and print what runs where
#   scripts/cluster-ha.sh down     stop it all, by pid (the instances first)
#   scripts/cluster-ha.sh status   the three parts' own status
#
# Everything lives under var/ha (SHOPD_VAR/ha) and var/cluster-ha; ports: MariaDB 13311-13313,
# Redis 16391-16392, Sentinels 26391-26393, nginx LB_PORT (8080), instances the next N.
# A fresh Galera cluster and Redis each `up` (they are test clusters: see deploy/README.md for
# a real deployment). Try a fault by hand: scripts/galera.sh kill 1, scripts/sentinel.sh
# kill-master, scripts/cluster.sh pid serve-1; `build/shopd check` judges the invariants after.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export CLUSTER_DIR=${CLUSTER_DIR:-$ROOT/var/cluster-ha}
export PLATFORM_LISTEN=${PLATFORM_LISTEN-127.0.0.1:8090}

log() { printf 'cluster-ha: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# The environment every shopd process of the cluster reads.
shopd_env() {
  SHOPD_DB_URL=$(scripts/galera.sh url)
  SHOPD_REDIS_SENTINELS=$(scripts/sentinel.sh sentinels)
  SHOPD_REDIS_URL=redis://$(scripts/sentinel.sh master)/0
  export SHOPD_DB_URL SHOPD_REDIS_SENTINELS SHOPD_REDIS_URL SHOPD_REDIS_MASTER=shopd
  [ -n "${SHOPD_JWT_SECRET:-}" ] || SHOPD_JWT_SECRET=$(scripts/dev-secret.sh)
  export SHOPD_JWT_SECRET
}

up() {
  local n=${1:-3}
  [ -x build/shopd ] || die "build/shopd is missing: make build"
  scripts/galera.sh up
  scripts/sentinel.sh up
  shopd_env
  build/shopd migrate > /dev/null
  build/shopd seed > /dev/null
  scripts/cluster.sh up "$n"
  cat >&2 <<EOF
cluster-ha: running
  MariaDB Galera   $(scripts/galera.sh url | sed 's/.*@//; s,/.*,,')   (writes go through the first Synced node)
  Redis            master $(scripts/sentinel.sh master), replica beside it (scripts/sentinel.sh status)
  Sentinels        $SHOPD_REDIS_SENTINELS   (quorum 2, master "shopd")
  shopd            $n instances behind nginx on http://127.0.0.1:${LB_PORT:-8080} (scripts/cluster.sh status)
  stop it all      make cluster-ha-down
EOF
}

down() {
  scripts/cluster.sh down || true
  scripts/sentinel.sh down || true
  scripts/galera.sh down || true
}

status() {
  scripts/galera.sh status
  scripts/sentinel.sh status
  scripts/cluster.sh status
}

case "${1:-}" in
  up) up "${2:-3}" ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up [N]|down|status" >&2; exit 2 ;;
esac
