-- The list indexes in ascending order (issue 18). List reads them newest
-- first, (created_at, id) descending, which PostgreSQL does by scanning an
-- ascending B-tree backwards as well as a descending one forwards. But a
-- new task has the latest created_at (the transaction's) and a UUIDv7 ID
-- that sorts after the earlier ones: in a descending index its entry goes
-- before every other, on the leftmost leaf, which splits in halves as it
-- fills; in an ascending one it goes on the rightmost leaf, which
-- PostgreSQL finds without descending the tree (its cached rightmost
-- block) and splits leaving the left page full.
DROP INDEX taskwheel_tasks_app_list;
CREATE INDEX taskwheel_tasks_app_list ON taskwheel_tasks (app_id, created_at, id);
DROP INDEX taskwheel_tasks_list;
CREATE INDEX taskwheel_tasks_list ON taskwheel_tasks (created_at, id);
