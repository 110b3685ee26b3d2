/* test_stall: what the broker and an agent say while the broker's disk
 * stalls, and an outbox file the agency's system writes in place (s16
 * rev-edges, findings 4 and 6), with the real broker and agents.
 *
 *   stall_said     every flush of the broker waits (tests/shim/enospc.c,
 *                  slow mode) while two referrals are dropped in social's
 *                  outbox: the agent warns once that its submissions have
 *                  had no answer on a live connection, naming how many and
 *                  what to check, and says when it is over; the broker
 *                  warns that a commit took seconds, and says when a
 *                  commit is fast again. Before: not a line on either side.
 *   hang_said      a flush that does not end (the shim holds it until the
 *                  test removes its marker): the broker warns WHILE it
 *                  hangs, naming how long, how many entries wait and the
 *                  oldest submission's age, and again later at a longer
 *                  wait, not every second (s16 rev-stall #3: its log was
 *                  silent until the commit ended, if it ever did).
 *   inplace_waits  outbox/ip-1.json written in place in two parts (its
 *                  writer keeps it open between them) while another file
 *                  is taken: ip-1 is taken once complete and receipted,
 *                  not refused `invalid` half-written.
 *   cut_said       a file that ends before its JSON does, renamed in
 *                  whole: refused `invalid`, and the sentence names the
 *                  likely cause (write it under a temporary name and
 *                  rename it into outbox/).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "itest.h"

/* every flush waits this long while the marker exists: longer than the
 * agent's 3 x resubmit (2 s in itest.h's agent.ini) and than the broker's
 * 5 s of a slow commit, so that both must speak during one commit (of two
 * flushes: 14 s, the agent's line due at 6 s). 12 s made each commit 24 s
 * and the test 27 to 52 s; nothing it asserts needs more than one flush
 * past 6 s. */
#define SLOW_MS "7000"

static void agent_log_path(const it_net *n, int p, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s.log", n->dir, it_party_ids[p]);
}

/* slow_net: a network (*state) whose broker runs under the shim, every
 * flush waiting ms while DIR/slow-disk (its path in marker) exists, and
 * social.mantova's agent (its log's path in alog); both buffers 1300 */
static it_net *slow_net(void **state, const char *tag, const char *ms, char *marker, char *alog)
{
	it_net *n = it_net_new(tag, NULL);
	assert_non_null(n);
	*state = n;
	n->cp_interval = "1h"; /* no stored checkpoint's flushes meanwhile */
	assert_int_equal(it_write_ini(n), 0);
	snprintf(marker, 1300, "%s/slow-disk", n->dir);
	agent_log_path(n, IT_SOCIAL, alog, 1300);
	setenv("RETE_SLOW_SYNC_WHILE", marker, 1);
	setenv("RETE_SLOW_SYNC_MS", ms, 1);
	assert_true(it_broker_start_preloaded(n, RETE_ENOSPC_SHIM));
	unsetenv("RETE_SLOW_SYNC_WHILE");
	unsetenv("RETE_SLOW_SYNC_MS");
	assert_true(it_agent_start(n, IT_SOCIAL));
	return n;
}

/* The referrals of stall_said and hang_said are dated 5 s back
 * (it_outbox_referral_aged): taken at the agent's first look, not after the
 * 2 s settle of a file that just changed; what the tests watch is the
 * broker's disk. */
