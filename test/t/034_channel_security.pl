# What a webhook (and a generic SMS gateway) really puts on the wire, read
# from the raw bytes an HTTP server receives: HTTP Basic credentials, the
# header fields the worker writes exactly once whatever a channel's headers
# say, bodies in UTF-8 from a LATIN2 database - and that nobody who may only
# schedule messages can get a channel's credentials or signature to a host
# of their choosing, nor an administrator by re-pointing the channel.
use strict;
use warnings;

use Digest::SHA qw(hmac_sha256_hex);
use Encode qw(decode);
use JSON::PP;
use MIME::Base64;
use PostgreSQL::Test::Utils;
use Test::More;

use ReminderTest;

my $node = start_node('channel_security');
my $sink = start_sink();        # the channels' endpoints
my $other = start_sink();       # a host the channels never named
create_db($node, 'app');
my ($url, $port, $aurl, $aport) = ($sink->{url}, $sink->{port}, $other->{url}, $other->{port});

$node->safe_psql('app', qq{
	CREATE ROLE app IN ROLE reminder_user;
	CREATE ROLE admin IN ROLE reminder_admin;
	SELECT reminder.create_template('body', '{"text": "{{text}}"}');
});

sub wait_status
{
	my ($key, $status, $db) = @_;
	return query_until($node, $db // 'app',
		"SELECT status = '$status' FROM reminder.message WHERE idempotency_key = '$key'");
}

sub last_error
{
	my ($key) = @_;
	return $node->safe_psql('app', "SELECT last_error FROM reminder.message WHERE idempotency_key = '$key'");
}

