/* test_audit_cli.c — the auditor's commands of `rete` on real stores built
 * from real signed messages: `rete audit verify` holds on a good log (also
 * as --json, and while another process appends), fails naming the entry
 * when a byte of data.mdb is flipped, and catches an older backup put back
 * with --since-checkpoint, and fails naming the database and the row when
 * rows of the case index are deleted (which hides entries from `rete audit
 * log --case`); `rete checkpoint` prints the stored note;
 * proofs from `rete audit proof` and `rete audit consistency` pass `rete
 * audit check-proof` and tampered ones fail; `rete audit log` prints
 * metadata lines; `rete store backup` copies. */
#include <errno.h>
#include <jansson.h>
#include <lmdb.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "checkpoint.h"
#include "codec.h"
#include "keys.h"
#include "merkle.h"
#include "store.h"
#include "testutil.h"

#define RETE   RETE_BIN_DIR "/rete"
#define ORIGIN "rete.test/mantova"
#define BROKER "broker.mantova"
#define SOCIAL "social.mantova"
#define CPI    "cpi.mantova"

static rete_seckey *kb, *ks, *kc, *kother;

struct fx {
	char *root; /* temp folder */
	char store[4096];
	char pub[4096]; /* broker's .pub */
	rete_store *s;
	int64_t t;
};

static rete_buf directory(void)
{
	Rete__Message msg;
	Rete__Directory d = RETE__DIRECTORY__INIT;
	Rete__Party p[3], *pp[3];
	const char *ids[3] = {BROKER, SOCIAL, CPI};
	const rete_seckey *k[3] = {kb, ks, kc};
	for (int i = 0; i < 3; i++) {
		rete__party__init(&p[i]);
		p[i].id = (char *)ids[i];
		p[i].kind = i == 0 ? RETE__PARTY_KIND__PARTY_KIND_BROKER
				   : RETE__PARTY_KIND__PARTY_KIND_SOCIAL_SERVICES;
		p[i].public_key.data = (uint8_t *)k[i]->pub.ed;
		p[i].public_key.len = RETE_PK_LEN;
		pp[i] = &p[i];
	}
	tu_message_init(&msg, "dir-1", BROKER, "", "", ORIGIN);
	d.serial = 1;
	d.n_parties = 3;
	d.parties = pp;
	msg.body_case = RETE__MESSAGE__BODY_DIRECTORY;
	msg.directory = &d;
	return tu_sign(&msg, kb);
}

static rete_buf referral(const char *id, const char *staff, const rete_seckey *k)
{
	Rete__Message msg;
	Rete__Referral r = RETE__REFERRAL__INIT;
	Rete__Operator op = RETE__OPERATOR__INIT;
	tu_message_init(&msg, id, SOCIAL, CPI, "case-9", ORIGIN);
	op.staff_id = (char *)staff;
	msg.operator_ = &op;
	r.service = (char *)"employment-orientation";
	r.priority = RETE__PRIORITY__PRIORITY_ROUTINE;
	msg.body_case = RETE__MESSAGE__BODY_REFERRAL;
	msg.referral = &r;
	return tu_sign(&msg, k);
}

static rete_buf update(const char *id, const char *ref, Rete__Status st)
{
	Rete__Message msg;
	tu_message_init(&msg, id, CPI, SOCIAL, "case-9", ORIGIN);
	return tu_sign_update(&msg, ref, st, kc);
}

/* fx_build: 12 entries, checkpoints at 5 and 12; the store stays open. */
static void fx_build(struct fx *f)
{
	rete_msg m = {{0}};
	char id[32], staff[32];

	memset(f, 0, sizeof(*f));
	f->root = tu_tmpdir("audit-cli");
	assert_non_null(f->root);
	snprintf(f->store, sizeof(f->store), "%s/store", f->root);
	snprintf(f->pub, sizeof(f->pub), "%s/%s.pub", f->root, BROKER);
	assert_int_equal(rete_keyfile_write(f->root, BROKER, kb, false, &m), RETE_OK);
	f->t = 1790000000000;
	assert_int_equal(rete_store_open(&f->s, f->store, RETE_STORE_CREATE, &m), RETE_OK);
	tu_append(f->s, &f->t, directory());
	tu_append(f->s, &f->t, referral("r1", "staff-flip-01", ks));
	tu_append(f->s, &f->t, update("u1", "r1", RETE__STATUS__STATUS_ACCEPTED));
	tu_append(f->s, &f->t, referral("r2", "staff-0003", ks));
	tu_append(f->s, &f->t, update("u2", "r1", RETE__STATUS__STATUS_IN_PROGRESS));
	free(tu_checkpoint(f->s, ORIGIN, kb));
	for (int i = 3; i <= 9; i++) {
		snprintf(id, sizeof(id), "r%d", i);
		snprintf(staff, sizeof(staff), "staff-%04d", i);
		tu_append(f->s, &f->t, referral(id, staff, ks));
	}
	free(tu_checkpoint(f->s, ORIGIN, kb));
}

static void fx_free(struct fx *f)
{
	rete_store_close(&f->s);
	tu_rmrf(f->root);
	free(f->root);
}

