/* torture.h — the crash-torture driver: the real rete-broker and four real
 * rete-agent processes under continuous load, killed with SIGKILL at
 * random moments and restarted, then checked message by message.
 *
 * Header-only (static functions) so that the CI test
 * tests/integration/test_torture_short.c compiles it without any change to
 * the build; tests/torture/torture.sh runs that same program with more
 * kills (RETE_TORTURE_KILLS=30 or more) for the long run.
 *
 * What one run does:
 *   - a network of social.mantova, cpi.mantova, asst.mantova and
 *     family.mantova (one rete-agent each) around one rete-broker;
 *   - load: every few tens of milliseconds one JSON file is dropped into a
 *     random agent's outbox (temporary name, then rename, as the contract
 *     asks): a referral to an agency it may refer to, or an update
 *     ("accepted") on a referral that agent has received; each file
 *     carries its own message id (tq-NNNNNN) so it can be found anywhere;
 *   - kills: at random moments (a seeded PRNG; the seed is printed and
 *     can be given back with RETE_TORTURE_SEED) the broker or a random
 *     agent gets SIGKILL and is started again a random moment later;
 *   - restore cycles (RETE_TORTURE_RESTORES of them), between the kills
 *     and at random moments of the same PRNG: `rete store backup` of the
 *     live store (hot) and `rete audit verify` of the copy; more traffic,
 *     until the broker's state file names a checkpoint past the copy's
 *     size (entries receipted, many delivered, that the copy lacks); then
 *     SIGKILL of the broker and the restore exactly as docs/operations.md
 *     "Restoring a backup" says: the store folder moved aside
 *     (store.before-restore-N, kept), the copy put in its place with
 *     `cp -a`, the state file left where it is, the broker started with
 *     --restore (it logs the new epoch) and left running; traffic goes on
 *     and the agents submit again what they hold. In the first cycle and
 *     one in two after, an agent sends a burst of files, is killed as soon
 *     as they are receipted and stays down until the restore is done: its
 *     delivered messages wait for delivery receipts the restore loses,
 *     the messages to it stay receipted and undelivered;
 *   - then a quiet period: no new files, everything running, until every
 *     file is resolved or a deadline passes;
 *   - checks: every file is either delivered — its sender holds
 *     sent/NAME.receipt.json and the recipient's inbox holds its message
 *     id exactly once — or in its sender's failed/ with an error JSON
 *     giving a reason; no id in an inbox twice, or in the wrong inbox; no
 *     WITNESS ALARM in any agent's log (after a declared restore the
 *     agents log warnings, not alarms); every process stops cleanly at the
 *     end; `rete audit verify` passes on the broker's store (and passed on
 *     every backup).
 *
 * The inbox is read by file name, never by log index: after a restore a
 * different entry at an index already used is written as
 * <index>.<8 hex>-<kind>.json beside the first (docs/agent.md).
 *
 * Figures printed: kills (broker / agents), restores (declared as a new
 * epoch / nothing to declare), messages, delivered, failed, losses (must
 * be 0), duplicates (must be 0).
 */
#ifndef RETE_TORTURE_H
#define RETE_TORTURE_H

#include <ctype.h>

#include <jansson.h>

#include "../integration/itest.h"

#define TQ_AGENTS 4 /* IT_SOCIAL .. IT_FAMILY */
#define TQ_BURST  8 /* files an agent sends just before it goes down for a restore */

typedef struct torture_opts {
	int kills;	     /* how many SIGKILLs in all (restores not counted) */
	int restores;	     /* how many restore cycles */
	uint64_t seed;	     /* the PRNG's seed (0: from the clock) */
	int load_gap_ms;     /* pause between two files (pacing the load) */
	int kill_gap_min_ms; /* time between two kills: min..max */
	int kill_gap_max_ms;
	int restart_max_ms; /* a killed process is started 0..this later */
	/* restore cycles: a backup this long after the start or the last
	 * restore, the restore this long after the backup (and no sooner
	 * than a checkpoint past the copy's size is in the state file) */
	int backup_gap_min_ms, backup_gap_max_ms;
	int restore_gap_min_ms, restore_gap_max_ms;
	int drain_ms; /* deadline of the quiet period */
} torture_opts;

typedef struct torture_figures {
	uint64_t seed;
	int kills_broker, kills_agent;
	int restores, restores_declared, restores_undeclared, backups_verified;
	int held_down;	/* agents kept down across a restore */
	uint32_t epoch; /* the log's epoch at the end */
	int messages, referrals, updates;
	int delivered, failed, failed_expected, losses, duplicates, misplaced;
	int failed_resubmitted; /* receipted, then refused when submitted again */
	/* what the restores took from the log: files delivered (with their
	 * delivery receipt, so no longer held) whose entry the final log lacks,
	 * and updates refused because their referral is such a one */
	int delivered_not_in_log, updates_orphaned, logged_twice;
	int held_refused; /* agents' log lines: a held message submitted again was refused */
	/* the restore path at work (agents' logs, the inboxes): messages
	 * submitted again, deliveries recognised by content as already in the
	 * inbox, inbox files with the extended name (another entry at an index
	 * used before) */
	int held_resubmitted, redelivered_known, inbox_extended;
	int witness_alarms;
	bool audit_ok, clean_stop;
	int64_t run_ms, drain_ms;
} torture_figures;

