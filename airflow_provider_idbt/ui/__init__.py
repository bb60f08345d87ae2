"""The "Model runs" view's data: `model_runs` (pure rows, filter, export) and `run_store` (the metadata database)."""
