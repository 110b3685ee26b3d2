/* test_audit_restore.c — the auditor after a declared restore.
 *
 * The real rete-broker on a store in a temporary folder (itest.h), the
 * real `rete audit verify` at a distance (--broker, -c audit.ini, --state)
 * and on the store folder (--since-checkpoint). Each test first runs epoch
 * 1 the way docs/operations.md's backup and restore section has it:
 *
 *   3 referrals, a stop and a start, an early auditor run (its state: the
 *   checkpoint of 4 entries), `rete store backup` (the copy: the Directory
 *   and those 3, 4 entries), 2 more referrals, a stop (the broker's state file then
 *   holds its checkpoint of 6 entries: kept aside as state6), 2 more, a
 *   stop and a start, the remote auditor's first run (its state: the
 *   checkpoint of 8 entries, epoch 1), a stop, and the store replaced by
 *   the copy. The auditor has seen entries 4..7, which the copy lacks.
 *
 *   restored     the broker is started with --restore, as the doc says:
 *                the log goes on as epoch 2 from index 4, its Epoch entry
 *                recording the checkpoint of 8 entries. The auditor's next
 *                run with its epoch-1 state re-verifies the log, says what
 *                happened in words (epoch 2 began at index 4; the last
 *                checkpoint of epoch 1 was of 8 entries; entries 4..7 are
 *                not in this log), exits 0 and saves an epoch-2 state; the
 *                run after that is an ordinary incremental one. The local
 *                `rete audit verify STORE --since-checkpoint` with the
 *                auditor's epoch-1 checkpoint says the same and exits 0.
 *                The early auditor's state lies in the part kept: the log
 *                extends it (JSON: restore, savedPastRestore false). Then
 *                the old epoch-1 store is served again (the broker's state
 *                file removed by hand): a checkpoint of an older epoch than
 *                the one saved is an ALARM.
 *   forged       the broker's key holder declares the restore with the
 *                broker's state file put back to its checkpoint of 6
 *                entries: the Epoch entry then claims that the last
 *                checkpoint of epoch 1 was of 6 entries, although the
 *                auditor holds one of 8 signed by the same key. ALARM,
 *                exit 1, the state kept; the local check fails too.
 *   forged root  the same with a checkpoint of 8 entries of another history,
 *                signed with the broker's key in the test: two different
 *                roots at one size of epoch 1, ALARM.
 *   same epoch   the copy served without a declaration (the broker's
 *                state file removed by hand): a shorter log in the same
 *                epoch stays an ALARM.
 *   earlier epoch after the restore (epoch 2, its checkpoint of 6
 *                entries in the state file), the epoch-1 store of 8
 *                entries put back with --restore: refused, exit 2, with
 *                what it is and what to restore instead (s16 rev-final
 *                #5: it went on as epoch 3 with an Epoch entry recording
 *                6 entries at index 8, which the verifiers refuse). The
 *                epoch-2 store put back then starts and verifies.
 *   earlier shorter after the restore (epoch 2 from index 4, 7 entries),
 *                a backup of epoch 1 of 6 entries put back with --restore:
 *                not longer than epoch 2's checkpoint, but longer than
 *                where epoch 2 began, so its entries 4 and 5 are not the
 *                ones epoch 2 logged and receipted: refused (rev-broker
 *                s17 #1; it went on as epoch 3). The backup of 4 entries
 *                put back instead goes on.
 *   epoch entries two restores (Epoch entries at 4 and 7): for ranges
 *                across them, an agency's entries query answers exactly
 *                the broker's Epoch entries of what the auditor's gets,
 *                after the restore's start and after a plain one (s16
 *                rev-final #6: the agency's answer now comes from a list
 *                of them, without reading the other entries).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <jansson.h>

#include "checkpoint.h"
#include "itest.h"

struct t {
	it_net *n;
	char audit_ini[1300], state[1300], early[1300], backup[1300], state6[1300], bstate[1300],
	    backup6[1300];
	rete_wire *w; /* social.mantova's connection */
};

