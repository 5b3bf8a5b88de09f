# SMS through stand-ins for Twilio and SMSAPI.pl (test/servers/provider_sink.py)
# that check requests as the services do and answer in their shapes, and
# through a templated generic gateway: the exact requests, provider ids
# stored, errors classified (SMSAPI's HTTP-200 errors included), segments
# counted as the provider counts them, phone numbers normalised (and
# refused) at schedule time.
use strict;
use warnings;
use utf8;

use Digest::SHA qw(sha256_hex);
use Encode;
use JSON::PP;
use MIME::Base64;
use PostgreSQL::Test::Utils;
use Test::More;

use ChannelTest;
use ReminderTest;

my $node = start_node('sms');
my $gw = start_provider_sink();
create_db($node, 'app');
my $url = $gw->{url};

my $retry = '"max_attempts": 3, "retry_delay": "200ms", "retry_max_delay": "400ms"';
$node->safe_psql('app', qq{
	SELECT reminder.create_channel('tw', 'sms',
		'{"provider": "twilio", "account_sid": "ACtest", "from": "+48600000000", "base_url": "$url", $retry}',
		'{"auth_token": "twilio-token"}');
	SELECT reminder.create_channel('tw_service', 'sms',
		'{"provider": "twilio", "account_sid": "ACtest", "messaging_service_sid": "MGtest", "base_url": "$url/"}',
		'{"auth_token": "twilio-token"}');
	SELECT reminder.create_channel('tw_badauth', 'sms',
		'{"provider": "twilio", "account_sid": "ACtest", "from": "+48600000000", "base_url": "$url"}',
		'{"auth_token": "wrong"}');
	SELECT reminder.create_channel('sa', 'sms',
		'{"provider": "smsapi", "from": "Info", "default_country_code": "48", "base_url": "$url", "timeout": "1s", $retry}',
		'{"token": "smsapi-token"}');
	SELECT reminder.create_channel('sa_badtoken', 'sms',
		'{"provider": "smsapi", "from": "Info", "base_url": "$url"}', '{"token": "wrong"}');
	SELECT reminder.create_channel('sa_ascii', 'sms',
		'{"provider": "smsapi", "base_url": "$url", "unicode": "transliterate"}', '{"token": "smsapi-token"}');
	SELECT reminder.create_template('reminder', 'Przypomnienie: spotkanie o 15:00 — Łódź, żółć. {{note}}');
	SELECT reminder.create_template('raw', '{{{text}}}');
});

# ----------------------------------------------------------------------
# Phone numbers at schedule time
# ----------------------------------------------------------------------
$node->safe_psql('app', q{
	SELECT reminder.schedule('sa', jsonb_build_object('phone', p), 'reminder', now() + interval '1 day', '{}', 'phone-' || n)
	FROM unnest(ARRAY['601 234 567', '0601-234-567', '+48 (601) 234 567', '0048601234567', '+1 415 555 2671'])
	     WITH ORDINALITY AS u(p, n)});
is($node->safe_psql('app', q{
	SELECT string_agg(recipient->>'phone', ' ' ORDER BY idempotency_key) FROM reminder.message
	WHERE idempotency_key LIKE 'phone-%'}),
	'+48601234567 +48601234567 +48601234567 +48601234567 +14155552671',
	'numbers are normalised to E.164, +48 added to national ones');
my ($ret, $out, $err) = $node->psql('app',
	q{SELECT reminder.schedule('sa', '{"phone": "12-34"}', 'reminder', now() + interval '1 day')});
like($err, qr/ERROR:  invalid phone number "12-34" in recipient "phone"/, 'a number too short is refused');
($ret, $out, $err) = $node->psql('app',
	q{SELECT reminder.schedule('tw', '{"phone": "601 234 567"}', 'reminder', now() + interval '1 day')});
like($err, qr/no country code and no default country code/, 'a national number without a default country code is refused');
($ret, $out, $err) = $node->psql('app',
	q{SELECT reminder.schedule('sa', '{"phone": "601 234 567 ext. 5"}', 'reminder', now() + interval '1 day')});
