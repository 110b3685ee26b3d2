/* validate.c — semantic checks of a Message and its sealed part.
 *
 * Every check appends a problem (path + sentence) and goes on, so a person
 * sees everything wrong with a file at once. Paths use the JSON spelling
 * (json.h): lowerCamelCase, `private.` for the sealed part, `[i]` for
 * repeated fields. Sentences name the value (never one of the sealed part:
 * that is personal data and errors end up in logs) and what is accepted.
 */
#include "validate.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "codec.h"
#include "duration.h"
#include "keys.h"
#include "lifecycle.h"

#define ID_CHARS	"letters, digits and . _ : -"
#define PARTY_FORM	"2 to 63 characters matching ^[a-z0-9][a-z0-9.-]{1,62}$ (e.g. social.mantova)"
#define AGENCY_STATUSES "accepted, rejected, in-progress, on-hold, completed, failed or cancelled"

/* One validation run: where problems go and how many this run added. */
typedef struct v_ctx {
	rete_problems *out;
	size_t count;
	rete_validate_mode mode;
} v_ctx;

static void v_add(v_ctx *v, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void v_add(v_ctx *v, const char *path, const char *fmt, ...)
{
	va_list ap;

	v->count++;
	va_start(ap, fmt);
	rete_problems_vadd(v->out, path, fmt, ap);
	va_end(ap);
}

static const char *v_str(const char *s)
{
	return s != NULL ? s : "";
}

/* v_utf8_len: length of the well-formed UTF-8 sequence at s (1..4), or 0
 * when it is not one (overlong forms, surrogates and cut sequences too). */
static size_t v_utf8_len(const unsigned char *s)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
		n = 3;
	else if (c >= 0xF0 && c <= 0xF4)
		n = 4;
	else
		return 0;
	if (c == 0xE0)
		lo = 0xA0;
	else if (c == 0xED)
		hi = 0x9F;
	else if (c == 0xF0)
		lo = 0x90;
	else if (c == 0xF4)
		hi = 0x8F;
	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t k = 2; k < n; k++) /* a NUL stops here too */
		if ((s[k] & 0xC0) != 0x80)
			return 0;
	return n;
}

/* v_show quotes s for a sentence: at most 48 bytes of it (cut on a
 * character boundary, "..." added), control characters and bytes that are
 * not UTF-8 shown as '?', so that the sentence stays short and valid UTF-8
 * whatever the value. buf needs 1 + 48 + 3 + 1 + 1 bytes. */
static const char *v_show(const char *s, char buf[64])
{
	const unsigned char *u = (const unsigned char *)v_str(s);
	size_t i = 0, o = 0;
	const size_t keep = 48;

	buf[o++] = '\'';
	while (u[i] != '\0' && i < keep) {
		size_t clen = v_utf8_len(u + i);
		if (clen == 0) {
			buf[o++] = '?';
			i++;
			continue;
		}
		if (i + clen > keep)
			break;
		if (clen == 1) {
			buf[o++] = (u[i] < 0x20 || u[i] == 0x7f) ? '?' : (char)u[i];
		} else {
			memcpy(buf + o, u + i, clen);
			o += clen;
		}
		i += clen;
	}
	if (u[i] != '\0') {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o++] = '\'';
	buf[o] = '\0';
	return buf;
}

/* v_bad_char describes the first character of s not allowed by ok(). */
static void v_bad_char(const char *s, bool (*ok)(unsigned char), char *buf, size_t n)
{
	for (size_t i = 0; s[i] != '\0'; i++) {
		unsigned char c = (unsigned char)s[i];
		if (ok(c))
			continue;
		if (c > 0x20 && c < 0x7f)
			snprintf(buf, n, "'%c' at position %zu", (char)c, i + 1);
		else if (c == ' ')
			snprintf(buf, n, "a space at position %zu", i + 1);
		else
			snprintf(buf, n, "byte 0x%02X at position %zu", c, i + 1);
		return;
	}
	snprintf(buf, n, "none");
}

static bool v_idchar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '-';
}

