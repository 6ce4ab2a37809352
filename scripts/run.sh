#!/usr/bin/env bash
# `make run`: migrate, seed the demo data, print a demo token, then serve in the foreground with
# the data platform (`shopd platform`, the consumer of the paid-order events) beside it; both
# stop on Ctrl-C. Every SHOPD_* variable already set is honoured; only a missing JWT secret
# gets a development default: a random one made once by scripts/dev-secret.sh, kept in
# var/dev-jwt-secret (which `build/shopd token` also reads when SHOPD_JWT_SECRET is unset).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${SHOPD_JWT_SECRET:-}" ]; then
  SHOPD_JWT_SECRET=$(scripts/dev-secret.sh)
  export SHOPD_JWT_SECRET
  echo "run: SHOPD_JWT_SECRET was not set; using the development secret of var/dev-jwt-secret"
fi
# The local servers' Unix sockets when scripts/services.sh runs them (TCP otherwise); a URL
# already set wins.
while IFS='=' read -r name url; do
  [ -n "${!name:-}" ] || export "$name=$url"
done < <(scripts/services.sh urls)
echo "run: mariadb at ${SHOPD_DB_URL#*@}, redis at $SHOPD_REDIS_URL"
build/shopd seed
user_token=$(build/shopd token 1)
admin_token=$(build/shopd token --admin)
listen=${SHOPD_LISTEN:-127.0.0.1:8080}
cat <<MSG

  shopd on http://$listen   (data platform: var/log/platform.log)
  demo user 1 token:  $user_token
  admin token:        $admin_token

  curl -s http://$listen/api/users/1/balance -H "Authorization: Bearer $user_token"

MSG
mkdir -p var/log
build/shopd platform >>var/log/platform.log 2>&1 &
platform_pid=$!
stop_platform() { kill -TERM "$platform_pid" 2>/dev/null && wait "$platform_pid" 2>/dev/null || true; }
trap stop_platform EXIT
trap 'exit 130' INT TERM
build/shopd serve