static int run(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int run(char **out, const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	int rc;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = tu_run(out, "%s", cmd); /* stdout and stderr together */
	if (rc < 0)
		fail_msg("%s: did not exit normally", cmd);
	return rc;
}

static int setup(void **state)
{
	(void)state;
	return rete_seckey_generate(&kb, NULL) | rete_seckey_generate(&ks, NULL) |
	       rete_seckey_generate(&kc, NULL) | rete_seckey_generate(&kother, NULL);
}

static int teardown(void **state)
{
	(void)state;
	rete_seckey_free(&kb);
	rete_seckey_free(&ks);
	rete_seckey_free(&kc);
	rete_seckey_free(&kother);
	return 0;
}

/* ---- verify ------------------------------------------------------------------- */

static void test_verify_good(void **state)
{
	struct fx f;
	char *out = NULL, *root64, expect[256];
	uint8_t root[RETE_MERKLE_HASH];
	rete_msg m = {{0}};
	json_t *j;
	(void)state;

	fx_build(&f);
	assert_int_equal(rete_store_root(f.s, NULL, 12, root, &m), RETE_OK);
	root64 = rete_b64_encode(root, RETE_MERKLE_HASH);
	snprintf(expect, sizeof(expect),
		 "verified 12 entries, 2 checkpoints; latest checkpoint size 12 root %s\n", root64);
	/* the writer still has the store open: verify opens it read-only beside it */
	assert_int_equal(run(&out, "%s audit verify %s --broker-key %s 2>&1", RETE, f.store, f.pub),
			 0);
	assert_string_equal(out, expect);
	free(out);
	assert_int_equal(run(&out, "%s audit verify %s --broker-key %s --no-replay --threads 1",
			     RETE, f.store, f.pub),
			 0);
	assert_string_equal(out, expect);
	free(out);

	assert_int_equal(
	    run(&out, "%s audit verify %s --broker-key %s --json", RETE, f.store, f.pub), 0);
	j = json_loads(out, 0, NULL);
	assert_non_null(j);
	assert_true(json_is_true(json_object_get(j, "holds")));
	assert_string_equal(json_string_value(json_object_get(j, "verdict")), "holds");
	assert_int_equal(json_integer_value(json_object_get(j, "entriesChecked")), 12);
	assert_int_equal(json_integer_value(json_object_get(j, "checkpointsChecked")), 2);
	assert_int_equal(json_integer_value(json_object_get(j, "referralsCompared")), 9);
	assert_string_equal(json_string_value(json_object_get(j, "origin")), ORIGIN);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(j, "latestCheckpoint"), "root")),
	    root64);
	json_decref(j);
	free(out);

	/* a wrong broker key: exit 1 */
	{
		char other[4096];
		assert_int_equal(rete_keyfile_write(f.root, "other.mantova", kother, false, &m),
				 RETE_OK);
		snprintf(other, sizeof(other), "%s/other.mantova.pub", f.root);
		assert_int_equal(
		    run(&out, "%s audit verify %s --broker-key %s", RETE, f.store, other), 1);
		assert_non_null(strstr(out, "entry 0:"));
		free(out);
	}
	/* usage errors: exit 2 */
	assert_int_equal(run(&out, "%s audit verify %s 2>&1", RETE, f.store), 2);
	assert_non_null(strstr(out, "--broker-key"));
	free(out);
	assert_int_equal(
	    run(&out, "%s audit verify %s/nowhere --broker-key %s 2>&1", RETE, f.root, f.pub), 2);
	free(out);
	assert_int_equal(run(&out, "%s audit --help", RETE), 0);
	assert_non_null(strstr(out, "check-proof"));
	/* what --no-replay saves, as docs/auditing.md measured it (bench/
	 * audit_bench: 56 against 60-63 us of CPU per entry); --help said
	 * "about half the work" */
	assert_null(strstr(out, "half"));
	assert_non_null(strstr(out, "about a tenth"));
	free(out);
	/* rete checkpoint prints the note as stored: with the cosignatures */
	assert_int_equal(run(&out, "%s checkpoint --help", RETE), 0);
	assert_non_null(strstr(out, "cosignature"));
	free(out);
	free(root64);
	fx_free(&f);
}

static void test_verify_flipped_byte(void **state)
{
	struct fx f;
	char *out = NULL, path[4096], *data;
	size_t len;
	int n = 0;
	(void)state;

	fx_build(&f);
	rete_store_close(&f.s);
	snprintf(path, sizeof(path), "%s/data.mdb", f.store);
	data = tu_read_file(path, &len);
	assert_non_null(data);
	for (size_t i = 0; i + 13 <= len; i++)
		if (memcmp(data + i, "staff-flip-01", 13) == 0) {
			data[i + 12] ^= 1;
			n++;
		}
	assert_true(n >= 1);
	assert_int_equal(tu_write_file(path, data, len), 0);
	free(data);
	assert_int_equal(run(&out, "%s audit verify %s --broker-key %s", RETE, f.store, f.pub), 1);
	assert_non_null(strstr(out, "the log does not verify: entry 1:"));
	free(out);
	fx_free(&f);
}

/* Rows of the case index deleted behind the store's back hide entries
 * from `rete audit log --case` (and the timeline); verify fails and names
 * the database, the case and the entry, as text and as --json. */
static void test_verify_case_index_deleted(void **state)
{
	struct fx f;
	char *out = NULL;
	json_t *j;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	(void)state;

	fx_build(&f);
	rete_store_close(&f.s);
	assert_int_equal(run(&out, "%s audit log %s --case case-9 | wc -l", RETE, f.store), 0);
	assert_int_equal(atoi(out), 11);
	free(out);
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 32), 0);
	assert_int_equal(mdb_env_open(env, f.store, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "cases", 0, &dbi), 0);
	for (uint64_t i = 5; i <= 7; i++) {
		uint8_t k[16] = "case-9";
		k[14] = (uint8_t)i; /* "case-9" "\0" BE64 index */
		MDB_val key = {15, k};
		assert_int_equal(mdb_del(txn, dbi, &key, NULL), 0);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	assert_int_equal(run(&out, "%s audit log %s --case case-9 | wc -l", RETE, f.store), 0);
	assert_int_equal(atoi(out), 8);
	free(out);

	assert_int_equal(run(&out, "%s audit verify %s --broker-key %s", RETE, f.store, f.pub), 1);
	print_message("%s", out);
	assert_non_null(strstr(out, "the case index (database 'cases'): the row for case "
				    "'case-9', entry 5 is missing; the log gives it"));
	free(out);
	assert_int_equal(
	    run(&out, "%s audit verify %s --broker-key %s --json", RETE, f.store, f.pub), 1);
	j = json_loads(out, 0, NULL);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "verdict")), "fails");
	assert_non_null(
	    strstr(json_string_value(json_object_get(j, "reason")), "database 'cases'"));
	json_decref(j);
	free(out);
	fx_free(&f);
}

