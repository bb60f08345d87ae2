"""The development identity provider (`idbt dev-idp`): a local OIDC issuer whose tokens say they are for dev."""
