#!/bin/sh
# Temporal's PostgreSQL schemas, run by the temporal-schema job (temporalio/admin-tools) on every
# `docker compose up`: creates the databases if missing, then applies pending schema versions.
# Safe to repeat; an upgrade of temporalio/server + admin-tools upgrades the schema here.
set -eu

TOOL="temporal-sql-tool --plugin postgres12 --ep postgresql -u temporal -p 5432"
SCHEMA=/etc/temporal/schema/postgresql/v12

until nc -z postgresql 5432; do echo "waiting for postgresql"; sleep 1; done

for db in temporal temporal_visibility; do
  if ! out=$($TOOL --db "$db" create 2>&1); then
    case "$out" in
      *"already exists"*) echo "database $db exists" ;;
      *) echo "$out" >&2; exit 1 ;;
    esac
  fi
done

$TOOL --db temporal setup-schema -v 0.0
$TOOL --db temporal update-schema -d "$SCHEMA/temporal/versioned"
$TOOL --db temporal_visibility setup-schema -v 0.0
$TOOL --db temporal_visibility update-schema -d "$SCHEMA/visibility/versioned"
echo "Temporal schemas are up to date"