static int teardown(void **state)
{
	struct t *t = *state;
	bool bad = false;
	if (t == NULL)
		return 0;
	rete_wire_close(&t->w);
	it_net_free(&t->n, false, &bad);
	free(t);
	*state = NULL;
	return bad ? -1 : 0;
}

/* show prints a command's output when RETE_TEST_SHOW_OUTPUT is set. */
static void show(const char *what, const char *out)
{
	if (getenv("RETE_TEST_SHOW_OUTPUT") != NULL)
		fprintf(stderr, "---- %s ----\n%s---- end ----\n", what, out);
}

static void submit_some(struct t *t, const char *prefix, int count)
{
	for (int i = 0; i < count; i++) {
		char id[64];
		it_msg o;
		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		assert_int_equal(it_referral(t->n, IT_SOCIAL, IT_CPI, id, &o), RETE_OK);
		Rete__BrokerFrame *f = it_submit(t->w, &o, it_wait_ms());
		assert_true(it_accepted(f, id, t->n->log));
		it_msg_free(&o);
	}
}

/* stop stops the broker with SIGTERM: its last checkpoint then covers the
 * whole log (and its state file holds it). */
static void stop(struct t *t)
{
	rete_wire_close(&t->w);
	assert_int_equal(it_stop(&t->n->broker_pid, SIGTERM, it_wait_ms()), 0);
}

static void start(struct t *t, const char *flag)
{
	assert_true(it_broker_start_flag(t->n, flag));
	t->w = it_hello(t->n, IT_SOCIAL);
	assert_non_null(t->w);
}

/* remote_with runs the remote verify with the state file state; *out
 * gets standard output and error. */
static int remote_with(struct t *t, const char *state, char **out, bool json)
{
	return tu_run(out, "'%s/rete' audit verify --broker '%s' -c '%s' --state '%s'%s 2>&1",
		      t->n->bin, t->n->listen, t->audit_ini, state, json ? " --json" : "");
}

/* remote runs it with the auditor's state file. */
static int remote(struct t *t, char **out, bool json)
{
	return remote_with(t, t->state, out, json);
}

/* note_of reads the checkpoint note out of a state file (malloc'd). */
static char *note_of(const char *state)
{
	json_error_t je;
	json_t *j = json_load_file(state, 0, &je);
	assert_non_null(j);
	const char *s = json_string_value(json_object_get(j, "checkpoint"));
	assert_non_null(s);
	char *note = strdup(s);
	json_decref(j);
	return note;
}

/* epoch1 runs epoch 1 as the top of the file says and leaves the broker
 * stopped with the store replaced by the backup. */
static struct t *epoch1(const char *tag)
{
	struct t *t = calloc(1, sizeof(*t));
	assert_non_null(t);
	t->n = it_net_new(tag, NULL);
	assert_non_null(t->n);
	it_net *n = t->n;
	snprintf(t->audit_ini, sizeof(t->audit_ini), "%s/audit.ini", n->dir);
	snprintf(t->state, sizeof(t->state), "%s/audit.state", n->dir);
	snprintf(t->early, sizeof(t->early), "%s/early.state", n->dir);
	snprintf(t->backup, sizeof(t->backup), "%s/backup", n->dir);
	snprintf(t->state6, sizeof(t->state6), "%s/state6", n->dir);
	snprintf(t->backup6, sizeof(t->backup6), "%s/backup6", n->dir);
	snprintf(t->bstate, sizeof(t->bstate), "%s.state", n->data);
	FILE *f = fopen(t->audit_ini, "w");
	assert_non_null(f);
	fprintf(f,
		"[client]\nid = audit.region\nkey = keys/audit.region.key\nbroker = %s\n"
		"broker_key = keys/" IT_BROKER_ID ".pub\ntime_zone = Europe/Rome\n"
		"timeout = 10s\n",
		n->listen);
	assert_int_equal(fclose(f), 0);

