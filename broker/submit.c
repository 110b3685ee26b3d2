/* submit.c — the checks a submission passes before it reaches the store.
 *
 * The order follows the pipeline of DESIGN.md: decode strictly, then who
 * sends (the authenticated party, an agency, for our log), then — after the
 * signature, checked for the whole batch on the verify pool — the sealed
 * part's hash, the message's own validity, the directory and the policy.
 * Every refusal names the field, what was wrong and what would be accepted.
 * The lifecycle and dedup are the store's (it sees earlier ops of the same
 * batch).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "broker_impl.h"
#include "validate.h"

void broker_utf8_clean(char *s)
{
	unsigned char *p = (unsigned char *)s;
	while (*p) {
		size_t n = *p < 0x80		      ? 1
			   : *p >= 0xC2 && *p <= 0xDF ? 2
			   : *p >= 0xE0 && *p <= 0xEF ? 3
			   : *p >= 0xF0 && *p <= 0xF4 ? 4
						      : 0;
		bool ok = n > 0;
		for (size_t i = 1; ok && i < n; i++)
			ok = (p[i] & 0xC0) == 0x80; /* also stops at the NUL */
		if (!ok) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

void broker_refuse(broker_frame *f, Rete__ErrorCode code, const char *field, const char *fmt, ...)
{
	f->pending = false;
	f->error = code;
	snprintf(f->field, sizeof(f->field), "%s", field ? field : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(f->error_text, sizeof(f->error_text), fmt, ap);
	va_end(ap);
	broker_utf8_clean(f->error_text);
	broker_utf8_clean(f->field);
}

void broker_submit_precheck(broker *b, broker_frame *f)
{
	const Rete__Submit *s = f->cf->submit;
	rete_msg m;
	f->pending = true;
	if (s->signed_message.len == 0) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_MALFORMED, "signedMessage",
			      "the SUBMIT frame carries no signed message; send the SignedMessage "
			      "bytes in signed_message");
		return;
	}
	if (rete_signed_decode_in(s->signed_message.data, s->signed_message.len, f->arena, &f->sm,
				  &f->msg, &m) != RETE_OK) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_MALFORMED, "signedMessage",
			      "the signed message does not decode strictly: %s", m.text);
		return;
	}
	const Rete__Message *msg = f->msg;
	/* Personal data or free text where only codes go (protocol 3) is
	 * refused first: the sentences below and the broker's log repeat the
	 * message's ids, which must not be a fiscal code or a name. */
	rete_problems pd = {0};
	f->valid = rete_validate_message(msg, NULL, RETE_VALIDATE_SIGNED, &pd) == RETE_OK;
	size_t k = rete_validate_lead(&pd);
	if (pd.n > 0 && pd.items[k].error == RETE__ERROR_CODE__ERROR_CODE_PERSONAL_DATA) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_PERSONAL_DATA, pd.items[k].path,
			      "%s: %s", pd.items[k].path, pd.items[k].text);
		rete_problems_free(&pd);
		return;
	}
	rete_problems_free(&pd);
	if (strcmp(msg->sender, f->party) != 0) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_SENDER_MISMATCH, "sender",
			      "message %.64s names sender '%.64s' but this connection is "
			      "authenticated as '%s'; a party may only send as itself",
			      msg->id, msg->sender, f->party);
		return;
	}
	if (!broker_kind_is_agency(f->who->kind)) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_NOT_AUTHORIZED, "sender",
			      "%s is a %s: only agencies ("
			      "social-services, job-centre, health, "
			      "family-centre, school, cooperative) submit messages",
			      f->party, broker_kind_name(f->who->kind));
		return;
	}
	if (!rete_body_is_agency(msg)) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_NOT_AUTHORIZED, "body",
			      "message %.64s carries a %s body, which only the broker writes; "
			      "agencies send referral, update or note",
			      msg->id, rete_message_kind(msg));
		return;
	}
	if (strcmp(msg->origin, b->cfg->origin) != 0) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_WRONG_ORIGIN, "origin",
			      "message %.64s is meant for log '%.100s'; this broker keeps log '%s'",
			      msg->id, msg->origin, b->cfg->origin);
		return;
	}
}

