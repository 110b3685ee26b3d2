/* test_fileplace.c — rete_file_place over real paths: a file and a folder
 * of a temporary folder, a missing folder (made or not), a file whose
 * folder is a file, a device, files and folders of /proc, a read-only
 * tmpfs (mounted when the test may: root), and a folder another user may
 * not write (a child that drops to uid 65534 when the test runs as root,
 * else the test's own folder made 0555). A case that cannot be made here
 * is skipped with a sentence on stderr, never passed in silence. */
#include <errno.h>
#include <grp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "fileplace.h"
#include "testutil.h"

static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = tu_tmpdir("fileplace");
	return dir ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char ro[512];
	umount2(tu_path(ro, sizeof(ro), "%s/ro", dir), MNT_DETACH); /* a failed test_read_only's */
	tu_rmrf(dir);
	free(dir);
	return 0;
}

/* said: rete_file_place(path, flags) says a sentence holding want (NULL:
 * says nothing); the sentence is printed when it is not the one wanted. */
static void said(const char *path, unsigned flags, const char *want)
{
	char buf[4200];
	const char *why = rete_file_place(path, flags, buf, sizeof(buf));
	if (want == NULL && why != NULL)
		fail_msg("%s (flags %u): '%s', expected nothing", path, flags, why);
	if (want != NULL && (why == NULL || strstr(why, want) == NULL))
		fail_msg("%s (flags %u): '%s', expected '%s'", path, flags, why ? why : "nothing",
			 want);
}

static void test_plain_places(void **state)
{
	(void)state;
	char p[512], q[512];
	static const unsigned all[] = {0, RETE_PLACE_MAKE_FOLDERS, RETE_PLACE_SOCKET,
				       RETE_PLACE_RENAMED};

	/* a file to be made in a folder this user may write */
	for (size_t i = 0; i < 4; i++)
		said(tu_path(p, sizeof(p), "%s/new.log", dir), all[i], NULL);
	/* a regular file there, and one read-only: replaced by a rename (and
	 * a socket's place) it is fine; appended to, it is not (not for root,
	 * who may write it) */
	assert_int_equal(tu_write_file(tu_path(p, sizeof(p), "%s/ro.state", dir), "x", 1), 0);
	assert_int_equal(chmod(p, 0444), 0);
	said(p, RETE_PLACE_RENAMED, NULL);
	said(p, RETE_PLACE_SOCKET, NULL);
	said(p, 0, geteuid() == 0 ? NULL : "ro.state cannot be written by this user (uid ");
	/* a folder is never a file's place */
	for (size_t i = 0; i < 4; i++)
		said(dir, all[i], tu_path(q, sizeof(q), "%s is a folder", dir));
	/* a missing folder: made, or said */
	tu_path(p, sizeof(p), "%s/a/b/new.log", dir);
	said(p, RETE_PLACE_MAKE_FOLDERS, NULL);
	said(p, RETE_PLACE_RENAMED, tu_path(q, sizeof(q), "the folder %s/a/b does not exist", dir));
	/* a file where a folder should be */
	said(tu_path(p, sizeof(p), "%s/ro.state/x.log", dir), RETE_PLACE_MAKE_FOLDERS,
	     tu_path(q, sizeof(q), "%s/ro.state is not a folder", dir));
	/* a device: a socket's place may hold anything but a folder, its
	 * folder (/dev) still judged */
	said("/dev/null", 0, "/dev/null is not a regular file");
	said("/dev/null", RETE_PLACE_RENAMED, "/dev/null is not a regular file");
	/* a relative path: judged in the working folder */
	assert_int_equal(chdir(dir), 0);
	said("rel.log", 0, NULL);
	said("nofolder/rel.log", 0, "the folder nofolder does not exist");
	said("nofolder/rel.log", RETE_PLACE_MAKE_FOLDERS, NULL);
	assert_int_equal(chdir("/"), 0);
}

/* /proc: root "may write" there by access(2); no file of ours can be made
 * or appended to. */
static void test_proc(void **state)
{
	(void)state;
	if (rete_fs_unusable("/proc") == NULL) {
		fprintf(stderr, "test_proc: skipped: /proc is not the kernel's proc file system "
				"here\n");
		skip();
	}
	assert_non_null(strstr(rete_fs_unusable("/proc"), "proc file system"));
	said("/proc/rete-test.state", RETE_PLACE_RENAMED,
	     "the folder /proc is on the kernel's proc file system, where no file can be made");
	said("/proc/rete-test.sock", RETE_PLACE_SOCKET, "the folder /proc is on the kernel's proc");
	said("/proc/rete/a/x.log", RETE_PLACE_MAKE_FOLDERS,
	     "the folder /proc is on the kernel's proc file system");
	/* a file of /proc its owner may write (comm): on proc, not writable */
	said("/proc/self/comm", 0,
	     "/proc/self/comm is on the kernel's proc file system, where nothing can be written");
	said("/proc/self", 0, "/proc/self is a folder");
	assert_null(rete_fs_unusable(dir));
}