static void test_stall_said(void **state)
{
	char marker[1300], alog[1300];
	it_net *n = slow_net(state, "stall", SLOW_MS, marker, alog);
	it_outbox_referral_aged(n, IT_SOCIAL, IT_CPI, "st-0", 5);
	assert_true(it_wait_occurrences(alog, "st-0.json: accepted", 1, it_wait_ms()));

	/* the broker's flushes stall from now on */
	assert_int_equal(tu_write_file(marker, "x", 1), 0);
	it_outbox_referral_aged(n, IT_SOCIAL, IT_CPI, "st-1", 5);
	it_outbox_referral_aged(n, IT_SOCIAL, IT_CPI, "st-2", 5);
	const char *warned = "no answer from the broker for";
	if (!it_wait_occurrences(alog, warned, 1, it_wait_ms())) {
		it_show(n, "social.mantova.log");
		fail_msg("FAIL: the broker's flushes stalled (%s ms each) and social.mantova's "
			 "submissions st-1, st-2 waited unanswered on a live connection; its log "
			 "never said \"%s ...\"",
			 SLOW_MS, warned);
	}
	const char *fast = "commits are fast again";
	const char *commit_slow = "the disk is stalling or overloaded; receipts";
	if (!it_wait_occurrences(n->log, commit_slow, 1, it_wait_ms())) {
		it_show(n, "broker.log");
		fail_msg("FAIL: a commit of the broker waited %s ms for its flush; its log never "
			 "said \"... %s ...\"",
			 SLOW_MS, commit_slow);
	}
	/* still stalling: the agent's resubmissions, sent while the slow
	 * commit was in flight, are answered from the store as duplicates by
	 * a batch that writes (and flushes) nothing; that batch's speed is not
	 * the disk's (rev-stall s16 #1: it said "fast again" here) */
	if (!it_wait_occurrences(n->log, "again: the original receipt", 1, it_wait_ms()))
		fail_msg("FAIL: social.mantova's resubmission during the slow commit was never "
			 "answered with its original receipt");
	if (tu_occurrences(n->log, fast) != 0) {
		it_show(n, "broker.log");
		fail_msg("FAIL: the broker said \"%s\" while every flush still stalled (the "
			 "batch that answered resubmissions wrote nothing)",
			 fast);
	}
	/* the disk recovers (the shim ends the flush under way) */
	assert_int_equal(unlink(marker), 0);
	assert_true(it_wait_occurrences(alog, "st-2.json: accepted", 1, it_wait_ms()));
	assert_true(it_wait_occurrences(alog, "st-1.json: accepted", 1, it_wait_ms()));
	if (!it_wait_occurrences(alog, "the broker answers again", 1, it_wait_ms())) {
		it_show(n, "social.mantova.log");
		fail_msg("FAIL: the agent said its submissions waited, and never that the wait "
			 "is over once both were receipted");
	}
	/* a commit on a healthy disk: the broker says the spell is over */
	it_outbox_referral_aged(n, IT_SOCIAL, IT_CPI, "st-3", 5);
	assert_true(it_wait_occurrences(alog, "st-3.json: accepted", 1, it_wait_ms()));
	if (!it_wait_occurrences(n->log, "commits are fast again", 1, it_wait_ms())) {
		it_show(n, "broker.log");
		fail_msg("FAIL: after the slow commit, a fast one; the broker never said "
			 "\"commits are fast again\"");
	}
	/* said once each, with what the operator needs */
	char *text = tu_read_file(alog, NULL);
	assert_non_null(text);
	const char *line = strstr(text, warned);
	assert_non_null(line);
	const char *eol = strchr(line, '\n');
	size_t ll = eol ? (size_t)(eol - line) : strlen(line);
	char said[1200];
	snprintf(said, sizeof(said), "%.*s", (int)(ll < sizeof(said) - 1 ? ll : sizeof(said) - 1),
		 line);
	free(text);
	if (tu_occurrences(alog, warned) != 1 || strstr(said, "2 submissions waiting") == NULL ||
	    strstr(said, "rete health") == NULL || strstr(said, "disk") == NULL)
		fail_msg("FAIL: the agent's warning was said %zu time(s) (expected once) and must "
			 "name the 2 submissions waiting, the broker's disk and `rete health`: %s",
			 tu_occurrences(alog, warned), said);
	assert_true(tu_occurrences(n->log, fast) == 1);
	assert_true(tu_occurrences(n->log, commit_slow) >= 1);
}

/* said_s: the N of "WHAT N s" in the k-th (from 0) line of path holding
 * "has waited ", or -1 */