typedef struct tq_rec {
	int from, to;
	bool update;
	char name[48];
	int inbox_seen; /* times its id was found in the recipient's inbox */
	int misplaced;	/* times found in another agency's inbox */
	bool receipt, failed, updated;
	bool bad_service; /* made to be refused: a service the recipient lacks */
	int ref;	  /* an update: the record number of its referral */
	int in_log;	  /* times its id (from its sender) is in the final log */
} tq_rec;

typedef struct tq_run {
	it_net *n;
	uint64_t rng;
	tq_rec *rec;
	int nrec, caprec;
	/* inbox files already read, per agent, by file name (an open-addressing
	 * set of malloc'd names) */
	char **seen[TQ_AGENTS];
	size_t seen_cap[TQ_AGENTS], seen_n[TQ_AGENTS];
	/* referrals received per agent, not yet answered with an update */
	int *recv[TQ_AGENTS];
	int inbox_extended; /* <index>.<8 hex>-<kind>.json files read */
	int nrecv[TQ_AGENTS], caprecv[TQ_AGENTS];
} tq_run;

static inline uint64_t tq_rand(tq_run *t)
{
	/* xorshift64*: small, seeded, the same sequence for the same seed */
	t->rng ^= t->rng >> 12;
	t->rng ^= t->rng << 25;
	t->rng ^= t->rng >> 27;
	return t->rng * UINT64_C(2685821657736338717);
}

static inline int tq_between(tq_run *t, int lo, int hi)
{
	return hi <= lo ? lo : lo + (int)(tq_rand(t) % (uint64_t)(hi - lo + 1));
}

/* tq_put writes text into p's outbox under name (temporary, then rename). */
static inline bool tq_put(tq_run *t, int p, const char *name, const char *text)
{
	char tmp[1400], dst[1400], dir[1300];
	it_spool(t->n, p, "outbox", dir, sizeof(dir));
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	if (tu_write_file(tmp, text, strlen(text)) != 0)
		return false;
	return rename(tmp, dst) == 0;
}

static inline tq_rec *tq_new_rec(tq_run *t)
{
	if (t->nrec == t->caprec) {
		t->caprec = t->caprec ? 2 * t->caprec : 256;
		t->rec = realloc(t->rec, (size_t)t->caprec * sizeof(*t->rec));
		if (!t->rec)
			abort(); /* the test's own memory */
	}
	tq_rec *r = &t->rec[t->nrec];
	memset(r, 0, sizeof(*r));
	return r;
}

/* tq_drop drops one file into agent from's outbox (a random one when
 * from is -1). */
static inline bool tq_drop(tq_run *t, torture_figures *fig, int from)
{
	if (from < 0)
		from = (int)(tq_rand(t) % TQ_AGENTS);
	tq_rec *r = tq_new_rec(t);
	int k = t->nrec;
	char id[32];
	snprintf(id, sizeof(id), "tq-%06d", k);
	snprintf(r->name, sizeof(r->name), "m%06d.json", k);
	r->from = from;
	json_t *j;
	/* an update on a referral we received, one time in three when there is one */
	if (t->nrecv[from] > 0 && tq_rand(t) % 3 == 0) {
		int pick = (int)(tq_rand(t) % (uint64_t)t->nrecv[from]);
		int ref = t->recv[from][pick];
		t->recv[from][pick] = t->recv[from][--t->nrecv[from]];
		char refid[32];
		snprintf(refid, sizeof(refid), "tq-%06d", ref);
		r->to = t->rec[ref].from;
		r->update = true;
		r->ref = ref;
		t->rec[ref].updated = true;
		j = json_pack("{s:s,s:{s:s,s:s},s:s,s:s,s:{s:s,s:s}}", "id", id, "operator",
			      "staffId", "op-017", "role", "case-manager", "recipient",
			      it_party_ids[r->to], "caseId", "mn-2026-0173", "update", "referralId",
			      refid, "status", "accepted");
		fig->updates++;
	} else {
		/* social services refers to the three others; they refer back */
		r->to = from == IT_SOCIAL ? 1 + (int)(tq_rand(t) % 3) : IT_SOCIAL;
		/* one in 25 asks for a service the recipient does not offer: it
		 * must end in failed/ with the reason, kills or not */
		r->bad_service = tq_rand(t) % 25 == 0;
		j = json_pack("{s:s,s:{s:s,s:s},s:s,s:s,s:{s:s,s:s,s:s,s:{s:s,s:s},s:s},"
			      "s:{s:{s:s,s:s},s:s}}",
			      "id", id, "operator", "staffId", "op-042", "role", "social-worker",
			      "recipient", it_party_ids[r->to], "caseId", "mn-2026-0173",
			      "referral", "service",
			      r->bad_service ? "housing-support" : it_service[r->to], "priority",
			      "routine", "reasonCode", "long-term-unemployment", "consent", "basis",
			      "consent", "givenAt", "2026-11-20T09:30:00Z", "ageBand", "adult",
			      "private", "person", "name", "Maria Rossi", "fiscalCode",
			      "RSSMRA85M41E897X", "reason", "torture load");
		fig->referrals++;
	}
	if (!j)
		return false;
	char *text = json_dumps(j, JSON_INDENT(1));
	json_decref(j);
	bool ok = text && tq_put(t, from, r->name, text);
	free(text);
	if (ok) {
		t->nrec++;
		fig->messages++;
	}
	return ok;
}

