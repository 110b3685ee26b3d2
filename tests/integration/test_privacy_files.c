/* test_privacy_files.c — the files behind a subject-access answer and the
 * clock of their retention, on the real broker and agents:
 *
 * - a sent/ file whose outbox name was taken in sent/ already (the case
 *   system writes referral.json for every referral: the second one lands
 *   as sent/referral.json.2) is the file `rete sar` names for its person
 *   (with the copy of the same message written again as again.json),
 *   and its clock starts at its receipt and again at its delivery; the
 *   delivery never restarts the clock of the other message's file of that
 *   name;
 * - a sent/ file of a message that names nobody counts from its receipt
 *   and its delivery too, not from when the case system wrote it, and a
 *   failed/ file from its refusal;
 * - an expired person-index record of another sender whose id is a prefix
 *   of ours ("social" and "social.mantova") with the id of one of our
 *   messages does not make the agent forget that message: its delivery is
 *   still recorded and in the person's answer;
 * - a refused file's sentences (which quote what they refuse) go to its
 *   failed/NAME.error.json, never to the agent's log: a person's name and
 *   fiscal code in a code's place, or a name in Latin-1 bytes, stay out
 *   of the journal, which no retention and no `rete sar` reaches.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <jansson.h>

#include "itest.h"

#define MOTHER_FC "RSSMRA85M41E897X"
#define SON_FC	  "BNCLCU10T12E897Q"
#define CASE	  "mn-2026-0173"
#define DAY_MS	  86400000LL

static char *agent_file(it_net *n, int p, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/agents/%s/%s", n->dir, it_party_ids[p], name);
	return buf;
}

/* age_days: how many days ago path was modified (-1: no such file). */
static double age_days(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return -1;
	int64_t mt = (int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
	return (double)(rete_now_ms() - mt) / (double)DAY_MS;
}

/* put_outbox writes a message into p's outbox (temporary name, its time
 * set days ago when days > 0, renamed in). */
static void put_outbox(it_net *n, int p, const char *name, const char *text, int days)
{
	char dir[1300], tmp[1500], path[1500];
	it_spool(n, p, "outbox", dir, sizeof(dir));
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(tu_write_file(tmp, text, strlen(text)), 0);
	if (days > 0)
		it_set_age(tmp, days);
	assert_int_equal(rename(tmp, path), 0);
}

/* referral writes the text of a referral from the social services to the
 * job centre about the person with fiscal code fc. */
static void referral(char *buf, size_t len, const char *id, const char *name, const char *fc)
{
	snprintf(buf, len,
		 "{\"id\": \"%s\", \"operator\": {\"staffId\": \"as-0042\", \"role\": "
		 "\"social-worker\"}, \"recipient\": \"%s\", \"caseId\": \"" CASE "\", "
		 "\"referral\": {\"service\": \"%s\", \"priority\": \"routine\", \"reasonCode\": "
		 "\"long-term-unemployment\", \"consent\": {\"basis\": \"consent\", \"givenAt\": "
		 "\"2026-11-20T09:30:00Z\", \"reference\": \"CONS-2026-0412\"}, \"ageBand\": "
		 "\"adult\"}, \"private\": {\"person\": {\"name\": \"%s\", \"fiscalCode\": "
		 "\"%s\"}, \"reason\": \"Unemployed since March.\"}}",
		 id, it_party_ids[IT_CPI], it_service[IT_CPI], name, fc);
}

/* wait_exists waits (deadline) until path exists. */
static bool wait_exists(const char *path, int ms)
{
	int64_t end = it_mono_ms() + it_scaled_ms(ms);
	while (!tu_exists(path) && it_mono_ms() < end)
		it_nap(50); /* the agent moves the file when the receipt comes */
	return tu_exists(path);
}

/* expect_file waits for path (an answer of p's agent) and fails, showing
 * p's log, with "WHAT" when it does not come. */
static void expect_file(const it_net *n, int p, const char *path, const char *what)
{
	if (wait_exists(path, 30000))
		return;
	char log[64];
	snprintf(log, sizeof(log), "%s.log", it_party_ids[p]);
	it_show(n, log);
	fail_msg("%s", what);
}

/* net_up: a new network folder for one test (freed by its teardown). */
static it_net *net_up(void **state, const char *name)
{
	it_net *n = it_net_new(name, NULL);
	*state = n;
	assert_non_null(n);
	return n;
}

/* sar_message: `rete sar --person fc -c p's agent.ini --json`, the message
 * id of its answer (a new reference; NULL, said, when absent). */
static json_t *sar_message(it_net *n, int p, const char *fc, const char *id)
{
	char ini[1400], *out = NULL;
	agent_file(n, p, "agent.ini", ini, sizeof(ini));
	int rc = tu_run(&out, "%s/rete sar --person %s -c %s --json", n->bin, fc, ini);
	if (rc != 0)
		fail_msg("rete sar: exit %d: %s", rc, out);
	json_t *ans = json_loads(out, 0, NULL);
	if (ans == NULL)
		fail_msg("rete sar: not JSON: %s", out);
	json_t *found = NULL, *m;
	size_t i;
	json_array_foreach(json_object_get(ans, "messages"), i, m)
	{
		if (strcmp(json_string_value(json_object_get(m, "id")) ?: "", id) == 0)
			found = json_incref(m);
	}
	if (found == NULL)
		fprintf(stderr, "rete sar --person %s has no message %s: %s\n", fc, id, out);
	json_decref(ans);
	free(out);
	return found;
}

/* has_file: does the answer's message m name the spool file want
 * ("sent/NAME")? */
static bool has_file(json_t *m, const char *want)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(m, "files"), i, v)
	{
		if (strcmp(json_string_value(v) ?: "", want) == 0)
			return true;
	}
	return false;
}

/* sar_expect: p's `rete sar` answer for fc has message id, with
 * `deliveries` deliveries and `files` files (-1: either not counted) and,
 * when file is given, that file among them. */
static void sar_expect(it_net *n, int p, const char *fc, const char *id, int deliveries, int files,
		       const char *file)
{
	json_t *m = sar_message(n, p, fc, id);
	if (m == NULL)
		fail_msg("%s's rete sar has no message %s", it_party_ids[p], id);
	size_t nd = json_array_size(json_object_get(m, "deliveries")),
	       nf = json_array_size(json_object_get(m, "files"));
	if ((deliveries >= 0 && nd != (size_t)deliveries) || (files >= 0 && nf != (size_t)files) ||
	    (file != NULL && !has_file(m, file)))
		fail_msg("%s's rete sar: message %s has %zu deliveries and %zu files (want %d and "
			 "%d%s%s): %s",
			 it_party_ids[p], id, nd, nf, deliveries, files,
			 file ? ", among them " : "", file ? file : "",
			 json_dumps(m, JSON_COMPACT));
	json_decref(m);
}

/* Two referrals written to outbox/ under one name: the second lands as
 * sent/referral.json.2. Its delivery restarts its own clock, not the
 * first one's, and `rete sar` names each person's own file. */