like($err, qr/invalid phone number/, 'letters in a number are refused');
$node->safe_psql('app', "DELETE FROM reminder.message");

# ----------------------------------------------------------------------
# Twilio
# ----------------------------------------------------------------------
my $gsm_long = ('x' x 159) . '€';    # 161 septets: 2 segments
$node->safe_psql('app', qq{
	SELECT reminder.send('tw', '{"phone": "+48 601 234 567"}', 'reminder', '{"note": "a & b = c"}', 'tw-ok');
	SELECT reminder.send('tw', '{"phone": "+48601234568"}', 'raw', '{"text": "$gsm_long"}', 'tw-gsm');
	SELECT reminder.send('tw', '{"phone": "+48601234569"}', 'raw',
		jsonb_build_object('text', repeat('Zażółć gęślą jaźń. ', 5)), 'tw-ucs');
	SELECT reminder.send('tw_service', '{"phone": "+48601234570"}', 'reminder', '{}', 'tw-service');
	SELECT reminder.send('tw', '{"phone": "+48999000111"}', 'reminder', '{}', 'tw-invalid');
	SELECT reminder.send('tw', '{"phone": "+48610000111"}', 'reminder', '{}', 'tw-unsubscribed');
	SELECT reminder.send('tw', '{"phone": "+48429000111"}', 'reminder', '{}', 'tw-429');
	SELECT reminder.send('tw', '{"phone": "+48503000111"}', 'reminder', '{}', 'tw-503');
	SELECT reminder.send('tw_badauth', '{"phone": "+48601234571"}', 'reminder', '{}', 'tw-auth');
});
ok(query_until($node, 'app',
		"SELECT count(*) = 9 FROM reminder.message WHERE idempotency_key LIKE 'tw-%' AND status IN ('sent', 'failed')"),
	'the Twilio messages are settled');

my @tw = grep { $_->{path} =~ m{^/2010-04-01/} } sink_requests($gw);
my ($ok) = grep { form_fields($_->{body})->{To} eq '+48601234567' } @tw;
is($ok->{method}, 'POST', 'Twilio: POST');
is($ok->{path}, '/2010-04-01/Accounts/ACtest/Messages.json', '... to /2010-04-01/Accounts/{AccountSid}/Messages.json');
is($ok->{headers}{Authorization}, 'Basic ' . encode_base64('ACtest:twilio-token', ''),
	'... HTTP Basic with AccountSid and auth token');
like($ok->{headers}{'Content-Type'}, qr{^application/x-www-form-urlencoded}, '... a form');
is($ok->{headers}{'Idempotency-Key'}, 'tw-ok', '... with the Idempotency-Key header');
is_deeply(form_fields($ok->{body}),
	{ To => '+48601234567', From => '+48600000000', Body => 'Przypomnienie: spotkanie o 15:00 — Łódź, żółć. a & b = c' },
	'... fields To, From, Body (the rendered text, UTF-8)');
my ($svc) = grep { form_fields($_->{body})->{To} eq '+48601234570' } @tw;
is_deeply([ sort keys %{ form_fields($svc->{body}) } ], [qw(Body MessagingServiceSid To)],
	'a channel with messaging_service_sid sends MessagingServiceSid, no From');
is(form_fields($svc->{body})->{MessagingServiceSid}, 'MGtest', '... the service\'s SID');

my %tw = map { my @f = split /\|/; ($f[0] => { status => $f[1], attempts => $f[2], id => $f[3], segments => $f[4], error => $f[5] }) }
  split /\n/, $node->safe_psql('app', q{
	SELECT idempotency_key, status, attempts, coalesce(provider_message_id, ''), coalesce(sms_segments::text, ''),
	       coalesce(last_error, '')
	FROM reminder.message WHERE idempotency_key LIKE 'tw-%'});
