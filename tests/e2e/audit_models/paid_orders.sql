{{ config(materialized='table') }}
select o.id as order_id, coalesce(sum(p.amount_cents), 0) / 100.0 as paid
from {{ ref('orders') }} as o
left join {{ ref('payments') }} as p on p.order_id = o.id
group by o.id
