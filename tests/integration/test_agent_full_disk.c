/* test_agent_full_disk.c — the agent's store on a full file system, while
 * it seals a referral that names a person.
 *
 * The test makes its own mount namespace (unshare(CLONE_NEWNS), mounts made
 * private) and mounts a small tmpfs in its temporary folder; the data
 * folder of the social services' agent (DATA: its LMDB store and
 * persons.jsonl) is a link to it. Then:
 *
 *   1. a referral naming one person goes through as usual (the store has
 *      free pages of its own afterwards, and persons.jsonl exists);
 *   2. the broker and that agent are stopped; the agent is started again
 *      alone, so that it takes in the next referral (its message id
 *      recorded) but cannot seal it yet (no directory without the broker);
 *   3. persons.jsonl is given room (fallocate, size kept) and the tmpfs is
 *      filled to its last page: the store can no longer grow, the index
 *      can. The broker is started: the agent seals the referral, and the
 *      transaction that records the sealed bytes (and their "sealed"
 *      person-index line) fails for lack of space, and fails again at
 *      every turn while the disk is full;
 *   4. the filler is deleted: the same agent (never restarted) seals the
 *      referral again, records it and sends it, once; it is receipted and
 *      delivered;
 *   5. after a clean stop (which syncs persons.jsonl) the index holds one
 *      "sealed" line for it: not one per failed transaction, not one for a
 *      message that was never recorded as sealed (commit 156849e), and the
 *      person's `rete sar` answer has the message with its one delivery.
 *
 * Where mount namespaces are not allowed the test is skipped with a
 * sentence saying why, not failed.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/statvfs.h>

#include <cmocka.h>
#include <jansson.h>

#include "itest.h"

#define PERSON_FC "RSSMRA85M41E897X"
#define OTHER_FC  "BNCLCU10T12E897Q"
#define NOTES	  60000 /* of the sealed part: its record needs new pages */

/* put_referral writes into the social services' outbox, as NAME.json, a
 * referral to the job centre about the person with fiscal code fc, with
 * notes_len bytes of notes in its sealed part. */
static void put_referral(it_net *n, const char *id, const char *fc, size_t notes_len)
{
	char *notes = malloc(notes_len + 1), name[128];
	assert_non_null(notes);
	for (size_t i = 0; i < notes_len; i++)
		notes[i] = "Colloquio del martedi. "[i % 23];
	notes[notes_len] = '\0';
	json_t *doc = json_pack(
	    "{s:s, s:{s:s, s:s}, s:s, s:s, s:{s:s, s:s, s:s, s:{s:s, s:s, s:s}, s:s}, "
	    "s:{s:{s:s, s:s}, s:s, s:s}}",
	    "id", id, "operator", "staffId", "as-0077", "role", "social-worker", "recipient",
	    it_party_ids[IT_CPI], "caseId", "mn-2026-0911", "referral", "service",
	    it_service[IT_CPI], "priority", "routine", "reasonCode", "long-term-unemployment",
	    "consent", "basis", "consent", "givenAt", "2026-11-30T10:00:00Z", "reference",
	    "CONS-2026-0977", "ageBand", "adult", "private", "person", "name", "Giovanna Verdi",
	    "fiscalCode", fc, "reason", "Senza lavoro da aprile.", "notes", notes);
	assert_non_null(doc);
	char *text = json_dumps(doc, JSON_COMPACT);
	assert_non_null(text);
	snprintf(name, sizeof(name), "%s.json", id);
	it_outbox_put_aged(n, IT_SOCIAL, name, text, 5);
	free(text);
	json_decref(doc);
	free(notes);
}

/* fill writes path until the file system refuses a page: none is left. */
static void fill(const char *path)
{
	static char chunk[64 * 1024];
	memset(chunk, 0x5a, sizeof(chunk));
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	ssize_t w;
	while ((w = write(fd, chunk, sizeof(chunk))) > 0)
		;
	assert_int_equal(errno, ENOSPC);
	close(fd);
	struct statvfs sv;
	assert_int_equal(statvfs(path, &sv), 0);
	assert_int_equal(sv.f_bfree, 0);
}

