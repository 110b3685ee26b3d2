/* agent_main.c — `rete-agent -c agent.ini [-v]`, the agency agent.
 *
 * One thread, one loop: poll the broker socket, the outbox's inotify
 * descriptor and a timer; take in outbox files, submit, write receipts,
 * errors and inbox files, run hooks. SIGTERM or SIGINT stop it cleanly
 * between two steps (every step leaves the spool and the store consistent,
 * so a kill -9 is survivable too; it only costs a re-delivery).
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <jansson.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "agent.h"
#include "agent_keys.h"
#include "agent_check.h"
#include "agent_metrics.h"
#include "agent_net.h"
#include "agent_spool.h"
#include "agent_undelivered.h"
#include "checkpoint.h"
#include "duration.h"
#include "json.h"
#include "logfmt.h"
#include "logline.h"
#include "ratelimit.h"
#include "version.h"

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
	(void)sig;
	stop_requested = 1;
}

static void on_child(int sig)
{
	(void)sig; /* only wakes zmq_poll (EINTR) so hooks are reaped promptly */
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Identical warnings and errors (the same text: a broker that keeps
 * answering the same way) are written once a minute, then counted
 * (proto/ratelimit.h); info and debug lines are never held back. */
static rete_ratelimit agent_limiter = RETE_RATELIMIT_INITIALIZER(60000);

/* write_line writes one escaped text as a whole line (proto/logfmt.h: for
 * journald, or with the time, the program and the agent's id). */
static void write_line(const agent *a, rete_log_level level, const char *esc)
{
	char small[4096];
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	int64_t ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	bool journal = rete_log_to_journal();
	const char *who = a->cfg.id[0] ? a->cfg.id : "-";
	size_t need =
	    rete_log_format(small, sizeof(small), journal, ms, "rete-agent", who, level, esc);
	char *line = need < sizeof(small) ? small : malloc(need + 1);
	if (line == NULL) { /* out of memory: the cut line, its newline restored */
		line = small;
		need = sizeof(small) - 1;
		small[need - 1] = '\n';
	} else if (line != small)
		rete_log_format(line, need + 1, journal, ms, "rete-agent", who, level, esc);
	fwrite(line, 1, need, stderr);
	fflush(stderr);
	if (line != small)
		free(line);
}

static void say_held(const char *key, int level, uint64_t held, void *arg)
{
	char text[RETE_RATELIMIT_KEY_MAX + 160];
	if (key != NULL)
		snprintf(text, sizeof(text), "%s: %" PRIu64 " more in the last minute", key, held);
	else
		snprintf(text, sizeof(text),
			 "%" PRIu64 " more lines of other repeated kinds in the last minute", held);
	/* keys are escaped texts already; escaping again would double the \ */
	write_line(arg, (rete_log_level)level, text);
}

/* agent_log_sweep says the counts of the windows that ended. */
static void agent_log_sweep(const agent *a)
{
	rete_ratelimit_sweep(&agent_limiter, mono_ms(), say_held, (void *)a);
}

/* agent_log_flush says, as the agent stops, every count of lines held back
 * in windows not ended yet: a count not said then is lost. */
static void agent_log_flush(const agent *a)
{
	rete_ratelimit_flush(&agent_limiter, say_held, (void *)a);
}

static void vlog(const agent *a, const char *level_word, const char *fmt, va_list ap)
{
	char small[2048];
	rete_log_level level = rete_log_level_from_name(level_word);
	/* The whole text, then escaped: file names and peers' texts go into
	 * these lines, and a newline in them must not forge a line of its own
	 * (an outbox file named "x\n... WITNESS ALARM ..."). */
	char *text = small;
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(small, sizeof(small), fmt, ap);
	if (n >= (int)sizeof(small) && (text = malloc((size_t)n + 1)) != NULL)
		vsnprintf(text, (size_t)n + 1, fmt, ap2);
	else if (n >= (int)sizeof(small))
		text = small; /* out of memory: the cut text */
	va_end(ap2);
	char *esc = rete_log_escape_dup(text);
	const char *line = esc ? esc : "(out of memory for a log line)";
	uint64_t held = 0;
	if (level > RETE_LOG_WARNING ||
	    rete_ratelimit_admit(&agent_limiter, line, (int)level, mono_ms(), &held)) {
		if (held > 0)
			say_held(line, (int)level, held, (void *)a);
		write_line(a, level, line);
	}
	free(esc);
	if (text != small)
		free(text);
}

void agent_log(const agent *a, const char *level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(a, level, fmt, ap);
	va_end(ap);
}

void agent_debug(const agent *a, const char *fmt, ...)
{
	va_list ap;
	if (!a->verbose)
		return;
	va_start(ap, fmt);
	vlog(a, "debug", fmt, ap);
	va_end(ap);
}

