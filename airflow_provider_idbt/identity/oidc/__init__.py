"""Generic OpenID Connect (`idbt_oidc`): client_credentials and RFC 8693 token exchange against any OIDC issuer."""