static void test_backup_put_back(void **state)
{
	struct fx f;
	char *out = NULL, bk[4096], note[4096], *newer;
	(void)state;

	fx_build(&f);
	snprintf(bk, sizeof(bk), "%s/backup", f.root);
	snprintf(note, sizeof(note), "%s/newer.ckpt", f.root);
	/* a hot backup while the writer has the store open */
	assert_int_equal(run(&out, "%s store backup %s %s", RETE, f.store, bk), 0);
	assert_non_null(strstr(out, "12 log entries"));
	free(out);
	tu_append(f.s, &f.t, referral("r10", "staff-0010", ks));
	tu_append(f.s, &f.t, referral("r11", "staff-0011", ks));
	newer = tu_checkpoint(f.s, ORIGIN, kb);
	assert_int_equal(run(&out, "%s checkpoint %s > %s", RETE, f.store, note), 0);
	free(out);
	out = tu_read_file(note, NULL);
	assert_string_equal(out, newer); /* printed exactly */
	free(out);
	/* the live store extends it; the backup (12 entries) does not */
	assert_int_equal(run(&out, "%s audit verify %s --broker-key %s --since-checkpoint %s", RETE,
			     f.store, f.pub, note),
			 0);
	free(out);
	assert_int_equal(run(&out, "%s audit verify %s --broker-key %s --since-checkpoint %s", RETE,
			     bk, f.pub, note),
			 1);
	assert_non_null(strstr(out, "holds 12 entries"));
	assert_non_null(strstr(out, "has size 14"));
	free(out);
	/* a backup into a folder that is not empty is refused */
	assert_int_equal(run(&out, "%s store backup %s %s 2>&1", RETE, f.store, bk), 2);
	free(out);
	/* no checkpoint in an empty store: exit 1 */
	{
		rete_store *e = NULL;
		char ed[4096];
		rete_msg m = {{0}};
		snprintf(ed, sizeof(ed), "%s/empty", f.root);
		assert_int_equal(rete_store_open(&e, ed, RETE_STORE_CREATE, &m), RETE_OK);
		rete_store_close(&e);
		assert_int_equal(run(&out, "%s checkpoint %s 2>&1", RETE, ed), 1);
		assert_non_null(strstr(out, "no checkpoint"));
		free(out);
	}
	free(newer);
	fx_free(&f);
}

/* ---- verify while another process appends --------------------------------------- */

static volatile sig_atomic_t child_stop;

static void on_term(int sig)
{
	(void)sig;
	child_stop = 1;
}

/* child_writer appends batches and checkpoints until SIGTERM; writes one
 * byte to fd after its first commit. Never returns. */
static void child_writer(const char *dir, int fd)
{
	rete_store *s = NULL;
	rete_msg m = {{0}};
	int64_t t = 1790000100000;
	char id[32];
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	if (rete_store_open(&s, dir, 0, &m) != RETE_OK)
		_exit(3);
	for (int round = 0; !child_stop; round++) {
		rete_store_op ops[20];
		rete_buf b[20];
		uint64_t size;
		uint8_t root[RETE_MERKLE_HASH];
		char *note = NULL;
		memset(ops, 0, sizeof(ops));
		for (int i = 0; i < 20; i++) {
			snprintf(id, sizeof(id), "w%d-%d", round, i);
			b[i] = referral(id, "staff-w", ks);
			ops[i].kind = RETE_STORE_OP_APPEND;
			ops[i].in.signed_message = b[i].data;
			ops[i].in.len = b[i].len;
			ops[i].in.logged_at = t += 10;
		}
		if (rete_store_commit(s, ops, 20, &m) != RETE_OK)
			_exit(4);
		for (int i = 0; i < 20; i++)
			rete_buf_free(&b[i]);
		if (rete_store_size(s, NULL, &size, &m) != RETE_OK ||
		    rete_store_root(s, NULL, size, root, &m) != RETE_OK ||
		    rete_checkpoint_sign(ORIGIN, size, root, kb, &note, &m) != RETE_OK ||
		    rete_store_checkpoint_put(s, size, note, &m) != RETE_OK)
			_exit(5);
		free(note);
		if (round == 0 && (write(fd, "x", 1) != 1 || close(fd) != 0))
			_exit(6);
	}
	rete_store_close(&s);
	_exit(0);
}

