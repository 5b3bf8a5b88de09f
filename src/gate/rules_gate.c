/*-------------------------------------------------------------------------
 *
 * rules_gate.c
 *	  Send-time checks of rule-made messages, run by the worker through
 *	  gate_check() inside the transaction that claims them.
 *
 *	  rule_stop_check: a rule's stop condition ("replied_at IS NOT NULL")
 *	  is evaluated against the current row, as the table owner.  If it
 *	  holds, the message is suppressed and the rest of its sequence (the
 *	  rule's other pending messages for the row) cancelled.  If the row is
 *	  gone, the message is cancelled.
 *
 *	  survey_throttle_check: a survey goes to an email address or phone
 *	  number at most once per the rule's throttle interval.  Surveys let
 *	  through are logged (as SHA-256 of the address) in reminder.survey_log
 *	  within the claim transaction, so a second survey in the same batch is
 *	  caught too; a throttled survey is suppressed, never retried.  Several
 *	  senders of a database may check surveys to the same address at once:
 *	  each address is locked (survey_address_lock) until the claim commits,
 *	  and a sender that finds it locked defers its survey for a second, by
 *	  when the other's survey_log row is visible.
 *
 *	  rule_message_data: messages of rules that follow their row (before,
 *	  after, follow_up) store no copy of it; the row they are rendered with
 *	  is read when they are sent, as the table owner.  The worker reads a
 *	  whole batch's rows at once first (rule_prefetch_rows); what it read
 *	  is kept until the end of the transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/typcache.h"

#include "reminder.h"
#include "gate/gate.h"
#include "outbox/outbox.h"
#include "rules/rules.h"
#include "util/spi_util.h"
#include "util/util.h"

static SPIPlanPtr cancel_rest_plan = NULL;
static SPIPlanPtr throttle_plan = NULL;
static SPIPlanPtr survey_log_plan = NULL;

static void
set_result(GateResult *result, GateVerdict verdict, const char *reason)
{
	result->verdict = verdict;
	result->reason = pstrdup(reason);
}

/*
 * The row key's values as parameters of the key columns' types: the text
 * itself for one column, a JSON array of texts for several.
 */
static bool
key_values(CompiledRule *rule, const char *source_key, Datum *values)
{
	for (int i = 0; i < rule->nkeys; i++)
	{
		Oid			typinput;
		Oid			typioparam;
		char	   *text;

		if (rule->nkeys == 1)
			text = pstrdup(source_key);
		else
		{
			Jsonb	   *arr = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(source_key)));
			JsonbValue *v;

			if (!JB_ROOT_IS_ARRAY(arr) || (v = getIthJsonbValueFromContainer(&arr->root, i)) == NULL ||
				v->type != jbvString)
				return false;
			text = pnstrdup(v->val.string.val, v->val.string.len);
		}
		getTypeInputInfo(rule->key_types[i], &typinput, &typioparam);
		values[i] = OidInputFunctionCall(typinput, text, typioparam, -1);
	}
	return true;
}

static char *qualified_operator(Oid opno);
static char *key_equality(CompiledRule *rule, int i);

/*
 * SELECT (expression) FROM the table WHERE key = $1 ..., run as the owner:
 * a rule's stop condition or a recipient's "unless" read against its row.
 * Expressions are stored schema-qualified and the key's equality operators
 * are named by schema: nothing depends on search_path.
 */
static SPIPlanPtr
row_expr_plan(CompiledRule *rule, const char *expr_text)
{
	StringInfoData sql;
	char		relkind = get_rel_relkind(rule->relid);

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT (%s) FROM %s%s WHERE ", expr_text,
					 relkind == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ", rule->source_table);
	for (int i = 0; i < rule->nkeys; i++)
		appendStringInfo(&sql, "%s%s %s $%d", i > 0 ? " AND " : "",
						 quote_identifier(get_attname(rule->relid, rule->key_columns[i], false)),
						 key_equality(rule, i), i + 1);
	return spi_prepare_kept(sql.data, rule->nkeys, rule->key_types, 0);
}

/* The stop condition's plan, made once per compiled rule. */
static SPIPlanPtr
gate_plan(CompiledRule *rule)
{
	if (rule->gate_plan == NULL)
		rule->gate_plan = row_expr_plan(rule, rule->stop_text);
	return rule->gate_plan;
}

/* The rest of the sequence: the rule's other pending messages for the row. */
static void
cancel_rest(const GateMessage *msg)
{
	Datum		values[4];
	char	   *prefix = rule_key_prefix(msg->rule_id, msg->source_key);

	if (cancel_rest_plan == NULL)
	{
		Oid			types[4] = {INT8OID, TEXTOID, TEXTOID, INT8OID};

		/* the row's messages are a range of keys: see rule_key_prefix() */
		cancel_rest_plan = spi_prepare_kept("UPDATE reminder.message SET status = 'cancelled', next_attempt_at = NULL, "
								"last_error = '" RULE_CANCEL_PREFIX "stop condition holds', "
								"updated_at = now() "
								"WHERE idempotency_key >= $2 AND idempotency_key < $3 "
								"AND rule_id = $1 AND id <> $4 "
								"AND status IN ('scheduled', 'retrying')",
								4, types, 0);
	}
	values[0] = Int64GetDatum(msg->rule_id);
	values[1] = CStringGetTextDatum(prefix);
	values[2] = CStringGetTextDatum(rule_key_prefix_end(prefix));
	values[3] = Int64GetDatum(msg->id);
	spi_plan_expect(cancel_rest_plan, values, NULL, false, 0, SPI_OK_UPDATE);
}

