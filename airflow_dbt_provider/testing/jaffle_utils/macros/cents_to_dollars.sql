{% macro cents_to_dollars(column) %}
    ({{ column }} / 100.0)::decimal(16, 2)
{% endmacro %}
