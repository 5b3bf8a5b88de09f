--
-- reminder.mustache(): our extensions to the spec, escaping modes, filters,
-- dates and errors.  The spec itself is covered by mustache_spec.
--
SET TimeZone = 'UTC';

-- errors as SQLSTATE, message, detail and hint
CREATE FUNCTION pg_temp.err(template text, data jsonb DEFAULT '{}',
                            partials jsonb DEFAULT '{}',
                            escape text DEFAULT 'html',
                            time_zone text DEFAULT NULL,
                            max_output integer DEFAULT NULL)
RETURNS TABLE (code text, message text, detail text, hint text)
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM reminder.mustache(template, data, partials, escape, time_zone,
                              max_output => max_output);
    code := '00000';
    RETURN NEXT;
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE, message = MESSAGE_TEXT,
                            detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
    RETURN NEXT;
END $$;

-- escape modes: {{x}} follows the mode, {{{x}}} and {{&x}} never escape
SELECT m AS escape,
       reminder.mustache('{{x}} | {{{x}}} | {{&x}}',
                         '{"x": "<a href=\"x\">Tom & Jerry''s</a>"}', escape => m)
  FROM unnest(ARRAY['html', 'none', 'json']) AS m;
SELECT reminder.mustache('{"text": "{{x}}"}',
                         '{"x": "back\\slash \"quoted\" new\nline\ttab \u0001 é ✓ </script>"}',
                         escape => 'json');

-- values that are not strings
SELECT reminder.mustache(
    '{{i}} {{d}} {{z}} {{big}} {{neg}} {{e}} | {{t}} {{f}} [{{n}}] [{{missing}}] | {{o}} | {{a}}',
    '{"i": 85, "d": 1.210, "z": 0.0, "big": 12345678901234567890, "neg": -0.50,
      "e": 1e3, "t": true, "f": false, "n": null,
      "o": {"k": "<v>", "n": 1.5}, "a": [1, "two", null]}');
SELECT reminder.mustache('{{o}}', '{"o": {"k": "\"q\""}}', escape => 'json');

-- what is falsey: missing, null, false, 0, "", []; {} and "0" are truthy
SELECT string_agg(format('%s:%s', k,
                  reminder.mustache('{{#v}}T{{/v}}{{^v}}F{{/v}}', jsonb_build_object('v', v))),
                  ' ' ORDER BY ord)
  FROM jsonb_each('{"null": null, "false": false, "zero": 0, "zerodec": 0.00,
                    "empty": "", "list": [], "obj": {}, "str0": "0", "one": 1,
                    "true": true, "text": "x", "full": [0]}'::jsonb)
       WITH ORDINALITY AS e(k, v, ord);

-- dotted names reach into arrays by index
SELECT reminder.mustache('{{items.0.name}}, {{items.1.name}}, [{{items.2.name}}] {{items.length}}',
                         '{"items": [{"name": "first"}, {"name": "second"}]}');

-- the json filter: a JSON literal, never escaped again
SELECT reminder.mustache('{"text": {{ msg | json }}, "n": {{n|json}}, "none": {{ nothing | json }}, "o": {{o | json}}, "b": {{ b | json }}}',
                         '{"msg": "Meeting \"Q3\" <today>\nat 10:00", "n": 2.50, "o": {"a": [1]}, "b": false}',
                         escape => m)
  FROM unnest(ARRAY['html', 'json']) AS m;

-- default: for missing, null and empty strings
SELECT reminder.mustache('Hi {{ name | default "there" }}, {{ nick | default ''pal'' }}, {{ city | default "?" }}!',
                         '{"nick": "", "city": null}');
SELECT reminder.mustache('Hi {{ name | default "there" }}!', '{"name": "Ann"}');

-- NULL arguments
SELECT reminder.mustache(NULL, '{}') IS NULL AS null_template,
       reminder.mustache('[{{a}}]', NULL) AS null_data,
       reminder.mustache('[{{>p}}]', '{}', NULL) AS null_partials;

