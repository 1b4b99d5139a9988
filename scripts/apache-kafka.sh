#!/usr/bin/env bash
# Runs the official Apache Kafka broker (KRaft, one node) on loopback with
# SASL_PLAINTEXT and SCRAM-SHA-512, from the release's jars on Maven Central
# (fetched with Maven once, cached under ~/.cache/invoicesync).
#
#   scripts/apache-kafka.sh start   fetch if needed, format, start, wait until SCRAM logins work
#   scripts/apache-kafka.sh stop    stop it and remove its data
#   scripts/apache-kafka.sh env     print the INVOICESYNC_TEST_KAFKA_* variables for the tests
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' deploy/apache-kafka/pom.xml)
CACHE="${INVOICESYNC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/invoicesync}/apache-kafka-$VERSION"
STATE="${APACHE_KAFKA_STATE:-.local/apache-kafka}"
PORT="${APACHE_KAFKA_PORT:-19092}"
CONTROLLER_PORT="${APACHE_KAFKA_CONTROLLER_PORT:-19093}"
USER_NAME=invoicesync
PASSWORD="${APACHE_KAFKA_PASSWORD:-invoicesync-secret}"

need() { command -v "$1" >/dev/null || { echo "apache-kafka.sh: $1 is required (apt-get install $2)" >&2; exit 1; }; }

fetch() {
  need java openjdk-17-jre-headless
  [ -f "$CACHE/.complete" ] && return
  need mvn maven
  echo "apache-kafka.sh: fetching Apache Kafka $VERSION jars from Maven Central into $CACHE" >&2
  mkdir -p "$CACHE/libs"
  mvn -q -B -f deploy/apache-kafka/pom.xml dependency:copy-dependencies -DoutputDirectory="$CACHE/libs" >&2
  touch "$CACHE/.complete"
}

java_run() { # main-class args...
  java -Xms256m -Xmx768m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dkafka.logs.dir="$STATE/logs" -Dlog4j2.configurationFile="$PWD/deploy/apache-kafka/log4j2.properties" \
    -cp "$CACHE/libs/*" "$@"
}

start() {
  fetch
  if [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null; then
    echo "apache-kafka.sh: already running (pid $(cat "$STATE/pid"))" >&2; return
  fi
  rm -rf "$STATE"; mkdir -p "$STATE/data" "$STATE/logs"
  cat >"$STATE/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=SASL_PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=SASL_PLAINTEXT://127.0.0.1:$PORT
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$USER_NAME" password="$PASSWORD";
log.dirs=$PWD/$STATE/data
num.partitions=6
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=6
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
# The tests use 3 s consumer session timeouts to keep rebalances quick.
group.min.session.timeout.ms=1000
PROPS
  java_run kafka.tools.StorageTool format -t "$(java_run kafka.tools.StorageTool random-uuid)" \
    -c "$STATE/server.properties" --add-scram "SCRAM-SHA-512=[name=$USER_NAME,password=$PASSWORD]" >"$STATE/logs/format.log" 2>&1 ||
    { cat "$STATE/logs/format.log" >&2; exit 1; }
  java_run kafka.Kafka "$STATE/server.properties" >"$STATE/logs/stdout.log" 2>&1 &
  echo $! >"$STATE/pid"
  for _ in $(seq 1 120); do
    # The port opens before the broker serves requests: wait for its own word.
    if grep -q "Kafka Server started" "$STATE/logs/server.log" 2>/dev/null &&
      (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
      echo "apache-kafka.sh: Apache Kafka $VERSION listening on 127.0.0.1:$PORT (SASL_PLAINTEXT, SCRAM-SHA-512, user $USER_NAME)" >&2
      return
    fi
    kill -0 "$(cat "$STATE/pid")" 2>/dev/null || { tail -n 30 "$STATE/logs/stdout.log" "$STATE/logs/server.log" >&2; exit 1; }
    sleep 0.5
  done
  echo "apache-kafka.sh: broker did not start; logs in $STATE/logs" >&2; exit 1
}

stop() {
  if [ -f "$STATE/pid" ]; then
    pid=$(cat "$STATE/pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$STATE"
}

env_vars() {
  echo "INVOICESYNC_TEST_KAFKA_BROKERS=127.0.0.1:$PORT"
  echo "INVOICESYNC_TEST_KAFKA_MECHANISM=SCRAM-SHA-512"
  echo "INVOICESYNC_TEST_KAFKA_USER=$USER_NAME"
  echo "INVOICESYNC_TEST_KAFKA_PASSWORD=$PASSWORD"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env) env_vars ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
