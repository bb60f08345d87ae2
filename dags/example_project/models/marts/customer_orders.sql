select
    c.customer_id,
    c.first_name,
    c.last_name,
    count(t.order_id) as order_count,
    min(t.ordered_at) as first_order_at,
    coalesce(sum(t.amount) filter (where t.status <> 'returned'), 0) as lifetime_value
from {{ ref('stg_customers') }} as c
left join {{ ref('order_totals') }} as t on t.customer_id = c.customer_id
group by c.customer_id, c.first_name, c.last_name