/* give_room preallocates len bytes after the end of path (its size kept):
 * appends up to that take no new page of the file system. */
static void give_room(const char *path, off_t len)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(fallocate(fd, FALLOC_FL_KEEP_SIZE, st.st_size, len), 0);
	close(fd);
}

/* wait_log waits for want lines with needle in p's log, and fails with
 * the log shown when they do not come. */
static void wait_log(it_net *n, int p, const char *needle, size_t want, const char *what)
{
	char log[1300], name[64];
	snprintf(log, sizeof(log), "%s/%s.log", n->dir, it_party_ids[p]);
	if (it_wait_occurrences(log, needle, want, 30000))
		return;
	snprintf(name, sizeof(name), "%s.log", it_party_ids[p]);
	it_show(n, name);
	fail_msg("%s", what);
}

static void count_id(void *ctx, uint64_t index, const Rete__Message *msg)
{
	(void)index;
	if (strcmp(msg->id, "disk-1") == 0)
		(*(int *)ctx)++;
}

/* sar_deliveries: how many deliveries the answer of `rete sar` for fc
 * (the social services' agent) gives message id (-1: not in it). */
static int sar_deliveries(it_net *n, const char *fc, const char *id)
{
	char *out = NULL;
	int rc = tu_run(&out, "'%s/rete' sar --person %s -c '%s/agents/%s/agent.ini' --json",
			n->bin, fc, n->dir, it_party_ids[IT_SOCIAL]);
	json_t *ans = rc == 0 ? json_loads(out, 0, NULL) : NULL;
	if (ans == NULL)
		fail_msg("rete sar --person %s: exit %d: %s", fc, rc, out);
	int found = -1;
	size_t i;
	json_t *msg;
	json_array_foreach(json_object_get(ans, "messages"), i, msg)
	{
		if (strcmp(json_string_value(json_object_get(msg, "id")) ?: "", id) == 0)
			found = (int)json_array_size(json_object_get(msg, "deliveries"));
	}
	if (found < 0)
		fprintf(stderr, "rete sar --person %s has no %s: %s\n", fc, id, out);
	json_decref(ans);
	free(out);
	return found;
}