	start(t, "--init");
	submit_some(t, "before", 3);
	/* an auditor that ran before the backup: its state lies in the part the
	 * restore keeps */
	stop(t);
	start(t, NULL);
	char *out = NULL;
	int rc = remote_with(t, t->early, &out, false);
	if (rc != 0)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "holds up to its checkpoint of size 4 "));
	free(out);
	rc = tu_run(&out, "'%s/rete' store backup '%s' '%s'", n->bin, n->data, t->backup);
	assert_int_equal(rc, 0);
	free(out);
	submit_some(t, "after", 2);
	/* a later backup, of 6 entries (test_earlier_shorter) */
	rc = tu_run(&out, "'%s/rete' store backup '%s' '%s'", n->bin, n->data, t->backup6);
	assert_int_equal(rc, 0);
	free(out);
	stop(t);
	rc = tu_run(&out, "cp '%s' '%s'", t->bstate, t->state6);
	assert_int_equal(rc, 0);
	free(out);
	start(t, NULL);
	submit_some(t, "later", 2);
	stop(t);
	start(t, NULL);
	/* the auditor's first run: every entry, its state of 8 entries */
	rc = remote(t, &out, false);
	show("epoch 1", out);
	if (rc != 0)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "holds up to its checkpoint of size 8 "));
	free(out);
	stop(t);
	/* the restore: the store aside, the copy in its place */
	rc = tu_run(&out, "mv '%s' '%s.broken' && cp -a '%s' '%s'", n->data, n->data, t->backup,
		    n->data);
	assert_int_equal(rc, 0);
	free(out);
	return t;
}

