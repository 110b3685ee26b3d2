/* test_validate.c — semantic validation: valid messages pass, and each rule
 * broken on its own yields exactly one problem at the expected JSON path. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "lifecycle.h"
#include "validate.h"

#define DRAFT  RETE_VALIDATE_DRAFT
#define SIGNED RETE_VALIDATE_SIGNED
#define BROKER RETE_VALIDATE_BROKER

/* Everything one message and its private part point to, so a test can
 * break one field and put it back. */
typedef struct fx {
	Rete__Message msg;
	Rete__Operator op;
	Rete__Referral ref;
	Rete__Consent consent;
	Rete__ReferralUpdate upd;
	Rete__StatusReason sr;
	Rete__Outcome outcome;
	Rete__CaseNote note;
	Rete__Delivery delivery;
	Rete__Notice notice;
	Rete__Directory dir;
	Rete__Party party[2];
	Rete__Party *parties[2];
	Rete__Service svc;
	Rete__Service *svcs[1];
	Rete__Private priv;
	Rete__Person person;
	Rete__Contact contact;
	Rete__Contact *contacts[1];
	Rete__Attachment att;
	Rete__Attachment *atts[1];
	uint8_t sealed_hash[32];
	uint8_t key[2][32];
	uint8_t att_hash[32];
	uint8_t bad_hash[40];
	char longs[5000];
	Rete__SignedAck ack; /* delivery.ack / notice.ack (fx_ack) */
	uint8_t ack_body[256];
	uint8_t ack_sig[64];
	uint8_t ack_leaf[32];
} fx;

static const char att_content[] = "%PDF-1.4 a service agreement";

static void fx_envelope(fx *f)
{
	rete__message__init(&f->msg);
	rete__operator__init(&f->op);
	f->msg.id = "m-2026-0001";
	f->msg.sender = "social.mantova";
	f->msg.recipient = "cpi.mantova";
	f->msg.case_id = "case-2026-0042";
	f->msg.created_at = 1795000000000;
	f->msg.origin = "rete.mantova";
	f->op.staff_id = "s1234";
	f->op.role = "social-worker";
	f->msg.operator_ = &f->op;
}

static void fx_private(fx *f)
{
	rete__private__init(&f->priv);
	rete__person__init(&f->person);
	rete__contact__init(&f->contact);
	rete__attachment__init(&f->att);
	f->person.name = "Maria Rossi";
	f->person.fiscal_code = "RSSMRA80A41E897X";
	f->person.birth_date = "1980-01-01";
	f->contact.kind = "phone";
	f->contact.value = "+39 0376 000000";
	f->contacts[0] = &f->contact;
	f->person.contacts = f->contacts;
	f->person.n_contacts = 1;
	f->priv.person = &f->person;
	f->priv.reason = "Lost her job; two children at school.";
	f->priv.notes = "Agreed on a first meeting.";
	f->att.name = "plan.pdf";
	f->att.media_type = "application/pdf";
	f->att.content.data = (uint8_t *)att_content;
	f->att.content.len = strlen(att_content);
	crypto_hash_sha256(f->att_hash, f->att.content.data, f->att.content.len);
	f->att.sha256.data = f->att_hash;
	f->att.sha256.len = 32;
	f->atts[0] = &f->att;
	f->priv.attachments = f->atts;
	f->priv.n_attachments = 1;
}

static fx *fx_referral(fx *f)
{
	memset(f, 0, sizeof(*f));
	fx_envelope(f);
	fx_private(f);
	rete__referral__init(&f->ref);
	rete__consent__init(&f->consent);
	memset(f->sealed_hash, 0xab, sizeof(f->sealed_hash));
	f->ref.service = "employment-orientation";
	f->ref.priority = RETE__PRIORITY__PRIORITY_URGENT;
	f->ref.reason_code = "unemployment";
	f->consent.basis = RETE__CONSENT_BASIS__CONSENT_BASIS_CONSENT;
	f->consent.given_at = 1794900000000;
	f->consent.reference = "CONS-2026-17";
	f->ref.consent = &f->consent;
	f->ref.age_band = RETE__AGE_BAND__AGE_BAND_ADULT;
	f->ref.private_sha256.data = f->sealed_hash;
	f->ref.private_sha256.len = 32;
	f->msg.body_case = RETE__MESSAGE__BODY_REFERRAL;
	f->msg.referral = &f->ref;
	return f;
}

/* An update from the performer: accepted. */
static fx *fx_update(fx *f)
{
	memset(f, 0, sizeof(*f));
	fx_envelope(f);
	fx_private(f);
	f->msg.sender = "cpi.mantova";
	f->msg.recipient = "social.mantova";
	rete__referral_update__init(&f->upd);
	rete__status_reason__init(&f->sr);
	rete__outcome__init(&f->outcome);
	f->upd.referral_id = "m-2026-0001";
	f->upd.status = RETE__STATUS__STATUS_ACCEPTED;
	f->upd.business_status = "appointment-booked";
	f->msg.body_case = RETE__MESSAGE__BODY_UPDATE;
	f->msg.update = &f->upd;
	return f;
}

static fx *fx_note(fx *f)
{
	memset(f, 0, sizeof(*f));
	fx_envelope(f);
	fx_private(f);
	f->priv.person = NULL; /* minimisation: a note need not name the person */
	rete__case_note__init(&f->note);
	memset(f->sealed_hash, 0xcd, sizeof(f->sealed_hash));
	f->note.referral_id = "m-2026-0001";
	f->note.kind = "meeting-minutes";
	f->note.private_sha256.data = f->sealed_hash;
	f->note.private_sha256.len = 32;
	f->msg.body_case = RETE__MESSAGE__BODY_NOTE;
	f->msg.note = &f->note;
	return f;
}

static fx *fx_directory(fx *f)
{
	memset(f, 0, sizeof(*f));
	fx_envelope(f);
	f->msg.sender = "broker.mantova";
	f->msg.recipient = "";
	f->msg.case_id = "";
	f->msg.operator_ = NULL;
	rete__directory__init(&f->dir);
	rete__service__init(&f->svc);
	f->svc.code = "employment-orientation";
	f->svc.name = "Orientamento al lavoro";
	f->svcs[0] = &f->svc;
	for (int i = 0; i < 2; i++) {
		rete__party__init(&f->party[i]);
		memset(f->key[i], 0x11 * (i + 1), 32);
		f->party[i].public_key.data = f->key[i];
		f->party[i].public_key.len = 32;
		f->parties[i] = &f->party[i];
	}
	f->party[0].id = "social.mantova";
	f->party[0].kind = RETE__PARTY_KIND__PARTY_KIND_SOCIAL_SERVICES;
	f->party[1].id = "cpi.mantova";
	f->party[1].kind = RETE__PARTY_KIND__PARTY_KIND_JOB_CENTRE;
	f->party[1].services = f->svcs;
	f->party[1].n_services = 1;
	f->dir.serial = 1;
	f->dir.parties = f->parties;
	f->dir.n_parties = 2;
	f->msg.body_case = RETE__MESSAGE__BODY_DIRECTORY;
	f->msg.directory = &f->dir;
	return f;
}

/* fx_ack packs into f->ack the body of a signed acknowledgement of entry
 * index with error (the signature is not checked here: any 64 bytes). */
static void fx_ack_text(fx *f, uint64_t index, Rete__ErrorCode error, const char *text);

static void fx_ack(fx *f, uint64_t index, Rete__ErrorCode error)
{
	fx_ack_text(f, index, error, error ? "the sealed part does not open" : "");
}

/* fx_ack_text: fx_ack with the body's error_text. */
static void fx_ack_text(fx *f, uint64_t index, Rete__ErrorCode error, const char *text)
{
	Rete__AckBody b = RETE__ACK_BODY__INIT;
	b.origin = "rete.example/mantova";
	b.recipient = "cpi.mantova";
	b.index = index;
	memset(f->ack_leaf, 0x5a, sizeof(f->ack_leaf));
	b.leaf_hash.data = f->ack_leaf;
	b.leaf_hash.len = sizeof(f->ack_leaf);
	b.acked_at = 1795000100000;
	b.error = error;
	b.error_text = (char *)text;
	assert_true(rete__ack_body__get_packed_size(&b) <= sizeof(f->ack_body));
	rete__signed_ack__init(&f->ack);
	f->ack.body.len = rete__ack_body__pack(&b, f->ack_body);
	f->ack.body.data = f->ack_body;
	memset(f->ack_sig, 0x11, sizeof(f->ack_sig));
	f->ack.signature.data = f->ack_sig;
	f->ack.signature.len = sizeof(f->ack_sig);
}

