# What the worker keeps between messages and batches must never outlive a
# change: a template, a channel's settings or secrets changed while the
# worker runs take effect for the next message (the worker keeps parsed
# channels across claims and reads a template once per claim), and the
# consent check made for a whole batch at once suppresses exactly the
# messages one-by-one checks would.
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256_hex);
use JSON::PP;
use PostgreSQL::Test::Utils;
use Test::More;

use ReminderTest;

my $node = start_node('caches');
my $sink = start_sink();
create_db($node, 'app');

$node->safe_psql('app', qq{
	SELECT reminder.create_channel('hook', 'webhook',
		jsonb_build_object('url', '$sink->{url}/one', 'headers', jsonb_build_object('X-Version', '1')),
		'{"signing_secret": "first"}');
	SELECT reminder.create_template('greet', '{"v": "one"}');
});
ok(query_until($node, 'app',
		"SELECT count(*) = 1 FROM reminder.worker_status() WHERE database = 'app' AND state = 'running'"),
	'the worker runs');
my $pid = worker_pid($node, 'app');

# Send one message and return the request the sink got for it.
sub deliver
{
	my ($key, $recipient) = @_;
	$recipient //= '{}';
	$node->safe_psql('app', "SELECT reminder.send('hook', '$recipient', 'greet', '{}', '$key')");
	ok(query_until($node, 'app', "SELECT status FROM reminder.message WHERE idempotency_key = '$key'", 'sent'),
		"$key sent");
	my ($r) = grep { $_->{headers}{'Idempotency-Key'} eq $key } sink_requests($sink);
	return $r;
}

my $r = deliver('before');
is($r->{path}, '/one', 'the channel\'s url');
is($r->{body}, '{"v": "one"}', 'the template\'s body');
is($r->{headers}{'X-Reminder-Signature'}, 'sha256=' . hmac_sha256_hex($r->{body}, 'first'),
	'signed with the first secret');

# templates
$node->safe_psql('app', q{SELECT reminder.create_template('greet', '{"v": "two"}')});
$r = deliver('template-changed');
is($r->{body}, '{"v": "two"}', 'a changed template is used for the next message');

# settings, through create_channel
$node->safe_psql('app', qq{
	SELECT reminder.create_channel('hook', 'webhook',
		jsonb_build_object('url', '$sink->{url}/two', 'headers', jsonb_build_object('X-Version', '2')));
});
$r = deliver('settings-changed');
is($r->{path}, '/two', 'a changed url is used for the next message');
is($r->{headers}{'X-Version'}, '2', 'and a changed header');
is($r->{headers}{'X-Reminder-Signature'}, 'sha256=' . hmac_sha256_hex($r->{body}, 'first'),
	'secrets kept by create_channel are still used');

# secrets alone
$node->safe_psql('app', q{SELECT reminder.set_channel_secrets('hook', '{"signing_secret": "second"}')});
$r = deliver('secrets-changed');
is($r->{headers}{'X-Reminder-Signature'}, 'sha256=' . hmac_sha256_hex($r->{body}, 'second'),
	'new secrets are used for the next message');
$node->safe_psql('app', q{SELECT reminder.set_channel_secrets('hook', '{}')});
$r = deliver('secrets-cleared');
ok(!exists $r->{headers}{'X-Reminder-Signature'}, 'cleared secrets: no signature');

# a plain UPDATE of the table, with no function involved
$node->safe_psql('app', qq{
	UPDATE reminder.channel SET settings = jsonb_build_object('url', '$sink->{url}/three') WHERE name = 'hook';
});
$r = deliver('updated-row');
is($r->{path}, '/three', 'an UPDATE of reminder.channel is seen by the next message');

# a channel dropped and created again under the same name
$node->safe_psql('app', qq{
	SELECT reminder.drop_channel('hook', true);
	SELECT reminder.create_channel('hook', 'webhook', jsonb_build_object('url', '$sink->{url}/four'));
});
$r = deliver('recreated');
is($r->{path}, '/four', 'a channel created again is read again');