static long said_s(const char *path, int k, const char *what)
{
	char *text = tu_read_file(path, NULL);
	if (text == NULL)
		return -1;
	const char *at = text, *w = "has waited ";
	long v = -1;
	for (int i = 0; (at = strstr(at, w)) != NULL; i++, at += strlen(w))
		if (i == k) {
			const char *eol = strchr(at, '\n');
			const char *x = strstr(at, what);
			if (x != NULL && (eol == NULL || x < eol))
				v = strtol(x + strlen(what), NULL, 10);
			break;
		}
	free(text);
	return v;
}

static void test_hang_said(void **state)
{
	/* every flush waits until the marker is removed (10 min at most) */
	char marker[1300], alog[1300];
	it_net *n = slow_net(state, "hang", "600000", marker, alog);
	it_outbox_referral_aged(n, IT_SOCIAL, IT_CPI, "hg-0", 5);
	assert_true(it_wait_occurrences(alog, "hg-0.json: accepted", 1, it_wait_ms()));

	assert_int_equal(tu_write_file(marker, "x", 1), 0);
	it_outbox_referral_aged(n, IT_SOCIAL, IT_CPI, "hg-1", 5);
	const char *hangs = "for the disk of";
	if (!it_wait_occurrences(n->log, hangs, 1, it_wait_ms())) {
		it_show(n, "broker.log");
		unlink(marker);
		fail_msg("FAIL: the broker's flush of hg-1 hung (it ends only when the test "
			 "removes %s); its log said nothing while it hung (no \"... %s ...\")",
			 marker, hangs);
	}
	/* said while it hangs: the commit has not ended (the marker is still
	 * there, so it cannot have) */
	assert_int_equal(tu_occurrences(n->log, "logged referral hg-1"), 0);
	assert_int_equal(tu_occurrences(alog, "hg-1.json: accepted"), 0);
	char *text = tu_read_file(n->log, NULL);
	assert_non_null(text);
	const char *line = strstr(text, hangs);
	while (line > text && line[-1] != '\n')
		line--;
	const char *eol = strchr(line, '\n');
	char said[1500];
	snprintf(said, sizeof(said), "%.*s", (int)(eol ? eol - line : (long)strlen(line)), line);
	free(text);
	if (strstr(said, "warning") == NULL || strstr(said, "has waited ") == NULL ||
	    strstr(said, "a commit of 1 entry has waited") == NULL ||
	    strstr(said, n->dir) == NULL) {
		unlink(marker);
		fail_msg("FAIL: the broker's warning while its flush hangs must say how long it "
			 "has waited, how many entries (1) and the store's folder: %s",
			 said);
	}
	/* and again later, at a longer wait: not a line a second */
	if (!it_wait_occurrences(n->log, hangs, 2, it_scaled_ms(30000))) {
		it_show(n, "broker.log");
		unlink(marker);
		fail_msg("FAIL: the flush still hangs; the broker said it once and never again");
	}
	/* what the lines say, not when the test saw them: the first past the
	 * 5 s of a slow commit, announcing the next at twice that; the next
	 * not before it announced */
	long first = said_s(n->log, 0, "has waited "), next = said_s(n->log, 0, "said again at "),
	     second = said_s(n->log, 1, "has waited ");
	if (first < 5 || next < 10 || second < next) {
		unlink(marker);
		fail_msg("FAIL: the hang was said after %ld s (\"said again at %ld s\"), then "
			 "after %ld s: the first must come past the 5 s of a slow commit, the next "
			 "at twice that or later, when it said",
			 first, next, second);
	}
	/* the disk recovers: the commit ends, a fast one ends the spell */
	assert_int_equal(unlink(marker), 0);
	assert_true(it_wait_occurrences(alog, "hg-1.json: accepted", 1, it_wait_ms()));
	it_outbox_referral_aged(n, IT_SOCIAL, IT_CPI, "hg-2", 5);
	assert_true(it_wait_occurrences(alog, "hg-2.json: accepted", 1, it_wait_ms()));
	if (!it_wait_occurrences(n->log, "commits are fast again", 1, it_wait_ms())) {
		it_show(n, "broker.log");
		fail_msg("FAIL: after the hung commit, a fast one; the broker never said "
			 "\"commits are fast again\"");
	}
}

