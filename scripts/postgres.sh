#!/usr/bin/env bash
# Ensures a local PostgreSQL is running with the invoicesync role and the
# two databases of the local run. Idempotent. Used by `make up`, `make test`
# and .ci/run; on a machine with its own PostgreSQL, set the *_DATABASE_URL
# variables instead and skip this.
set -euo pipefail

PGVER="${PGVER:-15}"
ROLE="${PG_ROLE:-invoicesync}"
PASSWORD="${PG_PASSWORD:-invoicesync}"

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi
}

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  echo "postgres.sh: PostgreSQL is not installed; installing postgresql-$PGVER" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$PGVER" >/dev/null
fi

status=$(pg_lsclusters --no-header | awk -v v="$PGVER" '$1==v && $2=="main" {print $4}')
if [ -z "$status" ]; then
  as_postgres pg_createcluster "$PGVER" main >/dev/null
  status=down
fi
if [ "$status" != "online" ]; then
  pg_ctlcluster --skip-systemctl-redirect "$PGVER" main start
fi

for _ in $(seq 1 30); do
  as_postgres psql -qAtc 'select 1' >/dev/null 2>&1 && break
  sleep 0.5
done

as_postgres psql -qv ON_ERROR_STOP=1 <<SQL
DO \$\$BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') THEN
    CREATE ROLE $ROLE LOGIN SUPERUSER PASSWORD '$PASSWORD';
  END IF;
END\$\$;
SQL
for db in invoicesync_sender invoicesync_receiver; do
  if ! as_postgres psql -qAtc "select 1 from pg_database where datname='$db'" | grep -q 1; then
    as_postgres createdb -O "$ROLE" "$db"
  fi
done
echo "postgres.sh: PostgreSQL $PGVER is up on 127.0.0.1:5432 (role $ROLE; databases invoicesync_sender, invoicesync_receiver)"
