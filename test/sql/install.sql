-- What CREATE EXTENSION leaves behind: one schema, documented objects,
-- nothing callable by PUBLIC.
\pset format unaligned

\dx reminder

-- every table, view and function carries a comment
SELECT c.relname AS undocumented_relation
  FROM pg_class c
 WHERE c.relnamespace = 'reminder'::regnamespace AND c.relkind IN ('r', 'v', 'p')
   AND obj_description(c.oid, 'pg_class') IS NULL;
SELECT p.oid::regprocedure AS undocumented_function
  FROM pg_proc p
 WHERE p.pronamespace = 'reminder'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL
   AND p.proname NOT LIKE '\_%';

-- no function is executable by PUBLIC
SELECT p.oid::regprocedure AS public_function
  FROM pg_proc p
 WHERE p.pronamespace = 'reminder'::regnamespace
   AND has_function_privilege('public', p.oid, 'EXECUTE');

-- every SECURITY DEFINER function pins search_path
SELECT p.oid::regprocedure AS definer_without_search_path
  FROM pg_proc p
 WHERE p.pronamespace = 'reminder'::regnamespace AND p.prosecdef
   AND NOT coalesce(p.proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp'];

-- DROP and CREATE again round-trips cleanly
DROP EXTENSION reminder;
SELECT count(*) AS leftover_schemas FROM pg_namespace WHERE nspname = 'reminder';
CREATE EXTENSION reminder;
SELECT extversion FROM pg_extension WHERE extname = 'reminder';

-- senders per database: a reload setting, 1 by default, at most 32
SELECT name, setting, context, min_val, max_val FROM pg_settings WHERE name = 'reminder.workers_per_database';