/* the number after "WHAT" in the first line of path holding WHAT, or -1 */
static long number_after(const char *path, const char *what)
{
	char *text = tu_read_file(path, NULL);
	if (text == NULL)
		return -1;
	const char *at = strstr(text, what);
	long v = at ? strtol(at + strlen(what), NULL, 10) : -1;
	free(text);
	return v;
}

/* A disk slow on every commit (each flush 3 s: a commit about 6 s) but
 * never hung: one spell, whose watch lines are few however many commits
 * it holds (rev-broker s17 #2); the line counts entries, not the ops of
 * resubmissions answered DUPLICATE (rev-broker s17 #3). */
static void test_slow_spell(void **state)
{
	it_net *n = it_net_new("spell", NULL);
	assert_non_null(n);
	*state = n;
	n->cp_interval = "1h";
	assert_int_equal(it_write_ini(n), 0);
	char marker[1300];
	snprintf(marker, sizeof(marker), "%s/slow-disk", n->dir);
	setenv("RETE_SLOW_SYNC_WHILE", marker, 1);
	setenv("RETE_SLOW_SYNC_MS", "3000", 1);
	assert_true(it_broker_start_preloaded(n, RETE_ENOSPC_SHIM));
	unsetenv("RETE_SLOW_SYNC_WHILE");
	unsetenv("RETE_SLOW_SYNC_MS");
	rete_wire *w = it_hello(n, IT_SOCIAL);
	assert_non_null(w);
	assert_int_equal(tu_write_file(marker, "x", 1), 0);

	/* the spell's first commit: one referral, sent three times at once
	 * (the copies the batch holds are answered DUPLICATE: one entry) */
	it_msg o;
	assert_int_equal(it_referral(n, IT_SOCIAL, IT_CPI, "sp-0", &o), RETE_OK);
	for (int i = 0; i < 3; i++)
		assert_int_equal(it_send(w, &o), RETE_OK);
	for (int i = 0; i < 3; i++)
		assert_true(it_accepted(it_recv_kind(w, RETE__BROKER_FRAME__COMMAND_RECEIPT,
						     it_wait_ms()),
					"sp-0", n->log));
	it_msg_free(&o);
	/* the receipts go when the journal has it; the commit goes on (its
	 * second flush) and is said past 5 s */
	const char *waited = "has waited ";
	bool seen = it_wait_occurrences(n->log, waited, 1, it_wait_ms());
	long entries = number_after(n->log, "warning: a commit of ");
	if (!seen || entries != 1) {
		it_show(n, "broker.log");
		fail_msg("FAIL: the spell's first commit (about 6 s) appended 1 entry; the watch's "
			 "line said %ld (said %zu time(s))",
			 entries, tu_occurrences(n->log, waited));
	}
	/* five more commits of about 6 s each, one after the other: six in
	 * the spell, twice the 3 lines the watch may say (a line per commit,
	 * the defect, says 6); the spell lasts about 36 s, under the minute
	 * after which the watch may say one more (ten more, 66 s, made the
	 * test 64 s of the sanitizer build's CI) */
	const int more = 5;
	for (int k = 1; k <= more; k++) {
		char id[64];
		snprintf(id, sizeof(id), "sp-%d", k);
		assert_int_equal(it_referral(n, IT_SOCIAL, IT_CPI, id, &o), RETE_OK);
		assert_true(it_accepted(it_submit(w, &o, it_wait_ms()), id, n->log));
		it_msg_free(&o);
	}
	size_t said = tu_occurrences(n->log, waited);
	if (said > 3) {
		it_show(n, "broker.log");
		unlink(marker);
		fail_msg("FAIL: %d commits of about 6 s each in one slow spell; the watch said %zu "
			 "lines of them (one per commit): at most the first, the ladder's and one "
			 "a minute",
			 more + 1, said);
	}
	/* the disk recovers: the spell's summary counts the commits not said */
	assert_int_equal(unlink(marker), 0);
	assert_int_equal(it_referral(n, IT_SOCIAL, IT_CPI, "sp-fast", &o), RETE_OK);
	assert_true(it_accepted(it_submit(w, &o, it_wait_ms()), "sp-fast", n->log));
	it_msg_free(&o);
	const char *fast = "commits are fast again";
	if (!it_wait_occurrences(n->log, fast, 1, it_wait_ms())) {
		it_show(n, "broker.log");
		fail_msg("FAIL: after the slow spell, a fast commit; no \"%s\"", fast);
	}
	char *text = tu_read_file(n->log, NULL);
	assert_non_null(text);
	const char *line = strstr(text, fast), *eol = strchr(line, '\n');
	const char *at = strstr(line, "; ");
	long held = at && (eol == NULL || at < eol) ? strtol(at + 2, NULL, 10) : -1;
	free(text);
	if (held < 1 || (size_t)held + said > (size_t)more + 1) {
		it_show(n, "broker.log");
		fail_msg("FAIL: %d slow commits, %zu said by the watch; the spell's summary must "
			 "count those not said (between 1 and %zu), it counted %ld",
			 more + 1, said, (size_t)more + 1 - said, held);
	}
	rete_wire_close(&w);
}