static void test_sent_name_reused(void **state)
{
	it_net *n = net_up(state, "privfiles-reuse");
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI));
	char text[2048], idx[1400], sent[1300], path[1500], path2[1500];
	agent_file(n, IT_SOCIAL, "data/persons.jsonl", idx, sizeof(idx));
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	snprintf(path, sizeof(path), "%s/referral.json", sent);
	snprintf(path2, sizeof(path2), "%s/referral.json.2", sent);

	referral(text, sizeof(text), "reuse-a", "Maria Rossi", MOTHER_FC);
	put_outbox(n, IT_SOCIAL, "referral.json", text, 0);
	if (!it_wait_occurrences(idx, "\"delivered\":\"reuse-a\"", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("the delivery of reuse-a was not recorded in %s", idx);
	}
	/* delivered 40 days ago, as far as its clock goes (the delivery sets
	 * the time of the file and of its receipt) */
	it_set_age(path, 40);
	char rcpt[1500];
	snprintf(rcpt, sizeof(rcpt), "%s/referral.json.receipt.json", sent);
	it_set_age(rcpt, 40);

	/* the second referral, written by the case system 40 days ago and
	 * sent only now */
	referral(text, sizeof(text), "reuse-b", "Luca Bianchi", SON_FC);
	put_outbox(n, IT_SOCIAL, "referral.json", text, 40);
	if (!it_wait_occurrences(idx, "\"delivered\":\"reuse-b\"", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("the delivery of reuse-b was not recorded in %s", idx);
	}
	assert_true(tu_exists(path2));
	double a = age_days(path), b = age_days(path2);
	if (a < 39)
		fail_msg("the delivery of reuse-b restarted the clock of sent/referral.json, "
			 "reuse-a's file (now %.2f days old, was 40): it would be kept past "
			 "keep_sent",
			 a);
	if (b > 1)
		fail_msg("sent/referral.json.2 (reuse-b, received and delivered just now) "
			 "counts from %.1f days ago, when the case system wrote it: keep_sent "
			 "would erase it at once",
			 b);

	/* each person's answer names that person's own file */
	json_t *m = sar_message(n, IT_SOCIAL, SON_FC, "reuse-b");
	assert_non_null(m);
	if (!has_file(m, "sent/referral.json.2"))
		fail_msg("the son's answer does not name sent/referral.json.2, the copy the "
			 "agency holds of reuse-b: %s",
			 json_dumps(m, JSON_COMPACT));
	assert_false(has_file(m, "sent/referral.json"));
	json_decref(m);
	/* the same message written again under another name: answered with
	 * its original receipt, a second copy in sent/, named too */
	char again[1500];
	snprintf(again, sizeof(again), "%s/again.json.receipt.json", sent);
	put_outbox(n, IT_SOCIAL, "again.json", text, 0);
	expect_file(n, IT_SOCIAL, again, "again.json (reuse-b sent again) was not answered");
	m = sar_message(n, IT_SOCIAL, SON_FC, "reuse-b");
	assert_non_null(m);
	if (!has_file(m, "sent/again.json") || !has_file(m, "sent/referral.json.2"))
		fail_msg("the son's answer does not name both copies of reuse-b: %s",
			 json_dumps(m, JSON_COMPACT));
	json_decref(m);
	m = sar_message(n, IT_SOCIAL, MOTHER_FC, "reuse-a");
	assert_non_null(m);
	assert_true(has_file(m, "sent/referral.json"));
	assert_false(has_file(m, "sent/referral.json.2"));
	json_decref(m);

	/* keep_sent = 30d: the first file goes, the second stays */
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	assert_true(it_agent_start_ex(n, IT_SOCIAL, "\n[privacy]\nkeep_sent = 30d\n"));
	char alog[1400];
	agent_file(n, IT_SOCIAL, "data/access.log", alog, sizeof(alog));
	if (!it_wait_occurrences(alog, "erased sent/referral.json:", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("sent/referral.json (delivered 40 days ago) was not erased");
	}
	assert_false(tu_exists(path));
	assert_true(tu_exists(path2));
	assert_int_equal(tu_occurrences(alog, "erased sent/referral.json.2"), 0);
}

/* A note of the case that names nobody (not in the person index): its
 * sent/ file counts from its receipt, then from its delivery, not from
 * when the case system wrote it. */
static void test_sent_nobody_clock(void **state)
{
	it_net *n = net_up(state, "privfiles-nobody");
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL)); /* the job centre stays away */
	char text[1024], sent[1300], path[1500], rcpt[1500], idx[1400];
	agent_file(n, IT_SOCIAL, "data/persons.jsonl", idx, sizeof(idx));
	snprintf(text, sizeof(text),
		 "{\"id\": \"nobody-1\", \"operator\": {\"staffId\": \"as-0042\", \"role\": "
		 "\"social-worker\"}, \"recipient\": \"%s\", \"caseId\": \"" CASE "\", "
		 "\"note\": {\"kind\": \"meeting-minutes\"}, \"private\": {\"notes\": "
		 "\"Case meeting held.\"}}",
		 it_party_ids[IT_CPI]);
	put_outbox(n, IT_SOCIAL, "case-note.json", text, 40);
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	snprintf(path, sizeof(path), "%s/case-note.json", sent);
	snprintf(rcpt, sizeof(rcpt), "%s/case-note.json.receipt.json", sent);
	/* the move is recorded once the file's time is set */
	if (!it_wait_occurrences(idx, "\"id\":\"nobody-1\",\"file\":\"case-note.json\",\"filed\"",
				 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("no receipt for the case note");
	}
	double age = age_days(path);
	if (age > 1)
		fail_msg("sent/case-note.json, received just now, counts from %.1f days ago "
			 "(when the case system wrote it), not from its receipt",
			 age);
	/* waiting long for its delivery; then the job centre comes */
	it_set_age(path, 40);
	it_set_age(rcpt, 40);
	assert_true(it_agent_start(n, IT_CPI));
	/* the delivery is recorded once the times are set */
	if (!it_wait_occurrences(idx, "\"delivered\":\"nobody-1\"", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("the delivery of nobody-1 was not recorded");
	}
	if ((age = age_days(path)) > 1) {
		it_show(n, "social.mantova.log");
		fail_msg("sent/case-note.json (a message naming nobody) still counts from %.1f "
			 "days ago after its delivery: its retention does not count from the "
			 "delivery",
			 age);
	}
	assert_true(age_days(rcpt) <= 1);

	/* a file refused, written by the case system 40 days ago: failed/
	 * counts from the refusal */
	char failed[1300];
	put_outbox(n, IT_SOCIAL, "bad.json", "{\"id\": \"bad-1\"}", 40);
	it_spool(n, IT_SOCIAL, "failed", failed, sizeof(failed));
	if (!it_wait_occurrences(idx, "\"id\":\"bad-1\",\"file\":\"bad.json\",\"filed\"", 1,
				 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("bad.json was not refused");
	}
	snprintf(path, sizeof(path), "%s/bad.json", failed);
	age = age_days(path);
	if (age > 1)
		fail_msg("failed/bad.json, refused just now, counts from %.1f days ago (when the "
			 "case system wrote it), not from its refusal",
			 age);
}

/* An expired person-index record of another sender whose id ("social") is
 * a prefix of ours ("social.mantova"), for a message of the same id as one
 * of ours still waiting for its delivery: once it is erased, our message's
 * delivery is still recorded and answered. */
static void test_prefix_sender(void **state)
{
	it_net *n = net_up(state, "privfiles-prefix");
	assert_true(it_broker_start(n));
	assert_true(
	    it_agent_start_ex(n, IT_SOCIAL, "\n[privacy]\nkeep_records = 30d\nscan = 1s\n"));
	char text[2048], idx[1400], sent[1300], rcpt[1500], alog[1400];
	agent_file(n, IT_SOCIAL, "data/persons.jsonl", idx, sizeof(idx));
	agent_file(n, IT_SOCIAL, "data/access.log", alog, sizeof(alog));
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	snprintf(rcpt, sizeof(rcpt), "%s/pfx.json.receipt.json", sent);
	referral(text, sizeof(text), "pfx-1", "Maria Rossi", MOTHER_FC);
	put_outbox(n, IT_SOCIAL, "pfx.json", text, 0);
	expect_file(n, IT_SOCIAL, rcpt, "no receipt for pfx-1");
	/* what the agent wrote when the party "social" sent it a message of
	 * that id 40 days ago (appended whole, as the agent appends) */
	char line[700];
	int len = snprintf(line, sizeof(line),
			   "{\"at\":%lld,\"persons\":[\"00\"],\"dir\":\"received\",\"sender\":"
			   "\"social\",\"recipient\":\"social.mantova\",\"id\":\"pfx-1\","
			   "\"kind\":\"note\",\"index\":1,\"loggedAt\":%lld,\"file\":"
			   "\"000000000001-note.json\"}\n",
			   (long long)(rete_now_ms() - 40 * DAY_MS),
			   (long long)(rete_now_ms() - 40 * DAY_MS));
	int fd = open(idx, O_WRONLY | O_APPEND);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, line, (size_t)len), len);
	close(fd);
	if (!it_wait_occurrences(alog, "person-index record of message social/pfx-1", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("the record of social/pfx-1 was not erased");
	}
	/* ours waits for its delivery: kept */
	assert_int_equal(tu_occurrences(alog, "message social.mantova/pfx-1"), 0);
	assert_true(it_agent_start(n, IT_CPI));
	if (!it_wait_occurrences(idx, "\"delivered\":\"pfx-1\"", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("the delivery of our pfx-1 was not recorded in %s: erasing the record "
			 "of social/pfx-1 made social.mantova forget its own message",
			 idx);
	}
	sar_expect(n, IT_SOCIAL, MOTHER_FC, "pfx-1", 1, -1, NULL);
}

/* age_index rewrites every line of the person index at path as written
 * days ago, and appends a record of a sent message "gone-1" of days ago
 * whose file is gone (the scan's sign that it has looked). */
static void age_index(const char *path, const char *sender, int days)
{
	char *text = tu_read_file(path, NULL);
	assert_non_null(text);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	long long at = (long long)(rete_now_ms() - days * DAY_MS);
	for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		json_t *o = json_loads(line, 0, NULL);
		assert_non_null(o);
		json_object_set_new(o, "at", json_integer(at));
		char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		fprintf(f, "%s\n", s);
		free(s);
		json_decref(o);
	}
	fprintf(f,
		"{\"at\":%lld,\"persons\":[\"00\"],\"dir\":\"sent\",\"sender\":\"%s\","
		"\"recipient\":\"x\",\"id\":\"gone-1\",\"kind\":\"referral\","
		"\"file\":\"gone.json\"}\n",
		at, sender);
	assert_int_equal(fclose(f), 0);
	free(text);
}

/* keep_records = 30d with the files kept for ever: a record 40 days old
 * whose file the agency still holds stays (rete sar must still find the
 * file), at the sender and at the recipient; one whose file is gone goes. */
static void test_records_while_file_held(void **state)
{
	it_net *n = net_up(state, "privfiles-records");
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI));
	char text[2048], idx[2][1400], alog[2][1400];
	int who[2] = {IT_SOCIAL, IT_CPI};
	for (int i = 0; i < 2; i++) {
		agent_file(n, who[i], "data/persons.jsonl", idx[i], sizeof(idx[i]));
		agent_file(n, who[i], "data/access.log", alog[i], sizeof(alog[i]));
	}
	referral(text, sizeof(text), "held-file-1", "Maria Rossi", MOTHER_FC);
	put_outbox(n, IT_SOCIAL, "kept.json", text, 0);
	if (!it_wait_occurrences(idx[0], "\"delivered\":\"held-file-1\"", 1, 30000) ||
	    !it_wait_occurrences(idx[1], "held-file-1", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("held-file-1 was not delivered and indexed at both agencies");
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(it_stop(&n->agent_pid[who[i]], SIGTERM, it_wait_ms()), 0);
		age_index(idx[i], it_party_ids[who[i]], 40);
		assert_true(it_agent_start_ex(n, who[i], "\n[privacy]\nkeep_records = 30d\n"));
	}
	char gone[2][200];
	for (int i = 0; i < 2; i++) {
		snprintf(gone[i], sizeof(gone[i]), "person-index record of message %s/gone-1",
			 it_party_ids[who[i]]);
		if (!it_wait_occurrences(alog[i], gone[i], 1, 30000)) {
			it_show(n, i == 0 ? "social.mantova.log" : "cpi.mantova.log");
			fail_msg("%s: no erasure of the record of gone-1 in %s",
				 it_party_ids[who[i]], alog[i]);
		}
		if (tu_occurrences(alog[i], "held-file-1") != 0)
			fail_msg("%s erased the person-index record of held-file-1 while it still "
				 "holds its file: rete sar no longer finds that copy",
				 it_party_ids[who[i]]);
	}
	sar_expect(n, IT_SOCIAL, MOTHER_FC, "held-file-1", -1, -1, "sent/kept.json");
	sar_expect(n, IT_CPI, MOTHER_FC, "held-file-1", -1, 1, NULL);
}

/* A message refused by the broker after it was sealed (job centre to
 * health: no such route) lands in failed/ under the name the move took:
 * failed/r.json.2 when failed/ holds an r.json already (an earlier
 * refusal of another message). Past keep_records its person-index record
 * stays while that file is kept, and rete sar names the file. */
static void test_refused_after_sealing_renamed(void **state)
{
	it_net *n = net_up(state, "privfiles-sealedref");
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_CPI));
	char text[2048], failed[1300], path[1500], idx[1400], alog[1400];
	it_spool(n, IT_CPI, "failed", failed, sizeof(failed));
	agent_file(n, IT_CPI, "data/persons.jsonl", idx, sizeof(idx));
	agent_file(n, IT_CPI, "data/access.log", alog, sizeof(alog));
	/* an earlier refusal of another message under the same name */
	snprintf(path, sizeof(path), "%s/r.json", failed);
	assert_int_equal(tu_write_file(path, "{}\n", 3), 0);
	snprintf(path, sizeof(path), "%s/r.json.error.json", failed);
	const char *earlier = "{\"messageId\": \"earlier-1\", \"error\": \"forbidden\"}\n";
	assert_int_equal(tu_write_file(path, earlier, strlen(earlier)), 0);
	snprintf(text, sizeof(text),
		 "{\"id\": \"sealed-ref-1\", \"operator\": {\"staffId\": \"op-7\", \"role\": "
		 "\"employment-advisor\"}, \"recipient\": \"%s\", \"caseId\": \"" CASE "\", "
		 "\"referral\": {\"service\": \"%s\", \"priority\": \"routine\", "
		 "\"reasonCode\": \"wellbeing\", \"consent\": {\"basis\": \"consent\", "
		 "\"givenAt\": \"2026-11-20T09:30:00Z\", \"reference\": \"CONS-2026-0412\"}, "
		 "\"ageBand\": \"adult\"}, \"private\": {\"person\": {\"name\": \"Maria Rossi\", "
		 "\"fiscalCode\": \"" MOTHER_FC "\"}}}",
		 it_party_ids[IT_ASST], it_service[IT_ASST]);
	put_outbox(n, IT_CPI, "r.json", text, 0);
	snprintf(path, sizeof(path), "%s/r.json.2.error.json", failed);
	expect_file(n, IT_CPI, path, "r.json was not refused into failed/r.json.2");
	if (!it_wait_occurrences(idx, "sealed-ref-1", 1, 30000)) {
		it_show(n, "cpi.mantova.log");
		fail_msg("sealed-ref-1 is not in the person index: not refused after sealing");
	}
	assert_int_equal(it_stop(&n->agent_pid[IT_CPI], SIGTERM, it_wait_ms()), 0);
	age_index(idx, it_party_ids[IT_CPI], 40);
	assert_true(it_agent_start_ex(n, IT_CPI, "\n[privacy]\nkeep_records = 30d\n"));
	if (!it_wait_occurrences(alog, "person-index record of message cpi.mantova/gone-1", 1,
				 30000)) {
		it_show(n, "cpi.mantova.log");
		fail_msg("no erasure of the record of gone-1 in %s", alog);
	}
	if (tu_occurrences(alog, "sealed-ref-1") != 0)
		fail_msg("cpi.mantova erased the person-index record of sealed-ref-1 while "
			 "failed/r.json.2 still holds it: rete sar no longer finds that copy");
	sar_expect(n, IT_CPI, MOTHER_FC, "sealed-ref-1", -1, -1, "failed/r.json.2");
}

