# What goes wrong: transient failures retried with backoff, Retry-After,
# permanent failures, timeouts, the host policy, messages that cannot be
# rendered, and fallback to another channel after the last attempt.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

use ReminderTest;

my $node = start_node('failures');
my $sink = start_sink();
create_db($node, 'app');
my $url = $sink->{url};

# retry_delay 0.3 s: small, but large enough to see
$node->safe_psql('app', qq{
	SELECT reminder.create_channel('journal', 'log');
	SELECT reminder.create_channel('journal2', 'log');
	SELECT reminder.create_channel('mail', 'email',
		'{"url": "smtp://127.0.0.1:1", "from": "a\@example.com"}');
	SELECT reminder.create_channel('flaky', 'webhook',
		'{"url": "$url/flaky", "retry_delay": "0.3", "retry_max_delay": "1", "max_attempts": 4}');
	SELECT reminder.create_channel('bad', 'webhook', '{"url": "$url/status/400"}');
	SELECT reminder.create_channel('slow', 'webhook',
		'{"url": "$url/hang/3", "timeout": "0.5", "retry_delay": "0.2", "max_attempts": 2}');
	SELECT reminder.create_channel('busy', 'webhook',
		'{"url": "$url/busy", "retry_delay": "0.1", "max_attempts": 3}');
	SELECT reminder.create_channel('down', 'webhook',
		'{"url": "$url/status/503", "retry_delay": "0.1", "max_attempts": 2, "fallback": "journal"}');
	SELECT reminder.create_channel('down2', 'webhook',
		'{"url": "$url/status/500", "max_attempts": 1, "fallback": "mail"}');
	SELECT reminder.create_channel('meta', 'webhook', '{"url": "http://169.254.169.254/latest"}');
	SELECT reminder.create_template('broken', 'x');
});

sub attempts
{
	my ($key) = @_;
	return $node->safe_psql('app', qq{
		SELECT string_agg(a.attempt || ':' || a.outcome || ':' || coalesce(a.http_status::text, '-'), ','
		                  ORDER BY a.attempt)
		FROM reminder.attempt a JOIN reminder.message m ON m.id = a.message_id
		WHERE m.idempotency_key = '$key'});
}

sub gap
{
	my ($key, $n) = @_;
	return $node->safe_psql('app', qq{
		SELECT extract(epoch FROM b.started_at - (a.started_at + a.duration))
		FROM reminder.attempt a JOIN reminder.attempt b USING (message_id)
		JOIN reminder.message m ON m.id = a.message_id
		WHERE m.idempotency_key = '$key' AND a.attempt = $n AND b.attempt = $n + 1});
}

sub status_of
{
	my ($key) = @_;
	return $node->safe_psql('app', "SELECT status FROM reminder.message WHERE idempotency_key = '$key'");
}

sub wait_status
{
	my ($key, $status) = @_;
	return query_until($node, 'app',
		"SELECT status = '$status' FROM reminder.message WHERE idempotency_key = '$key'");
}

# 500, 500, then 200: sent on the third attempt, with growing delays
sink_control($sink, { path => '/flaky', responses => [ { status => 500 }, { status => 502 } ] });
$node->safe_psql('app', "SELECT reminder.send('flaky', '{}', 't', '{}', 'flaky-1')");
ok(wait_status('flaky-1', 'sent'), '500 then 502 then 200: sent');
is(attempts('flaky-1'), '1:transient:500,2:transient:502,3:sent:200', '... after three attempts, all recorded');
cmp_ok(gap('flaky-1', 1), '>=', 0.29, '... the first retry waits retry_delay');
cmp_ok(gap('flaky-1', 2), '>=', 0.29, '... the second at least as long (backoff with jitter)');
is($node->safe_psql('app', "SELECT attempts || ':' || (last_error IS NULL)::int FROM reminder.message WHERE idempotency_key = 'flaky-1'"),
	'3:1', '... attempts counted, last_error cleared');

# 400: failed after one attempt
$node->safe_psql('app', "SELECT reminder.send('bad', '{}', 't', '{}', 'bad-1')");
ok(wait_status('bad-1', 'failed'), '400: failed');
is(attempts('bad-1'), '1:permanent:400', '... after one attempt');
like($node->safe_psql('app', "SELECT last_error FROM reminder.message WHERE idempotency_key = 'bad-1'"),
	qr/HTTP status 400/, '... with the status in last_error');

# A server that hangs past the timeout: retried, then failed
$node->safe_psql('app', "SELECT reminder.send('slow', '{}', 't', '{}', 'slow-1')");
ok(wait_status('slow-1', 'failed'), 'timeouts: failed after the last attempt');
is(attempts('slow-1'), '1:transient:-,2:permanent:-', '... the timeout was retried');
like($node->safe_psql('app', "SELECT last_error FROM reminder.message WHERE idempotency_key = 'slow-1'"),
	qr/gave up after 2 attempts: Timeout/, '... and last_error says why');
