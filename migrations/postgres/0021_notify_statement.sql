-- Wake-ups coalesced per statement: one NOTIFY for every statement that
-- makes tasks pending within the engines' one-minute window, not one per
-- task. Each NOTIFY takes PostgreSQL's notification queue lock at commit,
-- and each payload is a notification every listener must read, so a
-- batch of a thousand tasks sent a thousand; now it sends one.
--
-- The payload is "<run_at as Unix microseconds> <id>" of the earliest such
-- task, as before, followed by " <latest run_at as Unix microseconds>"
-- when the statement's tasks fall due at different times: the listener
-- then reads the store's upcoming tasks again, which finds the others.
-- Tasks due at the same time need no more: the engine that claims at the
-- earliest keeps claiming while claims come back full.

-- taskwheel_wake is the payload for tasks due from lo to hi, the earliest
-- one being id.
CREATE FUNCTION taskwheel_wake(lo timestamptz, id text, hi timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT (extract(epoch FROM lo) * 1000000)::bigint || ' ' || id ||
		CASE WHEN hi > lo THEN ' ' || (extract(epoch FROM hi) * 1000000)::bigint ELSE '' END
$$;

-- Inserts: a statement-level trigger reads the inserted rows from its
-- transition table, once per statement.
CREATE FUNCTION taskwheel_notify_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	lo timestamptz;
	hi timestamptz;
	first text;
BEGIN
	SELECT min(n.run_at), max(n.run_at) INTO lo, hi FROM taskwheel_inserted n
	WHERE n.state IN ('scheduled', 'retrying') AND n.run_at <= now() + interval '1 minute';
	IF lo IS NULL THEN
		RETURN NULL;
	END IF;
	SELECT n.id INTO first FROM taskwheel_inserted n
	WHERE n.run_at = lo AND n.state IN ('scheduled', 'retrying') LIMIT 1;
	PERFORM pg_notify('taskwheel_' || left(md5(TG_TABLE_SCHEMA), 16), taskwheel_wake(lo, first, hi));
	RETURN NULL;
END
$$;

-- Updates (retry, rescue, reschedule, replay): PostgreSQL allows no
-- transition table on a trigger limited to some columns, and a trigger on
-- every update would copy every claimed and completed row. So a row-level
-- trigger, as selective as before, only remembers the statement's earliest
-- and latest due time in a setting local to the transaction, and a
-- statement-level one, which PostgreSQL fires after the row-level ones of
-- the same statement, notifies once and clears it.
CREATE FUNCTION taskwheel_note_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	noted text[] := string_to_array(nullif(current_setting('taskwheel.wake', true), ''), ' ');
	us bigint := (extract(epoch FROM NEW.run_at) * 1000000)::bigint;
BEGIN
	IF noted IS NULL THEN
		PERFORM set_config('taskwheel.wake', us || ' ' || NEW.id || ' ' || us, true);
	ELSIF us < noted[1]::bigint THEN
		PERFORM set_config('taskwheel.wake', us || ' ' || NEW.id || ' ' || noted[3], true);
	ELSIF us > noted[3]::bigint THEN
		PERFORM set_config('taskwheel.wake', noted[1] || ' ' || noted[2] || ' ' || us, true);
	END IF;
	RETURN NULL;
END
$$;

CREATE FUNCTION taskwheel_notify_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	noted text[] := string_to_array(nullif(current_setting('taskwheel.wake', true), ''), ' ');
BEGIN
	IF noted IS NULL THEN
		RETURN NULL;
	END IF;
	PERFORM set_config('taskwheel.wake', '', true);
	PERFORM pg_notify('taskwheel_' || left(md5(TG_TABLE_SCHEMA), 16),
		noted[1] || ' ' || noted[2] || CASE WHEN noted[3] <> noted[1] THEN ' ' || noted[3] ELSE '' END);
	RETURN NULL;
END
$$;

DROP TRIGGER taskwheel_tasks_notify ON taskwheel_tasks;
DROP FUNCTION taskwheel_notify();

CREATE TRIGGER taskwheel_tasks_notify_inserted
	AFTER INSERT ON taskwheel_tasks
	REFERENCING NEW TABLE AS taskwheel_inserted
	FOR EACH STATEMENT EXECUTE FUNCTION taskwheel_notify_inserted();

CREATE TRIGGER taskwheel_tasks_note_updated
	AFTER UPDATE OF state, run_at ON taskwheel_tasks
	FOR EACH ROW WHEN (NEW.state IN ('scheduled', 'retrying') AND NEW.run_at <= now() + interval '1 minute')
	EXECUTE FUNCTION taskwheel_note_updated();

CREATE TRIGGER taskwheel_tasks_notify_updated
	AFTER UPDATE OF state, run_at ON taskwheel_tasks
	FOR EACH STATEMENT EXECUTE FUNCTION taskwheel_notify_updated();
