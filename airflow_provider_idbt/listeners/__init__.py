"""Airflow listeners of the provider."""
