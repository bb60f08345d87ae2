"""Federated identity for one task: where a token comes from, what it says, and how long it lasts (no Airflow)."""

from airflow_provider_idbt.identity.token import FederatedToken, IdentityContext, fingerprint

__all__ = ["FederatedToken", "IdentityContext", "fingerprint"]