static void test_verify_while_appending(void **state)
{
	struct fx f;
	char *out = NULL;
	int pfd[2], status;
	char c;
	pid_t pid;
	uint64_t before, after, verified;
	rete_store *s = NULL;
	rete_msg m = {{0}};
	(void)state;

	fx_build(&f);
	rete_store_close(&f.s); /* never carry a store across fork() */
	assert_int_equal(pipe(pfd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(pfd[0]);
		child_writer(f.store, pfd[1]);
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &c, 1), 1); /* the child has committed once */
	close(pfd[0]);
	assert_int_equal(rete_store_open(&s, f.store, RETE_STORE_RDONLY, &m), RETE_OK);
	assert_int_equal(rete_store_size(s, NULL, &before, &m), RETE_OK);
	rete_store_close(&s);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(
		    run(&out, "%s audit verify %s --broker-key %s --json", RETE, f.store, f.pub),
		    0);
		{
			json_t *j = json_loads(out, 0, NULL);
			assert_non_null(j);
			verified =
			    (uint64_t)json_integer_value(json_object_get(j, "entriesChecked"));
			assert_true(verified >= before);
			json_decref(j);
		}
		free(out);
	}
	assert_int_equal(kill(pid, SIGTERM), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(rete_store_open(&s, f.store, RETE_STORE_RDONLY, &m), RETE_OK);
	assert_int_equal(rete_store_size(s, NULL, &after, &m), RETE_OK);
	rete_store_close(&s);
	assert_true(after >= before + 20);
	/* and the final log holds too */
	assert_int_equal(run(&out, "%s audit verify %s --broker-key %s", RETE, f.store, f.pub), 0);
	free(out);
	fx_free(&f);
}

/* ---- proofs ------------------------------------------------------------------------ */

/* tamper rewrites the first occurrence of key's string value in file,
 * flipping one base64 character. */
static void tamper(const char *file, const char *key)
{
	json_t *j = json_load_file(file, 0, NULL);
	json_t *v;
	char *s;
	assert_non_null(j);
	v = json_object_get(j, key);
	if (json_is_array(v))
		v = json_array_get(v, 0);
	assert_true(json_is_string(v));
	s = strdup(json_string_value(v));
	s[0] = s[0] == 'A' ? 'B' : 'A';
	json_string_set(v, s);
	free(s);
	assert_int_equal(json_dump_file(j, file, 0), 0);
	json_decref(j);
}

/* --origin with a name no log can have (empty, a space, a '+', a control
 * character, longer than 255 bytes: the checkpoint's key name cannot hold
 * it) is a usage error, exit 2 naming --origin, as every other bad option
 * value; a possible name that is not the log's is the log's failure, 1. */
static void test_origin_impossible(void **state)
{
	/* ... and, as the checkpoints' key name check has it, invalid UTF-8
	 * (rete\xff) and a C1 control character (U+0085) */
	static const char *const bad[] = {"''",
					  "'two words'",
					  "'a+b'",
					  "\"$(printf 'a\\tb')\"",
					  "$(printf '%0300d' 0)",
					  "\"$(printf 'rete\\377')\"",
					  "\"$(printf 'rete\\302\\205x')\""};
	char *out = NULL, pf[4096], ck[4096];
	struct fx f;
	(void)state;

	fx_build(&f);
	/* a checkpoint and a proof that hold, for check-proof */
	assert_int_equal(run(&out, "%s checkpoint %s > %s", RETE, f.store,
			     tu_path(ck, sizeof(ck), "%s/latest.ckpt", f.root)),
			 0);
	free(out);
	assert_int_equal(run(&out, "%s audit proof %s --index 3 > %s", RETE, f.store,
			     tu_path(pf, sizeof(pf), "%s/incl.json", f.root)),
			 0);
	free(out);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = run(&out, "%s audit verify %s --broker-key %s --origin %s 2>&1", RETE,
			     f.store, f.pub, bad[i]);
		if (rc != 2 || strstr(out, "--origin") == NULL)
			fail_msg("audit verify --origin %s: exit %d: %s", bad[i], rc, out);
		free(out);
		rc = run(&out,
			 "%s audit check-proof %s --checkpoint %s --broker-key %s --origin %s 2>&1",
			 RETE, pf, ck, f.pub, bad[i]);
		if (rc != 2 || strstr(out, "--origin") == NULL)
			fail_msg("audit check-proof --origin %s: exit %d: %s", bad[i], rc, out);
		free(out);
	}
	/* a name a log may have, not this one's: the log does not hold */
	assert_int_equal(run(&out,
			     "%s audit verify %s --broker-key %s --origin other.example/x 2>&1",
			     RETE, f.store, f.pub),
			 1);
	free(out);
	assert_int_equal(run(&out,
			     "%s audit check-proof %s --checkpoint %s --broker-key %s --origin "
			     "other.example/x 2>&1",
			     RETE, pf, ck, f.pub),
			 1);
	free(out);
	fx_free(&f);
}