/* A message refused before it was sealed (invalid) is never in the person
 * index, yet failed/ keeps it as the case system wrote it, the person's
 * data in clear: the person's answer names that copy, nobody else's does. */
static void test_sar_refused_copy(void **state)
{
	it_net *n = net_up(state, "privfiles-refused");
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	char text[2048], failed[1300], path[1500], ini[1400], *out = NULL;
	/* no service: refused as invalid before anything is sealed */
	snprintf(text, sizeof(text),
		 "{\"id\": \"refused-1\", \"operator\": {\"staffId\": \"as-0042\", \"role\": "
		 "\"social-worker\"}, \"recipient\": \"%s\", \"caseId\": \"" CASE "\", "
		 "\"referral\": {\"priority\": \"routine\"}, \"private\": {\"person\": "
		 "{\"name\": \"Maria Rossi\", \"fiscalCode\": \"" MOTHER_FC "\", \"personId\": "
		 "\"P-0042\"}}}",
		 it_party_ids[IT_CPI]);
	put_outbox(n, IT_SOCIAL, "incomplete.json", text, 0);
	it_spool(n, IT_SOCIAL, "failed", failed, sizeof(failed));
	snprintf(path, sizeof(path), "%s/incomplete.json.error.json", failed);
	expect_file(n, IT_SOCIAL, path, "incomplete.json was not refused");
	/* her fiscal code where a code goes: refused as personal data */
	snprintf(text, sizeof(text),
		 "{\"operator\": {\"staffId\": \"as-0042\", \"role\": \"social-worker\"}, "
		 "\"recipient\": \"%s\", \"caseId\": \"" MOTHER_FC "\", \"note\": "
		 "{\"kind\": \"meeting-minutes\"}}",
		 it_party_ids[IT_CPI]);
	put_outbox(n, IT_SOCIAL, "in-metadata.json", text, 0);
	snprintf(path, sizeof(path), "%s/in-metadata.json.error.json", failed);
	expect_file(n, IT_SOCIAL, path, "in-metadata.json was not refused");
	/* an update of her referral that names nobody, refused before it
	 * was sealed (no such status): hers, as a sealed one would be */
	referral(text, sizeof(text), "her-ref-1", "Maria Rossi", MOTHER_FC);
	put_outbox(n, IT_SOCIAL, "her.json", text, 0);
	char sent[1300];
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	snprintf(path, sizeof(path), "%s/her.json.receipt.json", sent);
	expect_file(n, IT_SOCIAL, path, "her.json got no receipt");
	snprintf(text, sizeof(text),
		 "{\"id\": \"her-upd-1\", \"operator\": {\"staffId\": \"as-0042\", \"role\": "
		 "\"social-worker\"}, \"recipient\": \"%s\", \"caseId\": \"" CASE "\", "
		 "\"update\": {\"referralId\": \"her-ref-1\", \"status\": \"no-such-status\"}}",
		 it_party_ids[IT_CPI]);
	put_outbox(n, IT_SOCIAL, "upd-bad.json", text, 0);
	snprintf(path, sizeof(path), "%s/upd-bad.json.error.json", failed);
	expect_file(n, IT_SOCIAL, path, "upd-bad.json was not refused");
	agent_file(n, IT_SOCIAL, "agent.ini", ini, sizeof(ini));
	const char *asks[] = {"--person rssmra85m41e897x", "--person-id P-0042",
			      "--person " SON_FC};
	for (int i = 0; i < 3; i++) {
		int rc = tu_run(&out, "%s/rete sar %s -c %s --json", n->bin, asks[i], ini);
		assert_int_equal(rc, 0);
		bool named = strstr(out, "failed/incomplete.json") != NULL;
		if (i < 2 && !named)
			fail_msg("rete sar %s does not name failed/incomplete.json, the refused "
				 "copy of her referral the agency holds: %s",
				 asks[i], out);
		if (i == 2 && named)
			fail_msg("the son's answer names the mother's refused file: %s", out);
		/* the fiscal code in the metadata: found by the code itself */
		if (i == 0 && strstr(out, "failed/in-metadata.json") == NULL)
			fail_msg("rete sar does not name failed/in-metadata.json, refused for "
				 "her fiscal code in its caseId: %s",
				 out);
		if (i == 2 && strstr(out, "failed/in-metadata.json") != NULL)
			fail_msg("the son's answer names failed/in-metadata.json: %s", out);
		if (i == 0 && strstr(out, "failed/upd-bad.json") == NULL)
			fail_msg("rete sar does not name failed/upd-bad.json, a refused update of "
				 "her referral her-ref-1 that names nobody: %s",
				 out);
		if (i == 2 && strstr(out, "failed/upd-bad.json") != NULL)
			fail_msg("the son's answer names failed/upd-bad.json, an update of his "
				 "mother's referral: %s",
				 out);
		free(out);
	}
	/* the text says it in Italian */
	int rc = tu_run(&out, "%s/rete sar --person " MOTHER_FC " -c %s", n->bin, ini);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "rifiutat"));
	assert_non_null(strstr(out, "failed/incomplete.json"));
	assert_null(strstr(out, "Nessuna comunicazione"));
	free(out);
}

