{{ config(materialized='table', meta={'idbt': {'required_groups': ['payroll']}}) }}
-- The pre-flight check refuses this model before dbt starts: the identity does not carry group `payroll`.
select id as customer_id from {{ ref('customers') }}
