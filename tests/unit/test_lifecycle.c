/* test_lifecycle.c — the referral lifecycle table against an independent,
 * hand-written list of the transitions the spec allows
 * (../shared/specs/referral-domain.md), over every (from, to, role). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "lifecycle.h"

#define REQ  RETE_ROLE_REQUESTER
#define PERF RETE_ROLE_PERFORMER
#define BRK  RETE_ROLE_BROKER
#define S(x) RETE__STATUS__STATUS_##x

#define NSTATUS 13

/* The spec's table, written out one triple at a time. */
static const struct {
	Rete__Status from, to;
	rete_role role;
} allowed[] = {
    /* requested -> received: the broker (delivery acknowledged) */
    {S(REQUESTED), S(RECEIVED), BRK},
    /* requested (never delivered) -> failed: the broker */
    {S(REQUESTED), S(FAILED), BRK},
    /* requested, received -> accepted, rejected: performer */
    {S(REQUESTED), S(ACCEPTED), PERF},
    {S(REQUESTED), S(REJECTED), PERF},
    {S(RECEIVED), S(ACCEPTED), PERF},
    {S(RECEIVED), S(REJECTED), PERF},
    /* accepted -> in-progress: performer */
    {S(ACCEPTED), S(IN_PROGRESS), PERF},
    /* in-progress -> on-hold, completed, failed: performer */
    {S(IN_PROGRESS), S(ON_HOLD), PERF},
    {S(IN_PROGRESS), S(COMPLETED), PERF},
    {S(IN_PROGRESS), S(FAILED), PERF},
    /* on-hold -> in-progress: performer */
    {S(ON_HOLD), S(IN_PROGRESS), PERF},
    /* any non-terminal (on the network) -> cancelled: requester */
    {S(REQUESTED), S(CANCELLED), REQ},
    {S(RECEIVED), S(CANCELLED), REQ},
    {S(ACCEPTED), S(CANCELLED), REQ},
    {S(IN_PROGRESS), S(CANCELLED), REQ},
    {S(ON_HOLD), S(CANCELLED), REQ},
    /* same status with a new business status: performer */
    {S(ACCEPTED), S(ACCEPTED), PERF},
    {S(IN_PROGRESS), S(IN_PROGRESS), PERF},
    {S(ON_HOLD), S(ON_HOLD), PERF},
};

static bool expect_allowed(int from, int to, int role)
{
	for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if ((int)allowed[i].from == from && (int)allowed[i].to == to &&
		    (int)allowed[i].role == role)
			return true;
	return false;
}

static void test_every_triple(void **state)
{
	(void)state;
	int n_allowed = 0, n_refused = 0;

	for (int f = 0; f < NSTATUS; f++) {
		for (int t = 0; t < NSTATUS; t++) {
			for (int r = RETE_ROLE_REQUESTER; r <= RETE_ROLE_OTHER; r++) {
				const char *why = "untouched";
				bool got = rete_lifecycle_check((Rete__Status)f, (Rete__Status)t,
								(rete_role)r, &why);
				bool want = expect_allowed(f, t, r);
				if (got != want)
					fail_msg("%s -> %s by role %d: got %d, want %d (%s)",
						 rete_status_name((Rete__Status)f),
						 rete_status_name((Rete__Status)t), r, got, want,
						 why ? why : "(null)");
				if (got) {
					assert_null(why);
					n_allowed++;
				} else {
					assert_non_null(why);
					/* a full sentence, not cut at the buffer's end */
					assert_true(strlen(why) > 20);
					assert_true(strlen(why) < 300);
					/* NULL why is accepted too, same answer */
					assert_false(rete_lifecycle_check(
					    (Rete__Status)f, (Rete__Status)t, (rete_role)r, NULL));
					n_refused++;
				}
			}
		}
	}
	assert_int_equal(n_allowed, (int)(sizeof(allowed) / sizeof(allowed[0])));
	assert_int_equal(n_refused, NSTATUS * NSTATUS * 4 - n_allowed);
}