/* test_log_quotes_no_file: what a file holds never reaches the agent's
 * log. Before, the log line of a refusal carried its sentence, and the
 * sentences quote what they refuse: "referral.priority: 'Maria Rossi
 * RSSMRA85M41E897X' is not accepted", or the parser's "unable to decode
 * byte 0xf2 near '\"Niccol'": the person's data in the journal, outside
 * keep_failed and every subject-access answer. The sentences stay in
 * failed/NAME.error.json (beside the file, which holds them anyway); the
 * log names the fields and that file. */
static void test_log_quotes_no_file(void **state)
{
	it_net *n = net_up(state, "privfiles-log");
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	char text[2048], failed[1300], path[1500], log[1300];
	it_spool(n, IT_SOCIAL, "failed", failed, sizeof(failed));
	tu_path(log, sizeof(log), "%s/social.mantova.log", n->dir);
	/* her name and fiscal code where the priority's code goes */
	referral(text, sizeof(text), "log-quote-1", "Maria Rossi", MOTHER_FC);
	char *pr = strstr(text, "\"routine\"");
	assert_non_null(pr);
	char moved[2048];
	snprintf(moved, sizeof(moved), "%.*s\"Anna Verdi " SON_FC "\"%s", (int)(pr - text), text,
		 pr + strlen("\"routine\""));
	put_outbox(n, IT_SOCIAL, "priority.json", moved, 0);
	/* her fiscal code as a key's name (unknown to the schema) */
	referral(text, sizeof(text), "log-quote-3", "Maria Rossi", MOTHER_FC);
	char *ref = strstr(text, "\"referral\": {");
	assert_non_null(ref);
	snprintf(moved, sizeof(moved), "%.*s\"referral\": {\"" SON_FC "\": 1, %s",
		 (int)(ref - text), text, ref + strlen("\"referral\": {"));
	put_outbox(n, IT_SOCIAL, "key.json", moved, 0);
	/* a file written in Latin-1: not UTF-8, not JSON */
	referral(text, sizeof(text), "log-quote-2", "Niccol\xf2 Bianchi", SON_FC);
	put_outbox(n, IT_SOCIAL, "latin1.json", text, 0);
	snprintf(path, sizeof(path), "%s/priority.json.error.json", failed);
	expect_file(n, IT_SOCIAL, path, "priority.json was not refused");
	char *err = tu_read_file(path, NULL);
	assert_non_null(err);
	assert_non_null(strstr(err, "is not accepted; accepted: routine")); /* the sentence */
	free(err);
	snprintf(path, sizeof(path), "%s/latin1.json.error.json", failed);
	expect_file(n, IT_SOCIAL, path, "latin1.json was not refused");
	err = tu_read_file(path, NULL);
	assert_non_null(err);
	assert_non_null(strstr(err, "unable to decode byte 0xf2"));
	free(err);
	assert_true(it_wait_occurrences(log, "moved to failed/latin1.json", 1, 30000));
	assert_true(it_wait_occurrences(log, "moved to failed/key.json", 1, 30000));
	assert_true(it_wait_occurrences(log, "moved to failed/priority.json", 1, 30000));
	static const char *const never[] = {"Anna Verdi", SON_FC, "Niccol"};
	for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
		if (tu_occurrences(log, never[i]) != 0) {
			it_show(n, "social.mantova.log");
			fail_msg("the agent's log quotes '%s' from a refused file", never[i]);
		}
	/* what it says instead: the fields, the position, the answer's file */
	assert_true(tu_occurrences(log, "referral.priority") >= 1);
	assert_true(tu_occurrences(log, "failed/priority.json.error.json") >= 1);
	assert_true(tu_occurrences(log, "line 1, column") >= 1);
	assert_true(tu_occurrences(log, "failed/latin1.json.error.json") >= 1);
}