static void test_proofs(void **state)
{
	struct fx f;
	char *out = NULL, pf[4096], cf[4096], ck[4096], ck5[4096];
	json_t *j;
	(void)state;

	fx_build(&f);
	snprintf(pf, sizeof(pf), "%s/incl.json", f.root);
	snprintf(cf, sizeof(cf), "%s/cons.json", f.root);
	snprintf(ck, sizeof(ck), "%s/latest.ckpt", f.root);
	snprintf(ck5, sizeof(ck5), "%s/five.ckpt", f.root);
	assert_int_equal(run(&out, "%s checkpoint %s > %s", RETE, f.store, ck), 0);
	free(out);

	/* inclusion: default size = the latest checkpoint's (12) */
	assert_int_equal(run(&out, "%s audit proof %s --index 3 > %s", RETE, f.store, pf), 0);
	free(out);
	j = json_load_file(pf, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "leafIdx")), 3);
	assert_int_equal(json_integer_value(json_object_get(j, "treeSize")), 12);
	assert_int_equal(json_array_size(json_object_get(j, "proof")), 4);
	assert_non_null(json_string_value(json_object_get(j, "checkpoint")));
	json_decref(j);
	assert_int_equal(run(&out, "%s audit check-proof %s --checkpoint %s --broker-key %s", RETE,
			     pf, ck, f.pub),
			 0);
	assert_non_null(strstr(out, "proof holds: entry 3"));
	free(out);
	/* a proof for size 5 does not match the checkpoint of size 12 */
	assert_int_equal(run(&out, "%s audit proof %s --index 3 --size 5 > %s", RETE, f.store, pf),
			 0);
	free(out);
	assert_int_equal(run(&out, "%s audit check-proof %s --checkpoint %s --broker-key %s", RETE,
			     pf, ck, f.pub),
			 1);
	assert_non_null(strstr(out, "treeSize is 5 but the checkpoint's size is 12"));
	free(out);
	/* ... but it does match the stored checkpoint of size 5, which it carries */
	j = json_load_file(pf, 0, NULL);
	assert_int_equal(tu_write_file(ck5, json_string_value(json_object_get(j, "checkpoint")),
				       strlen(json_string_value(json_object_get(j, "checkpoint")))),
			 0);
	json_decref(j);
	assert_int_equal(run(&out, "%s audit check-proof %s --checkpoint %s --broker-key %s", RETE,
			     pf, ck5, f.pub),
			 0);
	free(out);
	/* tampered: a proof hash, the leaf hash */
	tamper(pf, "proof");
	assert_int_equal(run(&out, "%s audit check-proof %s --checkpoint %s --broker-key %s", RETE,
			     pf, ck5, f.pub),
			 1);
	assert_non_null(strstr(out, "does not hold"));
	free(out);
	assert_int_equal(run(&out, "%s audit proof %s --index 3 --size 5 > %s", RETE, f.store, pf),
			 0);
	free(out);
	tamper(pf, "leafHash");
	assert_int_equal(run(&out, "%s audit check-proof %s --checkpoint %s --broker-key %s", RETE,
			     pf, ck5, f.pub),
			 1);
	free(out);

	/* consistency 5 -> 12 */
	assert_int_equal(
	    run(&out, "%s audit consistency %s --from 5 --to 12 > %s", RETE, f.store, cf), 0);
	free(out);
	j = json_load_file(cf, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "size1")), 5);
	assert_int_equal(json_integer_value(json_object_get(j, "size2")), 12);
	assert_true(json_array_size(json_object_get(j, "proof")) > 0);
	json_decref(j);
	assert_int_equal(run(&out, "%s audit check-proof %s --checkpoint %s --broker-key %s", RETE,
			     cf, ck, f.pub),
			 0);
	assert_non_null(strstr(out, "extends its tree of size 5"));
	free(out);
	tamper(cf, "root1");
	assert_int_equal(run(&out, "%s audit check-proof %s --checkpoint %s --broker-key %s", RETE,
			     cf, ck, f.pub),
			 1);
	free(out);
	/* a checkpoint signed by another key is refused */
	{
		char *bad = NULL, badf[4096];
		uint8_t root[RETE_MERKLE_HASH];
		rete_msg m = {{0}};
		assert_int_equal(rete_store_root(f.s, NULL, 12, root, &m), RETE_OK);
		assert_int_equal(rete_checkpoint_sign(ORIGIN, 12, root, kother, &bad, &m), RETE_OK);
		snprintf(badf, sizeof(badf), "%s/bad.ckpt", f.root);
		assert_int_equal(tu_write_file(badf, bad, strlen(bad)), 0);
		free(bad);
		assert_int_equal(
		    run(&out, "%s audit consistency %s --from 5 --to 12 > %s", RETE, f.store, cf),
		    0);
		free(out);
		assert_int_equal(run(&out,
				     "%s audit check-proof %s --checkpoint %s --broker-key %s",
				     RETE, cf, badf, f.pub),
				 1);
		assert_non_null(strstr(out, "does not verify"));
		free(out);
	}
	/* a proof file larger than any proof (a sparse 40 MiB file here;
	 * /dev/zero alike) is refused before it is read into memory: main
	 * read it all (from /dev/zero until memory ran out) */
	{
		char big[4096];
		snprintf(big, sizeof(big), "%s/big.json", f.root);
		assert_int_equal(run(&out, "truncate -s 40M %s", big), 0);
		free(out);
		assert_int_equal(run(&out,
				     "%s audit check-proof %s --checkpoint %s --broker-key %s 2>&1",
				     RETE, big, ck, f.pub),
				 2);
		assert_non_null(strstr(out, "larger than"));
		free(out);
	}
	/* out of range: usage */
	assert_int_equal(run(&out, "%s audit proof %s --index 12 2>&1", RETE, f.store), 2);
	free(out);
	assert_int_equal(run(&out, "%s audit consistency %s --from 0 --to 3 2>&1", RETE, f.store),
			 2);
	free(out);
	fx_free(&f);
}

/* An earlier checkpoint file that holds no note — empty (what `rete
 * checkpoint STORE > last.ckpt` leaves when the store had no checkpoint
 * yet) or a folder — is an input that cannot be read (exit 2, naming the
 * file), not a log that fails (exit 1). On main verify printed "the log
 * does not verify: the checkpoint given to compare with: the checkpoint
 * note is empty" and exited 1, and check-proof said "the checkpoint in
 * ... is not a checkpoint note" with exit 1. */