# templates by locale within one batch
$node->safe_psql('app', q{
	SELECT reminder.create_template('greet', '{"v": "dwa"}', locale => 'pl');
	SELECT reminder.send('hook', jsonb_build_object('locale', CASE WHEN g % 2 = 0 THEN 'pl' ELSE 'en' END),
	                     'greet', '{}', 'locale-' || g)
	FROM generate_series(1, 20) g;
});
ok(query_until($node, 'app', "SELECT count(*) = 20 FROM reminder.message WHERE idempotency_key LIKE 'locale-%' AND status = 'sent'"),
	'a batch in two locales sent');
my %bodies = map { $_->{headers}{'Idempotency-Key'} => $_->{body} }
  grep { $_->{headers}{'Idempotency-Key'} =~ /^locale-/ } sink_requests($sink);
is(scalar(grep { $bodies{"locale-$_"} eq ($_ % 2 == 0 ? '{"v": "dwa"}' : '{"v": "two"}') } 1 .. 20), 20,
	'each message of the batch in its recipient\'s locale');

# consent checked for a batch at once
$node->safe_psql('app', q{
	SELECT reminder.opt_out('{"email": "gone@example.com"}', source => 'test');
	SELECT reminder.opt_out('{"email": "nohooks@example.com"}', channel => 'webhook');
	SELECT reminder.opt_out('{"email": "nogreet@example.com"}', category => 'greet');
	SELECT reminder.opt_out('{"email": "back@example.com"}');
	SELECT reminder.opt_in('{"email": "back@example.com"}', channel => 'hook');
	SELECT reminder.opt_out('{"email": "other@example.com"}', channel => 'sms');
});
$node->safe_psql('app', q{
	ALTER SYSTEM SET reminder.enabled = off;
	SELECT pg_reload_conf();
});
ok(query_until($node, 'app', "SELECT state FROM reminder.worker_status() WHERE database = 'app'", 'disabled'),
	'worker paused while the batch is queued');
$node->safe_psql('app', q{
	SELECT reminder.send('hook', jsonb_build_object('email', a || '@example.com'), 'greet', '{}', 'consent-' || a || '-' || g)
	FROM unnest(ARRAY['gone', 'nohooks', 'nogreet', 'back', 'other', 'fine']) a, generate_series(1, 5) g;
});
is($node->safe_psql('app', q{
	SELECT string_agg(DISTINCT split_part(idempotency_key, '-', 2) || ':' || (SELECT verdict FROM reminder.gate_check(id)), ',')
	FROM reminder.message WHERE idempotency_key LIKE 'consent-%'}),
	'back:send,fine:send,gone:suppress,nogreet:suppress,nohooks:suppress,other:send',
	'what reminder.gate_check() says, one message at a time');
$node->safe_psql('app', q{
	ALTER SYSTEM SET reminder.enabled = on;
	SELECT pg_reload_conf();
});
ok(query_until($node, 'app',
		"SELECT count(*) = 30 FROM reminder.message WHERE idempotency_key LIKE 'consent-%' AND status IN ('sent', 'suppressed')"),
	'the batch is decided');
is($node->safe_psql('app', q{
	SELECT string_agg(DISTINCT split_part(idempotency_key, '-', 2) || ':' || status, ',')
	FROM reminder.message WHERE idempotency_key LIKE 'consent-%'}),
	'back:sent,fine:sent,gone:suppressed,nogreet:suppressed,nohooks:suppressed,other:sent',
	'the worker, checking the batch at once, decides the same');
like($node->safe_psql('app', q{SELECT last_error FROM reminder.message WHERE idempotency_key = 'consent-gone-1'}),
	qr/^recipient opted out of every channel at .* via test$/, 'with the reason of the opt-out');
like($node->safe_psql('app', q{SELECT last_error FROM reminder.message WHERE idempotency_key = 'consent-nohooks-1'}),
	qr/^recipient opted out of channel webhook at /, 'naming the channel scope');
is(scalar(grep { $_->{headers}{'Idempotency-Key'} =~ /^consent-(gone|nohooks|nogreet)-/ } sink_requests($sink)), 0,
	'nothing suppressed reached the sink');

is(worker_pid($node, 'app'), $pid, 'all of it seen by the same worker process');

stop_sink($sink);
$node->stop;
done_testing();