/* a tmpfs mounted read-only: the file there and a file to be made there */
static void test_read_only(void **state)
{
	(void)state;
	char ro[512], p[512];
	tu_path(ro, sizeof(ro), "%s/ro", dir);
	assert_int_equal(mkdir(ro, 0755), 0);
	if (mount("tmpfs", ro, "tmpfs", 0, "size=64k") != 0) {
		fprintf(stderr,
			"test_read_only: skipped: cannot mount a tmpfs here (%s; root "
			"may)\n",
			strerror(errno));
		skip();
	}
	int rc = tu_write_file(tu_path(p, sizeof(p), "%s/old.log", ro), "x", 1);
	if (rc == 0)
		rc = mount(NULL, ro, NULL, MS_REMOUNT | MS_RDONLY, NULL);
	if (rc != 0) {
		fprintf(stderr, "test_read_only: skipped: cannot make the tmpfs read-only (%s)\n",
			strerror(errno));
		umount(ro);
		skip();
	}
	assert_non_null(rete_fs_unusable(ro));
	said(p, 0, "old.log is on a file system mounted read-only, where nothing can be written");
	said(p, RETE_PLACE_RENAMED, "on a file system mounted read-only");
	said(tu_path(p, sizeof(p), "%s/new.log", ro), RETE_PLACE_MAKE_FOLDERS,
	     "is on a file system mounted read-only, where no file can be made");
	said(tu_path(p, sizeof(p), "%s/a/new.log", ro), RETE_PLACE_MAKE_FOLDERS,
	     "is on a file system mounted read-only");
	assert_int_equal(umount(ro), 0);
}

/* a folder this user may not write: as uid 65534 (a child, when root) or
 * as this user on a folder made 0555 */
static void test_other_user(void **state)
{
	(void)state;
	char f[512], p[512], q[512];
	tu_path(f, sizeof(f), "%s/closed", dir);
	assert_int_equal(mkdir(f, 0755), 0);
	tu_path(p, sizeof(p), "%s/x.state", f);
	if (geteuid() != 0) {
		assert_int_equal(chmod(f, 0555), 0);
		said(p, RETE_PLACE_RENAMED,
		     tu_path(q, sizeof(q),
			     "the folder %s cannot be written by this user "
			     "(uid %ld): Permission denied",
			     f, (long)getuid()));
		chmod(f, 0755);
		return;
	}
	assert_int_equal(chmod(dir, 0755), 0); /* uid 65534 enters it */
	said(p, RETE_PLACE_RENAMED, NULL);     /* root may */
	assert_int_equal(tu_write_file(tu_path(q, sizeof(q), "%s/own.log", f), "x", 1), 0);
	assert_int_equal(chown(q, 65534, 65534), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char buf[1200];
		const char *why = NULL;
		if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
			_exit(3);
		why = rete_file_place(p, RETE_PLACE_RENAMED, buf, sizeof(buf));
		tu_path(q, sizeof(q),
			"the folder %s cannot be written by this user (uid 65534): Permission "
			"denied",
			f);
		if (why == NULL || strstr(why, q) == NULL) {
			fprintf(stderr, "as uid 65534: '%s', expected '%s'\n",
				why ? why : "nothing", q);
			_exit(1);
		}
		/* its own file in that folder: appended to, fine */
		tu_path(q, sizeof(q), "%s/own.log", f);
		if (rete_file_place(q, RETE_PLACE_APPEND, buf, sizeof(buf)) != NULL) {
			fprintf(stderr, "as uid 65534, its own file, APPEND: '%s'\n", buf);
			_exit(4);
		}
		if (rete_file_place(q, 0, buf, sizeof(buf)) == NULL) {
			fprintf(stderr, "as uid 65534, its own file in root's folder: nothing\n");
			_exit(5);
		}
		/* its own folder: fine */
		why = rete_file_place("/tmp/rete-fileplace-none.log", 0, buf, sizeof(buf));
		if (why != NULL) {
			fprintf(stderr, "as uid 65534, in /tmp: '%s'\n", why);
			_exit(2);
		}
		_exit(0);
	}
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 3) {
		fprintf(stderr, "test_other_user: skipped: cannot become uid 65534\n");
		skip();
	}
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_places),
	    cmocka_unit_test(test_proc),
	    cmocka_unit_test(test_read_only),
	    cmocka_unit_test(test_other_user),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