void
rule_stop_check(const GateMessage *msg, GateResult *result)
{
	CompiledRule *rule;
	OwnerContext ext;
	OwnerContext scope;

	if (msg->rule_id == 0 || msg->source_key == NULL)
		return;

	owner_enter(&ext, extension_owner(), OWNER_PIN_SEARCH_PATH);
	rule = rule_cache_get(msg->rule_id, true);
	if (rule == NULL || rule->stop < 0)
	{
		if (rule)
			rule_cache_release(rule);
		owner_leave(&ext);
		return;
	}

	PG_TRY();
	{
		Datum	   *keys = palloc(sizeof(Datum) * rule->nkeys);
		bool		isnull;
		int			rc;

		SPI_connect();
		if (!key_values(rule, msg->source_key, keys))
			set_result(result, GATE_CANCEL, RULE_CANCEL_PREFIX "row key not understood");
		else
		{
			/* the owner's code: nothing it does to the session survives */
			owner_enter(&scope, rule->owner, OWNER_RESTRICTED);
			rc = SPI_execute_plan(gate_plan(rule), keys, NULL, true, 1);
			owner_leave(&scope);
			spi_expect(rc, SPI_OK_SELECT, "the stop condition of a rule");

			if (SPI_processed == 0)
				set_result(result, GATE_CANCEL, RULE_CANCEL_PREFIX "row no longer exists");
			else if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) &&
					 !isnull)
			{
				set_result(result, GATE_SUPPRESS, RULE_CANCEL_PREFIX "stop condition holds");
				if (!msg->dry_run)
					cancel_rest(msg);
			}
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		rule_cache_release(rule);
		owner_leave(&ext);
	}
	PG_END_TRY();
}

#define SURVEY_LOCK_FIELD4	3	/* advisory lock tags of SQL use 1 and 2 */
#define SURVEY_LOCK_DEFER_MS	1000

/*
 * Lock an address hash for the rest of the transaction, without waiting:
 * an advisory lock of this database whose key is the hash's first eight
 * bytes, in a key space of its own (field4), so no lock an application
 * takes with pg_advisory_lock() gets in the way.  Returns whether it got it.
 */
static bool
survey_address_lock(bytea *hash)
{
	LOCKTAG		tag;
	uint32		key1 = 0;
	uint32		key2 = 0;
	const char *p = VARDATA_ANY(hash);
	int			len = VARSIZE_ANY_EXHDR(hash);

	memcpy(&key1, p, Min(len, 4));
	if (len > 4)
		memcpy(&key2, p + 4, Min(len - 4, 4));
	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, key1, key2, SURVEY_LOCK_FIELD4);
	return LockAcquire(&tag, ExclusiveLock, false, true) != LOCKACQUIRE_NOT_AVAIL;
}

void
survey_throttle_check(const GateMessage *msg, GateResult *result)
{
	CompiledRule *rule;
	OwnerContext ext;
	Datum		hashes[2];
	int			n = 0;
	char	   *email;
	char	   *phone;

	if (msg->rule_id == 0)
		return;
	email = jsonb_get_text(msg->recipient, "email");
	phone = jsonb_get_text(msg->recipient, "phone");
	if (email)
		hashes[n++] = PointerGetDatum(address_hash("email", email));
	if (phone)
		hashes[n++] = PointerGetDatum(address_hash("phone", phone));

	owner_enter(&ext, extension_owner(), OWNER_PIN_SEARCH_PATH);
	rule = rule_cache_get(msg->rule_id, true);
	if (rule == NULL || rule->kind != RULE_SURVEY || n == 0)
	{
		if (rule)
			rule_cache_release(rule);
		owner_leave(&ext);
		return;
	}

	/* another sender is deciding a survey to this person: after it */
	for (int i = 0; i < n && !msg->dry_run; i++)
		if (!survey_address_lock(DatumGetByteaPP(hashes[i])))
		{
			rule_cache_release(rule);
			owner_leave(&ext);
			result->verdict = GATE_DEFER;
			result->defer_until = TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
															  SURVEY_LOCK_DEFER_MS);
			result->reason = pstrdup("survey throttle: another worker is sending a survey to this address");
			return;
		}

	PG_TRY();
	{
		Datum		values[4];

		SPI_connect();
		if (throttle_plan == NULL)
		{
			Oid			types[3] = {BYTEAARRAYOID, INTERVALOID, INT8OID};

			throttle_plan = spi_prepare_kept("SELECT 1 FROM reminder.survey_log l "
								 "JOIN reminder.messages m ON m.id = l.message_id "
								 "WHERE l.address_hash = ANY ($1) AND l.surveyed_at > now() - $2 "
								 "AND l.message_id <> $3 "
								 "AND m.status NOT IN ('failed', 'cancelled', 'suppressed') LIMIT 1",
								 3, types, 0);
		}
		if (survey_log_plan == NULL)
		{
			Oid			types[3] = {BYTEAARRAYOID, INT8OID, INT8OID};

			survey_log_plan = spi_prepare_kept("INSERT INTO reminder.survey_log (address_hash, message_id, rule_id) "
								   "SELECT h, $2, $3 FROM unnest($1) h "
								   "ON CONFLICT DO NOTHING",
								   3, types, 0);
		}
		values[0] = PointerGetDatum(construct_array(hashes, n, BYTEAOID, -1, false, TYPALIGN_INT));
		values[1] = IntervalPGetDatum(&rule->throttle);
		values[2] = Int64GetDatum(msg->id);
		spi_plan_expect(throttle_plan, values, NULL, false, 1, SPI_OK_SELECT);
		if (SPI_processed > 0)
		{
			char	   *iv = DatumGetCString(DirectFunctionCall1(interval_out,
																 IntervalPGetDatum(&rule->throttle)));

			set_result(result, GATE_SUPPRESS,
					   psprintf("survey throttle: surveyed within %s", iv));
		}
		else if (!msg->dry_run)
		{
			values[1] = Int64GetDatum(msg->id);
			values[2] = Int64GetDatum(msg->rule_id);
			spi_plan_expect(survey_log_plan, values, NULL, false, 0, SPI_OK_INSERT);
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		rule_cache_release(rule);
		owner_leave(&ext);
	}
	PG_END_TRY();
}