/* agent_trust records what the operator of this agency was told by party
 * `id` through another channel: its key is key_b64 (required: a --trust
 * that took whatever key waits in "pending" would pin a key the broker's
 * operator put in the directory once; review s12 rev-keys, 3).
 * - key_b64 is the changed key waiting in "pending" (a file to the party
 *   was refused with key-changed, or what the party signed verified only
 *   with that key): pinned (agent_keys_pin; the old pin stays an earlier
 *   key), and the entries left with the broker are taken when it delivers
 *   them again: nothing needs sending again.
 * - key_b64 is the pinned key (the party says its key did not change): the
 *   pin stays, and the other key is refused from then on (agent_keys_mark).
 * - no key of the party waits, and key_b64 is another: confirmed in
 *   advance (a rotation announced by phone): pinned when the directory
 *   shows it (agent_keys.h), so nothing signed with it waits; a party never
 *   pinned gets it pinned now.
 * - a key waits and key_b64 is neither: nothing changes (exit 1).
 * Safe while the agent runs (LMDB serializes the two writers). Returns the
 * exit code. */
static int agent_trust(agent *a, const char *id, const char *key_b64)
{
	rete_msg m = {{0}};
	rete_buf pend = {0}, old = {0};
	int rc = 2;
	char *o = NULL, *nk = NULL;
	uint8_t *key = NULL;
	size_t keylen = 0;

	if (!rete_id_valid(id)) {
		fprintf(stderr, "rete-agent: --trust '%s': not a party id\n", id);
		return 2;
	}
	if (rete_b64_decode(key_b64, &key, &keylen) != RETE_OK || keylen != RETE_PK_LEN) {
		fprintf(stderr,
			"rete-agent: --key '%.60s' is not a public key: the key is the base64 line "
			"of the party's .pub file (44 characters, 32 bytes), as the party reads it "
			"to you by phone\n",
			key_b64);
		free(key);
		return 2;
	}
	if (agent_db_open(a->cfg.data, false, a->cfg.map_size, &a->db, &m) != RETE_OK) {
		fprintf(stderr, "rete-agent: %s\n", m.text);
		free(key);
		return 2;
	}
	rete_err err = agent_db_get(a->db, AGENT_DB_PENDING, id, strlen(id), &pend, &m);
	if (err != RETE_OK && err != RETE_ENOENT) {
		fprintf(stderr, "rete-agent: %s\n", m.text);
		goto out;
	}
	bool waiting = err == RETE_OK && pend.len == RETE_PK_LEN;
	err = agent_db_get(a->db, AGENT_DB_PINS, id, strlen(id), &old, &m);
	if (err != RETE_OK && err != RETE_ENOENT) {
		fprintf(stderr, "rete-agent: %s\n", m.text);
		goto out;
	}
	o = old.len == RETE_PK_LEN ? rete_b64_encode(old.data, old.len) : NULL;
	nk = waiting ? rete_b64_encode(pend.data, pend.len) : NULL;
	bool is_pin = o != NULL && strcmp(o, key_b64) == 0;
	bool is_pending = nk != NULL && strcmp(nk, key_b64) == 0;
	if (waiting && !is_pin && !is_pending) {
		fprintf(stderr,
			"rete-agent: the directory shows key %s for %s, not the key %s you gave "
			"(nor the key pinned for it, %s); nothing was confirmed: check with %s and "
			"with the network's operator\n",
			nk ? nk : "?", id, key_b64, o ? o : "none", id);
		rc = 1;
		goto out;
	}
	bool answered = false; /* is_pin: a key change was answered */
	if ((err = agent_db_begin(a->db, &m)) == RETE_OK) {
		if (is_pin) {
			/* the key the last alarm named, even when the directory no
			 * longer shows it (its pending record then was dropped) */
			json_t *all = NULL;
			rete_buf v = {0};
			if (agent_db_get(a->db, AGENT_DB_META, AGENT_META_KEY_CHANGES,
					 strlen(AGENT_META_KEY_CHANGES), &v, NULL) == RETE_OK)
				all = json_loadb((const char *)v.data, v.len, 0, NULL);
			rete_buf_free(&v);
			const char *seen =
			    json_string_value(json_object_get(json_object_get(all, id), "key"));
			if (nk != NULL)
				err = agent_keys_mark(a, id, nk, false, &m);
			if (err == RETE_OK && seen != NULL && strcmp(seen, key_b64) != 0)
				err = agent_keys_mark(a, id, seen, false, &m);
			answered = waiting || seen != NULL;
			json_decref(all);
			if (err == RETE_OK && waiting)
				err = agent_db_del(a->db, AGENT_DB_PENDING, id, strlen(id), &m);
			if (err == RETE_OK)
				err = agent_keys_forget(a, id, &m);
		} else if (is_pending || o == NULL) {
			err = agent_keys_pin(a, id, key, &m);
		} else {
			err = agent_keys_mark(a, id, key_b64, true, &m);
		}
	}
	err = agent_db_end(a->db, err, &m);
	if (err != RETE_OK) {
		fprintf(stderr, "rete-agent: %s\n", m.text);
	} else if (is_pin && !answered) {
		printf("%s: %s is the pinned key already: nothing to confirm\n", id, key_b64);
		rc = 0;
	} else if (is_pin) {
		printf("%s: the pinned key %s stays%s%s%s. %s says its key did not change: if the "
		       "broker's directory gave its id another key, that key is not theirs: tell "
		       "the network's auditor and the broker's operator\n",
		       id, o, nk ? "; the directory's key " : "", nk ? nk : "",
		       nk ? " is refused: what is signed with it is refused" : "", id);
		rc = 0;
	} else if (is_pending) {
		printf("%s: key %s confirmed (was %s); what it signed and was left with the broker "
		       "is taken, in log order, when the broker delivers it again (within its "
		       "redeliver time, 30 s by default, or at the agent's next connection): "
		       "nothing needs sending again\n",
		       id, key_b64, o ? o : "none");
		rc = 0;
	} else if (o == NULL) {
		printf("%s: key %s pinned (no key was pinned for it yet)\n", id, key_b64);
		rc = 0;
	} else {
		printf("%s: key %s confirmed in advance: it is pinned when the broker's directory "
		       "shows it; until then the pinned key %s stays, and what %s signed with it "
		       "still verifies afterwards\n",
		       id, key_b64, o, id);
		rc = 0;
	}
out:
	free(o);
	free(nk);
	free(key);
	rete_buf_free(&pend);
	rete_buf_free(&old);
	agent_db_close(&a->db);
	return rc;
}