static void test_agent_full_disk(void **state)
{
	if (!it_disk_mount(state, "test_agent_full_disk", "2m"))
		skip();
	it_disk *d = *state;

	it_net *n = d->n = it_net_new("agentdisk-net", NULL);
	assert_non_null(n);
	char path[1500], data[1300], idx[1400], filler[1300], sent[1300];
	snprintf(data, sizeof(data), "%s/data", d->mnt);
	assert_int_equal(mkdir(data, 0700), 0);
	it_write_agent_ini(n, IT_SOCIAL); /* makes agents/ID */
	snprintf(path, sizeof(path), "%s/agents/%s/data", n->dir, it_party_ids[IT_SOCIAL]);
	assert_int_equal(symlink(data, path), 0);
	snprintf(idx, sizeof(idx), "%s/persons.jsonl", data);
	snprintf(filler, sizeof(filler), "%s/filler", d->mnt);
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	/* no retention scan but the one at the start: persons.jsonl is only
	 * appended to */
	const char *extra = "\n[privacy]\nscan = 1h\n";
	int ms = it_wait_ms();

	/* 1. one referral as usual */
	assert_true(it_broker_start(n));
	assert_true(it_agent_start_ex(n, IT_SOCIAL, extra));
	assert_true(it_agent_start(n, IT_CPI));
	put_referral(n, "warm-1", OTHER_FC, 100);
	if (!it_wait_occurrences(idx, "\"delivered\":\"warm-1\"", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("the delivery of warm-1 was not recorded in %s", idx);
	}

	/* 2. the agent alone takes in the next referral */
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, ms), 0);
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, ms), 0);
	assert_true(it_agent_start_ex(n, IT_SOCIAL, extra));
	put_referral(n, "disk-1", PERSON_FC, NOTES);
	wait_log(n, IT_SOCIAL, "message id disk-1 recorded", 1,
		 "the agent did not record the id of disk-1");

	/* 3. the disk full but for the index; the broker back: the seal of
	 * disk-1 cannot be recorded */
	give_room(idx, 64 * 1024);
	fill(filler);
	assert_true(it_broker_start(n));
	wait_log(n, IT_SOCIAL, "cannot record signed messages", 1,
		 "the agent did not say that it could not record the sealed disk-1");
	int logged = 0;
	assert_true(it_log_each(n, count_id, &logged) > 0);
	assert_int_equal(logged, 0); /* not submitted */

	/* 4. space again: sent once, receipted, delivered */
	assert_int_equal(unlink(filler), 0);
	pid_t pid = n->agent_pid[IT_SOCIAL];
	if (!it_wait_occurrences(idx, "\"delivered\":\"disk-1\"", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("the delivery of disk-1 was not recorded in %s", idx);
	}
	assert_int_equal(n->agent_pid[IT_SOCIAL], pid);
	assert_int_equal(n->agent_starts[IT_SOCIAL], 2);
	snprintf(path, sizeof(path), "%s/disk-1.json.receipt.json", sent);
	assert_true(tu_exists(path));
	logged = 0;
	assert_true(it_log_each(n, count_id, &logged) > 0);
	assert_int_equal(logged, 1);

	/* 5. after a clean stop: one "sealed" line, then "filed" and
	 * "delivered" ones, and the person's answer */
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, ms), 0);
	size_t sealed = tu_occurrences(idx, "\"id\":\"disk-1\",\"kind\":\"referral\"");
	if (sealed != 1) {
		it_show_path(idx, 0);
		fail_msg("persons.jsonl has %zu \"sealed\" lines of disk-1 (want 1)", sealed);
	}
	assert_int_equal(tu_occurrences(idx, "\"id\":\"disk-1\",\"file\":\"disk-1.json\""), 1);
	assert_int_equal(tu_occurrences(idx, "\"id\":\"warm-1\",\"kind\":\"referral\""), 1);
	assert_int_equal(sar_deliveries(n, PERSON_FC, "disk-1"), 1);
	assert_int_equal(sar_deliveries(n, OTHER_FC, "disk-1"), -1);
}

/* inbox/ that cannot be written for a while (here it is a file: every
 * write fails, as on a full disk) while referrals come: the agent holds
 * them unacked, and the broker sets aside what it read and left unacked
 * and goes on with what follows (broker.c). Once inbox/ is back, the
 * agent must still write what it was sent in log order (DESIGN.md §5):
 * nothing above the lowest entry it could not write is taken before it
 * (review s13 window, finding 1: "9 10 12 14 1 2 3 4 5 6 7 8"). */
