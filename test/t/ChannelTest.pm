# Helpers for the channel tests (email, SMS, Slack): the SMTP server
# (test/servers/smtp_sink.py) with a certificate made for the run, the provider
# stand-ins (test/servers/provider_sink.py), and reading what they received.  The
# cluster, waiting and the request log format come from ReminderTest.
package ChannelTest;

use strict;
use warnings;

use Exporter 'import';
use IPC::Run;
use JSON::PP;
use MIME::Base64;
use PostgreSQL::Test::Utils;
use Time::HiRes qw(usleep time);

our @EXPORT = qw(start_smtp_sink smtp_events smtp_messages smtp_connections
  inspect_mail start_provider_sink stop_server form_fields);

my $src = $ENV{REMINDER_SRC} // die "REMINDER_SRC is not set";
my $python = '/usr/bin/python3';    # Debian's, with python3-aiosmtpd

sub wait_for_file
{
	my ($file, $what) = @_;
	my $deadline = time + 30;

	until (-s $file)
	{
		die "$what did not start" if time > $deadline;
		usleep(20_000);
	}
}

# The SMTP server, with a self-signed certificate for 127.0.0.1 made now
# by openssl (nothing committed).  Returns { ports => {starttls, smtps,
# plain}, cert, log, handle }; the certificate is also the CA to trust.
sub start_smtp_sink
{
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my $smtp = {
		log => "$dir/smtp.log",
		cert => "$dir/cert.pem",
		key => "$dir/key.pem",
	};

	my ($out, $err) = ('', '');
	IPC::Run::run(
		[ 'openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
			'-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
			'-keyout', $smtp->{key}, '-out', $smtp->{cert} ],
		'>', \$out, '2>', \$err)
	  or die "openssl could not make a certificate: $err";
	chmod 0644, $smtp->{cert};

	open(my $fh, '>', $smtp->{log}) or die;
	close $fh;
	$smtp->{handle} = IPC::Run::start(
		[ $python, "$src/test/servers/smtp_sink.py", $smtp->{log}, "$dir/smtp.ports",
			$smtp->{cert}, $smtp->{key} ],
		'>', "$dir/smtp.out", '2>', "$dir/smtp.err");
	wait_for_file("$dir/smtp.ports", 'SMTP server');
	$smtp->{ports} = decode_json(slurp_file("$dir/smtp.ports"));
	return $smtp;
}

sub stop_server
{
	my ($server) = @_;
	$server->{handle}->kill_kill;
}

# Every event the SMTP server logged: connections and messages.
sub smtp_events
{
	my ($smtp) = @_;
	my @events;

	open(my $fh, '<', $smtp->{log}) or die "cannot read $smtp->{log}: $!";
	while (my $line = <$fh>)
	{
		next unless $line =~ /\n\z/;
		push @events, decode_json($line);
	}
	close $fh;
	return @events;
}

# Messages received, with their raw bytes in {data}.
sub smtp_messages
{
	my ($smtp) = @_;
	my @m = grep { $_->{event} eq 'message' } smtp_events($smtp);
	$_->{data} = decode_base64($_->{data_b64}) for @m;
	return @m;
}

# Connections opened to one of the servers.
sub smtp_connections
{
	my ($smtp, $server) = @_;
	return scalar grep { $_->{event} eq 'connect' && $_->{server} eq $server } smtp_events($smtp);
}

# A received mail as Python's email package (policy.default) reads it.
sub inspect_mail
{
	my ($raw) = @_;
	my ($out, $err) = ('', '');

	IPC::Run::run([ $python, "$src/test/servers/mail_inspect.py" ], '<', \$raw, '>', \$out, '2>', \$err)
	  or die "mail_inspect.py failed: $err";
	return JSON::PP->new->utf8->decode($out);
}

# The provider stand-ins; returns { port, url, log, handle }.  Its log has
# the format sink_requests() of ReminderTest reads.
sub start_provider_sink
{
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my $sink = { log => "$dir/providers.log" };

	open(my $fh, '>', $sink->{log}) or die;
	close $fh;
	$sink->{handle} = IPC::Run::start(
		[ $python, "$src/test/servers/provider_sink.py", $sink->{log}, "$dir/providers.port" ],
		'>', "$dir/providers.out", '2>', "$dir/providers.err");
	wait_for_file("$dir/providers.port", 'provider sink');
	$sink->{port} = slurp_file("$dir/providers.port");
	$sink->{url} = "http://127.0.0.1:$sink->{port}";
	return $sink;
}

# An application/x-www-form-urlencoded body as a hash (UTF-8 decoded).
sub form_fields
{
	my ($body) = @_;
	my %f;

	for my $pair (split /&/, $body)
	{
		my ($k, $v) = map {
			my $s = $_ // '';
			$s =~ tr/+/ /;
			$s =~ s/%([0-9A-Fa-f]{2})/chr(hex($1))/ge;
			utf8::decode($s);
			$s;
		} split /=/, $pair, 2;
		$f{$k} = $v;
	}
	return \%f;
}

1;
