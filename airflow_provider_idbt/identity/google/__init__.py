"""Google (`idbt_google`): workload identity federation (STS) and service-account impersonation via google-auth."""