static void test_inbox_order(void **state)
{
	it_net *n = it_net_new("agentdisk-order", NULL);
	assert_non_null(n);
	*state = n;
	n->window = 4;
	assert_int_equal(it_write_ini(n), 0);
	it_ini_broker_add(n, "redeliver = 2s");
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_CPI));
	char log[1300], inbox[1300], away[1400];
	snprintf(log, sizeof(log), "%s/cpi.mantova.log", n->dir);
	it_spool(n, IT_CPI, "inbox", inbox, sizeof(inbox));
	snprintf(away, sizeof(away), "%s.away", inbox);
	assert_true(it_wait_occurrences(log, "connected to", 1, it_wait_ms()));
	assert_int_equal(rename(inbox, away), 0);
	FILE *fp = fopen(inbox, "w");
	assert_non_null(fp);
	fclose(fp);
	for (int k = 1; k <= 8; k++) {
		char id[32];
		snprintf(id, sizeof(id), "ord-%d", k);
		it_refer(n, IT_SOCIAL, IT_CPI, id);
	}
	assert_true(it_wait_occurrences(log, "not acked: the agent keeps it", 1, it_wait_ms()));
	/* pacing, not synchronisation: inbox/ stays unwritable across a few
	 * `redeliver`s, so that the broker sets entries aside */
	it_nap(8000);
	assert_int_equal(unlink(inbox), 0);
	assert_int_equal(rename(away, inbox), 0);
	for (int k = 9; k <= 12; k++) {
		char id[32];
		snprintf(id, sizeof(id), "ord-%d", k);
		it_refer(n, IT_SOCIAL, IT_CPI, id);
	}
	if (!it_until_inbox(inbox, 12)) {
		it_show(n, "cpi.mantova.log");
		fail_msg("cpi.mantova's inbox/ did not get the 12 referrals once it could be "
			 "written again");
	}
	const char *needle = " (referral from social.mantova) written to inbox/";
	/* the agent says a file is written after the file is there (it syncs
	 * the folder and records the entry first): wait for the 12th line */
	(void)it_wait_occurrences(log, needle, 12, it_wait_ms());
	char *text = tu_read_file(log, NULL);
	assert_non_null(text);
	char order[400] = "";
	size_t ol = 0, seen = 0;
	uint64_t last = 0;
	bool in_order = true;
	for (char *at = strstr(text, needle); at != NULL; at = strstr(at + 1, needle)) {
		char *p = at;
		while (p > text && p[-1] >= '0' && p[-1] <= '9')
			p--;
		uint64_t idx = strtoull(p, NULL, 10);
		if (ol < sizeof(order))
			ol += (size_t)snprintf(order + ol, sizeof(order) - ol, " %" PRIu64, idx);
		if (idx < last)
			in_order = false;
		last = idx;
		seen++;
	}
	free(text);
	if (!in_order || seen != 12) {
		it_show(n, "cpi.mantova.log");
		fail_msg(
		    "cpi.mantova's agent wrote %zu referrals to inbox/ in this order of log "
		    "index:%s; once inbox/ could be written again it took later entries before "
		    "the ones it held: not per-recipient log order",
		    seen, order);
	}
}

/* withdrawn_file: the name of the first inbox/ file ending in
 * -withdrawn.json (the agent's notice of a delivery withdrawn at its
 * expiry), into name; false when there is none. */
static bool withdrawn_file(const char *inbox, char *name, size_t len)
{
	DIR *dir = opendir(inbox);
	if (dir == NULL)
		return false;
	struct dirent *e;
	bool found = false;
	while (!found && (e = readdir(dir)) != NULL) {
		size_t l = strlen(e->d_name), sl = strlen("-withdrawn.json");
		if (l > sl && strcmp(e->d_name + l - sl, "-withdrawn.json") == 0) {
			snprintf(name, len, "%s", e->d_name);
			found = true;
		}
	}
	closedir(dir);
	return found;
}

/* status_of: `rete status ID` of party p's agent (caller frees). */
static char *status_of(it_net *n, int p, const char *id)
{
	char *out = NULL;
	int rc = tu_run(&out, "'%s/rete' status -c '%s/agents/%s/agent.ini' %s", n->bin, n->dir,
			it_party_ids[p], id);
	if (rc != 0)
		fail_msg("rete status %s (%s): exit %d: %s", id, it_party_ids[p], rc, out);
	return out;
}

/* withdrawn_notice: waits for cpi.mantova's agent (its log) to say it
 * wrote its notice of id's withdrawal, finds the *-withdrawn.json file in
 * inbox (its name into name) and returns it loaded, its messageId id. */
static json_t *withdrawn_notice(it_net *n, const char *log, const char *inbox, const char *id,
				char *name, size_t len, int ms)
{
	char path[1700];
	if (!it_wait_occurrences(log, "notice written to inbox/", 1, ms)) {
		it_show(n, "cpi.mantova.log");
		fail_msg("cpi.mantova's agent did not write its notice of %s's withdrawal", id);
	}
	if (!withdrawn_file(inbox, name, len))
		fail_msg("no *-withdrawn.json notice in cpi.mantova's inbox/");
	snprintf(path, sizeof(path), "%s/%s", inbox, name);
	json_t *doc = json_load_file(path, 0, NULL);
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "messageId")), id);
	return doc;
}

