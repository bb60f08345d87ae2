"""`python -m airflow_provider_idbt.devidp`: the same as `idbt dev-idp`."""

import sys

from airflow_provider_idbt.devidp.command import main

sys.exit(main())
