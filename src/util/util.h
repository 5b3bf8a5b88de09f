/*-------------------------------------------------------------------------
 *
 * util/util.h
 *	  Declarations of the util family: checks on user input, HMAC and
 *	  encodings, jsonb helpers, running as the extension's owner.
 *	  (SPI helpers: util/spi_util.h.)
 *
 *-------------------------------------------------------------------------
 */
#ifndef UTIL_UTIL_H
#define UTIL_UTIL_H

#include "reminder.h"

/* ----------------
 * in validate.c: checks on user input, each ereport(ERROR)s on failure
 * ----------------
 */
extern void validate_email(const char *addr, const char *what);
extern void validate_mailbox(const char *mailbox, const char *what);
extern List *validate_email_list(Jsonb *obj, const char *key, const char *what);
extern char *normalize_phone(const char *phone, const char *default_cc,
							 const char *what);
extern void validate_url(const char *url, const char *const *schemes,
						 const char *what);
extern void validate_header_value(const char *value, const char *what);
extern void validate_http_header_value(const char *value, const char *what);
extern void validate_header_name(const char *name, const char *what);
extern void validate_time_zone(const char *tz, const char *what);
extern void validate_locale(const char *locale, const char *what);
extern void validate_name(const char *name, const char *kind);
extern void validate_payload_size(Size size, const char *what);
extern int	parse_duration_ms(const char *text, const char *what);
#define PRIORITY_HIGH	1
#define PRIORITY_NORMAL	0
#define PRIORITY_LOW	(-1)
extern int16 parse_priority(const char *text, const char *what);
/* ... and one that never raises: the valid part of text from outside */
extern char *valid_text(const char *s, size_t len);

/* ----------------
 * in crypto.c: HMAC-SHA256, base64url, address hashes
 * ----------------
 */
extern void hmac_sha256(const char *key, size_t keylen, const char *data,
						size_t len, uint8 *digest);
extern char *hmac_sha256_hex(const char *key, size_t keylen,
							 const char *data, size_t len);
extern char *base64url_encode(const uint8 *data, size_t len);
extern int	base64url_decode(const char *text, size_t len, uint8 *out);
extern bytea *address_hash(const char *kind, const char *address);
extern char *address_hash_text(const char *kind, const char *address);

/* ----------------
 * in jsonb_util.c: small helpers over jsonb objects
 * ----------------
 */
extern JsonbValue *jsonb_get(Jsonb *obj, const char *key);
extern char *jsonb_get_text(Jsonb *obj, const char *key);
extern char *jsonb_get_string(Jsonb *obj, const char *key, const char *what);
extern char *jsonb_value_text(JsonbValue *v);
extern Jsonb *jsonb_set_text(Jsonb *obj, const char *key, const char *value);
extern void jsonb_push_key(JsonbParseState **state, const char *key);
extern void jsonb_push_string(JsonbParseState **state, JsonbIteratorToken tok,
							  const char *s);

/* ----------------
 * in json_scan.c: scalars out of a provider's JSON answer, never raising
 * ----------------
 */
typedef struct JsonScanField
{
	const char *path;			/* "sid", "list.0.id" */
	char	   *value;			/* set by json_scan, or NULL */
} JsonScanField;

extern bool json_scan(const char *json, size_t len, JsonScanField *fields,
					  int nfields);
extern const char *json_scan_value(JsonScanField *fields, int nfields,
								   const char *path);

/* ----------------
 * in owner.c: running as the extension's or a table's owner, and back
 * ----------------
 */
typedef struct OwnerContext
{
	Oid			save_userid;
	int			save_sec;
	int			level;			/* GUC nest level, rolled back on leave */
	int			flags;
} OwnerContext;

#define OWNER_PIN_SEARCH_PATH	0x01	/* search_path pg_catalog, pg_temp */
#define OWNER_RESTRICTED		0x02	/* a table owner's code */

extern void owner_enter(OwnerContext *ctx, Oid owner, int flags);
extern void owner_leave(OwnerContext *ctx);
extern void owner_worker_session(void);

#endif							/* UTIL_UTIL_H */