/* Every refusal from a live status for a real role says what that role may
 * do from there, naming the status. */
static void test_refusals_say_what_is_allowed(void **state)
{
	(void)state;
	static const int live[] = {S(REQUESTED), S(RECEIVED), S(ACCEPTED), S(IN_PROGRESS),
				   S(ON_HOLD)};
	static const char *const role_name[] = {"", "the requester", "the performer", "the broker"};
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++) {
		for (int t = 0; t < NSTATUS; t++) {
			for (int r = REQ; r <= BRK; r++) {
				const char *why;
				char want[64];
				if (rete_lifecycle_check((Rete__Status)live[i], (Rete__Status)t,
							 (rete_role)r, &why))
					continue;
				snprintf(want, sizeof(want), "from %s %s may",
					 rete_status_name((Rete__Status)live[i]), role_name[r]);
				if (strstr(why, want) == NULL)
					fail_msg("'%s' lacks '%s'", why, want);
			}
		}
	}
}

static void assert_why(Rete__Status from, Rete__Status to, rete_role role, const char *part)
{
	const char *why = NULL;
	assert_false(rete_lifecycle_check(from, to, role, &why));
	assert_non_null(why);
	if (strstr(why, part) == NULL)
		fail_msg("'%s' lacks '%s'", why, part);
}

static void test_sentences(void **state)
{
	(void)state;
	assert_why(S(RECEIVED), S(ACCEPTED), REQ,
		   "the requester cannot accept a referral; only the performer (the agency it "
		   "was sent to) can");
	assert_why(S(RECEIVED), S(ACCEPTED), REQ,
		   "from received the requester may move it to cancelled");
	assert_why(S(COMPLETED), S(IN_PROGRESS), PERF,
		   "a referral that is completed is closed: no further change is allowed");
	assert_why(S(CANCELLED), S(CANCELLED), REQ, "a referral that is cancelled is closed");
	assert_why(S(RECEIVED), S(IN_PROGRESS), PERF,
		   "from received the performer may move it to accepted or rejected");
	assert_why(S(RECEIVED), S(COMPLETED), PERF,
		   "a referral that is received cannot become completed");
	assert_why(S(ACCEPTED), S(CANCELLED), PERF,
		   "the performer cannot cancel a referral; only the requester (the agency "
		   "that sent it) can");
	assert_why(S(ACCEPTED), S(COMPLETED), PERF,
		   "from accepted the performer may move it to in-progress, or keep it accepted "
		   "with a new business status");
	assert_why(S(ACCEPTED), S(ACCEPTED), REQ,
		   "the requester cannot change the business status");
	assert_why(S(REQUESTED), S(FAILED), PERF,
		   "the performer cannot mark a referral failed while it is requested; only "
		   "the broker can");
	assert_why(S(RECEIVED), S(RECEIVED), PERF, "cannot keep its status");
	assert_why(S(IN_PROGRESS), S(REQUESTED), PERF, "back to requested");
	assert_why(S(IN_PROGRESS), S(ENTERED_IN_ERROR), PERF,
		   "does not use the status "
		   "entered-in-error");
	assert_why(S(RECEIVED), S(FAILED), BRK, "from received the broker may make no change");
	assert_why(S(ACCEPTED), S(IN_PROGRESS), RETE_ROLE_OTHER, "none of them");
	assert_why(S(DRAFT), S(REQUESTED), REQ, "draft is never");
	assert_why(S(READY), S(IN_PROGRESS), PERF, "ready is reserved");
	assert_why(S(UNSPECIFIED), S(ACCEPTED), PERF, "not set");
	assert_why(S(RECEIVED), S(UNSPECIFIED), PERF, "the new status is not set");
}

