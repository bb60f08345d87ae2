#!/usr/bin/env bash
# Amazon MWAA startup script for airflow-provider-idbt: dbt in a virtualenv of its own, apart from Airflow's.
#
# MWAA runs its startup script on every Airflow component before it installs requirements.txt and starts Airflow,
# and the variables the script exports reach the Airflow processes. This one builds dbt's virtualenv on the
# workers (where the model tasks run dbt) and exports its interpreter as IDBT_DBT_PYTHON; DAGs pass it on:
#
#     DbtIdentityTaskGroup(..., dbt_python=os.environ["IDBT_DBT_PYTHON"])
#
# Settings (environment variables, all optional):
#   IDBT_DBT_VENV         where the virtualenv goes        (default: /usr/local/airflow/idbt-dbt-venv)
#   IDBT_DBT_CONSTRAINTS  the pinned versions, e.g. the provider's constraints-dbt.txt uploaded with the DAGs
#                         (default: /usr/local/airflow/dags/idbt/constraints-dbt.txt)
#   IDBT_DBT_PACKAGES     what to install                  (default: "dbt-core dbt-postgres")
#   IDBT_STARTUP_DRY_RUN  1: print the commands, run nothing, export nothing
#
# It never calls `exit` and sets no shell options, so it works both run and sourced; a failed build exports no
# IDBT_DBT_PYTHON, and the tasks then fail with a message naming the missing interpreter.

idbt_dbt_venv() {
  local venv="${IDBT_DBT_VENV:-/usr/local/airflow/idbt-dbt-venv}"
  local constraints="${IDBT_DBT_CONSTRAINTS:-/usr/local/airflow/dags/idbt/constraints-dbt.txt}"
  local packages="${IDBT_DBT_PACKAGES:-dbt-core dbt-postgres}"
  local component="${MWAA_AIRFLOW_COMPONENT:-}"
  local python="${IDBT_BASE_PYTHON:-python3}"
  local run=""
  if [[ "${IDBT_STARTUP_DRY_RUN:-}" == "1" ]]; then run="echo [dry-run]"; fi

  # Only the workers run dbt; the scheduler and the web server read manifests, never run dbt.
  if [[ -n "$component" && "$component" != "worker" ]]; then
    echo "idbt startup: $component runs no dbt; no virtualenv built"
    return 0
  fi
  if [[ ! -f "$constraints" ]]; then
    echo "idbt startup: constraints file $constraints not found; set IDBT_DBT_CONSTRAINTS (dbt virtualenv not built)" >&2
    return 1
  fi
  local -a requirements
  read -r -a requirements <<<"$packages"
  echo "idbt startup: building $venv with ${requirements[*]} (constraints $constraints)"
  if ! $run "$python" -m venv "$venv"; then
    echo "idbt startup: could not create the virtualenv $venv" >&2
    return 1
  fi
  # PIP_USER=false: where the environment sets PIP_USER=true (MWAA's images are said to), pip refuses to install into a
  # virtualenv ("Can not perform a '--user' install").
  if ! PIP_USER=false $run "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    -c "$constraints" "${requirements[@]}"; then
    echo "idbt startup: pip could not install ${requirements[*]} into $venv" >&2
    return 1
  fi
  if [[ -n "$run" ]]; then
    echo "[dry-run] export IDBT_DBT_PYTHON=$venv/bin/python"
    return 0
  fi
  if ! "$venv/bin/dbt" --version >/dev/null; then
    echo "idbt startup: $venv/bin/dbt does not run" >&2
    return 1
  fi
  export IDBT_DBT_PYTHON="$venv/bin/python"
  echo "idbt startup: IDBT_DBT_PYTHON=$IDBT_DBT_PYTHON"
}

idbt_dbt_venv