static void test_restored(void **state)
{
	struct t *t = epoch1("audit-restored");
	*state = t;
	it_net *n = t->n;
	char *out = NULL, *old = tu_read_file(t->state, NULL), *oldnote = note_of(t->state);
	assert_non_null(old);
	free(old);

	start(t, "--restore");
	/* the log line names the checkpoint the Epoch entry records (eyes12
	 * #9): the state file's, of 8 entries */
	if (tu_occurrences(n->log, "--restore: the log goes on as epoch 2 from index 4; that "
				   "entry records the state file's checkpoint of 8 entries "
				   "(epoch 1)") != 1) {
		it_show(n, "broker.log");
		fail_msg("the --restore line does not name the state file's checkpoint of 8 "
			 "entries");
	}
	submit_some(t, "epoch2", 1); /* index 5: the Epoch entry is 4 */
	stop(t);
	start(t, NULL);

	/* the auditor with its epoch-1 state: the documented path, exit 0 */
	int rc = remote(t, &out, false);
	show("after the restore", out);
	if (rc != 0)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "the log was restored: epoch 2 began at index 4; the last "
				    "checkpoint of epoch 1 was of 8 entries; entries 4..7 of "
				    "epoch 1 are not in this log (the broker's old store is their "
				    "evidence)"));
	assert_non_null(strstr(out, "holds up to its checkpoint of size 6 "));
	assert_null(strstr(out, "ALARM"));
	free(out);
	/* the new state: epoch 2, 6 entries */
	char *note = note_of(t->state);
	uint32_t ep = 0;
	assert_int_equal(rete_checkpoint_epoch(note, strlen(note), &ep, NULL), RETE_OK);
	assert_int_equal(ep, 2);
	rete_checkpoint cp;
	assert_int_equal(rete_checkpoint_parse(note, strlen(note), &cp, NULL), RETE_OK);
	assert_int_equal(cp.size, 6);
	free(note);

	/* the next run is an ordinary incremental one */
	submit_some(t, "epoch2-more", 2);
	stop(t);
	start(t, NULL);
	rc = remote(t, &out, true);
	show("incremental", out);
	if (rc != 0)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 0);
	json_error_t je;
	json_t *j = json_loads(out, 0, &je);
	if (j == NULL)
		fprintf(stderr, "%s\n", out);
	assert_non_null(j);
	assert_true(json_is_true(json_object_get(j, "holds")));
	assert_true(json_is_false(json_object_get(j, "alarm")));
	assert_int_equal(json_integer_value(json_object_get(j, "fromSize")), 6);
	assert_int_equal(json_integer_value(json_object_get(j, "fetched")), 2);
	assert_null(json_object_get(j, "restore"));
	json_decref(j);
	free(out);

	/* the local check with the auditor's epoch-1 checkpoint says the same */
	char since[1400];
	snprintf(since, sizeof(since), "%s/since.note", n->dir);
	assert_int_equal(tu_write_file(since, oldnote, strlen(oldnote)), 0);
	rc = tu_run(&out,
		    "'%s/rete' audit verify '%s' --broker-key '%s/keys/" IT_BROKER_ID ".pub' "
		    "--since-checkpoint '%s' 2>&1",
		    n->bin, n->data, n->dir, since);
	show("local, since epoch 1", out);
	if (rc != 0)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "the log was restored: epoch 2 began at index 4; the last "
				    "checkpoint of epoch 1 was of 8 entries"));
	free(out);

	/* the auditor that ran before the backup: the log extends its state */
	rc = remote_with(t, t->early, &out, true);
	show("early state", out);
	if (rc != 0)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 0);
	j = json_loads(out, 0, &je);
	assert_non_null(j);
	json_t *r = json_object_get(j, "restore");
	assert_true(json_is_object(r));
	assert_int_equal(json_integer_value(json_object_get(r, "epoch")), 2);
	assert_int_equal(json_integer_value(json_object_get(r, "index")), 4);
	assert_int_equal(json_integer_value(json_object_get(r, "previousEpoch")), 1);
	assert_int_equal(json_integer_value(json_object_get(r, "previousCheckpointSize")), 8);
	assert_int_equal(json_integer_value(json_object_get(r, "savedSize")), 4);
	assert_true(json_is_false(json_object_get(r, "savedPastRestore")));
	assert_true(json_is_string(json_object_get(r, "earlierStateKeptIn")));
	json_decref(j);
	free(out);

	/* the old epoch-1 store served again (the broker's memory of epoch 2
	 * removed by hand): the auditor saw epoch 2, ALARM */
	stop(t);
	rc = tu_run(&out, "mv '%s' '%s.epoch2' && mv '%s.broken' '%s' && rm '%s'", n->data, n->data,
		    n->data, n->data, t->bstate);
	assert_int_equal(rc, 0);
	free(out);
	start(t, NULL);
	old = tu_read_file(t->state, NULL);
	rc = remote(t, &out, false);
	show("back to epoch 1", out);
	if (rc != 1)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "ALARM"));
	assert_non_null(strstr(out, "checkpoint of epoch 1, but the one saved, verified earlier, "
				    "is of epoch 2"));
	free(out);
	char *now = tu_read_file(t->state, NULL);
	assert_string_equal(now, old);
	free(now);
	free(old);
	free(oldnote);
}

static void test_forged(void **state)
{
	struct t *t = epoch1("audit-forged");
	*state = t;
	it_net *n = t->n;
	char *out = NULL, *old = tu_read_file(t->state, NULL), *oldnote = note_of(t->state);
	assert_non_null(old);

	/* the key holder makes the broker declare that it signed 6 entries */
	int rc = tu_run(&out, "cp '%s' '%s'", t->state6, t->bstate);
	assert_int_equal(rc, 0);
	free(out);
	start(t, "--restore");
	stop(t);
	start(t, NULL);

	rc = remote(t, &out, false);
	show("forged", out);
	if (rc != 1)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "ALARM"));
	assert_non_null(strstr(out, "of 6 entries"));
	assert_non_null(strstr(out, "(size 8"));
	free(out);
	char *now = tu_read_file(t->state, NULL);
	assert_string_equal(now, old); /* kept for the evidence */
	free(now);

	char since[1400];
	snprintf(since, sizeof(since), "%s/since.note", n->dir);
	assert_int_equal(tu_write_file(since, oldnote, strlen(oldnote)), 0);
	stop(t);
	rc = tu_run(&out,
		    "'%s/rete' audit verify '%s' --broker-key '%s/keys/" IT_BROKER_ID ".pub' "
		    "--since-checkpoint '%s' 2>&1",
		    n->bin, n->data, n->dir, since);
	show("local forged", out);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "of 6 entries"));
	free(out);
	free(oldnote);
	free(old);
}

