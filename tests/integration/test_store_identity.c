/* test_store_identity.c — a log has one identity, and one writer.
 *
 * The real rete-broker on a store in a temporary folder (itest.h):
 *
 *   new log          a missing store is refused without --init (a broker
 *                    pointed at another data folder used to start a new,
 *                    empty log silently); with --init it starts
 *   one writer       a second broker on the same store (its own endpoints)
 *                    exits 2 naming the first one's pid; also when the
 *                    lock file DATA/rete-broker.lock was deleted under the
 *                    first one (an operator "cleaning a stale lock"): the
 *                    lock is on the folder itself (review s16 rev-edges 5)
 *   one endpoint     a second broker on another store but the first one's
 *                    ipc:// listen and events sockets: --check-config says
 *                    the path is served (exit 2) and the start is refused
 *                    (exit 2, before --init makes a log) instead of
 *                    unlinking the first one's socket file and leaving it
 *                    running unreachable (rev-edges 2);
 *                    the first one still answers; a socket file a killed
 *                    broker left (nobody accepts on it) is bound as before
 *   changed origin   the store's origin differs from broker.ini's: exit 2,
 *                    the sentence names both
 *   changed key      the broker key differs from the one the log was
 *                    signed with: exit 2, the sentence names both
 *   schema 1         a store of an older rete (no identity in meta) adopts
 *                    broker.ini's origin and key, when its checkpoints are
 *                    theirs, and refuses a change from then on; the start
 *                    says that the store is of schema 4 now, which older
 *                    programs no longer open
 *   restore          docs/operations.md's backup and restore, followed
 *                    literally: backup, more traffic, stop, the copy put
 *                    in place of the store; the broker refuses to serve it
 *                    until --restore is declared, then goes on as epoch 2:
 *                    the link entry first, WELCOME says epoch 2, the
 *                    checkpoints carry "epoch 2", traffic goes on and
 *                    `rete audit verify` passes.
 *   restore a copy   the gap the state file leaves: a backup taken after
 *                    the last checkpoint, more traffic receipted, a crash
 *                    (no checkpoint at stop), the copy restored: it is as
 *                    long as the state file's checkpoint, yet the broker
 *                    refuses it (it is marked as a copy) until --restore,
 *                    which always goes on as a new epoch and removes the
 *                    mark with the Epoch entry; a second --restore is
 *                    "nothing to declare"; --init on a copy is refused; a
 *                    copy of a copy keeps the first copy's mark; `rete
 *                    audit verify` passes on a marked copy.
 *   empty store      a 0-byte data.mdb is refused with a sentence naming
 *                    the folder, exit 2, with or without --init.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <sodium.h>

#include <lmdb.h>

#include "checkpoint.h"
#include "itest.h"
#include "store_identity.h"

/* ini_variant writes DIR/NAME.ini: broker.ini with `from` replaced by
 * `to` (both whole lines' worth of text). */
static void ini_variant(it_net *n, const char *name, const char *from, const char *to, char *path,
			size_t len)
{
	char *text = tu_read_file(n->ini, NULL);
	assert_non_null(text);
	char *at = strstr(text, from);
	assert_non_null(at);
	snprintf(path, len, "%s/%s.ini", n->dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
	assert_int_equal(fclose(f), 0);
	free(text);
}

static void test_new_log_needs_init(void **state)
{
	it_net *n = it_net_new("ident-init", NULL);
	assert_non_null(n);
	*state = n;
	it_broker_refused(n, n->ini, NULL, "--init", n->data, NULL);
	struct stat st;
	assert_int_not_equal(stat(n->data, &st), 0); /* nothing was created */
	/* an empty folder is no log either */
	assert_int_equal(mkdir(n->data, 0700), 0);
	it_broker_refused(n, n->ini, NULL, "--init", NULL);
	assert_true(it_broker_start(n)); /* the first start passes --init */
	assert_true(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) >= 0);
	/* and --init on a store holding a log is refused: it is not a reset */
	it_broker_refused(n, n->ini, "--init", "already holds a log", NULL);
	assert_true(it_broker_start(n));
}