my %answer = map { my $r = eval { decode_json($_->{response}) } // {}; ($r->{to} // '' => $r) }
  grep { $_->{status} == 201 } @tw;
is($tw{'tw-ok'}{status}, 'sent', 'sent');
is($tw{'tw-ok'}{id}, $answer{'+48601234567'}{sid}, '... the sid Twilio returned is the provider message id');
like($tw{'tw-ok'}{id}, qr/^SM[0-9a-f]{32}$/, '... (read past the echoed body, beyond the attempt excerpt)');
for my $k ([ 'tw-ok', '+48601234567', 1 ], [ 'tw-gsm', '+48601234568', 2 ], [ 'tw-ucs', '+48601234569', 2 ])
{
	is($tw{ $k->[0] }{segments}, $answer{ $k->[1] }{num_segments},
		"$k->[0]: sms_segments $tw{$k->[0]}{segments} as Twilio counts them");
	is($tw{ $k->[0] }{segments}, $k->[2], "... $k->[2]");
}
is($node->safe_psql('app', q{SELECT encoding || ' ' || units || ' ' || segments FROM reminder.sms_segments(repeat('x', 159) || '€')}),
	'GSM-7 161 2', 'reminder.sms_segments(): the euro sign takes two septets');
is("$tw{'tw-invalid'}{status}/$tw{'tw-invalid'}{attempts}", 'failed/1', '21211 invalid number: failed at once');
like($tw{'tw-invalid'}{error}, qr/^Twilio error 21211 \(HTTP 400\): The 'To' number \+48999000111 is not a valid phone number\./,
	'... with Twilio\'s code and message');
is("$tw{'tw-unsubscribed'}{status}/$tw{'tw-unsubscribed'}{attempts}", 'failed/1', '21610 unsubscribed: failed at once');
is("$tw{'tw-auth'}{status}/$tw{'tw-auth'}{attempts}", 'failed/1', '20003 authentication: failed at once');
like($tw{'tw-auth'}{error}, qr/^Twilio error 20003 \(HTTP 401\): Authenticate/, '... with the code');
is("$tw{'tw-429'}{status}/$tw{'tw-429'}{attempts}", 'sent/2', '429 (20429): retried, then sent');
is("$tw{'tw-503'}{status}/$tw{'tw-503'}{attempts}", 'sent/2', '503: retried, then sent');
is($node->safe_psql('app', q{
	SELECT string_agg(a.outcome || ':' || a.http_status, ',' ORDER BY a.attempt)
	FROM reminder.attempt a JOIN reminder.message m ON m.id = a.message_id WHERE m.idempotency_key = 'tw-429'}),
	'transient:429,sent:201', '... the attempts tell the story');
is($node->safe_psql('app', "SELECT sms_segments IS NULL FROM reminder.message WHERE idempotency_key = 'tw-invalid'"),
	't', 'no segments recorded for a message not sent');

# ----------------------------------------------------------------------
# SMSAPI.pl
# ----------------------------------------------------------------------
$node->safe_psql('app', q{
	SELECT reminder.send('sa', '{"phone": "601 234 567"}', 'reminder', '{"note": "ok"}', 'sa-ok');
	SELECT reminder.send('sa', '{"phone": "601 234 572"}', 'reminder', '{}', 'plainkey42');
	SELECT reminder.send('sa', '{"phone": "999 000 111"}', 'reminder', '{}', 'sa-invalid');
	SELECT reminder.send('sa', '{"phone": "201 000 111"}', 'reminder', '{}', 'sa-201');
	SELECT reminder.send('sa', '{"phone": "777 000 111"}', 'reminder', '{}', 'sa-late');
	SELECT reminder.send('sa_badtoken', '{"phone": "+48601234573"}', 'reminder', '{}', 'sa-auth');
	SELECT reminder.send('sa_ascii', '{"phone": "+48601234574"}', 'reminder', '{"note": "„Cytat” – koniec…"}', 'sa-ascii');
});
ok(query_until($node, 'app',
		"SELECT count(*) = 7 FROM reminder.message WHERE (idempotency_key LIKE 'sa-%' OR idempotency_key = 'plainkey42') AND status IN ('sent', 'failed')"),
	'the SMSAPI messages are settled');
my @sa = grep { $_->{path} eq '/sms.do' } sink_requests($gw);
my ($sok) = grep { form_fields($_->{body})->{to} eq '48601234567' } @sa;
is($sok->{method}, 'POST', 'SMSAPI: POST /sms.do');
is($sok->{headers}{Authorization}, 'Bearer smsapi-token', '... Authorization: Bearer token');
is_deeply(form_fields($sok->{body}), {
		to => '48601234567', message => 'Przypomnienie: spotkanie o 15:00 — Łódź, żółć. ok', from => 'Info',
		encoding => 'utf-8', format => 'json', idx => sha256_hex('sa-ok'), check_idx => '1' },
	'... fields to (no "+"), message, from, encoding, format, idx, check_idx');
my ($skey) = grep { form_fields($_->{body})->{to} eq '48601234572' } @sa;
is(form_fields($skey->{body})->{idx}, 'plainkey42', 'a key of lower-case letters and digits is the idx itself; others are hashed');

my %sa = map { my @f = split /\|/; ($f[0] => { status => $f[1], attempts => $f[2], id => $f[3], segments => $f[4], error => $f[5] }) }
  split /\n/, $node->safe_psql('app', q{
	SELECT idempotency_key, status, attempts, coalesce(provider_message_id, ''), coalesce(sms_segments::text, ''),
	       coalesce(last_error, '')
	FROM reminder.message WHERE idempotency_key LIKE 'sa-%'});
my ($sanswer) = map { decode_json($_->{response}) } ($sok);
is($sa{'sa-ok'}{id}, $sanswer->{list}[0]{id}, 'list[0].id is the provider message id');
is($sa{'sa-ok'}{segments}, $sanswer->{list}[0]{parts}, '... sms_segments as SMSAPI counts parts');
is("$sa{'sa-invalid'}{status}/$sa{'sa-invalid'}{attempts}", 'failed/1',
	'error 13 in an HTTP 200 answer: failed at once');
like($sa{'sa-invalid'}{error}, qr/^SMSAPI error 13: No correct phone numbers/, '... with the code and message');
is($node->safe_psql('app', q{
	SELECT a.http_status || ' ' || a.outcome FROM reminder.attempt a JOIN reminder.message m ON m.id = a.message_id
	WHERE m.idempotency_key = 'sa-invalid'}), '200 permanent', '... though the HTTP status was 200');
is("$sa{'sa-201'}{status}/$sa{'sa-201'}{attempts}", 'sent/2', 'error 201 (internal): retried, then sent');
is("$sa{'sa-auth'}{status}/$sa{'sa-auth'}{attempts}", 'failed/1', 'error 101 (authorization): failed at once');
is("$sa{'sa-late'}{status}/$sa{'sa-late'}{attempts}", 'sent/2',
	'an answer lost to the timeout: retried with the same idx, SMSAPI says 53, so it was sent');
like($sa{'sa-late'}{error}, qr/^SMSAPI error 53: already sent with this idx/, '... which last_error notes');
is(scalar(grep { form_fields($_->{body})->{to} eq '48777000111' } @sa), 2, '... after exactly two requests');
my ($ascii) = grep { form_fields($_->{body})->{to} eq '48601234574' } @sa;
is(form_fields($ascii->{body})->{message}, 'Przypomnienie: spotkanie o 15:00 - Lodz, zolc. "Cytat" - koniec...',
	'"unicode": "transliterate" sends GSM-7 text');
is($sa{'sa-ascii'}{segments}, '1', '... one segment');

# ----------------------------------------------------------------------
# A generic gateway: method, URL, headers and body are templates
# ----------------------------------------------------------------------
$node->safe_psql('app', qq{
	SELECT reminder.create_channel('gw_json', 'sms', jsonb_build_object(
		'provider', 'generic',
		'url', '$url/gw/{{secrets.account}}/send?to={{to}}&text={{text}}',
		'content_type', 'application/json',
		'body', '{"to": "{{to}}", "text": "{{text}}", "segments": {{message.segments}}, "ref": "{{data.ref}}"}',
		'headers', '{"Authorization": "Bearer {{secrets.token}}", "X-Ref": "{{data.ref}}"}'::jsonb,
		'id_field', 'result.id', 'max_attempts', 2, 'retry_delay', '200ms'),
		'{"account": "acc 1/2", "token": "gw-token"}');
	SELECT reminder.create_channel('gw_form', 'sms', jsonb_build_object(
		'provider', 'generic', 'url', '$url/gw/form', 'body', 'number={{to_digits}}&msg={{text}}&from={{from}}',
		'from', 'Firma'), '{}');
	SELECT reminder.create_channel('gw_get', 'sms', jsonb_build_object(
		'provider', 'generic', 'method', 'GET', 'url', '$url/gw/get?to={{to}}&msg={{text}}'), '{}');
	SELECT reminder.create_channel('gw_500', 'sms', jsonb_build_object(
		'provider', 'generic', 'url', '$url/gw/fail500', 'body', 'x={{text}}', 'max_attempts', 2, 'retry_delay', '200ms'), '{}');
	SELECT reminder.create_channel('gw_400', 'sms', jsonb_build_object(
		'provider', 'generic', 'url', '$url/gw/fail400', 'body', 'x={{text}}'), '{}');
});
my $text = qq{Łódź "cytat" & 50% = pół/całość?\nnowa linia};
$node->safe_psql('app', q{
	SELECT reminder.send('gw_json', '{"phone": "+48601234567"}', 'raw',
		jsonb_build_object('text', E'Łódź "cytat" & 50% = pół/całość?\nnowa linia', 'ref', 'R-1'), 'gw-json');
	SELECT reminder.send('gw_form', '{"phone": "+48601234567"}', 'raw',
		jsonb_build_object('text', E'Łódź "cytat" & 50% = pół/całość?\nnowa linia'), 'gw-form');
	SELECT reminder.send('gw_get', '{"phone": "+48601234567"}', 'raw',
		jsonb_build_object('text', E'Łódź "cytat" & 50% = pół/całość?\nnowa linia'), 'gw-get');
	SELECT reminder.send('gw_json', '{"phone": "+48601234567"}', 'raw',
		jsonb_build_object('text', 'x', 'ref', E'R-2\r\nX-Injected: 1'), 'gw-inject');
	SELECT reminder.send('gw_500', '{"phone": "+48601234567"}', 'raw', '{"text": "x"}', 'gw-500');
	SELECT reminder.send('gw_400', '{"phone": "+48601234567"}', 'raw', '{"text": "x"}', 'gw-400');
});
ok(query_until($node, 'app',
		"SELECT count(*) = 6 FROM reminder.message WHERE idempotency_key LIKE 'gw-%' AND status IN ('sent', 'failed')"),
	'the generic gateway messages are settled');
my @g = grep { $_->{path} =~ m{^/gw/} } sink_requests($gw);
my ($json) = grep { $_->{path} =~ m{^/gw/acc} } @g;
my ($path, $query) = split /\?/, $json->{path}, 2;
is($path, '/gw/acc%201%2F2/send', 'URL: a secret in the path, percent-encoded');
is_deeply(form_fields($query), { to => '+48601234567', text => $text }, 'URL: query values percent-encoded, decoding to the text');
is_deeply(decode_json(Encode::encode('UTF-8', $json->{body})), { to => '+48601234567', text => $text, segments => 1, ref => 'R-1' },
	'JSON body: values JSON-escaped (quotes, newline), message.segments a number');
is($json->{headers}{Authorization}, 'Bearer gw-token', 'headers: a secret interpolated');
is($json->{headers}{'X-Ref'}, 'R-1', '... and message data');
is($json->{headers}{'Content-Type'}, 'application/json', '... Content-Type from content_type');
is($json->{headers}{'Idempotency-Key'}, 'gw-json', '... and the Idempotency-Key');
my ($form) = grep { $_->{path} eq '/gw/form' } @g;
is_deeply(form_fields($form->{body}), { number => '48601234567', msg => $text, from => 'Firma' },
	'form body (the default content_type): values form-encoded, & and = kept inside them');
my ($get) = grep { $_->{path} =~ m{^/gw/get} } @g;
is($get->{method}, 'GET', 'method GET');
is_deeply(form_fields((split /\?/, $get->{path}, 2)[1]), { to => '+48601234567', msg => $text }, '... parameters in the URL, no body');
is($get->{body}, '', '... and an empty body');
ok(!exists $get->{headers}{'Content-Type'}, '... so no Content-Type');
my %gs = map { my @f = split /\|/; ($f[0] => "$f[1]/$f[2]/$f[3]") } split /\n/, $node->safe_psql('app', q{
	SELECT idempotency_key, status, attempts, coalesce(provider_message_id, last_error, '')
	FROM reminder.message WHERE idempotency_key LIKE 'gw-%'});
like($gs{'gw-json'}, qr{^sent/1/G\d+$}, 'id_field picks the provider id out of the answer');
like($gs{'gw-inject'}, qr{^failed/1/a header of channel "gw_json" renders with a line break}, 'a line break a value puts into a header fails the message');
ok(!grep({ ($_->{headers}{'X-Injected'} // '') ne '' } @g), '... and nothing is sent');
like($gs{'gw-500'}, qr{^failed/2/gave up after 2 attempts: HTTP status 500}, '500: retried, then failed');
like($gs{'gw-400'}, qr{^failed/1/HTTP status 400}, '400: failed at once');

# ----------------------------------------------------------------------
# Delivery reports: with signed links on, each request names a callback
# URL whose token records the provider's report as an event
# ----------------------------------------------------------------------
$node->append_conf('postgresql.conf', "reminder.link_base_url = 'https://links.example.com/l/'\n");
$node->reload;
ok(query_until($node, 'app', "SELECT current_setting('reminder.link_base_url') <> ''"), 'link_base_url set');
sleep 1;
$node->safe_psql('app', q{
	SELECT reminder.send('tw', '{"phone": "+48601234599"}', 'reminder', '{"note": "cb"}', 'cb-tw');
	SELECT reminder.send('sa', '{"phone": "+48601234598"}', 'reminder', '{"note": "cb"}', 'cb-sa');
});
ok(query_until($node, 'app',
		"SELECT count(*) = 2 FROM reminder.message WHERE idempotency_key LIKE 'cb-%' AND status = 'sent'"),
	'messages with callback links sent');
my ($cbtw) = grep { $_->{path} =~ m{^/2010-04-01/} && form_fields($_->{body})->{To} eq '+48601234599' } sink_requests($gw);
my ($cbsa) = grep { $_->{path} eq '/sms.do' && form_fields($_->{body})->{to} eq '48601234598' } sink_requests($gw);
my %cb = (tw => form_fields($cbtw->{body})->{StatusCallback}, sa => form_fields($cbsa->{body})->{notify_url});
for my $p (qw(tw sa))
{
	like($cb{$p}, qr{^https://links\.example\.com/l/[A-Za-z0-9_-]+$},
		($p eq 'tw' ? 'Twilio: StatusCallback' : 'SMSAPI: notify_url') . ' is a signed link');
	my ($token) = $cb{$p} =~ m{/l/([A-Za-z0-9_-]+)$};
	is($node->safe_psql('app', "SELECT t.action || ':' || (t.message_id = m.id) FROM reminder.token_info('$token') t, reminder.message m WHERE m.idempotency_key = 'cb-$p'"),
		'callback:true', "... whose token is this message's callback");
	$node->safe_psql('app', "SELECT reminder.record_event('$token', 'delivered', '{\"provider_status\": \"delivered\"}')");
}
is($node->safe_psql('app', q{
	SELECT string_agg(m.idempotency_key || '=' || e.kind, ' ' ORDER BY m.idempotency_key)
	FROM reminder.event e JOIN reminder.message m ON m.id = e.message_id WHERE m.idempotency_key LIKE 'cb-%'}),
	'cb-sa=delivered cb-tw=delivered', 'the reports are recorded as delivered events');

stop_server($gw);
$node->stop;
done_testing();
