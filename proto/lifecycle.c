/* lifecycle.c — the referral lifecycle table (HL7 FHIR Task) and the
 * sentences that explain a refused transition.
 *
 * lc_rules below is the whole rule set; check it row by row against the
 * table in ../shared/specs/referral-domain.md. Everything not listed is
 * refused. Two readings of the spec are deliberate:
 *
 * - "requested -> received: performer (here: the broker, when the
 *   performer's agent acknowledges delivery)" is encoded as BROKER only: the
 *   performer's agent never signs a "received" update, the broker records
 *   the delivery.
 * - "any non-terminal" means the statuses a referral on the network can be
 *   in: requested, received, accepted, in-progress, on-hold. draft is never
 *   on the wire (a referral starts as requested when the broker logs it) and
 *   ready is reserved by FHIR and unused here, so nothing moves from or to
 *   them.
 */
#include "lifecycle.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Number of Rete__Status values (UNSPECIFIED .. ENTERED_IN_ERROR). */
#define LC_NSTATUS (RETE__STATUS__STATUS_ENTERED_IN_ERROR + 1)
/* Roles are 1..4; index 0 of per-role arrays is unused. */
#define LC_NROLE (RETE_ROLE_OTHER + 1)

#define ST(x)	  (UINT32_C(1) << RETE__STATUS__STATUS_##x)
#define ST_BIT(s) (UINT32_C(1) << (unsigned)(s))
/* In lc_rule.to: "the same status, with a new business status". */
#define LC_SAME (UINT32_C(1) << 31)
/* The statuses a referral on the network can be in and leave. */
#define LC_LIVE (ST(REQUESTED) | ST(RECEIVED) | ST(ACCEPTED) | ST(IN_PROGRESS) | ST(ON_HOLD))
#define LC_TERMINAL                                                                                \
	(ST(REJECTED) | ST(CANCELLED) | ST(FAILED) | ST(COMPLETED) | ST(ENTERED_IN_ERROR))

/* One row of the spec: any status in `from` may move to any status in `to`
 * (or stay the same, LC_SAME) when asked by `role`. */
struct lc_rule {
	uint32_t from;
	uint32_t to;
	rete_role role;
};

static const struct lc_rule lc_rules[] = {
    /* requested -> received: the broker, when the performer's agent acks */
    {ST(REQUESTED), ST(RECEIVED), RETE_ROLE_BROKER},
    /* requested, received -> accepted, rejected: performer */
    {ST(REQUESTED) | ST(RECEIVED), ST(ACCEPTED) | ST(REJECTED), RETE_ROLE_PERFORMER},
    /* accepted -> in-progress: performer */
    {ST(ACCEPTED), ST(IN_PROGRESS), RETE_ROLE_PERFORMER},
    /* in-progress -> on-hold, completed, failed: performer */
    {ST(IN_PROGRESS), ST(ON_HOLD) | ST(COMPLETED) | ST(FAILED), RETE_ROLE_PERFORMER},
    /* on-hold -> in-progress: performer */
    {ST(ON_HOLD), ST(IN_PROGRESS), RETE_ROLE_PERFORMER},
    /* any non-terminal -> cancelled: requester */
    {LC_LIVE, ST(CANCELLED), RETE_ROLE_REQUESTER},
    /* accepted, in-progress, on-hold -> same status, new business status:
     * performer */
    {ST(ACCEPTED) | ST(IN_PROGRESS) | ST(ON_HOLD), LC_SAME, RETE_ROLE_PERFORMER},
    /* requested (never delivered before the expiry) -> failed: broker */
    {ST(REQUESTED), ST(FAILED), RETE_ROLE_BROKER},
};

#define LC_NRULES (sizeof(lc_rules) / sizeof(lc_rules[0]))

static const char *const lc_names[LC_NSTATUS] = {
    [RETE__STATUS__STATUS_UNSPECIFIED] = "unspecified",
    [RETE__STATUS__STATUS_DRAFT] = "draft",
    [RETE__STATUS__STATUS_REQUESTED] = "requested",
    [RETE__STATUS__STATUS_RECEIVED] = "received",
    [RETE__STATUS__STATUS_ACCEPTED] = "accepted",
    [RETE__STATUS__STATUS_REJECTED] = "rejected",
    [RETE__STATUS__STATUS_READY] = "ready",
    [RETE__STATUS__STATUS_CANCELLED] = "cancelled",
    [RETE__STATUS__STATUS_IN_PROGRESS] = "in-progress",
    [RETE__STATUS__STATUS_ON_HOLD] = "on-hold",
    [RETE__STATUS__STATUS_FAILED] = "failed",
    [RETE__STATUS__STATUS_COMPLETED] = "completed",
    [RETE__STATUS__STATUS_ENTERED_IN_ERROR] = "entered-in-error",
};

