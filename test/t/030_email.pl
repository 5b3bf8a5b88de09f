# Email through a real SMTP server (aiosmtpd, test/servers/smtp_sink.py) with
# STARTTLS, SMTPS and AUTH on a certificate made for the run; the mail it
# stores is read by Python's email package (policy.default), as a mail
# client would: header fields and their encodings, the two alternative
# parts, Bcc only in the envelope, Message-ID from the idempotency key,
# List-Unsubscribe (from data and as a signed link).  Then connection
# reuse, 4xx retried and 5xx failed, and the TLS failures a channel can
# run into.
use strict;
use warnings;
use utf8;

use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time);

use ChannelTest;
use ReminderTest;


my $node = start_node('email', conf => "reminder.max_host_connections = 2\n");
my $smtp = start_smtp_sink();
create_db($node, 'app');
my %port = %{ $smtp->{ports} };
my $ca = $smtp->{cert};

my $subject = 'Przypomnienie: spotkanie o 15:00 — Łódź, żółć';
$node->safe_psql('app', qq{
	SELECT reminder.create_channel('mail', 'email',
		jsonb_build_object('url', 'smtp://127.0.0.1:$port{starttls}',
			'from', 'Przypomnienia Łódź <noreply\@example.com>',
			'reply_to', 'Biuro, Obsługa <biuro\@example.com>',
			'bcc', '["audit\@example.com"]'::jsonb,
			'starttls', 'required', 'ca_file', '$ca',
			'max_attempts', 3, 'retry_delay', '200ms', 'retry_max_delay', '400ms'),
		'{"username": "mailer", "password": "s3cret"}');
	SELECT reminder.create_template('meeting',
		E'Dzień dobry {{recipient.name}},\\nspotkanie o 15:00 w Łodzi, sala "Żółta".\\n.\\nA line that is long enough to be folded by the quoted-printable encoder, as RFC 2045 wants lines of at most 76 characters.',
		'$subject',
		'<p>Dzień dobry <b>{{recipient.name}}</b>, spotkanie o 15:00.</p>');
	SELECT reminder.create_template('plain', 'Tylko tekst: zażółć gęślą jaźń.', 'Plain text');
});

# ----------------------------------------------------------------------
# One message, read back field by field
# ----------------------------------------------------------------------
my $t0 = time;
$node->safe_psql('app', q{
	SELECT reminder.send('mail',
		'{"email": "jan@example.com", "name": "Jan Kowalski", "cc": ["anna@example.com", "piotr@example.com"], "bcc": "szef@example.com"}',
		'meeting', '{"links": {"unsubscribe": "https://example.com/u/abc"}}', 'meet-1');
});
ok(query_until($node, 'app', "SELECT status = 'sent' FROM reminder.message WHERE idempotency_key = 'meet-1'"),
	'the email is sent');
my ($m) = grep { $_->{rcpt_tos}[0] eq 'jan@example.com' } smtp_messages($smtp);
ok($m, 'the SMTP server stored it');
is($m->{server}, 'starttls', '... on the STARTTLS port');
ok($m->{tls}, '... after STARTTLS');
is($m->{user}, 'mailer', '... authenticated with the channel\'s credentials');
is($m->{mail_from}, 'noreply@example.com', 'envelope sender is the From address');
is_deeply([ sort @{ $m->{rcpt_tos} } ],
	[ sort qw(jan@example.com anna@example.com piotr@example.com szef@example.com audit@example.com) ],
	'RCPT TO: To, both Cc, the recipient\'s Bcc and the channel\'s Bcc');

my $mail = inspect_mail($m->{data});
my %h = %{ $mail->{headers} };
is_deeply($mail->{defects}, [], 'the parser finds no defects');
is_deeply($mail->{addresses}{from}, [ { name => 'Przypomnienia Łódź', address => 'noreply@example.com' } ],
	'From: display name with diacritics, decoded');
is_deeply($mail->{addresses}{to}, [ { name => 'Jan Kowalski', address => 'jan@example.com' } ], 'To');
is_deeply([ map { $_->{address} } @{ $mail->{addresses}{cc} } ], [ 'anna@example.com', 'piotr@example.com' ], 'Cc');
is_deeply($mail->{addresses}{'reply-to'}, [ { name => 'Biuro, Obsługa', address => 'biuro@example.com' } ],
	'Reply-To: a name with a comma survives quoting');
