/* bench_referral.h — the referral the benchmarks in bench/ send (a header:
 * each bench/NAME.c is a program of its own). With `legal_basis` padded, a
 * long citation in consent.legalBasis, its SignedMessage is ~1 KiB, as
 * rete_bench sizes it (pad_calibrate); the sealed part it names by
 * `private_sha256` travels beside it. */
#ifndef RETE_BENCH_REFERRAL_H
#define RETE_BENCH_REFERRAL_H

#include <stdint.h>
#include <stdio.h>

#include "rete.pb-c.h"

struct bench_referral {
	Rete__Message msg;
	Rete__Referral r;
	Rete__Operator op;
	Rete__Consent cs;
	char case_id[96];
};

/* bench_referral_init fills b and returns its Message, which points into b
 * (b must stay where it is while the Message is used) and borrows every
 * string given; the case id is "case-" and the message id. */
static inline Rete__Message *bench_referral_init(struct bench_referral *b, const char *id,
						 const char *sender, const char *recipient,
						 const char *origin, int64_t created_at,
						 const char *legal_basis,
						 const uint8_t private_sha256[32])
{
	rete__message__init(&b->msg);
	rete__referral__init(&b->r);
	rete__operator__init(&b->op);
	rete__consent__init(&b->cs);
	snprintf(b->case_id, sizeof(b->case_id), "case-%s", id);
	b->msg.id = (char *)id;
	b->msg.sender = (char *)sender;
	b->msg.recipient = (char *)recipient;
	b->msg.case_id = b->case_id;
	b->msg.created_at = created_at;
	b->msg.origin = (char *)origin;
	b->op.staff_id = (char *)"staff-0042";
	b->op.role = (char *)"social-worker";
	b->msg.operator_ = &b->op;
	b->cs.basis = RETE__CONSENT_BASIS__CONSENT_BASIS_LEGAL_OBLIGATION;
	b->cs.legal_basis = (char *)legal_basis;
	b->r.service = (char *)"family-support";
	b->r.priority = RETE__PRIORITY__PRIORITY_ROUTINE;
	b->r.reason_code = (char *)"unemployment";
	b->r.consent = &b->cs;
	b->r.age_band = RETE__AGE_BAND__AGE_BAND_ADULT;
	b->r.private_sha256.data = (uint8_t *)private_sha256;
	b->r.private_sha256.len = 32;
	b->msg.body_case = RETE__MESSAGE__BODY_REFERRAL;
	b->msg.referral = &b->r;
	return &b->msg;
}

#endif