/* What doing the move to a status is called, for "X cannot <verb>". */
static const char *const lc_verbs[LC_NSTATUS] = {
    [RETE__STATUS__STATUS_RECEIVED] = "mark a referral received",
    [RETE__STATUS__STATUS_ACCEPTED] = "accept a referral",
    [RETE__STATUS__STATUS_REJECTED] = "reject a referral",
    [RETE__STATUS__STATUS_CANCELLED] = "cancel a referral",
    [RETE__STATUS__STATUS_IN_PROGRESS] = "move a referral to in-progress",
    [RETE__STATUS__STATUS_ON_HOLD] = "put a referral on hold",
    [RETE__STATUS__STATUS_FAILED] = "mark a referral failed",
    [RETE__STATUS__STATUS_COMPLETED] = "complete a referral",
};

static const char *const lc_role_short[LC_NROLE] = {
    [RETE_ROLE_REQUESTER] = "the requester",
    [RETE_ROLE_PERFORMER] = "the performer",
    [RETE_ROLE_BROKER] = "the broker",
    [RETE_ROLE_OTHER] = "a party that is neither requester nor performer",
};

static const char *const lc_role_long[LC_NROLE] = {
    [RETE_ROLE_REQUESTER] = "the requester (the agency that sent it)",
    [RETE_ROLE_PERFORMER] = "the performer (the agency it was sent to)",
    [RETE_ROLE_BROKER] = "the broker",
    [RETE_ROLE_OTHER] = "nobody else",
};

static bool lc_status_ok(Rete__Status s)
{
	return (unsigned)s < LC_NSTATUS;
}

static bool lc_role_ok(rete_role r)
{
	return r >= RETE_ROLE_REQUESTER && r <= RETE_ROLE_OTHER;
}

/* lc_allowed is the whole decision: a row of lc_rules matches. */
static bool lc_allowed(Rete__Status from, Rete__Status to, rete_role role)
{
	if (!lc_status_ok(from) || !lc_status_ok(to))
		return false;
	for (size_t i = 0; i < LC_NRULES; i++) {
		const struct lc_rule *r = &lc_rules[i];
		if (r->role != role || !(r->from & ST_BIT(from)))
			continue;
		if (r->to & ST_BIT(to))
			return true;
		if ((r->to & LC_SAME) && from == to)
			return true;
	}
	return false;
}

/* ------------------------------------------------------------------------
 * Sentences. Every refusal gets a full sentence: why not, and what this
 * role may do from this status. They are composed once (pthread_once) into
 * an immutable table, so the pointer handed out is valid for the life of
 * the process and safe to share between threads.
 */

/* Every sentence must fit whole (store/store.h's RETE_STORE_ERROR_MAX
 * counts on this bound): the longest is 232 bytes today, and test_lifecycle
 * checks each of them stays under 300. */
#define LC_WHY_MAX 320

/* [from][to][role]; out-of-range statuses and roles use the fixed strings
 * below. ~270 KiB of zeroed memory, filled on first refusal. */
static char lc_why[LC_NSTATUS][LC_NSTATUS][LC_NROLE][LC_WHY_MAX];
static pthread_once_t lc_why_once = PTHREAD_ONCE_INIT;

static const char lc_why_bad_from[] =
    "the referral's current status is not set or is not a known status; a referral on the "
    "network is requested, received, accepted, in-progress, on-hold, or closed (rejected, "
    "cancelled, failed, completed)";
static const char lc_why_bad_to[] =
    "the new status is not a known status; an update may set accepted, rejected, "
    "in-progress, on-hold, completed, failed or cancelled";
static const char lc_why_bad_role[] =
    "only the referral's requester, its performer or the broker may change its status, "
    "and the party asking is none of them";

/* lc_allowed_list writes "from S the ROLE may move it to A, B or C, or keep
 * it S with a new business status" into buf. */
