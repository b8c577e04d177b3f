{#- Wait (at most 10 minutes) until the test has created retry_ctl.gate: it holds try 1 at this
    point until the test has rerouted the task's queue, so the retry's routing never races it. -#}
{% macro wait_for_retry_gate() %}
do $$
begin
  for i in 1..2400 loop
    exit when to_regclass('retry_ctl.gate') is not null;
    perform pg_sleep(0.25);
  end loop;
end
$$
{% endmacro %}
