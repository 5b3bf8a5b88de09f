/*-------------------------------------------------------------------------
 *
 * token_fuzz.c
 *	  libFuzzer harness for signed link tokens: base64url (src/util/crypto.c),
 *	  decoding a token's text and checking its signature (src/render/links.c,
 *	  included here to reach its static functions; key lookup and expiry
 *	  need the server and are not part of it).
 *
 * Input: one byte choosing the mode, then
 *	 0: a token's text as an untrusted endpoint would pass it.  Decoding
 *		must fail cleanly or give fields that encode back to the same
 *		text; the signature check must fail unless the text was signed
 *		with the harness's key, and then re-signing gives the same text.
 *	 1: fields (message id, action, score, expiry) and a bit to flip: the
 *		token made from them must decode to them and verify with its key
 *		only; with one character changed it must not verify.
 *	 2: bytes: base64url encodes them so that they decode back, and any
 *		text decodes into the room the contract promises (len * 3 / 4).
 * Every buffer is an exact-size allocation, so a read past the end of the
 * text is an AddressSanitizer report.
 *
 *-------------------------------------------------------------------------
 */
#include "../../src/render/links.c"

#include "fuzz_pg.h"

int			LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const SigningKey key = {0x2a2a2a2a, {
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}};
static const SigningKey other_key = {0x2a2a2a2a, {
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 33}};

/* an exact-size, NUL-terminated copy of the input */
static char *
text_of(const uint8_t *data, size_t size)
{
	char	   *s = palloc(size + 1);

	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

static void
check_base64url(const char *text, size_t len)
{
	uint8	   *out = palloc(len * 3 / 4);
	int			n = base64url_decode(text, len, out);

	if (n < -1 || n > (int) (len * 3 / 4))
		abort();
	if (n >= 0 && strcmp(base64url_encode(out, n), text) != 0)
		abort();				/* decoding is only valid for canonical text */
}

static void
token_from_text(const char *text)
{
	uint8		buf[TOKEN_BYTES + 3];
	LinkToken	t;

	check_base64url(text, strlen(text));
	if (!decode_token(text, buf, &t))
		return;
	if (strcmp(base64url_encode(buf, TOKEN_BYTES), text) != 0)
		abort();
	if (token_signed_by(buf, NULL))
		abort();
	if (token_signed_by(buf, &key) &&
		strcmp(encode_token(&key, t.message_id, t.action, t.score, t.expires_at), text) != 0)
		abort();
}

static uint64
get_uint64(const uint8_t *p)
{
	return ((uint64) get_uint32(p) << 32) | get_uint32(p + 4);
}

static void
token_from_fields(const uint8_t *data, size_t size)
{
	uint8_t		f[22] = {0};
	int64		message_id;
	LinkAction	action;
	int			score;
	TimestampTz expires_at;
	char	   *text;
	uint8		buf[TOKEN_BYTES + 3];
	LinkToken	t;
	pg_time_t	exp;

	memcpy(f, data, Min(size, sizeof(f)));
	message_id = (int64) get_uint64(f);
	action = (LinkAction) f[8];
	score = (int8) f[9];		/* negative: none */
	expires_at = (TimestampTz) get_uint64(f + 10);

	text = encode_token(&key, message_id, action, score, expires_at);
	if (strlen(text) != TOKEN_CHARS || !decode_token(text, buf, &t))
		abort();
	exp = timestamptz_to_time_t(expires_at);
	exp = Max(exp, 0);
	exp = Min(exp, (pg_time_t) PG_UINT32_MAX);
	if (t.key_id != key.id || t.message_id != message_id ||
		t.action != (LinkAction) (uint8) action ||
		t.score != (score < 0 ? -1 : score) ||
		t.expires_at != time_t_to_timestamptz(exp))
		abort();
	if (!token_signed_by(buf, &key) || token_signed_by(buf, &other_key) ||
		token_signed_by(buf, NULL))
		abort();

	/* one character changed: still 47 characters, but no longer ours */
	{
		static const char alphabet[] =
			"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
		int			pos = f[18] % TOKEN_CHARS;
		char		c = alphabet[f[19] % 64];

		if (text[pos] != c)
		{
			text[pos] = c;
			if (decode_token(text, buf, &t) && token_signed_by(buf, &key))
				abort();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MemoryContext cxt;
	MemoryContext old;

	if (size < 1)
		return 0;
	cxt = AllocSetContextCreate(NULL, "fuzz", ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(cxt);

	switch (data[0] % 3)
	{
		case 0:
			(void) FUZZ_TRY(token_from_text(text_of(data + 1, size - 1)));
			break;
		case 1:
			(void) FUZZ_TRY(token_from_fields(data + 1, size - 1));
			break;
		case 2:
			{
				char	   *text = base64url_encode(data + 1, size - 1);
				uint8	   *back = palloc(size);

				if (base64url_decode(text, strlen(text), back) != (int) (size - 1) ||
					memcmp(back, data + 1, size - 1) != 0)
					abort();
				text = text_of(data + 1, size - 1);
				check_base64url(text, strlen(text));
			}
			break;
	}

	MemoryContextSwitchTo(old);
	MemoryContextDelete(cxt);
	return 0;
}