/* a referral from social.mantova to cpi.mantova, as an agency's system
 * writes it */
static int referral_text(char *buf, size_t len, const char *id)
{
	return snprintf(
	    buf, len,
	    "{\"id\": \"%s\", \"operator\": {\"staffId\": \"as-1\", \"role\": "
	    "\"social-worker\"},\n \"recipient\": \"cpi.mantova\", \"caseId\": "
	    "\"mn-2026-0901\",\n \"referral\": {\"service\": \"employment-orientation\", "
	    "\"priority\": \"routine\", \"reasonCode\": \"long-term-unemployment\",\n"
	    "   \"consent\": {\"basis\": \"consent\", \"givenAt\": "
	    "\"2026-11-20T09:30:00Z\"}, \"ageBand\": \"adult\"},\n \"private\": "
	    "{\"person\": {\"name\": \"Maria Rossi\"}}}\n",
	    id);
}

/* social_net: a network (*state) with the broker and social.mantova's
 * agent running; the agent's log path into alog. */
static it_net *social_net(void **state, const char *tag, char *alog, size_t len)
{
	it_net *n = it_net_new(tag, NULL);
	assert_non_null(n);
	*state = n;
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	agent_log_path(n, IT_SOCIAL, alog, len);
	return n;
}

static void test_inplace_waits(void **state)
{
	char alog[1300], dir[1300], path[1600], text[2048];
	it_net *n = social_net(state, "inplace", alog, sizeof(alog));
	assert_true(it_wait_occurrences(alog, "connected to", 1, it_wait_ms()));
	/* ip-1.json written in place: its first part, the file kept open */
	int len = referral_text(text, sizeof(text), "ip-1");
	snprintf(path, sizeof(path), "%s/ip-1.json",
		 it_spool(n, IT_SOCIAL, "outbox", dir, sizeof(dir)));
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, 120), 120);
	/* another file, renamed in: the scan that takes it lists ip-1 too */
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "ip-0");
	assert_true(it_wait_occurrences(alog, "ip-0.json: accepted", 1, it_wait_ms()));
	/* the rest, and the writer closes it */
	assert_int_equal(write(fd, text + 120, (size_t)len - 120), len - 120);
	assert_int_equal(close(fd), 0);
	int64_t end = it_mono_ms() + it_wait_ms();
	while (tu_occurrences(alog, "ip-1.json: accepted") == 0 &&
	       tu_occurrences(alog, "ip-1.json: refused") == 0 && it_mono_ms() < end)
		it_nap(50); /* polling a file another process appends to */
	if (tu_occurrences(alog, "ip-1.json: accepted") != 1) {
		it_show(n, "social.mantova.log");
		fail_msg("FAIL: outbox/ip-1.json, written in place in two parts (the writer kept "
			 "it open), was not taken once complete: %s",
			 tu_occurrences(alog, "ip-1.json: refused") ? "it was refused half-written"
								    : "no answer");
	}
	snprintf(path, sizeof(path), "%s/ip-1.json.error.json",
		 it_spool(n, IT_SOCIAL, "failed", dir, sizeof(dir)));
	assert_int_equal(access(path, F_OK), -1);
}