static void test_forged_root(void **state)
{
	struct t *t = epoch1("audit-forged-root");
	*state = t;
	char *out = NULL, *old = tu_read_file(t->state, NULL);
	assert_non_null(old);

	/* the key holder signs a checkpoint of 8 entries of another history
	 * and makes the broker declare it as its last one of epoch 1 */
	uint8_t root[RETE_MERKLE_HASH];
	memset(root, 0x5a, sizeof(root));
	char *note = NULL;
	rete_msg m;
	assert_int_equal(rete_checkpoint_sign(IT_ORIGIN, 8, root, t->n->broker, &note, &m),
			 RETE_OK);
	assert_int_equal(tu_write_file(t->bstate, note, strlen(note)), 0);
	free(note);
	start(t, "--restore");
	int rc = remote(t, &out, false);
	show("forged root", out);
	if (rc != 1)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "ALARM"));
	assert_non_null(strstr(out, "the broker signed two histories"));
	free(out);
	char *now = tu_read_file(t->state, NULL);
	assert_string_equal(now, old);
	free(now);
	free(old);
}

static void test_same_epoch(void **state)
{
	struct t *t = epoch1("audit-same-epoch");
	*state = t;
	char *out = NULL, *old = tu_read_file(t->state, NULL);
	assert_non_null(old);

	/* no declaration: the broker's memory removed by hand, and the mark
	 * `rete store backup` left in the copy (which the broker also refuses
	 * without --restore) stripped */
	assert_int_equal(unlink(t->bstate), 0);
	it_strip_copy_mark(t->n->data);
	start(t, NULL);
	int rc = remote(t, &out, false);
	show("same epoch", out);
	if (rc != 1)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "ALARM: the broker's log is not consistent with the "
				    "checkpoint saved in"));
	free(out);
	char *now = tu_read_file(t->state, NULL);
	assert_string_equal(now, old);
	free(now);
	free(old);
}

static void test_earlier_epoch(void **state)
{
	struct t *t = epoch1("audit-earlier-epoch");
	*state = t;
	it_net *n = t->n;
	char *out = NULL;
	start(t, "--restore"); /* epoch 2 from index 4 */
	submit_some(t, "epoch2", 1);
	stop(t); /* the state file: epoch 2's checkpoint of 6 entries */

	/* a second restore, from a store of epoch 1 longer than that: the one
	 * the first restore put aside (8 entries) */
	int rc = tu_run(&out, "mv '%s' '%s.epoch2' && mv '%s.broken' '%s'", n->data, n->data,
			n->data, n->data);
	assert_int_equal(rc, 0);
	free(out);
	it_broker_refused(n, n->ini, "--restore", "is of epoch 1 and holds 8 entries",
			  "more than the 6 of the checkpoint of epoch 2",
			  "Restore instead the newest backup made in epoch 2", NULL);

	/* nothing was logged: epoch 2's store put back goes on, and the
	 * auditor (its state of epoch 1, 8 entries) follows it */
	rc = tu_run(&out, "mv '%s' '%s.epoch1' && mv '%s.epoch2' '%s'", n->data, n->data,
		    n->data, n->data);
	assert_int_equal(rc, 0);
	free(out);
	start(t, NULL);
	rc = remote(t, &out, false);
	show("earlier epoch refused", out);
	if (rc != 0)
		fprintf(stderr, "%s\n", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "holds up to its checkpoint of size 6 "));
	free(out);
}