/* tq_id_num: the record number of a torture id "tq-NNNNNN", or -1. */
static inline int tq_id_num(const char *id)
{
	if (!id || strncmp(id, "tq-", 3) != 0)
		return -1;
	char *end;
	long v = strtol(id + 3, &end, 10);
	return *end == '\0' && v >= 0 ? (int)v : -1;
}

/* tq_name_hash: FNV-1a of a file name (the seen set's hash). */
static inline size_t tq_name_hash(const char *s)
{
	uint64_t h = UINT64_C(14695981039346656037);
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * UINT64_C(1099511628211);
	return (size_t)h;
}

/* tq_seen_slot: the slot of name in agent p's seen set (holding it, or
 * the empty one where it would go). The set is never full (it grows at
 * half). */
static inline char **tq_seen_slot(tq_run *t, int p, const char *name)
{
	size_t mask = t->seen_cap[p] - 1, i = tq_name_hash(name) & mask;
	while (t->seen[p][i] && strcmp(t->seen[p][i], name) != 0)
		i = (i + 1) & mask;
	return &t->seen[p][i];
}

/* tq_seen: has agent p's inbox file `name` been read already? */
static inline bool tq_seen(tq_run *t, int p, const char *name)
{
	return t->seen_cap[p] > 0 && *tq_seen_slot(t, p, name) != NULL;
}

/* tq_seen_add records agent p's inbox file `name` as read. */
static inline void tq_seen_add(tq_run *t, int p, const char *name)
{
	if (2 * (t->seen_n[p] + 1) > t->seen_cap[p]) {
		char **old = t->seen[p];
		size_t oldcap = t->seen_cap[p];
		t->seen_cap[p] = oldcap ? 2 * oldcap : 1024;
		t->seen[p] = calloc(t->seen_cap[p], sizeof(char *));
		if (!t->seen[p])
			abort(); /* the test's own memory */
		for (size_t i = 0; i < oldcap; i++)
			if (old[i])
				*tq_seen_slot(t, p, old[i]) = old[i];
		free(old);
	}
	char **slot = tq_seen_slot(t, p, name);
	if (*slot)
		return;
	*slot = strdup(name);
	if (!*slot)
		abort();
	t->seen_n[p]++;
}

static inline void tq_seen_free(tq_run *t, int p)
{
	for (size_t i = 0; i < t->seen_cap[p]; i++)
		free(t->seen[p][i]);
	free(t->seen[p]);
	t->seen[p] = NULL;
	t->seen_cap[p] = t->seen_n[p] = 0;
}

/* tq_inbox_name: is nm the name of an inbox file of a referral or an
 * update: <index, 12 digits>-<kind>.json, or after a restore, for another
 * entry at an index already used, <index>.<8 hex>-<kind>.json
 * (docs/agent.md)? */
static inline bool tq_inbox_name(const char *nm)
{
	size_t i = 0;
	for (; i < 12; i++)
		if (nm[i] < '0' || nm[i] > '9')
			return false;
	if (nm[i] == '.') {
		for (i++; i < 21; i++)
			if (!isxdigit((unsigned char)nm[i]))
				return false;
	}
	return strcmp(nm + i, "-referral.json") == 0 || strcmp(nm + i, "-update.json") == 0;
}

/* tq_scan_inbox reads the inbox files of agent p not read yet (by file
 * name: an index may name two files after a restore). */
static inline void tq_scan_inbox(tq_run *t, int p)
{
	char dir[1300], path[1700];
	it_spool(t->n, p, "inbox", dir, sizeof(dir));
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		const char *nm = e->d_name;
		if (!tq_inbox_name(nm) || tq_seen(t, p, nm))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, nm);
		json_t *j = json_load_file(path, 0, NULL);
		if (!j)
			continue; /* written atomically: only unreadable if broken; seen again */
		tq_seen_add(t, p, nm);
		if (nm[12] == '.')
			t->inbox_extended++;
		json_t *msg = json_object_get(j, "message");
		int k = tq_id_num(json_string_value(json_object_get(msg, "id")));
		if (k >= 0 && k < t->nrec) {
			tq_rec *r = &t->rec[k];
			if (r->to == p) {
				r->inbox_seen++;
				if (!r->update && r->inbox_seen == 1 && !r->updated) {
					if (t->nrecv[p] == t->caprecv[p]) {
						t->caprecv[p] =
						    t->caprecv[p] ? 2 * t->caprecv[p] : 64;
						t->recv[p] =
						    realloc(t->recv[p],
							    (size_t)t->caprecv[p] * sizeof(int));
						if (!t->recv[p])
							abort();
					}
					t->recv[p][t->nrecv[p]++] = k;
				}
			} else {
				r->misplaced++;
			}
		}
		json_decref(j);
	}
	closedir(d);
}

/* tq_resolve looks for the sender's answer to every unresolved file;
 * returns how many are still open. */
/* tq_failed_path: the answer in failed/ of record k, if any: NAME.error.json
 * for a refused file, held-ID.error.json for a held message refused when
 * submitted again after a restore (its file is in sent/ with its first
 * receipt; docs/agent.md). path gets the name looked at last. */
static inline bool tq_failed_path(tq_run *t, int k, char *path, size_t len)
{
	char dir[1300];
	it_spool(t->n, t->rec[k].from, "failed", dir, sizeof(dir));
	snprintf(path, len, "%s/%s.error.json", dir, t->rec[k].name);
	if (access(path, F_OK) == 0)
		return true;
	snprintf(path, len, "%s/held-tq-%06d.error.json", dir, k);
	return access(path, F_OK) == 0;
}

