{#- A SQL snapshot block, not YAML: YAML snapshots need dbt-core 1.9 and the project supports 1.8. -#}
{% snapshot customers_snapshot %}
{{ config(target_schema=target.schema, unique_key='customer_id', strategy='check', check_cols='all') }}
select * from {{ ref('stg_customers') }}
{% endsnapshot %}
