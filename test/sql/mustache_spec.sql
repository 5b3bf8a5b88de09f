--
-- The Mustache spec: every case of every module in test/mustache-spec/
-- (the official modules, and delimiters.json written for this project)
-- rendered by reminder.mustache(template, data, partials).  Lambdas, an
-- optional module, are not supported: jsonb data cannot hold code.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set spec_dir :abs_srcdir '/mustache-spec'

CREATE TEMP TABLE spec_case AS
SELECT regexp_replace(f.file, '\.json$', '') AS module,
       t.ord,
       t.c->>'name' AS name,
       t.c->>'template' AS template,
       t.c->'data' AS data,
       coalesce(t.c->'partials', '{}') AS partials,
       t.c->>'expected' AS expected
  FROM pg_ls_dir(:'spec_dir') AS f(file),
       jsonb_array_elements(pg_read_file(:'spec_dir' || '/' || f.file)::jsonb->'tests')
           WITH ORDINALITY AS t(c, ord)
 WHERE f.file LIKE '%.json';

-- an error in one case must not hide the others
CREATE FUNCTION pg_temp.render(template text, data jsonb, partials jsonb)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    RETURN reminder.mustache(template, data, partials);
EXCEPTION WHEN OTHERS THEN
    RETURN 'ERROR: ' || SQLERRM;
END $$;

CREATE TEMP TABLE spec_result AS
SELECT *, pg_temp.render(template, data, partials) AS got FROM spec_case;

-- cases run and passed, per module
SELECT module, count(*) AS run,
       count(*) FILTER (WHERE got IS NOT DISTINCT FROM expected) AS passed
  FROM spec_result
 GROUP BY module
 ORDER BY module;

-- failures, if any
SELECT module, name, expected, got
  FROM spec_result
 WHERE got IS DISTINCT FROM expected
 ORDER BY module, ord;
