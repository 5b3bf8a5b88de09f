-- Every SECURITY DEFINER function in schema reminder pins search_path, so
-- no caller can make it resolve a name to an object of the caller's
-- choosing.  Written over the catalog, so a function added later that
-- forgets the SET clause fails here.
\ir setup.psql

BEGIN;
SELECT plan(5);

SELECT cmp_ok((SELECT count(*)::int FROM pg_proc p
                WHERE p.pronamespace = 'reminder'::regnamespace AND p.prosecdef),
              '>=', 15, 'the schema has SECURITY DEFINER functions to check');

SELECT is_empty($$
    SELECT p.oid::regprocedure::text
      FROM pg_proc p
     WHERE p.pronamespace = 'reminder'::regnamespace AND p.prosecdef
       AND NOT EXISTS (SELECT FROM unnest(p.proconfig) c WHERE c LIKE 'search_path=%') $$,
    'every SECURITY DEFINER function has search_path in proconfig');

SELECT is_empty($$
    SELECT p.oid::regprocedure::text || ': ' || c
      FROM pg_proc p, unnest(p.proconfig) c
     WHERE p.pronamespace = 'reminder'::regnamespace AND p.prosecdef
       AND c LIKE 'search_path=%'
       AND c NOT IN ('search_path=pg_catalog, pg_temp', 'search_path=pg_catalog,pg_temp') $$,
    'and it is exactly pg_catalog, pg_temp: no schema a caller could create objects in');

SELECT is_empty($$
    SELECT p.oid::regprocedure::text
      FROM pg_proc p
     WHERE p.pronamespace = 'reminder'::regnamespace
       AND has_function_privilege('public', p.oid, 'EXECUTE') $$,
    'PUBLIC may execute no function of the extension');

SELECT is_empty($$
    SELECT p.oid::regprocedure::text
      FROM pg_proc p
     WHERE p.pronamespace = 'reminder'::regnamespace AND p.prosecdef
       AND p.prokind <> 'f' $$,
    'no SECURITY DEFINER procedure or aggregate');

SELECT * FROM finish();
ROLLBACK;