ok(!exists $h{bcc}, 'no Bcc header field');
unlike($m->{data}, qr/szef\@example\.com|audit\@example\.com/, 'the Bcc addresses appear nowhere in the message');
is($h{subject}[0], $subject, 'Subject decodes to the Polish original');
ok((grep { /^Subject: =\?UTF-8\?B\?/ } @{ $mail->{raw_header_lines} }), '... sent as RFC 2047 encoded words');
is_deeply([ grep { length($_) > 78 && !/^Content-Type: multipart/ } @{ $mail->{raw_header_lines} } ], [],
	'... every header line folded within 78 characters (but libcurl\'s boundary)');
is($h{'message-id'}[0], '<meet-1@example.com>', 'Message-ID from the idempotency key and the From domain');
cmp_ok(abs($mail->{date} - $t0), '<', 60, 'Date is now');
is($h{'list-unsubscribe'}[0], '<https://example.com/u/abc>', 'List-Unsubscribe from links.unsubscribe');
is($h{'list-unsubscribe-post'}[0], 'List-Unsubscribe=One-Click', 'List-Unsubscribe-Post (one-click, HTTPS link)');
is($h{'auto-submitted'}[0], 'auto-generated', 'Auto-Submitted: auto-generated');
is($h{'mime-version'}[0], '1.0', 'MIME-Version');
is($mail->{content_type}, 'multipart/alternative', 'multipart/alternative');
is_deeply([ map { $_->{content_type} } @{ $mail->{parts} } ], [ 'text/plain', 'text/html' ],
	'... of text/plain then text/html');
is_deeply([ map { $_->{charset} } @{ $mail->{parts} } ], [ 'utf-8', 'utf-8' ], '... both UTF-8');
is_deeply([ map { $_->{cte} } @{ $mail->{parts} } ], [ 'quoted-printable', 'quoted-printable' ],
	'... both quoted-printable');
is($mail->{plain},
	"Dzień dobry Jan Kowalski,\nspotkanie o 15:00 w Łodzi, sala \"Żółta\".\n.\n"
	  . "A line that is long enough to be folded by the quoted-printable encoder, as RFC 2045 wants lines of at most 76 characters.",
	'the text part decodes to the rendered text (diacritics, a lone dot line, a long line)');
is($mail->{html}, "<p>Dzień dobry <b>Jan Kowalski</b>, spotkanie o 15:00.</p>", 'the HTML part');
is($node->safe_psql('app', q{
	SELECT m.provider_message_id || ' | ' || a.smtp_reply || ' | ' || a.outcome
	FROM reminder.message m JOIN reminder.attempt a ON a.message_id = m.id
	WHERE m.idempotency_key = 'meet-1'}),
	"$m->{queue_id} | 250 2.0.0 Ok: queued as $m->{queue_id} | sent",
	'the queue id is the provider message id; the final reply is on the attempt');

# A text-only template, Message-IDs from awkward keys
my $long_key = 'k' x 300;
$node->safe_psql('app', qq{
	SELECT reminder.send('mail', '{"email": "ola\@example.com"}', 'plain', '{}', 'order 42/ż:x');
	SELECT reminder.send('mail', '{"email": "ola2\@example.com"}', 'plain', '{}', '$long_key');
});
ok(query_until($node, 'app', "SELECT count(*) = 2 FROM reminder.message WHERE recipient->>'email' LIKE 'ola%' AND status = 'sent'"),
	'text-only messages sent');
my ($plain) = grep { $_->{rcpt_tos}[0] eq 'ola@example.com' } smtp_messages($smtp);
my $pm = inspect_mail($plain->{data});
is_deeply([ map { $_->{content_type} } @{ $pm->{parts} } ], ['text/plain'], 'a text-only template gives one text/plain part');
is($pm->{plain}, "Tylko tekst: zażółć gęślą jaźń.", '... which decodes intact');
is($pm->{parts}[0]{cte}, 'base64', '... sent as base64, a third of its bytes not being ASCII');
ok(!defined $pm->{html}, '... and no HTML');
ok(!exists $pm->{headers}{'list-unsubscribe'}, 'no List-Unsubscribe without an unsubscribe link');
is($pm->{headers}{'message-id'}[0], '<order%2042/%C5%BC%3Ax@example.com>',
	'a key with characters outside atext is percent-escaped in the Message-ID');
my ($long) = grep { $_->{rcpt_tos}[0] eq 'ola2@example.com' } smtp_messages($smtp);
like(inspect_mail($long->{data})->{headers}{'message-id'}[0], qr/^<sha256\.[0-9a-f]{64}\@example\.com>$/,
	'an overlong key is hashed');

