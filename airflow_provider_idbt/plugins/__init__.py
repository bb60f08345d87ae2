"""Airflow plugins of the provider."""