/* accept_who: who runs --accept-epoch, for the record: the user (and the
 * one sudo ran it for) and this host. */
static void accept_who(char *out, size_t cap)
{
	const struct passwd *pw = getpwuid(getuid());
	const char *sudo = getenv("SUDO_USER");
	char host[256] = "?";
	if (gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "?");
	host[sizeof(host) - 1] = '\0';
	snprintf(out, cap, "%s (uid %u)%s%s on %s", pw != NULL ? pw->pw_name : "?",
		 (unsigned)getuid(), sudo != NULL ? " via sudo by " : "", sudo != NULL ? sudo : "",
		 host);
}

/* accept_alarmed: does the store hold a witness alarm on the declared
 * restore of epoch e (meta AGENT_META_LINK_ALARM, or the alarm's sentence
 * of an agent that did not record its epoch)? *text: the alarm (malloc'd,
 * or NULL); *is_restore: it is that restore's alarm, not one of another
 * kind raised after it, which --accept-epoch keeps (rev-accept s17,
 * finding 3). */
static bool accept_alarmed(agent_db *db, uint32_t e, char **text, bool *is_restore)
{
	uint32_t le = 0;
	rete_buf v = {0};
	*text = NULL;
	if (agent_db_get(db, AGENT_DB_META, "alarm", 5, &v, NULL) == RETE_OK && v.len > 0)
		*text = strndup((const char *)v.data, v.len);
	rete_buf_free(&v);
	char said[96];
	snprintf(said, sizeof(said), "the broker declared a restore (its log is now epoch %u)", e);
	*is_restore = *text != NULL && strstr(*text, said) != NULL;
	return *is_restore || (agent_db_get_u32(db, AGENT_DB_META, AGENT_META_LINK_ALARM,
						strlen(AGENT_META_LINK_ALARM), &le) &&
			       le == e);
}

/* agent_accept_epoch: the operator accepts epoch e, whose declared restore
 * the witness raised the alarm on (an honest restore without the broker's
 * state file looks like a fork: docs/agent.md, "A broker restored without
 * its state file"), once the auditors compared the old store or its
 * backups with the new log. Refused (exit 1, nothing changed) when e is
 * not the epoch the agent last recorded, the baseline is of epoch e or
 * later already, or no such alarm is recorded. Else, in one transaction:
 * the record AGENT_META_EPOCH_ACCEPTED (who, when, the baseline dropped,
 * the alarm, the records before it in "earlier"), the epoch of the alarm
 * deleted, and the alarm when it is the restore's (another alarm is kept
 * and said). The agent (running or
 * not: LMDB serializes the writers) then takes the next checkpoint of
 * epoch e it verifies with the broker's key as its baseline
 * (agent_witness.c, wit_link_accepted). Returns the exit code. */
