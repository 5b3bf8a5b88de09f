# pg_dump and restore keep the extension's data: channels and secrets,
# templates, recipients, messages with their attempts and events, consent
# and its log, and the link signing keys (so links sent before the dump
# still verify after the restore).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('dump');
$node->init;
$node->start;

$node->safe_psql('postgres', 'CREATE DATABASE src');
$node->safe_psql('src', q{
	CREATE EXTENSION reminder;
	SELECT reminder.create_channel('hook', 'webhook', '{"url": "http://127.0.0.1:9/hook"}', '{"signing_secret": "s3cret"}');
	SELECT reminder.create_template('nps', 'Rate us {{links.score.9}}', 'Survey');
	SELECT reminder.upsert_recipient('client-42', email => 'ada@example.com', time_zone => 'Europe/Warsaw');
	SELECT reminder.schedule('hook', '{"external_id": "client-42"}', 'nps') FROM generate_series(1, 3);
	INSERT INTO reminder.attempt (message_id, attempt, started_at, outcome) VALUES (1, 1, now(), 'transient');
	SELECT reminder.opt_out('{"email": "bob@example.com"}', NULL, NULL, 'form');
	SELECT reminder.rotate_signing_key();
	CREATE TABLE links AS SELECT reminder.link_token(1, 'confirm') AS t;
});
my $token = $node->safe_psql('src', 'SELECT t FROM links');

my $counts = q{
	SELECT string_agg(t || '=' || n, ' ' ORDER BY t) FROM (
		SELECT 'channel' t, count(*) n FROM reminder.channel UNION ALL
		SELECT 'channel_secret', count(*) FROM reminder.channel_secret UNION ALL
		SELECT 'template', count(*) FROM reminder.template UNION ALL
		SELECT 'recipient', count(*) FROM reminder.recipient UNION ALL
		SELECT 'message', count(*) FROM reminder.message UNION ALL
		SELECT 'attempt', count(*) FROM reminder.attempt UNION ALL
		SELECT 'consent', count(*) FROM reminder.consent UNION ALL
		SELECT 'consent_log', count(*) FROM reminder.consent_log) x
};
my $before = $node->safe_psql('src', $counts);

my $dump = $node->basedir . '/src.sql';
$node->command_ok([ 'pg_dump', '-d', $node->connstr('src'), '-f', $dump ], 'pg_dump succeeds');
$node->safe_psql('postgres', 'CREATE DATABASE dst');
$node->command_ok([ 'psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $node->connstr('dst'), '-f', $dump ],
	'the dump restores without error');

is($node->safe_psql('dst', $counts), $before, 'every table comes back with its rows');
is($node->safe_psql('dst', q{SELECT secrets->>'signing_secret' FROM reminder.channel_secret}), 's3cret',
	'channel secrets come back');
is($node->safe_psql('dst', 'SELECT count(*) FROM reminder.signing_key'), '3',
	'the restored keys plus the one made at CREATE EXTENSION');
is($node->safe_psql('dst', "SELECT message_id FROM reminder.token_info('$token')"), '1',
	'a link signed before the dump verifies after the restore');
is($node->safe_psql('dst', "SELECT reminder.record_event('$token') IS NOT NULL"), 't',
	'and records its event');
cmp_ok($node->safe_psql('dst', q{SELECT reminder.schedule('hook', '{"email": "new@example.com"}', 'nps')}),
	'>', 3, 'new messages continue the id sequence');
is($node->safe_psql('dst', q{SELECT (SELECT id FROM reminder.signing_keys WHERE signing) NOT IN (SELECT id FROM reminder.signing_key ORDER BY created_at LIMIT 2)}),
	't', "the restore's own new key signs from now on");

$node->stop;
done_testing();
