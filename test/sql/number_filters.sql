--
-- The number and currency template filters: separators, grouping and the
-- currency's symbol and place per locale (as CLDR, ICU and
-- Intl.NumberFormat have them), exact decimal rounding, the value's own
-- scale, the currency from the data, and errors.
--
\getenv abs_srcdir PG_ABS_SRCDIR
\set helpers :abs_srcdir '/sql/include/helpers.psql'
\i :helpers
\pset format unaligned
SET TimeZone = 'UTC';

-- Non-breaking spaces shown as <nbsp> (U+00A0) and <nnbsp> (U+202F).
CREATE FUNCTION pg_temp.show(s text) RETURNS text
LANGUAGE sql IMMUTABLE
RETURN replace(replace(s, U&'\00A0', '<nbsp>'), U&'\202F', '<nnbsp>');

-- Plain interpolation prints a number as its value (the Mustache spec:
-- 1.210 is 1.21), so a numeric(10,2) 249.90 prints 249.9; jsonb keeps the
-- column's scale, and "number" prints it.
SELECT reminder.mustache('{{t}} | {{t | number}} | {{t | number 0}} | {{t | number 3}}',
                         jsonb_build_object('t', 249.90::numeric(10,2)), escape => 'none') AS rendered;

-- every locale: grouping (pl and es leave four digits alone), separators,
-- the currency's place and symbol; unknown and regional locales fall back
SELECT l AS locale,
       pg_temp.show(reminder.mustache(
           '{{a | number}} | {{b | number}} | {{c | number 2}} | {{t | currency PLN}} | {{t | currency USD}} | {{t | currency EUR}} | {{n | currency EUR}}',
           '{"a": 1234, "b": 12345, "c": 1234567.891, "t": 249.9, "n": -1234.5}',
           escape => 'none', locale => l)) AS rendered
  FROM unnest(ARRAY['en', 'pl', 'pl-PL', 'de', 'fr', 'es', 'xx']) WITH ORDINALITY AS l(l, o)
 ORDER BY o;

-- a symbol ending in a letter is set apart in en; display=code; the
-- currency's own fraction digits (JPY none, KWD three); unknown codes
SELECT l AS locale,
       pg_temp.show(reminder.mustache(
           '{{t | currency CHF}} | {{t | currency PLN display=code}} | {{t | currency JPY}} | {{t | currency KWD}} | {{t | currency GBP}} | {{t | currency XYZ}}',
           '{"t": 1234.5}', escape => 'none', locale => l)) AS rendered
  FROM unnest(ARRAY['en', 'pl', 'de', 'fr', 'es']) WITH ORDINALITY AS l(l, o)
 ORDER BY o;

-- rounding is decimal, half away from zero (as round(numeric) and
-- Intl.NumberFormat's default): 1.005 is 1.01, never 1.00 as a double
-- would give; a value that rounds to zero has no sign
SELECT v, reminder.mustache('{{v | number 2}} | {{v | number 0}} | {{v | currency USD}}',
                            jsonb_build_object('v', v::numeric), escape => 'none') AS rendered
  FROM unnest(ARRAY['1.005', '2.5', '-2.5', '0.125', '999.995', '-0.004', '0', '1e3', '1.5e-7']) AS v;

-- big values keep every digit
SELECT reminder.mustache('{{v | number}} / {{v | number 1}} / {{v | currency EUR grouping=false}}',
                         '{"v": 123456789012345678901234567890.125}', escape => 'none') AS rendered;
SELECT pg_temp.show(reminder.mustache('{{v | number grouping=false}} {{v | number grouping=true}}',
                                      '{"v": 12345}', escape => 'none', locale => 'fr')) AS rendered;

-- numbers written as text, as APIs often send amounts
SELECT reminder.mustache('{{a | number}} {{b | currency EUR}} {{c | number}}',
                         '{"a": "249.90", "b": "-0.5", "c": "1E+3"}', escape => 'none', locale => 'de') AS rendered;

-- missing and null print nothing, and default can follow; json quotes
SELECT reminder.mustache('[{{x | number}}] [{{x | currency PLN | default "n/a"}}] {{t | currency PLN | json}}',
                         '{"x": null, "t": 5}', escape => 'none', locale => 'pl') AS rendered;

-- the currency from the data: a name instead of a code, looked up like a
-- tag's (inside sections too); codes in the data may be lower case
SELECT reminder.mustache('{{row.total | currency row.currency}}; {{#items}}{{price | currency cur}} {{/items}}',
                         '{"row": {"total": 249.9, "currency": "PLN"},
                           "items": [{"price": 1000, "cur": "jpy"}, {"price": 2.5, "cur": "EUR"}]}',
                         escape => 'none', locale => 'en') AS rendered;

