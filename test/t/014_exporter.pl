# The Prometheus metrics of metrics/queries.yaml, as Debian's
# prometheus-postgres-exporter serves them: its /metrics scraped over
# 127.0.0.1 shows the backlog, today's delivery, the workers and the
# cumulative counters with the values the SQL surface has; and every metric
# the Grafana dashboard (metrics/grafana-dashboard.json) charts is there.
use strict;
use warnings;

use HTTP::Tiny;
use IPC::Run;
use JSON::PP;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

use ReminderTest;

my $exporter = '/usr/bin/prometheus-postgres-exporter';
plan skip_all => "$exporter is not installed (scripts/setup installs it)" unless -x $exporter;

my $src = $ENV{REMINDER_SRC};
my $node = start_node('exporter');
my $sink = start_sink();
# The extension comes from template1, so each database has it when its worker
# first looks (CREATE EXTENSION right after CREATE DATABASE races with the
# launcher's first look).
$node->safe_psql('template1', "CREATE EXTENSION reminder; SELECT reminder.create_template('t', '')");
$node->safe_psql('postgres', 'CREATE DATABASE app; CREATE DATABASE shop;');
$node->safe_psql('postgres', 'CREATE DATABASE other TEMPLATE template0');	# without the extension
for my $db (qw(app shop))
{
	$node->safe_psql($db, qq{
		SELECT reminder.create_channel('journal', 'log');
		SELECT reminder.create_channel('down', 'webhook',
			'{"url": "$sink->{url}/status/503", "retry_delay": "0.1", "max_attempts": 2}');
	});
}
# app: 4 sent, 1 failed (after one retry), 3 due tomorrow; shop: 2 due later
$node->safe_psql('app', q{
	SELECT reminder.send('journal', '{}', 't', '{}', 'now-' || g) FROM generate_series(1, 4) g;
	SELECT reminder.send('down', '{}', 't');
	SELECT reminder.schedule('journal', '{}', 't', now() + interval '1 day', '{}', 'later-' || g)
	  FROM generate_series(1, 3) g;
});
$node->safe_psql('shop', q{
	SELECT reminder.schedule('journal', '{}', 't', now() + interval '1 hour', '{}', 'later-' || g)
	  FROM generate_series(1, 2) g;
});
ok(query_until($node, 'app', "SELECT count(*) FILTER (WHERE status = 'sent') = 4 AND count(*) FILTER (WHERE status = 'failed') = 1 FROM reminder.message"),
	'app delivered what was due');

# The exporter's role: reminder_user, no superuser.
$node->safe_psql('postgres', 'CREATE ROLE prometheus LOGIN; GRANT reminder_user TO prometheus;');

my $port = PostgreSQL::Test::Cluster::get_free_port();
my $dir = PostgreSQL::Test::Utils::tempdir();
my $dsn = sprintf('host=%s port=%d user=prometheus dbname=app sslmode=disable', $node->host, $node->port);
my $h = IPC::Run::start(
	[
		$exporter, "--extend.query-path=$src/metrics/queries.yaml",
		"--web.listen-address=127.0.0.1:$port",
		'--auto-discover-databases', '--include-databases=app,shop',
		'--disable-default-metrics', '--disable-settings-metrics', '--log.level=warn'
	],
	'<', \undef, '>', "$dir/exporter.out", '2>', "$dir/exporter.err",
	init => sub { $ENV{DATA_SOURCE_NAME} = $dsn; });

