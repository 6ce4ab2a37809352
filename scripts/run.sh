#!/usr/bin/env bash
# `make run`: migrate, seed the demo data, print a demo token, then serve in the foreground.
# Every SHOPD_* variable already set is honoured; only a missing JWT secret gets a
# development default.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${SHOPD_JWT_SECRET:-}" ]; then
  export SHOPD_JWT_SECRET=dev-secret-change-me
  echo "run: SHOPD_JWT_SECRET was not set; using a development secret"
fi
build/shopd seed
user_token=$(build/shopd token 1)
admin_token=$(build/shopd token --admin)
listen=${SHOPD_LISTEN:-127.0.0.1:8080}
cat <<MSG

  shopd on http://$listen
  demo user 1 token:  $user_token
  admin token:        $admin_token

  curl -s http://$listen/api/users/1/balance -H "Authorization: Bearer $user_token"

MSG
exec build/shopd serve
