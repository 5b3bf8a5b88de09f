# The worker runs as a superuser; a role that may create functions (in
# public, or in a schema named like the worker's role) or write rules must
# never get code of its own run by it, nor change its session:
#  - "$user" and public are not on the worker's search_path: a function
#    shadowing one the worker calls (make_interval with an exact argument
#    type) is never called, whichever schema it is in;
#  - a rule's stop condition (and a row security policy of its table, which
#    the worker meets when it reads the row) calling set_config() through a
#    function changes the worker's search_path only while it is evaluated:
#    a function shadowing now() in public, found only if public came first,
#    is never called by the worker afterwards; a session advisory lock it
#    takes is released;
#  - and the worker goes on delivering.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ReminderTest;

my $node = start_node('hostile');
my $su = $node->safe_psql('postgres', 'SELECT current_user');
$node->safe_psql('postgres', 'CREATE ROLE mallory LOGIN');

# public.calls records who ran mallory's functions; each also tries to make
# her a superuser, which works only when a superuser runs it.
sub calls_table
{
	my ($db) = @_;
	$node->safe_psql($db, q{
		CREATE TABLE public.calls (who text, what text);
		ALTER TABLE public.calls OWNER TO mallory;
		GRANT INSERT ON public.calls TO PUBLIC;
	});
}

sub shadow
{
	my ($schema, $signature, $type, $result) = @_;
	my $name = $signature =~ s/\(.*//r;
	return qq{
		CREATE FUNCTION $schema.$signature RETURNS $type LANGUAGE plpgsql AS \$f\$
		BEGIN
			INSERT INTO public.calls VALUES (current_user, '$name');
			BEGIN
				EXECUTE 'ALTER ROLE mallory SUPERUSER';
			EXCEPTION WHEN insufficient_privilege THEN NULL;
			END;
			RETURN $result;
		END \$f\$;
	};
}

# The extension, after the traps are set: the worker starts with them.
sub install
{
	my ($db) = @_;
	$node->safe_psql($db, q{
		CREATE EXTENSION reminder;
		SELECT reminder.create_template('t', '');
		SELECT reminder.create_channel('log', 'log');
	});
}

sub deliver_one
{
	my ($db) = @_;
	my $id = $node->safe_psql($db, q{SELECT reminder.schedule('log', '{"email": "a@example.com"}', 't')});
	return $node->poll_query_until($db, "SELECT status = 'sent' FROM reminder.message WHERE id = $id");
}

sub not_superuser
{
	return $node->safe_psql('postgres', q{SELECT rolsuper FROM pg_roles WHERE rolname = 'mallory'}) eq 'f';
}

# 1. "$user": a schema named like the worker's role, made by mallory.
$node->safe_psql('postgres', 'CREATE DATABASE upath');
$node->safe_psql('upath', "GRANT CREATE ON DATABASE upath TO mallory");
calls_table('upath');
$node->safe_psql('upath', "SET ROLE mallory; CREATE SCHEMA \"$su\";"
	  . shadow("\"$su\"", 'make_interval(secs integer)', 'interval', 'pg_catalog.make_interval(secs => secs)'));
install('upath');
ok(deliver_one('upath'), 'the worker delivers in a database with a schema named like its role');
is($node->safe_psql('upath', 'SELECT count(*) FROM public.calls'), '0',
	'and never calls the make_interval() in that schema');
ok(not_superuser(), 'which made no one a superuser');

# 2. public: shadowing make_interval(secs => integer) of the claim.
$node->safe_psql('postgres', 'CREATE DATABASE ppath');
$node->safe_psql('ppath', 'GRANT CREATE ON SCHEMA public TO mallory');
calls_table('ppath');
$node->safe_psql('ppath', 'SET ROLE mallory;'
	  . shadow('public', 'make_interval(secs integer)', 'interval', 'pg_catalog.make_interval(secs => secs)'));
install('ppath');
ok(deliver_one('ppath'), 'the worker delivers in a database where public shadows make_interval()');
is($node->safe_psql('ppath', 'SELECT count(*) FROM public.calls'), '0', 'and never calls it');
ok(not_superuser(), 'which made no one a superuser');

# 3. A stop condition and a row security policy that call set_config() and
#    take a session advisory lock, through functions of the table's owner.
$node->safe_psql('postgres', 'CREATE DATABASE setcfg');
calls_table('setcfg');
install('setcfg');
$node->safe_psql('setcfg', q{
	GRANT CREATE ON SCHEMA public TO mallory;
	GRANT reminder_admin TO mallory;
	SET ROLE mallory;
} . shadow('public', 'now()', 'timestamptz', 'pg_catalog.now()') . q{
	CREATE FUNCTION public.grab() RETURNS boolean LANGUAGE plpgsql
		AS $f$ BEGIN PERFORM pg_catalog.pg_advisory_lock(4242); RETURN true; END $f$;
	CREATE FUNCTION public.repath(int) RETURNS boolean LANGUAGE sql STABLE
		AS $f$ SELECT public.grab() AND pg_catalog.set_config('search_path', 'public, pg_catalog', false) IS NULL $f$;
	CREATE TABLE public.lead (id int PRIMARY KEY, email text NOT NULL, offer_sent_at timestamptz NOT NULL);
	ALTER TABLE public.lead ENABLE ROW LEVEL SECURITY;
	ALTER TABLE public.lead FORCE ROW LEVEL SECURITY;
	CREATE POLICY everyone ON public.lead USING (public.repath(id) OR true);
	SELECT reminder.watch('lead', 'follow_up', name => 'followup', column_name => 'offer_sent_at',
		offsets => '{0 seconds, 1 day}', channel => 'log', template => 't', if_past => 'send',
		stop_condition => 'public.repath(id)',
		recipients => '{"to": {"email": {"expr": "email"}}}');
	INSERT INTO public.lead VALUES (1, 'lead@example.com', pg_catalog.now());
});
ok($node->poll_query_until('setcfg', q{
	SELECT status = 'sent' FROM reminder.message WHERE idempotency_key LIKE 'rule:%:1:0:0'}),
	'a follow-up whose stop condition calls set_config() is checked and sent');
my $worker = worker_pid($node, 'setcfg');
ok(deliver_one('setcfg'), 'the worker goes on delivering');
is($node->safe_psql('setcfg', 'SELECT count(*) FROM public.calls'), '0',
	'and never calls the now() in public: its search_path is its own again');
ok(not_superuser(), 'which made no one a superuser');
is($node->safe_psql('setcfg', "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = $worker"),
	'0', 'the advisory lock the stop condition took is not kept by the worker');
is($node->safe_psql('setcfg', q{SELECT count(*) FROM reminder.message WHERE status = 'scheduled'}), '1',
	'the rest of the sequence waits for its day');

$node->stop;
done_testing();
