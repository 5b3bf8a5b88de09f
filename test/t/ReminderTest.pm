# Shared helpers for the worker's integration tests: a cluster with the
# library preloaded and fast settings, the HTTP sink (test/servers/http_sink.py) on a
# free port of 127.0.0.1, and wait-for helpers that poll with a deadline.
package ReminderTest;

use strict;
use warnings;

use Exporter 'import';
use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep time);

our @EXPORT = qw(start_node create_db start_sink stop_sink sink_requests
  sink_control wait_until query_until worker_pid);

my $src = $ENV{REMINDER_SRC} // die "REMINDER_SRC is not set";

# A started cluster with reminder preloaded.  %opts: init => {...} for
# PostgreSQL::Test::Cluster::init, conf => extra postgresql.conf lines.
sub start_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init(%{ $opts{init} // {} });
	$node->append_conf('postgresql.conf', <<EOC . ($opts{conf} // ''));
shared_preload_libraries = 'reminder'
reminder.poll_interval = 200
reminder.lease_timeout = 10
reminder.connect_timeout = 1000
max_worker_processes = 16
log_line_prefix = '%m [%p] %b %d '
EOC
	$node->start;
	return $node;
}

# A database with the extension and a template "t".
sub create_db
{
	my ($node, $db) = @_;

	$node->safe_psql('postgres', "CREATE DATABASE $db") if $db ne 'postgres';
	$node->safe_psql($db, q{
		CREATE EXTENSION reminder;
		SELECT reminder.create_template('t', '');
	});
}

# Start the sink; returns { port, url, log, handle }.
sub start_sink
{
	my $dir = PostgreSQL::Test::Utils::tempdir();
	my $sink = { log => "$dir/sink.log", portfile => "$dir/sink.port" };
	open(my $fh, '>', $sink->{log}) or die;
	close $fh;

	$sink->{handle} = IPC::Run::start(
		[ '/usr/bin/python3', "$src/test/servers/http_sink.py", $sink->{log}, $sink->{portfile} ],
		'>', "$dir/sink.out", '2>', "$dir/sink.err");
	my $deadline = time + 30;
	until (-s $sink->{portfile})
	{
		die "sink did not start" if time > $deadline;
		usleep(20_000);
	}
	$sink->{port} = slurp_file($sink->{portfile});
	$sink->{url} = "http://127.0.0.1:$sink->{port}";
	return $sink;
}

sub stop_sink
{
	my ($sink) = @_;
	$sink->{handle}->kill_kill;
}

# Every request the sink got so far, decoded.
sub sink_requests
{
	my ($sink) = @_;
	my @r;

	open(my $fh, '<', $sink->{log}) or die "cannot read $sink->{log}: $!";
	while (my $line = <$fh>)
	{
		# a line being written may be incomplete
		next unless $line =~ /\n\z/;
		push @r, decode_json($line);
	}
	close $fh;
	return @r;
}

sub sink_control
{
	my ($sink, $what) = @_;
	my $res = HTTP::Tiny->new->post("$sink->{url}/_control",
		{ content => encode_json($what), headers => { 'Content-Type' => 'application/json' } });
	die "sink control failed: $res->{status}" unless $res->{success};
}

# Poll $cond (a sub) every 50 ms until true or $timeout seconds pass.
sub wait_until
{
	my ($cond, $timeout) = @_;
	my $deadline = time + ($timeout // 60);

	while (time < $deadline)
	{
		return 1 if $cond->();
		usleep(50_000);
	}
	return $cond->();
}

# Poll a query until it returns $expected (default 't').
sub query_until
{
	my ($node, $db, $sql, $expected, $timeout) = @_;
	$expected //= 't';
	return wait_until(
		sub {
			my ($ret, $out) = $node->psql($db, $sql);
			return $ret == 0 && $out eq $expected;
		},
		$timeout);
}

sub worker_pid
{
	my ($node, $db) = @_;
	return $node->safe_psql('postgres',
		"SELECT pid FROM pg_stat_activity WHERE backend_type = 'reminder worker' AND datname = '$db'");
}

1;
