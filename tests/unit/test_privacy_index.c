/* test_privacy_index.c — the agency's keyed person index (issue 18): the key
 * file, the pseudonyms, and the retention of its records. */
#include "../../agents/agent/privacy_index.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "testutil.h"

static void test_key_and_pseudonyms(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("privacy-key");
	char path[1024];
	privacy_key *k = NULL, *again = NULL;
	rete_msg m;
	char a[PRIVACY_MAC_HEX], b[PRIVACY_MAC_HEX];

	/* not there, not made: the sentence says who makes it */
	assert_int_equal(privacy_key_load(dir, false, &k, &m), RETE_ENOENT);
	assert_non_null(strstr(m.text, "first start"));
	assert_int_equal(privacy_key_load(dir, true, &k, &m), RETE_OK);
	struct stat st;
	tu_path(path, sizeof(path), "%s/%s", dir, PRIVACY_KEY_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, PRIVACY_KEY_LEN);
	assert_int_equal(privacy_key_load(dir, false, &again, &m), RETE_OK);

	/* the same person however the code is written; a person id never
	 * matches a fiscal code of the same letters; another key, another
	 * pseudonym */
	assert_true(privacy_mac_fiscal(k, "RSSMRA85M41E897X", a));
	assert_true(privacy_mac_fiscal(again, " rssmra85m41e897x ", b));
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), 64);
	assert_true(privacy_mac_person_id(k, "RSSMRA85M41E897X", b));
	assert_string_not_equal(a, b);
	assert_false(privacy_mac_fiscal(k, "", b));
	assert_false(privacy_mac_person_id(k, NULL, b));
	privacy_key_free(&again);
	tu_path(path, sizeof(path), "%s/other", dir);
	mkdir(path, 0700);
	assert_int_equal(privacy_key_load(path, true, &again, &m), RETE_OK);
	assert_true(privacy_mac_fiscal(again, "RSSMRA85M41E897X", b));
	assert_string_not_equal(a, b);
	privacy_key_free(&again);

	/* a key others can read is refused, with the chmod to run */
	tu_path(path, sizeof(path), "%s/%s", dir, PRIVACY_KEY_FILE);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(privacy_key_load(dir, false, &again, &m), RETE_EPERM);
	assert_non_null(strstr(m.text, "chmod 600"));
	assert_null(again);
	privacy_key_free(&k);
	assert_null(k);
	tu_rmrf(dir);
	free(dir);
}

/* The key is made under a temporary name: one already there (a symlink
 * planted in the data folder, or a file left with a wider mode) is never
 * written through; the key goes to a new file of mode 0600 or nowhere. */
static void test_key_tmp_not_followed(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("privacy-key-tmp");
	char tmp[1024], outside[1024], path[1024];
	privacy_key *k = NULL;
	rete_msg m;
	struct stat st;
	tu_path(outside, sizeof(outside), "%s/outside", dir);
	assert_int_equal(tu_write_file(outside, "", 0), 0);
	tu_path(path, sizeof(path), "%s/data", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	tu_path(tmp, sizeof(tmp), "%s/data/%s.tmp", dir, PRIVACY_KEY_FILE);
	assert_int_equal(symlink(outside, tmp), 0);
	(void)privacy_key_load(path, true, &k, &m);
	assert_int_equal(stat(outside, &st), 0);
	assert_int_equal(st.st_size, 0); /* no key bytes outside the data folder */
	privacy_key_free(&k);
	tu_path(path, sizeof(path), "%s/data/%s", dir, PRIVACY_KEY_FILE);
	unlink(path);
	unlink(tmp);
	/* a leftover temporary file of mode 0644: the key is still 0600 */
	assert_int_equal(tu_write_file(tmp, "x", 1), 0);
	assert_int_equal(chmod(tmp, 0644), 0);
	tu_path(path, sizeof(path), "%s/data", dir);
	assert_int_equal(privacy_key_load(path, true, &k, &m), RETE_OK);
	tu_path(path, sizeof(path), "%s/data/%s", dir, PRIVACY_KEY_FILE);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	privacy_key_free(&k);
	tu_rmrf(dir);
	free(dir);
}

static void add(const char *dir, const char *text)
{
	json_t *o = json_loads(text, 0, NULL);
	rete_msg m;
	assert_non_null(o);
	assert_int_equal(privacy_index_append(dir, o, &m), RETE_OK);
	json_decref(o);
}

static void test_retention(void **state)
{
	(void)state;
	char *dir = tu_tmpdir("privacy-index");
	rete_msg m;
	json_t *lines = NULL, *erased = NULL;
	const int64_t day = 86400000, now = 1000000000000LL; /* 2001-09-09 */

	/* a referral sealed 40 days ago but delivered 10 days ago is kept (the
	 * count runs from the delivery); one sealed and delivered 40 days ago
	 * goes, delivery line and all; a received one of today stays */
	add(dir, "{\"at\":996544000000,\"persons\":[\"aa\"],\"dir\":\"sent\",\"sender\":\"s\","
		 "\"id\":\"late\"}");
	add(dir, "{\"at\":999136000000,\"delivered\":\"late\",\"sender\":\"s\",\"index\":1}");
	add(dir, "{\"at\":996544000000,\"persons\":[\"aa\"],\"dir\":\"sent\",\"sender\":\"s\","
		 "\"id\":\"old\"}");
	add(dir, "{\"at\":996544000001,\"delivered\":\"old\",\"sender\":\"s\",\"index\":2}");
	add(dir, "{\"persons\":[\"bb\"],\"dir\":\"received\",\"sender\":\"t\",\"id\":\"old\"}");
	/* a line cut by a crash is skipped when read */
	char path[1024];
	FILE *f = fopen(tu_path(path, sizeof(path), "%s/%s", dir, PRIVACY_INDEX_FILE), "a");
	fputs("{\"at\":1,\"pers", f);
	fclose(f);
	assert_int_equal(privacy_index_load(dir, &lines, &m), RETE_OK);
	assert_int_equal(json_array_size(lines), 5);
	json_decref(lines);
	/* and the next line is whole all the same */
	add(dir, "{\"persons\":[\"cc\"],\"dir\":\"received\",\"sender\":\"t\",\"id\":\"after\"}");
	assert_int_equal(privacy_index_load(dir, &lines, &m), RETE_OK);
	assert_int_equal(json_array_size(lines), 6);
	json_decref(lines);

	assert_int_equal(
	    privacy_index_prune(dir, (rete_keep){.ms = 30 * day}, now, NULL, NULL, &erased, &m),
	    RETE_OK);
	assert_int_equal(json_array_size(erased), 1);
	assert_string_equal(json_string_value(json_array_get(erased, 0)), "s/old");
	json_decref(erased);
	assert_int_equal(privacy_index_load(dir, &lines, &m), RETE_OK);
	assert_int_equal(json_array_size(lines), 4);
	json_decref(lines);
	assert_int_equal(tu_occurrences(path, "\"old\""), 1); /* t's received one */
	assert_int_equal(tu_occurrences(path, "\"late\""), 2);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	/* kept for ever: nothing goes */
	assert_int_equal(
	    privacy_index_prune(dir, (rete_keep){0}, now * 10, NULL, NULL, &erased, &m), RETE_OK);
	assert_int_equal(json_array_size(erased), 0);
	json_decref(erased);
	tu_rmrf(dir);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_and_pseudonyms),
	    cmocka_unit_test(test_key_tmp_not_followed),
	    cmocka_unit_test(test_retention),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
