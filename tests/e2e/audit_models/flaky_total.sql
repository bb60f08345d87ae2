{{ config(materialized='table') }}
-- Fails on every try with an ordinary (retryable) error, so the run shows a retried failure.
select error('upstream extract not ready yet') as total
from {{ ref('orders') }}