/* crash_move does by hand what the agent's move of outbox/NAME to SUB/NAME
 * (sent/ at its receipt, failed/ at its refusal) does: the file linked
 * under its name there, its answer (SUFFIX) written beside it naming the
 * file and the message, the outbox name removed. What an agent killed
 * right after the move leaves behind: the file with the time the case
 * system gave it, and no "filed" line in the person index. */
static void crash_move(it_net *n, int p, const char *sub, const char *name, const char *suffix,
		       const char *id)
{
	char out[1300], to[1300], from[1500], path[1500], ans[512];
	it_spool(n, p, "outbox", out, sizeof(out));
	it_spool(n, p, sub, to, sizeof(to));
	snprintf(from, sizeof(from), "%s/%s", out, name);
	snprintf(path, sizeof(path), "%s/%s", to, name);
	assert_int_equal(link(from, path), 0);
	snprintf(path, sizeof(path), "%s/%s%s", to, name, suffix);
	int len = snprintf(ans, sizeof(ans), "{\n  \"file\": \"%s\",\n  \"messageId\": \"%s\"\n}\n",
			   name, id);
	assert_int_equal(tu_write_file(path, ans, (size_t)len), 0);
	assert_int_equal(unlink(from), 0);
}

/* block_folder replaces p's spool folder SUB by a file (SUB.away keeps
 * it): the agent cannot answer there, says so and tries again later. */
static void block_folder(it_net *n, int p, const char *sub)
{
	char dir[1300], away[1400];
	it_spool(n, p, sub, dir, sizeof(dir));
	snprintf(away, sizeof(away), "%s.away", dir);
	assert_int_equal(rename(dir, away), 0);
	assert_int_equal(tu_write_file(dir, "", 0), 0);
}

/* crash_moved kills p's agent (kill -9), puts its folder SUB back and
 * moves outbox/NAME there as the agent's move would have (crash_move). */
static void crash_moved(it_net *n, int p, const char *sub, const char *name, const char *suffix,
			const char *id)
{
	char dir[1300], away[1400];
	int st = it_stop(&n->agent_pid[p], SIGKILL, it_wait_ms());
	assert_true(st != -1 && WIFSIGNALED(st));
	it_spool(n, p, sub, dir, sizeof(dir));
	snprintf(away, sizeof(away), "%s.away", dir);
	assert_int_equal(unlink(dir), 0);
	assert_int_equal(rename(away, dir), 0);
	crash_move(n, p, sub, name, suffix, id);
}

/* A refusal cut short by a crash (kill -9 right after the file was moved to
 * failed/, before the move was recorded), reproduced from the files it
 * leaves: the agent took the file in (its id recorded) and refused it, but
 * could not move it (failed/ was not a folder for a while) and was killed;
 * the file is then moved by hand as the agent would have moved it, with
 * its refusal beside it but the time the case system wrote it, 40 days
 * ago, and no "filed" line. Started again with keep_failed = 30d, the
 * agent must not erase it (refused just now), and records the move as it
 * would have. */
