/* test_identity.c — the log's identity in a store, the writer's lock
 * and the broker's state file (store/store_identity.h), without a broker:
 * init and check (origin, key, first entry), adoption of a store without
 * identity, the epoch an Epoch entry raises, the lock held by one opener
 * at a time, the state file's durable replacement. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint.h"
#include "store.h"
#include "store_identity.h"
#include "testutil.h"
#include "verify.h"

#define ORIGIN "rete.test/identity"

struct fx {
	char *dir;
	char store[600];
	rete_seckey *k, *other;
	rete_store *s;
	int64_t t;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->dir = tu_tmpdir("identity");
	assert_non_null(f->dir);
	snprintf(f->store, sizeof(f->store), "%s/store", f->dir);
	assert_int_equal(rete_seckey_generate(&f->k, NULL), RETE_OK);
	assert_int_equal(rete_seckey_generate(&f->other, NULL), RETE_OK);
	assert_int_equal(rete_store_open(&f->s, f->store, RETE_STORE_CREATE, NULL), RETE_OK);
	f->t = 1790000000000;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	rete_store_close(&f->s);
	rete_seckey_free(&f->k);
	rete_seckey_free(&f->other);
	tu_rmrf(f->dir);
	free(f->dir);
	free(f);
	return 0;
}

/* note_entry appends a case note of social.mantova with id `id`. */
static uint64_t note_entry(struct fx *f, const char *id)
{
	Rete__Message msg;
	Rete__CaseNote note;
	uint8_t sha[32] = {1};
	tu_message_init(&msg, id, "social.mantova", "cpi.mantova", "case-1", ORIGIN);
	rete__case_note__init(&note);
	note.kind = "meeting-minutes";
	note.private_sha256.data = sha;
	note.private_sha256.len = sizeof(sha);
	msg.body_case = RETE__MESSAGE__BODY_NOTE;
	msg.note = &note;
	return tu_append(f->s, &f->t, tu_sign(&msg, f->k));
}

/* epoch_op commits an Epoch entry starting epoch e; returns its status. */
static rete_store_status epoch_op(struct fx *f, uint32_t e, char *why, size_t len)
{
	char id[32];
	Rete__Message msg;
	Rete__Epoch ep;
	snprintf(id, sizeof(id), "epoch-%u", (unsigned)e);
	tu_message_init(&msg, id, "broker.test", "", "", ORIGIN);
	rete__epoch__init(&ep);
	ep.epoch = e;
	ep.previous_epoch = e - 1;
	ep.checkpoint = "not checked by the store\n";
	msg.body_case = RETE__MESSAGE__BODY_EPOCH;
	msg.epoch = &ep;
	rete_buf b = tu_sign(&msg, f->k);
	rete_store_op op;
	memset(&op, 0, sizeof(op));
	op.kind = RETE_STORE_OP_APPEND;
	op.in.signed_message = b.data;
	op.in.len = b.len;
	op.in.logged_at = f->t += 1000;
	assert_int_equal(rete_store_commit(f->s, &op, 1, NULL), RETE_OK);
	snprintf(why, len, "%s", op.error_text);
	rete_buf_free(&b);
	return op.status;
}

static void test_init_and_check(void **state)
{
	struct fx *f = *state;
	rete_store_identity id;
	bool adopted = true;
	rete_msg m = {{0}};

	/* an empty store is no log: the sentence says --init */
	assert_int_equal(
	    rete_store_identity_check(f->s, ORIGIN, &f->k->pub, "b.ini", &adopted, &id, &m),
	    RETE_ENOENT);
	assert_non_null(strstr(m.text, "--init"));
	assert_int_equal(rete_store_identity_init(f->s, ORIGIN, &f->k->pub, &m), RETE_OK);
	/* again before the first entry (an --init that stopped early): fine;
	 * with another origin: not */
	assert_int_equal(rete_store_identity_init(f->s, ORIGIN, &f->k->pub, &m), RETE_OK);
	assert_int_equal(rete_store_identity_init(f->s, "rete.test/other", &f->k->pub, &m),
			 RETE_EEXIST);
	assert_int_equal(
	    rete_store_identity_check(f->s, ORIGIN, &f->k->pub, "b.ini", &adopted, &id, &m),
	    RETE_OK);
	assert_false(adopted);
	assert_int_equal(id.schema, RETE_STORE_SCHEMA);
	assert_true(id.recorded);
	assert_int_equal(id.epoch, 1);
	assert_false(id.have_first);

	/* the first entry's leaf hash is recorded with it */
	note_entry(f, "n-1");
	uint8_t leaf[RETE_MERKLE_HASH];
	assert_int_equal(rete_store_leaf_hash(f->s, NULL, 0, leaf, NULL), RETE_OK);
	assert_int_equal(rete_store_identity_get(f->s, NULL, &id, NULL), RETE_OK);
	assert_true(id.have_first);
	assert_memory_equal(id.first_entry, leaf, sizeof(leaf));
	assert_int_equal(id.size, 1);

	/* another origin, another key: refused, both named */
	assert_int_equal(rete_store_identity_check(f->s, "rete.test/other", &f->k->pub, "b.ini",
						   &adopted, NULL, &m),
			 RETE_EINVAL);
	assert_non_null(strstr(m.text, "origin '" ORIGIN "'"));
	assert_non_null(strstr(m.text, "b.ini says origin = rete.test/other"));
	char b64[64];
	sodium_bin2base64(b64, sizeof(b64), f->other->pub.ed, RETE_PK_LEN,
			  sodium_base64_VARIANT_ORIGINAL);
	assert_int_equal(
	    rete_store_identity_check(f->s, ORIGIN, &f->other->pub, "b.ini", &adopted, NULL, &m),
	    RETE_EINVAL);
	assert_non_null(strstr(m.text, b64));
	/* and --init is not a reset */
	assert_int_equal(rete_store_identity_init(f->s, ORIGIN, &f->k->pub, &m), RETE_EEXIST);
	assert_non_null(strstr(m.text, "already holds a log"));
}

