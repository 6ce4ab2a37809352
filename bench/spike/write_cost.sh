#!/usr/bin/env bash
# bench/spike/write_cost.sh: what a write costs MariaDB itself (issue 13). One client sends a
# generated file of statements to the project's MariaDB (scripts/services.sh up) and the
# server's CPU time (utime + stime of mariadbd, from /proc) is read before and after, so the
# figure is MariaDB's work per operation with no HTTP, no shopd and no contention:
#   empty          START TRANSACTION; ROLLBACK (a round trip's floor)
#   update         a single-row autocommit UPDATE (what the mariadb-spread ceiling commits)
#   update3        three UPDATEs and a COMMIT in one transaction
#   charge-batch   shopd_charge_batch of 32 charges + shopd_respond_batch_commit, per charge
#   order-pay      an order of 1-3 lines and its payment, through the calls shopd makes
#                  (shopd_order_open, shopd_order_commit, shopd_order_settle,
#                  shopd_respond_commit_event), per pair
#   order-pay-0010 the same through the calls of the release before 0014 (shopd_order_reserve,
#                  _place, shopd_respond_commit, then the payment's two), per pair
#   order-pay-batch the orders as order-pay, their payments in batches of 32 (0015's
#                  shopd_pay_batch + shopd_respond_events_batch_commit), per pair
# (Both order cases read the key's id with one extra SELECT that shopd does not make.)
# The procedures are those of the migrations shopd has now, or with BEFORE=NNNN those of the
# migrations before NNNN (the procedure files from 0009 up to it are applied again on top, to
# compare two versions); a scratch database ($SPIKE_DB, made afresh by `shopd migrate`, users
# and products added by SQL) is dropped at the end.
#   bench/spike/write_cost.sh            N=2000 RUNS=3 (the defaults)
#   BEFORE=0013 bench/spike/write_cost.sh   the procedures as they were before 0013
# Prints one line per case: min / median / max of the runs in us of MariaDB CPU per operation.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
N=${N:-2000}
RUNS=${RUNS:-3}
SPIKE_DB=${SPIKE_DB:-shopd_t_spike}
CASES=${CASES:-empty update update3 charge-batch order-pay order-pay-0010 order-pay-batch}
SHOPD=${SHOPD:-build/release/shopd}
CNF=var/svc/mariadb/my.cnf
PID_FILE=var/svc/mariadb/mariadb.pid
SQL_DIR=$(mktemp -d)
trap 'rm -rf "$SQL_DIR"; mariadb --defaults-file=$CNF -uroot -e "DROP DATABASE IF EXISTS $SPIKE_DB" || true' EXIT

[ -f "$PID_FILE" ] || { echo "write_cost: MariaDB is not running (scripts/services.sh up)" >&2; exit 1; }
[ -x "$SHOPD" ] || { echo "write_cost: $SHOPD not built (make build, or SHOPD=...)" >&2; exit 1; }
root() { mariadb --defaults-file="$CNF" -uroot "$@"; }

root -e "DROP DATABASE IF EXISTS $SPIKE_DB; CREATE DATABASE $SPIKE_DB;
         GRANT ALL ON $SPIKE_DB.* TO 'shop'@'localhost'"
SHOPD_DB_URL="mysql://shop:shop-pass@localhost/$SPIKE_DB?socket=$ROOT/var/svc/mariadb/mariadb.sock" \
  "$SHOPD" migrate > /dev/null 2>&1
