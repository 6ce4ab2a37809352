#!/usr/bin/env bash
# clang-tidy over src/ with the tree's .clang-tidy (warnings are errors), as `make test` runs it.
# Exits 0 when clean; otherwise prints each diagnostic once (a header's appear once, not once per
# file that includes it) and exits 1. Uses its own configure-only build dir for
# compile_commands.json (build/tidy) and runs one clang-tidy per file, $(nproc) at a time: one
# process per file because clang-tidy 14's analyzer carries va_list state from one file to the
# next within a process and then reports false "uninitialized va_list" errors.
#   scripts/tidy.sh [FILE...]    only the given files (default: every src/**/*.c)
set -uo pipefail
cd "$(dirname "$0")/.."

tidy=${CLANG_TIDY:-clang-tidy}
build=build/tidy
command -v "$tidy" >/dev/null || { echo "tidy: $tidy not found (apt-get install clang-tidy)"; exit 1; }

# Configure only: nothing is compiled, but the generated sources need not exist either, as only
# src/ is checked. Re-run when CMakeLists.txt is newer, so that new flags and files show up.
if [ ! -f "$build/compile_commands.json" ] || [ CMakeLists.txt -nt "$build/compile_commands.json" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log"; exit 1; }
fi

if [ $# -gt 0 ]; then files=("$@"); else mapfile -t files < <(find src -name '*.c' | sort); fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Each file's report goes to its own file; its exit status is kept beside it.
printf '%s\n' "${files[@]}" | xargs -P"$(nproc)" -I{} sh -c \
  'f=$1; o=$2/$(echo "$f" | tr / _); "$3" -p "$4" --quiet "$f" >"$o.txt" 2>"$o.err"; echo $? >"$o.rc"' \
  sh {} "$out" "$tidy" "$build"

# Print each diagnostic (its "file:line:col: error: … [check]" line and the notes that follow it,
# up to the next diagnostic) once.
awk '
  /^[^ ].*:[0-9]+:[0-9]+: (error|warning): / { keep = !seen[$0]++; if (keep) n++ }
  keep { print }
  END { if (n) printf "\n%d clang-tidy diagnostic(s)\n", n > "/dev/stderr" }
' "$out"/*.txt
failed=0
for rc in "$out"/*.rc; do
  if [ "$(cat "$rc")" != 0 ]; then
    failed=1
    # A file that failed without a diagnostic (e.g. a compile error) shows its stderr.
    base=${rc%.rc}
    grep -q -E ':[0-9]+:[0-9]+: (error|warning): ' "$base.txt" || cat "$base.err"
  fi
done
[ "$failed" -eq 0 ] && echo "tidy: ${#files[@]} files clean"
exit "$failed"
