#!/usr/bin/env bash
# Local run on embedded defaults: PostgreSQL (local cluster), the embedded
# SCRAM Kafka broker (bin/devkafka), the sender API, the relay and the
# receiver, each a background process with its log in .local/logs.
#
#   scripts/local.sh up     start everything (idempotent) and run the demo
#   scripts/local.sh demo   send invoices, mark one ERROR, show the receiver before and after
#   scripts/local.sh down   stop what `up` started
#   scripts/local.sh status show what runs
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=.local
LOGS=$STATE/logs
RUN=$STATE/run
mkdir -p "$LOGS" "$RUN"

export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:${DEVKAFKA_PORT:-9092}}"
export KAFKA_SASL_MECHANISM="${KAFKA_SASL_MECHANISM:-SCRAM-SHA-512}"
export KAFKA_SASL_USERNAME="${KAFKA_SASL_USERNAME:-invoicesync}"
export KAFKA_SASL_PASSWORD="${KAFKA_SASL_PASSWORD:-invoicesync-secret}"
export SENDER_DATABASE_URL="${SENDER_DATABASE_URL:-postgres://invoicesync:invoicesync@127.0.0.1:5432/invoicesync_sender}"
export RECEIVER_DATABASE_URL="${RECEIVER_DATABASE_URL:-postgres://invoicesync:invoicesync@127.0.0.1:5432/invoicesync_receiver}"
export SENDER_HTTP_ADDR="${SENDER_HTTP_ADDR:-127.0.0.1:8080}"
export RECEIVER_HTTP_ADDR="${RECEIVER_HTTP_ADDR:-127.0.0.1:8081}"
export LOG_FORMAT="${LOG_FORMAT:-json}"
export DEVKAFKA_DATA_DIR="${DEVKAFKA_DATA_DIR:-$STATE/kafka}"

SENDER_URL="http://$SENDER_HTTP_ADDR"
RECEIVER_URL="http://$RECEIVER_HTTP_ADDR"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { printf 'local.sh: %s\n' "$*" >&2; exit 1; }

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start() { # name command...
  local name=$1; shift
  if running "$name"; then echo "    $name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  "$@" >>"$LOGS/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  echo "    $name started (pid $!, log $LOGS/$name.log)"
}

wait_http() { # name url
  for _ in $(seq 1 100); do
    curl -fsS "$2" >/dev/null 2>&1 && return 0
    running "$1" || { tail -20 "$LOGS/$1.log" >&2; die "$1 exited; its log is above"; }
    sleep 0.1
  done
  tail -20 "$LOGS/$1.log" >&2; die "$1 did not answer on $2"
}

