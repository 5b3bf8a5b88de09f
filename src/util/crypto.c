/*-------------------------------------------------------------------------
 *
 * crypto.c
 *	  HMAC-SHA256, the one primitive behind webhook signatures and signed
 *	  action links, with hex and base64url encodings; and the SHA-256 by
 *	  which the survey throttle and the opt-outs kept after an erasure
 *	  recognise an address without keeping it.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_collation.h"
#include "common/cryptohash.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "utils/builtins.h"
#include "utils/formatting.h"

#include "reminder.h"
#include "util/util.h"

static void
hex_into(char *hex, const uint8 *digest)
{
	for (int i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
		sprintf(hex + i * 2, "%02x", digest[i]);
}

void
hmac_sha256(const char *key, size_t keylen, const char *data, size_t len,
			uint8 *digest)
{
	pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);

	if (ctx == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	if (pg_hmac_init(ctx, (const uint8 *) key, keylen) < 0 ||
		pg_hmac_update(ctx, (const uint8 *) data, len) < 0 ||
		pg_hmac_final(ctx, digest, PG_SHA256_DIGEST_LENGTH) < 0)
	{
		const char *err = pg_hmac_error(ctx);

		pg_hmac_free(ctx);
		elog(ERROR, "could not compute HMAC-SHA256: %s", err);
	}
	pg_hmac_free(ctx);
}

/* Lowercase hex of HMAC-SHA256(key, data), as webhook receivers expect. */
char *
hmac_sha256_hex(const char *key, size_t keylen, const char *data, size_t len)
{
	uint8		digest[PG_SHA256_DIGEST_LENGTH];
	char	   *hex = palloc(PG_SHA256_DIGEST_LENGTH * 2 + 1);

	hmac_sha256(key, keylen, data, len, digest);
	hex_into(hex, digest);
	return hex;
}

/*
 * SHA-256 of "kind:address", kind "email" (the address is lower-cased
 * first) or "phone" (E.164, as normalised when scheduled).
 */
bytea *
address_hash(const char *kind, const char *address)
{
	pg_cryptohash_ctx *ctx;
	bytea	   *result = palloc(VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	char	   *text;

	if (strcmp(kind, "email") == 0)
		address = str_tolower(address, strlen(address), DEFAULT_COLLATION_OID);
	else if (strcmp(kind, "phone") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown address kind \"%s\"", kind),
				 errhint("Use \"email\" or \"phone\".")));
	text = psprintf("%s:%s", kind, address);
	ctx = pg_cryptohash_create(PG_SHA256);
	if (ctx == NULL || pg_cryptohash_init(ctx) < 0 ||
		pg_cryptohash_update(ctx, (const uint8 *) text, strlen(text)) < 0 ||
		pg_cryptohash_final(ctx, (uint8 *) VARDATA(result), PG_SHA256_DIGEST_LENGTH) < 0)
		elog(ERROR, "could not compute SHA-256");
	pg_cryptohash_free(ctx);
	SET_VARSIZE(result, VARHDRSZ + PG_SHA256_DIGEST_LENGTH);
	return result;
}

/* The same as text, "sha256:<hex>": how reminder.consent keeps it. */
char *
address_hash_text(const char *kind, const char *address)
{
	bytea	   *hash = address_hash(kind, address);
	char	   *text = palloc(7 + PG_SHA256_DIGEST_LENGTH * 2 + 1);

	memcpy(text, "sha256:", 7);
	hex_into(text + 7, (const uint8 *) VARDATA(hash));
	return text;
}

/* reminder._address_hash(kind, address) */
PG_FUNCTION_INFO_V1(reminder_address_hash);
Datum
reminder_address_hash(PG_FUNCTION_ARGS)
{
	PG_RETURN_BYTEA_P(address_hash(text_to_cstring(PG_GETARG_TEXT_PP(0)),
								   text_to_cstring(PG_GETARG_TEXT_PP(1))));
}

/* reminder._address_key(kind, address): the text form */
PG_FUNCTION_INFO_V1(reminder_address_key);
Datum
reminder_address_key(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(address_hash_text(text_to_cstring(PG_GETARG_TEXT_PP(0)),
													   text_to_cstring(PG_GETARG_TEXT_PP(1)))));
}

/* base64url without padding (RFC 4648 section 5): safe inside URLs. */
char *
base64url_encode(const uint8 *data, size_t len)
{
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	char	   *out = palloc((len + 2) / 3 * 4 + 1);
	char	   *p = out;
	size_t		i;

	for (i = 0; i + 2 < len; i += 3)
	{
		uint32		v = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];

		*p++ = alphabet[(v >> 18) & 63];
		*p++ = alphabet[(v >> 12) & 63];
		*p++ = alphabet[(v >> 6) & 63];
		*p++ = alphabet[v & 63];
	}
	if (i < len)
	{
		uint32		v = data[i] << 16;

		if (i + 1 < len)
			v |= data[i + 1] << 8;
		*p++ = alphabet[(v >> 18) & 63];
		*p++ = alphabet[(v >> 12) & 63];
		if (i + 1 < len)
			*p++ = alphabet[(v >> 6) & 63];
	}
	*p = '\0';
	return out;
}

/*
 * Decode base64url without padding; returns the length, or -1 if the text
 * is not valid base64url.  out needs room for len * 3 / 4 bytes.
 */
int
base64url_decode(const char *text, size_t len, uint8 *out)
{
	uint32		acc = 0;
	int			bits = 0;
	int			n = 0;

	for (size_t i = 0; i < len; i++)
	{
		char		c = text[i];
		int			v;

		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '-')
			v = 62;
		else if (c == '_')
			v = 63;
		else
			return -1;
		acc = (acc << 6) | v;
		bits += 6;
		if (bits >= 8)
		{
			bits -= 8;
			out[n++] = (acc >> bits) & 0xff;
		}
	}
	/* leftover bits must be zero padding of the last character */
	if (bits >= 6 || (acc & ((1 << bits) - 1)) != 0)
		return -1;
	return n;
}
