#!/usr/bin/env bash
# Prints the development JWT secret of this checkout, creating it on first use: 32 random bytes
# as 64 hex digits in var/dev-jwt-secret (mode 0600). make run and make cluster export it as
# SHOPD_JWT_SECRET when none is set, and `build/shopd token` reads the same file when
# SHOPD_JWT_SECRET is unset, so the README's commands work in any terminal. Never use it in
# production: deploy/shopd.env takes a secret of your own.
set -euo pipefail
cd "$(dirname "$0")/.."

file=var/dev-jwt-secret
if [ ! -s "$file" ]; then
  mkdir -p var
  umask 077
  tmp=$(mktemp "$file.XXXXXX")
  od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$tmp"
  echo >>"$tmp"
  chmod 600 "$tmp"
  mv -n "$tmp" "$file" 2>/dev/null || true  # a concurrent first use may have won: keep its secret
  rm -f "$tmp"
fi
head -n 1 "$file"