static void test_adopt(void **state)
{
	struct fx *f = *state;
	rete_store_identity id;
	bool adopted = false;
	rete_msg m = {{0}};

	/* a log written without identity (as an older rete did) */
	note_entry(f, "n-1");
	note_entry(f, "n-2");
	free(tu_checkpoint(f->s, ORIGIN, f->k));
	assert_int_equal(rete_store_identity_get(f->s, NULL, &id, NULL), RETE_OK);
	assert_false(id.recorded);
	/* not by a configuration whose key or origin did not sign it */
	assert_int_equal(
	    rete_store_identity_check(f->s, ORIGIN, &f->other->pub, "b.ini", &adopted, NULL, &m),
	    RETE_EINVAL);
	assert_non_null(strstr(m.text, "records no identity yet"));
	assert_int_equal(rete_store_identity_check(f->s, "rete.test/other", &f->k->pub, "b.ini",
						   &adopted, NULL, &m),
			 RETE_EINVAL);
	assert_false(adopted);
	/* by the one that did */
	assert_int_equal(
	    rete_store_identity_check(f->s, ORIGIN, &f->k->pub, "b.ini", &adopted, &id, &m),
	    RETE_OK);
	assert_true(adopted);
	assert_true(id.recorded && id.have_first);
	assert_int_equal(id.schema, RETE_STORE_SCHEMA);
	assert_string_equal(id.origin, ORIGIN);
	/* once */
	assert_int_equal(
	    rete_store_identity_check(f->s, ORIGIN, &f->k->pub, "b.ini", &adopted, &id, &m),
	    RETE_OK);
	assert_false(adopted);
}

static void test_epoch_entry(void **state)
{
	struct fx *f = *state;
	rete_store_identity id;
	char why[512];

	assert_int_equal(rete_store_identity_init(f->s, ORIGIN, &f->k->pub, NULL), RETE_OK);
	note_entry(f, "n-1");
	assert_int_equal(epoch_op(f, 2, why, sizeof(why)), RETE_STORE_ACCEPTED);
	assert_int_equal(rete_store_identity_get(f->s, NULL, &id, NULL), RETE_OK);
	assert_int_equal(id.epoch, 2);
	assert_int_equal(id.size, 2);
	/* an epoch never comes back: the same or a lower one is refused */
	note_entry(f, "n-2");
	assert_int_equal(epoch_op(f, 2, why, sizeof(why)), RETE_STORE_DUPLICATE);
	assert_int_equal(epoch_op(f, 1, why, sizeof(why)), RETE_STORE_REFUSED);
	assert_non_null(strstr(why, "already in epoch 2"));
	assert_int_equal(epoch_op(f, 5, why, sizeof(why)), RETE_STORE_ACCEPTED);
	assert_int_equal(rete_store_identity_get(f->s, NULL, &id, NULL), RETE_OK);
	assert_int_equal(id.epoch, 5);
}

