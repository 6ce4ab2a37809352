#!/usr/bin/env bash
# Installs the Debian 12 packages shopd needs to build, test, run and benchmark, but only those
# that are missing: quiet and quick when everything is present.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git ca-certificates
  libh2o-evloop-dev libjansson-dev libmariadb-dev libhiredis-dev libjwt-dev libssl-dev
  libcmocka-dev libcurl4-openssl-dev
  libmicrohttpd-dev   # bench/spike/run.sh: the HTTP engine spike's other candidate (issue 12)
  mariadb-server mariadb-client redis-server redis-tools
  galera-4 rsync   # make test-ha: a 3-node Galera cluster (scripts/galera.sh); rsync is its SST
  curl jq wrk nginx-light gnuplot-nox linux-perf
  clang-tidy clang-16 libclang-rt-16-dev prometheus
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q >/dev/null
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
# The packages' own services are not ours: ours run from var/ (scripts/services.sh).
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now mariadb redis-server nginx >/dev/null 2>&1 || true
fi
