#!/usr/bin/env bash
# The monitoring that deploy/prometheus/ ships, checked with promtool (Debian's prometheus):
#   1. promtool check config deploy/prometheus/prometheus.yml (and the rule files it names),
#   2. promtool check rules deploy/prometheus/*.rules.yml, and promtool test rules on
#      deploy/prometheus/shopd.test.yml (the alerts fire on the series that mean them),
#   3. promtool check metrics on the real /metrics of `shopd serve` and of `shopd platform
#      --listen`, started here on free loopback ports against a fresh database of the test
#      MariaDB and the test Redis, after a few requests so that labelled series exist.
# promtool must print nothing: a lint warning fails the check like an error does.
# The binary: $SHOPD_BIN, else build/asan/shopd when `make test` has just built it, else a
# build of its own in build/prom.
set -uo pipefail
cd "$(dirname "$0")/.."

die() { echo "check-prometheus: $*" >&2; exit 1; }
command -v promtool >/dev/null || die "promtool not found (apt-get install prometheus)"

failed=0
# promtool_quiet NAME CMD...: runs a promtool check that must succeed and print nothing but
# its SUCCESS lines.
promtool_quiet() {
  local name=$1 out rc; shift
  out=$("$@" 2>&1); rc=$?
  out=$(grep -v -E '^(Checking |Unit Testing: | *SUCCESS(: |$)| *$)' <<<"$out")
  if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
    echo "FAILED $name (exit $rc):"; sed 's/^/    /' <<<"$out"
    failed=1
  else
    echo "ok     $name"
  fi
}

promtool_quiet "check config" promtool check config deploy/prometheus/prometheus.yml
promtool_quiet "check rules" promtool check rules deploy/prometheus/*.rules.yml
promtool_quiet "test rules" promtool test rules deploy/prometheus/shopd.test.yml

# ---- a live server ----------------------------------------------------------------------------

db_url=${SHOPD_TEST_DB:-mysql://shop:shop-pass@127.0.0.1:13306/shop}
redis_url=${SHOPD_TEST_REDIS:-redis://127.0.0.1:16379/0}
db_name=shopd_t_prom_$$   # the test user may create shopd_t_* (scripts/services.sh)
# Both forms of README's SHOPD_DB_URL: a Unix socket (what make test uses) or host:port.
if [[ $db_url =~ ^mysql://([^:]+):([^@]*)@localhost/[^?]+\?socket=(/.+)$ ]]; then
  db_user=${BASH_REMATCH[1]} db_pass=${BASH_REMATCH[2]}
  db_place=(-S "${BASH_REMATCH[3]}")
  server_db_url="mysql://$db_user:$db_pass@localhost/$db_name?socket=${BASH_REMATCH[3]}"
elif [[ $db_url =~ ^mysql://([^:]+):([^@]*)@([^:/]+):([0-9]+)/ ]]; then
  db_user=${BASH_REMATCH[1]} db_pass=${BASH_REMATCH[2]}
  db_place=(-h "${BASH_REMATCH[3]}" -P "${BASH_REMATCH[4]}")
  server_db_url=${db_url%/*}/$db_name
else
  die "cannot read $db_url"
fi
sql() { MYSQL_PWD=$db_pass mariadb "${db_place[@]}" -u "$db_user" -N -B -e "$1"; }
# redis-cli on SHOPD_REDIS_URL: unix:///path[?db=N] or redis://host:port/db.
rcli() {
  if [[ $redis_url == unix://* ]]; then
    local path=${redis_url#unix://}
    redis-cli -s "${path%%\?*}" "$@"
  else
    redis-cli -u "$redis_url" "$@"
  fi
}

bin=${SHOPD_BIN:-}
if [ -z "$bin" ] && [ -x build/asan/shopd ]; then bin=build/asan/shopd; fi
if [ -z "$bin" ]; then
  { cmake -S . -B build/prom -G Ninja -DCMAKE_BUILD_TYPE=Debug &&
    cmake --build build/prom --target shopd; } >/dev/null 2>&1 || die "build of build/prom failed"
  bin=build/prom/shopd
fi

logs=var/prom
mkdir -p "$logs"
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  sql "DROP DATABASE IF EXISTS \`$db_name\`" 2>/dev/null
  rcli --scan --pattern "$db_name:*" 2>/dev/null | while read -r key; do rcli unlink "$key"; done >/dev/null 2>&1
}
trap cleanup EXIT

free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  return 1
}
# wait_for URL: up to 30 s for it to answer 200.
wait_for() {
  for _ in $(seq 300); do
    curl -fsS -m 1 -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

sql "CREATE DATABASE \`$db_name\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" ||
  die "cannot create database $db_name"
export SHOPD_DB_URL=$server_db_url SHOPD_REDIS_URL=$redis_url
SHOPD_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
export SHOPD_JWT_SECRET SHOPD_THREADS=4

serve_port=$(free_port) || die "no free port"
SHOPD_LISTEN=127.0.0.1:$serve_port "$bin" serve >"$logs/serve.log" 2>&1 &
pids+=($!)
plat_port=$(free_port) || die "no free port"
"$bin" platform --listen "127.0.0.1:$plat_port" >"$logs/platform.log" 2>&1 &
pids+=($!)

serve=http://127.0.0.1:$serve_port
plat=http://127.0.0.1:$plat_port
wait_for "$serve/healthz" || { tail -n 20 "$logs/serve.log"; die "shopd serve did not start"; }
wait_for "$plat/healthz" || { tail -n 20 "$logs/platform.log"; die "shopd platform did not start"; }

# A few requests, so that the per-route series (and their statuses) exist.
token=$("$bin" token --admin 1 2>/dev/null)
for path in /healthz /readyz /api/products /api/products/1 /api/products/top /no/such/route /openapi.yaml; do
  curl -sS -m 5 -o /dev/null "$serve$path"
done
curl -sS -m 5 -o /dev/null -H "Authorization: Bearer $token" "$serve/api/users/1/balance"
curl -sS -m 5 -o /dev/null -X POST "$serve/healthz"
curl -sS -m 5 -o /dev/null "$plat/healthz"

for target in "serve:$serve" "platform:$plat"; do
  name=${target%%:*} url=${target#*:}
  curl -fsS -m 10 "$url/metrics" >"$logs/$name.metrics" || { echo "FAILED $name /metrics"; failed=1; continue; }
  promtool_quiet "check metrics ($name, $(grep -c -v '^#' "$logs/$name.metrics") series)" \
    promtool check metrics <"$logs/$name.metrics"
done

cleanup
trap - EXIT
pids=()
if grep -l -a -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$logs"/*.log; then
  echo "FAILED sanitizer reports in the servers' logs above"
  failed=1
fi
exit "$failed"