/* list_add appends item to the ", "-separated list in buf (n bytes) when
 * it fits whole, keeping room for the tail " and 999 more"; otherwise it
 * counts it in *more. A list is never cut inside a word. */
static void list_add(char *buf, size_t n, const char *item, size_t *more)
{
	size_t have = strlen(buf), need = (have ? 2 : 0) + strlen(item);
	if (*more || have + need + sizeof(" and 999999 more") >= n) {
		(*more)++;
		return;
	}
	snprintf(buf + have, n - have, "%s%s", have ? ", " : "", item);
}

static void list_end(char *buf, size_t n, size_t more)
{
	size_t have = strlen(buf);
	if (more)
		snprintf(buf + have, n - have, " and %zu more", more);
	else if (!have)
		snprintf(buf, n, "none");
}

/* kinds_from lists the kinds `from` may refer to. */
static void kinds_from(const broker_config *c, Rete__PartyKind from, char *buf, size_t n)
{
	size_t more = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < c->nroutes; i++)
		if (c->routes[i].from == from)
			list_add(buf, n, broker_kind_name(c->routes[i].to), &more);
	list_end(buf, n, more);
}

static void services_of(const broker_party *p, char *buf, size_t n)
{
	size_t more = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < p->nservices; i++)
		list_add(buf, n, p->services[i], &more);
	list_end(buf, n, more);
}

static void check_referral(broker *b, broker_frame *f, const broker_party *to)
{
	const Rete__Referral *r = f->msg->referral;
	const broker_config *c = b->cfg;
	/* room for ~25 service codes; a longer list ends "and N more" (the
	 * sentence fits RETE_STORE_ERROR_MAX whole) */
	char list[1536];
	if (!broker_config_route_allowed(c, f->who->kind, to->kind)) {
		kinds_from(c, f->who->kind, list, sizeof(list));
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_ROUTE_FORBIDDEN, "recipient",
			      "referral to %s: a %s may not refer to a %s; it may refer to: %s",
			      to->id, broker_kind_name(f->who->kind), broker_kind_name(to->kind),
			      list);
		return;
	}
	bool consent = false;
	if (!broker_party_offers(to, r->service, &consent)) {
		services_of(to, list, sizeof(list));
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_SERVICE_NOT_OFFERED,
			      "referral.service",
			      "referral to %s: service '%.64s' is not offered; offered: %s", to->id,
			      r->service, list);
		return;
	}
	if (consent) {
		const Rete__Consent *cs = r->consent;
		bool ok = cs && cs->basis != RETE__CONSENT_BASIS__CONSENT_BASIS_UNSPECIFIED;
		if (ok && (cs->basis == RETE__CONSENT_BASIS__CONSENT_BASIS_CONSENT ||
			   cs->basis == RETE__CONSENT_BASIS__CONSENT_BASIS_GUARDIAN_CONSENT))
			ok = cs->given_at > 0;
		else if (ok)
			ok = cs->legal_basis && cs->legal_basis[0];
		if (!ok)
			broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_CONSENT_REQUIRED,
				      "referral.consent",
				      "referral to %s: service '%.64s' needs the person's consent "
				      "(basis consent or guardian-consent with givenAt) or a legal "
				      "basis (legal-obligation, public-interest or vital-interest "
				      "with legalBasis naming the law)",
				      to->id, r->service);
	}
}

/* check_counterpart: an update or a note about a known referral, from one
 * of its parties, goes to the other party of that referral. */
static void check_counterpart(broker *b, broker_frame *f, const char *ref_id)
{
	if (!ref_id || !ref_id[0])
		return;
	Rete__ReferralInfo *ri = NULL;
	if (rete_store_referral(b->store, NULL, ref_id, &ri, NULL) != RETE_OK)
		return; /* unknown (or in this very batch): the store decides */
	const char *other = NULL;
	if (strcmp(ri->requester, f->party) == 0)
		other = ri->performer;
	else if (strcmp(ri->performer, f->party) == 0)
		other = ri->requester;
	/* not a party: the store refuses it as it refuses an unknown id, with
	 * the same code and sentence (report s12, 7: "referral X is between A
	 * and B" told a third agency that X exists and who its parties are) */
	if (other != NULL && strcmp(other, f->msg->recipient) != 0)
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_INVALID, "recipient",
			      "messages about referral %.64s go to %s, not to %.64s", ref_id, other,
			      f->msg->recipient);
	rete__referral_info__free_unpacked(ri, NULL);
}

