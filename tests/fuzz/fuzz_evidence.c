/* fuzz_evidence.c — libFuzzer target: evidence bundles as `rete evidence
 * verify` reads them (agents/cli/evidence.c).
 *
 * The input is a bundle file: rete_evidence_parse reads it strictly, then
 * rete_evidence_verify checks it offline against the fixed fuzz key (the
 * seeds come from a real bundle, whose broker key is another: the checks
 * behind its signature are reached only by what parses). The input is
 * copied to exactly its length, not NUL-terminated (a file read), so ASan
 * sees a read past the end. Properties besides "no crash, no leak, no UB":
 *  - the parser names the part at fault exactly when it refuses, with a
 *    sentence;
 *  - what parses is canonical: written back it is the same bytes, and
 *    parses again;
 *  - verification holds only for a bundle that parses, and names the part
 *    at fault when it does not hold.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "evidence.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	rete_evidence ev, again;
	rete_evidence_opts o;
	const char *part = NULL;
	char *out = NULL;
	rete_msg m = {{0}};

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	rete_err pe = rete_evidence_parse(text, size, &ev, &part, &m);
	if (pe != RETE_OK && (part == NULL || m.text[0] == '\0'))
		fuzz_fail("a refused bundle names no part (%s) or no reason", part ? part : "-");
	if (pe == RETE_OK) {
		if (rete_evidence_write(&ev, &out, &m) != RETE_OK)
			fuzz_fail("a bundle that parses cannot be written: %s", m.text);
		if (strlen(out) != size || memcmp(out, text, size) != 0)
			fuzz_fail("a bundle that parses is not written back to the same bytes");
		if (rete_evidence_parse(out, strlen(out), &again, NULL, &m) != RETE_OK)
			fuzz_fail("a bundle written from a parsed one does not parse: %s", m.text);
		rete_evidence_free(&again);
		free(out);
	}
	rete_evidence_free(&ev);

	memset(&o, 0, sizeof(o));
	o.broker_key = fuzz_key()->pub;
	part = NULL;
	rete_evidence_facts f;
	rete_err ve = rete_evidence_verify(text, size, &o, &f, &part, &m);
	if (ve == RETE_OK && pe != RETE_OK)
		fuzz_fail("a bundle that does not parse verifies");
	if (ve != RETE_OK && (part == NULL || m.text[0] == '\0'))
		fuzz_fail("a bundle that does not hold names no part or no reason");
	free(text);
	return 0;
}