static void test_second_broker(void **state)
{
	it_net *n = it_net_new("ident-lock", NULL);
	assert_non_null(n);
	*state = n;
	assert_true(it_broker_start(n));
	/* the same store, endpoints of its own */
	char ini2[1300], listen2[1400];
	snprintf(listen2, sizeof(listen2),
		 "listen = ipc://%s/two.sock\nevents = ipc://%s/two-ev.sock\n", n->dir, n->dir);
	char from[1400];
	snprintf(from, sizeof(from), "listen = %s\nevents = %s\n", n->listen, n->events);
	ini_variant(n, "two", from, listen2, ini2, sizeof(ini2));
	char pid[32];
	snprintf(pid, sizeof(pid), "pid %ld", (long)n->broker_pid);
	it_broker_refused(n, ini2, NULL, "in use by another broker", pid, NULL);
	/* the first one still serves */
	assert_true(it_broker_ready(n, it_wait_ms()));

	/* the lock file deleted under it ("a stale lock"): still refused,
	 * naming the first one's pid though its file is gone */
	char lock[1300];
	snprintf(lock, sizeof(lock), "%s/rete-broker.lock", n->data);
	assert_int_equal(unlink(lock), 0);
	it_broker_refused(n, ini2, NULL, "in use by another broker", n->data, pid, NULL);
	assert_true(it_broker_ready(n, it_wait_ms()));
	/* its own restart takes the folder again (the lock ends with the
	 * process) */
	assert_true(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) >= 0);
	assert_true(it_broker_start(n));
}

static void test_same_ipc_endpoint(void **state)
{
	it_net *n = it_net_new("ident-ipc", NULL);
	assert_non_null(n);
	*state = n;
	assert_true(it_broker_start(n));
	/* first (the broker says a connection that closed before its first
	 * frame at most once a minute): the running broker's own
	 * configuration checked (what `systemctl reload` runs) and started
	 * again (systemd runs it, an operator starts it by hand): the check
	 * does not connect to its socket, which it would log as a peer that
	 * left, and the second start is refused by the store's lock, naming
	 * the pid */
	char *own = NULL;
	int orc = tu_run(&own, "'%s/rete-broker' -c '%s' --check-config 2>&1", n->bin, n->ini);
	if (orc != 0)
		fprintf(stderr, "--check-config (rc %d):\n%s", orc, own ? own : "");
	assert_int_equal(orc, 0);
	free(own);
	it_broker_refused(n, n->ini, NULL, "is in use by another broker (pid", NULL);
	assert_true(it_broker_ready(n, it_wait_ms()));
	if (tu_occurrences(n->log, "before its first frame") != 0)
		fail_msg("the running broker logged a connection that closed before its first "
			 "frame: the check of its own configuration, or its second start, "
			 "connected to its socket");
	/* another store, the first one's endpoints (a copied broker.ini) */
	char ini2[1300], from[1400], to[1400];
	snprintf(from, sizeof(from), "data = %s\n", n->data);
	snprintf(to, sizeof(to), "data = %s/store2\n", n->dir);
	ini_variant(n, "two", from, to, ini2, sizeof(ini2));
	struct stat before, after;
	assert_int_equal(stat(n->sock, &before), 0);
	it_broker_refused(n, ini2, "--init", "cannot bind", n->listen, "another rete-broker", NULL);
	/* refused before --init made a log there */
	char store2[1300];
	snprintf(store2, sizeof(store2), "%s/store2", n->dir);
	assert_int_not_equal(stat(store2, &after), 0);
	/* the first one's socket file is the one it bound, and it answers */
	assert_int_equal(stat(n->sock, &after), 0);
	assert_true(before.st_ino == after.st_ino);
	assert_true(it_broker_ready(n, it_wait_ms()));
	/* --check-config says it before a start */
	char *out = NULL;
	int rc = tu_run(&out, "'%s/rete-broker' -c '%s' --init --check-config 2>&1", n->bin, ini2);
	if (rc != 2 || !strstr(out, n->sock) || !strstr(out, "another rete-broker"))
		fprintf(stderr, "--check-config (rc %d):\n%s", rc, out ? out : "");
	assert_int_equal(rc, 2);
	assert_non_null(strstr(out, n->sock));
	assert_non_null(strstr(out, "another rete-broker"));
	free(out);
	out = NULL;
	/* the running broker's own configuration (what `systemctl reload`
	 * checks): a note, not a problem, and no connection to it, which it
	 * would log as a peer that left before its first frame */
	rc = tu_run(&out, "'%s/rete-broker' -c '%s' --check-config 2>&1", n->bin, n->ini);
	if (rc != 0)
		fprintf(stderr, "--check-config (rc %d):\n%s", rc, out ? out : "");
	assert_int_equal(rc, 0);
	free(out);
	/* a socket file a killed broker left is nobody's: bound as before */
	assert_true(it_stop(&n->broker_pid, SIGKILL, it_wait_ms()) >= 0);
	assert_int_equal(stat(n->sock, &after), 0);
	n->broker_pid = it_broker_exec_flag(n->dir, n->bin, n->ini, true, NULL, NULL);
	assert_true(n->broker_pid > 0);
	assert_true(it_broker_ready(n, it_wait_ms()));
}