static inline int tq_resolve(tq_run *t)
{
	int open = 0;
	char path[1700], dir[1300];
	for (int k = 0; k < t->nrec; k++) {
		tq_rec *r = &t->rec[k];
		if (!r->receipt && !r->failed) {
			it_spool(t->n, r->from, "sent", dir, sizeof(dir));
			snprintf(path, sizeof(path), "%s/%s.receipt.json", dir, r->name);
			r->receipt = access(path, F_OK) == 0;
		}
		/* failed/ before a receipt, or after one: a held message
		 * refused when submitted again after a restore */
		if (!r->failed && (!r->receipt || r->inbox_seen == 0))
			r->failed = tq_failed_path(t, k, path, sizeof(path));
		if (r->failed)
			continue;
		if (!r->receipt || r->inbox_seen == 0)
			open++;
	}
	return open;
}

/* tq_receipted: have the files from..to-1 all a receipt or a refusal? */
static inline bool tq_receipted(tq_run *t, int from, int to)
{
	tq_resolve(t);
	for (int k = from; k < to; k++)
		if (!t->rec[k].receipt && !t->rec[k].failed)
			return false;
	return true;
}

/* tq_failed_reason: does the answer in failed/ (tq_failed_path) give a
 * reason? */
static inline bool tq_failed_reason(tq_run *t, const tq_rec *r, char *code, size_t len)
{
	char path[1700];
	tq_failed_path(t, (int)(r - t->rec), path, sizeof(path));
	json_t *j = json_load_file(path, 0, NULL);
	const char *err = json_string_value(json_object_get(j, "error"));
	const char *c = json_string_value(json_object_get(j, "code"));
	bool ok = err && *err && c && *c;
	snprintf(code, len, "%s", c ? c : "?");
	json_decref(j);
	return ok;
}