static int agent_accept_epoch(agent *a, uint32_t e)
{
	rete_msg m = {{0}};
	rete_buf cp = {0};
	uint32_t cur = 0, ge = 1;
	char *alarm = NULL, *root = NULL, *js = NULL;
	rete_checkpoint good;
	int rc = 2;

	memset(&good, 0, sizeof(good));
	if (agent_db_open(a->cfg.data, false, a->cfg.map_size, &a->db, &m) != RETE_OK) {
		fprintf(stderr, "rete-agent: %s\n", m.text);
		return 2;
	}
	(void)agent_db_get_u32(a->db, AGENT_DB_META, "epoch", 5, &cur);
	if (cur == 0)
		cur = 1;
	if (e != cur) {
		fprintf(stderr,
			"rete-agent: --accept-epoch %u: the broker's log is epoch %u as this agent "
			"knows it (its latest connection), not %u: nothing was changed; only the "
			"broker's current epoch can be accepted\n",
			e, cur, e);
		rc = 1;
		goto out;
	}
	bool have = agent_db_get(a->db, AGENT_DB_META, "checkpoint", 10, &cp, NULL) == RETE_OK &&
		    rete_checkpoint_parse((const char *)cp.data, cp.len, &good, NULL) == RETE_OK;
	if (have)
		(void)rete_checkpoint_epoch((const char *)cp.data, cp.len, &ge, NULL);
	bool restore_alarm = false;
	if (!accept_alarmed(a->db, e, &alarm, &restore_alarm)) {
		fprintf(stderr,
			"rete-agent: --accept-epoch %u: no witness alarm on a declared restore of "
			"epoch %u is recorded in this agent's store (%s): nothing was changed. The "
			"command accepts only a log epoch whose restore the witness raised the "
			"alarm on (rete status shows it; docs/agent.md, \"After a declared "
			"restore\")\n",
			e, e, alarm != NULL ? "it holds another alarm" : "it holds no alarm");
		rc = 1;
		goto out;
	}
	if (have && ge >= e) {
		/* taken already (or the link passed): an alarm written again by a
		 * link check this command raced with is no cause to drop the
		 * accepted epoch's own baseline (rev-accept s17, finding 2) */
		fprintf(
		    stderr,
		    "rete-agent: --accept-epoch %u: the witness's baseline is already of epoch %u "
		    "(the checkpoint of size %" PRIu64 "): epoch %u was accepted and taken, or "
		    "its restore checked out; nothing was changed (`rete status` shows the "
		    "record)\n",
		    e, ge, good.size, e);
		rc = 1;
		goto out;
	}
	root = have ? rete_b64_encode(good.root, RETE_MERKLE_HASH) : NULL;
	char who[400], when[32];
	accept_who(who, sizeof(who));
	rete_time_format(rete_now_ms(), when);
	json_t *rec = json_object(), *dropped = json_object();
	json_object_set_new(rec, "epoch", json_integer(e));
	json_object_set_new(rec, "by", json_string(who));
	json_object_set_new(rec, "at", json_string(when));
	if (have) {
		json_object_set_new(dropped, "epoch", json_integer(ge));
		json_object_set_new(dropped, "size", json_integer((json_int_t)good.size));
		json_object_set_new(dropped, "root", json_string(root ? root : "?"));
	}
	json_object_set_new(rec, "dropped", dropped);
	json_object_set_new(rec, "alarm", json_string(restore_alarm ? alarm : ""));
	/* the records of earlier acceptances are kept, oldest first */
	rete_buf prev = {0};
	if (agent_db_get(a->db, AGENT_DB_META, AGENT_META_EPOCH_ACCEPTED,
			 strlen(AGENT_META_EPOCH_ACCEPTED), &prev, NULL) == RETE_OK) {
		json_t *old = json_loadb((const char *)prev.data, prev.len, 0, NULL);
		json_t *earlier = json_object_get(old, "earlier");
		earlier = json_is_array(earlier) ? json_incref(earlier) : json_array();
		if (json_is_object(old)) {
			json_object_del(old, "earlier");
			json_array_append(earlier, old);
		}
		json_object_set_new(rec, "earlier", earlier);
		json_decref(old);
	}
	rete_buf_free(&prev);
	js = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(rec);
	rete_err err =
	    js == NULL ? rete_msg_set(&m, RETE_ENOMEM, "out of memory") : agent_db_begin(a->db, &m);
	if (err == RETE_OK)
		err = agent_db_put(a->db, AGENT_DB_META, AGENT_META_EPOCH_ACCEPTED,
				   strlen(AGENT_META_EPOCH_ACCEPTED), js, strlen(js), &m);
	if (err == RETE_OK && restore_alarm)
		err = agent_db_del(a->db, AGENT_DB_META, "alarm", 5, &m);
	if (err == RETE_OK)
		err = agent_db_del(a->db, AGENT_DB_META, AGENT_META_LINK_ALARM,
				   strlen(AGENT_META_LINK_ALARM), &m);
	if (js != NULL)
		err = agent_db_end(a->db, err, &m);
	if (err != RETE_OK) {
		fprintf(stderr, "rete-agent: --accept-epoch %u: %s: nothing was changed\n", e,
			m.text);
		goto out;
	}
	char base[200] = "none (the store held no verified checkpoint)";
	if (have)
		snprintf(base, sizeof(base), "epoch %u, size %" PRIu64 ", root %s", ge, good.size,
			 root ? root : "?");
	printf("epoch %u accepted by %s at %s.\n"
	       "%s%s\n"
	       "The witness's baseline is dropped: the checkpoint of %s.\n"
	       "The next checkpoint of epoch %u the agent verifies with the broker's key becomes "
	       "its baseline and is cosigned, without the link to the one dropped: at its next "
	       "witness round if it runs, else when it starts. `rete status` shows this record.\n",
	       e, who, when,
	       restore_alarm ? "The witness alarm is cleared; it said: "
	       : alarm != NULL
		   ? "Another witness alarm stands and is kept (it is not the restore's; `rete "
		     "status` shows it): "
		   : "The witness alarm is cleared (no sentence of it was kept)",
	       restore_alarm || alarm != NULL ? alarm : "", base, e);
	rc = 0;
out:
	free(js);
	free(root);
	free(alarm);
	rete_buf_free(&cp);
	agent_db_close(&a->db);
	return rc;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: rete-agent -c agent.ini [-v]\n"
		   "       rete-agent -c agent.ini --check-config\n"
		   "       rete-agent -c agent.ini --trust PARTY_ID --key BASE64\n"
		   "       rete-agent -c agent.ini --accept-epoch EPOCH\n"
		   "       rete-agent --version\n\n"
		   "The agency agent: sends the JSON files written to SPOOL/outbox/ through the\n"
		   "broker (receipts in SPOOL/sent/, refusals in SPOOL/failed/) and writes what\n"
		   "the broker delivers to SPOOL/inbox/. docs/agent.md describes the\n"
		   "configuration and the files.\n\n"
		   "--trust PARTY_ID --key BASE64 records the key the party gave you through\n"
		   "another channel (phone, letter; never the directory): its changed key,\n"
		   "waiting since a file was refused with 'key-changed' or what it signed\n"
		   "verified only with that key, is pinned, and what waits with the broker is\n"
		   "taken (nothing to send again); the pinned key is kept (the key did not\n"
		   "change: the other is refused); with no changed key of the party waiting,\n"
		   "the key is confirmed in advance and pinned when the directory shows it.\n"
		   "--key is required. Exit 0 confirmed, kept or recorded; 1 when a changed\n"
		   "key waits and --key is neither it nor the pinned one (nothing changes);\n"
		   "2 on other errors.\n\n"
		   "--accept-epoch EPOCH accepts the broker's log epoch EPOCH after a WITNESS\n"
		   "ALARM on its declared restore (a broker restored without its state file\n"
		   "looks like a fork), once the auditors compared the old store or its\n"
		   "backups: it prints the baseline it drops (epoch, size, root), clears the\n"
		   "alarm and records who accepted it and when (rete status shows it); the\n"
		   "agent then takes the next checkpoint of EPOCH it verifies as its baseline,\n"
		   "unchecked against the old one, and cosigns it. The agent may be running.\n"
		   "Exit 0 accepted; 1 when no alarm on a restore of EPOCH is recorded or\n"
		   "EPOCH is not the broker's current epoch (nothing changes); 2 on other\n"
		   "errors.\n\n"
		   "--check-config opens what agent.ini names without starting: the key (a\n"
		   "secret, mode 0600), the broker's key (public), the spool and data folders\n"
		   "(exist or can be created, writable; outbox/ sent/ failed/ on one file\n"
		   "system, or a note that the agent copies), the agent store in the data\n"
		   "folder, [privacy], the broker endpoint and the metrics address (one of\n"
		   "this host's), the timing keys' ranges, [privacy]'s access_log. Every\n"
		   "problem is listed, with FILE:LINE: where a key is the cause; exit 0\n"
		   "fine, 2 problems. No key material is printed.\n\n"
		   "--version prints the version, the protocol version, the broker store's schema\n"
		   "and the agent store's schema.\n");
}