static fx *fx_delivery(fx *f)
{
	memset(f, 0, sizeof(*f));
	fx_envelope(f);
	f->msg.sender = "broker.mantova";
	f->msg.operator_ = NULL;
	rete__delivery__init(&f->delivery);
	f->delivery.index = 7;
	f->delivery.message_id = "m-2026-0001";
	f->delivery.referral_id = "m-2026-0001";
	f->delivery.delivered_at = 1795000100000;
	fx_ack(f, 7, 0);
	f->delivery.ack = &f->ack;
	f->msg.body_case = RETE__MESSAGE__BODY_DELIVERY;
	f->msg.delivery = &f->delivery;
	return f;
}

static fx *fx_notice(fx *f)
{
	memset(f, 0, sizeof(*f));
	fx_envelope(f);
	f->msg.sender = "broker.mantova";
	f->msg.operator_ = NULL;
	rete__notice__init(&f->notice);
	f->notice.kind = RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED;
	f->notice.index = 3;
	f->notice.message_id = "m-2026-0001";
	f->notice.error = RETE__ERROR_CODE__ERROR_CODE_EXPIRED;
	f->notice.text = "not delivered within 5 days";
	f->msg.body_case = RETE__MESSAGE__BODY_NOTICE;
	f->msg.notice = &f->notice;
	return f;
}

static void dump(const rete_problems *p)
{
	for (size_t i = 0; i < p->n; i++)
		print_message("  problem %zu: [%s] %s\n", i, p->items[i].path, p->items[i].text);
}

/* pass: no problem in this mode. */
static void pass_(const fx *f, const Rete__Private *priv, rete_validate_mode mode, int line)
{
	rete_problems p = {0};
	rete_err e = rete_validate_message(&f->msg, priv, mode, &p);
	if (e != RETE_OK || p.n != 0) {
		dump(&p);
		rete_problems_free(&p);
		fail_msg("line %d: expected no problem in mode %d", line, (int)mode);
	}
	rete_problems_free(&p);
}
#define pass(f, priv, mode) pass_((f), (priv), (mode), __LINE__)

/* one: exactly one problem, at `path`; its sentence is returned in text
 * (if not NULL) for further checks. */
static void one_(const fx *f, const Rete__Private *priv, rete_validate_mode mode, const char *path,
		 char *text, int line)
{
	rete_problems p = {0};
	rete_err e = rete_validate_message(&f->msg, priv, mode, &p);
	if (e != RETE_EINVAL || p.n != 1 || strcmp(p.items[0].path, path) != 0 ||
	    strlen(p.items[0].text) < 10) {
		dump(&p);
		rete_problems_free(&p);
		fail_msg(
		    "line %d: expected exactly one problem at '%s' (mode %d), got %zu (err %d)",
		    line, path, (int)mode, p.n, (int)e);
	}
	if (text != NULL)
		snprintf(text, 384, "%s", p.items[0].text);
	rete_problems_free(&p);
	/* and the verdict alone agrees */
	assert_int_equal(rete_validate_message(&f->msg, priv, mode, NULL), RETE_EINVAL);
}
#define one(f, priv, mode, path)	    one_((f), (priv), (mode), (path), NULL, __LINE__)
#define one_text(f, priv, mode, path, text) one_((f), (priv), (mode), (path), (text), __LINE__)

/* A string of n copies of c, in f->longs. */
static char *longstr(fx *f, char c, size_t n)
{
	assert_true(n < sizeof(f->longs));
	memset(f->longs, c, n);
	f->longs[n] = '\0';
	return f->longs;
}

/* ------------------------------------------------------------------------ */

static void test_valid_pass(void **state)
{
	(void)state;
	fx f;

	fx_referral(&f);
	pass(&f, NULL, DRAFT);
	pass(&f, NULL, SIGNED);
	pass(&f, &f.priv, DRAFT);
	pass(&f, &f.priv, SIGNED);
	f.ref.private_sha256.len = 0; /* draft: the agent fills it */
	pass(&f, &f.priv, DRAFT);
	pass(&f, &f.priv, SIGNED);

	fx_update(&f);
	pass(&f, NULL, DRAFT);
	pass(&f, NULL, SIGNED);
	pass(&f, &f.priv, SIGNED);
	f.priv.person = NULL; /* an update need not name the person */
	pass(&f, &f.priv, SIGNED);

	fx_note(&f);
	pass(&f, NULL, DRAFT);
	pass(&f, NULL, SIGNED);
	pass(&f, &f.priv, DRAFT);
	pass(&f, &f.priv, SIGNED);
	f.note.private_sha256.len = 0;
	pass(&f, &f.priv, DRAFT);
	f.note.referral_id = ""; /* a note on the case as a whole */
	pass(&f, &f.priv, DRAFT);

	fx_directory(&f);
	pass(&f, NULL, BROKER);
	fx_delivery(&f);
	pass(&f, NULL, BROKER);
	f.delivery.index = 0; /* log index 0 is a real index */
	fx_ack(&f, 0, 0);
	pass(&f, NULL, BROKER);
	fx_notice(&f);
	pass(&f, NULL, BROKER);
}

/* Each status an agency may send, with what it needs, passes. */
static void test_valid_update_statuses(void **state)
{
	(void)state;
	fx f;
	static const Rete__Status ok[] = {
	    RETE__STATUS__STATUS_ACCEPTED,    RETE__STATUS__STATUS_REJECTED,
	    RETE__STATUS__STATUS_IN_PROGRESS, RETE__STATUS__STATUS_ON_HOLD,
	    RETE__STATUS__STATUS_COMPLETED,   RETE__STATUS__STATUS_FAILED,
	    RETE__STATUS__STATUS_CANCELLED};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		fx_update(&f);
		f.upd.status = ok[i];
		if (rete_status_needs_reason(ok[i])) {
			f.sr.code = "lack-of-capacity";
			f.upd.status_reason = &f.sr;
		}
		if (ok[i] == RETE__STATUS__STATUS_COMPLETED) {
			f.outcome.result = RETE__OUTCOME_RESULT__OUTCOME_RESULT_UNSUCCESSFUL;
			f.outcome.reason = RETE__OUTCOME_REASON__OUTCOME_REASON_CLIENT_REFUSED;
			f.upd.outcome = &f.outcome;
		}
		pass(&f, NULL, DRAFT);
		pass(&f, NULL, SIGNED);
	}
	fx_update(&f);
	f.upd.status = RETE__STATUS__STATUS_COMPLETED;
	f.outcome.result = RETE__OUTCOME_RESULT__OUTCOME_RESULT_SUCCESSFUL;
	f.upd.outcome = &f.outcome;
	pass(&f, NULL, SIGNED);
}

static void test_draft_fields(void **state)
{
	(void)state;
	fx f;
	rete_problems p = {0};

	fx_referral(&f);
	f.msg.id = "";
	f.msg.sender = "";
	f.msg.created_at = 0;
	f.msg.origin = "";
	pass(&f, &f.priv, DRAFT);

	/* signed: all four are reported, at once */
	assert_int_equal(rete_validate_message(&f.msg, &f.priv, SIGNED, &p), RETE_EINVAL);
	assert_int_equal(p.n, 4);
	assert_string_equal(p.items[0].path, "id");
	assert_string_equal(p.items[1].path, "sender");
	assert_string_equal(p.items[2].path, "createdAt");
	assert_string_equal(p.items[3].path, "origin");
	rete_problems_free(&p);

	fx_referral(&f);
	f.msg.id = "";
	one(&f, NULL, SIGNED, "id");
	fx_referral(&f);
	f.msg.sender = NULL; /* a hand-built message may have NULL strings */
	one(&f, NULL, SIGNED, "sender");
	pass(&f, NULL, DRAFT);
	fx_referral(&f);
	f.msg.created_at = 0;
	one(&f, NULL, SIGNED, "createdAt");
	fx_referral(&f);
	f.msg.origin = "";
	one(&f, NULL, SIGNED, "origin");
}