-- dates: styles, locales (pl-PL falls back to pl, unknown to en)
SELECT l AS locale, s AS style,
       reminder.mustache(format('{{ t | date %1$s }} | {{ t | time %1$s }} | {{ t | datetime %1$s }}', s),
                         '{"t": "2026-11-24T14:05:00+01:00"}',
                         time_zone => 'Europe/Warsaw', locale => l) AS rendered
  FROM unnest(ARRAY['en', 'pl-PL', 'de', 'fr', 'es', 'xx']) WITH ORDINALITY AS l(l, lo),
       unnest(ARRAY['short', 'medium', 'long', 'full']) WITH ORDINALITY AS s(s, so)
 ORDER BY lo, so;

-- medium is the default style; every month in Polish dates is genitive
SELECT reminder.mustache('{{ t | datetime }}', '{"t": "2026-01-05T09:07:00Z"}');
SELECT string_agg(reminder.mustache('{{ t | date long }}', jsonb_build_object('t', d), locale => 'pl'),
                  ', ' ORDER BY d)
  FROM generate_series('2026-01-15'::timestamptz, '2026-12-15', '1 month') AS d;

-- the render's time zone, a tz= override, and the session TimeZone by default
SELECT reminder.mustache('{{ t | time }} / {{ t | time tz="America/New_York" }} / {{ t | time long tz=UTC }}',
                         '{"t": "2026-11-24T14:00:00+01:00"}', time_zone => 'Asia/Tokyo');
SET TimeZone = 'America/Sao_Paulo';
SELECT reminder.mustache('{{ t | datetime long }}', '{"t": "2026-11-24T14:00:00+01:00"}');
-- a value without an offset is read in the session TimeZone, like a cast
SELECT reminder.mustache('{{ t | datetime long }}', '{"t": "2026-11-24 14:00"}', time_zone => 'UTC');
SET TimeZone = 'UTC';

-- DST: New York springs forward on 2026-03-08, Warsaw falls back on 2026-10-25
SELECT t, reminder.mustache('{{ t | time long }}', jsonb_build_object('t', t), time_zone => 'America/New_York')
  FROM unnest(ARRAY['2026-03-08T06:30:00Z', '2026-03-08T07:30:00Z']) AS t;
SELECT t, reminder.mustache('{{ t | time long }}', jsonb_build_object('t', t), time_zone => 'Europe/Warsaw', locale => 'pl')
  FROM unnest(ARRAY['2026-10-25T00:30:00Z', '2026-10-25T01:30:00Z']) AS t;

-- Unix epoch numbers
SELECT reminder.mustache('{{ t | datetime "YYYY-MM-DD HH24:MI:SS.MS" }}', '{"t": 1795957200.25}');

-- to_char() patterns: TM names come from our tables, zone fields are the render's
SELECT l, reminder.mustache('{{ t | date "TMDay, FMDD TMMonth YYYY" }} | {{ t | date "TMMONTH YYYY" }} | {{ t | date "TMdy TMmon" }}',
                            '{"t": "2026-11-24T14:00:00Z"}', locale => l)
  FROM unnest(ARRAY['en', 'pl', 'de', 'fr', 'es']) AS l;
SELECT reminder.mustache('{{ t | datetime ''DD.MM.YYYY HH24:MI TZ tz OF TZH:TZM "TZ\" OF"'' }}',
                         '{"t": "2026-07-01T12:00:00Z"}', escape => 'none', time_zone => z)
  FROM unnest(ARRAY['Europe/Warsaw', 'Asia/Kolkata', 'America/St_Johns']) AS z;

-- a date filter on a missing value prints nothing, and default can follow
SELECT reminder.mustache('[{{ t | date }}] [{{ t | date | default "no date" }}] {{ u | date short | json }}',
                         '{"u": "2026-11-24T14:00:00Z"}');

-- filters in partials
SELECT reminder.mustache('{{#meetings}}{{> row}}{{/meetings}}',
                         '{"meetings": [{"title": "Kickoff", "at": "2026-11-24T14:00:00Z"},
                                        {"title": "Review", "at": "2026-11-25T09:30:00Z"}]}',
                         '{"row": "* {{ title }}: {{ at | datetime short }}\n"}',
                         time_zone => 'Europe/Berlin', locale => 'de');