static void test_out_of_range(void **state)
{
	(void)state;
	const char *why = NULL;

	assert_false(rete_lifecycle_check((Rete__Status)99, S(ACCEPTED), PERF, &why));
	assert_non_null(why);
	assert_non_null(strstr(why, "current status"));
	assert_false(rete_lifecycle_check(S(RECEIVED), (Rete__Status)13, PERF, &why));
	assert_non_null(strstr(why, "new status is not a known"));
	assert_false(rete_lifecycle_check(S(RECEIVED), (Rete__Status)-1, PERF, &why));
	assert_non_null(strstr(why, "new status is not a known"));
	assert_false(rete_lifecycle_check(S(RECEIVED), S(ACCEPTED), (rete_role)0, &why));
	assert_non_null(strstr(why, "none of them"));
	assert_false(rete_lifecycle_check(S(RECEIVED), S(ACCEPTED), (rete_role)5, &why));
	assert_non_null(strstr(why, "none of them"));
	assert_string_equal(rete_status_name((Rete__Status)13), "unknown");
	assert_string_equal(rete_status_name((Rete__Status)-3), "unknown");
	assert_false(rete_status_terminal((Rete__Status)99));
}

/* The sentence pointer is stable: the same for the same question, from any
 * thread, and not overwritten by later calls. */
static void *check_all(void *arg)
{
	const char **out = arg;
	for (int f = 0; f < NSTATUS; f++)
		for (int t = 0; t < NSTATUS; t++)
			for (int r = REQ; r <= RETE_ROLE_OTHER; r++) {
				const char *why = NULL;
				rete_lifecycle_check((Rete__Status)f, (Rete__Status)t, (rete_role)r,
						     &why);
				out[(f * NSTATUS + t) * 5 + r] = why;
			}
	return NULL;
}

static void test_threads_share_static_sentences(void **state)
{
	(void)state;
	enum { NT = 4, N = NSTATUS * NSTATUS * 5 };
	static const char *res[NT][N];
	pthread_t th[NT];
	const char *first, *second;

	for (int i = 0; i < NT; i++)
		assert_int_equal(pthread_create(&th[i], NULL, check_all, res[i]), 0);
	for (int i = 0; i < NT; i++)
		assert_int_equal(pthread_join(th[i], NULL), 0);
	for (int i = 1; i < NT; i++)
		for (int k = 0; k < N; k++)
			assert_ptr_equal(res[0][k], res[i][k]);

	rete_lifecycle_check(S(RECEIVED), S(IN_PROGRESS), PERF, &first);
	rete_lifecycle_check(S(COMPLETED), S(IN_PROGRESS), PERF, &second);
	assert_non_null(strstr(first, "from received"));
	assert_non_null(strstr(second, "completed is closed"));
}

static void test_terminal(void **state)
{
	(void)state;
	for (int s = 0; s < NSTATUS; s++) {
		bool want = s == S(REJECTED) || s == S(CANCELLED) || s == S(FAILED) ||
			    s == S(COMPLETED) || s == S(ENTERED_IN_ERROR);
		assert_int_equal(rete_status_terminal((Rete__Status)s), want);
		bool reason =
		    s == S(REJECTED) || s == S(CANCELLED) || s == S(ON_HOLD) || s == S(FAILED);
		assert_int_equal(rete_status_needs_reason((Rete__Status)s), reason);
	}
}

static void test_names(void **state)
{
	(void)state;
	static const char *const want[NSTATUS] = {
	    "unspecified", "draft",	"requested",	   "received",	  "accepted",
	    "rejected",	   "ready",	"cancelled",	   "in-progress", "on-hold",
	    "failed",	   "completed", "entered-in-error"};
	for (int s = 0; s < NSTATUS; s++) {
		Rete__Status back = S(UNSPECIFIED);
		assert_string_equal(rete_status_name((Rete__Status)s), want[s]);
		if (s == 0) {
			assert_false(rete_status_from_name(want[s], &back));
			continue;
		}
		assert_true(rete_status_from_name(want[s], &back));
		assert_int_equal(back, s);
	}
	assert_false(rete_status_from_name("IN_PROGRESS", NULL));
	assert_false(rete_status_from_name("in_progress", NULL));
	assert_false(rete_status_from_name("", NULL));
	assert_false(rete_status_from_name(NULL, NULL));
}

