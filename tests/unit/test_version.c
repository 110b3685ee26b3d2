/* test_version.c — store/version.c: one place says which rete this is
 * (issue 17, "Versions"): the release from CMake, the commit, the protocol
 * and the store schema, the same in the text and the JSON forms. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "codec.h"
#include "store.h"
#include "version.h"

static void test_numbers(void **state)
{
	(void)state;
	/* x.y.z, digits only: packages and `dpkg --compare-versions` sort it */
	unsigned x, y, z;
	char tail;
	assert_int_equal(sscanf(rete_version(), "%u.%u.%u%c", &x, &y, &z, &tail), 3);
	assert_int_equal(rete_version_protocol(), RETE_PROTOCOL_VERSION);
	assert_int_equal(rete_version_store_schema(), RETE_STORE_SCHEMA);
	/* the commit is empty or one word git describe makes */
	const char *c = rete_version_commit();
	assert_non_null(c);
	for (const char *p = c; *p; p++)
		assert_true(strchr("0123456789abcdefghijklmnopqrstuvwxyz"
				   "ABCDEFGHIJKLMNOPQRSTUVWXYZ._+-",
				   *p) != NULL);
}

static void test_text(void **state)
{
	(void)state;
	char text[256], want[256], v[128];
	rete_version_short(v, sizeof(v));
	if (rete_version_commit()[0]) {
		snprintf(want, sizeof(want), "%s (git %s)", rete_version(), rete_version_commit());
		assert_string_equal(v, want);
	} else {
		assert_string_equal(v, rete_version());
	}
	rete_version_text(text, sizeof(text), "rete-broker");
	snprintf(want, sizeof(want), "rete-broker %s\nprotocol %u, store schema %u\n", v,
		 (unsigned)RETE_PROTOCOL_VERSION, (unsigned)RETE_STORE_SCHEMA);
	assert_string_equal(text, want);
	/* cut to fit, always terminated */
	char small[8];
	rete_version_text(small, sizeof(small), "rete-broker");
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_memory_equal(small, "rete-br", 7);
}

static void test_json(void **state)
{
	(void)state;
	json_t *j = rete_version_json();
	assert_non_null(j);
	assert_int_equal(json_object_size(j), 4);
	assert_string_equal(json_string_value(json_object_get(j, "version")), rete_version());
	json_t *c = json_object_get(j, "commit");
	assert_non_null(c);
	if (rete_version_commit()[0])
		assert_string_equal(json_string_value(c), rete_version_commit());
	else
		assert_true(json_is_null(c));
	assert_int_equal(json_integer_value(json_object_get(j, "protocol")), RETE_PROTOCOL_VERSION);
	assert_int_equal(json_integer_value(json_object_get(j, "storeSchema")), RETE_STORE_SCHEMA);
	json_decref(j);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_numbers),
	    cmocka_unit_test(test_text),
	    cmocka_unit_test(test_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
