#!/usr/bin/env bash
# Install (Debian package) and start a local PostgreSQL for the distributed-tuning test;
# prints the database URL on success. Any failure prints nothing (its log is in
# $MOLDDL_CI_POSTGRES_LOG): .ci/run then stops under CI=true, else the test skips with its reason.
set -u
log="${MOLDDL_CI_POSTGRES_LOG:-/tmp/molddl-ci-postgres.log}"
{
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  fi
  version=$(ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -n 1)
  [ -n "$version" ] || exit 1
  pg_lsclusters -h | grep -q "^$version main" || pg_createcluster "$version" main
  pg_ctlcluster "$version" main start || pg_ctlcluster "$version" main status
  for _ in $(seq 1 20); do pg_isready -q -h 127.0.0.1 && break; sleep 0.5; done
  su postgres -c "psql -qtc \"SELECT 1 FROM pg_roles WHERE rolname='molddl'\"" | grep -q 1 ||
    su postgres -c "psql -qc \"CREATE ROLE molddl LOGIN PASSWORD 'molddl'\""
  su postgres -c "psql -qc 'DROP DATABASE IF EXISTS molddl_ci'"
  su postgres -c "psql -qc 'CREATE DATABASE molddl_ci OWNER molddl'"
} >"$log" 2>&1 || exit 0
pg_isready -q -h 127.0.0.1 && echo "postgresql://molddl:molddl@127.0.0.1:5432/molddl_ci"