static void test_envelope_rules(void **state)
{
	(void)state;
	fx f;
	char text[384];

	fx_referral(&f);
	f.msg.id = "m 1";
	one_text(&f, NULL, SIGNED, "id", text);
	assert_null(strstr(text, "'m 1'")); /* a space: maybe a name, never repeated */
	assert_non_null(strstr(text, "a space at position 2"));
	f.msg.id = "m/1";
	one_text(&f, NULL, SIGNED, "id", text);
	assert_non_null(strstr(text, "'m/1'"));
	assert_non_null(strstr(text, "'/' at position 2"));
	one(&f, NULL, DRAFT, "id"); /* given in a draft: still checked */
	f.msg.id = longstr(&f, 'a', 65);
	one(&f, NULL, SIGNED, "id");
	f.msg.id = longstr(&f, 'a', 64);
	pass(&f, NULL, SIGNED);
	f.msg.id = "A.b_c:d-9";
	pass(&f, NULL, SIGNED);

	fx_referral(&f);
	f.msg.sender = "Social Mantova";
	one_text(&f, NULL, SIGNED, "sender", text);
	assert_non_null(strstr(text, "^[a-z0-9][a-z0-9.-]{1,62}$"));
	one(&f, NULL, DRAFT, "sender");

	fx_referral(&f);
	f.msg.recipient = "";
	one(&f, NULL, DRAFT, "recipient");
	f.msg.recipient = "cpi_mantova";
	one(&f, NULL, SIGNED, "recipient");
	f.msg.recipient = "social.mantova";
	one_text(&f, NULL, SIGNED, "recipient", text);
	assert_non_null(strstr(text, "sender itself"));

	fx_referral(&f);
	f.msg.case_id = "";
	one_text(&f, NULL, DRAFT, "caseId", text);
	assert_non_null(strstr(text, "pseudonymous"));
	f.msg.case_id = "Mario Rossi";
	one_text(&f, NULL, SIGNED, "caseId", text);
	assert_non_null(strstr(text, "pseudonymous"));
	f.msg.case_id = longstr(&f, '7', 65);
	one(&f, NULL, SIGNED, "caseId");
	f.msg.case_id = "RSSMRA80A01F205X";
	one_text(&f, NULL, SIGNED, "caseId", text);
	assert_non_null(strstr(text, "fiscal code"));
	assert_null(strstr(text, "RSSMRA")); /* never repeated */
	f.msg.case_id = "rssmra80a01f2q5x";  /* lower case, omocodia letter */
	one(&f, NULL, SIGNED, "caseId");
	f.msg.case_id = "CASE2026ABCD0001";
	pass(&f, NULL, SIGNED);

	fx_referral(&f);
	f.msg.created_at = -5;
	one(&f, NULL, SIGNED, "createdAt");
	one(&f, NULL, DRAFT, "createdAt");

	fx_referral(&f);
	f.msg.origin = "rete mantova";
	one(&f, NULL, SIGNED, "origin");
	f.msg.origin = longstr(&f, 'o', 257);
	one(&f, NULL, SIGNED, "origin");

	fx_referral(&f);
	f.msg.operator_ = NULL;
	one(&f, NULL, DRAFT, "operator");
	one(&f, NULL, SIGNED, "operator");
	fx_referral(&f);
	f.op.staff_id = "";
	one(&f, NULL, SIGNED, "operator.staffId");
	f.op.staff_id = longstr(&f, 's', 257);
	one_text(&f, NULL, SIGNED, "operator.staffId", text);
	assert_non_null(strstr(text, "at most 256"));
	fx_referral(&f);
	f.op.role = "";
	one(&f, NULL, SIGNED, "operator.role");

	fx_referral(&f);
	f.msg.body_case = RETE__MESSAGE__BODY__NOT_SET;
	f.msg.referral = NULL;
	one(&f, NULL, SIGNED, "");
	one(&f, NULL, DRAFT, "");
}

static void test_referral_rules(void **state)
{
	(void)state;
	fx f;
	char text[384];

	fx_referral(&f);
	f.ref.service = "";
	one(&f, NULL, DRAFT, "referral.service");
	f.ref.service = "Housing-Support";
	one_text(&f, NULL, SIGNED, "referral.service", text);
	assert_non_null(strstr(text, "'Housing-Support'"));
	assert_non_null(strstr(text, "a-z, 0-9"));
	f.ref.service = "housing_support";
	one(&f, NULL, SIGNED, "referral.service");
	f.ref.service = longstr(&f, 'h', 65);
	one(&f, NULL, SIGNED, "referral.service");
	f.ref.service = "housing.support-2";
	pass(&f, NULL, SIGNED);

	fx_referral(&f);
	f.ref.priority = RETE__PRIORITY__PRIORITY_UNSPECIFIED;
	one_text(&f, NULL, SIGNED, "referral.priority", text);
	assert_non_null(strstr(text, "routine, urgent or emergency"));
	f.ref.priority = (Rete__Priority)99;
	one(&f, NULL, SIGNED, "referral.priority");

	fx_referral(&f);
	f.ref.reason_code = "";
	one(&f, NULL, SIGNED, "referral.reasonCode");
	f.ref.reason_code = "lost her job";
	one(&f, NULL, SIGNED, "referral.reasonCode");
	f.ref.reason_code = longstr(&f, 'r', 257);
	one(&f, NULL, SIGNED, "referral.reasonCode");

	fx_referral(&f);
	f.ref.consent = NULL;
	one(&f, NULL, DRAFT, "referral.consent");
	fx_referral(&f);
	f.consent.basis = RETE__CONSENT_BASIS__CONSENT_BASIS_UNSPECIFIED;
	one(&f, NULL, SIGNED, "referral.consent.basis");
	f.consent.basis = (Rete__ConsentBasis)42;
	one(&f, NULL, SIGNED, "referral.consent.basis");

	fx_referral(&f);
	f.consent.given_at = 0;
	one(&f, NULL, SIGNED, "referral.consent.givenAt");
	f.consent.basis = RETE__CONSENT_BASIS__CONSENT_BASIS_GUARDIAN_CONSENT;
	one(&f, NULL, SIGNED, "referral.consent.givenAt");
	f.consent.given_at = -1;
	one(&f, NULL, SIGNED, "referral.consent.givenAt");

	static const Rete__ConsentBasis overrides[] = {
	    RETE__CONSENT_BASIS__CONSENT_BASIS_LEGAL_OBLIGATION,
	    RETE__CONSENT_BASIS__CONSENT_BASIS_PUBLIC_INTEREST,
	    RETE__CONSENT_BASIS__CONSENT_BASIS_VITAL_INTEREST};
	for (size_t i = 0; i < 3; i++) {
		fx_referral(&f);
		f.consent.basis = overrides[i];
		f.consent.given_at = 0; /* not needed with an override */
		f.consent.legal_basis = "";
		one(&f, NULL, SIGNED, "referral.consent.legalBasis");
		f.consent.legal_basis = "L. 184/1983 art. 9";
		pass(&f, NULL, SIGNED);
		f.consent.legal_basis = longstr(&f, 'l', RETE_TEXT_MAX + 1);
		one(&f, NULL, SIGNED, "referral.consent.legalBasis");
		/* the law invoked, in words, is logged: it takes no personal
		 * data (a fiscal code, an e-mail address, a phone number) */
		static const char *const laws[] = {
		    "L. 184/1983 art. 9",
		    "L. 184/1983 art. 9 (segnalazione di minore in situazione di abbandono)",
		    "D.Lgs. 196/2003 art. 2-sexies",
		    "Reg. (UE) 2016/679 art. 9(2)(h)",
		    "art. 403 c.c.",
		    "L. 328/2000 art. 22",
		    "D.P.R. 309/1990 art. 120",
		    "D.Lgs. 502/1992 art. 3-septies, c. 2",
		    "L. 149/2001, art. 1 e 2"};
		for (size_t k = 0; k < sizeof(laws) / sizeof(laws[0]); k++) {
			f.consent.legal_basis = (char *)laws[k];
			pass(&f, NULL, SIGNED);
		}
	}
	fx_referral(&f);
	f.consent.reference = longstr(&f, 'c', 257);
	one(&f, NULL, SIGNED, "referral.consent.reference");

	fx_referral(&f);
	f.ref.age_band = RETE__AGE_BAND__AGE_BAND_UNSPECIFIED;
	one(&f, NULL, SIGNED, "referral.ageBand");
	f.ref.age_band = (Rete__AgeBand)6;
	one(&f, NULL, SIGNED, "referral.ageBand");

	fx_referral(&f);
	f.ref.previous_referral = "m/1";
	one(&f, NULL, SIGNED, "referral.previousReferral");
	f.ref.previous_referral = "m-2025-0099";
	pass(&f, NULL, SIGNED);

	fx_referral(&f);
	f.ref.private_sha256.len = 31;
	one_text(&f, NULL, SIGNED, "referral.privateSha256", text);
	assert_non_null(strstr(text, "31 bytes"));
	assert_non_null(strstr(text, "32"));
	f.ref.private_sha256.len = 0;
	pass(&f, NULL, SIGNED);
}