/* agent_lock takes the data folder for this process alone (created when
 * missing): two agents on one agent.ini would both submit every file, one
 * getting the receipt and the other an id-reused refusal. The lock is a
 * flock on the folder DATA and on DATA/agent.lock holding our pid; it ends
 * with the process, even after kill -9. Read-only users (rete status),
 * --trust and --accept-epoch do not take it. The descriptors stay open until exit. */
static rete_err agent_lock(agent *a, rete_folder_lock *lk, rete_msg *m)
{
	if (mkdir(a->cfg.data, 0700) != 0 && errno != EEXIST)
		return rete_msg_set(m, RETE_EIO, "%s: cannot create the data folder: %s",
				    a->cfg.data, strerror(errno));
	return agent_spool_lock(a->cfg.data, "agent.lock", "data folder", NULL, lk, m);
}

/* spool_has_files: does folder dir hold a file (not a dot file)? */
static bool spool_has_files(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;
	while (d != NULL && !found && (e = readdir(d)) != NULL)
		found = e->d_name[0] != '.';
	if (d != NULL)
		closedir(d);
	return found;
}

/* agent_fresh_store_warn, when the agent created its store: a spool that
 * already holds sent/ or inbox/ files was used by an agent with another
 * store (a migration or a restore without DATA, a lost store). The keys
 * pinned there are forgotten: every partner's key is taken from the
 * directory again on first use, which is what the pin rule is meant to
 * stop (review s12 rev-keys, 4). */
