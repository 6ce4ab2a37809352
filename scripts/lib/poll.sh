# shellcheck shell=bash
# Waiting on conditions, for the scripts that start and stop servers: sourced, never run.
# A script waits until something is true (a port answers, a pid is gone), never for a fixed time.

# wait_until SECONDS command...: true once the command succeeds, false after SECONDS without.
wait_until() {
  local deadline=$(($(date +%s) + $1)); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# port_free PORT: nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
