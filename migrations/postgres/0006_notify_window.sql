-- Notify only of tasks due within the engines' one-minute window (later
-- ones come into it through the engines' polling), so a backlog scheduled
-- far ahead does not make every insert notify; and name the channel by a
-- hash of the schema, which keeps it within 63 bytes for any schema name.
CREATE OR REPLACE FUNCTION taskwheel_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('taskwheel_' || left(md5(TG_TABLE_SCHEMA), 16),
		(extract(epoch FROM NEW.run_at) * 1000000)::bigint || ' ' || NEW.id);
	RETURN NULL;
END
$$;

DROP TRIGGER taskwheel_tasks_notify ON taskwheel_tasks;
CREATE TRIGGER taskwheel_tasks_notify
	AFTER INSERT OR UPDATE OF state, run_at ON taskwheel_tasks
	FOR EACH ROW WHEN (NEW.state IN ('scheduled', 'retrying') AND NEW.run_at <= now() + interval '1 minute')
	EXECUTE FUNCTION taskwheel_notify();
