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
 *	  caught too; a throttled survey is suppressed, never retried.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/sha2.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/formatting.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/timestamp.h"

#include "reminder.h"

static SPIPlanPtr cancel_rest_plan = NULL;
static SPIPlanPtr throttle_plan = NULL;
static SPIPlanPtr survey_log_plan = NULL;

static SPIPlanPtr
keep(const char *sql, int nargs, Oid *argtypes)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, argtypes);

	if (plan == NULL || SPI_keepplan(plan) != 0)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	return plan;
}

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

/* SELECT (stop condition) FROM the table WHERE key = $1 ..., as the owner */
static SPIPlanPtr
gate_plan(CompiledRule *rule)
{
	StringInfoData sql;
	char		relkind = get_rel_relkind(rule->relid);

	if (rule->gate_plan)
		return rule->gate_plan;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT (%s) FROM %s%s WHERE ", rule->stop_text,
					 relkind == RELKIND_PARTITIONED_TABLE ? "" : "ONLY ", rule->source_table);
	for (int i = 0; i < rule->nkeys; i++)
		appendStringInfo(&sql, "%s%s = $%d", i > 0 ? " AND " : "",
						 quote_identifier(get_attname(rule->relid, rule->key_columns[i], false)),
						 i + 1);
	rule->gate_plan = keep(sql.data, rule->nkeys, rule->key_types);
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
		cancel_rest_plan = keep("UPDATE reminder.message SET status = 'cancelled', "
								"last_error = '" RULE_CANCEL_PREFIX "stop condition holds', "
								"updated_at = now() "
								"WHERE idempotency_key >= $2 AND idempotency_key < $3 "
								"AND rule_id = $1 AND id <> $4 "
								"AND status IN ('scheduled', 'retrying')",
								4, types);
	}
	values[0] = Int64GetDatum(msg->rule_id);
	values[1] = CStringGetTextDatum(prefix);
	values[2] = CStringGetTextDatum(rule_key_prefix_end(prefix));
	values[3] = Int64GetDatum(msg->id);
	if (SPI_execute_plan(cancel_rest_plan, values, NULL, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "could not cancel the rest of the sequence");
}

void
rule_stop_check(const GateMessage *msg, GateResult *result)
{
	CompiledRule *rule;
	Oid			save_userid;
	int			save_sec;
	int			level;

	if (msg->rule_id == 0 || msg->source_key == NULL)
		return;

	level = rule_pin_search_path();
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(extension_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	rule = rule_cache_get(msg->rule_id, true);
	if (rule == NULL || rule->stop < 0)
	{
		if (rule)
			rule_cache_release(rule);
		SetUserIdAndSecContext(save_userid, save_sec);
		AtEOXact_GUC(true, level);
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
			SetUserIdAndSecContext(rule->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
			rc = SPI_execute_plan(gate_plan(rule), keys, NULL, true, 1);
			SetUserIdAndSecContext(extension_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
			if (rc != SPI_OK_SELECT)
				elog(ERROR, "could not check the stop condition of rule \"%s\"", rule->name);

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
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	AtEOXact_GUC(true, level);
}

static Datum
address_hash(const char *kind, const char *address)
{
	pg_cryptohash_ctx *ctx = pg_cryptohash_create(PG_SHA256);
	bytea	   *result = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	char	   *text = psprintf("%s:%s", kind, address);

	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) text, strlen(text)) < 0 ||
		pg_cryptohash_final(ctx, (uint8 *) VARDATA(result), PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute SHA-256");
	pg_cryptohash_free(ctx);
	SET_VARSIZE(result, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	return PointerGetDatum(result);
}

void
survey_throttle_check(const GateMessage *msg, GateResult *result)
{
	CompiledRule *rule;
	Oid			save_userid;
	int			save_sec;
	int			level;
	Datum		hashes[2];
	int			n = 0;
	char	   *email;
	char	   *phone;

	if (msg->rule_id == 0)
		return;
	email = jsonb_get_text(msg->recipient, "email");
	phone = jsonb_get_text(msg->recipient, "phone");
	if (email)
		hashes[n++] = address_hash("email", str_tolower(email, strlen(email), DEFAULT_COLLATION_OID));
	if (phone)
		hashes[n++] = address_hash("phone", phone);

	level = rule_pin_search_path();
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(extension_owner(), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	rule = rule_cache_get(msg->rule_id, true);
	if (rule == NULL || rule->kind != RULE_SURVEY || n == 0)
	{
		if (rule)
			rule_cache_release(rule);
		SetUserIdAndSecContext(save_userid, save_sec);
		AtEOXact_GUC(true, level);
		return;
	}

	PG_TRY();
	{
		Datum		values[4];

		SPI_connect();
		if (throttle_plan == NULL)
		{
			Oid			types[3] = {BYTEAARRAYOID, INTERVALOID, INT8OID};

			throttle_plan = keep("SELECT 1 FROM reminder.survey_log l "
								 "JOIN reminder.message m ON m.id = l.message_id "
								 "WHERE l.address_hash = ANY ($1) AND l.surveyed_at > now() - $2 "
								 "AND l.message_id <> $3 "
								 "AND m.status NOT IN ('failed', 'cancelled', 'suppressed') LIMIT 1",
								 3, types);
		}
		if (survey_log_plan == NULL)
		{
			Oid			types[3] = {BYTEAARRAYOID, INT8OID, INT8OID};

			survey_log_plan = keep("INSERT INTO reminder.survey_log (address_hash, message_id, rule_id) "
								   "SELECT h, $2, $3 FROM unnest($1) h "
								   "ON CONFLICT DO NOTHING",
								   3, types);
		}
		values[0] = PointerGetDatum(construct_array(hashes, n, BYTEAOID, -1, false, TYPALIGN_INT));
		values[1] = IntervalPGetDatum(&rule->throttle);
		values[2] = Int64GetDatum(msg->id);
		if (SPI_execute_plan(throttle_plan, values, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "could not check the survey throttle");
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
			if (SPI_execute_plan(survey_log_plan, values, NULL, false, 0) != SPI_OK_INSERT)
				elog(ERROR, "could not log the survey");
		}
		SPI_finish();
	}
	PG_FINALLY();
	{
		rule_cache_release(rule);
		SetUserIdAndSecContext(save_userid, save_sec);
	}
	PG_END_TRY();
	AtEOXact_GUC(true, level);
}
