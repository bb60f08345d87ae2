"""Federated identity for one task: where a token comes from, what it says, and how long it lasts (no Airflow)."""