static void test_update_rules(void **state)
{
	(void)state;
	fx f;
	char text[384];

	fx_update(&f);
	f.upd.referral_id = "";
	one(&f, NULL, DRAFT, "update.referralId");
	f.upd.referral_id = "not valid!";
	one(&f, NULL, SIGNED, "update.referralId");

	fx_update(&f);
	f.upd.status = RETE__STATUS__STATUS_UNSPECIFIED;
	one(&f, NULL, SIGNED, "update.status");
	static const Rete__Status refused[] = {RETE__STATUS__STATUS_DRAFT,
					       RETE__STATUS__STATUS_REQUESTED,
					       RETE__STATUS__STATUS_RECEIVED,
					       RETE__STATUS__STATUS_READY,
					       RETE__STATUS__STATUS_ENTERED_IN_ERROR,
					       (Rete__Status)13,
					       (Rete__Status)99};
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		f.upd.status = refused[i];
		one_text(&f, NULL, DRAFT, "update.status", text);
		assert_non_null(strstr(text, "accepted, rejected, in-progress"));
	}
	f.upd.status = RETE__STATUS__STATUS_RECEIVED;
	one_text(&f, NULL, SIGNED, "update.status", text);
	assert_non_null(strstr(text, "'received'"));
	assert_non_null(strstr(text, "broker"));

	static const Rete__Status need_reason[] = {
	    RETE__STATUS__STATUS_REJECTED, RETE__STATUS__STATUS_CANCELLED,
	    RETE__STATUS__STATUS_ON_HOLD, RETE__STATUS__STATUS_FAILED};
	for (size_t i = 0; i < 4; i++) {
		fx_update(&f);
		f.upd.status = need_reason[i];
		one(&f, NULL, SIGNED, "update.statusReason");
		f.sr.code = "";
		f.upd.status_reason = &f.sr;
		one(&f, NULL, SIGNED, "update.statusReason.code");
		f.sr.code = "lack of capacity";
		one(&f, NULL, SIGNED, "update.statusReason.code");
		f.sr.code = "lack-of-capacity";
		pass(&f, NULL, SIGNED);
		f.sr.text = "a sentence"; /* free text: sealed part only */
		one(&f, NULL, SIGNED, "update.statusReason.text");
	}

	fx_update(&f);
	f.upd.business_status = "appointment booked";
	one(&f, NULL, SIGNED, "update.businessStatus");

	fx_update(&f);
	f.upd.status = RETE__STATUS__STATUS_COMPLETED;
	one(&f, NULL, SIGNED, "update.outcome");
	f.upd.outcome = &f.outcome;
	one(&f, NULL, SIGNED, "update.outcome.result"); /* result unset */
	f.outcome.result = RETE__OUTCOME_RESULT__OUTCOME_RESULT_UNSUCCESSFUL;
	one_text(&f, NULL, SIGNED, "update.outcome.reason", text);
	assert_non_null(strstr(text, "client-refused"));
	f.outcome.reason = (Rete__OutcomeReason)77;
	one(&f, NULL, SIGNED, "update.outcome.reason");
	f.outcome.reason = RETE__OUTCOME_REASON__OUTCOME_REASON_NO_LONGER_NEEDED;
	pass(&f, NULL, SIGNED);
	f.outcome.result = RETE__OUTCOME_RESULT__OUTCOME_RESULT_SUCCESSFUL;
	one(&f, NULL, SIGNED, "update.outcome.reason");
	f.outcome.reason = RETE__OUTCOME_REASON__OUTCOME_REASON_UNSPECIFIED;
	pass(&f, NULL, SIGNED);
	f.outcome.text = "a comment"; /* free text: sealed part only */
	one(&f, NULL, SIGNED, "update.outcome.text");

	fx_update(&f);
	f.outcome.result = RETE__OUTCOME_RESULT__OUTCOME_RESULT_SUCCESSFUL;
	f.upd.outcome = &f.outcome; /* but the status is accepted */
	one_text(&f, NULL, SIGNED, "update.outcome", text);
	assert_non_null(strstr(text, "only with status completed"));

	fx_update(&f);
	f.upd.private_sha256.data = f.bad_hash;
	f.upd.private_sha256.len = 33;
	one(&f, NULL, SIGNED, "update.privateSha256");
	f.upd.private_sha256.len = 32;
	pass(&f, NULL, SIGNED);
}

static void test_note_rules(void **state)
{
	(void)state;
	fx f;

	fx_note(&f);
	f.note.kind = "";
	one(&f, NULL, SIGNED, "note.kind");
	f.note.kind = "meeting minutes";
	one(&f, NULL, SIGNED, "note.kind");

	fx_note(&f);
	f.note.private_sha256.len = 0;
	one(&f, NULL, SIGNED, "note.privateSha256");
	one(&f, &f.priv, SIGNED, "note.privateSha256");
	one(&f, NULL, DRAFT, "private"); /* nothing to seal */
	pass(&f, &f.priv, DRAFT);

	fx_note(&f);
	f.note.private_sha256.len = 16;
	one(&f, NULL, DRAFT, "note.privateSha256");
	one(&f, NULL, SIGNED, "note.privateSha256");

	fx_note(&f);
	f.note.referral_id = "bad id";
	one(&f, NULL, SIGNED, "note.referralId");

	fx_note(&f);
	f.priv.notes = "";
	f.priv.n_attachments = 0;
	one(&f, &f.priv, SIGNED, "private");
	f.priv.notes = "Minutes of the meeting.";
	pass(&f, &f.priv, SIGNED);
}

static void test_private_rules(void **state)
{
	(void)state;
	fx f;
	char text[384];

	fx_referral(&f);
	f.priv.person = NULL;
	one(&f, &f.priv, DRAFT, "private.person");
	fx_referral(&f);
	f.person.name = "";
	one(&f, &f.priv, DRAFT, "private.person.name");
	fx_update(&f);
	f.person.name = ""; /* a person given must have a name, whatever the body */
	one(&f, &f.priv, DRAFT, "private.person.name");
	fx_referral(&f);
	f.person.name = longstr(&f, 'n', 257);
	one(&f, &f.priv, DRAFT, "private.person.name");

	fx_referral(&f);
	f.person.fiscal_code = "RSSMRA80A41E89";
	one_text(&f, &f.priv, DRAFT, "private.person.fiscalCode", text);
	assert_null(strstr(text, "RSSMRA")); /* personal data is not repeated */
	assert_non_null(strstr(text, "14 characters"));
	f.person.fiscal_code = "rssmra80a41e897x";
	one(&f, &f.priv, DRAFT, "private.person.fiscalCode");
	f.person.fiscal_code = "RSSMRA80A41E897-";
	one(&f, &f.priv, SIGNED, "private.person.fiscalCode");
	f.person.fiscal_code = "";
	pass(&f, &f.priv, DRAFT);
	/* the 11-digit temporary fiscal code (codice fiscale provvisorio),
	 * with the check digit of a partita IVA: 1234567890 -> 3 (odd places
	 * 1+3+5+7+9 = 25, even places doubled less 9 over 9: 4+8+3+7+0 = 22;
	 * (10 - 47 % 10) % 10); the others worked out the same way */
	static const char *const temporary[] = {"12345678903", "00000000000", "07643520567",
						"80012345676", "99999999990"};
	for (size_t i = 0; i < sizeof(temporary) / sizeof(temporary[0]); i++) {
		f.person.fiscal_code = (char *)temporary[i];
		pass(&f, &f.priv, DRAFT);
		pass(&f, &f.priv, SIGNED);
		assert_true(rete_fiscal_code_valid(temporary[i]));
	}
	/* a wrong check digit is refused, saying so, without the code */
	f.person.fiscal_code = "12345678901";
	one_text(&f, &f.priv, DRAFT, "private.person.fiscalCode", text);
	assert_null(strstr(text, "1234567890"));
	assert_non_null(strstr(text, "check digit"));
	assert_non_null(strstr(text, "temporary fiscal code"));
	assert_false(rete_fiscal_code_valid("12345678901"));
	/* two digits swapped: the check digit catches it */
	f.person.fiscal_code = "21345678903";
	one_text(&f, &f.priv, DRAFT, "private.person.fiscalCode", text);
	assert_non_null(strstr(text, "check digit"));
	/* 11 characters not all digits: neither code */
	f.person.fiscal_code = "1234567890A";
	one_text(&f, &f.priv, DRAFT, "private.person.fiscalCode", text);
	assert_non_null(strstr(text, "11 characters"));
	assert_null(strstr(text, "check digit"));
	f.person.fiscal_code = "";

	fx_referral(&f);
	static const char *const bad_dates[] = {"1980-02-30",	   "80-01-01",	 "1980-1-1",
						"1850-06-01",	   "2021-02-29", "1980-13-01",
						"1980-01-01T00:00"};
	for (size_t i = 0; i < sizeof(bad_dates) / sizeof(bad_dates[0]); i++) {
		f.person.birth_date = (char *)bad_dates[i];
		one_text(&f, &f.priv, DRAFT, "private.person.birthDate", text);
		assert_null(strstr(text, bad_dates[i]));
	}
	f.person.birth_date = "2020-02-29";
	pass(&f, &f.priv, DRAFT);
	f.person.birth_date = "";
	pass(&f, &f.priv, DRAFT);

	fx_referral(&f);
	f.contact.kind = "";
	one(&f, &f.priv, DRAFT, "private.person.contacts[0].kind");
	fx_referral(&f);
	f.contact.value = "";
	one(&f, &f.priv, DRAFT, "private.person.contacts[0].value");

	fx_referral(&f);
	f.priv.reason = longstr(&f, 'r', RETE_TEXT_MAX + 1);
	one_text(&f, &f.priv, DRAFT, "private.reason", text);
	assert_non_null(strstr(text, "4096"));
	assert_null(strstr(text, "rrrr"));
	fx_referral(&f);
	f.priv.reason = longstr(&f, 'r', RETE_TEXT_MAX);
	pass(&f, &f.priv, DRAFT);

	fx_referral(&f);
	f.att.name = "";
	one(&f, &f.priv, DRAFT, "private.attachments[0].name");
	f.att.name = "../etc/passwd";
	one(&f, &f.priv, DRAFT, "private.attachments[0].name");
	f.att.name = "..";
	one(&f, &f.priv, DRAFT, "private.attachments[0].name");
	f.att.name = "piano individuale.pdf";
	pass(&f, &f.priv, DRAFT);

	fx_referral(&f);
	f.att.media_type = "";
	one(&f, &f.priv, DRAFT, "private.attachments[0].mediaType");
	f.att.media_type = "pdf";
	one(&f, &f.priv, DRAFT, "private.attachments[0].mediaType");
	f.att.media_type = "application/";
	one(&f, &f.priv, DRAFT, "private.attachments[0].mediaType");
	f.att.media_type = "application/pdf; charset";
	one(&f, &f.priv, DRAFT, "private.attachments[0].mediaType");
	f.att.media_type = "application/vnd.oasis.opendocument.text";
	pass(&f, &f.priv, DRAFT);

	fx_referral(&f);
	f.att.content.len = 0;
	f.att.sha256.len = 0;
	one(&f, &f.priv, DRAFT, "private.attachments[0].content");

	fx_referral(&f);
	f.att_hash[5] ^= 1;
	one_text(&f, &f.priv, DRAFT, "private.attachments[0].sha256", text);
	assert_non_null(strstr(text, "does not match"));
	f.att_hash[5] ^= 1;
	pass(&f, &f.priv, DRAFT);
	f.att.content.len--; /* the content changed, not the hash */
	one(&f, &f.priv, SIGNED, "private.attachments[0].sha256");
	f.att.content.len++;
	f.att.sha256.len = 31;
	one(&f, &f.priv, DRAFT, "private.attachments[0].sha256");
	f.att.sha256.len = 0; /* no hash: nothing to compare */
	pass(&f, &f.priv, DRAFT);
}