void broker_submit_check(broker *b, broker_frame *f, const Rete__Submit *s)
{
	const Rete__Message *msg = f->msg;
	if (!f->sig_ok) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_BAD_SIGNATURE, "signature",
			      "the signature of message %.64s does not verify with the key of %s "
			      "in the directory; sign the exact Message bytes with %s's key",
			      msg->id, f->party, f->party);
		return;
	}
	ProtobufCBinaryData ph = rete_message_private_hash(msg);
	if (ph.len > 0) {
		uint8_t h[RETE_HASH_LEN];
		if (s->sealed.len == 0) {
			broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_SEALED_HASH, "sealed",
				      "message %.64s carries the hash of a sealed part but the "
				      "SUBMIT frame has none; send the sealed part beside it",
				      msg->id);
			return;
		}
		rete_merkle_sha256(h, s->sealed.data, s->sealed.len); /* OpenSSL's */
		if (ph.len != RETE_HASH_LEN || memcmp(h, ph.data, RETE_HASH_LEN) != 0) {
			broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_SEALED_HASH, "sealed",
				      "the sealed part sent with message %.64s does not match its "
				      "privateSha256; send the very ciphertext whose SHA-256 was "
				      "signed",
				      msg->id);
			return;
		}
	} else if (s->sealed.len > 0) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_SEALED_HASH, "sealed",
			      "a sealed part came with message %.64s but its body carries no "
			      "privateSha256; sign the hash of the sealed part, or send none",
			      msg->id);
		return;
	}
	const broker_party *to = broker_config_party(b->cfg, msg->recipient);
	if (!to || !broker_kind_is_agency(to->kind)) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_UNKNOWN_PARTY, "recipient",
			      to ? "recipient %.64s is a %s, not an agency; messages go to agencies"
				 : "recipient %.64s is not in the directory; send to a party "
				   "listed in the WELCOME's directory",
			      msg->recipient, to ? broker_kind_name(to->kind) : "");
		return;
	}
	if (strcmp(to->id, f->party) == 0) {
		broker_refuse(f, RETE__ERROR_CODE__ERROR_CODE_INVALID, "recipient",
			      "message %.64s is addressed to its own sender %s; address another "
			      "agency",
			      msg->id, f->party);
		return;
	}
	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_REFERRAL:
		check_referral(b, f, to);
		break;
	case RETE__MESSAGE__BODY_UPDATE:
		check_counterpart(b, f, msg->update->referral_id);
		break;
	case RETE__MESSAGE__BODY_NOTE:
		check_counterpart(b, f, msg->note->referral_id);
		break;
	default:
		break;
	}
	if (!f->pending)
		return;
	/* The message's own validity comes after the policy, so that a
	 * referral without consent to a consent service says CONSENT_REQUIRED
	 * (the policy's word) rather than a generic INVALID. The precheck ran
	 * the same validation of the same message: when it found nothing, so
	 * would this; otherwise it runs again for the sentence. */
	if (f->valid)
		return;
	rete_problems pr = {0};
	if (rete_validate_message(msg, NULL, RETE_VALIDATE_SIGNED, &pr) != RETE_OK) {
		/* personal data or free text in the metadata leads (protocol 3):
		 * its own error code, so the sender knows it is not a typo */
		size_t k = rete_validate_lead(&pr);
		Rete__ErrorCode code = pr.n && pr.items[k].error
					   ? (Rete__ErrorCode)pr.items[k].error
					   : RETE__ERROR_CODE__ERROR_CODE_INVALID;
		if (pr.n > 1)
			broker_refuse(f, code, pr.items[k].path, "%s: %s (and %zu more problem%s)",
				      pr.items[k].path, pr.items[k].text, pr.n - 1,
				      pr.n > 2 ? "s" : "");
		else
			broker_refuse(f, code, pr.n ? pr.items[0].path : "", "%s%s%s",
				      pr.n ? pr.items[0].path : "", pr.n ? ": " : "",
				      pr.n ? pr.items[0].text : "the message is not valid");
		rete_problems_free(&pr);
		return;
	}
	rete_problems_free(&pr);
}
