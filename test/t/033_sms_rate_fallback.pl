# The worker's rate limit and fallback, seen from SMS channels: 20
# messages on an SMS channel limited to 5/s go out one every 200 ms while a
# webhook channel next to it flows at full speed; an SMS the gateway
# refuses for good (Twilio 21211, SMSAPI error 13 in an HTTP 200 answer)
# fails and its fallback email is delivered to the SMTP server.
use strict;
use warnings;
use utf8;

use PostgreSQL::Test::Utils;
use Test::More;

use ChannelTest;
use ReminderTest;

my $node = start_node('sms_rate_fallback');
my $gw = start_provider_sink();
my $smtp = start_smtp_sink();
create_db($node, 'app');
my $url = $gw->{url};

$node->safe_psql('app', qq{
	SELECT reminder.create_channel('mail', 'email',
		jsonb_build_object('url', 'smtp://127.0.0.1:$smtp->{ports}{starttls}', 'from', 'Przypomnienia <noreply\@example.com>',
			'ca_file', '$smtp->{cert}'),
		'{"username": "mailer", "password": "s3cret"}');
	SELECT reminder.create_channel('sms_paced', 'sms',
		'{"provider": "twilio", "account_sid": "ACtest", "from": "+48600000000", "base_url": "$url", "rate_limit": 5}',
		'{"auth_token": "twilio-token"}');
	SELECT reminder.create_channel('hook', 'webhook', '{"url": "$url/gw/hook"}');
	SELECT reminder.create_channel('sms_tw', 'sms',
		'{"provider": "twilio", "account_sid": "ACtest", "from": "+48600000000", "base_url": "$url", "fallback": "mail"}',
		'{"auth_token": "twilio-token"}');
	SELECT reminder.create_channel('sms_sa', 'sms',
		'{"provider": "smsapi", "base_url": "$url", "fallback": "mail"}', '{"token": "smsapi-token"}');
	SELECT reminder.create_template('visit', 'Wizyta jutro o 10:00, {{recipient.name}}.', 'Wizyta jutro');
});

# ----------------------------------------------------------------------
# Rate limit: 5/s on SMS, none on the webhook
# ----------------------------------------------------------------------
$node->safe_psql('app', q{
	SELECT reminder.send('sms_paced', jsonb_build_object('phone', '+4860100' || lpad(g::text, 4, '0'), 'name', 'P' || g),
	                     'visit', '{}', 'paced-' || g) FROM generate_series(1, 20) g;
	SELECT reminder.send('hook', '{}', 'visit', '{}', 'hook-' || g) FROM generate_series(1, 20) g;
});
ok(query_until($node, 'app', "SELECT count(*) = 40 FROM reminder.message WHERE status = 'sent'"),
	'20 paced SMS and 20 webhooks sent');
my ($sms_span, $sms_gap, $hook_span, $hook_done_first) = split /\|/, $node->safe_psql('app', q{
	WITH a AS (
		SELECT m.channel, a.started_at,
		       a.started_at - lag(a.started_at) OVER (PARTITION BY m.channel ORDER BY a.started_at) AS gap
		FROM reminder.attempt a JOIN reminder.message m ON m.id = a.message_id
		WHERE m.channel IN ('sms_paced', 'hook'))
	SELECT extract(epoch FROM max(started_at) FILTER (WHERE channel = 'sms_paced') - min(started_at) FILTER (WHERE channel = 'sms_paced')),
	       extract(epoch FROM min(gap) FILTER (WHERE channel = 'sms_paced')),
	       extract(epoch FROM max(started_at) FILTER (WHERE channel = 'hook') - min(started_at) FILTER (WHERE channel = 'hook')),
	       max(started_at) FILTER (WHERE channel = 'hook') < max(started_at) FILTER (WHERE channel = 'sms_paced')
	FROM a});
cmp_ok($sms_span, '>=', 3.4, "20 SMS at 5/s span about 3.8 s (took $sms_span s)");
cmp_ok($sms_span, '<=', 6, '... not much more');
cmp_ok($sms_gap, '>=', 0.15, "... one every 200 ms, no bursts (smallest gap $sms_gap s)");
cmp_ok($hook_span, '<', 1.5, "the 20 webhooks go out at once (within $hook_span s)");
is($hook_done_first, 't', '... long before the paced SMS are done');
is(scalar(grep { $_->{path} =~ m{/Messages\.json$} && $_->{status} == 201 } sink_requests($gw)), 20,
	'the gateway accepted 20 SMS');

# ----------------------------------------------------------------------
# Fallback: a permanent SMS failure becomes an email
# ----------------------------------------------------------------------
$node->safe_psql('app', q{
	SELECT reminder.send('sms_tw', '{"phone": "+48999000111", "email": "klient@example.com", "name": "Anna"}', 'visit', '{}', 'fb-tw');
	SELECT reminder.send('sms_sa', '{"phone": "+48999000222", "email": "klient2@example.com", "name": "Ola"}', 'visit', '{}', 'fb-sa');
});
ok(query_until($node, 'app', q{
	SELECT count(*) = 2 FROM reminder.message f JOIN reminder.message o ON o.id = f.fallback_of
	WHERE o.idempotency_key IN ('fb-tw', 'fb-sa') AND f.status = 'sent'}),
	'both fallback emails are sent');
my %fb = map { my @f = split /\|/; ($f[0] => [ @f[ 1 .. 4 ] ]) } split /\n/, $node->safe_psql('app', q{
	SELECT o.idempotency_key, o.status, o.last_error, f.channel, f.idempotency_key
	FROM reminder.message o JOIN reminder.message f ON f.fallback_of = o.id
	WHERE o.idempotency_key IN ('fb-tw', 'fb-sa')});
is($fb{'fb-tw'}[0], 'failed', 'Twilio 21211: the SMS failed');
like($fb{'fb-tw'}[1], qr/^Twilio error 21211/, '... with Twilio\'s error');
is($fb{'fb-tw'}[2], 'mail', '... and a message on the fallback channel took over');
is($fb{'fb-sa'}[0], 'failed', 'SMSAPI error 13 in an HTTP 200 answer: the SMS failed');
like($fb{'fb-sa'}[1], qr/^SMSAPI error 13/, '... with SMSAPI\'s error');
is($fb{'fb-sa'}[2], 'mail', '... and fell back to email too');
my ($mail) = grep { $_->{rcpt_tos}[0] eq 'klient@example.com' } smtp_messages($smtp);
ok($mail, 'the SMTP server received the fallback email');
my $parsed = inspect_mail($mail->{data});
is($parsed->{headers}{subject}[0], 'Wizyta jutro', '... the template\'s subject');
is($parsed->{plain}, 'Wizyta jutro o 10:00, Anna.', '... and its text for the same recipient');
is($parsed->{headers}{'message-id'}[0], "<$fb{'fb-tw'}[3]\@example.com>" =~ s/:/%3A/gr,
	'... its Message-ID from the fallback\'s own idempotency key');
ok((grep { $_->{rcpt_tos}[0] eq 'klient2@example.com' } smtp_messages($smtp)), 'the SMSAPI fallback arrived as well');

stop_server($smtp);
stop_server($gw);
$node->stop;
done_testing();