/* ----------------------------------------------------------------
 *		The row at send time
 * ----------------------------------------------------------------
 */

/* A row read for a message: by rule and row key, for this transaction. */
typedef struct RowEntry
{
	char	   *key;			/* "<rule id> <row key>"; hash key */
	Jsonb	   *data;			/* {"row": ...}, or NULL: no such row */
} RowEntry;

static HTAB *row_cache = NULL;
static MemoryContext row_cache_cxt = NULL;
static MemoryContextCallback row_cache_gone;

static uint32
row_entry_hash(const void *key, Size keysize)
{
	const char *s = *(char *const *) key;

	return hash_bytes((const unsigned char *) s, strlen(s));
}

static int
row_entry_match(const void *a, const void *b, Size keysize)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static void
forget_rows_read(void *arg)
{
	row_cache = NULL;
	row_cache_cxt = NULL;
}

/* A table of rows read, in cxt. */
static HTAB *
row_table(MemoryContext cxt)
{
	HASHCTL		ctl;

	ctl.keysize = sizeof(char *);
	ctl.entrysize = sizeof(RowEntry);
	ctl.hash = row_entry_hash;
	ctl.match = row_entry_match;
	ctl.hcxt = cxt;
	return hash_create("reminder rows read", 64, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

/*
 * The rows the worker read ahead in this transaction; they go with its
 * memory.  Only the claim reads ahead, which changes no business rows
 * before it renders.
 */
static HTAB *
rows_read_ahead(void)
{
	if (row_cache != NULL)
		return row_cache;
	row_cache_cxt = AllocSetContextCreate(TopTransactionContext, "reminder rows read ahead",
										  ALLOCSET_DEFAULT_SIZES);
	row_cache = row_table(row_cache_cxt);
	row_cache_gone.func = forget_rows_read;
	row_cache_gone.arg = NULL;
	MemoryContextRegisterResetCallback(row_cache_cxt, &row_cache_gone);
	return row_cache;
}

static char *
row_entry_key(int64 rule_id, const char *source_key)
{
	return psprintf(INT64_FORMAT " %s", rule_id, source_key);
}

/* Whether a message's data lacks the row it is rendered with. */
static bool
needs_row(int64 rule_id, const char *source_key, Jsonb *data)
{
	return rule_id != 0 && source_key != NULL && jsonb_get(data, "row") == NULL;
}

/* OPERATOR(schema.name) */
static char *
qualified_operator(Oid opno)
{
	HeapTuple	tup = SearchSysCache1(OPEROID, ObjectIdGetDatum(opno));
	Form_pg_operator op;
	char	   *result;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for operator %u", opno);
	op = (Form_pg_operator) GETSTRUCT(tup);
	result = psprintf("OPERATOR(%s.%s)", quote_identifier(get_namespace_name(op->oprnamespace)),
					  NameStr(op->oprname));
	ReleaseSysCache(tup);
	return result;
}

/* The equality operator of key column i, named by schema. */
static char *
key_equality(CompiledRule *rule, int i)
{
	TypeCacheEntry *tc = lookup_type_cache(rule->key_types[i], TYPECACHE_EQ_OPR);

	if (!OidIsValid(tc->eq_opr))
		elog(ERROR, "no equality operator for type %s", format_type_be(rule->key_types[i]));
	return qualified_operator(tc->eq_opr);
}

/*
 * SELECT k.n, to_jsonb(t) FROM ROWS FROM (unnest($1), ...) WITH ORDINALITY
 * AS k(...) JOIN the table t ON its key columns equal k's: the rows with the given
 * keys, each with the position of its key.  The equality operators are
 * named by schema: the search_path is pg_catalog.
 */
static SPIPlanPtr
rows_plan(CompiledRule *rule)
{
	StringInfoData sql;
	Oid		   *types = palloc(sizeof(Oid) * rule->nkeys);
	char		relkind = get_rel_relkind(rule->relid);

	if (rule->rows_plan)
		return rule->rows_plan;

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT k.n, pg_catalog.to_jsonb(t) FROM ROWS FROM (");
	for (int i = 0; i < rule->nkeys; i++)
	{
		types[i] = get_array_type(rule->key_types[i]);
		if (!OidIsValid(types[i]))
			ereport(ERROR,
					(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
					 errmsg("key column type %s of rule \"%s\" has no array type",
							format_type_be(rule->key_types[i]), rule->name)));
		appendStringInfo(&sql, "%spg_catalog.unnest($%d)", i > 0 ? ", " : "", i + 1);
	}
	appendStringInfoString(&sql, ") WITH ORDINALITY AS k(");
	for (int i = 0; i < rule->nkeys; i++)
		appendStringInfo(&sql, "k%d, ", i);
	appendStringInfo(&sql, "n) JOIN %s%s AS t ON ",
					 relkind == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ", rule->source_table);
	for (int i = 0; i < rule->nkeys; i++)
		appendStringInfo(&sql, "%st.%s %s k.k%d", i > 0 ? " AND " : "",
						 quote_identifier(get_attname(rule->relid, rule->key_columns[i], false)),
						 key_equality(rule, i), i);
	rule->rows_plan = spi_prepare_kept(sql.data, rule->nkeys, types, 0);
	return rule->rows_plan;
}

/*
 * Read the rows of rule with the given keys as the table owner, into cache
 * (allocated in cache_cxt): each key gets {"row": <its row>}, or NULL when
 * no row has it (or the key cannot be read back).  Timestamps in the row
 * are written in the rule's time zone and dates and intervals in fixed
 * styles, so that the data does not depend on which session reads it.
 * Needs SPI.
 */
static void
fetch_rows(CompiledRule *rule, int n, char **keys, HTAB *cache, MemoryContext cache_cxt)
{
	MemoryContext cxt = CurrentMemoryContext;
	Datum	  **cols = palloc(sizeof(Datum *) * rule->nkeys);
	int		   *pos = palloc(sizeof(int) * Max(n, 1));
	bool	   *read = palloc0(sizeof(bool) * Max(n, 1));
	Datum	   *args = palloc(sizeof(Datum) * rule->nkeys);
	Datum	   *values = palloc(sizeof(Datum) * rule->nkeys);
	int			m = 0;
	OwnerContext scope;
	int			level;
	int			rc;
	JsonbValue	k;
	JsonbValue	v;

	for (int i = 0; i < rule->nkeys; i++)
		cols[i] = palloc(sizeof(Datum) * Max(n, 1));
	for (int j = 0; j < n; j++)
	{
		char	   *key = row_entry_key(rule->id, keys[j]);

		read[j] = hash_search(cache, &key, HASH_FIND, NULL) != NULL;
		if (read[j] || !key_values(rule, keys[j], values))
			continue;
		for (int i = 0; i < rule->nkeys; i++)
			cols[i][m] = values[i];
		pos[m++] = j;
	}
	for (int i = 0; i < rule->nkeys; i++)
	{
		int16		typlen;
		bool		typbyval;
		char		typalign;

		get_typlenbyvalalign(rule->key_types[i], &typlen, &typbyval, &typalign);
		args[i] = PointerGetDatum(construct_array(cols[i], m, rule->key_types[i],
												  typlen, typbyval, typalign));
	}

	if (m > 0)
	{
		level = NewGUCNestLevel();
		(void) set_config_option("TimeZone", pg_get_timezone_name(rule->tz),
								 PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		rule_pin_styles();
		owner_enter(&scope, rule->owner, OWNER_RESTRICTED);
		rc = SPI_execute_plan(rows_plan(rule), args, NULL, true, 0);
		owner_leave(&scope);
		rule_unpin(level);
		spi_expect(rc, SPI_OK_SELECT, "the rows of a rule");
	}

	/* every key asked for is now read: found or not */
	for (int j = 0; j < n; j++)
	{
		char	   *key;
		bool		found;
		RowEntry   *e;

		if (read[j])
			continue;
		key = MemoryContextStrdup(cache_cxt, row_entry_key(rule->id, keys[j]));
		e = hash_search(cache, &key, HASH_ENTER, &found);
		if (!found)
			e->data = NULL;
	}
	k.type = jbvString;
	k.val.string.val = "row";
	k.val.string.len = 3;
	for (uint64 r = 0; m > 0 && r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		bool		isnull;
		int64		ord = DatumGetInt64(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		Jsonb	   *row = DatumGetJsonbP(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		char	   *key = row_entry_key(rule->id, keys[pos[ord - 1]]);
		RowEntry   *e = hash_search(cache, &key, HASH_FIND, NULL);
		JsonbParseState *state = NULL;
		MemoryContext old;

		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		pushJsonbValue(&state, WJB_KEY, &k);
		v.type = jbvBinary;
		v.val.binary.data = &row->root;
		v.val.binary.len = VARSIZE(row) - VARHDRSZ;
		pushJsonbValue(&state, WJB_VALUE, &v);
		old = MemoryContextSwitchTo(cache_cxt);
		e->data = JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL));
		MemoryContextSwitchTo(old);
	}
	MemoryContextSwitchTo(cxt);
}

/*
 * Read the rows of rule_id with the given keys, as fetch_rows() does,
 * search_path pinned.  Returns false if the rule does not exist.
 */
static bool
fetch_rule_rows(int64 rule_id, int n, char **keys, HTAB *cache, MemoryContext cache_cxt)
{
	CompiledRule *rule;
	OwnerContext ext;

	owner_enter(&ext, extension_owner(), OWNER_PIN_SEARCH_PATH);
	rule = rule_cache_get(rule_id, true);
	if (rule == NULL)
	{
		owner_leave(&ext);
		return false;
	}
	PG_TRY();
	{
		if (rule->live_row)
		{
			SPI_connect();
			fetch_rows(rule, n, keys, cache, cache_cxt);
			SPI_finish();
		}
	}
	PG_FINALLY();
	{
		rule_cache_release(rule);
		owner_leave(&ext);
	}
	PG_END_TRY();
	return true;
}

typedef struct PrefetchRule
{
	int64		rule_id;
	int			nkeys;
	char	  **keys;
} PrefetchRule;

static void
prefetch_rule(void *arg)
{
	PrefetchRule *f = arg;
	HTAB	   *cache = rows_read_ahead();	/* creates row_cache_cxt */

	(void) fetch_rule_rows(f->rule_id, f->nkeys, f->keys, cache, row_cache_cxt);
}

/*
 * Read the rows n claimed messages will be rendered with, one query per
 * rule, and complete data[i] of those whose row was found.  Rows found
 * gone are remembered for rule_message_data() to say so.  A rule whose
 * rows cannot be read (an error) is skipped: each of its messages then
 * tries alone, in rule_message_data(), and fails alone.  Needs SPI.
 */
void
rule_prefetch_rows(int n, const int64 *rule_ids, char *const *source_keys,
				   Jsonb **data)
{
	PrefetchRule fetch;
	ErrorData  *edata;
	bool	   *done = palloc0(sizeof(bool) * Max(n, 1));
	char	  **keys = palloc(sizeof(char *) * Max(n, 1));

	for (int i = 0; i < n; i++)
	{
		int64		rule_id = rule_ids[i];
		int			nkeys = 0;

		if (done[i] || !needs_row(rule_id, source_keys[i], data[i]))
			continue;
		for (int j = i; j < n; j++)
			if (!done[j] && rule_ids[j] == rule_id && needs_row(rule_id, source_keys[j], data[j]))
			{
				keys[nkeys++] = source_keys[j];
				done[j] = true;
			}

		fetch.rule_id = rule_id;
		fetch.nkeys = nkeys;
		fetch.keys = keys;
		edata = subxact_try(prefetch_rule, &fetch);
		if (edata)
			FreeErrorData(edata);
	}

	for (int i = 0; i < n && row_cache != NULL; i++)
	{
		char	   *key;
		RowEntry   *e;

		if (!done[i])
			continue;
		key = row_entry_key(rule_ids[i], source_keys[i]);
		e = hash_search(row_cache, &key, HASH_FIND, NULL);
		if (e != NULL && e->data != NULL)
			data[i] = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(data[i]),
														 JsonbPGetDatum(e->data)));
	}
}

/*
 * The data a rule-made message is rendered and delivered with.  Messages
 * of rules that follow their row carry no copy of it: *data gets the row
 * as it is now, read as the table owner (or as rule_prefetch_rows() read
 * it in this transaction).  Returns false, with *reason, when the message
 * cannot go out because its row or its rule is gone; it is then to be
 * cancelled.  Other messages' data is left as it is.
 */
bool
rule_message_data(int64 rule_id, const char *source_key, Jsonb **data, char **reason)
{
	char	   *key;
	RowEntry   *e;

	if (!needs_row(rule_id, source_key, *data))
		return true;

	key = row_entry_key(rule_id, source_key);
	e = row_cache ? hash_search(row_cache, &key, HASH_FIND, NULL) : NULL;
	if (e == NULL)
	{
		char	   *keys[1] = {unconstify(char *, source_key)};
		HTAB	   *table = row_table(CurrentMemoryContext);

		if (!fetch_rule_rows(rule_id, 1, keys, table, CurrentMemoryContext))
		{
			*reason = pstrdup(RULE_CANCEL_PREFIX "rule no longer exists");
			return false;
		}
		e = hash_search(table, &key, HASH_FIND, NULL);
		if (e == NULL)
			return true;		/* a rule that keeps rows: nothing to add */
	}
	if (e->data == NULL)
	{
		*reason = pstrdup(RULE_CANCEL_PREFIX "row no longer exists");
		return false;
	}
	*data = DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(*data),
											   JsonbPGetDatum(e->data)));
	return true;
}

/*
 * A rule is going away but its pending messages stay (unwatch without
 * cancel_pending): those that would read their row at send time get a copy
 * of it now, since nothing can read it once the rule is gone.  Those whose
 * row is already gone are cancelled.  Runs as the extension owner with
 * search_path pinned, before the rule's row is deleted.
 */
void
rule_keep_rows(int64 rule_id)
{
	Oid			types[2] = {INT8ARRAYOID, JSONBARRAYOID};
	Oid			idtype[1] = {INT8OID};
	Datum		idval[1] = {Int64GetDatum(rule_id)};
	MemoryContext cxt;
	Portal		portal;

	SPI_connect();
	cxt = AllocSetContextCreate(CurrentMemoryContext, "reminder rows kept", ALLOCSET_DEFAULT_SIZES);
	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT id, source_key FROM reminder.message "
									   "WHERE idempotency_key >= 'rule:' || $1 || ':' "
									   "AND idempotency_key < 'rule:' || $1 || ';' "
									   "AND rule_id = $1 AND status IN ('scheduled', 'retrying') "
									   "AND NOT data ? 'row'",
									   1, idtype, idval, NULL, false, 0);
	for (;;)
	{
		MemoryContext old;
		uint64		n;
		int64	   *ids;
		char	  **keys;
		Datum	   *kept_ids;
		Datum	   *kept_data;
		Datum	   *gone;
		int			nkept = 0;
		int			ngone = 0;
		Datum		values[2];
		HTAB	   *table;

		SPI_cursor_fetch(portal, true, 1000);
		n = SPI_processed;
		if (n == 0)
			break;
		old = MemoryContextSwitchTo(cxt);
		ids = palloc(sizeof(int64) * n);
		keys = palloc(sizeof(char *) * n);
		kept_ids = palloc(sizeof(Datum) * n);
		kept_data = palloc(sizeof(Datum) * n);
		gone = palloc(sizeof(Datum) * n);
		for (uint64 i = 0; i < n; i++)
		{
			bool		isnull;

			ids[i] = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
			keys[i] = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
		}
		table = row_table(cxt);
		if (!fetch_rule_rows(rule_id, (int) n, keys, table, cxt))
			elog(ERROR, "rule " INT64_FORMAT " does not exist", rule_id);
		for (uint64 i = 0; i < n; i++)
		{
			char	   *key = row_entry_key(rule_id, keys[i]);
			RowEntry   *e = hash_search(table, &key, HASH_FIND, NULL);

			if (e != NULL && e->data != NULL)
			{
				kept_ids[nkept] = Int64GetDatum(ids[i]);
				kept_data[nkept++] = JsonbPGetDatum(e->data);
			}
			else
				gone[ngone++] = Int64GetDatum(ids[i]);
		}

		values[0] = PointerGetDatum(construct_array(kept_ids, nkept, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		values[1] = PointerGetDatum(construct_array(kept_data, nkept, JSONBOID, -1, false, TYPALIGN_INT));
		MemoryContextSwitchTo(old);
		if (nkept > 0)
			spi_exec_expect("UPDATE reminder.message m SET data = m.data || u.data, updated_at = now() "
							"FROM unnest($1, $2) AS u(id, data) WHERE m.id = u.id",
							2, types, values, NULL, false, 0, SPI_OK_UPDATE);
		values[0] = PointerGetDatum(construct_array(gone, ngone, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
		if (ngone > 0)
			spi_exec_expect("UPDATE reminder.message SET status = 'cancelled', next_attempt_at = NULL, "
							"last_error = '" RULE_CANCEL_PREFIX "row no longer exists', updated_at = now() "
							"WHERE id = ANY ($1) AND status IN ('scheduled', 'retrying')",
							1, types, values, NULL, false, 0, SPI_OK_UPDATE);
		MemoryContextReset(cxt);
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(cxt);
	SPI_finish();
}

/* ----------------------------------------------------------------
 *		"unless": escalation on a missing event
 * ----------------------------------------------------------------
 */

static SPIPlanPtr unless_event_plan = NULL;
static SPIPlanPtr unless_cancel_plan = NULL;
static SPIPlanPtr event_message_plan = NULL;

/*
 * The recipient of the rule a message key names: rule:<rule>:<row key>:
 * <recipient>:<step>..., or NULL.
 */
RuleRecipient *
rule_key_recipient(CompiledRule *rule, const char *source_key, const char *key)
{
	char	   *prefix = rule_key_prefix(rule->id, source_key);
	size_t		len = strlen(prefix);
	int			index = 0;
	const char *p;

	if (key == NULL || strncmp(key, prefix, len) != 0)
		return NULL;
	for (p = key + len; *p >= '0' && *p <= '9' && index < 1000; p++)
		index = index * 10 + (*p - '0');
	if (p == key + len || *p != ':' || index >= list_length(rule->recipients))
		return NULL;
	return list_nth(rule->recipients, index);
}

/* SELECT (unless) FROM the table WHERE key = $1 ..., as the owner. */
static SPIPlanPtr
unless_plan(CompiledRule *rule, RuleRecipient *r)
{
	if (r->unless_plan == NULL)
		r->unless_plan = row_expr_plan(rule, r->unless_text);
	return r->unless_plan;
}

static Datum
text_list_array(List *list)
{
	Datum	   *elems = palloc(sizeof(Datum) * Max(list_length(list), 1));
	ListCell   *lc;

	foreach(lc, list)
		elems[foreach_current_index(lc)] = CStringGetTextDatum(lfirst(lc));
	return PointerGetDatum(construct_array(elems, list_length(list), TEXTOID, -1, false, TYPALIGN_INT));
}

/*
 * An event of one of the kinds on a message of the rule for the row (to a
 * recipient of the role, if given): "<kind>" event recorded on message <id>,
 * or NULL.
 */
static char *
unless_event_found(const GateMessage *msg, RuleUnlessEvent *ue)
{
	char	   *prefix = rule_key_prefix(msg->rule_id, msg->source_key);
	Datum		values[5];
	char		nulls[5] = {' ', ' ', ' ', ' ', ' '};
	bool		isnull;

	if (unless_event_plan == NULL)
	{
		Oid			types[5] = {INT8OID, TEXTOID, TEXTOID, TEXTARRAYOID, TEXTOID};

		/* the row's messages are a range of keys: see rule_key_prefix() */
		unless_event_plan = spi_prepare_kept("SELECT e.kind, m.id FROM reminder.messages m "
											 "JOIN reminder.event e ON e.message_id = m.id "
											 "WHERE m.idempotency_key >= $2 AND m.idempotency_key < $3 "
											 "AND m.rule_id = $1 AND e.kind = ANY ($4) "
											 "AND ($5::text IS NULL OR m.recipient->>'role' = $5) "
											 "ORDER BY e.occurred_at, e.id LIMIT 1",
											 5, types, 0);
	}
	values[0] = Int64GetDatum(msg->rule_id);
	values[1] = CStringGetTextDatum(prefix);
	values[2] = CStringGetTextDatum(rule_key_prefix_end(prefix));
	values[3] = text_list_array(ue->kinds);
	values[4] = ue->role ? CStringGetTextDatum(ue->role) : (Datum) 0;
	nulls[4] = ue->role ? ' ' : 'n';
	spi_plan_expect(unless_event_plan, values, nulls, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return NULL;
	return psprintf("unless: \"%s\" event recorded on message " INT64_FORMAT,
					SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1),
					DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull)));
}

/*
 * A recipient's "unless": the message is suppressed when one of its events
 * was recorded on a message of the rule for the row, or its condition holds
 * for the current row; cancelled when the row is gone.
 */
void
rule_unless_check(const GateMessage *msg, GateResult *result)
{
	CompiledRule *rule;
	OwnerContext ext;
	OwnerContext scope;

	if (msg->rule_id == 0 || msg->source_key == NULL)
		return;

	owner_enter(&ext, extension_owner(), OWNER_PIN_SEARCH_PATH);
	rule = rule_cache_get(msg->rule_id, true);
	if (rule == NULL)
	{
		owner_leave(&ext);
		return;
	}

	PG_TRY();
	{
		RuleRecipient *r = rule_key_recipient(rule, msg->source_key, msg->idempotency_key);
		ListCell   *lc;
		char	   *found = NULL;

		SPI_connect();
		if (r != NULL)
		{
			foreach(lc, r->unless_events)
				if ((found = unless_event_found(msg, lfirst(lc))) != NULL)
					break;
		}
		if (found)
			set_result(result, GATE_SUPPRESS, found);
		else if (r != NULL && r->unless >= 0)
		{
			Datum	   *keys = palloc(sizeof(Datum) * rule->nkeys);
			bool		isnull;
			int			rc;

			if (!key_values(rule, msg->source_key, keys))
				set_result(result, GATE_CANCEL, RULE_CANCEL_PREFIX "row key not understood");
			else
			{
				/* the owner's code: nothing it does to the session survives */
				owner_enter(&scope, rule->owner, OWNER_RESTRICTED);
				rc = SPI_execute_plan(unless_plan(rule, r), keys, NULL, true, 1);
				owner_leave(&scope);
				spi_expect(rc, SPI_OK_SELECT, "the \"unless\" of a rule");
				if (SPI_processed == 0)
					set_result(result, GATE_CANCEL, RULE_CANCEL_PREFIX "row no longer exists");
				else if (DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) &&
						 !isnull)
					set_result(result, GATE_SUPPRESS, "unless: condition holds");
			}
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		rule_cache_release(rule);
		owner_leave(&ext);
	}
	PG_END_TRY();
}

/*
 * An event was recorded on message_id: the pending messages of its rule for
 * its row that the event makes unnecessary ("unless": {"event": kind}) are
 * cancelled now, for good (the reason does not start with "rule: ", so a
 * later write of the row does not bring them back).  Returns how many.
 * Call with SPI connected, as the extension owner.
 */
int64
rule_event_recorded(int64 message_id, const char *kind)
{
	Datum		values[5];
	bool		isnull;
	int64		rule_id;
	char	   *source_key;
	char	   *role;
	CompiledRule *rule;
	int			level;
	int64		cancelled = 0;

	if (event_message_plan == NULL)
	{
		Oid			types[1] = {INT8OID};

		event_message_plan = spi_prepare_kept("SELECT rule_id, source_key, recipient->>'role' "
											  "FROM reminder.message WHERE id = $1 AND rule_id IS NOT NULL "
											  "AND source_key IS NOT NULL",
											  1, types, 0);
	}
	values[0] = Int64GetDatum(message_id);
	spi_plan_expect(event_message_plan, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed == 0)
		return 0;
	rule_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	source_key = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	role = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);

	level = rule_pin_search_path();
	rule = rule_cache_get(rule_id, true);
	if (rule == NULL)
	{
		rule_unpin(level);
		return 0;
	}
	PG_TRY();
	{
		char	   *prefix = rule_key_prefix(rule_id, source_key);
		ListCell   *lc;

		if (unless_cancel_plan == NULL)
		{
			Oid			types[5] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, INT8OID};

			unless_cancel_plan = spi_prepare_kept("UPDATE reminder.message SET status = 'cancelled', "
												  "next_attempt_at = NULL, last_error = $4, updated_at = now() "
												  "WHERE idempotency_key >= $2 AND idempotency_key < $3 "
												  "AND rule_id = $1 AND id <> $5 "
												  "AND status IN ('scheduled', 'retrying')",
												  5, types, 0);
		}
		foreach(lc, rule->recipients)
		{
			RuleRecipient *r = lfirst(lc);
			ListCell   *le;
			bool		match = false;
			char	   *lo;
			char	   *hi;

			foreach(le, r->unless_events)
			{
				RuleUnlessEvent *ue = lfirst(le);
				ListCell   *lk;

				if (ue->role && (role == NULL || strcmp(ue->role, role) != 0))
					continue;
				foreach(lk, ue->kinds)
					match |= strcmp(lfirst(lk), kind) == 0;
			}
			if (!match)
				continue;

			/* the recipient's messages: keys starting <prefix><index>: */
			lo = psprintf("%s%d:", prefix, r->index);
			hi = psprintf("%s%d;", prefix, r->index);
			values[0] = Int64GetDatum(rule_id);
			values[1] = CStringGetTextDatum(lo);
			values[2] = CStringGetTextDatum(hi);
			values[3] = CStringGetTextDatum(psprintf("unless: \"%s\" event recorded on message " INT64_FORMAT,
													 kind, message_id));
			values[4] = Int64GetDatum(message_id);
			spi_plan_expect(unless_cancel_plan, values, NULL, false, 0, SPI_OK_UPDATE);
			cancelled += SPI_processed;
		}
	}
	PG_FINALLY();
	{
		rule_cache_release(rule);
	}
	PG_END_TRY();
	rule_unpin(level);
	return cancelled;
}

/* ----------------------------------------------------------------
 *		The next occurrence of a recurring rule
 * ----------------------------------------------------------------
 */

/*
 * SELECT start column, (condition), (stop condition) FROM the table WHERE
 * key = $1 ..., as the owner: what the next occurrence depends on.
 */
static SPIPlanPtr
next_plan(CompiledRule *rule)
{
	StringInfoData sql;
	char		relkind = get_rel_relkind(rule->relid);

	if (rule->next_plan)
		return rule->next_plan;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s, (%s), (%s) FROM %s%s WHERE ",
					 quote_identifier(get_attname(rule->relid, rule->column, false)),
					 rule->condition_text ? rule->condition_text : "true",
					 rule->stop_text ? rule->stop_text : "false",
					 relkind == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ", rule->source_table);
	for (int i = 0; i < rule->nkeys; i++)
		appendStringInfo(&sql, "%s%s %s $%d", i > 0 ? " AND " : "",
						 quote_identifier(get_attname(rule->relid, rule->key_columns[i], false)),
						 key_equality(rule, i), i + 1);
	rule->next_plan = spi_prepare_kept(sql.data, rule->nkeys, rule->key_types, 0);
	return rule->next_plan;
}

static const char *
priority_name(int16 priority)
{
	return priority > 0 ? "high" : priority < 0 ? "low" : "normal";
}

typedef struct NextOccurrence
{
	const GateMessage *msg;
	CompiledRule *rule;
} NextOccurrence;

/*
 * Schedule the occurrence after msg's, for the same recipient, channel and
 * template, unless the row is gone, its condition no longer holds or its
 * stop condition does.  The message is keyed like msg with the next
 * occurrence's time instead, so scheduling it twice (a retry, a replay)
 * makes one message.  Runs as the extension owner, SPI connected.
 */
static void
schedule_next(void *arg)
{
	NextOccurrence *no = arg;
	const GateMessage *msg = no->msg;
	CompiledRule *rule = no->rule;
	Datum	   *keys = palloc(sizeof(Datum) * rule->nkeys);
	OwnerContext scope;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	TimestampTz dtstart;
	TimestampTz next;
	TimestampTz now = GetCurrentTimestamp();
	char	   *key;
	char	   *colon;
	ScheduleRequest req = {0};
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(msg->id)};
	int			rc;

	if (!key_values(rule, msg->source_key, keys))
		return;
	owner_enter(&scope, rule->owner, OWNER_RESTRICTED);
	rc = SPI_execute_plan(next_plan(rule), keys, NULL, true, 1);
	owner_leave(&scope);
	spi_expect(rc, SPI_OK_SELECT, "the row of a rule");
	if (SPI_processed == 0)
		return;					/* the row is gone */
	tup = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	d = SPI_getbinval(tup, desc, 1, &isnull);
	if (isnull || !rule_anchor_time(rule, d, &dtstart))
		return;
	d = SPI_getbinval(tup, desc, 2, &isnull);
	if (isnull || !DatumGetBool(d))
		return;					/* the condition does not hold */
	d = SPI_getbinval(tup, desc, 3, &isnull);
	if (!isnull && DatumGetBool(d))
		return;					/* the stop condition holds */

	/* missed occurrences (the worker was down) are not sent late */
	if (!rrule_next(rule->rrule, dtstart, rule->tz,
					rule->business_days ? rule->calendar : NULL,
					Max(now, msg->due_at), false, &next))
		return;					/* the series is over */

	spi_exec_expect("SELECT idempotency_key FROM reminder.message WHERE id = $1",
					1, types, values, NULL, true, 1, SPI_OK_SELECT);
	if (SPI_processed != 1)
		elog(ERROR, "could not read message " INT64_FORMAT, msg->id);
	key = TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	colon = strrchr(key, ':');
	if (colon == NULL || strncmp(key, "rule:", 5) != 0 ||
		strlen(colon + 1) != 16 || colon[9] != 'T' || colon[16] != 'Z')
		return;					/* not an occurrence the rule made */
	colon[1] = '\0';

	req.channel = msg->channel->name;
	req.recipient = msg->recipient;
	req.template_name = msg->template_name;
	req.due_at = next;
	req.data = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum("{}")));
	req.check_data = msg->data;
	req.idempotency_key = psprintf("%s%s", key, rrule_instant_key(next));
	req.rule_id = rule->id;
	req.source_table = rule->source_table;
	req.source_key = msg->source_key;
	req.priority = priority_name(rule->priority);
	req.category = rule->category;
	(void) schedule_message(&req);
}