sub request_for
{
	my ($s, $key) = @_;
	my ($r) = grep { ($_->{headers}{'Idempotency-Key'} // '') eq $key } sink_requests($s);
	return $r;
}

# The header fields of a request as received: [name, value] in order.
sub raw_fields
{
	my ($r) = @_;
	my @lines = split /\r\n/, decode_base64($r->{head_b64});
	shift @lines;    # the request line
	return map { [ /^([^:]*):[ \t]*(.*?)[ \t]*$/ ] } grep { length } @lines;
}

sub count_field
{
	my ($r, $name) = @_;
	return scalar grep { lc($_->[0]) eq lc($name) } raw_fields($r);
}

# ----------------------------------------------------------------------
# HTTP Basic: the secrets username and password are sent (issue 10 item 7)
# ----------------------------------------------------------------------
$node->safe_psql('app', qq{
	SELECT reminder.create_channel('basic', 'webhook', '{"url": "$url/basic/hook-user/s3cr:et/in"}',
		'{"username": "hook-user", "password": "s3cr:et", "signing_secret": "sig"}');
	SELECT reminder.create_channel('basic_wrong', 'webhook', '{"url": "$url/basic/hook-user/s3cr:et/in"}',
		'{"username": "hook-user", "password": "wrong"}');
	SELECT reminder.send('basic', '{}', 'body', '{"text": "hi"}', 'basic-1');
	SELECT reminder.send('basic_wrong', '{}', 'body', '{"text": "hi"}', 'basic-2');
});
ok(wait_status('basic-1', 'sent'), 'a webhook with username and password is let in by a server that checks them');
my $r = request_for($sink, 'basic-1');
is($r->{headers}{Authorization}, 'Basic ' . encode_base64('hook-user:s3cr:et', ''),
	'... which received them as HTTP Basic credentials');
is(count_field($r, 'Authorization'), 1, '... in one Authorization field');
ok(wait_status('basic-2', 'failed'), 'a wrong password fails');
like(last_error('basic-2'), qr/^HTTP status 401/, '... with the server\'s 401');

# ----------------------------------------------------------------------
# The header fields on the wire (issue 10 item 8)
# ----------------------------------------------------------------------
$node->safe_psql('app', qq{
	SELECT reminder.create_channel('hdr', 'webhook',
		jsonb_build_object('url', '$url/hdr', 'headers', '{"X-Source": "crm", "X-Colon": "a: b", "x-lower": "1"}'::jsonb),
		'{"signing_secret": "s3cret", "bearer_token": "tok"}');
	SELECT reminder.create_channel('gw', 'sms',
		'{"provider": "generic", "url": "$url/gw?to={{to}}", "content_type": "application/json",
		  "body": "{\\"text\\": \\"{{text}}\\"}",
		  "headers": {"Authorization": "Bearer {{secrets.token}}", "X-Ref": "{{data.ref}}"}}',
		'{"token": "gw-token"}');
	SELECT reminder.send('hdr', '{}', 'body', '{"text": "x"}', 'hdr-1');
	SELECT reminder.send('gw', '{"phone": "+48601234567"}', 'body', '{"text": "x", "ref": "r-1"}', 'gw-1');
	SELECT reminder.send('gw', '{"phone": "+48601234567"}', 'body', jsonb_build_object('text', 'x', 'ref', 'a' || chr(127) || 'b'), 'gw-2');
});
ok(wait_status('hdr-1', 'sent') && wait_status('gw-1', 'sent'), 'webhook and generic gateway with their own headers sent');
$r = request_for($sink, 'hdr-1');
my %once = map { $_ => count_field($r, $_) }
  qw(Content-Type Content-Length Host Idempotency-Key User-Agent Authorization X-Reminder-Signature);
is_deeply(\%once, { map { $_ => 1 } keys %once },
	'webhook: Content-Type, Content-Length, Host, Idempotency-Key, User-Agent, Authorization, signature: each exactly once');
is(count_field($r, 'Transfer-Encoding') + count_field($r, 'Expect'), 0, '... no Transfer-Encoding, no Expect');
is_deeply([ sort map { "$_->[0]: $_->[1]" } grep { $_->[0] =~ /^x-(source|colon|lower)$/i } raw_fields($r) ],
	[ 'X-Colon: a: b', 'X-Source: crm', 'x-lower: 1' ], '... the channel\'s headers as given, a colon in a value intact');
is($r->{headers}{'X-Reminder-Signature'}, 'sha256=' . hmac_sha256_hex(decode_base64($r->{body_b64}), 's3cret'),
	'... the signature over the exact body bytes');
$r = request_for($sink, 'gw-1');
is_deeply({ map { $_ => count_field($r, $_) } qw(Content-Type Content-Length Host Idempotency-Key Authorization) },
	{ map { $_ => 1 } qw(Content-Type Content-Length Host Idempotency-Key Authorization) },
	'generic gateway: Content-Type, Content-Length, Host, Idempotency-Key, Authorization each once');
is_deeply([ $r->{headers}{'Content-Type'}, $r->{headers}{Authorization}, $r->{headers}{'X-Ref'} ],
	[ 'application/json', 'Bearer gw-token', 'r-1' ], '... with the rendered values');
ok(wait_status('gw-2', 'failed'), 'a header that would render with a control character fails the message');
like(last_error('gw-2'), qr/renders with a control character/, '... saying why');
ok(!request_for($sink, 'gw-2'), '... and nothing is sent');

# Channels written behind create_channel()'s back (and messages behind
# schedule()'s, which would refuse them) are checked when sent
$node->safe_psql('app', qq{
	INSERT INTO reminder.channel (name, kind, settings) VALUES
		('sneaky', 'webhook', '{"url": "$url/sneaky", "headers": {"Content-Type": "text/plain", "host": "elsewhere"}}'),
		('sneaky_te', 'webhook', '{"url": "$url/sneaky", "headers": {"Transfer-Encoding": "chunked"}}'),
		('sneaky_gw', 'sms', '{"provider": "generic", "url": "$url/sneaky", "body": "x", "headers": {"Content-Length": "0"}}'),
		('sneaky_crlf', 'webhook', '{"url": "$url/sneaky", "headers": {"X-A": "1\\r\\nX-Injected: 1"}}');
	INSERT INTO reminder.message (channel, recipient, template, due_at, next_attempt_at, idempotency_key)
	VALUES ('sneaky', '{}', 'body', now(), now(), 'sneaky-1'),
	       ('sneaky_te', '{}', 'body', now(), now(), 'sneaky-2'),
	       ('sneaky_gw', '{"phone": "+48601234567"}', 'body', now(), now(), 'sneaky-3'),
	       ('sneaky_crlf', '{}', 'body', now(), now(), 'sneaky-4');
});
for my $n (1 .. 4)
{
	ok(wait_status("sneaky-$n", 'failed'), "a stored channel with a forbidden header fails its message ($n)");
}
like(last_error('sneaky-1'), qr/header "(Content-Type|host)" in setting "headers" of channel "sneaky" is set by the worker/,
	'... saying which header');
is(scalar(grep { $_->{path} eq '/sneaky' } sink_requests($sink)), 0, '... and none reaches the server');

# ----------------------------------------------------------------------
# UTF-8 bodies from a LATIN2 database (issue 10 item 9)
# ----------------------------------------------------------------------
$node->safe_psql('postgres',
	"CREATE DATABASE latin2 ENCODING 'LATIN2' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0");
$node->safe_psql('latin2', qq{
	CREATE EXTENSION reminder;
	SELECT reminder.create_template('empty', '');
	SELECT reminder.create_template('body', '{"text": "{{text}}"}');
	SELECT reminder.create_channel('hook', 'webhook', '{"url": "$url/latin2"}', '{"signing_secret": "s3cret"}');
	SELECT reminder.send('hook', jsonb_build_object('name', U&'\\0141ucja'), 'body',
		jsonb_build_object('text', U&'Za\\017C\\00F3\\0142\\0107 g\\0119\\015Bl\\0105 ja\\017A\\0144'), 'latin2-1');
	SELECT reminder.send('hook', jsonb_build_object('name', U&'\\0141ucja'), 'empty',
		jsonb_build_object('city', U&'\\0141\\00F3d\\017A'), 'latin2-2');
});
ok(wait_status('latin2-1', 'sent', 'latin2') && wait_status('latin2-2', 'sent', 'latin2'),
	'webhooks from a LATIN2 database sent');
for my $key ('latin2-1', 'latin2-2')
{
	my $req = request_for($sink, $key);
	my $bytes = decode_base64($req->{body_b64});
	my $text = eval { decode('UTF-8', $bytes, Encode::FB_CROAK | Encode::LEAVE_SRC) };
	ok(defined $text, "$key: the body is valid UTF-8");
	is($req->{headers}{'X-Reminder-Signature'}, 'sha256=' . hmac_sha256_hex($bytes, 's3cret'),
		"$key: ... signed as sent");
	my $json = JSON::PP->new->decode($text // '{}');
	if ($key eq 'latin2-1')
	{
		is($json->{text}, "Za\x{017C}\x{00F3}\x{0142}\x{0107} g\x{0119}\x{015B}l\x{0105} ja\x{017A}\x{0144}",
			"$key: ... and says what the database holds");
	}
	else
	{
		is_deeply([ $json->{recipient}{name}, $json->{data}{city} ], [ "\x{0141}ucja", "\x{0141}\x{00F3}d\x{017A}" ],
			"$key: ... and says what the database holds (default body)");
	}
}

# ----------------------------------------------------------------------
# A recipient's url cannot take the channel's secrets elsewhere (issue 14
# item 1), nor can re-pointing the channel (item 2)
# ----------------------------------------------------------------------
$node->safe_psql('app', qq{
	SELECT reminder.create_channel('hook', 'webhook', '{"url": "$url/hook"}',
		'{"signing_secret": "s3cret", "bearer_token": "tok"}');
	SELECT reminder.create_channel('hook_basic', 'webhook', '{"url": "$url/hook"}',
		'{"username": "u", "password": "basic-secret"}');
	SELECT reminder.create_channel('partner', 'webhook',
		'{"url": "$url/hook", "recipient_hosts": ["127.0.0.1:$aport"]}', '{"signing_secret": "partner-secret"}');
});

my @steal = (
	"$aurl/steal",
	"http://localhost:$aport/steal",
	"http://localhost:$port/steal",
	"http://127.0.0.1:$port\@127.0.0.1:$aport/steal",
	"http://127.0.0.1:$port:\@127.0.0.1:$aport/steal",
	"http://[::ffff:127.0.0.1]:$aport/steal",
	"http://2130706433:$aport/steal",
	"http://0x7f.1:$aport/steal",
	"http://127.0.0.1.:$port/steal",
	"https://127.0.0.1:$port/steal",
);
for my $channel ('hook', 'hook_basic')
{
	for my $i (0 .. $#steal)
	{
		my ($ret, $out, $err) = $node->psql('app', qq{
			SET ROLE app;
			SELECT reminder.schedule('$channel', '{"url": "$steal[$i]"}', 'body', now(), '{"text": "forged"}', 'steal-$channel-$i')});
		like($err, qr/ERROR:  recipient "url" (points to .* which is not a destination of channel "$channel"|must not hold a user name or password)/,
			"reminder_user cannot schedule $channel to $steal[$i]");
	}
}
# another path at the channel's own origin is fine, and gets the secrets
$node->safe_psql('app', qq{
	SET ROLE app;
	SELECT reminder.schedule('hook', '{"url": "http://127.0.0.1:$port/elsewhere"}', 'body', now(), '{"text": "x"}', 'own-1');
	SELECT reminder.schedule('partner', '{"url": "http://127.0.0.1:$aport/p"}', 'body', now(), '{"text": "x"}', 'partner-1');
});
ok(wait_status('own-1', 'sent'), 'a recipient url at the channel\'s own origin is used');
is(request_for($sink, 'own-1')->{path}, '/elsewhere', '... with its path');
ok(wait_status('partner-1', 'sent'), 'a recipient url at a host of recipient_hosts is used');
$r = request_for($other, 'partner-1');
is($r->{headers}{'X-Reminder-Signature'}, 'sha256=' . hmac_sha256_hex(decode_base64($r->{body_b64}), 'partner-secret'),
	'... and signed, as its administrator chose');

# A message whose url was accepted before (here: written directly, as one
# scheduled before the channel moved) is checked again when it is sent
$node->safe_psql('app', qq{
	INSERT INTO reminder.message (channel, recipient, template, data, due_at, next_attempt_at, idempotency_key)
	VALUES ('hook', '{"url": "$aurl/steal"}', 'body', '{"text": "x"}', now(), now(), 'old-1'),
	       ('hook_basic', '{"url": "$aurl/steal"}', 'body', '{"text": "x"}', now(), now(), 'old-2');
});
ok(wait_status('old-1', 'failed') && wait_status('old-2', 'failed'), 'a stored message with a foreign url fails when sent');
like(last_error('old-1'), qr/not a destination of channel "hook"/, '... saying why');

# Re-pointing a channel without its secrets is refused
my ($ret, $out, $err) = $node->psql('app', qq{
	SET ROLE admin;
	SELECT reminder.create_channel('hook', 'webhook', '{"url": "$aurl/steal"}')});
like($err, qr/cannot keep its stored secrets when it connects somewhere new/, 'reminder_admin cannot re-point a channel and keep its secrets');
($ret, $out, $err) = $node->psql('app', qq{
	SET ROLE admin;
	SELECT reminder.create_channel('hook', 'webhook', '{"url": "$url/hook", "recipient_hosts": ["127.0.0.1:$aport"]}')});
like($err, qr/cannot keep its stored secrets/, '... nor add a host recipients may name');
$node->safe_psql('app', qq{
	SET ROLE app;
	SELECT reminder.schedule('hook', '{}', 'body', now(), '{"text": "x"}', 'after-1');
});
ok(wait_status('after-1', 'sent'), 'the channel still delivers where it did');
ok(request_for($sink, 'after-1'), '... to its own URL');

my @leaked = grep {
	my $auth = $_->{headers}{Authorization} // '';
	my $sig = $_->{headers}{'X-Reminder-Signature'} // '';
	$auth =~ /tok|\Q${\ encode_base64('u:basic-secret', '')}\E/
	  || $sig eq 'sha256=' . hmac_sha256_hex(decode_base64($_->{body_b64}), 's3cret')
} sink_requests($other);
is(scalar(@leaked), 0, 'the other host never received a channel\'s token, password or signature');
is(scalar(sink_requests($other)), 1, '... and got only the request its administrator allowed');

stop_sink($sink);
stop_sink($other);
$node->stop;
done_testing();
