#!/bin/bash
# Formats KRaft storage once (creating the SCRAM users) and starts the broker.
# Env: KAFKA_ADMIN_PASSWORD, KAFKA_APP_USER, KAFKA_APP_PASSWORD, KAFKA_CLUSTER_ID.
set -euo pipefail
: "${KAFKA_ADMIN_PASSWORD:?}" "${KAFKA_APP_USER:?}" "${KAFKA_APP_PASSWORD:?}" "${KAFKA_CLUSTER_ID:?}"
cfg=/tmp/server.properties
cp /deploy/server.properties "$cfg"
# The broker's own inter-broker login (the admin user).
echo "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"admin\" password=\"${KAFKA_ADMIN_PASSWORD}\";" >>"$cfg"
/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "$KAFKA_CLUSTER_ID" -c "$cfg" \
  --add-scram "SCRAM-SHA-512=[name=admin,password=${KAFKA_ADMIN_PASSWORD}]" \
  --add-scram "SCRAM-SHA-512=[name=${KAFKA_APP_USER},password=${KAFKA_APP_PASSWORD}]"
exec /opt/kafka/bin/kafka-server-start.sh "$cfg"