# ----------------------------------------------------------------------
# Connection reuse: many messages, at most max_host_connections sessions
# ----------------------------------------------------------------------
$node->safe_psql('app', q{
	SELECT reminder.send('mail', jsonb_build_object('email', 'bulk' || g || '@example.com'), 'plain', '{}', 'bulk-' || g)
	FROM generate_series(1, 20) g;
});
ok(query_until($node, 'app', "SELECT count(*) = 20 FROM reminder.message WHERE idempotency_key LIKE 'bulk-%' AND status = 'sent'"),
	'20 more messages sent');
my $before = smtp_connections($smtp, 'starttls');
$node->safe_psql('app', q{
	SELECT reminder.send('mail', jsonb_build_object('email', 'late' || g || '@example.com'), 'plain', '{}', 'late-' || g)
	FROM generate_series(1, 3) g;
});
ok(query_until($node, 'app', "SELECT count(*) = 3 FROM reminder.message WHERE idempotency_key LIKE 'late-%' AND status = 'sent'"),
	'3 more a moment later');
my @sessions = do {
	my %s = map { ("$_->{peer}[1]" => 1) } grep { $_->{server} eq 'starttls' } smtp_messages($smtp);
	keys %s;
};
my $all = smtp_connections($smtp, 'starttls');
my $count = scalar(grep { $_->{server} eq 'starttls' } smtp_messages($smtp));
cmp_ok($all, '<=', 2, "$count messages over $all SMTP connections (max_host_connections = 2)");
is($all - $before, 0, '... and the later ones went over the sessions left open');
is(scalar(@sessions), $all, '... as the client ports of the stored messages show');

# ----------------------------------------------------------------------
# SMTP replies: 4xx retried, 5xx failed at once
# ----------------------------------------------------------------------
$node->safe_psql('app', q{
	SELECT reminder.send('mail', '{"email": "flaky1-a@example.com"}', 'plain', '{}', 'flaky');
	SELECT reminder.send('mail', '{"email": "tempfail@example.com"}', 'plain', '{}', 'temp');
	SELECT reminder.send('mail', '{"email": "permfail@example.com"}', 'plain', '{}', 'perm');
});
ok(query_until($node, 'app',
		"SELECT count(*) = 3 FROM reminder.message WHERE idempotency_key IN ('flaky', 'temp', 'perm') AND status IN ('sent', 'failed')"),
	'the failing recipients are settled');
my $rows = $node->safe_psql('app', q{
	SELECT m.idempotency_key, m.status, m.attempts, string_agg(a.outcome || ':' || a.smtp_reply, ',' ORDER BY a.attempt)
	FROM reminder.message m JOIN reminder.attempt a ON a.message_id = m.id
	WHERE m.idempotency_key IN ('flaky', 'temp', 'perm')
	GROUP BY 1, 2, 3 ORDER BY 1});
my %r = map { my @f = split /\|/; ($f[0] => [ @f[ 1 .. 3 ] ]) } split /\n/, $rows;
is($r{flaky}[0] . '/' . $r{flaky}[1], 'sent/2', '451 once (greylisting): retried and sent');
like($r{flaky}[2], qr/^transient:451 4\.3\.0 Greylisted.*,sent:250 /, '... attempts: transient 451, then 250');
is($r{temp}[0] . '/' . $r{temp}[1], 'failed/3', '451 every time: failed after max_attempts');
like($r{temp}[2], qr/^transient:451 .*,transient:451 .*,permanent:451 /, '... each attempt keeps the 451 reply');
is($r{perm}[0] . '/' . $r{perm}[1], 'failed/1', '550: failed at the first attempt');
like($r{perm}[2], qr/^permanent:550 5\.1\.1 No such user here$/, '... the 550 reply on the attempt');
like($node->safe_psql('app', "SELECT last_error FROM reminder.message WHERE idempotency_key = 'perm'"),
	qr/^SMTP 550: 550 5\.1\.1 No such user here/, '... and in last_error');

# ----------------------------------------------------------------------
# SMTPS, STARTTLS policy, certificates, credentials
# ----------------------------------------------------------------------
my ($ret, $out, $err) = $node->psql('app', qq{
	SELECT reminder.create_channel('insecure', 'email',
		jsonb_build_object('url', 'smtps://127.0.0.1:$port{smtps}', 'from', 'noreply\@example.com', 'tls_verify', false),
		'{"username": "mailer", "password": "s3cret"}')});