static void test_broker_bodies(void **state)
{
	(void)state;
	fx f;
	char text[384];

	fx_directory(&f);
	one_text(&f, NULL, DRAFT, "directory", text);
	assert_non_null(strstr(text, "only by the broker"));
	one(&f, NULL, SIGNED, "directory");
	fx_delivery(&f);
	one(&f, NULL, DRAFT, "delivery");
	one(&f, NULL, SIGNED, "delivery");
	fx_notice(&f);
	one(&f, NULL, DRAFT, "notice");
	one(&f, NULL, SIGNED, "notice");

	fx_referral(&f);
	one(&f, NULL, BROKER, "referral");
	fx_update(&f);
	one(&f, NULL, BROKER, "update");
	fx_note(&f);
	one(&f, NULL, BROKER, "note");

	/* complete envelope required of the broker too */
	fx_delivery(&f);
	f.msg.id = "";
	one(&f, NULL, BROKER, "id");
	fx_delivery(&f);
	f.msg.origin = "";
	one(&f, NULL, BROKER, "origin");
	fx_delivery(&f);
	f.msg.recipient = "";
	one(&f, NULL, BROKER, "recipient");
	fx_delivery(&f);
	f.delivery.message_id = "";
	one(&f, NULL, BROKER, "delivery.messageId");
	fx_delivery(&f);
	f.delivery.delivered_at = 0;
	one(&f, NULL, BROKER, "delivery.deliveredAt");
	fx_delivery(&f);
	fx_private(&f);
	one(&f, &f.priv, BROKER, "private");

	fx_notice(&f);
	f.msg.recipient = ""; /* for the coordinators only */
	pass(&f, NULL, BROKER);
	f.msg.recipient = "Coord";
	one(&f, NULL, BROKER, "recipient");
	fx_notice(&f);
	f.notice.message_id = "";
	one(&f, NULL, BROKER, "notice.messageId");
	fx_notice(&f);
	f.notice.kind = RETE__NOTICE_KIND__NOTICE_KIND_UNSPECIFIED;
	one(&f, NULL, BROKER, "notice.kind");
	fx_notice(&f);
	f.notice.error = (Rete__ErrorCode)500;
	one(&f, NULL, BROKER, "notice.error");

	/* protocol 3: a Delivery and a delivery-refused notice carry the
	 * recipient's signed acknowledgement, about that entry */
	fx_delivery(&f);
	f.delivery.ack = NULL;
	one_text(&f, NULL, BROKER, "delivery.ack", text);
	assert_non_null(strstr(text, "signed acknowledgement"));
	fx_delivery(&f);
	f.delivery.index = 8;
	one_text(&f, NULL, BROKER, "delivery.ack", text);
	assert_non_null(strstr(text, "entry 7"));
	fx_delivery(&f);
	fx_ack(&f, 7, RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN);
	one_text(&f, NULL, BROKER, "delivery.ack", text);
	assert_non_null(strstr(text, "delivery-refused"));
	/* a receipt's acknowledgement carries no text: the log keeps it for ever */
	fx_delivery(&f);
	fx_ack_text(&f, 7, 0, "Maria Rossi was seen today");
	one_text(&f, NULL, BROKER, "delivery.ack", text);
	assert_non_null(strstr(text, "free text"));
	assert_null(strstr(text, "Maria"));
	fx_delivery(&f);
	f.ack.signature.len = 63;
	one(&f, NULL, BROKER, "delivery.ack");
	fx_delivery(&f);
	f.ack_body[0] ^= 0xff; /* no longer an AckBody */
	one(&f, NULL, BROKER, "delivery.ack");
	fx_notice(&f);
	f.notice.kind = RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED;
	f.notice.error = RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN;
	one(&f, NULL, BROKER, "notice.ack");
	fx_ack(&f, 3, RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN);
	f.notice.ack = &f.ack;
	pass(&f, NULL, BROKER);
	f.notice.error = RETE__ERROR_CODE__ERROR_CODE_SEALED_HASH;
	one_text(&f, NULL, BROKER, "notice.ack", text);
	assert_non_null(strstr(text, "must be equal"));
	f.notice.error = 0;
	one(&f, NULL, BROKER, "notice.error");
	fx_notice(&f); /* not-delivered: the broker's word alone, no ack */
	fx_ack(&f, 3, RETE__ERROR_CODE__ERROR_CODE_EXPIRED);
	f.notice.ack = &f.ack;
	one(&f, NULL, BROKER, "notice.ack");

	fx_directory(&f);
	f.msg.recipient = "cpi.mantova";
	one(&f, NULL, BROKER, "recipient");
	fx_directory(&f);
	f.party[1].id = "CPI";
	one(&f, NULL, BROKER, "directory.parties[1].id");
	fx_directory(&f);
	f.party[1].id = "social.mantova";
	one_text(&f, NULL, BROKER, "directory.parties[1].id", text);
	assert_non_null(strstr(text, "parties[0]"));
	fx_directory(&f);
	f.party[0].public_key.len = 31;
	one(&f, NULL, BROKER, "directory.parties[0].publicKey");
	fx_directory(&f);
	f.party[0].kind = RETE__PARTY_KIND__PARTY_KIND_UNSPECIFIED;
	one(&f, NULL, BROKER, "directory.parties[0].kind");
	fx_directory(&f);
	f.svc.code = "Employment";
	one(&f, NULL, BROKER, "directory.parties[1].services[0].code");
}

/* The first entry of a log epoch (a declared restore): broker-only, for
 * no one (no recipient), a new epoch >= 2 after an older one, and the
 * checkpoint it records. */
