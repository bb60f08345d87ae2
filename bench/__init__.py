"""Benchmarks of airflow-provider-idbt: scripts that print figures and write docs/performance.md (never tests)."""