static void test_earlier_shorter(void **state)
{
	struct t *t = epoch1("audit-earlier-shorter");
	*state = t;
	it_net *n = t->n;
	char *out = NULL;
	start(t, "--restore"); /* epoch 2 from index 4 */
	submit_some(t, "epoch2", 2);
	stop(t); /* the state file: epoch 2's checkpoint of 7 entries */

	/* the backup of epoch 1 made at 6 entries: entries 4 and 5 are epoch
	 * 1's "after" referrals, where epoch 2 holds its Epoch entry and its
	 * first referral */
	int rc = tu_run(&out, "mv '%s' '%s.epoch2' && cp -a '%s' '%s'", n->data, n->data,
			t->backup6, n->data);
	assert_int_equal(rc, 0);
	free(out);
	it_broker_refused(n, n->ini, "--restore", "is of epoch 1 and holds 6 entries",
			  "epoch 2 of the log this broker signed last began at log index 4",
			  "or a copy of at most 4 entries", NULL);

	/* a list of epochs that is not one is said, and nothing starts */
	char epochs[1400], *kept = NULL;
	snprintf(epochs, sizeof(epochs), "%s.epochs", t->bstate);
	kept = tu_read_file(epochs, NULL);
	assert_non_null(kept);
	assert_string_equal(kept, "rete-epochs 1\n2 4\n");
	assert_int_equal(tu_write_file(epochs, "rete-epochs 1\n2 four\n", 21), 0);
	it_broker_refused(n, n->ini, "--restore", "line 2 is not \"EPOCH INDEX\"",
			  "Put back the right one, or remove it", NULL);
	/* a named pipe there is refused at once, not waited on */
	assert_int_equal(tu_run(&out, "rm '%s' && mkfifo '%s'", epochs, epochs), 0);
	free(out);
	it_broker_refused(n, n->ini, "--restore", "state.epochs: not a regular file", NULL);
	assert_int_equal(tu_run(&out, "rm '%s'", epochs), 0);
	free(out);
	assert_int_equal(tu_write_file(epochs, kept, strlen(kept)), 0);
	free(kept);

	/* the backup of 4 entries, made before epoch 2 began, goes on */
	rc = tu_run(&out, "rm -rf '%s' && cp -a '%s' '%s'", n->data, t->backup, n->data);
	assert_int_equal(rc, 0);
	free(out);
	start(t, "--restore");
	if (tu_occurrences(n->log, "--restore: the log goes on as epoch 3 from index 4") != 1) {
		it_show(n, "broker.log");
		fail_msg("FAIL: the backup of 4 entries restored after epoch 2 did not start "
			 "epoch 3");
	}
	stop(t);
}

/* answered: the entries answer of w for (from, count), or fails */
static Rete__BrokerFrame *answered(rete_wire *w, uint64_t from, uint64_t count)
{
	Rete__BrokerFrame *f = NULL;
	assert_int_equal(it_entries_call(w, from, count, &f), RETE_OK);
	assert_int_equal(f->command_case, RETE__BROKER_FRAME__COMMAND_RESULT);
	if (f->result->error)
		fail_msg("entries %" PRIu64 "+%" PRIu64 " refused: %s", from, count,
			 f->result->error_text ? f->result->error_text : "");
	assert_int_equal(f->result->answer_case, RETE__QUERY_RESULT__ANSWER_ENTRIES);
	return f;
}

/* is_epoch: the entry is the broker's own Epoch entry; *index its index */
static bool is_epoch(const ProtobufCBinaryData *b, uint64_t *index)
{
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, b->len, b->data);
	assert_non_null(le);
	Rete__Message *msg = NULL;
	assert_int_equal(
	    rete_signed_decode(le->signed_message.data, le->signed_message.len, NULL, &msg, NULL),
	    RETE_OK);
	bool yes = msg->body_case == RETE__MESSAGE__BODY_EPOCH && msg->sender &&
		   strcmp(msg->sender, IT_BROKER_ID) == 0;
	*index = le->index;
	rete__message__free_unpacked(msg, NULL);
	rete__log_entry__free_unpacked(le, NULL);
	return yes;
}

/* same_epochs compares, for each range, social.mantova's entries answer
 * with the Epoch entries of the auditor's; returns the indexes of the
 * Epoch entries of the range 0..999 in at (up to 8), their count */
