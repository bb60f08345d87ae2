#!/usr/bin/env bash
# The one entry point of every Airflow and idbt service in docker-compose.yaml: `entrypoint.sh SUBCOMMAND [ARGS]`.
# tests/unit/test_docker_compose.py runs the same script natively (init, dev-idp) with deploy/airflow.env, so a
# service's command cannot drift from what the tests run. `entrypoint.sh commands` lists the subcommands.
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PYTHON="${PYTHON:-python3}"
SUBCOMMANDS=(init api-server scheduler dag-processor triggerer celery-worker dev-idp warm-worker commands)

say() { echo "[idbt entrypoint] $*" >&2; }

need() {
  local name
  for name in "$@"; do
    if [[ -z "${!name:-}" ]]; then
      say "$name is not set: docker-compose.yaml gives every service deploy/airflow.env"
      exit 2
    fi
  done
}

# Python falls back to /tmp when TMPDIR does not exist, and the warm worker's children would then write where the
# task cannot read (docs/execution-modes.md): create it in every service before anything starts.
prepare_dirs() {
  if [[ -n "${TMPDIR:-}" ]]; then mkdir -p "$TMPDIR"; fi
  if [[ -n "${IDBT_DUCKDB_PATH:-}" ]]; then mkdir -p "$(dirname "$IDBT_DUCKDB_PATH")"; fi
}

# The `idbt_dev` connection, from the same IDBT_DEV_* values the dev IdP is started with. It goes through a file
# readable by this user only (never argv, which other processes can read) and Airflow's own import command.
create_connections() {
  need IDBT_DEV_CLIENT IDBT_DEV_IDP_HOST IDBT_DEV_IDP_PORT IDBT_DEV_AUDIENCE
  local file
  file="$(mktemp "${TMPDIR:-/tmp}/idbt-connections.XXXXXX.json")"
  local status=0
  "$PYTHON" - "$file" <<'PY' || status=$?
import json, os, sys

client_id, _, rest = os.environ["IDBT_DEV_CLIENT"].partition(":")
secret = rest.partition(":")[0]
if not client_id or not secret:
    sys.exit("IDBT_DEV_CLIENT must be ID:SECRET[:GROUPS]")
issuer = f"http://{os.environ['IDBT_DEV_IDP_HOST']}:{os.environ['IDBT_DEV_IDP_PORT']}"
connections = {
    "idbt_dev": {
        "conn_type": "idbt_oidc",
        "description": "the dev identity provider of docker-compose.yaml (development only)",
        "host": issuer,
        "login": client_id,
        "password": secret,
        "extra": json.dumps({"audience": os.environ["IDBT_DEV_AUDIENCE"]}),
    }
}
with open(sys.argv[1], "w") as handle:
    json.dump(connections, handle)
PY
  if [[ $status -eq 0 ]]; then airflow connections import --overwrite "$file" || status=$?; fi
  rm -f "$file"
  return "$status"
}

# The warehouse database with its schemas, roles and GRANTs; idempotent, so `init` may run again.
create_warehouse() {
  need IDBT_WAREHOUSE_ADMIN_URL IDBT_WAREHOUSE_DB IDBT_DEV_CLIENT
  psql "$IDBT_WAREHOUSE_ADMIN_URL" --quiet --no-psqlrc -v ON_ERROR_STOP=1 \
    -v warehouse_db="$IDBT_WAREHOUSE_DB" -v identity="${IDBT_DEV_CLIENT%%:*}" -f "$DEPLOY_DIR/warehouse.sql"
}

# Steps that do not depend on each other run at once: each Airflow command starts a Python process that imports
# Airflow, seconds apiece. Every step's output goes to this service's log; the first failure fails `init`.
STEPS=()
PIDS=()
start_step() {
  local name="$1"
  shift
  say "$name"
  "$@" &
  STEPS+=("$name")
  PIDS+=("$!")
}

wait_steps() {
  local i failed=0
  for i in "${!PIDS[@]}"; do
    if ! wait "${PIDS[$i]}"; then
      say "failed: ${STEPS[$i]}"
      failed=1
    fi
  done
  STEPS=()
  PIDS=()
  return "$failed"
}

cmd_init() {
  need AIRFLOW_HOME IDBT_PROJECT_DIR
  prepare_dirs
  # What the DAG is built from: the manifest, the partial parse file and the slim index (never parsed in a task).
  # It needs no database, so it runs beside the migration.
  start_step "idbt prepare $IDBT_PROJECT_DIR" \
    idbt prepare --project-dir "$IDBT_PROJECT_DIR" --profiles-dir "$IDBT_PROJECT_DIR"
  start_step "warehouse roles and GRANTs" create_warehouse
  say "airflow db migrate"
  if ! airflow db migrate; then
    wait_steps || true
    say "failed: airflow db migrate"
    return 1
  fi
  start_step "connections" create_connections
  start_step "pool idbt_duckdb (DuckDB takes one writer at a time)" \
    airflow pools set idbt_duckdb 1 "DuckDB takes one writer at a time"
  wait_steps
  say "init done"
}

cmd_dev_idp() {
  need IDBT_DEV_CLIENT IDBT_DEV_IDP_HOST IDBT_DEV_IDP_PORT IDBT_DEV_AUDIENCE
  # Bound to the service's own hostname, so the issuer (the `iss` of its tokens) is the URL the other services
  # reach it at. The client secret is the public development one of deploy/airflow.env.
  exec idbt dev-idp --host "$IDBT_DEV_IDP_HOST" --port "$IDBT_DEV_IDP_PORT" \
    --client "$IDBT_DEV_CLIENT" --audience "$IDBT_DEV_AUDIENCE" "$@"
}

cmd_warm_worker() {
  need IDBT_PROJECT_DIR IDBT_WARM_DIR
  exec idbt warm-worker --project-dir "$IDBT_PROJECT_DIR" --manifest "$IDBT_PROJECT_DIR/target/manifest.json" \
    --profiles-dir "$IDBT_PROJECT_DIR" "$@"
}

main() {
  local sub="${1:-}"
  if [[ -z "$sub" ]]; then
    say "usage: entrypoint.sh {$(IFS='|'; echo "${SUBCOMMANDS[*]}")} [ARGS]"
    exit 2
  fi
  shift
  case "$sub" in
    commands) printf '%s\n' "${SUBCOMMANDS[@]}"; return 0 ;;
    init) cmd_init "$@"; return 0 ;;
  esac
  prepare_dirs
  case "$sub" in
    api-server) exec airflow api-server --host "${AIRFLOW_API_HOST:-0.0.0.0}" --port "${AIRFLOW_API_PORT:-8080}" "$@" ;;
    scheduler) exec airflow scheduler "$@" ;;
    dag-processor) exec airflow dag-processor "$@" ;;
    triggerer) exec airflow triggerer "$@" ;;
    celery-worker) exec airflow celery worker --celery-hostname "${IDBT_WORKER_NAME:-$(hostname)}" "$@" ;;
    dev-idp) cmd_dev_idp "$@" ;;
    warm-worker) cmd_warm_worker "$@" ;;
    *)
      say "unknown subcommand '$sub'; one of: ${SUBCOMMANDS[*]}"
      exit 2
      ;;
  esac
}

main "$@"