like($err, qr/WARNING:  channel "insecure" does not verify TLS certificates/, 'tls_verify false is said aloud');
$node->safe_psql('app', qq{
	SELECT reminder.create_channel('smtps', 'email',
		jsonb_build_object('url', 'smtps://127.0.0.1:$port{smtps}', 'from', 'noreply\@example.com', 'ca_file', '$ca'),
		'{"username": "mailer", "password": "s3cret"}');
	SELECT reminder.create_channel('untrusted', 'email',
		jsonb_build_object('url', 'smtps://127.0.0.1:$port{smtps}', 'from', 'noreply\@example.com'),
		'{"username": "mailer", "password": "s3cret"}');
	SELECT reminder.create_channel('notls', 'email',
		jsonb_build_object('url', 'smtp://127.0.0.1:$port{plain}', 'from', 'noreply\@example.com', 'starttls', 'required'));
	SELECT reminder.create_channel('opportunistic', 'email',
		jsonb_build_object('url', 'smtp://127.0.0.1:$port{plain}', 'from', 'noreply\@example.com'));
	SELECT reminder.create_channel('badpass', 'email',
		jsonb_build_object('url', 'smtp://127.0.0.1:$port{starttls}', 'from', 'noreply\@example.com', 'ca_file', '$ca'),
		'{"username": "mailer", "password": "wrong"}');
	SELECT reminder.create_channel('noauth', 'email',
		jsonb_build_object('url', 'smtp://127.0.0.1:$port{starttls}', 'from', 'noreply\@example.com', 'ca_file', '$ca'));
	SELECT reminder.send(c, '{"email": "x\@example.com"}', 'plain', '{}', 'tls-' || c)
	FROM unnest(ARRAY['insecure', 'smtps', 'untrusted', 'notls', 'opportunistic', 'badpass', 'noauth']) c;
});
ok(query_until($node, 'app',
		"SELECT count(*) = 7 FROM reminder.message WHERE idempotency_key LIKE 'tls-%' AND status IN ('sent', 'failed')"),
	'the TLS and AUTH cases are settled');
my %tls = map { split /\|/, $_, 2 } split /\n/, $node->safe_psql('app', q{
	SELECT substr(idempotency_key, 5), status || ' ' || attempts || ' ' || coalesce(last_error, '')
	FROM reminder.message WHERE idempotency_key LIKE 'tls-%'});
like($tls{smtps}, qr/^sent 1 $/, 'smtps:// with the test CA in ca_file: sent');
ok((grep { $_->{server} eq 'smtps' && $_->{tls} && $_->{user} eq 'mailer' } smtp_messages($smtp)) >= 2,
	'... over implicit TLS, authenticated');
like($tls{insecure}, qr/^sent 1 $/, 'tls_verify false: sent, unverified');
like($tls{untrusted}, qr/^failed 1 .*certificate/i, 'a self-signed certificate not in ca_file fails at once');
like($tls{notls}, qr/^failed 1 the server does not offer STARTTLS/, 'starttls required, server without it: fails');
like($tls{opportunistic}, qr/^sent 1 $/, 'starttls when_offered, server without it: sent in the clear');
like($tls{badpass}, qr/^failed 1 SMTP 535: 535 5\.7\.8/, 'wrong password: 535, permanent');
like($tls{noauth}, qr/^failed 1 SMTP 530: 530 5\.7\.0/, 'no credentials where AUTH is required: 530, permanent');

# ----------------------------------------------------------------------
# Signed unsubscribe links (reminder.link_base_url) go into the header
# ----------------------------------------------------------------------
$node->append_conf('postgresql.conf', "reminder.link_base_url = 'https://links.example.com/l/'\n");
$node->reload;
ok(query_until($node, 'app', "SELECT current_setting('reminder.link_base_url') <> ''"), 'link_base_url set');
sleep 1;
$node->safe_psql('app', q{
	SELECT reminder.send('mail', '{"email": "signed@example.com"}', 'plain', '{}', 'signed-1');
});
ok(query_until($node, 'app', "SELECT status = 'sent' FROM reminder.message WHERE idempotency_key = 'signed-1'"),
	'a message with signed links sent');
my ($signed) = grep { $_->{rcpt_tos}[0] eq 'signed@example.com' } smtp_messages($smtp);
my $lu = inspect_mail($signed->{data})->{headers}{'list-unsubscribe'}[0] // '';
like($lu, qr{^<https://links\.example\.com/l/[A-Za-z0-9_-]+>$}, 'List-Unsubscribe carries the signed link');
my ($token) = $lu =~ m{/l/([A-Za-z0-9_-]+)>};
is($node->safe_psql('app', "SELECT t.action || ':' || (t.message_id = m.id) FROM reminder.token_info('$token') t, reminder.message m WHERE m.idempotency_key = 'signed-1'"),
	'unsubscribe:true', '... whose token verifies as this message\'s unsubscribe link');

stop_server($smtp);
$node->stop;
done_testing();