static void lc_allowed_list(char *buf, size_t size, Rete__Status from, rete_role role)
{
	const char *names[LC_NSTATUS];
	size_t n = 0, off;
	bool same = lc_allowed(from, from, role);

	for (int to = 0; to < LC_NSTATUS; to++)
		if (to != (int)from && lc_allowed(from, (Rete__Status)to, role))
			names[n++] = lc_names[to];
	if (n == 0 && !same) {
		snprintf(buf, size, "from %s %s may make no change", lc_names[from],
			 lc_role_short[role]);
		return;
	}
	off = (size_t)snprintf(buf, size, "from %s %s may ", lc_names[from], lc_role_short[role]);
	if (n > 0) {
		off += (size_t)snprintf(buf + off, size - off, "move it to ");
		for (size_t i = 0; i < n && off < size; i++) {
			const char *sep = i == 0 ? "" : (i + 1 == n ? " or " : ", ");
			off += (size_t)snprintf(buf + off, size - off, "%s%s", sep, names[i]);
		}
	}
	if (same && off < size)
		snprintf(buf + off, size - off, "%skeep it %s with a new business status",
			 n > 0 ? ", or " : "only ", lc_names[from]);
}

/* lc_roles_for lists the roles that may move from -> to ("the performer
 * (the agency it was sent to)"); returns how many. */
static int lc_roles_for(char *buf, size_t size, Rete__Status from, Rete__Status to)
{
	int n = 0;
	size_t off = 0;

	buf[0] = '\0';
	for (int r = RETE_ROLE_REQUESTER; r <= RETE_ROLE_BROKER && off < size; r++) {
		if (!lc_allowed(from, to, (rete_role)r))
			continue;
		off += (size_t)snprintf(buf + off, size - off, "%s%s", n ? " or " : "",
					lc_role_long[r]);
		n++;
	}
	return n;
}

/* lc_role_moves_to: role may move some status to `to` (so "while it is X"
 * is the reason it cannot now). */
static bool lc_role_moves_to(Rete__Status to, rete_role role)
{
	for (int from = 0; from < LC_NSTATUS; from++)
		if (from != (int)to && lc_allowed((Rete__Status)from, to, role))
			return true;
	return false;
}

static void lc_compose(char *buf, size_t size, Rete__Status from, Rete__Status to, rete_role role)
{
	char allowed[LC_WHY_MAX], roles[160];
	const char *fn = lc_names[from], *tn = lc_names[to];

	if (role == RETE_ROLE_OTHER) {
		snprintf(buf, size, "%s", lc_why_bad_role);
		return;
	}
	if (from == RETE__STATUS__STATUS_UNSPECIFIED) {
		snprintf(buf, size, "%s", lc_why_bad_from);
		return;
	}
	if (from == RETE__STATUS__STATUS_DRAFT) {
		snprintf(buf, size,
			 "draft is never a referral's status on the network: a referral "
			 "starts as requested when the broker logs it, so nothing can move "
			 "it from draft");
		return;
	}
	if (from == RETE__STATUS__STATUS_READY) {
		snprintf(buf, size,
			 "ready is reserved by FHIR and not used by rete's lifecycle: no "
			 "change from it is allowed");
		return;
	}
	if (ST_BIT(from) & LC_TERMINAL) {
		snprintf(buf, size,
			 "a referral that is %s is closed: no further change is allowed "
			 "(a new referral can be sent, linked to this one)",
			 fn);
		return;
	}

	/* from is live: say why not, then what this role may do. */
	lc_allowed_list(allowed, sizeof(allowed), from, role);
	if (to == RETE__STATUS__STATUS_UNSPECIFIED) {
		snprintf(buf, size, "the new status is not set; %s", allowed);
	} else if (to == RETE__STATUS__STATUS_REQUESTED) {
		snprintf(buf, size,
			 "no one can move a referral back to requested: that status is set "
			 "only when the broker logs a new referral; %s",
			 allowed);
	} else if (to == RETE__STATUS__STATUS_DRAFT || to == RETE__STATUS__STATUS_READY ||
		   to == RETE__STATUS__STATUS_ENTERED_IN_ERROR) {
		snprintf(buf, size, "rete's lifecycle does not use the status %s; %s", tn, allowed);
	} else if (lc_roles_for(roles, sizeof(roles), from, to) > 0) {
		if (from == to)
			snprintf(buf, size,
				 "%s cannot change the business status of a referral; only "
				 "%s can; %s",
				 lc_role_short[role], roles, allowed);
		else if (lc_role_moves_to(to, role))
			snprintf(buf, size, "%s cannot %s while it is %s; only %s can; %s",
				 lc_role_short[role], lc_verbs[to], fn, roles, allowed);
		else
			snprintf(buf, size, "%s cannot %s; only %s can; %s", lc_role_short[role],
				 lc_verbs[to], roles, allowed);
	} else if (from == to) {
		snprintf(buf, size,
			 "a referral that is %s cannot keep its status with a new business "
			 "status: that is possible only while it is accepted, in-progress or "
			 "on-hold; %s",
			 fn, allowed);
	} else {
		snprintf(buf, size, "a referral that is %s cannot become %s; %s", fn, tn, allowed);
	}
}