if [ -n "${BEFORE:-}" ]; then
  for m in db/migrations/*.sql; do
    n=$(basename "$m"); n=${n%%_*}
    [ "$n" -ge 0009 ] && [ "$n" -lt "$BEFORE" ] || continue
    { echo "DELIMITER //"; sed 's|^END;$|END//|' "$m"; echo "DELIMITER ;"; } | root "$SPIKE_DB"
  done
fi
root "$SPIKE_DB" -e "
  INSERT INTO users (name, balance_krw, created_at)
    SELECT CONCAT('spike-', seq), 1000000000, NOW(6) FROM seq_1_to_2000;
  INSERT INTO products (name, price_krw, stock, created_at, updated_at)
    SELECT CONCAT('spike-', seq), 1000, 1000000000, NOW(6), NOW(6) FROM seq_1_to_1000;
  CREATE TABLE spike_rows (id BIGINT PRIMARY KEY, v BIGINT NOT NULL) ENGINE = InnoDB;
  INSERT INTO spike_rows SELECT seq, 0 FROM seq_1_to_1000;"

body='{"orderId":1,"userId":1,"status":"PENDING","subtotal":1000,"discount":0,"total":1000}'

# gen CASE TAG: the statements of N operations of CASE (keys made unique by TAG).
gen() {
  local c=$1 tag=$2 i u k lines n p q
  echo "SET SESSION innodb_lock_wait_timeout = 5;"
  for ((i = 0; i < N; i++)); do
    u=$((1 + (i * 7919) % 2000)) k="$tag-$i"
    case $c in
      empty) echo "START TRANSACTION; ROLLBACK;" ;;
      update) echo "UPDATE spike_rows SET v = v + 1 WHERE id = $((1 + i % 1000));" ;;
      update3) echo "START TRANSACTION; UPDATE spike_rows SET v = v + 1 WHERE id = $((1 + i % 998));" \
                    "UPDATE spike_rows SET v = v + 1 WHERE id = $((2 + i % 998));" \
                    "UPDATE spike_rows SET v = v + 1 WHERE id = $((3 + i % 998)); COMMIT;" ;;
      order-pay | order-pay-0010 | order-pay-batch)
        n=$((1 + i % 3)) lines='' priced='' p=$((1 + (i * 37) % 990))
        for ((q = 0; q < n; q++)); do
          lines+="${lines:+,}[$((p + q * 3)),1]"
          priced+="${priced:+,}[$((p + q * 3)),1,1000,\"spike-$((p + q * 3))\"]"
        done
        key_id="SELECT id INTO @k FROM idempotency_keys WHERE user_id = $u AND method = 'POST' AND path = '/api/orders' AND idem_key = '$k';"
        if [ "$c" != order-pay-0010 ]; then
          echo "CALL shopd_order_open($u,'POST','/api/orders','$k',UNHEX(SHA2('$k',256)),NOW(6),NOW(6) + INTERVAL 15 MINUTE,'[$lines]',0);"
          echo "SET @o = LAST_INSERT_ID();"
          echo "$key_id"
          echo "CALL shopd_order_commit(@k,@o,$((n * 1000)),0,$((n * 1000)),0,NOW(6),'[$priced]',201,'$body');"
        else
          echo "CALL shopd_order_reserve($u,'POST','/api/orders','$k',UNHEX(SHA2('$k',256)),NOW(6),'[$lines]',0);"
          echo "$key_id"
          echo "CALL shopd_order_place($u,$((n * 1000)),0,$((n * 1000)),0,0,NOW(6),NOW(6) + INTERVAL 15 MINUTE,'[$lines]');"
          echo "SET @o = LAST_INSERT_ID();"
          echo "CALL shopd_respond_commit(@k, 201, '$body');"
        fi
        if [ "$c" = order-pay-batch ]; then
          echo "SET @pays = JSON_ARRAY_APPEND(IFNULL(@pays, '[]'), '\$', JSON_OBJECT('u',$u,'m','POST','p',CONCAT('/api/orders/',@o,'/payment'),'k','${k}p','f',SHA2('${k}p',256),'o',@o));"
          if (( i % 32 == 31 || i == N - 1 )); then
            echo "SET @x = (SELECT MAX(id) FROM idempotency_keys);"
            echo "CALL shopd_pay_batch(@pays, NOW(6));"
            echo "CALL shopd_respond_events_batch_commit((SELECT CONCAT('[', GROUP_CONCAT(JSON_OBJECT('id', id, 's', 200, 'b', '$body', 'e', UUID(), 't', 'order.paid', 'a', id, 'l', '$body')), ']') FROM idempotency_keys WHERE id > @x), NOW(6));"
            echo "SET @pays = NULL;"
          fi
          continue
        fi
        echo "CALL shopd_order_settle('pay','PENDING',$u,'POST',CONCAT('/api/orders/',@o,'/payment'),'${k}p',UNHEX(SHA2('${k}p',256)),NOW(6),@o,0);"
        echo "SELECT id INTO @k FROM idempotency_keys WHERE user_id = $u AND method = 'POST' AND path = CONCAT('/api/orders/',@o,'/payment') AND idem_key = '${k}p';"
        echo "CALL shopd_respond_commit_event(@k, 200, '$body', UUID(), 'order.paid', @o, '$body', NOW(6));"
        ;;
    esac
  done
}

# gen_batches TAG: N charges in batches of 32 users in ascending id.
gen_batches() {
  local tag=$1 b j u items
  for ((b = 0; b < N / 32; b++)); do
    items=''
    for ((j = 0; j < 32; j++)); do
      u=$((1 + b % 50 + j * 60))
      items+="${items:+,}{\"u\":$u,\"m\":\"POST\",\"p\":\"/api/users/$u/balance/charge\",\"k\":\"$tag-$b-$j\",\"f\":\"$(printf '%064d' "$j")\",\"a\":1000,\"x\":1000000000000}"
    done
    echo "SET @x = (SELECT IFNULL(MAX(id), 0) FROM idempotency_keys);"
    echo "CALL shopd_charge_batch('[$items]', NOW(6));"
    echo "CALL shopd_respond_batch_commit((SELECT CONCAT('[', GROUP_CONCAT(JSON_OBJECT('id', id, 's', 200, 'b', '{}')), ']') FROM idempotency_keys WHERE id > @x));"
  done
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$(cat "$PID_FILE")/stat"; }
hz=$(getconf CLK_TCK)

for c in $CASES; do
  results=()
  for ((r = 1; r <= RUNS; r++)); do
    f=$SQL_DIR/$c-$r.sql
    if [ "$c" = charge-batch ]; then gen_batches "$c$r$$" > "$f"; ops=$((N / 32 * 32)); else gen "$c" "$c$r$$" > "$f"; ops=$N; fi
    t0=$(cpu_ticks)
    MYSQL_PWD=shop-pass mariadb -S var/svc/mariadb/mariadb.sock -u shop "$SPIKE_DB" < "$f" > /dev/null
    t1=$(cpu_ticks)
    results+=("$(( (t1 - t0) * 1000000 / hz / ops ))")
  done
  sorted=$(printf '%s\n' "${results[@]}" | sort -n | tr '\n' ' ')
  read -r -a s <<< "$sorted"
  printf '%-13s %s / %s / %s us of MariaDB CPU per operation (%s runs of %s)\n' \
    "$c" "${s[0]}" "${s[$(( ${#s[@]} / 2 ))]}" "${s[-1]}" "$RUNS" "$N"
done