/* net_with_store makes the test's network (*state) and has its broker
 * start once, making its store, and stop. */
static it_net *net_with_store(void **state, const char *tag)
{
	it_net *n = it_net_new(tag, NULL);
	assert_non_null(n);
	*state = n;
	assert_true(it_broker_start(n));
	assert_true(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) >= 0);
	return n;
}

static void test_changed_origin(void **state)
{
	it_net *n = net_with_store(state, "ident-origin");
	char ini2[1300];
	ini_variant(n, "other-origin", "origin = " IT_ORIGIN "\n", "origin = rete.test/verona\n",
		    ini2, sizeof(ini2));
	it_broker_refused(n, ini2, NULL, "origin '" IT_ORIGIN "'", "rete.test/verona",
			  "docs/operations.md", NULL);
	/* the original configuration still starts it */
	assert_true(it_broker_start(n));
	it_audit_verifies(n);
}

static void test_changed_key(void **state)
{
	it_net *n = net_with_store(state, "ident-key");
	rete_seckey *k = it_key_new(n->dir, "broker.new");
	char b64[64], old64[64];
	sodium_bin2base64(b64, sizeof(b64), k->pub.ed, RETE_PK_LEN, sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(old64, sizeof(old64), n->broker->pub.ed, RETE_PK_LEN,
			  sodium_base64_VARIANT_ORIGINAL);
	rete_seckey_free(&k);
	char ini2[1300];
	ini_variant(n, "other-key", "key = keys/" IT_BROKER_ID ".key\n",
		    "key = keys/broker.new.key\n", ini2, sizeof(ini2));
	it_broker_refused(n, ini2, NULL, "broker key", b64, old64, NULL);
	assert_true(it_broker_start(n));
}

/* schema1 turns the store of n into what an older rete wrote: schema 1,
 * no identity in meta. */
static void schema1(it_net *n)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi meta;
	uint8_t one[4] = {0, 0, 0, 1};
	const char *gone[] = {"origin", "broker_key", "first_entry"};
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	assert_int_equal(mdb_env_open(env, n->data, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &meta), 0);
	for (size_t i = 0; i < 3; i++) {
		MDB_val k = {strlen(gone[i]), (void *)gone[i]};
		assert_int_equal(mdb_del(txn, meta, &k, NULL), 0);
	}
	MDB_val k = {6, "schema"}, v = {4, one};
	assert_int_equal(mdb_put(txn, meta, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void test_schema1_adopted(void **state)
{
	it_net *n = net_with_store(state, "ident-schema1");
	schema1(n);
	rete_store *s = NULL;
	rete_store_identity id;
	assert_int_equal(rete_store_open(&s, n->data, RETE_STORE_RDONLY, NULL), RETE_OK);
	assert_int_equal(rete_store_identity_get(s, NULL, &id, NULL), RETE_OK);
	rete_store_close(&s);
	assert_int_equal(id.schema, 1);
	assert_false(id.recorded);
	/* readers of this version read it as it is */
	it_audit_verifies(n);
	/* another origin is not adopted: the store's checkpoints say otherwise */
	char ini2[1300];
	ini_variant(n, "other-origin", "origin = " IT_ORIGIN "\n", "origin = rete.test/verona\n",
		    ini2, sizeof(ini2));
	it_broker_refused(n, ini2, NULL, "records no identity yet", "rete.test/verona", NULL);
	/* broker.ini's, which signed them, is */
	assert_true(it_broker_start(n));
	char *log = tu_read_file(n->log, NULL);
	assert_non_null(log);
	assert_non_null(
	    strstr(log, "recorded no identity (schema 1): it is now the log of origin " IT_ORIGIN));
	/* and that the start raised it to the journal's schema, which the
	 * programs that read it before no longer open (rev-restore s14 #8) */
	if (strstr(log, "it is of schema 4 now") == NULL ||
	    strstr(log, "older rete versions (store schema 3 and below) no longer open it") == NULL)
		fail_msg("the start did not say that the schema-1 store is of schema 4 now and that "
			 "older programs no longer open it: %.600s",
			 strstr(log, "recorded no identity"));
	free(log);
	assert_true(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) >= 0);
	assert_int_equal(rete_store_open(&s, n->data, RETE_STORE_RDONLY, NULL), RETE_OK);
	assert_int_equal(rete_store_identity_get(s, NULL, &id, NULL), RETE_OK);
	rete_store_close(&s);
	assert_int_equal(id.schema, RETE_STORE_SCHEMA);
	assert_true(id.recorded);
	assert_string_equal(id.origin, IT_ORIGIN);
	assert_true(id.have_first);
	/* from now on a change is refused */
	it_broker_refused(n, ini2, NULL, "origin '" IT_ORIGIN "'", NULL);
}

/* submit_some logs count referrals social -> cpi with ids PREFIX-i. */
static void submit_some(it_net *n, rete_wire *w, const char *prefix, int count)
{
	for (int i = 0; i < count; i++) {
		char id[64];
		it_msg o;
		snprintf(id, sizeof(id), "%s-%d", prefix, i);
		assert_int_equal(it_referral(n, IT_SOCIAL, IT_CPI, id, &o), RETE_OK);
		Rete__BrokerFrame *f = it_submit(w, &o, it_wait_ms());
		assert_true(it_accepted(f, id, n->log));
		it_msg_free(&o);
	}
}

/* epoch2_entry_at: `rete audit log` shows the log entry at index as the
 * Epoch entry that opened epoch 2 after epoch 1, whose last checkpoint was
 * of size previous; the test fails (cmocka) otherwise. */
static void epoch2_entry_at(it_net *n, uint64_t index, uint64_t previous)
{
	char want[200], *out = NULL;
	snprintf(want, sizeof(want),
		 "\"kind\":\"epoch\",\"messageId\":\"epoch-2\",\"epoch\":2,\"previousEpoch\":1,"
		 "\"previousCheckpointSize\":\"%" PRIu64 "\"}",
		 previous);
	int rc = tu_run(&out, "'%s/rete' audit log '%s' --from %" PRIu64 " --to %" PRIu64, n->bin,
			n->data, index, index);
	assert_int_equal(rc, 0);
	if (!strstr(out, want))
		fprintf(stderr, "audit log: %s\nwanted: %s\n", out, want);
	assert_non_null(strstr(out, want));
	free(out);
}

/* welcome returns the WELCOME the broker sends to `who` (caller frees). */
static Rete__BrokerFrame *welcome(it_net *n, int who, rete_wire **wp)
{
	rete_wire *w = it_connect(n, who);
	assert_non_null(w);
	rete_wire_hello(w, it_party_ids[who], "itest", NULL);
	Rete__BrokerFrame *f = it_recv_kind(w, RETE__BROKER_FRAME__COMMAND_WELCOME, it_wait_ms());
	assert_non_null(f);
	assert_int_equal(f->command_case, RETE__BROKER_FRAME__COMMAND_WELCOME);
	*wp = w;
	return f;
}

/* epoch2_referral: a broker just started with --restore says epoch 2 in
 * its WELCOME (and in its checkpoint's epoch line); a referral from social
 * services is receipted. Returns the receipt's log index. */
static int64_t epoch2_referral(it_net *n)
{
	rete_wire *w = NULL;
	Rete__BrokerFrame *f = welcome(n, IT_SOCIAL, &w);
	assert_int_equal(f->welcome->epoch, 2);
	assert_non_null(strstr(f->welcome->checkpoint, "\nepoch 2\n"));
	rete__broker_frame__free_unpacked(f, NULL);
	it_msg o;
	assert_int_equal(it_referral(n, IT_SOCIAL, IT_CPI, "in-epoch-2", &o), RETE_OK);
	f = it_submit(w, &o, it_wait_ms());
	int64_t idx = it_receipt_index(n, f);
	rete__broker_frame__free_unpacked(f, NULL);
	it_msg_free(&o);
	rete_wire_close(&w);
	return idx;
}

static void test_restore(void **state)
{
	it_net *n = it_net_new("ident-restore", NULL);
	assert_non_null(n);
	*state = n;
	assert_true(it_broker_start(n));
	rete_wire *w = it_hello(n, IT_SOCIAL);
	assert_non_null(w);
	submit_some(n, w, "before", 3);

	/* docs/operations.md: `rete store backup DATA DEST`, hot */
	char backup[1300], *out = NULL;
	snprintf(backup, sizeof(backup), "%s/backup", n->dir);
	int rc = tu_run(&out, "'%s/rete' store backup '%s' '%s'", n->bin, n->data, backup);
	assert_int_equal(rc, 0);
	free(out);
	/* ... and `rete audit verify` of the copy */
	rc = tu_run(&out, "'%s/rete' audit verify '%s' --broker-key '%s/keys/" IT_BROKER_ID ".pub'",
		    n->bin, backup, n->dir);
	assert_int_equal(rc, 0);
	free(out);
	/* more traffic after the backup: these indexes are receipted now and
	 * will be given again after the restore */
	submit_some(n, w, "after", 4);
	rete_wire_close(&w);
	/* before any restore the log is in epoch 1, its notes without a line */
	Rete__BrokerFrame *f = welcome(n, IT_CPI, &w);
	assert_int_equal(f->welcome->epoch, 1);
	assert_null(strstr(f->welcome->checkpoint, "\nepoch "));
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&w);
	/* `systemctl stop rete-broker`: SIGTERM; its last checkpoint covers
	 * everything, and the state file holds it */
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	rc = tu_run(&out, "'%s/rete' checkpoint '%s'", n->bin, n->data);
	assert_int_equal(rc, 0);
	rete_checkpoint cp;
	assert_int_equal(rete_checkpoint_parse(out, strlen(out), &cp, NULL), RETE_OK);
	uint64_t before = cp.size;
	free(out);
	char state_file[1300];
	snprintf(state_file, sizeof(state_file), "%s.state", n->data);
	out = tu_read_file(state_file, NULL);
	assert_non_null(out);
	assert_int_equal(rete_checkpoint_parse(out, strlen(out), &cp, NULL), RETE_OK);
	assert_true(cp.size == before);
	free(out);

	/* the restore, as the doc says: the store aside, the copy in its
	 * place, the state file left where it is */
	rc = tu_run(&out, "mv '%s' '%s.broken' && cp -a '%s' '%s'", n->data, n->data, backup,
		    n->data);
	assert_int_equal(rc, 0);
	free(out);
	/* served only when the restore is declared */
	it_broker_refused(n, n->ini, NULL, "is a backup copy", "already signed a checkpoint",
			  "--restore", NULL);
	assert_true(it_broker_start_flag(n, "--restore"));

	/* traffic goes on, in epoch 2, at indexes already used in epoch 1 */
	int64_t idx = epoch2_referral(n);
	assert_true(idx > 0);
	assert_true((uint64_t)idx < before);
	/* the doc's Ctrl-C once it logged "started" */
	assert_int_equal(it_stop(&n->broker_pid, SIGINT, it_wait_ms()), 0);

	/* the log says so itself: the epoch entry, first of epoch 2 */
	epoch2_entry_at(n, (uint64_t)idx - 1, before);
	/* and it verifies */
	it_audit_verifies(n);
	/* later starts need no declaration */
	assert_true(it_broker_start(n));
	f = welcome(n, IT_CPI, &w);
	assert_int_equal(f->welcome->epoch, 2);
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&w);

	/* the same epoch-1 copy restored once more: the state file is of
	 * epoch 2, so the log goes on as epoch 3, never as a second epoch 2 */
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	rc = tu_run(&out, "rm -rf '%s' && cp -a '%s' '%s'", n->data, backup, n->data);
	assert_int_equal(rc, 0);
	free(out);
	it_broker_refused(n, n->ini, NULL, "epoch 1),", "(epoch 2, kept in", "as epoch 3", NULL);
	assert_true(it_broker_start_flag(n, "--restore"));
	f = welcome(n, IT_CPI, &w);
	assert_int_equal(f->welcome->epoch, 3);
	assert_non_null(strstr(f->welcome->checkpoint, "\nepoch 3\n"));
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&w);
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	it_audit_verifies(n);
}

