"""AWS (`idbt_aws`): AssumeRoleWithWebIdentity through botocore with the worker's web identity token."""