static void test_epoch_body(void **state)
{
	(void)state;
	fx f;
	Rete__Epoch e;
	rete__epoch__init(&e);
	memset(&f, 0, sizeof(f));
	fx_envelope(&f);
	f.msg.sender = "broker.mantova";
	f.msg.operator_ = NULL;
	f.msg.recipient = "";
	f.msg.case_id = "";
	f.msg.id = "epoch-2";
	e.epoch = 2;
	e.previous_epoch = 1;
	e.checkpoint = "rete.mantova\n8\nroot\n\n- sig\n";
	f.msg.body_case = RETE__MESSAGE__BODY_EPOCH;
	f.msg.epoch = &e;
	pass(&f, NULL, BROKER);
	one(&f, NULL, SIGNED, "epoch"); /* an agency never sends one */
	f.msg.recipient = "cpi.mantova";
	one(&f, NULL, BROKER, "recipient");
	f.msg.recipient = "";
	e.epoch = 1;
	e.previous_epoch = 0;
	rete_problems p = {0};
	assert_int_equal(rete_validate_message(&f.msg, NULL, BROKER, &p), RETE_EINVAL);
	assert_int_equal(p.n, 2); /* epoch.epoch and epoch.previousEpoch */
	rete_problems_free(&p);
	e.epoch = 3;
	e.previous_epoch = 3;
	one(&f, NULL, BROKER, "epoch.previousEpoch");
	e.previous_epoch = 2;
	e.checkpoint = "";
	one(&f, NULL, BROKER, "epoch.checkpoint");
}

static void test_many_problems_at_once(void **state)
{
	(void)state;
	fx f;
	rete_problems p = {0};

	rete_problems_add(&p, "earlier", "a problem found before validation");
	fx_referral(&f);
	f.msg.case_id = "";
	f.ref.priority = RETE__PRIORITY__PRIORITY_UNSPECIFIED;
	f.person.birth_date = "yesterday";
	assert_int_equal(rete_validate_message(&f.msg, &f.priv, DRAFT, &p), RETE_EINVAL);
	assert_int_equal(p.n, 4);
	assert_string_equal(p.items[0].path, "earlier");
	assert_string_equal(p.items[1].path, "caseId");
	assert_string_equal(p.items[2].path, "referral.priority");
	assert_string_equal(p.items[3].path, "private.person.birthDate");
	rete_problems_free(&p);

	/* a list that already holds problems does not make a valid message fail */
	rete_problems_add(&p, "earlier", "a problem found before validation");
	fx_referral(&f);
	assert_int_equal(rete_validate_message(&f.msg, &f.priv, SIGNED, &p), RETE_OK);
	assert_int_equal(p.n, 1);
	rete_problems_free(&p);

	assert_int_equal(rete_validate_message(NULL, NULL, SIGNED, &p), RETE_EINVAL);
	assert_int_equal(p.n, 1);
	rete_problems_free(&p);
	assert_int_equal(rete_validate_message(&f.msg, NULL, (rete_validate_mode)9, &p),
			 RETE_EINVAL);
	assert_int_equal(p.n, 1);
	rete_problems_free(&p);
}

/* Values with control characters and cut multi-byte characters come out as
 * valid, short sentences. */
static void test_sentence_hygiene(void **state)
{
	(void)state;
	fx f;
	char text[384];
	/* 30 x "è" (2 bytes each) then a newline: cut at 48 bytes */
	char id[128] = "";
	for (int i = 0; i < 30; i++)
		strcat(id, "\xc3\xa8");
	strcat(id, "/");

	fx_referral(&f);
	f.msg.id = id;
	one_text(&f, NULL, SIGNED, "id", text);
	assert_null(strchr(text, '\n'));
	assert_non_null(strstr(text, "..."));
	/* every lead byte in the sentence is followed by its continuation */
	for (const unsigned char *q = (const unsigned char *)text; *q; q++)
		if (*q == 0xc3)
			assert_int_equal(q[1], 0xa8);

	/* bytes that are not UTF-8 (a stray byte, an overlong '/', a cut
	 * sequence) become '?' */
	f.msg.id = "ab\xff\xc0\xaf\xc3";
	one_text(&f, NULL, SIGNED, "id", text);
	assert_non_null(strstr(text, "'ab?"
				     "?"
				     "?"
				     "?'")); /* split: no trigraph */
	assert_null(strchr(text, '\xff'));
}

static void test_body_is_agency(void **state)
{
	(void)state;
	fx f;

	assert_true(rete_body_is_agency(&fx_referral(&f)->msg));
	assert_true(rete_body_is_agency(&fx_update(&f)->msg));
	assert_true(rete_body_is_agency(&fx_note(&f)->msg));
	assert_false(rete_body_is_agency(&fx_delivery(&f)->msg));
	assert_false(rete_body_is_agency(&fx_notice(&f)->msg));
	assert_false(rete_body_is_agency(&fx_directory(&f)->msg));
	/* rete_body_is_broker, its mirror: what is acked unsigned (protocol 4) */
	assert_false(rete_body_is_broker(&fx_referral(&f)->msg));
	assert_false(rete_body_is_broker(&fx_update(&f)->msg));
	assert_false(rete_body_is_broker(&fx_note(&f)->msg));
	assert_true(rete_body_is_broker(&fx_delivery(&f)->msg));
	assert_true(rete_body_is_broker(&fx_notice(&f)->msg));
	assert_true(rete_body_is_broker(&fx_directory(&f)->msg));
	Rete__Epoch ep = RETE__EPOCH__INIT;
	f.msg.body_case = RETE__MESSAGE__BODY_EPOCH;
	f.msg.epoch = &ep;
	assert_true(rete_body_is_broker(&f.msg));
	f.msg.epoch = NULL;
	assert_false(rete_body_is_broker(&f.msg));
	f.msg.body_case = RETE__MESSAGE__BODY__NOT_SET;
	f.msg.directory = NULL;
	assert_false(rete_body_is_agency(&f.msg));
	assert_false(rete_body_is_broker(&f.msg));
	assert_false(rete_body_is_agency(NULL));
	assert_false(rete_body_is_broker(NULL));

	assert_true(rete_text_id_valid("a"));
	assert_false(rete_text_id_valid(""));
	assert_false(rete_text_id_valid(NULL));
	assert_false(rete_text_id_valid("a/b"));
}

/* ------------------------------------------------------------------------
 * Only codes in the log (issue 18): free text is refused in the signed
 * metadata and accepted in the sealed part; identifier fields refuse what
 * looks like personal data, each pattern with its own sentence.
 */

/* personal_: exactly one problem at path, flagged ERROR_CODE_PERSONAL_DATA,
 * whose sentence has `want` and does not repeat `value` (personal data). */
static void personal_(const fx *f, const Rete__Private *priv, rete_validate_mode mode,
		      const char *path, const char *want, const char *value, int line)
{
	rete_problems p = {0};
	rete_err e = rete_validate_message(&f->msg, priv, mode, &p);
	if (e != RETE_EINVAL || p.n != 1 || strcmp(p.items[0].path, path) != 0 ||
	    strstr(p.items[0].text, want) == NULL ||
	    (value != NULL && value[0] != '\0' && strstr(p.items[0].text, value) != NULL) ||
	    p.items[0].error != RETE__ERROR_CODE__ERROR_CODE_PERSONAL_DATA) {
		dump(&p);
		rete_problems_free(&p);
		fail_msg("line %d: expected one personal-data problem at '%s' saying '%s'", line,
			 path, want);
	}
	rete_problems_free(&p);
}
#define personal(f, priv, mode, path, want, value)                                                 \
	personal_((f), (priv), (mode), (path), (want), (value), __LINE__)