static void test_cut_said(void **state)
{
	char alog[1300], dir[1300], path[1600], text[2048];
	it_net *n = social_net(state, "cutsaid", alog, sizeof(alog));
	referral_text(text, sizeof(text), "cut-1");
	text[120] = '\0';
	/* written 5 s before it is renamed in (its times set back): the agent
	 * still looks at it again until it is 10 s old (OUT_PARTIAL_MS), 5 s
	 * of it here instead of 10 */
	char tmp[1600];
	snprintf(tmp, sizeof(tmp), "%s/.cut-1.json.tmp",
		 it_spool(n, IT_SOCIAL, "outbox", dir, sizeof(dir)));
	snprintf(path, sizeof(path), "%s/cut-1.json", dir);
	assert_int_equal(tu_write_file(tmp, text, strlen(text)), 0);
	it_set_age_s(tmp, 5);
	assert_int_equal(rename(tmp, path), 0);
	assert_true(it_wait_occurrences(alog, "cut-1.json: ends before its JSON does", 1,
					it_wait_ms()));
	assert_true(it_wait_occurrences(alog, "cut-1.json: refused (invalid", 1, it_wait_ms()));
	snprintf(path, sizeof(path), "%s/cut-1.json.error.json",
		 it_spool(n, IT_SOCIAL, "failed", dir, sizeof(dir)));
	char *doc = tu_read_file(path, NULL);
	assert_non_null(doc);
	json_t *j = json_loads(doc, 0, NULL);
	assert_non_null(j);
	const char *error = json_string_value(json_object_get(j, "error"));
	assert_non_null(error);
	if (strstr(error, "premature end of input") == NULL ||
	    strstr(error, "rename it into outbox/") == NULL)
		fail_msg("FAIL: a file that ends before its JSON does was refused with \"%s\"; "
			 "the sentence must name the likely cause (still being written: write "
			 "it under a temporary name and rename it into outbox/)",
			 error);
	json_decref(j);
	free(doc);
}

/* a file cut short whose time is ahead of the agent's clock (a copy from
 * a machine whose clock is ahead), there when the agent starts: refused
 * at once with the sentence, not looked at again until this clock passes
 * its time (rev-stall s16 #2: an hour of re-reads, five a second) */
static void test_cut_future(void **state)
{
	char alog[1300], dir[1300], path[1600], text[2048];
	it_net *n = it_net_new("cutfuture", NULL);
	assert_non_null(n);
	*state = n;
	assert_true(it_broker_start(n));
	agent_log_path(n, IT_SOCIAL, alog, sizeof(alog));
	referral_text(text, sizeof(text), "cut-2");
	text[120] = '\0';
	snprintf(path, sizeof(path), "%s/cut-2.json",
		 it_spool(n, IT_SOCIAL, "outbox", dir, sizeof(dir)));
	char *mk = NULL; /* the agent makes its spool's folders at its start */
	assert_int_equal(tu_run(&mk, "mkdir -p '%s'", dir), 0);
	free(mk);
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
	struct timespec ts[2];
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec += 3600;
	ts[1] = ts[0];
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
	assert_true(it_agent_start(n, IT_SOCIAL));
	if (!it_wait_occurrences(alog, "cut-2.json: refused (invalid", 1, it_wait_ms())) {
		it_show(n, "social.mantova.log");
		fail_msg("FAIL: cut-2.json, cut short and dated an hour ahead, was never refused "
			 "(looked at again until the agent's clock passes its time)");
	}
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_stall_said, it_teardown),
	    cmocka_unit_test_teardown(test_hang_said, it_teardown),
	    cmocka_unit_test_teardown(test_slow_spell, it_teardown),
	    cmocka_unit_test_teardown(test_inplace_waits, it_teardown),
	    cmocka_unit_test_teardown(test_cut_said, it_teardown),
	    cmocka_unit_test_teardown(test_cut_future, it_teardown),
	};
	if (getenv("RETE_TEST_ONLY"))
		cmocka_set_test_filter(getenv("RETE_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
