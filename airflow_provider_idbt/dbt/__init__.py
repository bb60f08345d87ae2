"""The pure dbt core: manifest, profiles, the dbt child process and its results; no Airflow import."""