static void test_lock(void **state)
{
	struct fx *f = *state;
	rete_folder_lock lk = RETE_FOLDER_LOCK_NONE, lk2 = RETE_FOLDER_LOCK_NONE;
	rete_msg m = {{0}};
	char pid[32], path[700];

	assert_int_equal(rete_store_lock(f->store, &lk, &m), RETE_OK);
	assert_true(lk.fl_dir >= 0 && lk.fl_file >= 0);
	assert_true(rete_store_served(f->store));
	/* flock belongs to the open file: a second open, even here, is refused */
	assert_int_equal(rete_store_lock(f->store, &lk2, &m), RETE_EEXIST);
	assert_int_equal(lk2.fl_dir, -1);
	assert_int_equal(lk2.fl_file, -1);
	snprintf(pid, sizeof(pid), "pid %ld", (long)getpid());
	assert_non_null(strstr(m.text, pid));
	assert_non_null(strstr(m.text, "in use by another broker"));
	/* the lock file deleted away: the folder's lock still refuses, and
	 * the holder's pid is still named */
	snprintf(path, sizeof(path), "%s/rete-broker.lock", f->store);
	assert_int_equal(unlink(path), 0);
	assert_true(rete_store_served(f->store));
	assert_int_equal(rete_store_lock(f->store, &lk2, &m), RETE_EEXIST);
	assert_non_null(strstr(m.text, pid));
	rete_store_unlock(&lk);
	assert_int_equal(lk.fl_dir, -1);
	assert_int_equal(lk.fl_file, -1);
	rete_store_unlock(&lk); /* twice is fine */
	assert_false(rete_store_served(f->store));
	/* a rete 0.7.0 broker locks the file alone: still excluded both ways */
	int old = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	assert_true(old >= 0);
	assert_int_equal(flock(old, LOCK_EX | LOCK_NB), 0);
	assert_true(rete_store_served(f->store));
	assert_int_equal(rete_store_lock(f->store, &lk2, &m), RETE_EEXIST);
	close(old);
	assert_int_equal(rete_store_lock(f->store, &lk2, &m), RETE_OK);
	old = open(path, O_RDWR | O_CLOEXEC);
	assert_true(old >= 0);
	assert_int_not_equal(flock(old, LOCK_EX | LOCK_NB), 0);
	close(old);
	rete_store_unlock(&lk2);
}

static void test_state_file(void **state)
{
	struct fx *f = *state;
	char path[700], buf[700], *note = NULL;
	rete_msg m = {{0}};

	assert_string_equal(rete_store_state_path("/var/lib/x/store//", buf, sizeof(buf)),
			    "/var/lib/x/store.state");
	assert_string_equal(rete_store_state_path("store", buf, sizeof(buf)), "store.state");
	assert_null(rete_store_state_path("store", buf, 8));

	snprintf(path, sizeof(path), "%s/store.state", f->dir);
	assert_int_equal(rete_store_state_read(path, &note, &m), RETE_ENOENT);
	assert_null(note);
	assert_int_equal(rete_store_state_write(path, "first\n", &m), RETE_OK);
	assert_int_equal(rete_store_state_write(path, "second note\n", &m), RETE_OK);
	assert_int_equal(rete_store_state_read(path, &note, &m), RETE_OK);
	assert_string_equal(note, "second note\n");
	free(note);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(buf, sizeof(buf), "%s.tmp", path);
	assert_int_not_equal(access(buf, F_OK), 0); /* nothing left behind */
	/* a folder that does not exist: a sentence naming the file */
	snprintf(buf, sizeof(buf), "%s/none/store.state", f->dir);
	assert_int_equal(rete_store_state_write(buf, "x\n", &m), RETE_EIO);
	assert_non_null(strstr(m.text, buf));
}

/* ---- what the auditor checks of epochs (store/verify.c) ----------------- */

/* dir_entry appends an empty Directory (a broker body) with serial n. */
static void dir_entry(struct fx *f, uint64_t n)
{
	char id[32];
	Rete__Message msg;
	Rete__Directory d = RETE__DIRECTORY__INIT;
	snprintf(id, sizeof(id), "directory-%llu", (unsigned long long)n);
	tu_message_init(&msg, id, "broker.test", "", "", ORIGIN);
	d.serial = n;
	d.time_zone = "Europe/Rome";
	msg.body_case = RETE__MESSAGE__BODY_DIRECTORY;
	msg.directory = &d;
	tu_append(f->s, &f->t, tu_sign(&msg, f->k));
}

/* epoch_entry appends an Epoch entry starting epoch e that records note. */
static void epoch_entry(struct fx *f, uint32_t e, const char *note)
{
	char id[32];
	Rete__Message msg;
	Rete__Epoch ep;
	snprintf(id, sizeof(id), "epoch-%u", (unsigned)e);
	tu_message_init(&msg, id, "broker.test", "", "", ORIGIN);
	rete__epoch__init(&ep);
	ep.epoch = e;
	ep.previous_epoch = e - 1;
	ep.checkpoint = (char *)note;
	msg.body_case = RETE__MESSAGE__BODY_EPOCH;
	msg.epoch = &ep;
	tu_append(f->s, &f->t, tu_sign(&msg, f->k));
}

