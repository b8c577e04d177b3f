{{ config(pre_hook=["{{ wait_for_retry_gate() }}"]) }}
-- Fails on the first attempt only: retry_ctl.attempts is a sequence the test creates, and
-- nextval() is never rolled back, so the failed attempt still counts.
select 1 / (case when nextval('retry_ctl.attempts') >= 2 then 1 else 0 end) as id