cmp_ok($node->safe_psql('app', "SELECT max(extract(epoch FROM duration)) FROM reminder.attempt a "
		. "JOIN reminder.message m ON m.id = a.message_id WHERE m.idempotency_key = 'slow-1'"),
	'<', 1.5, '... each attempt cut at the channel timeout');

# 429 with Retry-After: 2 is honoured over the 0.1 s retry_delay
sink_control($sink, { path => '/busy', responses => [ { status => 429, headers => { 'Retry-After' => '2' } } ] });
$node->safe_psql('app', "SELECT reminder.send('busy', '{}', 't', '{}', 'busy-1')");
ok(wait_status('busy-1', 'sent'), '429 then 200: sent');
is(attempts('busy-1'), '1:transient:429,2:sent:200', '... on the second attempt');
cmp_ok(gap('busy-1', 1), '>=', 1.9, '... Retry-After: 2 honoured');

# 40 messages failing together come back spread out, from the first retry
# on: drawn between retry_delay (2 s) and twice that
$node->safe_psql('app', qq{
	SELECT reminder.create_channel('herd', 'webhook',
		'{"url": "$url/status/503", "retry_delay": "2", "max_attempts": 2}');
	SELECT reminder.send('herd', '{}', 't', '{}', 'herd-' || g) FROM generate_series(1, 40) g;
});
ok(query_until($node, 'app', "SELECT count(*) = 40 FROM reminder.message WHERE channel = 'herd' AND status = 'failed'", 't', 30),
	'40 messages failing together are retried, then fail');
my ($lo, $hi, $sd, $distinct) = split /\|/, $node->safe_psql('app', q{
	SELECT round(min(g), 2), round(max(g), 2), round(stddev_pop(g), 2), count(DISTINCT round(g, 1))
	  FROM (SELECT extract(epoch FROM b.started_at - (a.started_at + a.duration)) AS g
	          FROM reminder.attempt a JOIN reminder.attempt b USING (message_id)
	          JOIN reminder.message m ON m.id = a.message_id
	         WHERE m.channel = 'herd' AND a.attempt = 1 AND b.attempt = 2) s});
cmp_ok($lo, '>=', 1.99, '... none retried before retry_delay');
cmp_ok($hi, '<=', 4.5, '... none much after twice retry_delay');
cmp_ok($sd, '>=', 0.3, "... spread out (standard deviation $sd s, uniform over 2 s would be 0.58)");
cmp_ok($distinct, '>=', 10, "... over many moments ($distinct distinct tenths of a second)");

# Host policy: link-local (cloud metadata) is denied by default
$node->safe_psql('app', "SELECT reminder.send('meta', '{}', 't', '{}', 'meta-1')");
ok(wait_status('meta-1', 'failed'), 'a denied destination fails');
is(attempts('meta-1'), '1:permanent:-', '... at once, as a permanent failure');
like($node->safe_psql('app', "SELECT last_error FROM reminder.message WHERE idempotency_key = 'meta-1'"),
	qr/169\.254\.169\.254.*denied by reminder\.denied_hosts/, '... saying which address and why');

# ... and an allow list that leaves the sink out refuses it, checked on the
# address connected to
$node->append_conf('postgresql.conf', "reminder.allowed_hosts = '10.0.0.0/8, example.com'");
$node->reload;
sleep 1;
$node->safe_psql('app', "SELECT reminder.send('bad', '{}', 't', '{}', 'allow-1')");
ok(wait_status('allow-1', 'failed'), 'a destination outside allowed_hosts fails');
like($node->safe_psql('app', "SELECT last_error FROM reminder.message WHERE idempotency_key = 'allow-1'"),
	qr/127\.0\.0\.1.*not in reminder\.allowed_hosts/, '... naming the address');
$node->append_conf('postgresql.conf', "reminder.allowed_hosts = '127.0.0.0/8'");
$node->reload;
sleep 1;
$node->safe_psql('app', "SELECT reminder.send('flaky', '{}', 't', '{}', 'allow-2')");
ok(wait_status('allow-2', 'sent'), 'a destination inside allowed_hosts is reached');

# A message that cannot be rendered fails alone, and the worker goes on
$node->safe_psql('app', "DELETE FROM reminder.template WHERE name = 'broken'");
$node->safe_psql('app', q{
	INSERT INTO reminder.message (channel, recipient, template, due_at, next_attempt_at, idempotency_key)
	VALUES ('flaky', '{}', 'broken', now(), now(), 'poison-1');
	SELECT reminder.send('flaky', '{}', 't', '{}', 'after-poison-' || g) FROM generate_series(1, 5) g;
});
ok(wait_status('poison-1', 'failed'), 'a message whose template is gone fails');
like($node->safe_psql('app', "SELECT last_error FROM reminder.message WHERE idempotency_key = 'poison-1'"),
	qr/template "broken" does not exist/, '... with the reason');
