#!/usr/bin/env bash
# Proves that tests/unit/test_domain.c guards the rules of src/domain/: each mutation below
# changes one rule in a copy of its file (src/ is never touched), the unit test is linked against
# that copy instead of the original, and it must fail. A mutation whose text is no longer found
# is a failure too (the rule moved: update the mutation), as is a baseline that does not pass.
#   scripts/mutate-domain.sh [BUILD_DIR]   default build/asan when built, else its own build/mutate
# Cost: one compile and link per mutation (about 15 s in all); prints one line per mutation.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

build=${1:-}
if [ -z "$build" ]; then
  if [ -f build/asan/libshopd_lib.a ] && [ -x build/asan/unit_test_domain ]; then
    build=build/asan
  else
    build=build/mutate
  fi
fi
if [ "$build" = build/mutate ]; then
  cmake -S . -B build/mutate -G Ninja -DCMAKE_BUILD_TYPE=Debug >/dev/null || exit 1
  cmake --build build/mutate --target unit_test_domain >/dev/null || exit 1
fi
lib=$build/libshopd_lib.a
test_obj=$build/CMakeFiles/unit_test_domain.dir/tests/unit/test_domain.c.o
[ -f "$lib" ] && [ -f "$test_obj" ] || { echo "mutate: $build has no unit_test_domain"; exit 1; }