static void test_crash_after_move_failed(void **state)
{
	it_net *n = net_up(state, "privfiles-crashfail");
	assert_true(it_agent_start(n, IT_SOCIAL)); /* no broker: refused before */
	char text[2048], failed[1300], path[1500], log[1400], idx[1400], alog[1400];
	snprintf(log, sizeof(log), "%s/social.mantova.log", n->dir);
	agent_file(n, IT_SOCIAL, "data/persons.jsonl", idx, sizeof(idx));
	agent_file(n, IT_SOCIAL, "data/access.log", alog, sizeof(alog));
	it_spool(n, IT_SOCIAL, "failed", failed, sizeof(failed));
	block_folder(n, IT_SOCIAL, "failed");
	/* no service: refused as invalid, after its id was recorded */
	snprintf(text, sizeof(text),
		 "{\"id\": \"crash-fail-1\", \"operator\": {\"staffId\": \"as-0042\", "
		 "\"role\": \"social-worker\"}, \"recipient\": \"%s\", \"caseId\": \"" CASE
		 "\", \"referral\": {\"priority\": \"routine\"}, \"private\": {\"person\": "
		 "{\"name\": \"Maria Rossi\", \"fiscalCode\": \"" MOTHER_FC "\"}}}",
		 it_party_ids[IT_CPI]);
	put_outbox(n, IT_SOCIAL, "crash.json", text, 40);
	if (!it_wait_occurrences(log, "crash.json: refused (invalid", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("crash.json was not refused");
	}
	crash_moved(n, IT_SOCIAL, "failed", "crash.json", ".error.json", "crash-fail-1");
	/* an old refusal, truly 40 days old: its erasure says the scan ran */
	snprintf(path, sizeof(path), "%s/old.json", failed);
	assert_int_equal(tu_write_file(path, "{}\n", 3), 0);
	it_set_age(path, 40);
	snprintf(path, sizeof(path), "%s/old.json.error.json", failed);
	assert_int_equal(tu_write_file(path, "{}\n", 3), 0);
	it_set_age(path, 40);
	assert_true(it_agent_start_ex(n, IT_SOCIAL, "\n[privacy]\nkeep_failed = 30d\n"));
	if (!it_wait_occurrences(alog, "erased failed/old.json:", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("failed/old.json (refused 40 days ago) was not erased");
	}
	snprintf(path, sizeof(path), "%s/crash.json", failed);
	if (!tu_exists(path) || tu_occurrences(alog, "erased failed/crash.json") != 0)
		fail_msg("failed/crash.json, refused just before the agent was killed, was erased "
			 "at its restart: keep_failed counted from when the case system wrote "
			 "it (40 days ago), not from its refusal");
	double age = age_days(path);
	if (age > 1)
		fail_msg("failed/crash.json counts from %.1f days ago, not from its refusal", age);
	if (tu_occurrences(idx, "\"id\":\"crash-fail-1\",\"file\":\"crash.json\",\"filed\":true") !=
	    1)
		fail_msg("the move of crash-fail-1 to failed/crash.json is not recorded in %s",
			 idx);
}

/* An acceptance cut short by a crash after the move to sent/, reproduced
 * from what it leaves: the receipt came and was recorded (the message held
 * for its delivery), the move failed (sent/ was not a folder for a while),
 * the agent was killed, and the file is moved by hand as the agent would
 * have moved it, with the time the case system wrote it (40 days ago) and
 * no "filed" line. The note names nobody, so nothing else tells the agent
 * its sent/ file. Started again with keep_sent = 30d: the delivery is
 * recorded and restarts that file's clock; it is not erased. */
static void crash_sent(void **state, bool rewrite)
{
	it_net *n = it_net_new(rewrite ? "privfiles-crashsent2" : "privfiles-crashsent", NULL);
	*state = n;
	assert_non_null(n);
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL)); /* the job centre stays away */
	char text[1024], sent[1300], path[1500], log[1400], idx[1400], alog[1400];
	snprintf(log, sizeof(log), "%s/social.mantova.log", n->dir);
	agent_file(n, IT_SOCIAL, "data/persons.jsonl", idx, sizeof(idx));
	agent_file(n, IT_SOCIAL, "data/access.log", alog, sizeof(alog));
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	block_folder(n, IT_SOCIAL, "sent");
	snprintf(text, sizeof(text),
		 "{\"id\": \"crash-note-1\", \"operator\": {\"staffId\": \"as-0042\", \"role\": "
		 "\"social-worker\"}, \"recipient\": \"%s\", \"caseId\": \"" CASE "\", "
		 "\"note\": {\"kind\": \"meeting-minutes\"}, \"private\": {\"notes\": "
		 "\"Case meeting held.\"}}",
		 it_party_ids[IT_CPI]);
	put_outbox(n, IT_SOCIAL, "crash-note.json", text, 40);
	if (!it_wait_occurrences(log, "crash-note.json: accepted, but cannot", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("crash-note.json was not accepted");
	}
	crash_moved(n, IT_SOCIAL, "sent", "crash-note.json", ".receipt.json", "crash-note-1");
	if (rewrite) {
		/* the case system writes its next note under the same name */
		snprintf(text, sizeof(text),
			 "{\"id\": \"crash-note-2\", \"operator\": {\"staffId\": \"as-0042\", "
			 "\"role\": \"social-worker\"}, \"recipient\": \"%s\", \"caseId\": "
			 "\"" CASE "\", \"note\": {\"kind\": \"meeting-minutes\"}, \"private\": "
			 "{\"notes\": \"Second meeting held.\"}}",
			 it_party_ids[IT_CPI]);
		put_outbox(n, IT_SOCIAL, "crash-note.json", text, 0);
	}
	assert_true(it_agent_start_ex(n, IT_SOCIAL, "\n[privacy]\nkeep_sent = 30d\nscan = 1s\n"));
	assert_true(it_agent_start(n, IT_CPI));
	snprintf(path, sizeof(path), "%s/crash-note.json", sent);
	if (!it_wait_occurrences(idx, "\"delivered\":\"crash-note-1\"", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("the delivery of crash-note-1 was not recorded: the agent did not know "
			 "its sent/ file (no \"filed\" line after the crash); sent/crash-note.json "
			 "%s",
			 tu_exists(path) ? "still counts from when the case system wrote it"
					 : "was erased");
	}
	double age = age_days(path);
	if (age < 0 || age > 1)
		fail_msg("sent/crash-note.json, delivered just now, %s",
			 age < 0 ? "was erased" : "does not count from its delivery");
	assert_int_equal(tu_occurrences(alog, "erased sent/crash-note.json"), 0);
	if (tu_occurrences(idx, "\"id\":\"crash-note-1\",\"file\":\"crash-note.json\","
				"\"filed\":true") != 1)
		fail_msg("the move of crash-note-1 to sent/crash-note.json is not recorded in %s",
			 idx);
	if (rewrite) {
		snprintf(path, sizeof(path), "%s/crash-note.json.2.receipt.json", sent);
		if (!wait_exists(path, 30000)) {
			it_show(n, "social.mantova.log");
			fail_msg("crash-note-2, written under the name of crash-note-1 after the "
				 "crash, was not sent");
		}
	}
}

static void test_crash_after_move_sent(void **state)
{
	crash_sent(state, false);
}

/* The same, with a new file the case system wrote under the same outbox/
 * name before the restart: the stale record of crash-note-1 must not be
 * taken for that file, whose content is another. */
static void test_crash_after_move_sent_name_reused(void **state)
{
	crash_sent(state, true);
}

/* A message sealed but not yet answered (the broker is stopped) is still in
 * outbox/: the person's answer names that copy; so does it a file of
 * outbox/ naming her that the agent has not sealed (it was stopped). */
static void test_sar_outbox_copy(void **state)
{
	it_net *n = net_up(state, "privfiles-outbox");
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	char text[2048], log[1400], idx[1400], ini[1400], *out = NULL;
	snprintf(log, sizeof(log), "%s/social.mantova.log", n->dir);
	agent_file(n, IT_SOCIAL, "data/persons.jsonl", idx, sizeof(idx));
	agent_file(n, IT_SOCIAL, "agent.ini", ini, sizeof(ini));
	if (!it_wait_occurrences(log, "connected to", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("the agent did not connect");
	}
	/* the broker stops answering: the message is sealed, sent, and waits */
	assert_int_equal(kill(n->broker_pid, SIGSTOP), 0);
	referral(text, sizeof(text), "waiting-1", "Maria Rossi", MOTHER_FC);
	put_outbox(n, IT_SOCIAL, "waiting.json", text, 0);
	if (!it_wait_occurrences(idx, "\"id\":\"waiting-1\"", 1, 30000)) {
		kill(n->broker_pid, SIGCONT);
		it_show(n, "social.mantova.log");
		fail_msg("waiting-1 was not sealed and indexed");
	}
	json_t *m = sar_message(n, IT_SOCIAL, MOTHER_FC, "waiting-1");
	json_t *son = sar_message(n, IT_SOCIAL, SON_FC, "waiting-1");
	assert_int_equal(kill(n->broker_pid, SIGCONT), 0);
	assert_non_null(m);
	assert_null(son);
	if (!has_file(m, "outbox/waiting.json"))
		fail_msg("the mother's answer does not name outbox/waiting.json, the copy of "
			 "waiting-1 the agency holds until it is sent: %s",
			 json_dumps(m, JSON_COMPACT));
	json_decref(m);
	/* the agent stopped: a file written meanwhile is in no index record */
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	referral(text, sizeof(text), "unsealed-1", "Maria Rossi", MOTHER_FC);
	put_outbox(n, IT_SOCIAL, "unsealed.json", text, 0);
	const char *asks[] = {"--person " MOTHER_FC, "--person " SON_FC};
	for (int i = 0; i < 2; i++) {
		int rc = tu_run(&out, "%s/rete sar %s -c %s --json", n->bin, asks[i], ini);
		assert_int_equal(rc, 0);
		bool named = strstr(out, "outbox/unsealed.json") != NULL;
		if (i == 0 && !named)
			fail_msg(
			    "rete sar does not name outbox/unsealed.json, a referral about her "
			    "waiting in outbox/: %s",
			    out);
		if (i == 1 && named)
			fail_msg("the son's answer names his mother's outbox/unsealed.json: %s",
				 out);
		free(out);
	}
	int rc = tu_run(&out, "%s/rete sar --person " MOTHER_FC " -c %s", n->bin, ini);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "outbox/unsealed.json"));
	assert_non_null(strstr(out, "non ancora inviate"));
	free(out);
	/* the printable page lists it too */
	char page[1400];
	snprintf(page, sizeof(page), "%s/answer.html", n->dir);
	rc = tu_run(&out, "%s/rete sar --person " MOTHER_FC " -c %s --html %s", n->bin, ini, page);
	assert_int_equal(rc, 0);
	free(out);
	out = tu_read_file(page, NULL);
	assert_non_null(out);
	assert_non_null(strstr(out, "<li>outbox/unsealed.json, "));
	assert_non_null(strstr(out, "non ancora inviate"));
	free(out);
	/* --html never writes through a symbolic link: the person's answer
	 * would replace the file the link points to (session 13, rev-hostile
	 * finding 7); refused, exit 2, with a sentence, the target untouched */
	char victim[1400], link[1400];
	snprintf(victim, sizeof(victim), "%s/victim.txt", n->dir);
	snprintf(link, sizeof(link), "%s/sarlink.html", n->dir);
	assert_int_equal(tu_write_file(victim, "untouched\n", 10), 0);
	assert_int_equal(symlink(victim, link), 0);
	rc = tu_run(&out, "%s/rete sar --person " MOTHER_FC " -c %s --html %s", n->bin, ini, link);
	if (rc != 2 || strstr(out, "symbolic link") == NULL)
		fail_msg("rete sar --html through a symbolic link: exit %d, expected 2 and a "
			 "sentence naming the symbolic link: %.400s",
			 rc, out);
	free(out);
	out = tu_read_file(victim, NULL);
	assert_non_null(out);
	if (strcmp(out, "untouched\n") != 0)
		fail_msg("rete sar --html wrote through a symbolic link into its target: %.200s",
			 out);
	free(out);
}

/* drop_lines rewrites the person index at path without its lines that
 * contain needle: what a power cut takes of lines appended and not yet
 * synced. Returns how many it dropped. */
static size_t drop_lines(const char *path, const char *needle)
{
	char *text = tu_read_file(path, NULL);
	assert_non_null(text);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	size_t dropped = 0;
	for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		if (strstr(line, needle) != NULL)
			dropped++;
		else
			fprintf(f, "%s\n", line);
	}
	assert_int_equal(fclose(f), 0);
	free(text);
	return dropped;
}

