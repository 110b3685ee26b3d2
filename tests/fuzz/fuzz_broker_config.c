/* fuzz_broker_config.c — libFuzzer target: the broker's broker.ini.
 *
 * The input is written as broker.ini into a temporary folder that also
 * ($TMPDIR or /tmp) holds key files (broker.mantova.key and social/cpi/asst.mantova.pub, from
 * fixed seeds; the seeds name them by relative path) and loaded with
 * broker_config_load (broker/config.c is compiled into this target). A
 * configuration is written by an operator, not by a peer, but a typo must
 * give a sentence, never a crash. Properties checked besides "no crash, no
 * leak, no UB":
 *  - the verdict agrees with the problems (RETE_OK iff none, *out set iff
 *    RETE_OK), and every problem names the file;
 *  - what loads gives a Directory (the entry the broker logs and every agent
 *    decodes strictly) that packs, decodes strictly and passes the
 *    validator in BROKER mode: a configuration the broker accepts must not
 *    produce a directory entry its own agents refuse.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "config.h"
#include "fuzz_common.h"
#include "validate.h"

static char dir[512];
static char ini[540];

static void cleanup(void)
{
	static const char *const files[] = {
	    "broker.ini",	  "broker.mantova.key", "broker.mantova.pub",
	    "social.mantova.key", "social.mantova.pub", "cpi.mantova.key",
	    "cpi.mantova.pub",	  "asst.mantova.key",	"asst.mantova.pub"};
	char path[600];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* setup makes the folder and the key files once per process. */
static void setup(void)
{
	if (dir[0])
		return;
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, sizeof(dir), "%s/rete-fuzz-config-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	snprintf(ini, sizeof(ini), "%s/broker.ini", dir);
	static const char *const ids[] = {"broker.mantova", "social.mantova", "cpi.mantova",
					  "asst.mantova"};
	for (size_t i = 0; i < 4; i++) {
		uint8_t seed[RETE_SEED_LEN];
		memset(seed, (int)(0x11 * (i + 1)), sizeof(seed));
		rete_seckey *sk = NULL;
		rete_msg m;
		if (rete_seckey_from_seed(&sk, seed, &m) != RETE_OK ||
		    rete_keyfile_write(dir, ids[i], sk, true, &m) != RETE_OK) {
			fprintf(stderr, "fuzz_broker_config: %s\n", m.text);
			abort();
		}
		rete_seckey_free(&sk);
	}
}

/* directory_problem: a broken directory property aborts, unless
 * RETE_FUZZ_REPORT_ONLY is set (to keep fuzzing past a bug already
 * reported, tests/fuzz/open/): then the first sentences are printed. */
static void directory_problem(const char *what, const char *path, const char *text)
{
	static int printed;
	const char *only = getenv("RETE_FUZZ_REPORT_ONLY");
	if (!only || !*only)
		fuzz_fail("the directory of an accepted broker.ini %s: %s: %s", what, path, text);
	if (printed < 20) {
		printed++;
		fprintf(stderr,
			"fuzz property broken (reported only): the directory of an "
			"accepted broker.ini %s: %s: %s\n",
			what, path, text);
	}
}

/* check_directory: the Directory of an accepted configuration, wrapped in
 * the Message the broker logs, must survive strict decoding and the
 * validator. */
static void check_directory(const broker_config *c)
{
	Rete__Directory *d = NULL;
	if (broker_config_directory(c, 1, &d) != RETE_OK)
		abort(); /* out of memory only */
	Rete__Message msg = RETE__MESSAGE__INIT;
	msg.id = (char *)"directory-1";
	msg.sender = (char *)c->id;
	msg.created_at = 1795000000000;
	msg.origin = c->origin;
	msg.body_case = RETE__MESSAGE__BODY_DIRECTORY;
	msg.directory = d;
	rete_buf packed = {0};
	if (rete_message_pack(&msg, &packed) != RETE_OK)
		abort();
	Rete__Message *back = NULL;
	rete_msg m;
	if (rete_message_decode(packed.data, packed.len, &back, &m) != RETE_OK) {
		directory_problem("does not decode strictly", "", m.text);
	} else {
		rete_problems pr = {0};
		if (rete_validate_message(back, NULL, RETE_VALIDATE_BROKER, &pr) != RETE_OK)
			directory_problem("fails validation", pr.n ? pr.items[0].path : "",
					  pr.n ? pr.items[0].text : "");
		rete_problems_free(&pr);
		rete__message__free_unpacked(back, NULL);
	}
	rete_buf_free(&packed);
	broker_directory_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup();
	FILE *f = fopen(ini, "w");
	if (!f)
		abort();
	if (size && fwrite(data, 1, size, f) != size)
		abort();
	if (fclose(f) != 0)
		abort();

	broker_config *c = NULL;
	rete_problems pr = {0};
	rete_err e = broker_config_load(ini, &c, &pr);
	if ((e == RETE_OK) != (c != NULL) || (e == RETE_EINVAL && pr.n == 0) ||
	    (e == RETE_OK && pr.n != 0))
		fuzz_fail("broker_config_load: verdict %d, config %p, %zu problems", e, (void *)c,
			  pr.n);
	if (getenv("RETE_FUZZ_VERBOSE")) /* to see why a seed is refused */
		for (size_t i = 0; i < pr.n; i++)
			fprintf(stderr, "%s: %s\n", pr.items[i].path, pr.items[i].text);
	/* Paths are cut at 127 bytes by rete_problem: compare what fits. */
	size_t cmp = strlen(ini) < 100 ? strlen(ini) : 100;
	for (size_t i = 0; i < pr.n; i++)
		if (strncmp(pr.items[i].path, ini, cmp) != 0)
			fuzz_fail("problem '%s' does not name the file", pr.items[i].path);
	rete_problems_free(&pr);
	if (c) {
		check_directory(c);
		for (size_t i = 0; i < c->nparties; i++) {
			const broker_party *p = &c->parties[i];
			if (broker_config_party(c, p->id) == NULL)
				fuzz_fail("party %s not found by broker_config_party", p->id);
			for (size_t k = 0; k < p->nservices; k++)
				if (!broker_party_offers(p, p->services[k], NULL))
					fuzz_fail("party %s does not offer its own service %s",
						  p->id, p->services[k]);
		}
		broker_config_free(&c);
	}
	return 0;
}