# The compile command CMake uses for a domain file, without -Werror (a mutant may warn) and
# without its -o/-c, which are given per mutant.
compile_cmd() {
  jq -r --arg f "$root/$1" '.[] | select(.file == $f) | .command' "$build/compile_commands.json" |
    sed -E 's/ -Werror( |$)/ /; s/ -o [^ ]+//; s/ -c [^ ]+//; s/ -M[DT]( [^ ]+)?//g; s/ -MF [^ ]+//'
}
sanitize=$(grep -q '^SHOPD_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" && echo -fsanitize=address,undefined)
libs=$(pkg-config --libs libh2o-evloop jansson libmariadb hiredis libjwt libcrypto cmocka)

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

tmp=$(mktemp -d "$root/var/mutate.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/domain"

# build FILE: links $tmp/t against the copy of src/domain/FILE in $tmp/domain (0 on success).
build_with() {
  local base=${1%.c} cmd
  cmd=$(compile_cmd "src/domain/$1")
  [ -n "$cmd" ] || { echo "no compile command for src/domain/$1"; return 1; }
  $cmd -c "$tmp/domain/$1" -o "$tmp/$base.o" 2>"$tmp/cc.err" &&
    cc $sanitize "$test_obj" "$tmp/$base.o" "$lib" $libs -lpthread -lm -o "$tmp/t" 2>>"$tmp/cc.err"
}

passed=0
failed=0
# mutate FILE 'SED' 'what the mutant does': the test must fail against the mutant.
mutate() {
  local file=$1 expr=$2 what=$3
  cp "src/domain/$file" "$tmp/domain/$file"
  sed -i -E "$expr" "$tmp/domain/$file"
  if cmp -s "src/domain/$file" "$tmp/domain/$file"; then
    printf 'FAILED %-14s %s: the mutation no longer applies (%s)\n' "$file" "$what" "$expr"
    failed=$((failed + 1))
    return
  fi
  if ! build_with "$file"; then
    printf 'FAILED %-14s %s: the mutant does not build\n' "$file" "$what"
    sed 's/^/      /' "$tmp/cc.err" | head -n 5
    failed=$((failed + 1))
  elif "$tmp/t" >"$tmp/run.out" 2>&1; then
    printf 'FAILED %-14s %s: survived (no test failed)\n' "$file" "$what"
    failed=$((failed + 1))
  else
    printf 'ok     %-14s %s: caught by %s\n' "$file" "$what" \
      "$(grep -a -m1 -oE '^\[  (FAILED|ERROR) +\] [a-z_][a-z_0-9]+' "$tmp/run.out" | awk '{print $NF}' || echo crash)"
    passed=$((passed + 1))
  fi
  rm -f "$tmp/domain/$file"
}

# The baseline: an unmutated copy builds the same way and passes.
cp src/domain/money.c "$tmp/domain/money.c"
if ! build_with money.c || ! "$tmp/t" >"$tmp/run.out" 2>&1; then
  echo "FAILED baseline: the unmutated test does not build or pass"
  cat "$tmp/cc.err" "$tmp/run.out" | tail -n 20
  exit 1
fi
rm -f "$tmp/domain/money.c"

mutate money.c  's/sum < 0 /sum < -1 /' 'a balance may go below zero'
mutate money.c  's/sum > MONEY_BALANCE_MAX_KRW/sum >= MONEY_BALANCE_MAX_KRW/' 'the cap itself is refused'
mutate money.c  's/sum > MONEY_BALANCE_MAX_KRW/sum > MONEY_BALANCE_MAX_KRW + 1/' 'one past the cap is allowed'

mutate coupon.c 's|return subtotal_krw \* c->value / 100;|return (subtotal_krw * c->value + 99) / 100;|' 'a RATE discount rounds up'
mutate coupon.c 's|return subtotal_krw \* c->value / 100;|return (subtotal_krw * c->value + 50) / 100;|' 'a RATE discount rounds to nearest'
mutate coupon.c 's|return c->value < subtotal_krw \? c->value : subtotal_krw;|return c->value;|' 'a FIXED discount exceeds the subtotal'
mutate coupon.c '0,/c->value < 1 \|\|/s//c->value < 0 ||/' 'a RATE of 0 % is valid'
mutate coupon.c 's/c->value > COUPON_RATE_MAX/c->value >= COUPON_RATE_MAX/' 'a RATE of 100 % is refused'
mutate coupon.c 's/c->value > COUPON_RATE_MAX/c->value > COUPON_RATE_MAX + 1/' 'a RATE of 101 % is valid'
mutate coupon.c 's/c->value > COUPON_FIXED_MAX_KRW/c->value >= COUPON_FIXED_MAX_KRW/' 'the FIXED maximum is refused'
mutate coupon.c 's/c->type == COUPON_FIXED \&\& \(c->value < 1 \|\|/c->type == COUPON_FIXED \&\& (c->value < 0 ||/' 'a FIXED of 0 KRW is valid'
mutate coupon.c 's/c->ends_us <= c->starts_us/c->ends_us < c->starts_us/' 'an empty window is valid'
mutate coupon.c 's/now_us >= c->starts_us/now_us > c->starts_us/' 'not active at its start'
mutate coupon.c 's/now_us < c->ends_us/now_us <= c->ends_us/' 'still active at its end'
mutate coupon.c 's/\(!c->ends_us \|\| now_us < c->ends_us\)/(c->ends_us \&\& now_us < c->ends_us)/' 'a coupon without end is never active'
mutate coupon.c 's/now_us >= uc->coupon.ends_us/now_us > uc->coupon.ends_us/' 'not expired at its end'
mutate coupon.c 's/uc->status == COUPON_AVAILABLE \&\& //' 'a used coupon expires'
mutate coupon.c 's/c->total_quantity - c->issued_quantity/c->total_quantity/' 'remainingQuantity ignores issued'
mutate coupon.c 's/"RATE", "FIXED"/"FIXED", "RATE"/' 'type names swapped'

mutate order.c  's/return s == ORDER_PENDING;/return s == ORDER_PENDING || s == ORDER_EXPIRED;/' 'an expired order can be paid'
mutate order.c  's/return s == ORDER_PENDING;/return s != ORDER_CANCELLED;/' 'a paid order can be paid again'
mutate order.c  's/return s == ORDER_PENDING \|\| s == ORDER_PAID;/return s != ORDER_EXPIRED;/' 'a cancelled order can be cancelled'
mutate order.c  's/return s == ORDER_PENDING \|\| s == ORDER_PAID;/return s != ORDER_CANCELLED;/' 'an expired order can be cancelled'
mutate order.c  's/return s == ORDER_PENDING \|\| s == ORDER_PAID;/return s == ORDER_PENDING;/' 'a paid order cannot be cancelled'
mutate order.c  's/items\[i\].product_id == items\[i - 1\].product_id/0/' 'a product twice is accepted'
mutate order.c  's/for \(size_t i = 1; i < count; i\+\+\)/for (size_t i = 1; i + 1 < count; i++)/' 'the last pair is not compared'
mutate order.c  's/\(x->product_id > y->product_id\) - \(x->product_id < y->product_id\)/(x->product_id < y->product_id) - (x->product_id > y->product_id)/' 'lines sorted descending'
mutate order.c  's/o->total_krw = o->subtotal_krw - discount_krw;/o->total_krw = o->subtotal_krw;/' 'the discount is not taken off'
mutate order.c  's/o->subtotal_krw = 0;//' 'the subtotal accumulates'
mutate order.c  's/if \(o->coupon_id\)/if (1)/' 'couponId 0 is shown'
mutate order.c  's/"PENDING", "PAID", "CANCELLED", "EXPIRED"/"PENDING", "PAID", "EXPIRED", "CANCELLED"/' 'status names swapped'

mutate order_event.c 's/out->cancelled = !strcmp\(in.type, ORDER_EVENT_CANCELLED\);/out->cancelled = false;/' 'a cancellation is read as a payment'
mutate order_event.c 's/if \(strcmp\(in.type, ORDER_EVENT_PAID\) \&\& strcmp\(in.type, ORDER_EVENT_CANCELLED\)\)/if (0)/' 'an unknown event type is accepted'
mutate order_event.c 's/c.month \* 100 \+ c.day/c.month * 100 + c.day + (c.hour > 0)/' 'the day depends on the hour'
mutate order_event.c 's/JSON_REQUIRED, 1, ORDER_LINES_MAX/JSON_REQUIRED, 0, ORDER_LINES_MAX/' 'an event without lines is accepted'

mutate cart.c   's/p->stock >= quantity/p->stock > quantity/' 'exactly the stock is unavailable'
mutate cart.c   's/it->subtotal_krw = p->price_krw \* quantity;/it->subtotal_krw = p->price_krw;/' 'the subtotal ignores the quantity'
mutate cart.c   's/c->total_krw \+= it->subtotal_krw;/c->total_krw = it->subtotal_krw;/' 'the total is the last line only'
mutate cart.c   's/1, CART_QUANTITY_MAX,/1, CART_QUANTITY_MAX + 1,/' 'a quantity over the maximum is accepted'
mutate cart.c   's/JSON_INT\("quantity", JSON_REQUIRED, 1,/JSON_INT("quantity", JSON_REQUIRED, 0,/' 'a quantity of 0 is accepted'

mutate balance.c 's/i < 3/i < 2/' 'REFUND is unknown'
mutate balance.c 's/"CHARGE", "PAYMENT", "REFUND"/"CHARGE", "REFUND", "PAYMENT"/' 'entry names swapped'

mutate product.c 's/if \(patch->has_price\)/if (1)/' 'a patch without price changes the price'
mutate product.c 's/if \(patch->has_stock\)/if (0)/' 'a patch of the stock is ignored'
mutate product.c 's/\(int64_t\)i \+ 1/(int64_t)i/' 'ranks start at 0'
mutate product.c 's/JSON_REQUIRED, 0, PRODUCT_PRICE_MAX_KRW/JSON_REQUIRED, -1, PRODUCT_PRICE_MAX_KRW/' 'a negative price is read back'

echo
echo "mutate-domain: $passed mutation(s) caught, $failed not"
[ "$failed" -eq 0 ]
