/* validate.h — semantic validation of a Message and its sealed part.
 *
 * Decoding (codec.h) and the JSON mapping (json.h) say whether bytes or a
 * document have the schema's shape; this module says whether the message
 * makes sense: required fields present, codes and ids well formed, consent
 * or a legal basis given, a status an agency may send with the reason and
 * outcome it needs, lengths within their caps, the sealed part's
 * attachments matching their hashes. It reports every problem at once, each
 * with the JSON path of the field (`referral.consent.givenAt`,
 * `private.attachments[0].sha256`) and a sentence naming the value and what
 * would be accepted, so a person fixing an outbox file fixes it in one go.
 *
 * It is pure: no directory, no log, no clock. Policy (who may refer to
 * whom, which services are offered) and the lifecycle (lifecycle.h) need
 * the broker's state and are checked there. Values of the sealed part
 * (names, fiscal codes, dates) are never repeated in the sentences.
 */
#ifndef RETE_VALIDATE_H
#define RETE_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "problems.h"
#include "rete.pb-c.h"

/* Caps on string lengths, in bytes. Codes and short texts are metadata
 * that is logged forever, so they stay short; free text lives in the
 * sealed part. */
#define RETE_ID_TEXT_MAX 64    /* message ids, case ids, referral ids */
#define RETE_SERVICE_MAX 64    /* service codes */
#define RETE_SHORT_MAX	 256   /* codes, staff ids, roles, names, references */
#define RETE_TEXT_MAX	 4096  /* sentences and free-text reasons */
#define RETE_NOTES_MAX	 65536 /* Private.notes: meeting minutes and the like */

/* What is being validated, which decides the fields that must be set. */
typedef enum rete_validate_mode {
	/* An outbox file before the agent fills it in: id, sender, createdAt
	 * and origin may be empty (checked if given), and the privateSha256 of
	 * a body may be empty when a private part is given (the agent seals it
	 * and fills the hash). Only agency bodies (referral, update, note). */
	RETE_VALIDATE_DRAFT = 1,
	/* A complete agency message as the broker receives it (or a recipient
	 * after verifying it): every required field present. Only agency
	 * bodies. */
	RETE_VALIDATE_SIGNED = 2,
	/* A complete message the broker originates: only broker bodies
	 * (delivery, notice, directory). */
	RETE_VALIDATE_BROKER = 3
} rete_validate_mode;

/* rete_validate_message checks msg (borrowed) and, if not NULL, its sealed
 * part priv (borrowed, in clear) in the given mode, appending one problem
 * per fault to out (caller owns; may be NULL when only the verdict is
 * wanted; may already hold items, which are kept and not counted).
 * Returns RETE_OK when this call found nothing, RETE_EINVAL otherwise
 * (including msg NULL or an unknown mode). Thread-safe. */
rete_err rete_validate_message(const Rete__Message *msg, const Rete__Private *priv,
			       rete_validate_mode mode, rete_problems *out);

/* rete_validate_lead: the index of the problem of p to lead a refusal with:
 * the first one that calls for its own error code (problem.error set:
 * personal data or free text where only codes go), else 0. p NULL or empty
 * gives 0. */
size_t rete_validate_lead(const rete_problems *p);

/* rete_body_is_agency: true when msg carries a body an agency may send
 * (referral, update, note); false for broker bodies, no body or NULL. */
bool rete_body_is_agency(const Rete__Message *msg);

/* rete_body_is_broker: true when msg carries a body only the broker writes
 * (delivery, notice, directory, epoch): its entry is the broker's, whatever
 * the sender's id (protocol 4 acknowledges it unsigned); false for agency
 * bodies, no body or NULL. */
bool rete_body_is_broker(const Rete__Message *msg);

/* rete_text_id_valid: true when s is 1..64 characters of [A-Za-z0-9._:-],
 * the form of message ids, case ids and referral ids. */
bool rete_text_id_valid(const char *s);

/* rete_fiscal_code_valid: is s what private.person.fiscalCode may hold?
 * Either exactly 16 capital letters A-Z and digits (the shape is not
 * checked, so STP/ENI codes, omocodia and typed mistakes pass), or the
 * 11-digit temporary fiscal code (codice fiscale numerico provvisorio,
 * given to a person while the 16-character one cannot be), whose last
 * digit is the check digit of the first ten as a partita IVA's (checked:
 * it is all that tells a mistyped one). The one rule: message check, so
 * the agent's sealing, and `rete sar --person` (after dropping spaces and
 * upper-casing, as the person index does) all use it. */
bool rete_fiscal_code_valid(const char *s);

/* rete_fiscal_code_check is rete_fiscal_code_valid that, when s is not
 * valid, writes into why (n bytes) a sentence saying what is wrong and
 * what is accepted, counting characters, never quoting s (a fiscal code
 * is personal data): its length, its first character that is no capital
 * letter or digit, or an 11-digit code whose check digit does not match. */
bool rete_fiscal_code_check(const char *s, char *why, size_t n);

/* rete_fiscal_code_shape: do the 16 characters at s have the shape of an
 * Italian fiscal code (LLLLLL NN M NN L NNN L, case-insensitive: L a
 * letter, M a month letter, N a digit or an omocodia letter)? The check
 * character is not computed. The shape the log refuses as personal data
 * (docs/formats.md, "Codes only in the log"). When not, and bad is not
 * NULL, *bad is the position (0-based) of the first character out of
 * shape. Reads no further than that character (a NUL is out of shape), so
 * a shorter string is safe; what follows the 16th is not looked at. */
bool rete_fiscal_code_shape(const char *s, size_t *bad);

/* rete_personal_in_text: does free text s (a sentence: spaces allowed;
 * NULL is empty) hold what the log refuses in an identifier as personal
 * data: an Italian fiscal code (also in groups, or the 11-digit temporary
 * one with its check digit), an e-mail address, a phone number (the
 * detector rete_validate_message uses)? When it does, writes into why (n
 * bytes) what was found and where, e.g. "an Italian fiscal code (16
 * characters from position 9)", never the value, and returns true. A name
 * is not found: nothing tells a name from a word. For the texts that go
 * into the log beside codes, a recipient's refusal of a delivery
 * (docs/protocol.md, "The signed acknowledgement"). */
bool rete_personal_in_text(const char *s, char *why, size_t n);

#endif