static size_t same_epochs(struct t *t, uint64_t at[8])
{
	static const uint64_t ranges[][2] = {{0, 10}, {0, 4},  {4, 1},	 {5, 2},   {5, 3},
					     {7, 1},  {8, 5},  {0, 1000}, {3, 2000}, {100, 5},
					     {4, 4},  {6, 1},  {0, 0}};
	rete_wire *audit = it_connect(t->n, IT_AUDIT);
	assert_non_null(audit);
	size_t n = 0;
	for (size_t r = 0; r < sizeof(ranges) / sizeof(ranges[0]); r++) {
		uint64_t from = ranges[r][0], count = ranges[r][1];
		Rete__BrokerFrame *fa = answered(audit, from, count);
		Rete__BrokerFrame *fs = answered(t->w, from, count);
		const Rete__Entries *ea = fa->result->entries, *es = fs->result->entries;
		size_t k = 0;
		for (size_t i = 0; i < ea->n_entries; i++) {
			uint64_t index = 0;
			if (!is_epoch(&ea->entries[i], &index))
				continue;
			if (k >= es->n_entries || es->entries[k].len != ea->entries[i].len ||
			    memcmp(es->entries[k].data, ea->entries[i].data, ea->entries[i].len) != 0)
				fail_msg("FAIL: entries from %" PRIu64 ", count %" PRIu64
					 ": the Epoch entry at index %" PRIu64
					 " the auditor reads is not social.mantova's answer's "
					 "number %zu (it has %zu entries)",
					 from, count, index, k, es->n_entries);
			if (from == 0 && count == 1000 && n < 8)
				at[n++] = index;
			k++;
		}
		if (k != es->n_entries)
			fail_msg("FAIL: entries from %" PRIu64 ", count %" PRIu64
				 ": social.mantova got %zu entries, the Epoch entries among the "
				 "auditor's are %zu",
				 from, count, es->n_entries, k);
		assert_int_equal(es->from, ea->from);
		rete__broker_frame__free_unpacked(fa, NULL);
		rete__broker_frame__free_unpacked(fs, NULL);
	}
	rete_wire_close(&audit);
	return n;
}

static void test_epoch_entries(void **state)
{
	struct t *t = epoch1("audit-epoch-entries");
	*state = t;
	it_net *n = t->n;
	char *out = NULL, backup2[1400];
	snprintf(backup2, sizeof(backup2), "%s/backup2", n->dir);
	start(t, "--restore"); /* epoch 2 from index 4 */
	submit_some(t, "epoch2", 2);
	int rc = tu_run(&out, "'%s/rete' store backup '%s' '%s'", n->bin, n->data, backup2);
	assert_int_equal(rc, 0);
	free(out);
	submit_some(t, "epoch2-more", 2);
	stop(t);
	rc = tu_run(&out, "rm -rf '%s.broken' && mv '%s' '%s.broken' && cp -a '%s' '%s'", n->data,
		    n->data, n->data, backup2, n->data);
	assert_int_equal(rc, 0);
	free(out);
	start(t, "--restore"); /* epoch 3 from index 7 */
	uint64_t at[8];
	size_t k = same_epochs(t, at);
	assert_int_equal(k, 2);
	assert_int_equal(at[0], 4);
	assert_int_equal(at[1], 7);
	submit_some(t, "epoch3", 1);
	stop(t);
	start(t, NULL); /* the list read from the store alone */
	k = same_epochs(t, at);
	assert_int_equal(k, 2);
	assert_int_equal(at[0], 4);
	assert_int_equal(at[1], 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_restored, teardown),
	    cmocka_unit_test_teardown(test_forged, teardown),
	    cmocka_unit_test_teardown(test_forged_root, teardown),
	    cmocka_unit_test_teardown(test_same_epoch, teardown),
	    cmocka_unit_test_teardown(test_earlier_epoch, teardown),
	    cmocka_unit_test_teardown(test_earlier_shorter, teardown),
	    cmocka_unit_test_teardown(test_epoch_entries, teardown),
	};
	if (getenv("RETE_TEST_ONLY"))
		cmocka_set_test_filter(getenv("RETE_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
