#!/bin/bash
# Creates the topics the services use (idempotent), as the admin user.
set -euo pipefail
cat >/tmp/client.properties <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${KAFKA_ADMIN_PASSWORD}";
PROPS
for t in ${KAFKA_TOPICS//,/ }; do
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server kafka:9092 --command-config /tmp/client.properties \
    --create --if-not-exists --topic "$t" --partitions "${KAFKA_PARTITIONS:-6}" --replication-factor 1
done