static inline int tq_count_in_log(const char *path, const char *needle)
{
	size_t len = 0;
	char *data = tu_read_file(path, &len);
	int count = 0;
	for (char *p = data; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		count++;
	free(data);
	return count;
}

/* tq_in_log counts the torture's messages in the final log (it_log_each). */
static inline void tq_in_log(void *ctx, uint64_t index, const Rete__Message *msg)
{
	(void)index;
	tq_run *t = ctx;
	int k = tq_id_num(msg->id);
	if (k >= 0 && k < t->nrec && strcmp(msg->sender, it_party_ids[t->rec[k].from]) == 0)
		t->rec[k].in_log++;
}

/* tq_sum_after sums the numbers that follow each needle in the file at
 * path ("submitting again 3 message(s)"). */
static inline int tq_sum_after(const char *path, const char *needle)
{
	size_t len = 0;
	char *data = tu_read_file(path, &len);
	int sum = 0;
	for (char *p = data; p && (p = strstr(p, needle)) != NULL; p += strlen(needle))
		sum += atoi(p + strlen(needle));
	free(data);
	return sum;
}

/* tq_show_lines prints the lines of the file at path holding needle (at
 * most max), prefixed with who: the evidence of a witness alarm. */
static inline void tq_show_lines(const char *path, const char *needle, const char *who, int max)
{
	size_t len = 0;
	char *data = tu_read_file(path, &len);
	int shown = 0;
	for (char *line = data; line && *line && shown < max;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = '\0';
		if (strstr(line, needle)) {
			fprintf(stderr, "torture: %s: %s\n", who, line);
			shown++;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	free(data);
}

/* tq_started: has the agent logging to path said "started" since the log
 * had `from` bytes (its latest start)? */
static inline bool tq_started(const char *path, long from)
{
	size_t len = 0;
	char *data = tu_read_file(path, &len);
	bool yes = data && (size_t)from <= len && strstr(data + from, "info: started:") != NULL;
	free(data);
	return yes;
}

/* --- the restore cycle ---------------------------------------------------- */

/* tq_state reads the broker's state file (the last checkpoint it signed,
 * DATA.state beside the store folder: broker.ini's default) into *size
 * and *epoch (1 when the note has no `epoch N` line). False when it is
 * not there (yet) or does not parse. */
static inline bool tq_state(const tq_run *t, uint64_t *size, uint32_t *epoch)
{
	char path[1300];
	snprintf(path, sizeof(path), "%s.state", t->n->data);
	size_t len = 0;
	char *note = tu_read_file(path, &len);
	if (!note)
		return false;
	/* origin line, size line, root line, then extension lines */
	char *l2 = strchr(note, '\n');
	bool ok = l2 && l2[1] >= '0' && l2[1] <= '9';
	if (ok)
		*size = strtoull(l2 + 1, NULL, 10);
	*epoch = 1;
	char *ep = ok ? strstr(l2, "\nepoch ") : NULL;
	if (ep)
		*epoch = (uint32_t)strtoul(ep + 7, NULL, 10);
	free(note);
	return ok;
}

/* tq_backup takes `rete store backup` of the live store into DIR/backup-K
 * (into dest) and checks the copy with `rete audit verify --json`, as
 * docs/operations.md asks of every copy; *size: the copy's entries. */
static inline bool tq_backup(tq_run *t, int k, char *dest, size_t len, uint64_t *size)
{
	it_net *n = t->n;
	snprintf(dest, len, "%s/backup-%d", n->dir, k);
	char *out = NULL;
	int rc = tu_run(&out, "'%s/rete' store backup '%s' '%s'", n->bin, n->data, dest);
	if (rc != 0) {
		fprintf(stderr, "torture: rete store backup (exit %d): %s\n", rc, out ? out : "");
		free(out);
		return false;
	}
	free(out);
	out = NULL;
	rc = tu_run(
	    &out, "'%s/rete' audit verify '%s' --broker-key '%s/keys/" IT_BROKER_ID ".pub' --json",
	    n->bin, dest, n->dir);
	json_t *j = out ? json_loads(out, 0, NULL) : NULL;
	json_t *ls = json_object_get(j, "logSize");
	bool ok = rc == 0 && json_is_integer(ls);
	if (ok)
		*size = (uint64_t)json_integer_value(ls);
	else
		fprintf(stderr, "torture: rete audit verify of the backup %s (exit %d): %s\n", dest,
			rc, out ? out : "");
	json_decref(j);
	free(out);
	return ok;
}

/* tq_restore kills the broker (SIGKILL) and restores the copy `backup`
 * exactly as docs/operations.md "Restoring a backup" says: the store
 * folder moved aside (kept as DATA.before-restore-K for a post-mortem),
 * the copy put in its place (cp -a), the state file left where it is, the
 * broker started with --restore. *declared: it logged a new epoch
 * (*epoch), not "nothing to declare". */
static inline bool tq_restore(tq_run *t, int k, const char *backup, bool *declared, uint32_t *epoch)
{
	it_net *n = t->n;
	int st = it_stop(&n->broker_pid, SIGKILL, it_wait_ms());
	if (st == -1 || !WIFSIGNALED(st)) {
		fprintf(stderr, "torture: the broker had already exited (status %d)\n", st);
		return false;
	}
	char aside[1400];
	snprintf(aside, sizeof(aside), "%s.before-restore-%d", n->data, k);
	if (rename(n->data, aside) != 0) {
		fprintf(stderr, "torture: mv %s %s: %s\n", n->data, aside, strerror(errno));
		return false;
	}
	char *out = NULL;
	int rc = tu_run(&out, "cp -a '%s' '%s'", backup, n->data);
	if (rc != 0) {
		fprintf(stderr, "torture: cp -a %s %s: %s\n", backup, n->data, out ? out : "");
		free(out);
		return false;
	}
	free(out);
	tu_rmrf(backup); /* its copy is the store now; the folder aside is kept */
	struct stat sb;
	long from = stat(n->log, &sb) == 0 ? (long)sb.st_size : 0;
	if (!it_broker_start_flag(n, "--restore"))
		return false;
	size_t len = 0;
	char *log = tu_read_file(n->log, &len);
	const char *said = log && (size_t)from <= len ? log + from : "";
	const char *goes = strstr(said, "--restore: the log goes on as epoch ");
	*declared = goes != NULL;
	*epoch = goes ? (uint32_t)strtoul(goes + strlen("--restore: the log goes on as epoch "),
					  NULL, 10)
		      : 0;
	if (!goes && !strstr(said, "nothing to declare"))
		fprintf(stderr, "torture: the broker started with --restore said neither a new "
				"epoch nor nothing to declare\n");
	free(log);
	return true;
}

/* torture_run runs one torture with o and fills *fig. Returns 0 when every
 * check held (losses = 0, duplicates = 0, audit verify passed, clean
 * stops), 1 when one did not, 2 when the network could not be set up. */
static inline int torture_run(const torture_opts *o, torture_figures *fig)
{
	memset(fig, 0, sizeof(*fig));
	tq_run t = {0};
	t.rng = o->seed ? o->seed : (uint64_t)time(NULL) * 2654435761u + (uint64_t)getpid();
	if (t.rng == 0)
		t.rng = 1;
	fig->seed = t.rng;
	fprintf(stderr,
		"torture: seed %" PRIu64 " (RETE_TORTURE_SEED=%" PRIu64 " repeats it), %d kills, "
		"%d restores\n",
		fig->seed, fig->seed, o->kills, o->restores);
	t.n = it_net_new("torture", NULL);
	if (!t.n)
		return 2;
	int64_t start = it_mono_ms();
	if (!it_broker_start(t.n)) {
		it_net_free(&t.n, true, NULL);
		return 2;
	}
	for (int p = 0; p < TQ_AGENTS; p++)
		if (!it_agent_start(t.n, p)) {
			it_net_free(&t.n, true, NULL);
			return 2;
		}

	/* load and kills */
	int64_t now = it_mono_ms();
	int64_t next_kill = now + tq_between(&t, o->kill_gap_min_ms, o->kill_gap_max_ms);
	int64_t next_scan = now;
	int kills = 0;
	bool setup_ok = true;
	/* the restore cycle: backup, then (after more traffic) the restore */
	int64_t next_backup = o->restores > 0
				  ? now + tq_between(&t, o->backup_gap_min_ms, o->backup_gap_max_ms)
				  : INT64_MAX;
	int64_t restore_at = 0, backup_at = 0;
	bool backup_held = false;
	int down = -1;	     /* an agent kept down across the restore, or -1 */
	int64_t down_at = 0; /* when it goes down (0: it is down, or none) */
	char backup[1400] = "";
	uint64_t backup_size = 0;
	/* after the last kill or restore the load goes on a while: the traffic
	 * after a restore is part of the cycle */
	int64_t load_until = INT64_MAX;
	while (setup_ok) {
		now = it_mono_ms();
		if (kills >= o->kills && fig->restores >= o->restores) {
			if (load_until == INT64_MAX)
				load_until = now + tq_between(&t, o->backup_gap_min_ms,
							      o->backup_gap_max_ms);
			if (now >= load_until)
				break;
		}
		if (fig->restores < o->restores && !backup_held && now >= next_backup) {
			if (!tq_backup(&t, fig->restores + 1, backup, sizeof(backup),
				       &backup_size)) {
				setup_ok = false;
				break;
			}
			fig->backups_verified++;
			backup_held = true;
			backup_at = now;
			restore_at = it_mono_ms() +
				     tq_between(&t, o->restore_gap_min_ms, o->restore_gap_max_ms);
			/* in the first cycle and one in two after, an agent goes
			 * down before the restore and comes back after it: the
			 * messages to it stay receipted but undelivered, its own
			 * delivered ones wait for their delivery receipts; the
			 * restore loses both kinds and their senders must submit
			 * them again */
			down = -1;
			if (fig->restores == 0 || tq_rand(&t) % 2 == 0) {
				down = (int)(tq_rand(&t) % TQ_AGENTS);
				down_at =
				    tq_between(&t, (int)(now - start), (int)(restore_at - start)) +
				    start;
			}
			fprintf(stderr,
				"torture: backup %d at %.1f s: %" PRIu64 " entries, verified\n",
				fig->restores + 1, (double)(now - start) / 1000.0, backup_size);
			continue;
		}
		if (backup_held && down >= 0 && down_at > 0 && now >= down_at) {
			/* a burst from it first, killed as soon as it has the
			 * receipts: delivered at once, their delivery receipts
			 * wait for it, and the restore loses them */
			int first = t.nrec;
			for (int i = 0; i < TQ_BURST && setup_ok; i++)
				setup_ok = tq_drop(&t, fig, down);
			int64_t by = it_mono_ms() + it_wait_ms();
			while (setup_ok && it_mono_ms() < by && !tq_receipted(&t, first, t.nrec))
				it_nap(5); /* polling sent/: no event covers a folder */
			int st = it_stop(&t.n->agent_pid[down], SIGKILL, it_wait_ms());
			if (st == -1 || !WIFSIGNALED(st)) {
				fprintf(stderr, "torture: %s had already exited (status %d)\n",
					it_party_ids[down], st);
				setup_ok = false;
				break;
			}
			down_at = 0; /* down until the restore */
			fig->held_down++;
			fprintf(stderr,
				"torture: %s killed at %.1f s (SIGKILL), down until the restore\n",
				it_party_ids[down], (double)(now - start) / 1000.0);
			continue;
		}
		uint64_t cp_size = 0;
		uint32_t cp_epoch = 0;
		/* the restore once the broker has signed (and kept in its state
		 * file) a checkpoint the copy lacks: only then is it one the
		 * broker can see and declare; a tail shorter than a checkpoint
		 * period is the agents' witnesses' to catch, not this test's */
		if (backup_held && now >= restore_at &&
		    ((tq_state(&t, &cp_size, &cp_epoch) && cp_size > backup_size) ||
		     now >= restore_at + it_wait_ms())) {
			bool declared = false;
			uint32_t epoch = 0;
			if (!tq_restore(&t, fig->restores + 1, backup, &declared, &epoch)) {
				setup_ok = false;
				break;
			}
			fig->restores++;
			if (declared)
				fig->restores_declared++;
			else
				fig->restores_undeclared++;
			backup_held = false;
			if (down >= 0 && down_at == 0 && !it_agent_start(t.n, down)) {
				setup_ok = false;
				break;
			}
			down = -1;
			down_at = 0;
			fprintf(stderr,
				"torture: restore %d at %.1f s: broker killed with a checkpoint of "
				"%" PRIu64 " entries signed, the backup of %.1f s (%" PRIu64
				" entries) restored, %s\n",
				fig->restores, (double)(now - start) / 1000.0, cp_size,
				(double)(backup_at - start) / 1000.0, backup_size,
				declared ? "a new epoch" : "NOTHING TO DECLARE");
			if (declared)
				fprintf(stderr, "torture: the log goes on as epoch %" PRIu32 "\n",
					epoch);
			next_backup = it_mono_ms() +
				      tq_between(&t, o->backup_gap_min_ms, o->backup_gap_max_ms);
			continue;
		}
		if (kills < o->kills && now >= next_kill) {
			/* the broker one time in three, else a random agent; the last
			 * kill makes sure both kinds were hit at least once */
			int target =
			    tq_rand(&t) % 3 == 0 ? TQ_AGENTS : (int)(tq_rand(&t) % TQ_AGENTS);
			if (kills == o->kills - 1 && fig->kills_broker == 0)
				target = TQ_AGENTS;
			else if (kills == o->kills - 1 && fig->kills_agent == 0)
				target = (int)(tq_rand(&t) % TQ_AGENTS);
			if (target == down) /* kept down for the restore: the next one */
				target = (target + 1) % TQ_AGENTS;
			pid_t *pid =
			    target == TQ_AGENTS ? &t.n->broker_pid : &t.n->agent_pid[target];
			int st = it_stop(pid, SIGKILL, it_wait_ms());
			if (st == -1 || !WIFSIGNALED(st)) {
				fprintf(stderr, "torture: %s had already exited (status %d)\n",
					target == TQ_AGENTS ? "the broker" : it_party_ids[target],
					st);
				fig->clean_stop = false;
				setup_ok = false;
				break;
			}
			kills++;
			if (target == TQ_AGENTS)
				fig->kills_broker++;
			else
				fig->kills_agent++;
			int delay = tq_between(&t, 0, o->restart_max_ms);
			fprintf(stderr, "torture: kill %d at %.1f s: %s (SIGKILL), back in %d ms\n",
				kills, (double)(now - start) / 1000.0,
				target == TQ_AGENTS ? IT_BROKER_ID : it_party_ids[target], delay);
			it_nap(delay); /* the process stays down for a random moment */
			setup_ok = target == TQ_AGENTS ? it_broker_start(t.n)
						       : it_agent_start(t.n, target);
			next_kill =
			    it_mono_ms() + tq_between(&t, o->kill_gap_min_ms, o->kill_gap_max_ms);
			continue;
		}
		if (!tq_drop(&t, fig, -1)) {
			fprintf(stderr, "torture: cannot write into an outbox\n");
			setup_ok = false;
			break;
		}
		if (now >= next_scan) {
			for (int p = 0; p < TQ_AGENTS; p++)
				tq_scan_inbox(&t, p);
			next_scan = now + 500;
		}
		it_nap(o->load_gap_ms); /* pacing the load */
	}
	fig->run_ms = it_mono_ms() - start;

	/* the quiet period: nothing new; wait for every file to resolve */
	int64_t drain_start = it_mono_ms(), deadline = drain_start + o->drain_ms;
	int open = 0;
	while (setup_ok) {
		for (int p = 0; p < TQ_AGENTS; p++)
			tq_scan_inbox(&t, p);
		open = tq_resolve(&t);
		if (open == 0 || it_mono_ms() >= deadline)
			break;
		it_nap(200); /* polling four spools: no single event covers them */
	}
	fig->drain_ms = it_mono_ms() - drain_start;
	/* a late duplicate would come right after: one more look */
	for (int p = 0; p < TQ_AGENTS; p++)
		tq_scan_inbox(&t, p);
	tq_resolve(&t);

	/* what the final log holds of each file (read through the broker, as
	 * an auditor would) */
	int64_t logged = it_log_each(t.n, tq_in_log, &t);
	if (logged < 0)
		fprintf(stderr, "torture: cannot read the final log through the broker\n");

	/* the figures */
	for (int k = 0; k < t.nrec; k++) {
		tq_rec *r = &t.rec[k];
		char code[64];
		if (r->inbox_seen > 1)
			fig->duplicates += r->inbox_seen - 1;
		fig->misplaced += r->misplaced;
		if (r->in_log > 1)
			fig->logged_twice++;
		if (r->receipt && !r->failed) {
			/* receipted, and then? a held message submitted again after a
			 * restore may be refused (an update that overtook its referral) */
			char path[1700], dir[1300];
			it_spool(t.n, r->from, "failed", dir, sizeof(dir));
			snprintf(path, sizeof(path), "%s/%s.error.json", dir, r->name);
			r->failed = access(path, F_OK) == 0;
		}
		if (r->bad_service && (r->receipt || r->inbox_seen)) {
			fig->losses++; /* not lost, but a refusal that did not happen */
			fprintf(stderr,
				"torture: %s asked for a service not offered and was "
				"accepted\n",
				r->name);
		} else if (r->failed && tq_failed_reason(&t, r, code, sizeof(code))) {
			fig->failed++;
			if (r->bad_service)
				fig->failed_expected++;
			if (r->receipt)
				fig->failed_resubmitted++;
			if (r->update && strcmp(code, "unknown-referral") == 0 && logged >= 0 &&
			    t.rec[r->ref].in_log == 0)
				fig->updates_orphaned++;
			if (!r->bad_service)
				fprintf(stderr,
					"torture: %s (tq-%06d, %s %s -> %s) failed: %s%s (in the "
					"inbox %d times)\n",
					r->name, k, r->update ? "update" : "referral",
					it_party_ids[r->from], it_party_ids[r->to], code,
					r->receipt ? ", after a receipt" : "", r->inbox_seen);
		} else if (r->receipt && r->inbox_seen >= 1) {
			fig->delivered++;
			if (logged >= 0 && r->in_log == 0)
				fig->delivered_not_in_log++;
		} else {
			fig->losses++;
			if (fig->losses <= 10)
				fprintf(
				    stderr,
				    "torture: LOST %s (tq-%06d, %s %s -> %s): receipt %s, in the "
				    "inbox %d times, failed/ %s\n",
				    r->name, k, r->update ? "update" : "referral",
				    it_party_ids[r->from], it_party_ids[r->to],
				    r->receipt ? "yes" : "no", r->inbox_seen,
				    r->failed ? "without a reason" : "no");
		}
	}
	char log[1400];
	for (int p = 0; p < TQ_AGENTS; p++) {
		snprintf(log, sizeof(log), "%s/%s.log", t.n->dir, it_party_ids[p]);
		fig->held_refused += tq_count_in_log(log, "submitted again was refused");
		fig->held_resubmitted += tq_sum_after(log, "submitting again ");
		fig->redelivered_known += tq_count_in_log(log, "submitted again; acking");
		int alarms = tq_count_in_log(log, "WITNESS ALARM");
		if (alarms > 0)
			tq_show_lines(log, "WITNESS ALARM", it_party_ids[p], 5);
		fig->witness_alarms += alarms;
	}
	uint64_t end_size = 0;
	fig->epoch = 1;
	tq_state(&t, &end_size, &fig->epoch);
	fig->inbox_extended = t.inbox_extended;
	/* stop everything cleanly, then the auditor's verdict on the store; an
	 * agent restarted a moment ago is let reach its main loop first (a
	 * SIGTERM before a program has set its handler just kills it) */
	bool bad = false;
	for (int p = 0; p < TQ_AGENTS; p++) {
		snprintf(log, sizeof(log), "%s/%s.log", t.n->dir, it_party_ids[p]);
		int64_t up_by = it_mono_ms() + it_wait_ms();
		while (!tq_started(log, t.n->agent_log_at[p]) && it_mono_ms() < up_by)
			it_nap(20); /* polling a log file */
	}
	for (int p = 0; p < TQ_AGENTS; p++) {
		int st = it_stop(&t.n->agent_pid[p], SIGTERM, it_wait_ms());
		if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "torture: %s did not stop cleanly (status %d)\n",
				it_party_ids[p], st);
			bad = true;
		}
	}
	int st = it_stop(&t.n->broker_pid, SIGTERM, it_wait_ms());
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "torture: the broker did not stop cleanly (status %d)\n", st);
		bad = true;
	}
	fig->clean_stop = !bad && setup_ok;
	char *out = NULL;
	fig->audit_ok = it_audit_verify(t.n, &out) == 0;
	if (!fig->audit_ok)
		fprintf(stderr, "torture: rete audit verify: %s\n", out ? out : "");
	free(out);

	fprintf(stderr,
		"torture figures: seed %" PRIu64 ", kills %d (broker %d, agents %d), restores %d "
		"(%d declared as a new epoch, %d with nothing to declare; %d backups verified; "
		"%d with an agent down across it; epoch %" PRIu32
		" at the end), messages %d (referrals %d, updates %d), delivered "
		"%d, failed %d (%d made to fail, %d receipted then refused when submitted again "
		"after a restore), losses %d, duplicates %d, misplaced %d, witness alarms %d, "
		"audit verify %s, clean stops %s; load %.1f s, drain %.1f s\n",
		fig->seed, fig->kills_broker + fig->kills_agent, fig->kills_broker,
		fig->kills_agent, fig->restores, fig->restores_declared, fig->restores_undeclared,
		fig->backups_verified, fig->held_down, fig->epoch, fig->messages, fig->referrals,
		fig->updates, fig->delivered, fig->failed, fig->failed_expected,
		fig->failed_resubmitted, fig->losses, fig->duplicates, fig->misplaced,
		fig->witness_alarms, fig->audit_ok ? "passed" : "FAILED",
		fig->clean_stop ? "yes" : "NO", (double)fig->run_ms / 1000.0,
		(double)fig->drain_ms / 1000.0);
	fprintf(stderr,
		"torture figures of the log: %" PRId64 " entries at the end; %d delivered files "
		"not in it (delivered before a restore took their entry), %d updates refused "
		"unknown-referral on such a referral, %d files logged twice, %d held messages "
		"refused when submitted again (agents' logs)\n",
		logged, fig->delivered_not_in_log, fig->updates_orphaned, fig->logged_twice,
		fig->held_refused);
	fprintf(stderr,
		"torture figures of the restores: %d held messages submitted again by the "
		"agents, %d deliveries recognised as already in the inbox (by content), %d "
		"inbox files named <index>.<8 hex>-<kind>.json (another entry at an index "
		"used before)\n",
		fig->held_resubmitted, fig->redelivered_known, fig->inbox_extended);
	bool ok = fig->losses == 0 && fig->duplicates == 0 && fig->misplaced == 0 &&
		  fig->witness_alarms == 0 && fig->audit_ok && fig->clean_stop &&
		  kills == o->kills && fig->restores == o->restores &&
		  fig->restores_undeclared == 0 && open == 0 && logged >= 0 &&
		  fig->logged_twice == 0;
	if (!ok) {
		it_show(t.n, "broker.log");
		fprintf(stderr, "torture: folder kept for a post-mortem: %s\n", t.n->dir);
	}
	it_net_free(&t.n, !ok, NULL);
	free(t.rec);
	for (int p = 0; p < TQ_AGENTS; p++) {
		tq_seen_free(&t, p);
		free(t.recv[p]);
	}
	return ok ? 0 : 1;
}