/* held_net: the files a held-delivery test reads */
struct held_net {
	it_net *n;
	char log[1300], blog[1300], slog[1300], inbox[1300], away[1400];
	int ms;
};

/* held_start: a network named name (expiry: the broker's, NULL for its
 * default), both agents connected, cpi.mantova's inbox/ replaced by a
 * file (every write fails, as on a full disk; the folder kept beside it
 * as inbox.away), then social.mantova's referral id, which cpi.mantova's
 * agent must hold. */
static void held_start(void **state, struct held_net *h, const char *name, const char *expiry,
		       const char *id)
{
	it_net *n = it_net_new(name, NULL);
	assert_non_null(n);
	*state = n;
	h->n = n;
	if (expiry != NULL)
		n->expiry = expiry;
	assert_int_equal(it_write_ini(n), 0);
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI));
	snprintf(h->log, sizeof(h->log), "%s/cpi.mantova.log", n->dir);
	snprintf(h->slog, sizeof(h->slog), "%s/social.mantova.log", n->dir);
	snprintf(h->blog, sizeof(h->blog), "%s/broker.log", n->dir);
	it_spool(n, IT_CPI, "inbox", h->inbox, sizeof(h->inbox));
	snprintf(h->away, sizeof(h->away), "%s.away", h->inbox);
	h->ms = it_wait_ms();
	assert_true(it_wait_occurrences(h->log, "connected to", 1, h->ms));
	assert_true(it_wait_occurrences(h->slog, "connected to", 1, h->ms));
	assert_int_equal(rename(h->inbox, h->away), 0);
	FILE *fp = fopen(h->inbox, "w");
	assert_non_null(fp);
	fclose(fp);
	it_outbox_referral_aged(n, IT_SOCIAL, IT_CPI, id, 5);
	if (!it_wait_occurrences(h->log, "not acked: the agent keeps it", 1, h->ms)) {
		it_show(n, "cpi.mantova.log");
		fail_msg("cpi.mantova's agent did not hold %s", id);
	}
}

/* inbox/ that cannot be written for longer than the broker's expiry while
 * the agent holds a delivery (review s17 rev-edges, finding 1): the broker
 * withdraws the entry and tells its sender it was not delivered; when the
 * agent then writes the file and acks, the broker must refuse that ACK
 * (EXPIRED, naming the entry) instead of dropping it at debug level, and
 * the agent must say so: a warning, a notice in inbox/ beside the file,
 * and `rete status` of the referral failed, as the sender's is. A
 * referral delivered in time afterwards is acked as always. */
