# Rules across sessions, dumps and the worker:
#  - a change to a channel made in one session is seen by a rule's trigger
#    in another session that compiled the rule before (cache invalidation);
#  - pg_dump/restore keeps rules, their triggers and their messages, and
#    restoring the rows schedules nothing twice;
#  - with the worker: a message of an after rule is rendered with the row as
#    it is when sent, and cancelled if the row is gone; a follow-up whose
#    stop condition holds at send time is suppressed and the rest of its
#    sequence cancelled; of two surveys to the same person falling due
#    together, one goes out and the other is suppressed by the throttle;
#    forget() erases the throttle's record of a person.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('rules');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'reminder'
reminder.poll_interval = '100ms'
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION reminder;
	SELECT reminder.create_channel('log', 'log');
	SELECT reminder.create_channel('sms', 'sms', '{"provider": "smsapi", "base_url": "http://127.0.0.1:9"}', '{"token": "t"}');
	SELECT reminder.create_template('t', 'Meeting {{row.title}}');
	CREATE TABLE meeting (id int PRIMARY KEY, title text NOT NULL, starts_at timestamptz NOT NULL, phone text);
	SELECT reminder.watch('meeting', 'before', name => 'meeting', column_name => 'starts_at',
		offsets => '{1 day, 1 hour}', channel => 'sms', template => 't',
		recipients => '{"role": "client", "to": {"phone": {"expr": "phone"}}}');
});

# Another session compiles the rule, then the channel changes under it.
my $session = $node->background_psql('src');
$session->query_safe(q{INSERT INTO meeting VALUES (1, 'One', now() + interval '3 days', '+48601000001')});
$node->safe_psql('src', q{
	SELECT reminder.create_channel('sms', 'sms', '{"provider": "smsapi", "base_url": "http://127.0.0.1:9", "default_country_code": "48"}', '{"token": "t"}')});
$session->query_safe(q{INSERT INTO meeting VALUES (2, 'Two', now() + interval '3 days', '601 000 002')});
is($node->safe_psql('src', q{SELECT DISTINCT recipient->>'phone' FROM reminder.message WHERE source_key = '2'}),
	'+48601000002', 'a session that compiled the rule sees a channel changed by another session');
$node->safe_psql('src', q{SELECT reminder.unwatch('meeting', cancel_pending => false)});
is($node->safe_psql('src', q{
	SELECT string_agg(source_key || ' ' || status || ' ' || (data->'row'->>'title'), ', ' ORDER BY idempotency_key)
	  FROM reminder.message WHERE source_key IN ('1', '2')}),
	'1 scheduled One, 1 scheduled One, 2 scheduled Two, 2 scheduled Two',
	'pending messages kept by unwatch get a copy of their row: no rule will read it for them');
$session->query_safe(q{INSERT INTO meeting VALUES (3, 'Three', now() + interval '3 days', '+48601000003')});
is($node->safe_psql('src', q{SELECT count(*) FROM reminder.message WHERE source_key = '3'}), '0',
	'and a rule removed by another session');
$session->quit;

# Dump and restore a watched table.
$node->safe_psql('src', q{
	SELECT reminder.watch('meeting', 'before', name => 'meeting2', column_name => 'starts_at',
		offsets => '{1 hour}', channel => 'sms', template => 't',
		recipients => '{"to": {"phone": {"expr": "phone"}}}', backfill => true);
});
my $before = $node->safe_psql('src',
	q{SELECT count(*) || ' ' || count(*) FILTER (WHERE rule_id IS NOT NULL) FROM reminder.message});
my $dump = $node->basedir . '/src.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('src'), '-f', $dump ], 'pg_dump of a watched table');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst'), '-f', $dump ],
	'restores without error');
is($node->safe_psql('dst',
		q{SELECT count(*) || ' ' || count(*) FILTER (WHERE rule_id IS NOT NULL) FROM reminder.message}),
	$before, 'the same messages, none scheduled twice by the restored rows');
is($node->safe_psql('dst', q{SELECT string_agg(name, ',') FROM reminder.rule}), 'meeting2', 'the rule comes back');
$node->safe_psql('dst', q{UPDATE meeting SET starts_at = starts_at + interval '1 day' WHERE id = 3});
is($node->safe_psql('dst', q{
	SELECT m.due_at = t.starts_at - interval '1 hour'
	  FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id JOIN meeting t ON t.id::text = m.source_key
	 WHERE t.id = 3}), 't', 'and its trigger works after the restore');

# Send-time checks need the worker.
if ($node->safe_psql('src',
		q{SELECT count(*) FROM pg_proc WHERE proname = 'worker_status' AND pronamespace = 'reminder'::regnamespace}) eq '0')
{
	$node->stop;
	done_testing();
	exit 0;
}