/* torture_opts_from_env fills o with defaults for `kills` kills and
 * `restores` restore cycles, then RETE_TORTURE_KILLS,
 * RETE_TORTURE_RESTORES (0 allowed: none) and RETE_TORTURE_SEED from the
 * environment. */
static inline void torture_opts_from_env(torture_opts *o, int kills, int restores)
{
	memset(o, 0, sizeof(*o));
	o->kills = kills;
	o->restores = restores;
	o->backup_gap_min_ms = 1000;
	o->backup_gap_max_ms = 4000;
	o->restore_gap_min_ms = 1000;
	o->restore_gap_max_ms = 3000;
	o->load_gap_ms = 25;
	o->kill_gap_min_ms = 500;
	o->kill_gap_max_ms = 2000;
	o->restart_max_ms = 500;
	o->drain_ms = 180000;
	const char *k = getenv("RETE_TORTURE_KILLS");
	if (k && atoi(k) > 0)
		o->kills = atoi(k);
	const char *rs = getenv("RETE_TORTURE_RESTORES");
	if (rs && *rs && atoi(rs) >= 0)
		o->restores = atoi(rs);
	const char *s = getenv("RETE_TORTURE_SEED");
	if (s && *s)
		o->seed = strtoull(s, NULL, 10);
}

#endif