static void test_inbox_withdrawn(void **state)
{
	struct held_net h;
	held_start(state, &h, "agentdisk-withdrawn", "3s", "late-1");
	it_net *n = h.n;
	const char *log = h.log, *slog = h.slog, *inbox = h.inbox, *away = h.away;
	const char *blog = h.blog;
	int ms = h.ms;
	/* finding 3: `rete status` says deliveries are held, since when and
	 * how many (the agent records it before it logs the hold) */
	char *held = status_of(n, IT_CPI, "");
	if (strstr(held, "INBOX NOT WRITABLE since ") == NULL ||
	    strstr(held, "1 delivery held (not acked)") == NULL)
		fail_msg("cpi.mantova's rete status does not say that inbox/ cannot be written and "
			 "a delivery is held: %s",
			 held);
	free(held);
	if (!it_wait_occurrences(blog, "withdrew late-1", 1, ms)) {
		it_show(n, "broker.log");
		fail_msg("the broker did not withdraw late-1 at its expiry (3s)");
	}
	/* the sender has the not-delivered notice before inbox/ is back */
	if (!it_wait_occurrences(slog, "(notice from broker.mantova) written to inbox/", 1, ms)) {
		it_show(n, "social.mantova.log");
		fail_msg("social.mantova did not get the not-delivered notice of late-1");
	}
	assert_int_equal(unlink(inbox), 0);
	assert_int_equal(rename(away, inbox), 0);
	const char *said = "withdrawn at its expiry before this agent could write it";
	if (!it_wait_occurrences(log, said, 1, ms)) {
		it_show(n, "cpi.mantova.log");
		it_show(n, "broker.log");
		fail_msg("cpi.mantova's agent wrote and acked late-1 after the broker withdrew it "
			 "at its expiry, and nobody said so: no warning in its log");
	}
	/* the broker said it, at warning level, naming the entry */
	assert_true(it_wait_occurrences(blog, "after it was withdrawn at its expiry", 1, ms));
	/* the notice beside the file, for the agency's system (said once it
	 * is there) */
	char name[300], path[1700];
	json_t *doc = withdrawn_notice(n, log, inbox, "late-1", name, sizeof(name), ms);
	assert_string_equal(json_string_value(json_object_get(doc, "kind")), "withdrawn");
	const char *text = json_string_value(json_object_get(doc, "text"));
	assert_non_null(text);
	assert_non_null(strstr(text, said));
	const char *file = json_string_value(json_object_get(doc, "file"));
	assert_non_null(file);
	snprintf(path, sizeof(path), "%s/%s", inbox, file);
	assert_true(tu_exists(path)); /* the referral itself stays */
	json_decref(doc);
	/* both agencies' status: failed */
	char *st = status_of(n, IT_CPI, "late-1");
	if (strstr(st, "status failed") == NULL || strstr(st, "withdrawn") == NULL)
		fail_msg("cpi.mantova's rete status of late-1 does not say it was withdrawn: %s",
			 st);
	free(st);
	st = status_of(n, IT_SOCIAL, "late-1");
	if (strstr(st, "status failed") == NULL)
		fail_msg("social.mantova's rete status of late-1 is not failed: %s", st);
	free(st);

	/* nothing else changes: one delivered in time is acked silently */
	it_outbox_referral_aged(n, IT_SOCIAL, IT_CPI, "ok-1", 5);
	if (!it_wait_occurrences(slog, "(delivery from broker.mantova) written to inbox/", 1, ms)) {
		it_show(n, "social.mantova.log");
		fail_msg("ok-1 was not delivered");
	}
	st = status_of(n, IT_CPI, "ok-1");
	assert_non_null(strstr(st, "status received"));
	assert_null(strstr(st, "withdrawn"));
	assert_null(strstr(st, "INBOX NOT WRITABLE")); /* over: said no more */
	free(st);
	assert_int_equal(tu_occurrences(log, said), 1);
	assert_int_equal(tu_occurrences(blog, "after it was withdrawn at its expiry"), 1);

	/* review s17 rev-late, finding 2: an update withdrawn (cpi.mantova
	 * accepts ok-1 while social.mantova's inbox/ cannot be written) fails
	 * no referral: neither the broker's signed sentence nor the agent's
	 * notice may say so, nor advise against "a new referral" */
	char sinbox[1300], saway[1400];
	it_spool(n, IT_SOCIAL, "inbox", sinbox, sizeof(sinbox));
	snprintf(saway, sizeof(saway), "%s.away", sinbox);
	assert_int_equal(rename(sinbox, saway), 0);
	FILE *fp = fopen(sinbox, "w");
	assert_non_null(fp);
	fclose(fp);
	it_outbox_put(n, IT_CPI, "upd-ok-1.json",
		      "{\"id\": \"upd-ok-1\", \"operator\": {\"staffId\": \"cpi-017\", "
		      "\"role\": \"employment-counsellor\"}, \"recipient\": \"social.mantova\", "
		      "\"caseId\": \"mn-2026-0173\", \"update\": {\"referralId\": \"ok-1\", "
		      "\"status\": \"accepted\"}}");
	if (!it_wait_occurrences(blog, "withdrew upd-ok-1", 1, ms)) {
		it_show(n, "broker.log");
		it_show(n, "cpi.mantova.log");
		fail_msg("the broker did not withdraw update upd-ok-1 at its expiry (3s)");
	}
	assert_int_equal(unlink(sinbox), 0);
	assert_int_equal(rename(saway, sinbox), 0);
	if (!it_wait_occurrences(slog, "notice written to inbox/", 1, ms)) {
		it_show(n, "social.mantova.log");
		fail_msg(
		    "social.mantova's agent did not write its notice of upd-ok-1's withdrawal");
	}
	if (!withdrawn_file(sinbox, name, sizeof(name)))
		fail_msg("no *-withdrawn.json notice in social.mantova's inbox/");
	snprintf(path, sizeof(path), "%s/%s", sinbox, name);
	doc = json_load_file(path, 0, NULL);
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "messageId")), "upd-ok-1");
	const char *btext = json_string_value(json_object_get(doc, "broker"));
	text = json_string_value(json_object_get(doc, "text"));
	assert_non_null(btext);
	assert_non_null(text);
	if (strstr(btext, "failed") != NULL)
		fail_msg(
		    "the broker's signed sentence on withdrawn update upd-ok-1 says a referral "
		    "failed, which it is not: %s",
		    btext);
	if (strstr(text, "new referral") != NULL || strstr(text, "failed") != NULL)
		fail_msg("social.mantova's notice of withdrawn update upd-ok-1 speaks of a failed "
			 "or a new referral: %s",
			 text);
	json_decref(doc);
	st = status_of(n, IT_SOCIAL, "ok-1");
	if (strstr(st, "status failed") != NULL)
		fail_msg("social.mantova's status of ok-1 is failed after an update of it was "
			 "withdrawn: %s",
			 st);
	free(st);
}