/* The person index's lines are synced many at once; until then they are
 * kept in the agent's store with the event each records. Both agents are
 * killed after a referral was sealed, sent, delivered and its delivery
 * recorded, and its lines are taken out of both indexes (what a power cut
 * takes of lines not yet synced): `rete sar` still answers from where the
 * agent keeps them, and at the next start they are back in the index. */
static void test_index_lines_kept(void **state)
{
	it_net *n = net_up(state, "privfiles-journal");
	assert_true(it_broker_start(n));
	/* no retention scan (which syncs the file and empties the journal)
	 * before the kill, whatever the default */
	const char *noscan = "\n[privacy]\nscan = 1h\n";
	assert_true(it_agent_start_ex(n, IT_SOCIAL, noscan));
	assert_true(it_agent_start_ex(n, IT_CPI, noscan));
	char text[2048], idx[2][1400];
	int who[2] = {IT_SOCIAL, IT_CPI};
	for (int i = 0; i < 2; i++)
		agent_file(n, who[i], "data/persons.jsonl", idx[i], sizeof(idx[i]));
	referral(text, sizeof(text), "journal-1", "Maria Rossi", MOTHER_FC);
	put_outbox(n, IT_SOCIAL, "journal.json", text, 0);
	if (!it_wait_occurrences(idx[0], "\"delivered\":\"journal-1\"", 1, 30000) ||
	    !it_wait_occurrences(idx[1], "\"id\":\"journal-1\"", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("journal-1 was not delivered and indexed at both agencies");
	}
	/* sealed, filed, delivered at the sender; received at the recipient */
	size_t want[2] = {3, 1};
	for (int i = 0; i < 2; i++) {
		int st = it_stop(&n->agent_pid[who[i]], SIGKILL, it_wait_ms());
		assert_true(st != -1 && WIFSIGNALED(st));
		assert_int_equal(drop_lines(idx[i], "journal-1"), want[i]);
	}
	/* the agents stopped: rete sar finds those lines where they are kept */
	json_t *m = sar_message(n, IT_SOCIAL, MOTHER_FC, "journal-1");
	if (m == NULL || json_array_size(json_object_get(m, "deliveries")) != 1)
		fail_msg("rete sar, the agent stopped, does not answer journal-1 with its delivery "
			 "from the lines kept in the agent's store");
	json_decref(m);
	/* ...and gives no answer rather than one without them when it cannot
	 * read that store: here one a newer agent wrote (schema 99) */
	char data[1400], *out = NULL, ini[1400];
	agent_file(n, IT_SOCIAL, "data", data, sizeof(data));
	agent_file(n, IT_SOCIAL, "agent.ini", ini, sizeof(ini));
	assert_int_equal(
	    tu_run(&out, "printf 'schema\\n99\\n' | mdb_load -T -s meta '%s' 2>&1", data), 0);
	free(out);
	int rc = tu_run(&out, "%s/rete sar --person %s -c %s --json 2>&1", n->bin, MOTHER_FC, ini);
	if (rc == 0 || !strstr(out, "has schema 99") || !strstr(out, "no answer"))
		fail_msg("rete sar on a store it cannot read: exit %d: %s", rc, out);
	free(out);
	assert_int_equal(
	    tu_run(&out, "printf 'schema\\n2\\n' | mdb_load -T -s meta '%s' 2>&1", data), 0);
	free(out);
	for (int i = 0; i < 2; i++) {
		assert_true(it_agent_start_ex(n, who[i], noscan));
		char log[1400];
		snprintf(log, sizeof(log), "%s/%s.log", n->dir, it_party_ids[who[i]]);
		if (!it_wait_occurrences(log, "connected to", 2, 30000)) {
			it_show(n, i == 0 ? "social.mantova.log" : "cpi.mantova.log");
			fail_msg("%s did not start again", it_party_ids[who[i]]);
		}
		size_t got = tu_occurrences(idx[i], "\"id\":\"journal-1\"") +
			     tu_occurrences(idx[i], "\"delivered\":\"journal-1\"");
		if (got != want[i])
			fail_msg("%s: %zu line(s) of journal-1 in its person index after the stop, "
				 "not %zu: lines not yet synced were lost",
				 it_party_ids[who[i]], got, want[i]);
	}
	sar_expect(n, IT_SOCIAL, MOTHER_FC, "journal-1", 1, -1, "sent/journal.json");
	sar_expect(n, IT_CPI, MOTHER_FC, "journal-1", -1, 1, NULL);
}

/* index_blocked: the social services' person index made a folder, so that
 * nothing can be appended to it or synced (the disk full, an I/O error) */
struct index_blocked {
	char idx[1400], away[1500], log[1400];
	bool had; /* the file was there: moved to away */
};

/* index_block starts the broker, the social services' agent (with the
 * agent.ini lines extra, or none) and the job centre's, waits for the first
 * to connect, and puts a folder where its persons.jsonl was */
static void index_block(it_net *n, const char *extra, struct index_blocked *b)
{
	assert_true(it_broker_start(n));
	assert_true(extra ? it_agent_start_ex(n, IT_SOCIAL, extra) : it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI));
	snprintf(b->log, sizeof(b->log), "%s/social.mantova.log", n->dir);
	agent_file(n, IT_SOCIAL, "data/persons.jsonl", b->idx, sizeof(b->idx));
	snprintf(b->away, sizeof(b->away), "%s.away", b->idx);
	if (!it_wait_occurrences(b->log, "connected to", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("the agent did not connect");
	}
	b->had = tu_exists(b->idx);
	if (b->had)
		assert_int_equal(rename(b->idx, b->away), 0);
	if (mkdir(b->idx, 0700) != 0)
		fail_msg("mkdir %s: %s", b->idx, strerror(errno));
}

/* index_unblock puts the file back */
static void index_unblock(struct index_blocked *b)
{
	assert_int_equal(rmdir(b->idx), 0);
	if (b->had)
		assert_int_equal(rename(b->away, b->idx), 0);
}

/* A failed append of journalled lines (the disk full, an I/O error: here
 * persons.jsonl is a folder for a while) must not lose them: the journal
 * keeps them until they are appended again and synced. The agent seals,
 * files and records the delivery of a referral while it cannot append;
 * the file is put back and the agent stopped cleanly (which syncs the
 * file and empties the journal): the index holds every line, once, and
 * `rete sar` answers from it. */
static void test_index_append_failed(void **state)
{
	it_net *n = net_up(state, "privfiles-appendfail");
	struct index_blocked b;
	index_block(n, NULL, &b);
	const char *idx = b.idx, *log = b.log;
	char text[2048];
	referral(text, sizeof(text), "appendfail-1", "Maria Rossi", MOTHER_FC);
	put_outbox(n, IT_SOCIAL, "appendfail.json", text, 0);
	/* sealed, filed, delivered while persons.jsonl cannot be appended to */
	if (!it_wait_occurrences(log, "(delivery from broker.mantova) written to inbox/", 1,
				 30000) ||
	    tu_occurrences(log, "cannot append: Is a directory") == 0) {
		it_show(n, "social.mantova.log");
		fail_msg("appendfail-1 was not delivered while persons.jsonl could not be "
			 "appended to");
	}
	index_unblock(&b);
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	size_t got = tu_occurrences(idx, "\"id\":\"appendfail-1\"") +
		     tu_occurrences(idx, "\"delivered\":\"appendfail-1\"");
	if (got != 3) {
		it_show(n, "social.mantova.log");
		fail_msg("%zu line(s) of appendfail-1 in the person index after a clean stop, not "
			 "3: the journal was emptied though its lines were never appended",
			 got);
	}
	json_t *m = sar_message(n, IT_SOCIAL, MOTHER_FC, "appendfail-1");
	if (m == NULL || json_array_size(json_object_get(m, "deliveries")) != 1)
		fail_msg("rete sar does not answer appendfail-1 with its delivery");
	json_decref(m);
	/* started again: nothing appended twice */
	assert_true(it_agent_start(n, IT_SOCIAL));
	if (!it_wait_occurrences(log, "connected to", 2, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("the agent did not start again");
	}
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	assert_int_equal(tu_occurrences(idx, "\"id\":\"appendfail-1\"") +
			     tu_occurrences(idx, "\"delivered\":\"appendfail-1\""),
			 3);
}

/* A person index that cannot be synced (persons.jsonl a folder: the disk
 * full, an I/O error) is said once, not at every try: with [privacy] scan =
 * 1s the agent tries at every scan, and says the failure again only a
 * minute later; once the file is back, "synced again" says how many tries
 * failed meanwhile, and the lines are in the file. */
static void test_index_flush_said_once(void **state)
{
	it_net *n = net_up(state, "privfiles-flushsaid");
	struct index_blocked b;
	index_block(n, "\n[privacy]\nscan = 1s\n", &b);
	const char *idx = b.idx, *log = b.log;
	char text[2048];
	referral(text, sizeof(text), "flushsaid-1", "Maria Rossi", MOTHER_FC);
	put_outbox(n, IT_SOCIAL, "flushsaid.json", text, 0);
	static const char said[] = "its lines stay in the agent's store";
	if (!it_wait_occurrences(log, "(delivery from broker.mantova) written to inbox/", 1,
				 30000) ||
	    !it_wait_occurrences(log, said, 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("flushsaid-1 was not delivered, or the failed sync not said, while "
			 "persons.jsonl was a folder");
	}
	/* time for three more scans, each a try that fails (what is checked is
	 * that they are not said, so the time must pass) */
	it_nap(it_scaled_ms(3500));
	index_unblock(&b);
	static const char again[] = "person index: synced again";
	if (!it_wait_occurrences(log, again, 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("the agent never said the person index was synced again");
	}
	size_t times = tu_occurrences(log, said);
	char *t = tu_read_file(log, NULL);
	const char *at = t ? strstr(t, again) : NULL;
	const char *cnt = at ? strstr(at, "store (") : NULL;
	unsigned fails = cnt ? (unsigned)strtoul(cnt + strlen("store ("), NULL, 10) : 0;
	free(t);
	if (times != 1 || fails == 0) {
		it_show(n, "social.mantova.log");
		fail_msg("the failed sync was said %zu time(s) (want 1), and %u failed tries were "
			 "held back (want at least 1)",
			 times, fails);
	}
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	assert_int_equal(tu_occurrences(idx, "\"id\":\"flushsaid-1\"") +
			     tu_occurrences(idx, "\"delivered\":\"flushsaid-1\""),
			 3);
}

/* A message the case system wrote without an "id" (the agent mints one)
 * waits for its delivery longer than keep_sent: its sent/ file is not
 * erased while it waits, as one with an "id" is not. */
static void test_minted_id_held(void **state)
{
	it_net *n = net_up(state, "privfiles-minted");
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL)); /* the job centre stays away */
	char text[1024], sent[1300], path[1500], rcpt[1500], alog[1400];
	agent_file(n, IT_SOCIAL, "data/access.log", alog, sizeof(alog));
	snprintf(text, sizeof(text),
		 "{\"operator\": {\"staffId\": \"as-0042\", \"role\": \"social-worker\"}, "
		 "\"recipient\": \"%s\", \"caseId\": \"" CASE "\", \"note\": {\"kind\": "
		 "\"meeting-minutes\"}, \"private\": {\"notes\": \"Case meeting held.\"}}",
		 it_party_ids[IT_CPI]);
	put_outbox(n, IT_SOCIAL, "no-id.json", text, 0);
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	snprintf(path, sizeof(path), "%s/no-id.json", sent);
	snprintf(rcpt, sizeof(rcpt), "%s/no-id.json.receipt.json", sent);
	expect_file(n, IT_SOCIAL, rcpt, "no receipt for no-id.json");
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	/* received 40 days ago, still waiting for its delivery */
	it_set_age(path, 40);
	it_set_age(rcpt, 40);
	/* an old file of sent/ that goes: its erasure says the scan ran */
	snprintf(text, sizeof(text), "%s/old.json", sent);
	assert_int_equal(tu_write_file(text, "{}\n", 3), 0);
	it_set_age(text, 40);
	assert_true(it_agent_start_ex(n, IT_SOCIAL, "\n[privacy]\nkeep_sent = 30d\n"));
	if (!it_wait_occurrences(alog, "erased sent/old.json:", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("sent/old.json was not erased");
	}
	if (!tu_exists(path) || tu_occurrences(alog, "erased sent/no-id.json") != 0)
		fail_msg("sent/no-id.json (its id minted by the agent) was erased while its "
			 "message waits for its delivery");
	assert_true(tu_exists(rcpt));
}

int main(void)
{
	/* the teardown stops the processes and removes the folder, also
	 * after a failure */
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_sent_name_reused, it_teardown),
	    cmocka_unit_test_teardown(test_sent_nobody_clock, it_teardown),
	    cmocka_unit_test_teardown(test_prefix_sender, it_teardown),
	    cmocka_unit_test_teardown(test_records_while_file_held, it_teardown),
	    cmocka_unit_test_teardown(test_sar_refused_copy, it_teardown),
	    cmocka_unit_test_teardown(test_log_quotes_no_file, it_teardown),
	    cmocka_unit_test_teardown(test_refused_after_sealing_renamed, it_teardown),
	    cmocka_unit_test_teardown(test_crash_after_move_failed, it_teardown),
	    cmocka_unit_test_teardown(test_crash_after_move_sent, it_teardown),
	    cmocka_unit_test_teardown(test_crash_after_move_sent_name_reused, it_teardown),
	    cmocka_unit_test_teardown(test_sar_outbox_copy, it_teardown),
	    cmocka_unit_test_teardown(test_index_lines_kept, it_teardown),
	    cmocka_unit_test_teardown(test_minted_id_held, it_teardown),
	    cmocka_unit_test_teardown(test_index_append_failed, it_teardown),
	    cmocka_unit_test_teardown(test_index_flush_said_once, it_teardown),
	};
	if (getenv("RETE_TEST_ONLY") != NULL) /* e.g. RETE_TEST_ONLY=test_index_lines_kept */
		cmocka_set_test_filter(getenv("RETE_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
