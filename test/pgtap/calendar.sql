-- Business calendars as docs/rules.md documents them: reminder.calendar's
-- weekend holds ISO days of the week (1 = Monday ... 7 = Sunday), holidays
-- come on top, and a follow_up rule counts business days of its calendar.
\ir setup.psql

BEGIN;
SELECT plan(11);

SET LOCAL TimeZone = 'Europe/Warsaw';

-- the example of docs/rules.md: a shop open Monday to Saturday
INSERT INTO reminder.calendar (name, weekend) VALUES ('shop_pl', '{7}');
INSERT INTO reminder.holiday (calendar, day, name)
VALUES ('shop_pl', '2025-11-11', 'Independence Day'),
       ('shop_pl', '2025-12-25', 'Christmas');
INSERT INTO reminder.calendar (name, weekend) VALUES ('gulf', '{5,6}');

SELECT is(extract(isodow FROM date '2025-11-08'), 6::numeric, '2025-11-08 is a Saturday (ISO day 6)');
SELECT ok(reminder.is_business_day('2025-11-08', 'shop_pl'), 'weekend {7}: Saturday is a business day');
SELECT ok(NOT reminder.is_business_day('2025-11-09', 'shop_pl'), 'weekend {7}: Sunday (7) is not');
SELECT ok(NOT reminder.is_business_day('2025-11-11', 'shop_pl'), 'a holiday of the calendar is not');
SELECT is(reminder.add_business_days('2025-11-08 10:00+01', 1, 'shop_pl', 'Europe/Warsaw'),
          '2025-11-10 10:00+01'::timestamptz, 'one business day after Saturday skips Sunday');
SELECT is(reminder.add_business_days('2025-11-10 10:00+01', 1, 'shop_pl', 'Europe/Warsaw'),
          '2025-11-12 10:00+01'::timestamptz, '...and after Monday skips the holiday');
SELECT ok(NOT reminder.is_business_day('2025-11-07', 'gulf') AND NOT reminder.is_business_day('2025-11-08', 'gulf')
          AND reminder.is_business_day('2025-11-09', 'gulf'), 'weekend {5,6}: Friday and Saturday off, Sunday a business day');
SELECT ok(NOT reminder.is_business_day('2025-11-08') AND NOT reminder.is_business_day('2025-11-09')
          AND reminder.is_business_day('2025-11-10'), 'a calendar without a row has Saturday and Sunday off');

SELECT throws_ok($$INSERT INTO reminder.calendar (name, weekend) VALUES ('bad', '{0}')$$, '23514', NULL,
                 'day 0 is refused: Sunday is 7, not 0');
SELECT throws_ok($$INSERT INTO reminder.calendar (name, weekend) VALUES ('never', '{1,2,3,4,5,6,7}')$$, '23514', NULL,
                 'a week without a business day is refused');

-- a follow_up rule in business days of the calendar
SELECT reminder.create_channel('cal_log', 'log');
SELECT reminder.create_template('cal_t', 'Follow-up');
CREATE TABLE cal_lead (id int PRIMARY KEY, offer_sent_at timestamptz NOT NULL);
SELECT reminder.watch('cal_lead', 'follow_up', name => 'cal_followups', column_name => 'offer_sent_at',
                      offsets => '{2 days}', business_days => true, calendar => 'shop_pl',
                      time_zone => 'Europe/Warsaw', channel => 'cal_log', template => 'cal_t',
                      recipients => '{"to": {"name": "lead"}}', if_past => 'send') AS rule_id \gset
INSERT INTO cal_lead VALUES (1, '2025-11-08 10:00+01');
SELECT is((SELECT due_at FROM reminder.message WHERE rule_id = :rule_id),
          '2025-11-12 10:00+01'::timestamptz, 'two business days after Saturday: Monday, then Wednesday after the holiday');

SELECT * FROM finish();
ROLLBACK;
