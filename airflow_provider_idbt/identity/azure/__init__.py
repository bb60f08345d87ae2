"""Azure / Entra ID (`idbt_azure`): msal with a federated client assertion, a certificate or a secret."""