$node->safe_psql('src', q{
	CREATE TABLE lead (id int PRIMARY KEY, email text NOT NULL, offer_sent_at timestamptz);
	CREATE TABLE reply (lead_id int);
	CREATE FUNCTION public.has_replied(lead int) RETURNS boolean LANGUAGE sql STABLE
		AS 'SELECT EXISTS (SELECT FROM public.reply WHERE lead_id = lead)';
	SELECT reminder.watch('lead', 'follow_up', name => 'followup', column_name => 'offer_sent_at',
		offsets => '{2 seconds, 1 day}', channel => 'log', template => 't',
		stop_condition => 'public.has_replied(id)', if_past => 'send',
		recipients => '{"to": {"email": {"expr": "email"}}}');
	INSERT INTO lead VALUES (1, 'lead@example.com', now());
	INSERT INTO reply VALUES (1);
	CREATE TABLE job (id int PRIMARY KEY, status text NOT NULL, email text NOT NULL);
	SELECT reminder.watch('job', 'survey', name => 'nps', column_name => 'status', changes_to => '{done}',
		channel => 'log', template => 't', recipients => '{"to": {"email": {"expr": "email"}}}');
	INSERT INTO job VALUES (1, 'done', 'ada@example.com'), (2, 'done', 'ADA@example.com'), (3, 'done', 'bob@example.com');
});
# A before/after rule's messages hold no copy of the row: the worker reads
# it when it sends.  The title changes after the message was scheduled (an
# UPDATE the rule does not even see); the row of task 2 is deleted without
# the rule's triggers firing.
$node->safe_psql('src', q{
	CREATE TABLE task (id int PRIMARY KEY, title text NOT NULL, due timestamptz NOT NULL);
	SELECT reminder.watch('task', 'after', name => 'task', column_name => 'due',
		offsets => '{2 seconds}', channel => 'log', template => 't', if_past => 'send',
		recipients => '{"to": {"email": "ops@example.com"}}');
	INSERT INTO task VALUES (1, 'Draft', now()), (2, 'Doomed', now());
	UPDATE task SET title = 'Final' WHERE id = 1;
	SET session_replication_role = replica;
	DELETE FROM task WHERE id = 2;
});
is($node->safe_psql('src', q{
	SELECT string_agg(source_key || ' ' || data::text, ', ' ORDER BY source_key)
	  FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id WHERE r.name = 'task'}),
	'1 {}, 2 {}', 'the messages of an after rule store no row');
ok($node->poll_query_until('src', q{
	SELECT count(*) = 2 FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id
	 WHERE r.name = 'task' AND status IN ('sent', 'cancelled')}), 'the worker decides them');
is($node->safe_psql('src', q{
	SELECT string_agg(m.source_key || ' ' || m.status || ' ' || coalesce(l.body, m.last_error), ', ' ORDER BY m.source_key)
	  FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id LEFT JOIN reminder.log l ON l.message_id = m.id
	 WHERE r.name = 'task'}),
	'1 sent Meeting Final, 2 cancelled rule: row no longer exists',
	'one goes out with the row as it is when sent; one whose row is gone is cancelled');

ok($node->poll_query_until('src', q{
	SELECT status = 'suppressed' FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id
	 WHERE r.name = 'followup' AND m.idempotency_key LIKE '%:1:0:0'}),
	'a follow-up whose stop condition holds at send time is suppressed');
is($node->safe_psql('src', q{
	SELECT status || ' ' || last_error FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id
	 WHERE r.name = 'followup' AND m.idempotency_key LIKE '%:1:0:1'}),
	'cancelled rule: stop condition holds', 'and the rest of the sequence is cancelled');
ok($node->poll_query_until('src', q{
	SELECT count(*) FILTER (WHERE status IN ('scheduled', 'sending', 'retrying')) = 0
	  FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id WHERE r.name = 'nps'}),
	'the surveys are decided');
is($node->safe_psql('src', q{
	SELECT string_agg(lower(recipient->>'email') || ' ' || status, ', ' ORDER BY lower(recipient->>'email'), status)
	  FROM reminder.message m JOIN reminder.rule r ON r.id = m.rule_id WHERE r.name = 'nps'}),
	'ada@example.com sent, ada@example.com suppressed, bob@example.com sent',
	'two surveys to the same person at once: one goes out, the other is throttled');
# The throttle remembers whom it surveyed by a hash of the address, which
# forget() computes the same way and erases.
is($node->safe_psql('src', q{
	SELECT string_agg(CASE address_hash WHEN reminder._address_hash('email', 'Ada@Example.com') THEN 'ada'
	                                     WHEN reminder._address_hash('email', 'bob@example.com') THEN 'bob' END, ' ' ORDER BY 1)
	  FROM reminder.survey_log}),
	'ada bob', 'survey_log holds the hashed addresses of those surveyed');
is($node->safe_psql('src', q{
	SELECT erased FROM reminder.forget('{"email": "ada@example.com"}') WHERE object = 'survey_log'}),
	'1', 'forget() erases her survey_log row');
is($node->safe_psql('src', q{
	SELECT count(*) FROM reminder.survey_log WHERE address_hash = reminder._address_hash('email', 'bob@example.com')}),
	'1', 'and leaves the others');

$node->stop;
done_testing();