/* review s17 rev-late, finding 1: the agent stops after it wrote and
 * recorded a delivery and before the broker took its ACK, and stays down
 * past the expiry: the broker withdraws the entry and tells its sender.
 * At its next start the agent must learn it (it acks again what it
 * recorded and never saw taken; the broker refuses that ACK, EXPIRED) and
 * say so as when the ACK comes late: a warning, the notice in inbox/, the
 * referral failed. The stop comes at that point without a debugger: the
 * broker is frozen (SIGSTOP) while the agent holds the delivery, inbox/
 * is made writable, the agent writes the file (its ACK goes to a broker
 * that never reads it), then both are killed (SIGKILL). */
static void test_inbox_withdrawn_down(void **state)
{
	struct held_net h;
	held_start(state, &h, "agentdisk-wdown", "3s", "late-2");
	it_net *n = h.n;
	const char *log = h.log, *slog = h.slog, *inbox = h.inbox, *away = h.away;
	const char *blog = h.blog;
	int ms = h.ms;
	assert_int_equal(kill(n->broker_pid, SIGSTOP), 0);
	assert_int_equal(unlink(inbox), 0);
	assert_int_equal(rename(away, inbox), 0);
	if (!it_wait_occurrences(log, "(referral from social.mantova) written to inbox/", 1, ms)) {
		it_show(n, "cpi.mantova.log");
		fail_msg("cpi.mantova's agent did not write late-2 once inbox/ was back");
	}
	it_stop(&n->agent_pid[IT_CPI], SIGKILL, ms);
	it_stop(&n->broker_pid, SIGKILL, ms);
	assert_true(it_broker_start(n));
	if (!it_wait_occurrences(blog, "withdrew late-2", 1, ms)) {
		it_show(n, "broker.log");
		fail_msg("the broker did not withdraw late-2 at its expiry (3s)");
	}
	if (!it_wait_occurrences(slog, "(notice from broker.mantova) written to inbox/", 1, ms)) {
		it_show(n, "social.mantova.log");
		fail_msg("social.mantova did not get the not-delivered notice of late-2");
	}
	assert_true(it_agent_start(n, IT_CPI));
	const char *said = "withdrawn at its expiry before this agent could write it";
	if (!it_wait_occurrences(log, said, 1, ms)) {
		it_show(n, "cpi.mantova.log");
		it_show(n, "broker.log");
		fail_msg("cpi.mantova's agent wrote late-2, stopped before the broker took its ACK "
			 "and came back after the broker withdrew it: nobody said so");
	}
	char name[300];
	json_t *doc = withdrawn_notice(n, log, inbox, "late-2", name, sizeof(name), ms);
	json_decref(doc);
	char *st = status_of(n, IT_CPI, "late-2");
	if (strstr(st, "status failed") == NULL || strstr(st, "withdrawn") == NULL)
		fail_msg("cpi.mantova's rete status of late-2 does not say it was withdrawn: %s",
			 st);
	free(st);
	/* said once: a restart after that acks nothing again */
	it_stop(&n->agent_pid[IT_CPI], SIGTERM, ms);
	assert_true(it_agent_start(n, IT_CPI));
	assert_true(it_wait_occurrences(log, "connected to", 3, ms));
	it_outbox_referral_aged(n, IT_SOCIAL, IT_CPI, "ok-2", 5);
	if (!it_wait_occurrences(slog, "(delivery from broker.mantova) written to inbox/", 1, ms)) {
		it_show(n, "social.mantova.log");
		fail_msg("ok-2 was not delivered");
	}
	assert_int_equal(tu_occurrences(log, said), 1);
}

