#!/usr/bin/env bash
# bench/fixtures.sh: the data the load scenarios need, made through shopd itself (its admin API
# and `shopd token`), never by SQL. scripts/bench.sh runs it; by hand:
#   SHOPD_JWT_SECRET=... bench/fixtures.sh create URL DIR   users, tokens, products, carts, balances
#   SHOPD_JWT_SECRET=... bench/fixtures.sh charge URL DIR ROUND   every user charged again
#   bench/fixtures.sh warm URL DIR                           one GET per cached key (product, cart, top)
# Files written to DIR: tokens.txt ("userId token" per user, creation order), product-ids.txt,
# admin-token.txt, and the curl inputs and answers of each step (for when one fails).
# Settings (environment): USERS (10000), PRODUCTS (1000), CART_USERS (1000: the first users get
# a cart), CART_LINES (3), ORDER_STOCK (1000000000, each product's stock), ORDER_BALANCE
# (10000000 KRW, the most one charge may add), SHOPD (build/release/shopd), RUN_ID (a tag for
# names and keys). Each step checks every answer and exits non-zero when one is wrong.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
USERS=${USERS:-10000}
PRODUCTS=${PRODUCTS:-1000}
CART_USERS=${CART_USERS:-1000}
CART_LINES=${CART_LINES:-3}
ORDER_STOCK=${ORDER_STOCK:-1000000000}
ORDER_BALANCE=${ORDER_BALANCE:-10000000}
SHOPD=${SHOPD:-$ROOT/build/release/shopd}
RUN_ID=${RUN_ID:-$(date -u +%Y%m%dT%H%M%S)-$$}

log() { printf 'fixtures: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# curl_each NAME: runs the curl config DIR/NAME.curl (one kept-alive connection, the requests
# one after another, each answer's body and a newline) into DIR/NAME.json.
curl_each() { curl -K "$DIR/$1.curl" > "$DIR/$1.json"; }

# expect_count NAME JQ_FILTER WANT: the answers of NAME that pass the filter number WANT.
expect_count() {
  local n
  n=$(jq -c "select($2)" "$DIR/$1.json" | wc -l)
  [ "$n" -eq "$3" ] || die "$1: $n of $3 answers as expected; see $DIR/$1.json"
}

# admin_block METHOD URL DATA: one curl config block of an admin request.
admin_block() {
  printf 'url = "%s"\nsilent\nshow-error\nrequest = "%s"\n' "$2" "$1"
  printf 'header = "Authorization: Bearer %s"\nheader = "Content-Type: application/json"\n' "$ADMIN_TOKEN"
  printf 'data = "%s"\nwrite-out = "\\n"\n' "$3"
}

create_users() {
  local i
  log "creating $USERS users"
  for ((i = 1; i <= USERS; i++)); do
    [ "$i" -eq 1 ] || echo next
    admin_block POST "$URL/api/admin/users" "{\\\"name\\\":\\\"bench-$RUN_ID-$i\\\"}"
  done > "$DIR/create-users.curl"
  curl_each create-users
  jq -r '.userId // empty' "$DIR/create-users.json" > "$DIR/user-ids.txt"
  [ "$(wc -l < "$DIR/user-ids.txt")" -eq "$USERS" ] || die "created $(wc -l < "$DIR/user-ids.txt") of $USERS users"

  log "minting $USERS user tokens with shopd token"
  # Process start-up dominates (tens of ms each), so when `shopd token` takes several ids (one
  # token a line) it is given 500 at a time; otherwise one process per user, in parallel. Each
  # token names its user in the `sub` claim, which jq decodes to pair them up again in order.
  local per_process=1
  [ "$("$SHOPD" token 1 2 2>/dev/null | wc -l)" != 2 ] || per_process=500
  xargs -P "$(nproc)" -n "$per_process" "$SHOPD" token < "$DIR/user-ids.txt" > "$DIR/tokens.unordered"
  jq -rR '. as $t | split(".")[1] | gsub("-"; "+") | gsub("_"; "/")
          | (. + ("=" * ((4 - length % 4) % 4))) | @base64d | fromjson | "\(.sub) \($t)"' \
    "$DIR/tokens.unordered" > "$DIR/tokens.paired"
  awk 'NR == FNR { tok[$1] = $2; next } { print $1, tok[$1] }' "$DIR/tokens.paired" "$DIR/user-ids.txt" > "$DIR/tokens.txt"
  rm -f "$DIR/tokens.unordered" "$DIR/tokens.paired"
  [ "$(awk 'NF == 2' "$DIR/tokens.txt" | wc -l)" -eq "$USERS" ] || die "token file is incomplete"
}

create_products() {
  local i
  log "creating $PRODUCTS products of stock $ORDER_STOCK"
  for ((i = 1; i <= PRODUCTS; i++)); do
    [ "$i" -eq 1 ] || echo next
    admin_block POST "$URL/api/admin/products" \
      "{\\\"name\\\":\\\"bench-$RUN_ID-$i\\\",\\\"description\\\":\\\"Benchmark product $i, with a description of ordinary length for a catalog page.\\\",\\\"price\\\":$((1000 + (i * 7919 % 500) * 100)),\\\"stock\\\":$ORDER_STOCK}"
  done > "$DIR/create-products.curl"
  curl_each create-products
  jq -r '.productId // empty' "$DIR/create-products.json" > "$DIR/product-ids.txt"
  [ "$(wc -l < "$DIR/product-ids.txt")" -eq "$PRODUCTS" ] || die "created $(wc -l < "$DIR/product-ids.txt") of $PRODUCTS products"
}

fill_carts() {
  log "filling $CART_USERS carts with $CART_LINES lines each"
  # Line k of user j is product (j * CART_LINES + k) mod PRODUCTS: neighbours share no product.
  head -n "$CART_USERS" "$DIR/tokens.txt" | awk -v url="$URL" -v lines="$CART_LINES" '
    NR == FNR { pid[n++] = $1; next }
    {
      for (k = 0; k < lines; k++) {
        if (blocks++) print "next"
        printf "url = \"%s/api/users/%s/cart/items\"\nsilent\nshow-error\nrequest = \"POST\"\n", url, $1
        printf "header = \"Authorization: Bearer %s\"\nheader = \"Content-Type: application/json\"\n", $2
        printf "data = \"{\\\"productId\\\":%s,\\\"quantity\\\":%d}\"\nwrite-out = \"\\n\"\n", pid[((FNR - 1) * lines + k) % n], k + 1
      }
    }' "$DIR/product-ids.txt" - > "$DIR/fill-carts.curl"
  curl_each fill-carts
  expect_count fill-carts '(.items | type) == "array"' $((CART_USERS * CART_LINES))
}

# charge ROUND: every user charged ORDER_BALANCE with their own token and a key of the round.
charge() {
  log "charging each of the $USERS users $ORDER_BALANCE KRW (round $1)"
  awk -v url="$URL" -v amount="$ORDER_BALANCE" -v key="fixture-$RUN_ID-$1" '{
      if (NR > 1) print "next"
      printf "url = \"%s/api/users/%s/balance/charge\"\nsilent\nshow-error\nrequest = \"POST\"\n", url, $1
      printf "header = \"Authorization: Bearer %s\"\nheader = \"Content-Type: application/json\"\n", $2
      printf "header = \"Idempotency-Key: %s-%s\"\ndata = \"{\\\"amount\\\":%d}\"\nwrite-out = \"\\n\"\n", key, $1, amount
    }' "$DIR/tokens.txt" > "$DIR/charge-$1.curl"
  curl_each "charge-$1"
  expect_count "charge-$1" '.chargedAmount != null' "$USERS"
}

