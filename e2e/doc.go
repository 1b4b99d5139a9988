// Package e2e tests the whole pipeline through its real entry points: the
// sender and receiver binaries run as processes against real PostgreSQL
// databases and a Kafka-protocol broker reached over TCP with SASL/SCRAM, and
// the tests talk to them only through their HTTP APIs, the databases and the
// topic.
package e2e