static void test_role_of(void **state)
{
	(void)state;
	assert_int_equal(rete_role_of("cpi.mantova", "social.mantova", "cpi.mantova"), PERF);
	assert_int_equal(rete_role_of("social.mantova", "social.mantova", "cpi.mantova"), REQ);
	assert_int_equal(rete_role_of("asst.mantova", "social.mantova", "cpi.mantova"),
			 RETE_ROLE_OTHER);
	assert_int_equal(rete_role_of("cpi.mantov", "social.mantova", "cpi.mantova"),
			 RETE_ROLE_OTHER);
	assert_int_equal(rete_role_of("", "", ""), RETE_ROLE_OTHER);
	assert_int_equal(rete_role_of(NULL, "a", "b"), RETE_ROLE_OTHER);
	assert_int_equal(rete_role_of("a", NULL, NULL), RETE_ROLE_OTHER);
}

/* The dates of the steps: first receipt and start kept, the latest
 * accept/reject/complete, closed at the first terminal status; the
 * ReferralInfo form changes only the *_at fields. */
static void test_status_times(void **state)
{
	(void)state;
	rete_status_times t = {0};
	Rete__ReferralInfo r = RETE__REFERRAL_INFO__INIT;

	rete_status_times_apply(&t, RETE__STATUS__STATUS_RECEIVED, 10);
	rete_status_times_apply(&t, RETE__STATUS__STATUS_RECEIVED, 11);
	assert_int_equal(t.received_at, 10);
	rete_status_times_apply(&t, RETE__STATUS__STATUS_ACCEPTED, 20);
	rete_status_times_apply(&t, RETE__STATUS__STATUS_ACCEPTED, 21);
	assert_int_equal(t.accepted_at, 21);
	rete_status_times_apply(&t, RETE__STATUS__STATUS_IN_PROGRESS, 30);
	rete_status_times_apply(&t, RETE__STATUS__STATUS_ON_HOLD, 31);
	rete_status_times_apply(&t, RETE__STATUS__STATUS_IN_PROGRESS, 32);
	assert_int_equal(t.started_at, 30);
	assert_int_equal(t.closed_at, 0);
	rete_status_times_apply(&t, RETE__STATUS__STATUS_COMPLETED, 40);
	assert_int_equal(t.completed_at, 40);
	assert_int_equal(t.closed_at, 40);
	rete_status_times_apply(&t, RETE__STATUS__STATUS_ENTERED_IN_ERROR, 50);
	assert_int_equal(t.closed_at, 40);
	assert_int_equal(t.rejected_at, 0);

	r.last_index = 7;
	rete_referral_apply_times(&r, RETE__STATUS__STATUS_RECEIVED, 5);
	rete_referral_apply_times(&r, RETE__STATUS__STATUS_REJECTED, 6);
	assert_int_equal(r.received_at, 5);
	assert_int_equal(r.rejected_at, 6);
	assert_int_equal(r.closed_at, 6);
	assert_int_equal(r.accepted_at, 0);
	assert_int_equal(r.started_at, 0);
	assert_int_equal(r.completed_at, 0);
	assert_int_equal(r.last_index, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_triple),
	    cmocka_unit_test(test_refusals_say_what_is_allowed),
	    cmocka_unit_test(test_sentences),
	    cmocka_unit_test(test_out_of_range),
	    cmocka_unit_test(test_threads_share_static_sentences),
	    cmocka_unit_test(test_terminal),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_role_of),
	    cmocka_unit_test(test_status_times),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