static void test_unreadable_checkpoint_file(void **state)
{
	struct fx f;
	char *out = NULL, empty[4096], pf[4096], notck[4096], bin[4096];
	(void)state;

	fx_build(&f);
	snprintf(empty, sizeof(empty), "%s/last.ckpt", f.root);
	snprintf(pf, sizeof(pf), "%s/incl.json", f.root);
	assert_int_equal(tu_write_file(empty, "", 0), 0);
	assert_int_equal(run(&out, "%s audit proof %s --index 3 > %s", RETE, f.store, pf), 0);
	free(out);
	/* a file that is plainly not a checkpoint note (a passwd file,
	 * bytes, a proof given in the note's place) is the input's fault,
	 * not the log's: exit 2 with a sentence naming the file, never "the
	 * log does not verify" (exit 1, a false tamper alarm); a damaged
	 * note is judged (test_damaged_checkpoint_note) */
	snprintf(notck, sizeof(notck), "%s/passwd", f.root);
	snprintf(bin, sizeof(bin), "%s/bytes.ckpt", f.root);
	const char *pw = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/bin/sh\n";
	assert_int_equal(tu_write_file(notck, pw, strlen(pw)), 0);
	assert_int_equal(tu_write_file(bin,
				       "\x7f"
				       "ELF\x02\x01\x01\x00\xff\xfe\n\x01\n",
				       13),
			 0);
	const char *files[5] = {empty, f.root, notck, bin, pf};
	for (int i = 0; i < 5; i++) {
		/* the last three are read, then found not to be notes */
		const char *said = i >= 2 ? "not a checkpoint note" : files[i];
		assert_int_equal(run(&out,
				     "%s audit verify %s --broker-key %s --since-checkpoint %s",
				     RETE, f.store, f.pub, files[i]),
				 2);
		assert_null(strstr(out, "does not verify"));
		assert_non_null(strstr(out, files[i]));
		assert_non_null(strstr(out, said));
		free(out);
		assert_int_equal(run(&out,
				     "%s audit verify %s --broker-key %s --since-checkpoint %s "
				     "--json",
				     RETE, f.store, f.pub, files[i]),
				 2);
		free(out);
		assert_int_equal(run(&out,
				     "%s audit check-proof %s --checkpoint %s --broker-key %s",
				     RETE, pf, files[i], f.pub),
				 2);
		assert_non_null(strstr(out, files[i]));
		assert_non_null(strstr(out, said));
		free(out);
	}
	/* a JSON file that is not a proof (an array, an object with a key no
	 * proof has, an empty object) is an input error too, as a file that
	 * is not JSON is; the checkpoint is a good one */
	char *ck = NULL, ckf[4096];
	snprintf(ckf, sizeof(ckf), "%s/good.ckpt", f.root);
	assert_int_equal(run(&ck, "%s checkpoint %s", RETE, f.store), 0);
	assert_int_equal(tu_write_file(ckf, ck, strlen(ck)), 0);
	free(ck);
	const char *notproof[] = {"[1, 2]", "{\"hello\": 1}", "{}"};
	for (int i = 0; i < 3; i++) {
		assert_int_equal(tu_write_file(pf, notproof[i], strlen(notproof[i])), 0);
		assert_int_equal(run(&out,
				     "%s audit check-proof %s --checkpoint %s --broker-key %s",
				     RETE, pf, ckf, f.pub),
				 2);
		assert_non_null(strstr(out, "is not a proof file"));
		assert_null(strstr(out, "does not hold"));
		if (i == 1 && strstr(out, "desc") == NULL) /* the keys a proof may have */
			fail_msg("the keys a proof has, without desc: %s", out);
		free(out);
	}
	fx_free(&f);
}

/* put_variant writes the note at text (len bytes) into DIR/NAME.ckpt
 * (path into path). */
static void put_variant(const struct fx *f, const char *name, const char *text, size_t len,
			char *path, size_t plen)
{
	snprintf(path, plen, "%s/%s.ckpt", f->root, name);
	assert_int_equal(tu_write_file(path, text, len), 0);
}

/* A checkpoint note of this log that is damaged (the reviewer's table:
 * its final newline dropped, its signature cut or removed, its root
 * garbled or another, its size with a leading zero or larger, CRLF line
 * ends) does not hold: exit 1 for verify --since-checkpoint and for
 * check-proof --checkpoint, as before the note's form was checked first
 * (the branch made them exit 2, an input error). Untouched, it holds. */