-- a locale= argument overrides the render's
SELECT pg_temp.show(reminder.mustache('{{t | currency PLN locale=pl}} {{t | number 2 locale=de}}',
                                      '{"t": 1234.5}', escape => 'none', locale => 'en')) AS rendered;

-- messages: numbers speak the language of the template the recipient
-- gets (pl-PL formats in a pl template, English ones in the en fallback),
-- like dates; a rule-made message of an order whose total is numeric(10,2)
-- shows the column's scale
SELECT reminder.create_channel('nf_log', 'log');
SELECT reminder.create_template('nf_paid', 'Order {{row.id}}: {{row.total | currency row.currency}} paid.');
SELECT reminder.create_template('nf_paid', 'Zamówienie {{row.id}}: {{row.total | currency row.currency}} opłacone.',
                                locale => 'pl');
SELECT l, pg_temp.show(body) AS body
  FROM unnest(ARRAY['pl-PL', 'en', 'de']) AS l,
       LATERAL reminder.render('nf_paid', jsonb_build_object('locale', l),
                               '{"row": {"id": 7, "total": 249.90, "currency": "PLN"}}', 'nf_log');
SELECT reminder.create_template('nf_total', 'Suma {{row.total | number}} ({{row.total}} bez filtra), {{row.total | currency row.currency}}',
                                locale => 'pl');
CREATE TABLE nf_orders (id int PRIMARY KEY, total numeric(10,2) NOT NULL,
                        currency text NOT NULL DEFAULT 'PLN', status text);
SELECT reminder.watch('nf_orders', 'on_change', name => 'nf_order_paid', column_name => 'status',
                      changes_to => '{paid}', channel => 'nf_log', template => 'nf_total',
                      recipients => '{"to": {"name": "Ada", "locale": "pl"}}') > 0 AS watched;
INSERT INTO nf_orders VALUES (1, 1249.90, 'PLN', 'paid');
SELECT pg_temp.show(r.body) AS body
  FROM reminder.message m, LATERAL reminder.render(m.id) r
 WHERE m.rule_id = (SELECT id FROM reminder.rule WHERE name = 'nf_order_paid');

-- errors: bad arguments when the template is created (22023), values that
-- are not numbers when it is rendered (22P02), a currency the data does
-- not hold (a bare word that is not a code in capitals names a value)
SELECT pg_temp.try(format('SELECT reminder.mustache(%L, %L::jsonb)', t, d))
  FROM (VALUES ('{{x | currency}}', '{}'),
               ('{{x | currency pln}}', '{"x": 1}'),
               ('{{x | currency "pln"}}', '{}'),
               ('{{x | currency "PLN"}}', '{"x": 1}'),
               ('{{x | currency PLN 2 3}}', '{}'),
               ('{{x | number 101}}', '{}'),
               ('{{x | number two}}', '{}'),
               ('{{x | number places=2}}', '{}'),
               ('{{x | number display=code}}', '{}'),
               ('{{x | currency EUR display=name}}', '{}'),
               ('{{x | number grouping=maybe}}', '{}'),
               ('{{x | number}}', '{"x": "abc"}'),
               ('{{x | number}}', '{"x": ""}'),
               ('{{x | number}}', '{"x": " 12"}'),
               ('{{x | number}}', '{"x": "NaN"}'),
               ('{{x | number}}', '{"x": "Infinity"}'),
               ('{{x | number}}', '{"x": true}'),
               ('{{x | number}}', '{"x": [1]}'),
               ('{{x | currency cur}}', '{"x": 1}'),
               ('{{x | currency cur}}', '{"x": 1, "cur": "zloty"}'),
               ('{{x | currency cur}}', '{"x": 1, "cur": 985}')) AS t(t, d);
-- a template with a bad filter is refused when it is stored
SELECT pg_temp.try($$SELECT reminder.create_template('nf_bad', '{{row.total | currency}}')$$);

SELECT reminder.unwatch('nf_order_paid');
DROP TABLE nf_orders;
SELECT reminder.drop_channel('nf_log', cascade => true);
SELECT reminder.drop_template(t) FROM unnest(ARRAY['nf_paid', 'nf_total']) t;
SELECT count(*) AS messages_left FROM reminder.message WHERE channel = 'nf_log';