# warm: one GET of every product, every filled cart and both top-products keys, so that the
# measured reads are cache hits; each answer is checked on the way.
warm() {
  log "warming the product, cart and top-products caches"
  {
    sed "s|^.*$|url = \"$URL/api/products/&\"\nsilent\nshow-error\nwrite-out = \"\\\\n\"\nnext|" "$DIR/product-ids.txt"
    head -n "$CART_USERS" "$DIR/tokens.txt" | awk -v url="$URL" '{
      printf "url = \"%s/api/users/%s/cart\"\nsilent\nshow-error\nwrite-out = \"\\n\"\n", url, $1
      printf "header = \"Authorization: Bearer %s\"\nnext\n", $2 }'
    printf 'url = "%s/api/products/top?days=3&limit=5"\nsilent\nshow-error\nwrite-out = "\\n"\nnext\n' "$URL"
    printf 'url = "%s/api/products/top?days=7&limit=10"\nsilent\nshow-error\nwrite-out = "\\n"\n' "$URL"
  } > "$DIR/warm.curl"
  curl_each warm
  expect_count warm '.productId != null and .price != null' "$PRODUCTS"
  expect_count warm '.userId != null and (.items | length) > 0' "$CART_USERS"
  expect_count warm '.period != null' 2
}

[ $# -ge 3 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
STEP=$1 URL=$2 DIR=$3
mkdir -p "$DIR"
ADMIN_TOKEN=$("$SHOPD" token --admin)
case $STEP in
  create)
    [ "$CART_USERS" -le "$USERS" ] || die "CART_USERS must not exceed USERS"
    [ "$PRODUCTS" -ge 3 ] || die "PRODUCTS must be at least 3 (orders of 1-3 lines)"
    create_users; create_products; fill_carts; charge 1
    echo "$ADMIN_TOKEN" > "$DIR/admin-token.txt" ;;
  charge) charge "${4:?round}" ;;
  warm) warm ;;
  *) die "unknown step '$STEP' (create, charge, warm)" ;;
esac
