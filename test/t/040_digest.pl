# Digests delivered by the worker through a real SMTP server
# (test/servers/smtp_sink.py): the operators' evening e-mail of their tasks due
# tomorrow (docs/digests.md, seed 004).  A rule's messages are collected
# into one digest per operator instead of going out one by one; when the
# digest goes out every item is checked again, so a task marked done
# meanwhile is left out, and a digest whose items are all gone is
# suppressed.  Items of reminder.add_to_digest() are checked for consent
# one by one.
use strict;
use warnings;

use PostgreSQL::Test::Utils;
use Test::More;

use ChannelTest;
use ReminderTest;

my $node = start_node('digest');
my $smtp = start_smtp_sink();
create_db($node, 'app');
my $port = $smtp->{ports}{plain};

$node->safe_psql('app', qq{
	SELECT reminder.create_channel('mail', 'email',
		jsonb_build_object('url', 'smtp://127.0.0.1:$port', 'from', 'tasks\@example.com'));
	CREATE TABLE task (
		id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
		title           text NOT NULL,
		due_on          date NOT NULL,
		operator_email  text NOT NULL,
		done            boolean NOT NULL DEFAULT false
	);
	SELECT reminder.create_template('tasks_tomorrow',
		E'Due tomorrow ({{count}}):\\n{{#items}}- {{row.title}}\\n{{/items}}',
		'Your tasks for tomorrow');
	SELECT reminder.watch('task', 'before', name => 'tasks_due_tomorrow',
		column_name => 'due_on', offsets => '{1 day}', if_past => 'send',
		stop_condition => 'done', time_zone => 'Europe/Warsaw',
		channel => 'mail', template => 'tasks_tomorrow',
		recipients => '{"role": "operator", "to": {"email": {"expr": "operator_email"}},
		                "digest": {"key": "tasks_tomorrow", "at": "18:00"}}');
});

# Due tomorrow in Warsaw: 1 day before is today's midnight, already past,
# so each task's message is due at once (if_past => 'send') and the worker
# collects it into its operator's digest for 18:00.
$node->safe_psql('app', q{
	INSERT INTO task (title, due_on, operator_email)
	SELECT t, (now() AT TIME ZONE 'Europe/Warsaw')::date + 1, e
	  FROM (VALUES ('Call Ada', 'ops1@example.com'), ('Send offer', 'ops1@example.com'),
	               ('Book room', 'ops1@example.com'), ('Print labels', 'ops1@example.com'),
	               ('Order toner', 'ops2@example.com'),
	               ('Water plants', 'ops3@example.com')) v(t, e);
});
ok(query_until($node, 'app', q{
	SELECT count(*) = 6 AND bool_and(status = 'suppressed' AND last_error LIKE 'digest: collected into message %')
	  FROM reminder.message WHERE rule_id IS NOT NULL}),
	'the worker collects each task\'s message into a digest instead of sending it');
is($node->safe_psql('app', q{SELECT string_agg(items::text, ',' ORDER BY items DESC) FROM reminder.digest}),
	'4,1,1', 'one digest per operator: 4 items, 1 and 1');
is($node->safe_psql('app', q{
	SELECT bool_and(send_at = (((now() AT TIME ZONE 'Europe/Warsaw')::date
	                            + CASE WHEN (now() AT TIME ZONE 'Europe/Warsaw')::time < '18:00' THEN 0 ELSE 1 END)
	                           + time '18:00') AT TIME ZONE 'Europe/Warsaw'
	                AND m.due_at = d.send_at AND m.status = 'scheduled')
	  FROM reminder.digest d JOIN reminder.message m ON m.id = d.message_id}),
	't', 'each digest message is due at the next 18:00 in Warsaw');
is(scalar(smtp_messages($smtp)), 0, 'nothing has been mailed yet');

# Before the evening: one task is done, another deleted.
$node->safe_psql('app', q{
	UPDATE task SET done = true WHERE title = 'Send offer';
	DELETE FROM task WHERE title = 'Water plants';
});

is($node->safe_psql('app', q{
	SELECT r.body FROM reminder.digest d, reminder.render(d.message_id) r WHERE d.items = 4}),
	"Due tomorrow (3):\n- Call Ada\n- Book room\n- Print labels\n", 'render() previews a digest as it would go out now');

# 18:00 comes (the digests are made due now)
$node->safe_psql('app', q{SELECT reminder.reschedule(message_id, now()) FROM reminder.digest});
ok(query_until($node, 'app', q{
	SELECT string_agg(m.status, ',' ORDER BY d.items DESC, m.status)
	  FROM reminder.digest d JOIN reminder.message m ON m.id = d.message_id},
	'sent,sent,suppressed'), 'two digests are sent, the one left without items is suppressed');

