"""Thin Airflow hooks over identity/: one per connection type, reading connections the normal Airflow way."""

from airflow_provider_idbt.hooks.oidc import OidcTokenHook

__all__ = ["OidcTokenHook"]