static void agent_fresh_store_warn(agent *a)
{
	if (!spool_has_files(a->sent_dir) && !spool_has_files(a->inbox_dir))
		return;
	agent_log(a, "warning",
		  "a new agent store was created in %s, but the spool %s already holds sent/ or "
		  "inbox/ files: this agency's agent ran before with another store (moved without "
		  "its data folder, restored without it, or lost). The partners' keys pinned there "
		  "are forgotten: every partner's key will be taken from the broker's directory "
		  "on first use, so a key the broker's operator put there is not noticed. If the "
		  "old data folder exists, stop this agent and put it back (docs/operations.md, "
		  "moving an agent); otherwise compare the partners' keys by phone "
		  "(rete-agent --trust ID --key KEY pins one)",
		  a->cfg.data, a->cfg.spool);
}

/* agent_setup takes the data folder's lock (lock[0]) and the spool's
 * (lock[1], SPOOL/spool.lock: another name than DATA/agent.lock, and the
 * folder's flock not taken twice, so that one folder named as both still
 * works): two agent.ini files naming one spool with two data folders would
 * take in every outbox file twice, under two ids, and each would sweep the
 * other's temporary files while it writes them. */
static int agent_setup(agent *a, rete_folder_lock lock[2], rete_msg *m)
{
	rete_err err;
	if ((err = agent_lock(a, &lock[0], m)) != RETE_OK)
		return err;
	if ((err = rete_keyfile_load_secret(a->cfg.key_path, &a->sk, m)) != RETE_OK)
		return err;
	if ((err = rete_keyfile_load_public(a->cfg.broker_key_path, &a->broker_pk, m)) != RETE_OK)
		return err;
	if ((err = agent_spool_prepare(a->cfg.spool, m)) != RETE_OK)
		return err;
	if ((err = agent_spool_lock(a->cfg.spool, "spool.lock", "spool folder", &lock[0], &lock[1],
				    m)) != RETE_OK)
		return err;
	agent_spool_path(&a->cfg, "outbox", NULL, a->outbox_dir, sizeof(a->outbox_dir));
	agent_spool_path(&a->cfg, "sent", NULL, a->sent_dir, sizeof(a->sent_dir));
	agent_spool_path(&a->cfg, "failed", NULL, a->failed_dir, sizeof(a->failed_dir));
	agent_spool_path(&a->cfg, "inbox", NULL, a->inbox_dir, sizeof(a->inbox_dir));
	/* What a crash left half-written: answers, and inbox files (which hold
	 * opened private parts). We hold both locks: nobody else writes them.
	 * outbox/ is not swept: `rete send` writes there, holding no lock. */
	size_t swept = agent_spool_sweep(a->sent_dir, false) +
		       agent_spool_sweep(a->failed_dir, false) +
		       agent_spool_sweep(a->inbox_dir, true);
	if (swept > 0)
		agent_log(a, "info",
			  "removed %zu temporary file(s) a crash left in sent/, failed/ or inbox/",
			  swept);
	char mdb[4200];
	snprintf(mdb, sizeof(mdb), "%s/data.mdb", a->cfg.data);
	bool fresh = access(mdb, F_OK) != 0;
	if ((err = agent_db_open(a->cfg.data, false, a->cfg.map_size, &a->db, m)) != RETE_OK)
		return err;
	if (fresh)
		agent_fresh_store_warn(a);
	if ((err = agent_privacy_start(a, m)) != RETE_OK)
		return err;
	if ((err = agent_inbox_start(a, m)) != RETE_OK)
		return err;
	if ((err = agent_outbox_settle(a, m)) != RETE_OK)
		return err;
	agent_keys_start(a);
	return agent_hooks_start(a, m);
}