/* checkpoint_epoch signs and stores the store's current size in epoch e. */
static void checkpoint_epoch(struct fx *f, uint32_t e)
{
	uint64_t size;
	uint8_t root[RETE_MERKLE_HASH];
	char *note = NULL;
	assert_int_equal(rete_store_size(f->s, NULL, &size, NULL), RETE_OK);
	assert_int_equal(rete_store_root(f->s, NULL, size, root, NULL), RETE_OK);
	assert_int_equal(rete_checkpoint_sign_epoch(ORIGIN, size, root, e, f->k, &note, NULL),
			 RETE_OK);
	assert_int_equal(rete_store_checkpoint_put(f->s, size, note, NULL), RETE_OK);
	free(note);
}

static rete_err verify(struct fx *f, rete_verify_report *rep)
{
	rete_verify_options o;
	memset(&o, 0, sizeof(o));
	o.broker_key = f->k->pub;
	o.origin = ORIGIN;
	o.replay = true;
	o.threads = 2;
	return rete_verify_log(f->s, &o, rep, NULL);
}

static void test_verify_epoch_too_short(void **state)
{
	struct fx *f = *state;
	rete_verify_report rep;

	/* checkpoint 2, one more entry, then an epoch entry at index 3 that
	 * records checkpoint 2: fewer entries than before it, so no restore
	 * explains it */
	dir_entry(f, 1);
	dir_entry(f, 2);
	char *note = tu_checkpoint(f->s, ORIGIN, f->k);
	dir_entry(f, 3);
	epoch_entry(f, 2, note);
	free(note);
	assert_int_equal(verify(f, &rep), RETE_ECORRUPT);
	assert_int_equal(rep.bad_index, 3);
	assert_non_null(strstr(rep.reason, "records a checkpoint of 2 entries, fewer than the 3"));
}

static void test_verify_epochs_good(void **state)
{
	struct fx *f = *state;
	rete_verify_report rep;

	/* checkpoint 2, then the epoch entry at index 2 (the restored size):
	 * the log holds, checkpoint 3 names epoch 2 */
	dir_entry(f, 1);
	dir_entry(f, 2);
	char *note = tu_checkpoint(f->s, ORIGIN, f->k);
	epoch_entry(f, 2, note);
	checkpoint_epoch(f, 2);
	assert_int_equal(verify(f, &rep), RETE_OK);
	assert_int_equal(rep.checkpoints, 2);
	/* a later checkpoint of the same log without its epoch line is not */
	dir_entry(f, 3);
	checkpoint_epoch(f, 1);
	assert_int_equal(verify(f, &rep), RETE_ECORRUPT);
	assert_non_null(strstr(rep.reason, "checkpoint at size 4 names epoch 1, but the log is in "
					   "epoch 2"));
	free(note);
}

static void test_verify_epoch_other_key(void **state)
{
	struct fx *f = *state;
	rete_verify_report rep;

	dir_entry(f, 1);
	dir_entry(f, 2);
	/* a note of the right size and root, by another key (not stored) */
	uint8_t root[RETE_MERKLE_HASH];
	char *note = NULL;
	assert_int_equal(rete_store_root(f->s, NULL, 2, root, NULL), RETE_OK);
	assert_int_equal(rete_checkpoint_sign(ORIGIN, 2, root, f->other, &note, NULL), RETE_OK);
	epoch_entry(f, 2, note);
	free(note);
	assert_int_not_equal(verify(f, &rep), RETE_OK);
	assert_int_equal(rep.bad_index, 2);
	assert_non_null(strstr(rep.reason, "not one the broker key signed"));
}

/* test_copy_mark: `rete store backup`'s mark on its copy — the source is
 * not marked, the copy is (size, epoch, time, source), a copy of the copy
 * keeps the first mark, a refused Epoch entry leaves it, an accepted one
 * removes it in its own commit, and a malformed record is a sentence. */
