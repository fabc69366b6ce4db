-- Wake-ups across processes: a change that makes a task pending (insert,
-- retry, rescue, reschedule, replay) notifies the channel taskwheel_<schema>
-- with "<run_at as Unix microseconds> <id>". PostgreSQL delivers it when the
-- transaction commits, so a listener never hears of a task it cannot see.
CREATE FUNCTION taskwheel_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('taskwheel_' || TG_TABLE_SCHEMA,
		(extract(epoch FROM NEW.run_at) * 1000000)::bigint || ' ' || NEW.id);
	RETURN NULL;
END
$$;

CREATE TRIGGER taskwheel_tasks_notify
	AFTER INSERT OR UPDATE OF state, run_at ON taskwheel_tasks
	FOR EACH ROW WHEN (NEW.state IN ('scheduled', 'retrying'))
	EXECUTE FUNCTION taskwheel_notify();
