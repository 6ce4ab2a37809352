#!/usr/bin/env bash
# The layering rules of STYLE.md, as greps: each third-party header is included only in its
# own directory, and every .c file includes core/banned.h last.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0

only_in() {  # only_in HEADER-REGEX ALLOWED-PATH-REGEX
  local bad
  bad=$(grep -rlE "#include <($1)>" src | grep -vE "$2" || true)
  if [ -n "$bad" ]; then echo "layers: <$1> included outside $2: $bad"; rc=1; fi
}

only_in 'h2o\.h|h2o/[a-z_/]+\.h' '^src/http/'
only_in 'mysql\.h|mysqld_error\.h|errmsg\.h' '^src/repo/'
only_in 'hiredis\.h|hiredis/hiredis\.h' '^src/redis/'
only_in 'jansson\.h' '^src/core/json\.c$'
only_in 'jwt\.h' '^src/http/auth\.c$'

# domain/ is pure: core/ only.
bad=$(grep -lE '#include "(http|api|service|repo|redis)/' src/domain/*.[ch] 2>/dev/null || true)
[ -z "$bad" ] || { echo "layers: domain/ includes an upper layer: $bad"; rc=1; }
# api/ holds no SQL and no Redis.
bad=$(grep -lE '#include "(repo|redis)/' src/api/*.[ch] 2>/dev/null || true)
[ -z "$bad" ] || { echo "layers: api/ includes repo/ or redis/: $bad"; rc=1; }

for f in $(git ls-files 'src/*.c' 2>/dev/null || find src -name '*.c'); do
  last=$(grep -E '^#include' "$f" | grep -v '\.def"' | tail -n 1)
  [ "$last" = '#include "core/banned.h"' ] || { echo "layers: $f does not include core/banned.h last"; rc=1; }
done
[ $rc -eq 0 ] && echo "layers: ok"
exit $rc
