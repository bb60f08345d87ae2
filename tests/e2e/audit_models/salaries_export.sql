{{ config(materialized='table') }}
-- Stands in for a warehouse GRANT the identity lacks: DuckDB has no roles, so the denial is raised here,
-- in the words DuckDB uses for its own permission errors, and reaches the operator through dbt as a real one would.
select error('Permission Error: identity has no grant on payroll.salaries') as denied
from {{ ref('customers') }}