static void test_free_text_sealed(void **state)
{
	(void)state;
	fx f;

	/* statusReason.text: refused in the metadata, in a draft too */
	fx_update(&f);
	f.upd.status = RETE__STATUS__STATUS_REJECTED;
	f.sr.code = "lack-of-capacity";
	f.sr.text = "No psychologist free for new cases before February.";
	f.upd.status_reason = &f.sr;
	personal(&f, NULL, SIGNED, "update.statusReason.text", "private.statusText", f.sr.text);
	personal(&f, &f.priv, DRAFT, "update.statusReason.text", "free text", f.sr.text);
	/* ... and accepted in the sealed part */
	f.sr.text = "";
	f.priv.status_text = "No psychologist free for new cases before February.";
	pass(&f, &f.priv, DRAFT);
	pass(&f, &f.priv, SIGNED);
	f.priv.status_text = longstr(&f, 's', RETE_TEXT_MAX + 1);
	one(&f, &f.priv, DRAFT, "private.statusText");

	/* outcome.text */
	fx_update(&f);
	f.upd.status = RETE__STATUS__STATUS_COMPLETED;
	f.outcome.result = RETE__OUTCOME_RESULT__OUTCOME_RESULT_SUCCESSFUL;
	f.outcome.text = "Enrolled in a six-month traineeship.";
	f.upd.outcome = &f.outcome;
	personal(&f, NULL, SIGNED, "update.outcome.text", "private.outcomeText", f.outcome.text);
	personal(&f, &f.priv, DRAFT, "update.outcome.text", "free text", f.outcome.text);
	f.outcome.text = "";
	f.priv.outcome_text = "Enrolled in a six-month traineeship.";
	pass(&f, &f.priv, DRAFT);
	pass(&f, &f.priv, SIGNED);
	f.priv.outcome_text = longstr(&f, 'o', RETE_TEXT_MAX + 1);
	one(&f, &f.priv, DRAFT, "private.outcomeText");

	/* a note's title and the person's own id travel sealed */
	fx_note(&f);
	f.priv.title = "Meeting with the family, 24 November";
	pass(&f, &f.priv, DRAFT);
	pass(&f, &f.priv, SIGNED);
	f.priv.title = longstr(&f, 't', RETE_SHORT_MAX + 1);
	one(&f, &f.priv, DRAFT, "private.title");
	fx_referral(&f);
	f.person.person_id = "P-000417";
	pass(&f, &f.priv, DRAFT);
	f.person.person_id = longstr(&f, 'p', RETE_SHORT_MAX + 1);
	one(&f, &f.priv, DRAFT, "private.person.personId");

	/* the broker's own notices keep their sentences */
	fx_notice(&f);
	f.notice.text = "not delivered within 5 days: the recipient's agent was not connected";
	pass(&f, NULL, BROKER);
}

/* Identifier fields, set one at a time on a message that is otherwise
 * valid. */
enum id_field {
	F_ID,
	F_CASE,
	F_STAFF,
	F_UPD_REFERRAL,
	F_PREVIOUS,
	F_BUSINESS,
	F_REASON_CODE_SR,
	F_REASON_CODE,
	F_SERVICE,
	F_NOTE_KIND,
	F_NOTE_REFERRAL,
	F_CONSENT_REF,
	F_ROLE,
	F_COUNT
};

static const char *id_field_set(fx *f, enum id_field k, const char *v)
{
	switch (k) {
	case F_ID:
		fx_referral(f)->msg.id = (char *)v;
		return "id";
	case F_CASE:
		fx_referral(f)->msg.case_id = (char *)v;
		return "caseId";
	case F_STAFF:
		fx_referral(f)->op.staff_id = (char *)v;
		return "operator.staffId";
	case F_UPD_REFERRAL:
		fx_update(f)->upd.referral_id = (char *)v;
		return "update.referralId";
	case F_PREVIOUS:
		fx_referral(f)->ref.previous_referral = (char *)v;
		return "referral.previousReferral";
	case F_BUSINESS:
		fx_update(f)->upd.business_status = (char *)v;
		return "update.businessStatus";
	case F_REASON_CODE_SR:
		fx_update(f);
		f->upd.status = RETE__STATUS__STATUS_REJECTED;
		f->sr.code = (char *)v;
		f->upd.status_reason = &f->sr;
		return "update.statusReason.code";
	case F_REASON_CODE:
		fx_referral(f)->ref.reason_code = (char *)v;
		return "referral.reasonCode";
	case F_SERVICE:
		fx_referral(f)->ref.service = (char *)v;
		return "referral.service";
	case F_NOTE_KIND:
		fx_note(f)->note.kind = (char *)v;
		return "note.kind";
	case F_NOTE_REFERRAL:
		fx_note(f)->note.referral_id = (char *)v;
		return "note.referralId";
	case F_CONSENT_REF:
		fx_referral(f)->consent.reference = (char *)v;
		return "referral.consent.reference";
	case F_ROLE:
		fx_referral(f)->op.role = (char *)v;
		return "operator.role";
	default:
		return "";
	}
}

/* Values that look like personal data, with the words their sentence
 * must have. Lower case so that a service code (a-z only) takes them too
 * where the pattern allows. */
static const struct {
	const char *value, *want;
} looks_personal[] = {
    {"RSSMRA85M41E897X", "fiscal code"},
    {"rssmra85m41e897x", "fiscal code"},     /* case-insensitive */
    {"RSSMRA85M41E89TX", "fiscal code"},     /* omocodia: T for 7 */
    {"rssmra8rm4me8vtx", "fiscal code"},     /* omocodia everywhere */
    {"ref-RSSMRA85M41E897X", "fiscal code"}, /* inside an id */
    {"BNCLCU10T12E897Q.2", "fiscal code"},
    /* written in groups (session 13): single '-', '.', '/' or spaces
     * between the groups do not hide it */
    {"rss-mra-85m41-e897x", "fiscal code"},
    {"RSS.MRA.85M41.E897X", "fiscal code"},
    {"ref-RSSMRA-85M41E897X", "fiscal code"},
    {"rssmra/85/m/41/e/897/x", "fiscal code"},
    {"RSS:MRA:85M41:E897X", "fiscal code"}, /* ':' is an id character */
    {"rss_mra_85m41_e897x", "fiscal code"},
    /* the 11-digit temporary fiscal code (codice fiscale provvisorio)
     * with its check digit, on its own or inside an id (session 13) */
    {"98765432103", "temporary fiscal code"},
    {"12345678903", "temporary fiscal code"},
    {"ref-98765432103", "temporary fiscal code"},
    {"98765432103.2", "temporary fiscal code"},
    {"maria.rossi@example.org", "e-mail address"},
    {"ref-m.rossi@comune.mantova.it", "e-mail address"},
    {"3471234567", "phone number"},
    {"347-1234567", "phone number"},
    {"347.123.4567", "phone number"},
    {"tel-0376555010", "phone number"},
    {"ref.3471234567", "phone number"},
    {"02-1234-5678", "phone number"},
    {"0039-0376-555010", "phone number"},
    {"0376-555-0101", "phone number"},
    {"+393471234567", "phone number"},
    {"+39-0376-555-0101", "phone number"},
    {"0039-347-1234567", "phone number"},
    {"Giulia Bianchi", "a space"},
    {"lack of capacity", "a space"},
    {"ab\tcd", "control character"},
    {"ab\ncd", "control character"},
    {"ab\x7f", "control character"},
    {"ab\xc2\xa0"
     "cd",
     "a space"}, /* U+00A0 no-break space */
    {"ab\xe2\x80\x83"
     "cd",
     "a space"}, /* U+2003 em space */
    {"ab\xc2\x85"
     "cd",
     "control character"}, /* U+0085 next line */
};

/* Near misses: ordinary ids and codes that must pass in every field whose
 * characters allow them. */
static const char *const looks_ordinary[] = {
    "ref-2026-0042",
    "mn-2026-0173",
    "social.mantova-2026-0001",
    "CONS-2026-0412",
    "2026-11-20",
    "20-11-2026",
    "01.12.2026",
    "2026-11-20T09:30:00Z",
    "550e8400-e29b-41d4-a716-446655440000", /* a UUID */
    "12345678-1234-4234-8234-123456789012", /* a UUID of digits only */
    "00345678-0342-4034-8034-034567890123",
    "ref-0142-2026-01", /* a year breaks a digit run */
    "ref-3-2026-0042",
    "1764000000000",	 /* milliseconds since 1970 */
    "m-12345678",	 /* 8 digits */
    "RSSMRA85M41E897",	 /* 15 characters */
    "RSSMRA85M41E897XY", /* 17 */
    "RSSMRA85Z41E897X",	 /* Z is no month */
    "RSSMR485M41E897X",	 /* a digit where a letter goes */
    "CASE2026ABCD0001",
    "as-0042",
    "cpi-017",
    "lack-of-capacity",
    "traineeship-started",
    "98765432104",			    /* 11 digits, the last no check digit */
    "12345678901",			    /* the same */
    "9876543210",			    /* 10 digits */
    "987654321034",			    /* 12 digits */
    "prot-2026-0004512",		    /* what docs/formats.md advises instead */
    "pg98765432103",			    /* 11 digits inside a longer word */
    "RSS-MRA-85Z41-E897X",		    /* groups out of shape: Z is no month */
    "rss-mra-85m41-e897",		    /* groups of 15 */
    "abcdef-ghijkl-mnopqr",		    /* no groups of 16 */
    "codice-privacy-art",		    /* 16 out of shape */
    "garden-lm-a-nr-x-stu-z",		    /* in shape, but no digit: words */
    "abcdef12-a34b-456c-8c9d-0123456789ab", /* a UUID whose groups are in shape */
};

