#!/usr/bin/env bash
# src/core/err_codes.def must list exactly the error codes of the contract's table, each with
# the contract's status (a Redis-style freshness check). The contract is ../shared/API.md;
# docs/API.md is the repository's copy of it, so that a clone with no shared folder beside it
# (CI has one) is checked too. Where both are present they must be the same text.
set -uo pipefail
cd "$(dirname "$0")/.."
api=../shared/API.md
if [ -f "$api" ]; then
  cmp -s "$api" docs/API.md || { echo "contract: docs/API.md differs from $api: copy it over"; exit 1; }
else
  api=docs/API.md
fi
[ -f "$api" ] || { echo "contract: no API.md found"; exit 1; }

want=$(sed -n '/^## Error codes/,$p' "$api" | grep -E '^\| [A-Z_]' | while IFS='|' read -r _ codes status _; do
  status=$(echo "$status" | tr -dc 0-9)
  for c in $(echo "$codes" | tr ',' ' ' | sed 's/([^)]*)//g'); do
    case "$c" in [A-Z]*_*|[A-Z]*) [[ "$c" =~ ^[A-Z_]+$ ]] && echo "$c $status" ;; esac
  done
done | sort -u)
have=$(grep -E '^X\(' src/core/err_codes.def | sed -E 's/^X\(([A-Z_]+), ([0-9]+).*/\1 \2/' | grep -v '^NONE ' | sort -u)
if [ "$want" != "$have" ]; then
  echo "contract: err_codes.def and $api differ:"
  diff <(echo "$want") <(echo "$have")
  exit 1
fi
echo "contract: $(echo "$have" | wc -l) error codes match $api"