/* ini_set replaces `from` with `to` in n's broker.ini itself. */
static void ini_set(it_net *n, const char *from, const char *to)
{
	char path[1300];
	ini_variant(n, "ini-set", from, to, path, sizeof(path));
	assert_int_equal(rename(path, n->ini), 0);
}

/* copy_mark reads the copy mark of the store in dir; false when none. */
static bool copy_mark(const char *dir, rete_store_copy_mark *mark)
{
	rete_store *s = NULL;
	rete_msg m;
	bool found = false;
	if (rete_store_open(&s, dir, RETE_STORE_RDONLY, &m) != RETE_OK)
		fail_msg("cannot open %s: %s", dir, m.text);
	if (rete_store_copy_mark_get(s, NULL, mark, &found, &m) != RETE_OK)
		fail_msg("cannot read the copy mark of %s: %s", dir, m.text);
	rete_store_close(&s);
	return found;
}

/* state_size: the size of the checkpoint in n's state file. */
static uint64_t state_size(it_net *n)
{
	char path[1300];
	rete_checkpoint cp;
	snprintf(path, sizeof(path), "%s.state", n->data);
	char *note = tu_read_file(path, NULL);
	assert_non_null(note);
	assert_int_equal(rete_checkpoint_parse(note, strlen(note), &cp, NULL), RETE_OK);
	free(note);
	return cp.size;
}