\x on
-- syntax errors: 42601, with the position
SELECT t AS template, e.*
  FROM unnest(ARRAY[
        'Hi {{#items}}{{name}}',
        E'Hi {{#a}}\n{{#b}}x{{/a}}{{/b}}',
        'x{{/a}}',
        'Hi {{name',
        'Hi {{{name}}',
        'Hi {{=<% %>}}',
        'Hi {{=<%%>=}}',
        'Hi {{= <% = %> =}}',
        'Hi {{ }}',
        'Hi {{#}}{{/}}',
        'Hi {{first name}}',
        '{{<parent}}{{/parent}}',
        '{{ x | date "DD.MM }}',
        '{{ x | }}',
        '{{ x | json 1 }}',
        '{{ x | default }}',
        '{{ x | date tz= }}',
        '{{#x | json}}{{/x | json}}',
        E'line 1\n  ł {{#a}}\n{{/b}}'
       ]) WITH ORDINALITY AS t(t, o),
       LATERAL pg_temp.err(t) AS e
 ORDER BY o;

-- filter errors: 22023, except values that are no timestamps: 22007
SELECT t AS template, d AS data, e.*
  FROM (VALUES ('{{ x | upper }}', '{}'),
               ('{{ x | date longest }}', '{}'),
               ('{{ x | date long short }}', '{}'),
               ('{{ x | date "" }}', '{}'),
               ('{{ x | date zone="UTC" }}', '{}'),
               ('{{ x | date tz="Mars/Olympus_Mons" }}', '{}'),
               ('{{ x | date }}', '{"x": "next week"}'),
               ('{{ x | date }}', '{"x": true}'),
               ('{{ x | date }}', '{"x": {"at": "2026-11-24"}}'),
               ('{{ x | date }}', '{"x": "infinity"}'),
               ('{{ x | date }}', '{"x": 1e300}')) AS t(t, d),
       LATERAL pg_temp.err(t, d::jsonb) AS e;

-- bad options
SELECT * FROM pg_temp.err('{{x}}', escape => 'xml');
SELECT * FROM pg_temp.err('{{x}}', time_zone => 'Europe/Nowhere');
SELECT * FROM pg_temp.err('{{x}}', max_output => 0);
SELECT * FROM pg_temp.err('{{>p}}', partials => '["p"]');
SELECT * FROM pg_temp.err('{{>p}}', partials => '{"p": 1}');

-- errors in partials name the partial
SELECT * FROM pg_temp.err(E'ok\n{{>p}}', partials => '{"p": "a\n{{#x}}"}');
SELECT * FROM pg_temp.err(E'ok\n  {{>p}}\n', partials => '{"p": "a\n  {{ x | dat }}"}');

-- limits: partial recursion (54001), nesting (54001), output size and work (54000)
SELECT * FROM pg_temp.err('{{>p}}', partials => '{"p": "x{{>p}}"}');
SELECT * FROM pg_temp.err(repeat('{{#a}}', 101) || repeat('{{/a}}', 101));
SELECT * FROM pg_temp.err('{{#a}}{{b}}{{/a}}',
                          jsonb_build_object('a', (SELECT jsonb_agg(g) FROM generate_series(1, 100) g),
                                             'b', repeat('x', 100)),
                          max_output => 1000);
SELECT * FROM pg_temp.err('{{>p}}', partials => '{"p": "{{>q}}{{>q}}", "q": "{{>r}}{{>r}}", "r": "{{>s}}{{>s}}", "s": "{{#a}}{{/a}}{{#a}}{{/a}}"}',
                          data => jsonb_build_object('a', (SELECT jsonb_agg(g) FROM generate_series(1, 2000) g)),
                          max_output => 1000);
\x off

-- recursion that ends is fine
SELECT reminder.mustache('{{>node}}',
                         '{"name": "a", "kids": [{"name": "b", "kids": [{"name": "c", "kids": []}]}]}',
                         '{"node": "{{name}}({{#kids}}{{>node}}{{/kids}})"}');

-- the output limit counts bytes of the result
SELECT length(reminder.mustache('{{x}}', jsonb_build_object('x', repeat('y', 100)), max_output => 100));

-- the error as psql shows it
\set VERBOSITY default
SELECT reminder.mustache(E'Dear {{name}},\n{{#items}}\n- {{title}}\n{{/item}}\n', '{}');
