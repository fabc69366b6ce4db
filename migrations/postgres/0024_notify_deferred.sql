-- Wake-ups after the commit. A store that sends the wake-up of its own
-- inserts itself, after their commit and coalesced with others (package
-- tasks, store_sql_wake.go), sets taskwheel.notify to 'deferred' for the
-- inserting transaction: the insert trigger then sends nothing. A NOTIFY
-- inside the inserting transaction makes PostgreSQL hold its notification
-- queue's lock from that commit until it is flushed, so that notifying
-- inserts commit one at a time. Every other insert (in the caller's own
-- transaction, by the application's SQL) notifies as before.

CREATE OR REPLACE FUNCTION taskwheel_notify_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	lo timestamptz;
	hi timestamptz;
	first text;
BEGIN
	IF current_setting('taskwheel.notify', true) = 'deferred' THEN
		RETURN NULL;
	END IF;
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