static void test_copy_mark(void **state)
{
	struct fx *f = *state;
	rete_store_copy_mark mk, mk2;
	rete_store *c = NULL;
	bool found = true, was = true;
	char dest[700], dest2[700], why[512];
	rete_msg m;

	assert_int_equal(rete_store_identity_init(f->s, ORIGIN, &f->k->pub, NULL), RETE_OK);
	note_entry(f, "n-1");
	note_entry(f, "n-2");
	assert_int_equal(rete_store_copy_mark_get(f->s, NULL, &mk, &found, NULL), RETE_OK);
	assert_false(found);
	snprintf(dest, sizeof(dest), "%s/copy", f->dir);
	snprintf(dest2, sizeof(dest2), "%s/copy2", f->dir);
	assert_int_equal(rete_store_backup_mark(f->s, dest, &mk, &was, &m), RETE_OK);
	assert_false(was);
	assert_true(mk.size == 2 && mk.epoch == 1 && mk.made_at_ms > 0);
	assert_string_equal(mk.source, f->store);
	/* the source stays unmarked; the copy's partial folder is gone */
	assert_int_equal(rete_store_copy_mark_get(f->s, NULL, &mk2, &found, NULL), RETE_OK);
	assert_false(found);
	char part[800];
	struct stat st;
	snprintf(part, sizeof(part), "%s/.rete-backup-partial", dest);
	assert_int_not_equal(stat(part, &st), 0);
	/* the leftover of an interrupted backup is named as such */
	{
		char dest3[700], part3[800];
		rete_msg m3 = {{0}};
		snprintf(dest3, sizeof(dest3), "%s/copy3", f->dir);
		snprintf(part3, sizeof(part3), "%s/.rete-backup-partial", dest3);
		assert_int_equal(mkdir(dest3, 0700), 0);
		assert_int_equal(mkdir(part3, 0700), 0);
		assert_int_equal(rete_store_backup_mark(f->s, dest3, NULL, NULL, &m3), RETE_EEXIST);
		if (strstr(m3.text, "interrupted") == NULL || strstr(m3.text, "rm -r") == NULL)
			fail_msg("the leftover of an interrupted backup is not named: %s", m3.text);
	}

	assert_int_equal(rete_store_open(&c, dest, 0, NULL), RETE_OK);
	assert_int_equal(rete_store_copy_mark_get(c, NULL, &mk2, &found, NULL), RETE_OK);
	assert_true(found);
	assert_true(mk2.size == mk.size && mk2.made_at_ms == mk.made_at_ms);
	/* a copy of the copy keeps the first mark */
	assert_int_equal(rete_store_backup_mark(c, dest2, &mk2, &was, &m), RETE_OK);
	assert_true(was);
	assert_true(mk2.size == mk.size && mk2.epoch == mk.epoch &&
		    mk2.made_at_ms == mk.made_at_ms);
	assert_string_equal(mk2.source, f->store);
	/* an Epoch entry refused (not above the epoch in force) leaves it;
	 * an accepted one removes it with the same commit */
	rete_store_close(&f->s);
	f->s = c;
	assert_int_equal(epoch_op(f, 1, why, sizeof(why)), RETE_STORE_REFUSED);
	assert_int_equal(rete_store_copy_mark_get(f->s, NULL, &mk2, &found, NULL), RETE_OK);
	assert_true(found);
	assert_int_equal(epoch_op(f, 2, why, sizeof(why)), RETE_STORE_ACCEPTED);
	assert_int_equal(rete_store_copy_mark_get(f->s, NULL, &mk2, &found, NULL), RETE_OK);
	assert_false(found);
	/* a malformed mark is a sentence, never a crash */
	mk.source[0] = '\0';
	mk.epoch = 3;
	assert_int_equal(rete_store_copy_mark_put(f->s, &mk, NULL), RETE_OK);
	assert_int_equal(rete_store_copy_mark_get(f->s, NULL, &mk2, &found, NULL), RETE_OK);
	assert_true(found && mk2.epoch == 3 && mk2.source[0] == '\0');
	rete_store_close(&f->s);
	assert_int_equal(rete_store_open(&f->s, dest2, 0, NULL), RETE_OK);
	assert_int_equal(rete_store_identity_init(f->s, ORIGIN, &f->k->pub, NULL), RETE_EEXIST);
	rete_store_close(&f->s);
	/* a record cut short, written behind rete's back */
	tu_raw_put(dest2, "meta", "copy", 4, "short", 5);
	assert_int_equal(rete_store_open(&f->s, dest2, RETE_STORE_RDONLY, NULL), RETE_OK);
	assert_int_equal(rete_store_copy_mark_get(f->s, NULL, &mk2, &found, &m), RETE_ECORRUPT);
	assert_false(found);
	assert_non_null(strstr(m.text, "meta 'copy' is 5 bytes long"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_init_and_check, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_adopt, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_epoch_entry, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lock, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_state_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_copy_mark, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verify_epoch_too_short, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verify_epochs_good, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_verify_epoch_other_key, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