ok(query_until($node, 'app', "SELECT count(*) = 5 FROM reminder.message WHERE idempotency_key LIKE 'after-poison-%' AND status = 'sent'"),
	'... and the messages claimed with it are sent');

# reminder.message.channel has no foreign key: a message whose channel
# vanished (here deleted behind drop_channel()'s back) fails clearly
$node->safe_psql('app', q{
	SELECT reminder.create_channel('gone', 'log');
	INSERT INTO reminder.message (channel, recipient, template, due_at, next_attempt_at, idempotency_key)
	VALUES ('gone', '{}', 't', now() + interval '1 hour', now() + interval '1 hour', 'orphan-1');
	DELETE FROM reminder.channel WHERE name = 'gone';
	UPDATE reminder.message SET due_at = now(), next_attempt_at = now() WHERE idempotency_key = 'orphan-1';
});
ok(wait_status('orphan-1', 'failed'), 'a message whose channel is gone fails');
is($node->safe_psql('app', "SELECT attempts || ': ' || last_error FROM reminder.message WHERE idempotency_key = 'orphan-1'"),
	'1: channel "gone" does not exist', '... at the first attempt, saying why');

# Fallback after the last failure
$node->safe_psql('app', "SELECT reminder.send('down', '{\"name\": \"Ada\"}', 't', '{\"x\": 1}', 'down-1')");
ok(wait_status('down-1', 'failed'), 'a failing channel gives up');
ok(query_until($node, 'app', "SELECT status = 'sent' FROM reminder.message WHERE idempotency_key = 'down-1:fallback'"),
	'... and its fallback channel delivers');
is($node->safe_psql('app', q{
	SELECT f.channel || ':' || (f.fallback_of = o.id)::int || ':' || (f.recipient->>'name') || ':' || (f.data->>'x')
	FROM reminder.message f JOIN reminder.message o ON o.idempotency_key = 'down-1'
	WHERE f.idempotency_key = 'down-1:fallback'}),
	'journal:1:Ada:1', '... same recipient and data, fallback_of set');

# A message's own fallback wins over its channel's
$node->safe_psql('app', "SELECT reminder.send('down', '{\"name\": \"Bob\"}', 't', '{}', 'down-own', fallback => 'journal2')");
ok(wait_status('down-own', 'failed'), 'a message with its own fallback gives up');
ok(query_until($node, 'app', "SELECT status = 'sent' FROM reminder.message WHERE idempotency_key = 'down-own:fallback'"),
	'... and the fallback it named delivers');
is($node->safe_psql('app', "SELECT channel FROM reminder.message WHERE idempotency_key = 'down-own:fallback'"),
	'journal2', '... on that channel, not the channel\'s fallback');
$node->safe_psql('app', "SELECT reminder.send('bad', '{\"name\": \"Bob\"}', 't', '{}', 'bad-own', fallback => 'journal')");
ok(query_until($node, 'app', "SELECT status = 'sent' FROM reminder.message WHERE idempotency_key = 'bad-own:fallback'"),
	'a channel without a fallback setting falls back as the message says');

# The fallback of a rule-made message keeps the rule's consent category, so
# an unsubscribe link in it stops the rule's other messages too
$node->safe_psql('app', q{
	CREATE TABLE task (id int PRIMARY KEY, due timestamptz NOT NULL);
	SELECT reminder.watch('task', 'after', name => 'task_due', column_name => 'due', channel => 'down',
	                      template => 't', category => 'tasks', recipients => '{"to": {"name": "Eve"}}',
	                      if_past => 'send');
	INSERT INTO task VALUES (1, now());
});
ok(query_until($node, 'app', q{
	SELECT f.status = 'sent' FROM reminder.message f JOIN reminder.message o ON o.id = f.fallback_of
	 WHERE o.rule_id = (SELECT id FROM reminder.rule WHERE name = 'task_due')}),
	'a rule-made message falls back too');
is($node->safe_psql('app', q{
	SELECT o.category || ':' || f.category FROM reminder.message f JOIN reminder.message o ON o.id = f.fallback_of
	 WHERE o.rule_id = (SELECT id FROM reminder.rule WHERE name = 'task_due')}),
	'tasks:tasks', '... and its fallback carries the rule\'s category');

# A fallback channel the recipient has no address for: noted, not fatal
$node->safe_psql('app', "SELECT reminder.send('down2', '{}', 't', '{}', 'down2-1')");
ok(wait_status('down2-1', 'failed'), 'a failure whose fallback cannot take the recipient');
like($node->safe_psql('app', "SELECT last_error FROM reminder.message WHERE idempotency_key = 'down2-1'"),
	qr/no fallback to channel "mail": recipient has no email address/, '... says so in last_error');

is($node->safe_psql('app', "SELECT count(*) FROM reminder.message WHERE status = 'sending'"),
	'0', 'nothing left in flight');

stop_sink($sink);
$node->stop;
done_testing();
