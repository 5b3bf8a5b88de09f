/*-------------------------------------------------------------------------
 *
 * transport/mail.h
 *	  RFC 5322 header fields of UTF-8 text (mail.c), for the SMTP transport
 *	  and calendar invites (render/ical.c).  Apart from transport.h: it
 *	  needs nothing of the transports.
 *
 *-------------------------------------------------------------------------
 */
#ifndef TRANSPORT_MAIL_H
#define TRANSPORT_MAIL_H

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"

/* ----------------
 * in mail.c
 * ----------------
 */
typedef struct MailHeader
{
	StringInfoData buf;
	int			line_start;		/* offset of the current line in buf */
	int			tokens;
} MailHeader;

extern void mail_header_begin(MailHeader *h, const char *name);
extern void mail_header_token(MailHeader *h, const char *sep, const char *token);
extern char *mail_header_end(MailHeader *h);
extern char *mail_unstructured(const char *name, const char *text);
extern char *mail_mailbox(const char *field, const char *name, const char *addr);
extern void mail_split_mailbox(const char *mailbox, char **name, char **addr);
extern const char *mail_address_domain(const char *addr);
extern char *mail_message_id(const char *key, const char *domain);
extern char *mail_date(TimestampTz t);

#endif							/* TRANSPORT_MAIL_H */