/*
 * When the worker takes a message of a recurring rule (to send it, or to
 * suppress it for an opt-out), the rule's next occurrence is scheduled in
 * the same transaction: one occurrence ahead at a time.  Nothing follows a
 * message the stop condition suppressed, one cancelled, or one deferred
 * (it comes back).  A next occurrence that cannot be scheduled (its
 * channel or template is gone, the row lacks a variable the template
 * requires) ends the series with a warning, without failing this one.
 */
void
rule_recurring_next(const GateMessage *msg, const GateResult *result)
{
	CompiledRule *rule;
	OwnerContext ext;
	NextOccurrence no;
	ErrorData  *edata = NULL;
	char	   *name;

	if (msg->dry_run || msg->rule_id == 0 || msg->source_key == NULL || msg->channel == NULL)
		return;
	if (result->verdict != GATE_SEND &&
		!(result->verdict == GATE_SUPPRESS && result->reason &&
		  strncmp(result->reason, RULE_CANCEL_PREFIX, strlen(RULE_CANCEL_PREFIX)) != 0))
		return;

	owner_enter(&ext, extension_owner(), OWNER_PIN_SEARCH_PATH);
	rule = rule_cache_get(msg->rule_id, true);
	if (rule == NULL || rule->kind != RULE_RECURRING || rule->rrule == NULL)
	{
		if (rule)
			rule_cache_release(rule);
		owner_leave(&ext);
		return;
	}

	name = pstrdup(rule->name);
	PG_TRY();
	{
		no.msg = msg;
		no.rule = rule;
		SPI_connect();
		edata = subxact_try(schedule_next, &no);
		SPI_finish();
	}
	PG_FINALLY();
	{
		rule_cache_release(rule);
		owner_leave(&ext);
	}
	PG_END_TRY();

	if (edata)
	{
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("reminder: the next occurrence of rule \"%s\" after message " INT64_FORMAT " could not be scheduled: %s",
						name, msg->id, edata->message)));
		FreeErrorData(edata);
	}
}
