{#- For `dbt run-operation row_count --args '{model: customers}'`: logs a model's row count. -#}
{% macro row_count(model) %}
    {% set result = run_query("select count(*) from " ~ ref(model)) %}
    {% if execute %}
        {% set n = result.columns[0].values()[0] %}
        {{ log("row_count " ~ model ~ "=" ~ n, info=True) }}
        {{ return(n) }}
    {% endif %}
{% endmacro %}