wait_port() { # name host:port
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/${2%:*}/${2#*:}") 2>/dev/null && return 0
    running "$1" || { tail -20 "$LOGS/$1.log" >&2; die "$1 exited; its log is above"; }
    sleep 0.1
  done
  die "$1 is not listening on $2"
}

# view prints a destination's histories at the receiver as a table, with the
# delay from the sender's commit to the receiver's apply.
view() {
  curl -fsS "$RECEIVER_URL/v1/destinations/$DEST/histories" | python3 -c '
import json, sys
from datetime import datetime
items = json.load(sys.stdin)["items"]
ts = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
print("    %-9s %-8s %-7s %12s  %-20s %s" % ("history", "status", "version", "total", "sent at", "sync delay"))
for i in items:
    delay = (ts(i["syncedAt"]) - ts(i["sourceOccurredAt"])).total_seconds() * 1000
    print("    %-9s %-8s %-7s %12s  %-20s %.1f ms" % (i["historyId"], i["emailStatus"], i["sourceVersion"],
          i["totalAmount"], i["sentAt"], delay))
if not items:
    print("    (none)")
'
}

up() {
  say "PostgreSQL"
  ./scripts/postgres.sh
  say "Building bin/sender, bin/receiver, bin/devkafka"
  make -s build
  say "Embedded Kafka broker with SASL/SCRAM ($KAFKA_BROKERS, data in $DEVKAFKA_DATA_DIR)"
  start devkafka bin/devkafka --port "${KAFKA_BROKERS##*:}"
  wait_port devkafka "$KAFKA_BROKERS"
  say "Migrations"
  bin/sender migrate
  bin/receiver migrate
  say "Services (restarted, so a rebuilt binary takes effect)"
  stop receiver sender-relay sender-api
  start sender-api bin/sender serve
  start sender-relay bin/sender relay
  start receiver bin/receiver serve
  wait_http sender-api "$SENDER_URL/healthz"
  wait_http receiver "$RECEIVER_URL/healthz"
  demo
  say "Everything runs. Logs: $LOGS/*.log   Stop: make down"
}

post_history() { # office invoice amount
  curl -fsS -X POST "$SENDER_URL/v1/histories" -H 'Content-Type: application/json' -d @- <<JSON
{"sentAt": $(date +%s), "senderOfficeName": "MFV-HN", "destinationCode": "$DEST",
 "senderCustomerId": "001", "senderOfficeId": "MFV-HN-01",
 "forms": [{"fileName": "$1.pdf", "filePath": "file://sci/", "size": 1024, "invoiceNumber": "$1",
            "issueDate": $(($(date +%s) * 1000)), "totalAmount": $2}]}
JSON
}

id_of() { sed -E 's/.*"historyId": *([0-9]+).*/\1/'; }

count_at_receiver() {
  curl -fsS "$RECEIVER_URL/v1/destinations/$DEST/histories?limit=500" |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["items"]))'
}

wait_count() { # want
  for _ in $(seq 1 100); do
    [ "$(count_at_receiver)" = "$1" ] && return 0
    sleep 0.1
  done
  die "the receiver shows $(count_at_receiver) histories for $DEST, expected $1"
}

demo() {
  DEST="CUST-DEMO-$(date +%s)"
  say "Sending three invoices to $DEST through the sender API ($SENDER_URL)"
  a=$(post_history INVC-001 1500 | id_of); echo "    history $a"
  b=$(post_history INVC-002 2750.50 | id_of); echo "    history $b"
  c=$(post_history INVC-003 99.99 | id_of); echo "    history $c"
  wait_count 3
  say "Receiver's view of $DEST (GET $RECEIVER_URL/v1/destinations/$DEST/histories)"
  view
  say "The mail provider reports history $b failed: PUT /v1/histories/$b/status ERROR"
  curl -fsS -X PUT "$SENDER_URL/v1/histories/$b/status" -H 'Content-Type: application/json' \
    -d '{"emailStatus":"ERROR"}'; echo
  wait_count 2
  say "Receiver's view after the ERROR: history $b is gone"
  view
  curl -sS -o /dev/null -w "    GET /v1/histories/$b -> HTTP %{http_code}\n" "$RECEIVER_URL/v1/histories/$b"
}

stop() { # names...
  for name in "$@"; do
    if running "$name"; then
      kill -TERM "$(cat "$RUN/$name.pid")" 2>/dev/null || true
      for _ in $(seq 1 100); do running "$name" || break; sleep 0.1; done
      running "$name" && kill -KILL "$(cat "$RUN/$name.pid")" 2>/dev/null || true
      echo "    $name stopped"
    fi
    rm -f "$RUN/$name.pid"
  done
}

down() { stop receiver sender-relay sender-api devkafka; }

status() {
  for name in devkafka sender-api sender-relay receiver; do
    if running "$name"; then echo "$name: running (pid $(cat "$RUN/$name.pid"))"; else echo "$name: stopped"; fi
  done
}

case "${1:-up}" in
  up) up ;;
  demo) demo ;;
  down) down ;;
  status) status ;;
  *) die "unknown command ${1}: use up, demo, down or status" ;;
esac
