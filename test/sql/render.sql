-- Previews: the template in the recipient's locale, timestamps in the
-- recipient's time zone, the escaping each part and channel needs.
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers :abs_srcdir '/sql/include/helpers.psql'
\i :helpers
\pset format unaligned

SELECT reminder.create_channel('rn_hook', 'webhook', '{"url": "http://127.0.0.1:9/"}');
SELECT reminder.create_channel('rn_mail', 'email', '{"url": "smtp://127.0.0.1:2525", "from": "noreply@example.com"}');
SELECT reminder.create_template('rn_meeting',
    'Hello {{recipient.name}}, "{{row.title}}" starts {{row.starts_at | datetime long}}.',
    subject => 'Reminder: {{row.title}}',
    html => '<p>{{row.title}} at {{row.starts_at | time}}</p>');
SELECT reminder.create_template('rn_meeting',
    'Dzień dobry {{recipient.name}}, „{{row.title}}” zaczyna się {{row.starts_at | datetime long}}.',
    subject => 'Przypomnienie: {{row.title}}', locale => 'pl');
SELECT reminder.create_template('rn_json', '{"title": "{{row.title}}", "raw": {{row | json}}}');

\set data '{"row": {"title": "Q4 <review> & \\u0022plan\\u0022", "starts_at": "2026-03-29T00:30:00Z"}}'

-- pl-PL falls back to pl, in Warsaw time (CET until 01:00 UTC that night)
SELECT * FROM reminder.render('rn_meeting', '{"name": "Ada", "locale": "pl-PL", "time_zone": "Europe/Warsaw"}', :'data');
-- de falls back to the default locale, in New York time; HTML is escaped
SELECT * FROM reminder.render('rn_meeting', '{"name": "Ada", "locale": "de", "time_zone": "America/New_York"}', :'data');
-- a webhook body is JSON: values are JSON-escaped
SELECT body FROM reminder.render('rn_json', '{}', :'data', 'rn_hook');
SELECT (body::jsonb)->>'title' FROM reminder.render('rn_json', '{}', :'data', 'rn_hook');

-- an existing message renders as the worker would send it
SELECT reminder.schedule('rn_mail', '{"email": "ada@example.com", "name": "Ada", "time_zone": "UTC"}',
                         'rn_meeting', '2030-01-01', :'data') AS mid \gset
SELECT subject, body FROM reminder.render(:mid);

-- failures
SELECT pg_temp.try($$SELECT reminder.render('nope')$$);
SELECT pg_temp.try($$SELECT * FROM reminder.render('rn_meeting', '{}', '{"row": {"title": "x", "starts_at": "not a time"}}')$$);
SELECT pg_temp.try($$SELECT * FROM reminder.render('rn_meeting', '{}', '{}', 'rn_mail')$$);
SELECT pg_temp.try($$SELECT * FROM reminder.render(-1)$$);
SELECT pg_temp.try($$SELECT reminder.create_template('rn_bad', 'Hello {{#x}}')$$);
SELECT pg_temp.try($$SELECT reminder.create_template('rn_bad', 'ok', subject => '{{/y}}')$$);
SELECT pg_temp.try($$SELECT reminder.create_template('rn_bad', 'ok', html => '{{x | nosuchfilter}}')$$);
SELECT count(*) AS bad_templates_stored FROM reminder.template WHERE name = 'rn_bad';

SELECT reminder.drop_channel(c, cascade => true) FROM unnest(ARRAY['rn_hook', 'rn_mail']) c;
SELECT reminder.drop_template(t) FROM unnest(ARRAY['rn_meeting', 'rn_json']) t;