static bool v_servicechar(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

static bool v_all(const char *s, bool (*ok)(unsigned char))
{
	for (; *s != '\0'; s++)
		if (!ok((unsigned char)*s))
			return false;
	return true;
}

bool rete_text_id_valid(const char *s)
{
	size_t n;

	if (s == NULL)
		return false;
	n = strlen(s);
	return n >= 1 && n <= RETE_ID_TEXT_MAX && v_all(s, v_idchar);
}

/* v_id_shape: what is wrong with s (v_str'd), a text of id characters, at
 * most max of them. An empty s is V_ID_FINE, `missing` added when
 * `required`; V_ID_CHAR describes the first character not accepted in bad. */
enum v_id_shape { V_ID_FINE, V_ID_LONG, V_ID_CHAR };

static enum v_id_shape v_id_shape(v_ctx *v, const char *path, const char *s, size_t max,
				  bool required, const char *missing, char bad[48])
{
	size_t n = strlen(s);

	if (n == 0) {
		if (required)
			v_add(v, path, "%s", missing);
		return V_ID_FINE;
	}
	if (n > max)
		return V_ID_LONG;
	if (!v_all(s, v_idchar)) {
		v_bad_char(s, v_idchar, bad, 48);
		return V_ID_CHAR;
	}
	return V_ID_FINE;
}

/* v_text_id checks a message id, case id or referral id. An empty value is
 * a problem only when `required`; `missing` then is the sentence. */
static void v_text_id_note(v_ctx *v, const char *path, const char *what, const char *s,
			   bool required, const char *missing, const char *note)
{
	char show[64], bad[48];

	s = v_str(s);
	switch (v_id_shape(v, path, s, RETE_ID_TEXT_MAX, required, missing, bad)) {
	case V_ID_LONG:
		v_add(v, path, "%s %s is %zu characters long; at most %d are accepted (%s)%s", what,
		      v_show(s, show), strlen(s), RETE_ID_TEXT_MAX, ID_CHARS, note);
		break;
	case V_ID_CHAR:
		v_add(v, path,
		      "%s %s has a character that is not accepted (%s); use 1 to %d characters: "
		      "%s%s",
		      what, v_show(s, show), bad, RETE_ID_TEXT_MAX, ID_CHARS, note);
		break;
	case V_ID_FINE:
		break;
	}
}

static void v_text_id(v_ctx *v, const char *path, const char *what, const char *s, bool required,
		      const char *missing)
{
	v_text_id_note(v, path, what, s, required, missing, "");
}

/* v_code checks a code (reason code, status reason, business status, note
 * kind): the id characters, at most RETE_SHORT_MAX. Codes are logged and
 * reported for ever, so no spaces: free text belongs in the sealed part. */
static void v_code(v_ctx *v, const char *path, const char *s, bool required, const char *missing)
{
	char show[64], bad[48];

	s = v_str(s);
	switch (v_id_shape(v, path, s, RETE_SHORT_MAX, required, missing, bad)) {
	case V_ID_LONG:
		v_add(v, path, "code %s is %zu characters long; a code is at most %d",
		      v_show(s, show), strlen(s), RETE_SHORT_MAX);
		break;
	case V_ID_CHAR:
		v_add(v, path,
		      "%s is not a code: it has %s; a code is made of %s (e.g. lack-of-capacity), "
		      "and free text belongs in the sealed part",
		      v_show(s, show), bad, ID_CHARS);
		break;
	case V_ID_FINE:
		break;
	}
}

/* v_cap checks the length of a text; `personal` texts are not quoted. */
static void v_cap(v_ctx *v, const char *path, const char *s, size_t cap, bool personal)
{
	char show[64];
	size_t n = strlen(v_str(s));

	if (n <= cap)
		return;
	if (personal)
		v_add(v, path, "the text is %zu bytes long; at most %zu are accepted", n, cap);
	else
		v_add(v, path, "%s is %zu bytes long; at most %zu are accepted", v_show(s, show), n,
		      cap);
}

static void v_party(v_ctx *v, const char *path, const char *what, const char *s, bool required)
{
	char show[64];

	s = v_str(s);
	if (s[0] == '\0') {
		if (required)
			v_add(v, path, "%s is missing; give a party id: %s", what, PARTY_FORM);
		return;
	}
	if (!rete_id_valid(s))
		v_add(v, path, "%s %s is not a valid party id; a party id is %s", what,
		      v_show(s, show), PARTY_FORM);
}

static void v_sha(v_ctx *v, const char *path, const ProtobufCBinaryData *h, bool required,
		  const char *missing)
{
	if (h->len == 0) {
		if (required)
			v_add(v, path, "%s", missing);
		return;
	}
	if (h->len != 32)
		v_add(v, path,
		      "the hash is %zu bytes long; a SHA-256 is exactly 32 bytes (44 characters of "
		      "base64)",
		      h->len);
}

/* v_enum checks an enum field: set, and a value the schema knows. */
static void v_enum(v_ctx *v, const char *path, int value, const ProtobufCEnumDescriptor *d,
		   const char *what, const char *accepted)
{
	if (value == 0)
		v_add(v, path, "%s is missing; give %s", what, accepted);
	else if (protobuf_c_enum_descriptor_get_value(d, value) == NULL)
		v_add(v, path, "%s %d is not a known value; give %s", what, value, accepted);
}

/* ------------------------------------------------------------------------
 * Envelope
 */

/* v_looks_like_fiscal_code: the shape of an Italian codice fiscale
 * (6 letters, 2 digits, letter, 2 digits, letter, 3 digits, letter; digits
 * may be replaced by the "omocodia" letters). A case id is pseudonymous, so
 * one that has this shape is refused. */
static bool v_looks_like_fiscal_code(const char *s)
{
	static const char shape[] = "LLLLLLNNLNNLNNNL";
	if (strlen(s) != 16)
		return false;
	for (int i = 0; i < 16; i++) {
		char c = s[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		bool letter = c >= 'A' && c <= 'Z';
		bool digit = (c >= '0' && c <= '9') || (c != '\0' && strchr("LMNPQRSTUV", c));
		if (shape[i] == 'L' ? !letter : !digit)
			return false;
	}
	return true;
}

static void v_envelope(v_ctx *v, const Rete__Message *msg, bool agency)
{
	bool complete = v->mode != RETE_VALIDATE_DRAFT;
	const char *sender = v_str(msg->sender), *recipient = v_str(msg->recipient);
	char show[64];

	v_text_id(v, "id", "message id", msg->id, complete,
		  "the message id is missing; a signed message carries the id its sender chose: "
		  "1 to 64 characters of " ID_CHARS);
	v_party(v, "sender", "sender", sender, complete);

	if (msg->body_case == RETE__MESSAGE__BODY_DIRECTORY ||
	    msg->body_case == RETE__MESSAGE__BODY_EPOCH) {
		if (recipient[0] != '\0')
			v_add(v, "recipient",
			      "recipient %s is set on a %s entry; it is for everyone: leave "
			      "recipient empty",
			      v_show(recipient, show), rete_message_kind(msg));
	} else {
		/* A notice may be for the coordinators only (overdue): no
		 * recipient. Everything else is addressed to one party. */
		v_party(v, "recipient", "recipient", recipient,
			msg->body_case != RETE__MESSAGE__BODY_NOTICE);
	}
	if (sender[0] != '\0' && strcmp(sender, recipient) == 0)
		v_add(v, "recipient",
		      "recipient %s is the sender itself; a message goes to another party",
		      v_show(recipient, show));

	const char *case_id = v_str(msg->case_id);
	v_text_id_note(v, "caseId", "caseId", case_id, agency,
		       "caseId is missing; give the pseudonymous case id the agencies share for "
		       "this family (1 to 64 characters of " ID_CHARS
		       "; never a name or a fiscal code)",
		       "; a case id is pseudonymous: never a name or a fiscal code");
	if (v_looks_like_fiscal_code(case_id))
		v_add(v, "caseId",
		      "caseId looks like a fiscal code; a case id is pseudonymous: use the case "
		      "number your system gives the family, never a fiscal code or a name");

	if (msg->created_at < 0)
		v_add(v, "createdAt",
		      "createdAt %" PRId64 " ms is before 1970; give the time the message was "
		      "created (after 1970-01-01T00:00:00Z)",
		      msg->created_at);
	else if (msg->created_at == 0 && complete)
		v_add(v, "createdAt",
		      "createdAt is missing; a signed message carries the time it was created");

	const char *origin = v_str(msg->origin);
	if (origin[0] == '\0') {
		if (complete)
			v_add(v, "origin",
			      "origin is missing; a signed message names the log (broker) it is "
			      "meant for");
	} else if (strlen(origin) > RETE_SHORT_MAX) {
		v_cap(v, "origin", origin, RETE_SHORT_MAX, false);
	} else {
		for (const char *p = origin; *p != '\0'; p++) {
			if ((unsigned char)*p <= 0x20 || *p == 0x7f) {
				v_add(v, "origin",
				      "origin %s has a space or control character; an origin "
				      "is the log's name, e.g. rete.mantova",
				      v_show(origin, show));
				break;
			}
		}
	}

	if (msg->operator_ == NULL) {
		if (agency)
			v_add(v, "operator",
			      "operator is missing; give who at the agency acted: staffId and "
			      "role (for the access record; never a person's name)");
		return;
	}
	if (v_str(msg->operator_->staff_id)[0] == '\0')
		v_add(v, "operator.staffId",
		      "operator.staffId is missing; give the agency's own identifier of the "
		      "staff member who acted");
	else
		v_cap(v, "operator.staffId", msg->operator_->staff_id, RETE_SHORT_MAX, false);
	if (v_str(msg->operator_->role)[0] == '\0')
		v_add(v, "operator.role",
		      "operator.role is missing; give the staff member's role, e.g. "
		      "social-worker or case-manager");
	else
		v_cap(v, "operator.role", msg->operator_->role, RETE_SHORT_MAX, false);
}

/* ------------------------------------------------------------------------
 * Agency bodies
 */

static void v_referral(v_ctx *v, const Rete__Referral *r)
{
	char show[64], bad[48];
	const char *service = v_str(r->service);
	size_t n = strlen(service);

	if (n == 0)
		v_add(v, "referral.service",
		      "referral.service is missing; give a service code from the recipient's "
		      "catalogue (1 to %d characters of a-z, 0-9, '.' and '-', e.g. "
		      "employment-orientation)",
		      RETE_SERVICE_MAX);
	else if (n > RETE_SERVICE_MAX)
		v_add(v, "referral.service",
		      "service %s is %zu characters long; a service code is at most %d",
		      v_show(service, show), n, RETE_SERVICE_MAX);
	else if (!v_all(service, v_servicechar)) {
		v_bad_char(service, v_servicechar, bad, sizeof(bad));
		v_add(v, "referral.service",
		      "service %s is not a service code: it has %s; a service code is made of "
		      "a-z, 0-9, '.' and '-' (e.g. employment-orientation)",
		      v_show(service, show), bad);
	}

	v_enum(v, "referral.priority", r->priority, &rete__priority__descriptor,
	       "referral.priority", "routine, urgent or emergency");
	v_code(v, "referral.reasonCode", r->reason_code, true,
	       "referral.reasonCode is missing; give a coded reason for referring (e.g. "
	       "school-dropout-risk); free text belongs in the sealed part (private.reason)");

	const Rete__Consent *c = r->consent;
	if (c == NULL) {
		v_add(v, "referral.consent",
		      "referral.consent is missing; give basis consent or guardian-consent with "
		      "givenAt, or an override basis (legal-obligation, public-interest, "
		      "vital-interest) with legalBasis naming the law");
	} else {
		v_enum(v, "referral.consent.basis", c->basis, &rete__consent_basis__descriptor,
		       "referral.consent.basis",
		       "consent, guardian-consent, legal-obligation, public-interest or "
		       "vital-interest");
		bool given = c->basis == RETE__CONSENT_BASIS__CONSENT_BASIS_CONSENT ||
			     c->basis == RETE__CONSENT_BASIS__CONSENT_BASIS_GUARDIAN_CONSENT;
		bool override = c->basis == RETE__CONSENT_BASIS__CONSENT_BASIS_LEGAL_OBLIGATION ||
				c->basis == RETE__CONSENT_BASIS__CONSENT_BASIS_PUBLIC_INTEREST ||
				c->basis == RETE__CONSENT_BASIS__CONSENT_BASIS_VITAL_INTEREST;
		if (c->given_at < 0)
			v_add(v, "referral.consent.givenAt",
			      "referral.consent.givenAt %" PRId64 " ms is before 1970; give when "
			      "the consent was given",
			      c->given_at);
		else if (given && c->given_at == 0)
			v_add(v, "referral.consent.givenAt",
			      "referral.consent.givenAt is missing; with basis %s give when the "
			      "consent was given",
			      c->basis == RETE__CONSENT_BASIS__CONSENT_BASIS_CONSENT
				  ? "consent"
				  : "guardian-consent");
		if (override && v_str(c->legal_basis)[0] == '\0')
			v_add(v, "referral.consent.legalBasis",
			      "referral.consent.legalBasis is missing; a referral without consent "
			      "must name the law that allows it (e.g. 'L. 184/1983 art. 9')");
		v_cap(v, "referral.consent.legalBasis", c->legal_basis, RETE_TEXT_MAX, false);
		v_cap(v, "referral.consent.reference", c->reference, RETE_SHORT_MAX, false);
	}

	v_enum(v, "referral.ageBand", r->age_band, &rete__age_band__descriptor, "referral.ageBand",
	       "0-3, 3-5, 6-13, 14-18 or adult");
	v_text_id(v, "referral.previousReferral", "referral.previousReferral", r->previous_referral,
		  false, "");
	v_sha(v, "referral.privateSha256", &r->private_sha256, false, "");
}

/* v_status_sendable: may an agency's update set status s? If not, *why
 * says why (for a value the schema knows). */
static bool v_status_sendable(Rete__Status s, const char **why)
{
	switch (s) {
	case RETE__STATUS__STATUS_ACCEPTED:
	case RETE__STATUS__STATUS_REJECTED:
	case RETE__STATUS__STATUS_IN_PROGRESS:
	case RETE__STATUS__STATUS_ON_HOLD:
	case RETE__STATUS__STATUS_COMPLETED:
	case RETE__STATUS__STATUS_FAILED:
	case RETE__STATUS__STATUS_CANCELLED:
		return true;
	case RETE__STATUS__STATUS_REQUESTED:
		*why = "a referral becomes requested when the broker logs it";
		return false;
	case RETE__STATUS__STATUS_RECEIVED:
		*why = "the broker sets received when the performer's agent acknowledges "
		       "delivery";
		return false;
	case RETE__STATUS__STATUS_DRAFT:
		*why = "a draft is never sent";
		return false;
	default:
		*why = "rete's lifecycle does not use it";
		return false;
	}
}

static void v_update(v_ctx *v, const Rete__ReferralUpdate *u)
{
	const char *why = NULL;
	char show[64];

	v_text_id(v, "update.referralId", "update.referralId", u->referral_id, true,
		  "update.referralId is missing; give the id of the referral this update is "
		  "about (the id of the message that carried it)");

	if (u->status == RETE__STATUS__STATUS_UNSPECIFIED)
		v_add(v, "update.status", "update.status is missing; give " AGENCY_STATUSES);
	else if (protobuf_c_enum_descriptor_get_value(&rete__status__descriptor, u->status) == NULL)
		v_add(v, "update.status",
		      "update.status %d is not a known status; give " AGENCY_STATUSES,
		      (int)u->status);
	else if (!v_status_sendable(u->status, &why))
		v_add(v, "update.status",
		      "update.status '%s' cannot be sent by an agency: %s; an update may "
		      "set " AGENCY_STATUSES,
		      rete_status_name(u->status), why);

	const Rete__StatusReason *sr = u->status_reason;
	if (rete_status_needs_reason(u->status)) {
		if (sr == NULL)
			v_add(v, "update.statusReason",
			      "update.statusReason is missing; a referral that is %s needs a "
			      "reason: give statusReason.code (e.g. lack-of-capacity) and a short "
			      "text",
			      rete_status_name(u->status));
		else
			v_code(v, "update.statusReason.code", sr->code, true,
			       "update.statusReason.code is missing; a referral that is "
			       "rejected, cancelled, on-hold or failed needs a coded reason (e.g. "
			       "lack-of-capacity)");
	} else if (sr != NULL) {
		v_code(v, "update.statusReason.code", sr->code, false, "");
	}
	if (sr != NULL)
		v_cap(v, "update.statusReason.text", sr->text, RETE_TEXT_MAX, false);

	v_code(v, "update.businessStatus", u->business_status, false, "");

	const Rete__Outcome *o = u->outcome;
	if (u->status == RETE__STATUS__STATUS_COMPLETED) {
		if (o == NULL)
			v_add(v, "update.outcome",
			      "update.outcome is missing; a completed referral reports its "
			      "outcome: result successful or unsuccessful, and the reason when "
			      "unsuccessful");
	} else if (o != NULL) {
		v_add(v, "update.outcome",
		      "an outcome is reported only with status completed; this update sets "
		      "status %s",
		      v_show(rete_status_name(u->status), show));
	}
	if (o != NULL) {
		v_enum(v, "update.outcome.result", o->result, &rete__outcome_result__descriptor,
		       "update.outcome.result", "successful or unsuccessful");
		if (o->result == RETE__OUTCOME_RESULT__OUTCOME_RESULT_UNSUCCESSFUL)
			v_enum(v, "update.outcome.reason", o->reason,
			       &rete__outcome_reason__descriptor, "update.outcome.reason",
			       "why it did not succeed: client-refused, lack-of-capacity, "
			       "no-longer-needed, unable-to-contact-client, "
			       "unable-to-contact-organisation or other");
		else if (o->reason != RETE__OUTCOME_REASON__OUTCOME_REASON_UNSPECIFIED &&
			 o->result == RETE__OUTCOME_RESULT__OUTCOME_RESULT_SUCCESSFUL)
			v_add(v, "update.outcome.reason",
			      "update.outcome.reason is set on a successful outcome; a reason "
			      "belongs only to an unsuccessful one");
		v_cap(v, "update.outcome.text", o->text, RETE_TEXT_MAX, false);
	}
	v_sha(v, "update.privateSha256", &u->private_sha256, false, "");
}

static void v_note(v_ctx *v, const Rete__CaseNote *n, const Rete__Private *priv)
{
	v_text_id(v, "note.referralId", "note.referralId", n->referral_id, false, "");
	v_code(v, "note.kind", n->kind, true,
	       "note.kind is missing; give the kind of note, e.g. service-agreement or "
	       "meeting-minutes");
	if (v->mode == RETE_VALIDATE_DRAFT && n->private_sha256.len == 0) {
		/* The agent seals the private part and fills the hash. */
		if (priv == NULL)
			v_add(v, "private",
			      "a case note carries its content in the sealed part; add a private "
			      "object with notes or attachments");
		return;
	}
	v_sha(v, "note.privateSha256", &n->private_sha256, true,
	      "note.privateSha256 is missing; a case note's content travels sealed and the "
	      "message carries its SHA-256 (32 bytes)");
}

/* ------------------------------------------------------------------------
 * Broker bodies
 */

/* v_ack: the recipient's signed acknowledgement a Delivery (error 0) or a
 * DELIVERY_REFUSED notice (error: the notice's) carries, protocol 3. Its
 * signature needs the recipient's key, which is the verifier's to find
 * (store/verify.c); here: present, a 64-byte signature, a body that
 * decodes strictly as an AckBody for the entry `index`, naming the log and
 * a recipient, with a leaf hash, and the error the entry states. */
static void v_ack(v_ctx *v, const char *path, const Rete__SignedAck *sa, uint64_t index,
		  Rete__ErrorCode error)
{
	if (sa == NULL) {
		v_add(v, path,
		      "%s is missing; the broker logs a delivery (or its refusal) only with the "
		      "recipient's signed acknowledgement (SignedAck)",
		      path);
		return;
	}
	if (sa->signature.len != RETE_SIG_LEN)
		v_add(v, path, "%s.signature is %zu bytes; an Ed25519 signature is %d bytes", path,
		      sa->signature.len, RETE_SIG_LEN);
	ProtobufCMessage *pm = NULL;
	rete_msg m;
	if (rete_pb_strict_unpack(&rete__ack_body__descriptor, sa->body.data, sa->body.len, &pm,
				  &m) != RETE_OK) {
		v_add(v, path, "%s.body is not an AckBody: %s", path, m.text);
		return;
	}
	const Rete__AckBody *b = (const Rete__AckBody *)pm;
	if (b->index != index)
		v_add(v, path,
		      "%s acknowledges entry %" PRIu64 ", but the entry is about entry %" PRIu64,
		      path, b->index, index);
	if (b->origin[0] == '\0' || b->recipient[0] == '\0')
		v_add(v, path,
		      "%s names no %s; a signed acknowledgement names the log and the "
		      "recipient",
		      path, b->origin[0] == '\0' ? "origin" : "recipient");
	if (b->leaf_hash.len != 32)
		v_add(v, path, "%s.leafHash is %zu bytes; it is the SHA-256 leaf hash (32 bytes)",
		      path, b->leaf_hash.len);
	if (b->error != error)
		v_add(v, path,
		      error == 0
			  ? "%s says the recipient refused the entry (error %d): a refusal is "
			    "logged as a delivery-refused notice, not as a Delivery"
			  : "%s says error %d, but the notice says %d; they must be equal",
		      path, (int)b->error, (int)error);
	protobuf_c_message_free_unpacked(pm, NULL);
}

static void v_delivery(v_ctx *v, const Rete__Delivery *d)
{
	/* index 0 is a real log index: it cannot be told from "unset". */
	v_text_id(v, "delivery.messageId", "delivery.messageId", d->message_id, true,
		  "delivery.messageId is missing; give the id of the delivered message");
	v_text_id(v, "delivery.referralId", "delivery.referralId", d->referral_id, false, "");
	if (d->delivered_at <= 0)
		v_add(v, "delivery.deliveredAt",
		      "delivery.deliveredAt is missing or before 1970; give when the recipient "
		      "acknowledged the message");
	v_ack(v, "delivery.ack", d->ack, d->index, 0);
}

static void v_notice(v_ctx *v, const Rete__Notice *n)
{
	v_enum(v, "notice.kind", n->kind, &rete__notice_kind__descriptor, "notice.kind",
	       "overdue, not-delivered or delivery-refused");
	v_text_id(v, "notice.messageId", "notice.messageId", n->message_id, true,
		  "notice.messageId is missing; give the id of the message the notice is about");
	v_text_id(v, "notice.referralId", "notice.referralId", n->referral_id, false, "");
	if (n->error != 0 &&
	    protobuf_c_enum_descriptor_get_value(&rete__error_code__descriptor, n->error) == NULL)
		v_add(v, "notice.error", "notice.error %d is not a known error code",
		      (int)n->error);
	v_cap(v, "notice.text", n->text, RETE_TEXT_MAX, false);
	if (n->due_at < 0)
		v_add(v, "notice.dueAt", "notice.dueAt %" PRId64 " ms is before 1970", n->due_at);
	if (n->kind == RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED) {
		if (n->error == 0)
			v_add(v, "notice.error",
			      "notice.error is missing; a delivery-refused notice says the "
			      "recipient's error code");
		else
			v_ack(v, "notice.ack", n->ack, n->index, n->error);
	} else if (n->ack != NULL) {
		v_add(v, "notice.ack",
		      "notice.ack is set on a notice that is not delivery-refused; only the "
		      "recipient's refusal carries its signed acknowledgement");
	}
}

/* v_epoch: the first entry of a log epoch (a declared restore); the
 * checkpoint it records is checked against the broker key by the auditor
 * (store/verify.c), here only its shape. */
static void v_epoch(v_ctx *v, const Rete__Epoch *e)
{
	if (e->epoch < 2)
		v_add(v, "epoch.epoch",
		      "epoch.epoch is %" PRIu32 "; a new epoch after a restore is 2 or more",
		      e->epoch);
	if (e->previous_epoch < 1 || e->previous_epoch >= e->epoch)
		v_add(v, "epoch.previousEpoch",
		      "epoch.previousEpoch is %" PRIu32 "; it is the epoch of the checkpoint "
		      "recorded, from 1 to epoch.epoch - 1 (%" PRIu32 ")",
		      e->previous_epoch, e->epoch > 0 ? e->epoch - 1 : 0);
	if (e->checkpoint == NULL || e->checkpoint[0] == '\0')
		v_add(v, "epoch.checkpoint",
		      "epoch.checkpoint is missing; it holds the last checkpoint note signed "
		      "before the restore");
	else
		v_cap(v, "epoch.checkpoint", e->checkpoint, 65536, false);
}

static void v_directory(v_ctx *v, const Rete__Directory *d)
{
	char path[96], show[64], bad[48];

	for (size_t i = 0; i < d->n_parties; i++) {
		const Rete__Party *p = d->parties[i];
		const char *id = v_str(p->id);

		snprintf(path, sizeof(path), "directory.parties[%zu].id", i);
		v_party(v, path, "party id", id, true);
		for (size_t j = 0; j < i && id[0] != '\0'; j++) {
			if (strcmp(id, v_str(d->parties[j]->id)) == 0) {
				v_add(v, path,
				      "party %s is listed twice (also at parties[%zu]); each party "
				      "appears once",
				      v_show(id, show), j);
				break;
			}
		}
		snprintf(path, sizeof(path), "directory.parties[%zu].publicKey", i);
		if (p->public_key.len != 32)
			v_add(v, path,
			      "the public key of %s is %zu bytes long; an Ed25519 public key is "
			      "exactly 32 bytes (44 characters of base64)",
			      v_show(id, show), p->public_key.len);
		snprintf(path, sizeof(path), "directory.parties[%zu].kind", i);
		v_enum(v, path, p->kind, &rete__party_kind__descriptor, "the party kind",
		       "social-services, job-centre, health, family-centre, school, "
		       "cooperative, coordinator, auditor or broker");
		snprintf(path, sizeof(path), "directory.parties[%zu].name", i);
		v_cap(v, path, p->name, RETE_SHORT_MAX, false);

		for (size_t k = 0; k < p->n_services; k++) {
			const Rete__Service *s = p->services[k];
			const char *code = v_str(s->code);
			snprintf(path, sizeof(path), "directory.parties[%zu].services[%zu].code", i,
				 k);
			if (code[0] == '\0' || strlen(code) > RETE_SERVICE_MAX ||
			    !v_all(code, v_servicechar)) {
				v_bad_char(code, v_servicechar, bad, sizeof(bad));
				v_add(v, path,
				      "service code %s is not valid; a service code is 1 to %d "
				      "characters of a-z, 0-9, '.' and '-'",
				      v_show(code, show), RETE_SERVICE_MAX);
			} else {
				for (size_t j = 0; j < k; j++) {
					if (strcmp(code, v_str(p->services[j]->code)) == 0) {
						v_add(v, path,
						      "service %s is listed twice for this party",
						      v_show(code, show));
						break;
					}
				}
			}
			snprintf(path, sizeof(path), "directory.parties[%zu].services[%zu].name", i,
				 k);
			v_cap(v, path, s->name, RETE_SHORT_MAX, false);
		}
	}
	for (size_t i = 0; i < d->n_routes; i++) {
		snprintf(path, sizeof(path), "directory.routes[%zu].from", i);
		v_enum(v, path, d->routes[i]->from, &rete__party_kind__descriptor,
		       "the route's from kind", "a party kind");
		snprintf(path, sizeof(path), "directory.routes[%zu].to", i);
		v_enum(v, path, d->routes[i]->to, &rete__party_kind__descriptor,
		       "the route's to kind", "a party kind");
	}
	for (size_t i = 0; i < d->n_limits; i++) {
		const Rete__PriorityLimit *l = d->limits[i];
		rete_duration dur;
		snprintf(path, sizeof(path), "directory.limits[%zu].priority", i);
		v_enum(v, path, l->priority, &rete__priority__descriptor, "the limit's priority",
		       "routine, urgent or emergency");
		snprintf(path, sizeof(path), "directory.limits[%zu].limit", i);
		if (rete_duration_parse(v_str(l->limit), &dur, NULL) != RETE_OK)
			v_add(v, path,
			      "limit %s is not a duration; give e.g. 30s, 15m, 2h, 5d or 3wd",
			      v_show(l->limit, show));
		snprintf(path, sizeof(path), "directory.limits[%zu].limitMs", i);
		if (l->limit_ms <= 0)
			v_add(v, path,
			      "limitMs %" PRId64 " is not a positive number of milliseconds",
			      l->limit_ms);
	}
	for (size_t i = 0; i < d->n_holidays; i++) {
		snprintf(path, sizeof(path), "directory.holidays[%zu]", i);
		if (!rete_date_valid(v_str(d->holidays[i])))
			v_add(v, path, "holiday %s is not a date; give YYYY-MM-DD, e.g. 2026-12-08",
			      v_show(d->holidays[i], show));
	}
	v_cap(v, "directory.timeZone", d->time_zone, 64, false);
	if (d->expiry_ms < 0)
		v_add(
		    v, "directory.expiryMs",
		    "directory.expiryMs %" PRId64 " is negative; give "
		    "the expiry of undelivered messages in milliseconds (0: the broker's default)",
		    d->expiry_ms);
}

/* ------------------------------------------------------------------------
 * The sealed part. Values are never quoted: they are personal data.
 */

static bool v_mediachar(unsigned char c)
{
	/* RFC 6838 restricted-name characters */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$&^_.+-", c) != NULL);
}

static bool v_media_type(const char *s)
{
	const char *slash = strchr(s, '/');
	if (slash == NULL || slash == s || slash[1] == '\0' || strchr(slash + 1, '/') != NULL)
		return false;
	for (const char *p = s; *p != '\0'; p++)
		if (p != slash && !v_mediachar((unsigned char)*p))
			return false;
	return true;
}

static void v_private(v_ctx *v, const Rete__Private *p, Rete__Message__BodyCase body)
{
	char path[96];

	const Rete__Person *person = p->person;
	if (person == NULL) {
		if (body == RETE__MESSAGE__BODY_REFERRAL)
			v_add(v, "private.person",
			      "private.person is missing; a referral's sealed part says who it is "
			      "about: give at least person.name");
	} else {
		const char *name = v_str(person->name);
		if (name[0] == '\0')
			v_add(v, "private.person.name",
			      "private.person.name is missing; give the person's name");
		v_cap(v, "private.person.name", name, RETE_SHORT_MAX, true);

		const char *fc = v_str(person->fiscal_code);
		size_t n = strlen(fc);
		if (n > 0) {
			bool ok = n == 16;
			for (size_t i = 0; ok && i < n; i++)
				ok = (fc[i] >= 'A' && fc[i] <= 'Z') ||
				     (fc[i] >= '0' && fc[i] <= '9');
			if (!ok)
				v_add(v, "private.person.fiscalCode",
				      "private.person.fiscalCode is not a fiscal code: it has %zu "
				      "characters; a fiscal code is 16 capital letters and digits",
				      n);
		}
		const char *bd = v_str(person->birth_date);
		if (bd[0] != '\0' && (!rete_date_valid(bd) || strncmp(bd, "1900", 4) < 0))
			v_add(v, "private.person.birthDate",
			      "private.person.birthDate is not a real date of the form YYYY-MM-DD "
			      "from 1900 on (e.g. 2015-03-31)");
		for (size_t i = 0; i < person->n_contacts; i++) {
			const Rete__Contact *c = person->contacts[i];
			snprintf(path, sizeof(path), "private.person.contacts[%zu].kind", i);
			if (v_str(c->kind)[0] == '\0')
				v_add(v, path,
				      "the contact's kind is missing; give e.g. phone, email "
				      "or address");
			v_cap(v, path, c->kind, RETE_SHORT_MAX, false);
			snprintf(path, sizeof(path), "private.person.contacts[%zu].value", i);
			if (v_str(c->value)[0] == '\0')
				v_add(v, path, "the contact's value is missing");
			v_cap(v, path, c->value, RETE_SHORT_MAX, true);
		}
	}
	v_cap(v, "private.reason", p->reason, RETE_TEXT_MAX, true);
	v_cap(v, "private.notes", p->notes, RETE_NOTES_MAX, true);

	if (body == RETE__MESSAGE__BODY_NOTE && v_str(p->notes)[0] == '\0' && p->n_attachments == 0)
		v_add(v, "private",
		      "a case note's sealed part is empty; give notes or attachments");

	for (size_t i = 0; i < p->n_attachments; i++) {
		const Rete__Attachment *a = p->attachments[i];
		const char *name = v_str(a->name);

		snprintf(path, sizeof(path), "private.attachments[%zu].name", i);
		if (name[0] == '\0') {
			v_add(v, path, "the attachment's file name is missing; give e.g. plan.pdf");
		} else if (strlen(name) > RETE_SHORT_MAX) {
			v_cap(v, path, name, RETE_SHORT_MAX, true);
		} else {
			bool ok = strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
			for (const char *q = name; ok && *q != '\0'; q++)
				ok = *q != '/' && *q != '\\' && (unsigned char)*q >= 0x20 &&
				     *q != 0x7f;
			if (!ok)
				v_add(v, path,
				      "the attachment's file name has a '/', a '\\' or a control "
				      "character, or is '.' or '..'; give a plain file name such "
				      "as plan.pdf");
		}

		snprintf(path, sizeof(path), "private.attachments[%zu].mediaType", i);
		const char *mt = v_str(a->media_type);
		char show[64];
		if (mt[0] == '\0')
			v_add(v, path,
			      "the attachment's mediaType is missing; give type/subtype, e.g. "
			      "application/pdf");
		else if (strlen(mt) > RETE_SHORT_MAX || !v_media_type(mt))
			v_add(v, path,
			      "mediaType %s is not of the form type/subtype (e.g. application/pdf, "
			      "image/jpeg)",
			      v_show(mt, show));

		snprintf(path, sizeof(path), "private.attachments[%zu].content", i);
		if (a->content.len == 0)
			v_add(v, path,
			      "the attachment's content is empty; attach the file's bytes");

		snprintf(path, sizeof(path), "private.attachments[%zu].sha256", i);
		if (a->sha256.len != 0) {
			uint8_t h[crypto_hash_sha256_BYTES];
			if (a->sha256.len != sizeof(h)) {
				v_add(v, path,
				      "the hash is %zu bytes long; a SHA-256 is exactly 32 bytes, "
				      "or leave it out",
				      a->sha256.len);
			} else {
				crypto_hash_sha256(h, a->content.data, a->content.len);
				if (memcmp(h, a->sha256.data, sizeof(h)) != 0)
					v_add(v, path,
					      "sha256 does not match the SHA-256 of the content; "
					      "the file changed or the hash is of another file "
					      "(or leave sha256 out)");
			}
		}
	}
}

/* ------------------------------------------------------------------------
 * Entry point
 */

bool rete_body_is_agency(const Rete__Message *msg)
{
	if (msg == NULL)
		return false;
	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_REFERRAL:
		return msg->referral != NULL;
	case RETE__MESSAGE__BODY_UPDATE:
		return msg->update != NULL;
	case RETE__MESSAGE__BODY_NOTE:
		return msg->note != NULL;
	default:
		return false;
	}
}

rete_err rete_validate_message(const Rete__Message *msg, const Rete__Private *priv,
			       rete_validate_mode mode, rete_problems *out)
{
	v_ctx v = {.out = out, .count = 0, .mode = mode};
	const char *body = NULL;
	bool broker_body;

	if (mode != RETE_VALIDATE_DRAFT && mode != RETE_VALIDATE_SIGNED &&
	    mode != RETE_VALIDATE_BROKER) {
		v_add(&v, "", "internal: unknown validation mode %d", (int)mode);
		return RETE_EINVAL;
	}
	if (msg == NULL) {
		v_add(&v, "", "there is no message to validate");
		return RETE_EINVAL;
	}

	/* A oneof member pointer may be NULL only in a message built by hand;
	 * treat it as no body. */
	body = rete_message_kind(msg);
	if (strcmp(body, "none") == 0 || msg->referral == NULL) /* the union's members alias */
		body = NULL;
	if (body == NULL) {
		v_add(&v, "",
		      mode == RETE_VALIDATE_BROKER
			  ? "the message has no body; the broker originates delivery, notice, "
			    "directory or epoch"
			  : "the message has no body; give exactly one of referral, update or "
			    "note");
		v_envelope(&v, msg, mode != RETE_VALIDATE_BROKER);
		return RETE_EINVAL;
	}
	broker_body = !rete_body_is_agency(msg);
	if (mode == RETE_VALIDATE_BROKER && !broker_body) {
		v_add(&v, body,
		      "a %s is sent by an agency, never originated by the broker; the broker "
		      "originates delivery, notice, directory and epoch",
		      body);
		return RETE_EINVAL;
	}
	if (mode != RETE_VALIDATE_BROKER && broker_body) {
		v_add(&v, body,
		      "a %s is written only by the broker; an agency may send referral, update "
		      "or note",
		      body);
		return RETE_EINVAL;
	}

	v_envelope(&v, msg, !broker_body);
	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_REFERRAL:
		v_referral(&v, msg->referral);
		break;
	case RETE__MESSAGE__BODY_UPDATE:
		v_update(&v, msg->update);
		break;
	case RETE__MESSAGE__BODY_NOTE:
		v_note(&v, msg->note, priv);
		break;
	case RETE__MESSAGE__BODY_DELIVERY:
		v_delivery(&v, msg->delivery);
		break;
	case RETE__MESSAGE__BODY_NOTICE:
		v_notice(&v, msg->notice);
		break;
	case RETE__MESSAGE__BODY_DIRECTORY:
		v_directory(&v, msg->directory);
		break;
	case RETE__MESSAGE__BODY_EPOCH:
		v_epoch(&v, msg->epoch);
		break;
	default:
		break;
	}

	if (priv != NULL) {
		if (broker_body)
			v_add(&v, "private", "a %s carries no sealed part; leave private out",
			      body);
		else
			v_private(&v, priv, msg->body_case);
	}
	return v.count == 0 ? RETE_OK : RETE_EINVAL;
}
