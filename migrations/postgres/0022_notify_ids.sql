-- Migration 0021's update triggers kept "<earliest> <its ID> <latest>" in
-- their setting and split it at spaces, so that an UPDATE making pending
-- two tasks, one with a space in its ID (tasks the app stored by SQL),
-- failed ("invalid input syntax for type bigint") and with it the replay,
-- retry or rescue. The setting is now "<earliest> <latest> <ID>": the two
-- numbers are split off and the rest is the ID, whatever it holds. The
-- payload is unchanged.

CREATE OR REPLACE FUNCTION taskwheel_note_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	noted text := nullif(current_setting('taskwheel.wake', true), '');
	us bigint := (extract(epoch FROM NEW.run_at) * 1000000)::bigint;
	lo text;
	hi text;
BEGIN
	IF noted IS NULL THEN
		PERFORM set_config('taskwheel.wake', us || ' ' || us || ' ' || NEW.id, true);
		RETURN NULL;
	END IF;
	lo := split_part(noted, ' ', 1);
	hi := split_part(noted, ' ', 2);
	IF us < lo::bigint THEN
		PERFORM set_config('taskwheel.wake', us || ' ' || hi || ' ' || NEW.id, true);
	ELSIF us > hi::bigint THEN
		PERFORM set_config('taskwheel.wake', lo || ' ' || us || ' ' || substr(noted, length(lo) + length(hi) + 3), true);
	END IF;
	RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION taskwheel_notify_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
	noted text := nullif(current_setting('taskwheel.wake', true), '');
	lo text;
	hi text;
BEGIN
	IF noted IS NULL THEN
		RETURN NULL;
	END IF;
	PERFORM set_config('taskwheel.wake', '', true);
	lo := split_part(noted, ' ', 1);
	hi := split_part(noted, ' ', 2);
	PERFORM pg_notify('taskwheel_' || left(md5(TG_TABLE_SCHEMA), 16),
		lo || ' ' || substr(noted, length(lo) + length(hi) + 3) || CASE WHEN hi <> lo THEN ' ' || hi ELSE '' END);
	RETURN NULL;
END
$$;