static void agent_run(agent *a)
{
	int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ino >= 0 && inotify_add_watch(ino, a->outbox_dir, IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
		agent_log(a, "warning", "%s: no inotify (%s); polling every %lld ms", a->outbox_dir,
			  strerror(errno), (long long)a->cfg.poll_ms);
		close(ino);
		ino = -1;
	}
	int64_t next_scan = 0;
	a->out_rescan = true;

	while (!stop_requested) {
		int64_t now = rete_now_ms();
		agent_net_poll(a, now);
		if (stop_requested)
			break;
		if (a->out_rescan || now >= next_scan) {
			agent_outbox_scan(a);
			next_scan = now + a->cfg.poll_ms;
		}
		agent_outbox_pump(a, now);
		agent_witness_tick(a, now);
		agent_undelivered_tick(a, now);
		agent_metrics_tick(a, now);
		agent_log_sweep(a);
		int64_t hook_wait = agent_hooks_poll(a, now);
		int64_t held_wait = agent_inbox_held_tick(a, now);
		int64_t privacy_wait = agent_privacy_tick(a, now);

		int64_t wait = next_scan - now;
		int64_t nw = agent_net_wait(a, now);
		if (nw < wait)
			wait = nw;
		if (hook_wait >= 0 && hook_wait < wait)
			wait = hook_wait;
		if (held_wait >= 0 && held_wait < wait)
			wait = held_wait;
		if (privacy_wait >= 0 && privacy_wait < wait)
			wait = privacy_wait;
		if (a->out_n > 0 && a->welcomed && wait > 200)
			wait = 200; /* resubmission and retry timers */
		if (wait < 0)
			wait = 0;
		zmq_pollitem_t items[2];
		int nitems = 0;
		void *sock = agent_net_socket(a);
		if (sock != NULL)
			items[nitems++] = (zmq_pollitem_t){.socket = sock, .events = ZMQ_POLLIN};
		if (ino >= 0)
			items[nitems++] = (zmq_pollitem_t){.fd = ino, .events = ZMQ_POLLIN};
		int rc = zmq_poll(items, nitems, (long)wait);
		if (rc < 0 && zmq_errno() != EINTR && zmq_errno() != ETERM) {
			agent_log(a, "error", "poll: %s", zmq_strerror(zmq_errno()));
			break;
		}
		if (ino >= 0) {
			/* each name closed after writing or moved in is taken at
			 * once; a file the scan finds without one may still be
			 * written (agent_outbox_closed) */
			char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
			ssize_t len;
			while ((len = read(ino, buf, sizeof(buf))) > 0) {
				a->out_rescan = true;
				for (char *p = buf; p < buf + len;) {
					const struct inotify_event *ev = (const void *)p;
					if (ev->len > 0 &&
					    (ev->mask & (IN_CLOSE_WRITE | IN_MOVED_TO)))
						agent_outbox_closed(a, ev->name);
					p += sizeof(*ev) + ev->len;
				}
			}
		}
	}
	if (ino >= 0)
		close(ino);
}