my %mail;
for my $m (smtp_messages($smtp))
{
	my $parsed = inspect_mail($m->{data});
	$mail{ $m->{rcpt_tos}[0] } = $parsed;
}
is_deeply([ sort keys %mail ], [ 'ops1@example.com', 'ops2@example.com' ], 'one e-mail to each of two operators');
is($mail{'ops1@example.com'}{headers}{subject}[0], 'Your tasks for tomorrow', 'subject of the digest template');
is($mail{'ops1@example.com'}{plain}, "Due tomorrow (3):\n- Call Ada\n- Book room\n- Print labels\n",
	'the first operator\'s lists three tasks, without the one done since');
is($mail{'ops2@example.com'}{plain}, "Due tomorrow (1):\n- Order toner\n",
	'the second operator\'s digest is separate');
is($node->safe_psql('app', q{
	SELECT string_agg(coalesce(t.title, '(deleted)') || ': ' || coalesce(i.dropped, 'listed'), '; ' ORDER BY i.message_id)
	  FROM reminder.digest_item i LEFT JOIN task t ON t.id::text = i.source_key}),
	'Call Ada: listed; Send offer: rule: stop condition holds; Book room: listed; Print labels: listed; Order toner: listed; (deleted): rule: row no longer exists',
	'digest_item.dropped says why an item was left out');
like($node->safe_psql('app', q{
	SELECT m.last_error FROM reminder.digest d JOIN reminder.message m ON m.id = d.message_id
	 WHERE m.status = 'suppressed'}),
	qr/^digest: no items left \(1 left out\)$/, 'the empty digest is suppressed, with the reason');

# A new task after the digest went out opens the next one
$node->safe_psql('app', q{
	INSERT INTO task (title, due_on, operator_email)
	VALUES ('Late task', (now() AT TIME ZONE 'Europe/Warsaw')::date + 1, 'ops1@example.com');
});
ok(query_until($node, 'app', q{
	SELECT count(*) = 1 FROM reminder.digest WHERE closed_at IS NULL AND items = 1}),
	'an item after the digest went out opens a new digest');

# The worker does not wait behind a transaction that is adding to the same
# digest: the item is tried again a moment later, other messages go on.
my $session = $node->background_psql('app');
$session->query_safe(q{BEGIN});
$session->query_safe(q{
	SELECT reminder.add_to_digest('mail', '{"email": "ops1@example.com"}', 'tasks_tomorrow',
		'{"key": "tasks_tomorrow", "at": "18:00"}', '{"row": {"title": "By hand"}}')});
$node->safe_psql('app', q{
	INSERT INTO task (title, due_on, operator_email)
	VALUES ('Busy task', (now() AT TIME ZONE 'Europe/Warsaw')::date + 1, 'ops1@example.com');
});
ok(query_until($node, 'app', q{
	SELECT m.status = 'scheduled' AND m.last_error = 'digest: another transaction is adding to it'
	  FROM reminder.message m JOIN task t ON m.source_key = t.id::text WHERE t.title = 'Busy task'}),
	'an item whose digest another transaction holds waits, without holding up the worker');
$node->safe_psql('app', q{
	SELECT reminder.create_template('plain', 'Hello', 'Hello');
	SELECT reminder.send('mail', '{"email": "meanwhile@example.com"}', 'plain', '{}', 'meanwhile');
});
ok(query_until($node, 'app', q{SELECT status = 'sent' FROM reminder.message WHERE idempotency_key = 'meanwhile'}),
	'... which sends other messages meanwhile');
$session->query_safe(q{COMMIT});
$session->quit;
ok(query_until($node, 'app', q{
	SELECT m.status = 'suppressed' AND d.items = 3
	  FROM reminder.message m JOIN task t ON m.source_key = t.id::text
	  JOIN reminder.digest d ON d.closed_at IS NULL AND d.digest_key = 'tasks_tomorrow'
	 WHERE t.title = 'Busy task'}),
	'once that transaction commits, the item joins the same digest');

