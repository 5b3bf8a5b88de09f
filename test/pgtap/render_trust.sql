-- End to end through reminder.render(): timestamps in the recipient's time
-- zone and locale, and the signed links templates see.
\ir setup.psql

BEGIN;
SELECT plan(12);
SET LOCAL TimeZone = 'UTC';

SELECT reminder.create_channel('rt_log', 'log');
SELECT reminder.create_template('rt_when', 'Spotkanie {{ starts_at | datetime long }}', locale => 'pl');
SELECT reminder.create_template('rt_when', 'Meeting {{ starts_at | datetime long }}', locale => 'en');
SELECT reminder.upsert_recipient('rt-pl', email => 'ada@example.com', time_zone => 'Europe/Warsaw', locale => 'pl-PL');
SELECT reminder.upsert_recipient('rt-us', email => 'bob@example.com', time_zone => 'America/New_York', locale => 'en-US');

-- time zone and locale
SELECT is((SELECT body FROM reminder.render('rt_when', '{"external_id": "rt-pl"}', '{"starts_at": "2026-11-24T13:05:00Z"}')),
          'Spotkanie 24 listopada 2026 o 14:05 CET', 'a stored pl-PL recipient in Warsaw: Polish, CET');
SELECT is((SELECT body FROM reminder.render('rt_when', '{"external_id": "rt-pl"}', '{"starts_at": "2026-07-01T12:00:00Z"}')),
          'Spotkanie 1 lipca 2026 o 14:00 CEST', '...and CEST in summer');
SELECT is((SELECT body FROM reminder.render('rt_when', '{"external_id": "rt-us"}', '{"starts_at": "2026-11-24T13:05:00Z"}')),
          'Meeting November 24, 2026 at 8:05 AM EST', 'a stored en-US recipient in New York: English, EST');
SELECT is((SELECT body FROM reminder.render('rt_when', '{"email": "c@example.com", "time_zone": "Asia/Tokyo", "locale": "en"}',
                                            '{"starts_at": "2026-11-24T13:05:00Z"}')),
          'Meeting November 24, 2026 at 10:05 PM JST', 'an inline recipient the same way');
SELECT reminder.schedule('rt_log', '{"external_id": "rt-pl"}', 'rt_when', now(), '{"starts_at": "2026-11-24T13:05:00Z"}') AS m \gset
SELECT is((SELECT body FROM reminder.render(:m)), 'Spotkanie 24 listopada 2026 o 14:05 CET', 'a scheduled message renders in its recipient''s zone and locale');

-- links
SELECT reminder.create_template('rt_links', '{{links.confirm}}|{{links.score.9}}|{{#links.scores}}{{score}} {{/links.scores}}|{{^links}}no links{{/links}}');
SELECT reminder.schedule('rt_log', '{"email": "d@example.com"}', 'rt_links') AS lm \gset
SELECT is((SELECT body FROM reminder.render(:lm)), '|||no links', 'without reminder.link_base_url templates get no links');
SET LOCAL reminder.link_base_url = 'https://example.com/r/';
SELECT matches((SELECT body FROM reminder.render(:lm)),
               '^https://example\.com/r/[A-Za-z0-9_-]{47}\|https://example\.com/r/[A-Za-z0-9_-]{47}\|0 1 2 3 4 5 6 7 8 9 10 \|$',
               'links.confirm, links.score.9 and the links.scores section render');
SELECT isnt(split_part((SELECT body FROM reminder.render(:lm)), '|', 1), split_part((SELECT body FROM reminder.render(:lm)), '|', 2),
            'each link has its own token');
SELECT throws_ok(format('SELECT reminder.record_event(%L)', substr(split_part((SELECT body FROM reminder.render(:lm)), '|', 1), 23)),
                 '28000', NULL, 'a preview''s tokens never verify: only the worker mints real ones');
SELECT is((SELECT count(*) FROM reminder.event), 0::bigint, 'and recorded nothing');
SELECT reminder.create_template('rt_html', 'x', html => '<a href="{{links.unsubscribe}}">unsubscribe</a>');
SELECT matches((SELECT html FROM reminder.render('rt_html', '{"email": "e@example.com"}')),
               '^<a href="https://example\.com/r/[A-Za-z0-9_-]{47}">unsubscribe</a>$', 'links survive HTML escaping unchanged');
SELECT is((SELECT body FROM reminder.render('rt_when', '{"external_id": "rt-pl"}', '{"starts_at": "2026-11-24T13:05:00Z", "links": "mine"}')),
          'Spotkanie 24 listopada 2026 o 14:05 CET', 'data with its own "links" key still renders');

SELECT * FROM finish();
ROLLBACK;