# name{labels} -> value, from Prometheus's text format
sub scrape
{
	my $res = HTTP::Tiny->new(timeout => 10)->get("http://127.0.0.1:$port/metrics");
	return undef unless $res->{success};
	my %m;
	for my $line (split /\n/, $res->{content})
	{
		next if $line =~ /^#/;
		my ($name, $labels, $value) = $line =~ /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/ or next;
		my %l = ($labels // '') =~ /(\w+)="((?:[^"\\]|\\.)*)"/g;
		delete $l{server};
		$m{ $name . '{' . join(',', map { "$_=$l{$_}" } sort keys %l) . '}' } = $value;
	}
	return \%m;
}

my $m;
ok(wait_until(sub { $m = scrape(); $m && exists $m->{'reminder_delivery_sent_total{database=app}'} }, 60),
	'the exporter serves reminder\'s metrics on 127.0.0.1')
  or diag(slurp_file("$dir/exporter.err"));

is($m->{'pg_exporter_last_scrape_error{}'}, '0', 'the scrape had no error');
is((grep { /^pg_exporter_user_queries_load_error\{.*\}$/ && $m->{$_} != 0 } keys %$m), 0,
	'queries.yaml loaded without error');

# reminder.queue, per database
is($m->{'reminder_queue_messages{channel=journal,database=app,status=scheduled}'}, '3',
	'reminder_queue_messages: app has 3 scheduled on journal');
is($m->{'reminder_queue_due_now{channel=journal,database=app,status=scheduled}'}, '0',
	'reminder_queue_due_now: none of them due');
is($m->{'reminder_queue_messages{channel=down,database=app,status=retrying}'}, '0',
	'an empty state reads 0');
is($m->{'reminder_queue_messages{channel=journal,database=shop,status=scheduled}'}, '2',
	'shop\'s backlog is there too, labelled by database');
cmp_ok($m->{'reminder_queue_oldest_due_age_seconds{channel=journal,database=shop,status=scheduled}'}, '<', 0,
	'reminder_queue_oldest_due_age_seconds: negative while the oldest is not yet due');
ok(!(grep { /database=other/ } keys %$m), 'nothing from the database without the extension');

# reminder.stats, today
is($m->{'reminder_stats_sent{channel=journal,database=app}'}, '4', 'reminder_stats_sent: 4 today on journal');
is($m->{'reminder_stats_failed{channel=down,database=app}'}, '1', 'reminder_stats_failed: 1 today on down');
is($m->{'reminder_stats_delivery_rate{channel=down,database=app}'}, '0', 'reminder_stats_delivery_rate of down: 0');
ok(exists $m->{'reminder_stats_latency_p95_seconds{channel=journal,database=app}'}, 'latency percentiles in seconds');

# worker_status()
is($m->{'reminder_worker_up{database=app,sender=1,state=running}'}, '1', 'reminder_worker_up: app\'s worker runs');
is($m->{'reminder_worker_up{database=,sender=,state=launcher}'}, '1', 'and the launcher');
is($m->{'reminder_worker_sent_total{database=app,sender=1,state=running}'}, '4', 'reminder_worker_sent_total: 4');
is($m->{'reminder_worker_retried_total{database=app,sender=1,state=running}'}, '1', 'reminder_worker_retried_total: 1');

# delivery_counters(): read once for the server, not per database
is($m->{'reminder_delivery_sent_total{database=app}'}, '4', 'reminder_delivery_sent_total: 4');
is($m->{'reminder_delivery_failed_total{database=app}'}, '1', 'reminder_delivery_failed_total: 1');
is($m->{'reminder_delivery_retried_total{database=app}'}, '1', 'reminder_delivery_retried_total: 1');
my $reset = $node->safe_psql('app', "SELECT extract(epoch FROM stats_reset) FROM reminder.delivery_counters() WHERE database = 'app'");
cmp_ok(abs($m->{'reminder_delivery_stats_reset_seconds{database=app}'} - $reset), '<', 0.001,
	'reminder_delivery_stats_reset_seconds is stats_reset');

# A worker restart: the worker's counter starts over, the cumulative one not.
my $pid = worker_pid($node, 'app');
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok(query_until($node, 'app', "SELECT count(*) = 1 FROM reminder.worker_status() WHERE database = 'app' AND state = 'running' AND pid <> $pid"),
	'app\'s worker restarted');
$node->safe_psql('app', "SELECT reminder.send('journal', '{}', 't')");
# (a worker publishes its own counters at the start of its next loop)
ok(wait_until(sub { $m = scrape(); $m && ($m->{'reminder_worker_sent_total{database=app,sender=1,state=running}'} // '') eq '1' }, 30),
	'after the restart reminder_worker_sent_total starts again: 1');
is($m->{'reminder_delivery_sent_total{database=app}'}, '5', 'while reminder_delivery_sent_total goes on: 5');

# stats_reset()
$node->safe_psql('app', 'SELECT reminder.stats_reset()');
ok(wait_until(sub { $m = scrape(); $m && ($m->{'reminder_delivery_sent_total{database=app}'} // '') eq '0' }, 30),
	'after reminder.stats_reset() the counter reads 0');
cmp_ok($m->{'reminder_delivery_stats_reset_seconds{database=app}'}, '>', $reset, 'and stats_reset_seconds moved');

# Every metric the dashboard charts is served.
my $dashboard = decode_json(slurp_file("$src/metrics/grafana-dashboard.json"));
my (%used, @stack);
@stack = ($dashboard);
while (@stack)
{
	my $x = pop @stack;
	if (ref $x eq 'HASH')
	{
		$used{$_} = 1 for map { /\b(reminder_[a-z0-9_]+)/g } grep { defined && !ref } ($x->{expr}, $x->{query});
		push @stack, values %$x;
	}
	elsif (ref $x eq 'ARRAY') { push @stack, @$x; }
}
my %served = map { /^([^{]+)/; ($1 => 1) } keys %$m;
ok(scalar(keys %used) >= 10, 'the dashboard charts ' . scalar(keys %used) . ' reminder metrics');
is_deeply([ grep { !$served{$_} } sort keys %used ], [], 'each of them is served');

$h->kill_kill;
stop_sink($sink);
$node->stop;
done_testing();