int main(int argc, char **argv)
{
	agent a;
	rete_msg m = {{0}};
	const char *ini = NULL, *trust = NULL, *trust_key = NULL, *accept = NULL;
	bool check = false;
	int opt, rc = 0;

	memset(&a, 0, sizeof(a));
	static const struct option longopts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"trust", required_argument, NULL, 'T'},
	    {"key", required_argument, NULL, 'K'},
	    {"check-config", no_argument, NULL, 'C'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {"accept-epoch", required_argument, NULL, 'A'},
	    {NULL, 0, NULL, 0},
	};
	while ((opt = getopt_long(argc, argv, "c:vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			ini = optarg;
			break;
		case 'v':
			a.verbose = true;
			break;
		case 'T':
			trust = optarg;
			break;
		case 'K':
			trust_key = optarg;
			break;
		case 'C':
			check = true;
			break;
		case 'A':
			accept = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V': {
			char text[256];
			fputs(rete_version_text(text, sizeof(text), "rete-agent"), stdout);
			printf("agent store schema %d\n", AGENT_STORE_SCHEMA);
			return 0;
		}
		default: /* getopt said which option, and why */
			usage(stderr);
			return 2;
		}
	}
	/* a usage error says what was wrong before the usage */
	const char *wrong =
	    ini == NULL			  ? "-c agent.ini is required"
	    : optind != argc		  ? "unexpected argument"
	    : trust_key != NULL && !trust ? "--key goes with --trust PARTY_ID"
	    : trust != NULL && trust_key == NULL
		? "--trust PARTY_ID needs --key BASE64, the key the party gave you by "
		  "phone or letter (a key taken from the directory alone is what the "
		  "key watch cannot trust)"
	    : accept != NULL && (trust != NULL || check)
		? "--accept-epoch goes alone (not with --trust or --check-config)"
		: NULL;
	if (wrong != NULL) {
		if (optind != argc && ini != NULL)
			fprintf(stderr, "rete-agent: %s '%s'\n", wrong, argv[optind]);
		else
			fprintf(stderr, "rete-agent: %s\n", wrong);
		usage(stderr);
		return 2;
	}
	if (check) /* the keys and folders, as the start would open them; nothing
		    * is written, no lock taken (it may run beside the agent) */
		return agent_check_run("rete-agent", ini);
	rete_check_list problems = {0};
	if (agent_config_read(ini, &a.cfg, &problems) != RETE_OK) {
		/* every problem of the file, as --check-config lists them */
		for (size_t i = 0; i < problems.n; i++)
			if (a.cfg.unreadable)
				fprintf(stderr, "rete-agent: %s\n", problems.items[i]);
			else if (problems.lines[i] > 0)
				fprintf(stderr, "rete-agent: %s:%d: %s\n", ini, problems.lines[i],
					problems.items[i]);
			else
				fprintf(stderr, "rete-agent: %s: %s\n", ini, problems.items[i]);
		if (!a.cfg.unreadable)
			fprintf(stderr, "rete-agent: %s: %zu problem%s; nothing was started\n", ini,
				problems.n, problems.n == 1 ? "" : "s");
		rete_check_free(&problems);
		agent_config_free(&a.cfg);
		return 2;
	}
	rete_check_free(&problems);
	if (trust != NULL) {
		rc = agent_trust(&a, trust, trust_key);
		agent_config_free(&a.cfg);
		return rc;
	}
	if (accept != NULL) {
		char *end = NULL;
		errno = 0;
		unsigned long e = strtoul(accept, &end, 10);
		if (accept[0] < '0' || accept[0] > '9' || *end != '\0' || errno != 0 || e < 1 ||
		    e > UINT32_MAX) {
			fprintf(stderr,
				"rete-agent: --accept-epoch '%.40s': not a log epoch: a whole "
				"number from 1 up, the epoch the witness alarm names (rete "
				"status shows it)\n",
				accept);
			rc = 2;
		} else {
			rc = agent_accept_epoch(&a, (uint32_t)e);
		}
		agent_config_free(&a.cfg);
		return rc;
	}

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_child;
	sa.sa_flags = SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	for (size_t i = 0; i < a.cfg.adjusted.n; i++)
		agent_log(&a, "warning", "%s:%d: %s", a.cfg.ini_path, a.cfg.adjusted.lines[i],
			  a.cfg.adjusted.items[i]);
	if (a.cfg.twice[0] != '\0')
		agent_log(&a, "warning",
			  "%s: [agent] %s: given more than once; the last of each is taken (keep "
			  "one, so that what you read is what runs)",
			  a.cfg.ini_path, a.cfg.twice);
	rete_folder_lock lock[2] = {RETE_FOLDER_LOCK_NONE, RETE_FOLDER_LOCK_NONE};
	if (agent_setup(&a, lock, &m) != RETE_OK || agent_metrics_start(&a, &m) != RETE_OK ||
	    agent_net_start(&a, &m) != RETE_OK) {
		agent_log(&a, "error", "%s", m.text);
		rc = 2;
	} else {
		agent_log(&a, "info", "started: spool %s, broker %s", a.cfg.spool, a.cfg.broker);
		agent_run(&a);
		/* the counts not said yet, before the line that ends the run */
		agent_net_flush(&a);
		agent_log_flush(&a);
		agent_log(&a, "info", "stopping");
	}
	agent_metrics_stop(&a); /* before what it reads */
	agent_net_stop(&a);
	agent_hooks_stop(&a);
	agent_outbox_free(&a);
	agent_undelivered_free(&a);
	agent_inbox_held_free(&a);
	agent_witness_free(&a);
	agent_privacy_free(&a);
	agent_directory_free(&a.dir);
	agent_db_close(&a.db);
	rete_seckey_free(&a.sk);
	agent_config_free(&a.cfg);
	/* the locks go last, once the store is closed and the spool left */
	for (int i = 1; i >= 0; i--)
		rete_folder_lock_release(&lock[i]);
	return rc;
}