# Items of add_to_digest() are checked for consent one by one
$node->safe_psql('app', q{
	SELECT reminder.create_template('news', E'{{#items}}* {{title}}\\n{{/items}}', 'News');
	SELECT reminder.opt_out('{"email": "ada@example.com"}', category => 'promotions');
	SELECT reminder.add_to_digest('mail', '{"email": "ada@example.com"}', 'news',
	                              '{"key": "news", "window": "1 hour"}', d, c)
	  FROM (VALUES ('{"title": "Invoice 7 paid"}'::jsonb, NULL), ('{"title": "50% off"}', 'promotions'),
	               ('{"title": "Invoice 8 paid"}', NULL)) v(d, c);
});
$node->safe_psql('app', q{
	SELECT reminder.reschedule(message_id, now()) FROM reminder.digest WHERE digest_key = 'news'});
ok(query_until($node, 'app', q{
	SELECT m.status = 'sent' FROM reminder.digest d JOIN reminder.message m ON m.id = d.message_id
	 WHERE d.digest_key = 'news'}), 'the news digest is sent');
my ($news) = grep { $_->{rcpt_tos}[0] eq 'ada@example.com' } smtp_messages($smtp);
is(inspect_mail($news->{data})->{plain}, "* Invoice 7 paid\n* Invoice 8 paid\n",
	'the item of a category the recipient opted out of is left out');

# An on_change rule's items keep the row as it was at the change
$node->safe_psql('app', q{
	CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, customer_email text NOT NULL);
	SELECT reminder.create_template('order_news', E'{{#items}}{{row.id}}: {{old.status}} -> {{row.status}}\n{{/items}}', 'Your orders');
	SELECT reminder.watch('orders', 'on_change', name => 'order_news', column_name => 'status',
		channel => 'mail', template => 'order_news',
		recipients => '{"to": {"email": {"expr": "customer_email"}}, "digest": {"key": "orders", "window": "1 hour"}}');
	INSERT INTO orders VALUES (1, 'new', 'buyer@example.com'), (2, 'new', 'buyer@example.com');
	UPDATE orders SET status = 'paid';
});
ok(query_until($node, 'app', q{SELECT items = 4 FROM reminder.digest WHERE digest_key = 'orders'}),
	'every change of an on_change rule is an item');
$node->safe_psql('app', q{UPDATE orders SET status = 'shipped' WHERE id = 1});
ok(query_until($node, 'app', q{SELECT items = 5 FROM reminder.digest WHERE digest_key = 'orders'}),
	'... and joins the open digest');
$node->safe_psql('app', q{
	SELECT reminder.reschedule(message_id, now()) FROM reminder.digest WHERE digest_key = 'orders'});
ok(query_until($node, 'app', q{
	SELECT bool_or(m.status = 'sent') FROM reminder.digest d JOIN reminder.message m ON m.id = d.message_id
	 WHERE d.digest_key = 'orders'}), 'the orders digest is sent');
my ($orders) = grep { $_->{rcpt_tos}[0] eq 'buyer@example.com' } smtp_messages($smtp);
is(inspect_mail($orders->{data})->{plain}, "1:  -> new\n2:  -> new\n1: new -> paid\n2: new -> paid\n1: paid -> shipped\n",
	'... listing each change with the row as it was then');

# Quiet hours defer the whole digest: nothing is checked or sent before they end
$node->safe_psql('app', q{
	SELECT reminder.add_to_digest('mail',
		jsonb_build_object('email', 'night@example.com', 'time_zone', 'UTC', 'quiet_hours',
			jsonb_build_object('start', to_char((now() AT TIME ZONE 'UTC') - interval '1 hour', 'HH24:MI'),
			                   'end', to_char((now() AT TIME ZONE 'UTC') + interval '3 hours', 'HH24:MI'))),
		'news', '{"key": "night", "window": "1 hour"}', '{"title": "Server restarted"}');
	SELECT reminder.reschedule(message_id, now()) FROM reminder.digest WHERE digest_key = 'night';
});
ok(query_until($node, 'app', q{
	SELECT m.status = 'scheduled' AND m.last_error LIKE 'quiet hours %' AND m.next_attempt_at > now() + interval '2 hours'
	  FROM reminder.digest d JOIN reminder.message m ON m.id = d.message_id WHERE d.digest_key = 'night'}),
	'quiet hours defer the whole digest');
is($node->safe_psql('app', q{
	SELECT d.closed_at IS NULL AND i.dropped IS NULL
	  FROM reminder.digest d JOIN reminder.digest_item i ON i.digest_id = d.id WHERE d.digest_key = 'night'}),
	't', '... which stays open for more items meanwhile');
ok(!grep({ $_->{rcpt_tos}[0] eq 'night@example.com' } smtp_messages($smtp)), '... and nothing is mailed');

stop_server($smtp);
$node->stop;
done_testing();
