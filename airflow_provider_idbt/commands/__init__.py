"""The `idbt` command and its sub-commands: doctor, audit, dev-idp, demo, and the local Airflow runner."""