static bool service_chars(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '.' ||
		      *s == '-'))
			return false;
	return true;
}

static void test_identifiers_personal(void **state)
{
	(void)state;
	fx f;

	for (int k = 0; k < F_COUNT; k++) {
		for (size_t i = 0; i < sizeof(looks_personal) / sizeof(looks_personal[0]); i++) {
			const char *v = looks_personal[i].value;
			/* a service code has only a-z 0-9 . -: an upper-case or
			 * '+' value is refused there for its characters anyway */
			if (k == F_SERVICE && !service_chars(v) &&
			    strcmp(looks_personal[i].want, "a space") != 0 &&
			    strcmp(looks_personal[i].want, "control character") != 0 &&
			    strcmp(looks_personal[i].want, "e-mail address") != 0)
				continue;
			const char *path = id_field_set(&f, (enum id_field)k, v);
			print_message("  %s = <%s>\n", path, looks_personal[i].want);
			personal(&f, NULL, SIGNED, path, looks_personal[i].want, v);
			personal(&f, NULL, SIGNED, path, "sealed part", v);
		}
		for (size_t i = 0; i < sizeof(looks_ordinary) / sizeof(looks_ordinary[0]); i++) {
			const char *v = looks_ordinary[i];
			if (k == F_SERVICE && !service_chars(v))
				continue;
			const char *path = id_field_set(&f, (enum id_field)k, v);
			(void)path;
			pass(&f, NULL, SIGNED);
		}
	}

	/* the ids the agent mints (m- and 32 hexadecimal digits of a random
	 * number) never look like personal data */
	fx_referral(&f);
	char minted[40];
	for (int r = 0; r < 20000; r++) {
		uint8_t rnd[16];
		randombytes_buf(rnd, sizeof(rnd));
		memcpy(minted, "m-", 2);
		sodium_bin2hex(minted + 2, sizeof(minted) - 2, rnd, sizeof(rnd));
		f.msg.id = minted;
		pass(&f, NULL, SIGNED);
	}

	/* the law invoked for a consent override is words, logged: it takes no
	 * personal data either */
	{
		static const struct {
			const char *v, *want;
		} personal_laws[] = {
		    {"L. 184/1983 art. 9 per RSSMRA85M41E897X", "fiscal code"},
		    {"art. 403 c.c., segnalato da maria.rossi@example.org", "e-mail address"},
		    {"L. 184/1983 art. 9, madre al 347-1234567", "phone number"},
		    /* the fewest digits a phone number has: 8 after a '+',
		     * across separators */
		    {"L. 184/1983 art. 9, +39-0376-55", "phone number"},
		    {"art. 9 (+12345678)", "phone number"},
		    /* after a UUID, and after a long citation of short numbers
		     * (the quick passes must not stop early) */
		    {"rif. 3f2c8a10-4b6d-4e21-9a7f-0c5d2e8b1a34 tel 0376 555010", "phone number"},
		    {"L. 328/2000 art. 22 c. 2; L. 328/2000 art. 22 c. 2; L. 328/2000 art. 22 "
		     "c. 2; L. 328/2000 art. 22 c. 2; L. 328/2000 art. 22 c. 2; tel. 0376 555010",
		     "phone number"},
		    {"L. 328/2000 art. 22 c. 2; L. 328/2000 art. 22 c. 2; L. 328/2000 art. 22 "
		     "c. 2; L. 328/2000 art. 22 c. 2; per RSSMRA85M41E897X",
		     "fiscal code"},
		    {"L. 328/2000 art. 22 c. 2; L. 328/2000 art. 22 c. 2; L. 328/2000 art. 22 "
		     "c. 2; L. 328/2000 art. 22 c. 2; m.rossi@comune.mantova.it",
		     "e-mail address"},
		    /* session 13: in groups, and the temporary code */
		    {"L. 184/1983 art. 9 per RSS MRA 85M41 E897X", "fiscal code"},
		    {"L. 184/1983 art. 9, codice 98765432103", "temporary fiscal code"},
		};
		for (size_t k = 0; k < sizeof(personal_laws) / sizeof(personal_laws[0]); k++) {
			fx_referral(&f);
			f.consent.basis = RETE__CONSENT_BASIS__CONSENT_BASIS_LEGAL_OBLIGATION;
			f.consent.given_at = 0;
			f.consent.legal_basis = (char *)personal_laws[k].v;
			personal(&f, NULL, SIGNED, "referral.consent.legalBasis",
				 personal_laws[k].want, personal_laws[k].v);
		}
	}

	/* a long citation of short numbers, a year, a UUID and seven digits
	 * after a '+' are no personal data */
	{
		static const char *const ordinary_laws[] = {
		    "L. 328/2000 art. 22 c. 2; L. 328/2000 art. 22 c. 2; L. 328/2000 art. 22 "
		    "c. 2; L. 328/2000 art. 22 c. 2; L. 328/2000 art. 22 c. 2",
		    "D.Lgs. 196/2003 art. 2-sexies, rif. 3f2c8a10-4b6d-4e21-9a7f-0c5d2e8b1a34",
		    "L. 184/1983 art. 9 c. +1234567",
		    /* words whose letters fall in the shape's places, and 11
		     * digits with a wrong check digit */
		    "Codice Privacy Art 2-sexies",
		    "D.Lgs. 196/2003, Codice Privacy, rif. 98765432104",
		};
		for (size_t k = 0; k < sizeof(ordinary_laws) / sizeof(ordinary_laws[0]); k++) {
			fx_referral(&f);
			f.consent.basis = RETE__CONSENT_BASIS__CONSENT_BASIS_LEGAL_OBLIGATION;
			f.consent.given_at = 0;
			f.consent.legal_basis = (char *)ordinary_laws[k];
			pass(&f, NULL, SIGNED);
		}
	}

	/* staff are named by a pseudonymous code */
	char text[384];
	fx_referral(&f);
	f.op.staff_id = "Giulia Bianchi";
	one_text(&f, NULL, SIGNED, "operator.staffId", text);
	assert_non_null(strstr(text, "pseudonymous"));
	assert_null(strstr(text, "Giulia"));
}

/* rete_fiscal_code_shape: the shape alone (the check character is not
 * computed), in any case, with the omocodia letters; the first character
 * out of shape is named; a short string is read no further than its NUL. */
static void test_fiscal_code_shape(void **state)
{
	(void)state;
	size_t bad = 99;
	assert_true(rete_fiscal_code_shape("RSSMRA85M41E897X", NULL));
	assert_true(rete_fiscal_code_shape("rssmra85m41e897x", NULL));
	assert_true(rete_fiscal_code_shape("BNCLCU10T12E897Q", NULL)); /* wrong check char */
	assert_true(rete_fiscal_code_shape("RSSMRALPMLME897X", NULL)); /* omocodia */
	assert_false(rete_fiscal_code_shape("1SSMRA85M41E897X", &bad));
	assert_int_equal(bad, 0);
	assert_false(rete_fiscal_code_shape("RSSMRA85Z41E897X", &bad)); /* Z: no month */
	assert_int_equal(bad, 8);
	assert_false(rete_fiscal_code_shape("RSSMRA85M41E897", &bad));
	assert_int_equal(bad, 15);
	assert_false(rete_fiscal_code_shape("NOBODY", &bad));
	assert_int_equal(bad, 6);
	assert_false(rete_fiscal_code_shape("", &bad));
	assert_int_equal(bad, 0);
	assert_false(rete_fiscal_code_shape("\xff\xfe", &bad));
	assert_int_equal(bad, 0);
}

int main(void)
{
	if (sodium_init() < 0)
		return 1;
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_valid_pass),
	    cmocka_unit_test(test_valid_update_statuses),
	    cmocka_unit_test(test_draft_fields),
	    cmocka_unit_test(test_envelope_rules),
	    cmocka_unit_test(test_referral_rules),
	    cmocka_unit_test(test_update_rules),
	    cmocka_unit_test(test_note_rules),
	    cmocka_unit_test(test_private_rules),
	    cmocka_unit_test(test_broker_bodies),
	    cmocka_unit_test(test_epoch_body),
	    cmocka_unit_test(test_many_problems_at_once),
	    cmocka_unit_test(test_sentence_hygiene),
	    cmocka_unit_test(test_body_is_agency),
	    cmocka_unit_test(test_free_text_sealed),
	    cmocka_unit_test(test_identifiers_personal),
	    cmocka_unit_test(test_fiscal_code_shape),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