static void test_damaged_checkpoint_note(void **state)
{
	struct fx f;
	char *out = NULL, *good = NULL, pf[4096], path[4096], buf[4096];
	(void)state;

	fx_build(&f);
	snprintf(pf, sizeof(pf), "%s/incl.json", f.root);
	assert_int_equal(run(&out, "%s audit proof %s --index 0 > %s", RETE, f.store, pf), 0);
	free(out);
	assert_int_equal(run(&good, "%s checkpoint %s", RETE, f.store), 0);
	size_t len = strlen(good);
	/* the lines: origin, size, root, blank, signature */
	char *l2 = strchr(good, '\n') + 1, *l3 = strchr(l2, '\n') + 1;
	char *blank = strstr(good, "\n\n");
	assert_non_null(blank);
	struct {
		const char *name;
		size_t len;
		char text[4096];
	} v[9];
	int k = 0;
	/* nonl: the final newline lost */
	v[k].name = "nonl";
	v[k].len = len - 1;
	memcpy(v[k++].text, good, len - 1);
	/* cut: the signature's last character cut */
	v[k].name = "cut";
	memcpy(v[k].text, good, len - 2);
	v[k].text[len - 2] = '\n';
	v[k++].len = len - 1;
	/* nosig: the signature lines removed */
	v[k].name = "nosig";
	v[k].len = (size_t)(blank - good) + 2;
	memcpy(v[k].text, good, v[k].len);
	k++;
	/* garbroot: the root's first character garbled */
	v[k].name = "garbroot";
	memcpy(v[k].text, good, len);
	v[k].text[l3 - good] = '*';
	v[k++].len = len;
	/* otherroot: another root, well formed */
	v[k].name = "otherroot";
	v[k].len =
	    (size_t)snprintf(v[k].text, sizeof(v[k].text), "%.*s%s%s", (int)(l3 - good), good,
			     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", strchr(l3, '\n'));
	k++;
	/* zero: the size with a leading zero */
	v[k].name = "zero";
	v[k].len =
	    (size_t)snprintf(v[k].text, sizeof(v[k].text), "%.*s0%s", (int)(l2 - good), good, l2);
	k++;
	/* bigger: a larger size */
	v[k].name = "bigger";
	v[k].len = (size_t)snprintf(v[k].text, sizeof(v[k].text), "%.*s%llu%s", (int)(l2 - good),
				    good, strtoull(l2, NULL, 10) + 5, strchr(l2, '\n'));
	k++;
	/* crlf: every line ended by CR LF */
	v[k].name = "crlf";
	v[k].len = 0;
	for (size_t i = 0; i < len; i++) {
		if (good[i] == '\n')
			v[k].text[v[k].len++] = '\r';
		v[k].text[v[k].len++] = good[i];
	}
	k++;
	/* good: untouched */
	v[k].name = "good";
	v[k].len = len;
	memcpy(v[k++].text, good, len);
	free(good);
	for (int i = 0; i < k; i++) {
		int want = strcmp(v[i].name, "good") == 0 ? 0 : 1;
		put_variant(&f, v[i].name, v[i].text, v[i].len, path, sizeof(path));
		int rc = run(&out,
			     "%s audit verify %s --broker-key %s --since-checkpoint %s --no-replay",
			     RETE, f.store, f.pub, path);
		if (rc != want || (want == 1 && strstr(out, "the log does not verify") == NULL))
			fail_msg("verify --since-checkpoint %s: exit %d, expected %d: %s",
				 v[i].name, rc, want, out);
		free(out);
		rc = run(&out, "%s audit check-proof %s --checkpoint %s --broker-key %s", RETE, pf,
			 path, f.pub);
		if (rc != want)
			fail_msg("check-proof --checkpoint %s: exit %d, expected %d: %s", v[i].name,
				 rc, want, out);
		free(out);
	}
	/* --origin names the log: a note whose first line is the origin is
	 * judged, whatever follows */
	snprintf(buf, sizeof(buf), "%s\nfive\n", ORIGIN);
	put_variant(&f, "origin", buf, strlen(buf), path, sizeof(path));
	assert_int_equal(run(&out,
			     "%s audit check-proof %s --checkpoint %s --broker-key %s --origin %s",
			     RETE, pf, path, f.pub, ORIGIN),
			 1);
	free(out);
	assert_int_equal(run(&out, "%s audit check-proof %s --checkpoint %s --broker-key %s", RETE,
			     pf, path, f.pub),
			 2);
	free(out);
	fx_free(&f);
}

/* rete audit timeline --tz with a zone this machine does not know warned,
 * printed in UTC and exited 0, while rete report refuses it: now refused
 * the same way (exit 2, the zone named, nothing printed); a known one
 * still prints. */
static void test_timeline_unknown_zone(void **state)
{
	struct fx f;
	char *out = NULL, *rep = NULL;
	(void)state;

	fx_build(&f);
	assert_int_equal(run(&out, "%s audit timeline %s --case case-9 --tz Mars/X", RETE, f.store),
			 2);
	assert_non_null(strstr(out, "'Mars/X'"));
	assert_non_null(strstr(out, "not known"));
	assert_null(strstr(out, "its entries in log order"));
	/* the same sentence as rete report's, but for what the zone is for */
	assert_int_equal(run(&rep,
			     "%s report --store %s --from 2026-09-01 --to 2026-09-30 --tz Mars/X",
			     RETE, f.store),
			 2);
	const char *same = "time zone 'Mars/X' (--tz) is not known on this machine (no "
			   "/usr/share/zoneinfo/Mars/X)";
	if (strstr(out, same) == NULL || strstr(rep, same) == NULL)
		fail_msg("not the same sentence '%s':\ntimeline: %s\nreport: %s", same, out, rep);
	free(rep);
	free(out);
	assert_int_equal(
	    run(&out, "%s audit timeline %s --case case-9 --tz Europe/Rome", RETE, f.store), 0);
	assert_non_null(strstr(out, "times in Europe/Rome"));
	free(out);
	/* a machine without tzdata (TZDIR names where the C library looks
	 * for zones): the default zone is refused because the database is
	 * missing, and the sentence says so rather than "give a zone such as
	 * Europe/Rome" */
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s/no-zoneinfo", f.root);
	assert_int_equal(mkdir(tmp, 0755), 0);
	assert_int_equal(
	    run(&out, "TZDIR=%s %s audit timeline %s --case case-9", tmp, RETE, f.store), 2);
	if (strstr(out, "tzdata") == NULL || strstr(out, "such as Europe/Rome") != NULL)
		fail_msg("timeline without tzdata: %s", out);
	free(out);
	assert_int_equal(run(&rep,
			     "TZDIR=%s %s report --store %s --from 2026-09-01 --to 2026-09-30", tmp,
			     RETE, f.store),
			 2);
	if (strstr(rep, "tzdata") == NULL || strstr(rep, "such as Europe/Rome") != NULL)
		fail_msg("report without tzdata: %s", rep);
	free(rep);
	/* UTC needs no database */
	assert_int_equal(
	    run(&out, "TZDIR=%s %s audit timeline %s --case case-9 --tz UTC", tmp, RETE, f.store),
	    0);
	free(out);
	fx_free(&f);
}

/* rete report over a store with a time zone this machine does not know
 * (a typo: Europe/Rom) counted whole days in UTC while it labelled the
 * report with the zone given, and said nothing: on main exit 0 and
 * "timeZone": "Europe/Rom". Now exit 2 naming the zone; a known one
 * still reports. */
static void test_report_unknown_zone(void **state)
{
	struct fx f;
	char *out = NULL;
	(void)state;

	fx_build(&f);
	assert_int_equal(run(&out,
			     "%s report --store %s --from 2026-09-01 --to 2026-09-30 --tz "
			     "Europe/Rom --format json 2>&1",
			     RETE, f.store),
			 2);
	assert_non_null(strstr(out, "'Europe/Rom'"));
	assert_non_null(strstr(out, "not known"));
	assert_null(strstr(out, "\"timeZone\""));
	free(out);
	assert_int_equal(run(&out,
			     "%s report --store %s --from 2026-09-01 --to 2026-09-30 --tz "
			     "Europe/Rome --format json",
			     RETE, f.store),
			 0);
	assert_non_null(strstr(out, "\"timeZone\": \"Europe/Rome\""));
	free(out);
	assert_int_equal(run(&out,
			     "%s report --store %s --from 2026-09-01 --to 2026-09-30 --tz UTC",
			     RETE, f.store),
			 0);
	free(out);
	fx_free(&f);
}

/* The Italian CSV (età, capacità) starts with a UTF-8 byte order mark, as
 * the console's does, or Excel reads it in the PC's old code page; the
 * English one is ASCII and has none. */
static void test_report_csv_bom(void **state)
{
	struct fx f;
	char *out = NULL;
	(void)state;

	fx_build(&f);
	assert_int_equal(run(&out,
			     "%s report --store %s --from 2026-09-01 --to 2026-09-30 --lang it "
			     "--by age-band",
			     RETE, f.store),
			 0);
	if (memcmp(out, "\xEF\xBB\xBF", 3) != 0 || strstr(out, "et\xC3\xA0") == NULL)
		fail_msg("the Italian CSV does not start with a UTF-8 byte order mark: %.80s", out);
	free(out);
	assert_int_equal(run(&out,
			     "%s report --store %s --from 2026-09-01 --to 2026-09-30 --by age-band",
			     RETE, f.store),
			 0);
	assert_int_not_equal(memcmp(out, "\xEF\xBB\xBF", 3), 0);
	free(out);
	fx_free(&f);
}

static void test_log_lines(void **state)
{
	struct fx f;
	char *out = NULL, *line;
	json_t *j;
	int n = 0;
	(void)state;

	fx_build(&f);
	assert_int_equal(run(&out, "%s audit log %s --from 1 --to 2", RETE, f.store), 0);
	line = strtok(out, "\n");
	while (line != NULL) {
		j = json_loads(line, 0, NULL);
		assert_non_null(j);
		assert_int_equal(json_integer_value(json_object_get(j, "index")), 1 + n);
		if (n == 0) {
			assert_string_equal(json_string_value(json_object_get(j, "kind")),
					    "referral");
			assert_string_equal(json_string_value(json_object_get(j, "messageId")),
					    "r1");
			assert_string_equal(json_string_value(json_object_get(j, "status")),
					    "requested");
			assert_string_equal(json_string_value(json_object_get(j, "sender")),
					    SOCIAL);
			assert_string_equal(json_string_value(json_object_get(j, "recipient")),
					    CPI);
			assert_string_equal(json_string_value(json_object_get(j, "caseId")),
					    "case-9");
			assert_string_equal(json_string_value(json_object_get(j, "loggedAt")),
					    "2026-09-21T14:13:22Z");
		} else {
			assert_string_equal(json_string_value(json_object_get(j, "kind")),
					    "update");
			assert_string_equal(json_string_value(json_object_get(j, "referralId")),
					    "r1");
			assert_string_equal(json_string_value(json_object_get(j, "status")),
					    "accepted");
		}
		assert_null(json_object_get(j, "operator")); /* metadata only */
		json_decref(j);
		n++;
		line = strtok(NULL, "\n");
	}
	assert_int_equal(n, 2);
	free(out);
	/* the whole log, and one case */
	assert_int_equal(run(&out, "%s audit log %s | wc -l", RETE, f.store), 0);
	assert_int_equal(atoi(out), 12);
	free(out);
	assert_int_equal(run(&out, "%s audit log %s --case case-9 --from 3 | wc -l", RETE, f.store),
			 0);
	assert_int_equal(atoi(out), 9); /* entries 3..11 */
	free(out);
	assert_int_equal(run(&out, "%s audit log %s --case nobody | wc -l", RETE, f.store), 0);
	assert_int_equal(atoi(out), 0);
	free(out);
	assert_int_equal(run(&out, "%s audit timeline %s --case case-9", RETE, f.store), 0);
	assert_non_null(strstr(out, "update of r1 by "));
	assert_non_null(strstr(out, ": status accepted"));
	free(out);
	assert_int_equal(run(&out, "%s audit log %s --from x 2>&1", RETE, f.store), 2);
	free(out);
	fx_free(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_verify_good),
	    cmocka_unit_test(test_verify_flipped_byte),
	    cmocka_unit_test(test_verify_case_index_deleted),
	    cmocka_unit_test(test_backup_put_back),
	    cmocka_unit_test(test_verify_while_appending),
	    cmocka_unit_test(test_proofs),
	    cmocka_unit_test(test_origin_impossible),
	    cmocka_unit_test(test_unreadable_checkpoint_file),
	    cmocka_unit_test(test_damaged_checkpoint_note),
	    cmocka_unit_test(test_timeline_unknown_zone),
	    cmocka_unit_test(test_report_unknown_zone),
	    cmocka_unit_test(test_report_csv_bom),
	    cmocka_unit_test(test_log_lines),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
