-- A singular test: no order has a negative total.
select order_id from {{ ref('orders') }} where amount < 0