/* held_since: the "since" of `rete status --json`'s inboxHeld for p ("":
 * none; caller frees). */
static char *held_since(it_net *n, int p)
{
	char *out = NULL;
	int rc = tu_run(&out, "'%s/rete' status --json -c '%s/agents/%s/agent.ini'", n->bin, n->dir,
			it_party_ids[p]);
	json_t *doc = rc == 0 ? json_loads(out, 0, NULL) : NULL;
	if (doc == NULL)
		fail_msg("rete status --json (%s): exit %d: %s", it_party_ids[p], rc, out);
	const char *s =
	    json_string_value(json_object_get(json_object_get(doc, "inboxHeld"), "since"));
	char *r = strdup(s ? s : "");
	json_decref(doc);
	free(out);
	return r;
}

/* review s17 rev-late, finding 4: "INBOX NOT WRITABLE since T" keeps its
 * T when the agent is restarted while the delivery is still held. */
static void test_inbox_held_since(void **state)
{
	struct held_net h;
	held_start(state, &h, "agentdisk-since", NULL, "held-1");
	it_net *n = h.n;
	const char *log = h.log, *inbox = h.inbox, *away = h.away;
	int ms = h.ms;
	char *before = held_since(n, IT_CPI);
	assert_true(before[0] != '\0');
	it_stop(&n->agent_pid[IT_CPI], SIGKILL, ms);
	assert_true(it_agent_start(n, IT_CPI));
	if (!it_wait_occurrences(log, "not acked: the agent keeps it", 2, ms)) {
		it_show(n, "cpi.mantova.log");
		fail_msg("cpi.mantova's agent, restarted, did not hold held-1 again");
	}
	char *after = held_since(n, IT_CPI);
	if (strcmp(before, after) != 0)
		fail_msg("rete status says INBOX NOT WRITABLE since %s before the agent's restart "
			 "and since %s after it, for the same held delivery",
			 before, after);
	free(before);
	free(after);
	assert_int_equal(unlink(inbox), 0);
	assert_int_equal(rename(away, inbox), 0);
	assert_true(it_wait_occurrences(log, "inbox/ can be written again", 1, ms));
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_agent_full_disk, it_disk_teardown),
	    cmocka_unit_test_teardown(test_inbox_order, it_teardown),
	    cmocka_unit_test_teardown(test_inbox_withdrawn, it_teardown),
	    cmocka_unit_test_teardown(test_inbox_withdrawn_down, it_teardown),
	    cmocka_unit_test_teardown(test_inbox_held_since, it_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