static void test_restore_copy(void **state)
{
	it_net *n = it_net_new("ident-copy", NULL);
	assert_non_null(n);
	*state = n;
	/* checkpoints far apart: the copy is taken after the last one and
	 * restored before the next */
	ini_set(n, "checkpoint_interval = 1s\n", "checkpoint_interval = 1h\n");
	assert_true(it_broker_start(n));
	rete_wire *w = it_hello(n, IT_SOCIAL);
	assert_non_null(w);
	submit_some(n, w, "before", 3);

	char backup[1300], backup2[1300], *out = NULL;
	snprintf(backup, sizeof(backup), "%s/backup", n->dir);
	snprintf(backup2, sizeof(backup2), "%s/backup-of-backup", n->dir);
	int rc = tu_run(&out, "'%s/rete' store backup '%s' '%s'", n->bin, n->data, backup);
	assert_int_equal(rc, 0);
	free(out);
	rete_store_copy_mark mark, mark2;
	assert_true(copy_mark(backup, &mark));
	uint64_t copied = mark.size;
	assert_int_equal(mark.epoch, 1);
	assert_true(mark.made_at_ms > 0);
	assert_false(copy_mark(n->data, &mark2)); /* the source is not marked */
	/* the marked copy is a valid store for the auditor */
	rc = tu_run(&out, "'%s/rete' audit verify '%s' --broker-key '%s/keys/" IT_BROKER_ID ".pub'",
		    n->bin, backup, n->dir);
	if (rc != 0)
		fprintf(stderr, "%s", out);
	assert_int_equal(rc, 0);
	free(out);
	/* a copy of the copy keeps the first copy's mark: it holds the log as
	 * of that first moment */
	rc = tu_run(&out, "'%s/rete' store backup '%s' '%s'", n->bin, backup, backup2);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "itself a backup copy"));
	free(out);
	assert_true(copy_mark(backup2, &mark2));
	assert_true(mark2.size == mark.size && mark2.epoch == mark.epoch &&
		    mark2.made_at_ms == mark.made_at_ms);
	assert_string_equal(mark2.source, mark.source);

	/* more traffic, receipted, at indexes the copy does not hold */
	submit_some(n, w, "after", 4);
	rete_wire_close(&w);
	/* a crash: no checkpoint at stop, the state file's is the start's */
	assert_true(it_stop(&n->broker_pid, SIGKILL, it_wait_ms()) >= 0);
	assert_true(state_size(n) <= copied);

	rc = tu_run(&out, "mv '%s' '%s.broken' && cp -a '%s' '%s'", n->data, n->data, backup,
		    n->data);
	assert_int_equal(rc, 0);
	free(out);
	/* as long as the state file's checkpoint, but a copy: refused */
	char entries[64];
	snprintf(entries, sizeof(entries), "%" PRIu64 " entries", copied);
	it_broker_refused(n, n->ini, NULL, "is a backup copy", "made by 'rete store backup' at",
			  entries, "--restore", "as epoch 2", NULL);
	/* --init is no way around it */
	it_broker_refused(n, n->ini, "--init", "is a backup copy", NULL);
	assert_true(copy_mark(n->data, &mark2));

	assert_true(it_broker_start_flag(n, "--restore"));
	/* the line names the checkpoint the Epoch entry records: the copy's
	 * own, signed at this start (eyes12 #9) */
	char said[200];
	snprintf(said, sizeof(said),
		 "that entry records the restored copy's own checkpoint of %" PRIu64
		 " entries (epoch 1), signed now",
		 copied);
	assert_true(tu_occurrences(n->log, said) == 1);
	int64_t idx = epoch2_referral(n);
	/* the Epoch entry at the copy's size, then this one: an index epoch 1
	 * used too, now named in epoch 2 */
	assert_true((uint64_t)idx == copied + 1);
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	/* the mark went with the Epoch entry */
	assert_false(copy_mark(n->data, &mark2));

	epoch2_entry_at(n, copied, copied);
	it_audit_verifies(n);

	/* --restore again (as after a crash once the restore was logged):
	 * nothing to declare, still epoch 2 */
	struct stat st;
	long from = stat(n->log, &st) == 0 ? (long)st.st_size : 0;
	assert_true(it_broker_start_flag(n, "--restore"));
	Rete__BrokerFrame *f = welcome(n, IT_CPI, &w);
	assert_int_equal(f->welcome->epoch, 2);
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&w);
	char *log = tu_read_file(n->log, NULL);
	assert_non_null(log);
	if (!strstr(log + from, "nothing to declare") || !strstr(log + from, "not a backup copy"))
		fprintf(stderr, "---- broker.log of this run ----\n%s----\n", log + from);
	assert_non_null(strstr(log + from, "nothing to declare"));
	assert_non_null(strstr(log + from, "not a backup copy"));
	free(log);
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	/* and plain starts serve it */
	assert_true(it_broker_start(n));
}

/* An empty (0-byte) data.mdb is no log: refused with a sentence. */
static void test_empty_store_file(void **state)
{
	it_net *n = it_net_new("ident-empty", NULL);
	assert_non_null(n);
	*state = n;
	char path[1300];
	assert_int_equal(mkdir(n->data, 0700), 0);
	snprintf(path, sizeof(path), "%s/data.mdb", n->data);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fclose(fp), 0);
	it_broker_refused(n, n->ini, NULL, n->data, NULL);
	it_broker_refused(n, n->ini, "--init", n->data, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_new_log_needs_init, it_teardown),
	    cmocka_unit_test_teardown(test_second_broker, it_teardown),
	    cmocka_unit_test_teardown(test_same_ipc_endpoint, it_teardown),
	    cmocka_unit_test_teardown(test_changed_origin, it_teardown),
	    cmocka_unit_test_teardown(test_changed_key, it_teardown),
	    cmocka_unit_test_teardown(test_restore, it_teardown),
	    cmocka_unit_test_teardown(test_schema1_adopted, it_teardown),
	    cmocka_unit_test_teardown(test_restore_copy, it_teardown),
	    cmocka_unit_test_teardown(test_empty_store_file, it_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
