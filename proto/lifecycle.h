/* lifecycle.h — the referral lifecycle (HL7 FHIR Task), as one pure table.
 *
 * The broker calls it to enforce, the store to project, and the auditor to
 * replay; none of them keeps its own copy of the rules. See
 * ../shared/specs/referral-domain.md for the table it encodes.
 */
#ifndef RETE_LIFECYCLE_H
#define RETE_LIFECYCLE_H

#include <stdbool.h>
#include <stdint.h>

#include "rete.pb-c.h"

/* Who asks for a transition. */
typedef enum rete_role {
	RETE_ROLE_REQUESTER = 1, /* the referring agency */
	RETE_ROLE_PERFORMER = 2, /* the agency asked to act */
	RETE_ROLE_BROKER = 3,    /* the broker (delivery, expiry) */
	RETE_ROLE_OTHER = 4      /* anyone else: never allowed */
} rete_role;

/* rete_lifecycle_check says whether `role` may move a referral from status
 * `from` to status `to` (from == to means: the same status with a new
 * business status). Returns true when allowed (*why, if given, set to NULL);
 * otherwise false and, if why is not NULL, *why points to a static sentence
 * (immutable, valid for the life of the process, safe across threads)
 * saying why not and what this role would be allowed from `from`. Any
 * value is accepted, including enum values outside the schema. */
bool rete_lifecycle_check(Rete__Status from, Rete__Status to, rete_role role,
			  const char **why);

/* rete_status_terminal: rejected, cancelled, failed, completed,
 * entered-in-error. */
bool rete_status_terminal(Rete__Status s);

/* rete_status_times: when a referral reached the statuses the projection
 * dates (milliseconds since the epoch as logged; 0 = not yet). */
typedef struct rete_status_times {
	int64_t received_at, accepted_at, rejected_at, started_at, completed_at, closed_at;
} rete_status_times;

/* rete_status_times_apply records in t that a referral moved to `to` at
 * `at`: received and in-progress keep the first time, accepted, rejected
 * and completed the latest, and closed_at the first terminal status. Other
 * statuses leave t as it is. Pure; t belongs to the caller. */
void rete_status_times_apply(rete_status_times *t, Rete__Status to, int64_t at);

/* rete_referral_apply_times is rete_status_times_apply on the *_at fields
 * of r (the store's projection); the rest of r is untouched. */
void rete_referral_apply_times(Rete__ReferralInfo *r, Rete__Status to, int64_t at);

/* rete_status_name returns the JSON spelling ("in-progress"; "unspecified"
 * for 0), or "unknown" for a value outside the schema. Static strings. */
const char *rete_status_name(Rete__Status s);

/* rete_status_needs_reason: statuses for which a statusReason is expected
 * (rejected, cancelled, on-hold, failed). */
bool rete_status_needs_reason(Rete__Status s);

/* rete_status_from_name is the inverse of rete_status_name: true and *out
 * set for a JSON spelling ("on-hold"); false for anything else, including
 * "unspecified" and NULL. */
bool rete_status_from_name(const char *name, Rete__Status *out);

/* rete_role_of says which role `party` has for a referral sent by
 * `requester` to `performer` (strings compared exactly; any may be NULL).
 * RETE_ROLE_OTHER when the party is neither (or empty). Never returns
 * RETE_ROLE_BROKER: the broker knows when it acts itself. */
rete_role rete_role_of(const char *party, const char *requester, const char *performer);

#endif
