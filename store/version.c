/* version.c — see version.h. */
#include "version.h"

#include <stdio.h>

#include "codec.h"
#include "rete_version.h" /* generated in the build folder by CMakeLists.txt */
#include "store.h"

const char *rete_version(void)
{
	return RETE_VERSION_STRING;
}

const char *rete_version_commit(void)
{
	return RETE_VERSION_COMMIT;
}

uint32_t rete_version_protocol(void)
{
	return RETE_PROTOCOL_VERSION;
}

uint32_t rete_version_store_schema(void)
{
	return RETE_STORE_SCHEMA;
}

char *rete_version_short(char *out, size_t size)
{
	if (size == 0)
		return out;
	if (RETE_VERSION_COMMIT[0])
		snprintf(out, size, "%s (git %s)", RETE_VERSION_STRING, RETE_VERSION_COMMIT);
	else
		snprintf(out, size, "%s", RETE_VERSION_STRING);
	return out;
}

char *rete_version_text(char *out, size_t size, const char *program)
{
	char v[128];
	if (size == 0)
		return out;
	snprintf(out, size, "%s %s\nprotocol %u, store schema %u\n", program,
		 rete_version_short(v, sizeof(v)), (unsigned)RETE_PROTOCOL_VERSION,
		 (unsigned)RETE_STORE_SCHEMA);
	return out;
}

json_t *rete_version_json(void)
{
	json_t *commit = RETE_VERSION_COMMIT[0] ? json_string(RETE_VERSION_COMMIT) : json_null();
	return json_pack("{s:s, s:o, s:I, s:I}", "version", RETE_VERSION_STRING, "commit", commit,
			 "protocol", (json_int_t)RETE_PROTOCOL_VERSION, "storeSchema",
			 (json_int_t)RETE_STORE_SCHEMA);
}