static void lc_why_build(void)
{
	for (int f = 0; f < LC_NSTATUS; f++)
		for (int t = 0; t < LC_NSTATUS; t++)
			for (int r = RETE_ROLE_REQUESTER; r <= RETE_ROLE_OTHER; r++)
				if (!lc_allowed((Rete__Status)f, (Rete__Status)t, (rete_role)r))
					lc_compose(lc_why[f][t][r], LC_WHY_MAX, (Rete__Status)f,
						   (Rete__Status)t, (rete_role)r);
}

bool rete_lifecycle_check(Rete__Status from, Rete__Status to, rete_role role, const char **why)
{
	if (lc_role_ok(role) && lc_allowed(from, to, role)) {
		if (why != NULL)
			*why = NULL;
		return true;
	}
	if (why == NULL)
		return false;
	if (!lc_role_ok(role))
		*why = lc_why_bad_role;
	else if (!lc_status_ok(from))
		*why = lc_why_bad_from;
	else if (!lc_status_ok(to))
		*why = lc_why_bad_to;
	else {
		pthread_once(&lc_why_once, lc_why_build);
		*why = lc_why[from][to][role];
	}
	return false;
}

bool rete_status_terminal(Rete__Status s)
{
	return lc_status_ok(s) && (ST_BIT(s) & LC_TERMINAL) != 0;
}

void rete_status_times_apply(rete_status_times *t, Rete__Status to, int64_t at)
{
	switch (to) {
	case RETE__STATUS__STATUS_RECEIVED:
		if (t->received_at == 0)
			t->received_at = at;
		break;
	case RETE__STATUS__STATUS_ACCEPTED:
		t->accepted_at = at;
		break;
	case RETE__STATUS__STATUS_REJECTED:
		t->rejected_at = at;
		break;
	case RETE__STATUS__STATUS_IN_PROGRESS:
		if (t->started_at == 0)
			t->started_at = at;
		break;
	case RETE__STATUS__STATUS_COMPLETED:
		t->completed_at = at;
		break;
	default:
		break;
	}
	if (rete_status_terminal(to) && t->closed_at == 0)
		t->closed_at = at;
}

void rete_referral_apply_times(Rete__ReferralInfo *r, Rete__Status to, int64_t at)
{
	rete_status_times t = {
	    .received_at = r->received_at,
	    .accepted_at = r->accepted_at,
	    .rejected_at = r->rejected_at,
	    .started_at = r->started_at,
	    .completed_at = r->completed_at,
	    .closed_at = r->closed_at,
	};

	rete_status_times_apply(&t, to, at);
	r->received_at = t.received_at;
	r->accepted_at = t.accepted_at;
	r->rejected_at = t.rejected_at;
	r->started_at = t.started_at;
	r->completed_at = t.completed_at;
	r->closed_at = t.closed_at;
}

const char *rete_status_name(Rete__Status s)
{
	return lc_status_ok(s) ? lc_names[s] : "unknown";
}

bool rete_status_from_name(const char *name, Rete__Status *out)
{
	if (name == NULL)
		return false;
	for (int s = RETE__STATUS__STATUS_DRAFT; s < LC_NSTATUS; s++) {
		if (strcmp(name, lc_names[s]) == 0) {
			if (out != NULL)
				*out = (Rete__Status)s;
			return true;
		}
	}
	return false;
}

bool rete_status_needs_reason(Rete__Status s)
{
	return s == RETE__STATUS__STATUS_REJECTED || s == RETE__STATUS__STATUS_CANCELLED ||
	       s == RETE__STATUS__STATUS_ON_HOLD || s == RETE__STATUS__STATUS_FAILED;
}

rete_role rete_role_of(const char *party, const char *requester, const char *performer)
{
	if (party == NULL || party[0] == '\0')
		return RETE_ROLE_OTHER;
	/* A referral's requester and performer differ (validation refuses a
	 * message whose sender is its recipient), so the order of these tests
	 * matters only for malformed input, where performer wins. */
	if (performer != NULL && strcmp(party, performer) == 0)
		return RETE_ROLE_PERFORMER;
	if (requester != NULL && strcmp(party, requester) == 0)
		return RETE_ROLE_REQUESTER;
	return RETE_ROLE_OTHER;
}
