/* test_evidence.c — evidence bundles (agents/cli/evidence.h, `rete evidence
 * export` / `verify`).
 *
 * A log written through the real store (LMDB in a temporary folder) by the
 * test playing the broker and the agencies with their own keys, exactly as
 * a protocol 3 broker writes it: a Directory, a referral, its Delivery with
 * the recipient's signed acknowledgement, checkpoints cosigned by the
 * agencies with store/cosign.h and stamped by a real local TSA
 * (tests/tsa/). Then:
 *   holds              the bundle exported from the store verifies, with
 *                      and without the TSA's CA and a witness policy, and
 *                      tells its story in English and Italian; the CLI
 *                      does the same (exit 0)
 *   every byte         every byte of a bundle flipped fails verify, naming
 *                      the part the byte belongs to (in process)
 *   timestamp          no token, a token over another checkpoint, a token
 *                      checked against another CA: each fails the
 *                      timestamp part when --tsa-ca is given
 *   acknowledgement    a Delivery without the recipient's signature, one
 *                      signed by another key, over another leaf, or a
 *                      signed refusal: each fails the acknowledgement part
 *   cosignatures       a policy whose quorum did not cosign, a forged
 *                      cosignature line, a line of nobody: fail
 *   rotation           the recipient's key rotated between the message and
 *                      its delivery: the bundle carries both directories
 *                      (and every flipped byte of it fails too)
 *   not found          an unknown message, an undelivered one: export says
 *                      so (exit 1)
 *   standard tools     the Python script and the openssl commands of
 *                      docs/auditing.md ("Checking a bundle without rete")
 *                      accept the bundle and refuse altered ones
 * And with the real rete-broker and rete-agent: a referral sent through the
 * agents' spools, exported from the store and from the broker at a
 * distance (the auditor's audit.ini), verifies.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <sodium.h>

#include "checkpoint.h"
#include "cosign.h"
#include "evidence.h"
#include "itest.h"
#include "local_tsa.h"
#include "tsa.h"

#define ORIGIN "rete.test/evidence"
#define BROKER "broker.test"
#define SOCIAL "social.test"
#define CPI    "cpi.test"
#define ASST   "asst.test"

enum { K_BROKER, K_SOCIAL, K_CPI, K_ASST, K_CPI2, K_N };

/* How the recipient acknowledged, in the log the test writes. */
enum ack_mode { ACK_GOOD, ACK_NONE, ACK_WRONG_KEY, ACK_WRONG_LEAF, ACK_REFUSAL };

typedef struct fx {
	local_tsa *tsa;
	rete_seckey *k[K_N];
	char *dir; /* the store */
	char *tmp; /* files of the test */
	char bkey[1200], policy[1200], policy_missing[1200];
} fx;

static fx *F;

static int64_t now_t = 1790000000000;

static rete_buf directory(const char *id, const rete_seckey *cpi_key)
{
	Rete__Message msg;
	Rete__Directory d = RETE__DIRECTORY__INIT;
	Rete__Party p[4], *pp[4];
	const char *ids[4] = {BROKER, SOCIAL, CPI, ASST};
	const rete_seckey *ks[4] = {F->k[K_BROKER], F->k[K_SOCIAL], cpi_key, F->k[K_ASST]};
	Rete__PartyKind kinds[4] = {
	    RETE__PARTY_KIND__PARTY_KIND_BROKER, RETE__PARTY_KIND__PARTY_KIND_SOCIAL_SERVICES,
	    RETE__PARTY_KIND__PARTY_KIND_JOB_CENTRE, RETE__PARTY_KIND__PARTY_KIND_HEALTH};

	for (int i = 0; i < 4; i++) {
		rete__party__init(&p[i]);
		p[i].id = (char *)ids[i];
		p[i].name = (char *)ids[i];
		p[i].kind = kinds[i];
		p[i].public_key.data = (uint8_t *)ks[i]->pub.ed;
		p[i].public_key.len = RETE_PK_LEN;
		pp[i] = &p[i];
	}
	tu_message_init(&msg, id, BROKER, "", "", ORIGIN);
	d.serial = 1;
	d.n_parties = 4;
	d.parties = pp;
	d.time_zone = (char *)"Europe/Rome";
	msg.body_case = RETE__MESSAGE__BODY_DIRECTORY;
	msg.directory = &d;
	return tu_sign(&msg, F->k[K_BROKER]);
}

static rete_buf referral(const char *id, const char *recipient)
{
	Rete__Message msg;
	Rete__Referral r = RETE__REFERRAL__INIT;
	tu_message_init(&msg, id, SOCIAL, recipient, "case-7", ORIGIN);
	r.service = (char *)"employment-orientation";
	r.priority = RETE__PRIORITY__PRIORITY_ROUTINE;
	r.reason_code = (char *)"unemployment";
	r.age_band = RETE__AGE_BAND__AGE_BAND_ADULT;
	msg.body_case = RETE__MESSAGE__BODY_REFERRAL;
	msg.referral = &r;
	return tu_sign(&msg, F->k[K_SOCIAL]);
}

/* delivery: the broker's Delivery of entry index (message ref of SOCIAL to
 * CPI) with the ACK the recipient signed as mode says. */
static rete_buf delivery(rete_store *s, uint64_t index, const char *ref, enum ack_mode mode,
			 const rete_seckey *cpi_key)
{
	Rete__Message msg;
	Rete__Delivery d = RETE__DELIVERY__INIT;
	Rete__AckBody ab = RETE__ACK_BODY__INIT;
	Rete__SignedAck sa = RETE__SIGNED_ACK__INIT;
	uint8_t leaf[RETE_MERKLE_HASH];
	rete_buf e = {0}, out;
	rete_msg m;

	assert_int_equal(rete_store_entry(s, NULL, index, &e, &m), RETE_OK);
	rete_merkle_leaf_hash(leaf, e.data, e.len);
	rete_buf_free(&e);
	if (mode == ACK_WRONG_LEAF)
		leaf[5] ^= 1;
	ab.origin = (char *)ORIGIN;
	ab.recipient = (char *)CPI;
	ab.index = index;
	ab.leaf_hash.data = leaf;
	ab.leaf_hash.len = RETE_MERKLE_HASH;
	ab.acked_at = 1790000004321;
	if (mode == ACK_REFUSAL) {
		ab.error = RETE__ERROR_CODE__ERROR_CODE_CANNOT_OPEN;
		ab.error_text = (char *)"the sealed part does not open";
	}
	if (mode != ACK_NONE)
		assert_int_equal(
		    rete_ack_sign(&ab, mode == ACK_WRONG_KEY ? F->k[K_ASST] : cpi_key, &sa, &m),
		    RETE_OK);
	tu_message_init(&msg, "delivery-x", BROKER, SOCIAL, "case-7", ORIGIN);
	d.index = index;
	d.message_id = (char *)ref;
	d.referral_id = (char *)ref;
	d.delivered_at = 1790000005000;
	if (mode != ACK_NONE)
		d.ack = &sa;
	msg.body_case = RETE__MESSAGE__BODY_DELIVERY;
	msg.delivery = &d;
	out = tu_sign(&msg, F->k[K_BROKER]);
	if (mode != ACK_NONE)
		rete_signed_ack_clear(&sa);
	return out;
}

/* cosign_store adds the cosignatures of ids (their keys in ks) to the
 * stored checkpoint of the store's current size. */
static void cosign_store(rete_store *s, const char *const *ids, const rete_seckey *const *ks, int n)
{
	uint64_t size = 0;
	char *note = NULL;
	rete_msg m;
	assert_int_equal(rete_store_checkpoint_latest(s, NULL, &size, &note, &m), RETE_OK);
	for (int i = 0; i < n; i++) {
		char *line = NULL, *next = NULL;
		size_t len = 0;
		assert_int_equal(
		    rete_cosign_line(note, strlen(note), ids[i], ks[i], 1790000009, &line, &m),
		    RETE_OK);
		assert_int_equal(rete_cosign_add(note, strlen(note), line, &next, &len, &m),
				 RETE_OK);
		free(line);
		free(note);
		note = next;
	}
	assert_int_equal(rete_store_checkpoint_put(s, size, note, &m), RETE_OK);
	free(note);
}

/* stamp has the local TSA stamp the stored checkpoint of size and stores
 * the token (over another note's body when other is set). */
static void stamp(rete_store *s, uint64_t size, const char *other)
{
	rete_tsa_http http = {.url = F->tsa->lt_url};
	uint8_t *token = NULL;
	size_t tlen = 0;
	char *note = NULL;
	rete_msg m;
	assert_int_equal(rete_store_checkpoint_get(s, NULL, size, &note, &m), RETE_OK);
	if (other != NULL) {
		free(note);
		note = strdup(other);
	}
	if (rete_tsa_stamp(&http, note, strlen(note), F->tsa->lt_ca, &token, &tlen, NULL, &m) !=
	    RETE_OK)
		fail_msg("the local TSA: %s", m.text);
	assert_int_equal(rete_store_timestamp_put(s, size, token, tlen, &m), RETE_OK);
	free(token);
	free(note);
}

/* The log options. */
typedef struct logspec {
	enum ack_mode ack;
	bool stamp, cosign, other_stamp, forged_cosign, stranger_line, rotate;
	bool rotate_after; /* cpi's key rotated after the delivery: it cosigns
			      the checkpoint with its new key */
} logspec;

/* build writes a fresh store:
 *   0 directory   1 referral r1 social->cpi   [rotate: 2 directory with a
 *   new cpi key]   delivery of 1 (ack per spec)   referral r2 social->asst
 *   [checkpoint: cosigned by cpi and asst, stamped]   update of r1 by cpi
 *   [checkpoint: the latest] */
static void build(const logspec *sp)
{
	rete_store *s = NULL;
	rete_msg m;
	uint64_t size;
	const rete_seckey *cpi = sp->rotate ? F->k[K_CPI2] : F->k[K_CPI];

	if (F->dir != NULL) {
		tu_rmrf(F->dir);
		free(F->dir);
	}
	F->dir = tu_tmpdir("evidence-store");
	assert_int_equal(rete_store_open(&s, F->dir, RETE_STORE_CREATE, &m), RETE_OK);
	tu_append(s, &now_t, directory("dir-1", F->k[K_CPI]));
	tu_append(s, &now_t, referral("r1", CPI));
	if (sp->rotate)
		tu_append(s, &now_t, directory("dir-2", F->k[K_CPI2]));
	tu_append(s, &now_t, delivery(s, 1, "r1", sp->ack, cpi));
	if (sp->rotate_after) {
		tu_append(s, &now_t, directory("dir-2", F->k[K_CPI2]));
		cpi = F->k[K_CPI2];
	}
	tu_append(s, &now_t, referral("r2", ASST));
	free(tu_checkpoint(s, ORIGIN, F->k[K_BROKER]));
	assert_int_equal(rete_store_size(s, NULL, &size, &m), RETE_OK);
	if (sp->cosign) {
		const char *ids[2] = {CPI, ASST};
		const rete_seckey *ks[2] = {cpi, F->k[K_ASST]};
		cosign_store(s, ids, ks, 2);
	}
	if (sp->forged_cosign) { /* a line named asst signed by social's key */
		const char *ids[1] = {ASST};
		const rete_seckey *ks[1] = {F->k[K_SOCIAL]};
		cosign_store(s, ids, ks, 1);
	}
	if (sp->stranger_line) { /* a cosignature by nobody the verifier knows */
		const char *ids[1] = {"stranger.test"};
		const rete_seckey *ks[1] = {F->k[K_SOCIAL]};
		cosign_store(s, ids, ks, 1);
	}
	if (sp->stamp || sp->other_stamp) {
		char *other = NULL;
		uint8_t root[RETE_MERKLE_HASH] = {7};
		if (sp->other_stamp)
			assert_int_equal(
			    rete_checkpoint_sign(ORIGIN, size, root, F->k[K_BROKER], &other, &m),
			    RETE_OK);
		stamp(s, size, other);
		free(other);
	}
	{
		Rete__Message msg;
		tu_message_init(&msg, "u1", CPI, SOCIAL, "case-7", ORIGIN);
		tu_append(s, &now_t,
			  tu_sign_update(&msg, "r1", RETE__STATUS__STATUS_ACCEPTED, cpi));
	}
	free(tu_checkpoint(s, ORIGIN, F->k[K_BROKER]));
	if (sp->cosign) { /* the bundle keeps only the broker's line of the latest */
		const char *ids[1] = {CPI};
		const rete_seckey *ks[1] = {cpi};
		cosign_store(s, ids, ks, 1);
	}
	rete_store_close(&s);
}

/* bundle exports message id of SOCIAL from the store (read-only) as text. */
static char *bundle(const char *id)
{
	rete_store *s = NULL;
	rete_evidence ev;
	char *text = NULL;
	rete_msg m;
	assert_int_equal(rete_store_open(&s, F->dir, RETE_STORE_RDONLY, &m), RETE_OK);
	if (rete_evidence_from_store(s, SOCIAL, id, &ev, &m) != RETE_OK)
		fail_msg("export: %s", m.text);
	rete_store_close(&s);
	assert_int_equal(rete_evidence_write(&ev, &text, &m), RETE_OK);
	rete_evidence_free(&ev);
	return text;
}

/* bundle_raw: bundle(id) as a careless or dishonest exporter would make
 * it, the checkpoint with every line the store holds (the export keeps
 * only the cosignatures the bundle's directory can check). */
static char *bundle_raw(const char *id)
{
	rete_store *s = NULL;
	rete_evidence ev;
	rete_checkpoint cp;
	char *text = NULL, *stored = NULL;
	rete_msg m;
	assert_int_equal(rete_store_open(&s, F->dir, RETE_STORE_RDONLY, &m), RETE_OK);
	if (rete_evidence_from_store(s, SOCIAL, id, &ev, &m) != RETE_OK)
		fail_msg("export: %s", m.text);
	assert_int_equal(rete_checkpoint_parse(ev.checkpoint, strlen(ev.checkpoint), &cp, &m),
			 RETE_OK);
	assert_int_equal(rete_store_checkpoint_get(s, NULL, cp.size, &stored, &m), RETE_OK);
	rete_store_close(&s);
	free(ev.checkpoint);
	ev.checkpoint = stored;
	assert_int_equal(rete_evidence_write(&ev, &text, &m), RETE_OK);
	rete_evidence_free(&ev);
	return text;
}

/* check verifies text with the given CA and policy (NULL: none); returns
 * the part that failed, or "holds". */
static const char *check(const char *text, const char *ca, const char *policy,
			 rete_evidence_facts *f, rete_msg *m)
{
	rete_evidence_opts o;
	const char *part = NULL;
	memset(&o, 0, sizeof(o));
	o.broker_key = F->k[K_BROKER]->pub;
	o.tsa_ca = ca;
	o.witnesses = policy;
	rete_err e = rete_evidence_verify(text, strlen(text), &o, f, &part, m);
	if (e == RETE_OK)
		assert_null(part);
	else
		assert_non_null(part);
	return part != NULL ? part : "holds";
}

static void write_policy(const char *path, const char *const *ids, const rete_seckey *const *ks,
			 int n, int quorum)
{
	char text[2048];
	size_t l = 0;
	for (int i = 0; i < n; i++) {
		char *b = rete_b64_encode(ks[i]->pub.ed, RETE_PK_LEN);
		l += (size_t)snprintf(text + l, sizeof(text) - l, "witness %s %s\n", ids[i], b);
		free(b);
	}
	if (quorum > 0)
		snprintf(text + l, sizeof(text) - l, "quorum %d\n", quorum);
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
}

static int setup(void **state)
{
	rete_msg m;
	(void)state;
	F = calloc(1, sizeof(*F));
	if (F == NULL || rete_tsa_global_init(&m) != RETE_OK)
		return -1;
	for (int i = 0; i < K_N; i++)
		if (rete_seckey_generate(&F->k[i], &m) != RETE_OK)
			return -1;
	if (local_tsa_open(&F->tsa, RETE_BIN_DIR) != 0)
		return -1;
	F->tmp = tu_tmpdir("evidence-files");
	if (F->tmp == NULL ||
	    rete_keyfile_write(F->tmp, BROKER, F->k[K_BROKER], false, &m) != RETE_OK)
		return -1;
	tu_path(F->bkey, sizeof(F->bkey), "%s/" BROKER ".pub", F->tmp);
	tu_path(F->policy, sizeof(F->policy), "%s/witnesses.policy", F->tmp);
	tu_path(F->policy_missing, sizeof(F->policy_missing), "%s/more.policy", F->tmp);
	{
		const char *ids[2] = {CPI, ASST};
		const rete_seckey *ks[2] = {F->k[K_CPI], F->k[K_ASST]};
		write_policy(F->policy, ids, (const rete_seckey *const *)ks, 2, 0);
	}
	{ /* three witnesses, all required: social never cosigns */
		const char *ids[3] = {CPI, ASST, SOCIAL};
		const rete_seckey *ks[3] = {F->k[K_CPI], F->k[K_ASST], F->k[K_SOCIAL]};
		write_policy(F->policy_missing, ids, (const rete_seckey *const *)ks, 3, 3);
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	if (F == NULL)
		return 0;
	local_tsa_close(&F->tsa);
	for (int i = 0; i < K_N; i++)
		rete_seckey_free(&F->k[i]);
	if (getenv("RETE_KEEP") != NULL) {
		fprintf(stderr, "test_evidence: kept %s and %s\n", F->dir ? F->dir : "-",
			F->tmp ? F->tmp : "-");
	} else {
		if (F->dir != NULL)
			tu_rmrf(F->dir);
		if (F->tmp != NULL)
			tu_rmrf(F->tmp);
	}
	free(F->dir);
	free(F->tmp);
	free(F);
	F = NULL;
	rete_tsa_global_cleanup();
	return 0;
}

static const logspec GOOD = {.ack = ACK_GOOD, .stamp = true, .cosign = true};

/* ---- holds ------------------------------------------------------------------------- */

/* verify_usage_italian: the exit-2 sentences of `rete evidence verify`
 * (files that cannot be read, a missing argument) follow --lang it and
 * LANG=it as the story does (eyes12 #10); bundle is a good bundle. */
static void verify_usage_italian(const char *bundle)
{
	char notpem[1300], *out = NULL;
	tu_path(notpem, sizeof(notpem), "%s/not-a-pem", F->tmp);
	assert_int_equal(tu_write_file(notpem, "no PEM here\n", 12), 0);
	/* named pipes nobody writes to (rev-edges, session 17): the open
	 * blocked for good; now refused at once, in the story's language */
	char fifo[1300];
	tu_path(fifo, sizeof(fifo), "%s/fifo", F->tmp);
	assert_int_equal(tu_run(&out, "rm -f '%s' && mkfifo '%s'", fifo, fifo), 0);
	free(out);
	out = NULL;
	enum { NCASES = 8 };
	char args[NCASES][4000];
	static const char *const it[NCASES] = {
	    "non si può leggere ",
	    "non si possono leggere i certificati della CA della TSA",
	    "--witnesses: non si può aprire la politica dei testimoni",
	    "non si può aprire il file di chiave",
	    "servono il FILE e --broker-key CHIAVE",
	    "non è un file regolare di al massimo 16 MiB",
	    "i certificati della CA della TSA '",
	    "non è un file regolare (è una cartella, un dispositivo, una pipe o un socket)",
	};
	snprintf(args[0], sizeof(args[0]), "'%s/nope.json' --broker-key '%s'", F->tmp, F->bkey);
	snprintf(args[1], sizeof(args[1]), "'%s' --broker-key '%s' --tsa-ca '%s'", bundle, F->bkey,
		 notpem);
	snprintf(args[2], sizeof(args[2]), "'%s' --broker-key '%s' --witnesses '%s/nonexist'",
		 bundle, F->bkey, F->tmp);
	snprintf(args[3], sizeof(args[3]), "'%s' --broker-key '%s/nokey.pub'", bundle, F->tmp);
	snprintf(args[4], sizeof(args[4]), "'%s'", bundle);
	snprintf(args[5], sizeof(args[5]), "'%s' --broker-key '%s'", fifo, F->bkey);
	snprintf(args[6], sizeof(args[6]), "'%s' --broker-key '%s' --tsa-ca '%s'", bundle, F->bkey,
		 fifo);
	snprintf(args[7], sizeof(args[7]), "'%s' --broker-key '%s'", bundle, fifo);
	for (size_t i = 0; i < NCASES; i++) {
		for (int env = 0; env < 2; env++) {
			int rc = tu_run(
			    &out,
			    "LC_ALL= LC_MESSAGES= LANG=%s timeout 20 '%s/rete' evidence verify %s%s",
			    env ? "it_IT.UTF-8" : "C", RETE_BIN_DIR, args[i],
			    env ? "" : " --lang it");
			assert_non_null(out);
			if (rc != 2 || !strstr(out, it[i]) ||
			    !strstr(out, "rete evidence verify: "))
				fail_msg(
				    "evidence verify %s (%s): exit %d, expected 2 and '%s':\n%s",
				    args[i], env ? "LANG=it_IT.UTF-8" : "--lang it", rc, it[i],
				    out);
			free(out);
			out = NULL;
		}
	}
}

static void test_holds(void **state)
{
	rete_evidence_facts f;
	rete_msg m = {{0}};
	const char *part;
	char *text, *story, path[1300], *out = NULL;
	(void)state;

	build(&GOOD);
	text = bundle("r1");
	/* without CA and policy: the token is there, not trusted; the
	 * cosignatures checked with the directory's keys */
	part = check(text, NULL, NULL, &f, &m);
	if (strcmp(part, "holds") != 0)
		fail_msg("%s: %s", part, m.text);
	assert_string_equal(f.sender, SOCIAL);
	assert_string_equal(f.recipient, CPI);
	assert_string_equal(f.message_id, "r1");
	assert_int_equal(f.index, 1);
	assert_int_equal(f.delivery_index, 2);
	assert_int_equal(f.checkpoint_size, 4);
	assert_int_equal(f.latest_size, 5);
	assert_int_equal(f.acked_at, 1790000004321);
	assert_true(f.timestamped);
	assert_false(f.timestamp_trusted);
	assert_int_equal(f.cosigned, 2);
	/* with both */
	part = check(text, F->tsa->lt_ca, F->policy, &f, &m);
	if (strcmp(part, "holds") != 0)
		fail_msg("%s: %s", part, m.text);
	assert_true(f.timestamp_trusted);
	assert_true(f.timestamp_at > 0);
	assert_int_equal(f.cosigned, 2);
	assert_int_equal(f.witnesses, 2);
	assert_int_equal(f.quorum, 2);
	story = rete_evidence_story(&f, RETE_EVIDENCE_EN);
	assert_non_null(strstr(story, "sent by " SOCIAL " to " CPI));
	assert_non_null(strstr(story, "logged at 2026-"));
	assert_non_null(strstr(story, "timestamped by "));
	assert_non_null(strstr(story, "delivered to " CPI));
	assert_non_null(strstr(story, "acknowledged by " CPI " at 2026-09-21 14:13:24 UTC"));
	assert_non_null(strstr(story, "cosigned by 2 of 2 witnesses"));
	assert_non_null(strstr(story, "the evidence holds"));
	free(story);
	story = rete_evidence_story(&f, RETE_EVIDENCE_IT);
	assert_non_null(strstr(story, "inviato da " SOCIAL " a " CPI));
	assert_non_null(strstr(story, "marcato temporalmente da "));
	assert_non_null(strstr(story, "cofirmato da 2 di 2 testimoni"));
	assert_non_null(strstr(story, "la prova regge"));
	free(story);
	free(text);

	/* the CLI: export from the store, verify, exit codes */
	tu_path(path, sizeof(path), "%s/r1.evidence.json", F->tmp);
	assert_int_equal(tu_run(&out,
				"'%s/rete' evidence export " SOCIAL " r1 --store '%s' -o '%s'",
				RETE_BIN_DIR, F->dir, path),
			 0);
	free(out);
	assert_int_equal(tu_run(&out,
				"'%s/rete' evidence verify '%s' --broker-key '%s' --tsa-ca '%s' "
				"--witnesses '%s' --lang en",
				RETE_BIN_DIR, path, F->bkey, F->tsa->lt_ca, F->policy),
			 0);
	assert_non_null(strstr(out, "cosigned by 2 of 2 witnesses"));
	free(out);
	assert_int_equal(tu_run(&out,
				"LANG=it_IT.UTF-8 '%s/rete' evidence verify '%s' --broker-key '%s'",
				RETE_BIN_DIR, path, F->bkey),
			 0);
	assert_non_null(strstr(out, "la prova regge"));
	free(out);
	/* the wrong broker key: the checkpoint fails, exit 1 */
	assert_int_equal(rete_keyfile_write(F->tmp, "other", F->k[K_ASST], true, &m), RETE_OK);
	assert_int_equal(tu_run(&out,
				"'%s/rete' evidence verify '%s' --broker-key '%s/other.pub' "
				"--lang en",
				RETE_BIN_DIR, path, F->tmp),
			 1);
	assert_non_null(strstr(out, "THE EVIDENCE DOES NOT HOLD: the checkpoint:"));
	free(out);
	verify_usage_italian(path);
}

/* ---- every byte ---------------------------------------------------------------------- */

/* value_part: the part of the bundle the byte at `at` belongs to (the
 * value of a key), or "form" for the document around the values. */
static const char *value_part(const char *text, size_t at, bool *in_value)
{
	static const struct {
		const char *key, *part;
	} parts[] = {
	    {"\"messageProof\": ", "message"},
	    {"\"message\": ", "message"},
	    {"\"directoryProof\": ", "directory"},
	    {"\"directory\": ", "directory"},
	    {"\"deliveryDirectoryProof\": ", "delivery"},
	    {"\"deliveryDirectory\": ", "delivery"},
	    {"\"deliveryProof\": ", "delivery"},
	    {"\"delivery\": ", "delivery"},
	    {"\"checkpoint\": ", "checkpoint"},
	    {"\"timestamp\": ", "timestamp"},
	    {"\"latest\": ", "consistency"},
	    {"\"consistency\": ", "consistency"},
	};
	*in_value = false;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		const char *k = strstr(text, parts[i].key);
		if (k == NULL)
			continue;
		const char *v = k + strlen(parts[i].key), *end;
		if (*v == '"') { /* a string: up to its closing quote */
			end = v + 1;
			while (*end != '"')
				end += *end == '\\' ? 2 : 1;
		} else { /* an array */
			end = strchr(v, ']');
		}
		/* the characters strictly inside the quotes / brackets */
		if (text + at > v && text + at < end) {
			/* inside an array, only the hashes' characters */
			if (*v == '[') {
				const char *c = text + at;
				if (*c == '"' || *c == ',' || *c == ' ' || *c == '\n')
					return "form";
			}
			*in_value = true;
			return parts[i].part;
		}
	}
	return "form";
}

static void flip_all(const char *text, const char *ca, const char *policy)
{
	size_t len = strlen(text);
	char *copy = strdup(text);
	rete_msg m;
	size_t n_form = 0, n_value = 0;

	for (size_t i = 0; i < len; i++) {
		bool in_value;
		const char *want = value_part(text, i, &in_value), *part;
		memcpy(copy, text, len + 1);
		copy[i] ^= 0x01;
		part = check(copy, ca, policy, NULL, &m);
		/* the reason has its Italian, all of it (verify --lang it) */
		{
			char it[2048];
			if (strcmp(part, "holds") != 0 &&
			    !rete_evidence_reason(m.text, RETE_EVIDENCE_IT, it, sizeof(it)))
				fail_msg("byte %zu flipped: no Italian for the reason: %s", i, it);
		}
		if (strcmp(part, "holds") == 0)
			fail_msg("byte %zu ('%c') flipped: the bundle still verifies", i, text[i]);
		if (in_value) {
			n_value++;
			/* a JSON escape broken by the flip is the form's to refuse */
			bool esc = text[i] == '\\' || (i > 0 && text[i - 1] == '\\');
			bool ok =
			    strcmp(part, want) == 0 || (esc && strcmp(part, "form") == 0) ||
			    (strcmp(want, "checkpoint") == 0 && strcmp(part, "cosignatures") == 0);
			if (!ok)
				fail_msg("byte %zu of the %s part flipped: verify names '%s' (%s)",
					 i, want, part, m.text);
		} else {
			n_form++;
			if (strcmp(part, "form") != 0)
				fail_msg(
				    "byte %zu (around the values) flipped: verify names '%s' (%s)",
				    i, part, m.text);
		}
	}
	fprintf(stderr, "flipped %zu bytes: %zu inside values, %zu around them: each failed\n", len,
		n_value, n_form);
	free(copy);
}

static void test_every_flipped_byte_fails(void **state)
{
	char *text;
	(void)state;
	build(&GOOD);
	text = bundle("r1");
	flip_all(text, F->tsa->lt_ca, F->policy);
	free(text);
}

/* every_reordering_fails: the members in another order than the writer's
 * (each adjacent pair swapped, the layout otherwise exact) are refused by
 * the form, with a sentence naming both; found by fuzz_evidence, which
 * saw such a bundle parse and be written back in the other order. */
static void test_every_reordering_fails(void **state)
{
	(void)state;
	build(&GOOD);
	char *text = bundle("r1");
	json_error_t je;
	json_t *doc = json_loads(text, 0, &je);
	assert_non_null(doc);
	size_t n = json_object_size(doc), tried = 0;
	const char **names = calloc(n, sizeof(*names));
	assert_non_null(names);
	const char *k;
	json_t *v;
	size_t i = 0;
	json_object_foreach(doc, k, v) names[i++] = k;
	for (size_t s = 0; s + 1 < n; s++) {
		json_t *o = json_object();
		for (size_t j = 0; j < n; j++) {
			size_t from = j == s ? s + 1 : j == s + 1 ? s : j;
			json_object_set(o, names[from], json_object_get(doc, names[from]));
		}
		char *d = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		assert_non_null(d);
		size_t dl = strlen(d);
		char *t = malloc(dl + 2);
		assert_non_null(t);
		memcpy(t, d, dl);
		t[dl] = '\n';
		t[dl + 1] = '\0';
		rete_msg m;
		const char *part = check(t, F->tsa->lt_ca, F->policy, NULL, &m);
		if (strcmp(part, "form") != 0 || !strstr(m.text, "order"))
			fail_msg("%s and %s swapped: verify names '%s' (%s)", names[s],
				 names[s + 1], part, m.text);
		assert_non_null(strstr(m.text, names[s]));
		tried++;
		free(t);
		free(d);
		json_decref(o);
	}
	assert_true(tried >= 10);
	free(names);
	json_decref(doc);
	free(text);
}

/* ---- timestamp --------------------------------------------------------------------- */

static void test_timestamp(void **state)
{
	logspec sp = GOOD;
	rete_msg m = {{0}};
	const char *part;
	char *text;
	(void)state;

	/* no token: holds without --tsa-ca, fails with it */
	sp.stamp = false;
	build(&sp);
	text = bundle("r1");
	assert_null(strstr(text, "\"timestamp\""));
	assert_string_equal(check(text, NULL, NULL, NULL, &m), "holds");
	part = check(text, F->tsa->lt_ca, NULL, NULL, &m);
	assert_string_equal(part, "timestamp");
	assert_non_null(strstr(m.text, "no time-stamp token"));
	free(text);

	/* a token over another checkpoint of the same size */
	sp.other_stamp = true;
	build(&sp);
	text = bundle("r1");
	part = check(text, F->tsa->lt_ca, NULL, NULL, &m);
	assert_string_equal(part, "timestamp");
	free(text);

	/* a good token, checked against a CA that did not issue the TSA's */
	build(&GOOD);
	text = bundle("r1");
	assert_string_equal(check(text, F->tsa->lt_ca, NULL, NULL, &m), "holds");
	part = check(text, F->tsa->lt_other_ca, NULL, NULL, &m);
	assert_string_equal(part, "timestamp");
	free(text);
}

/* ---- acknowledgement ---------------------------------------------------------------- */

static void test_acknowledgement(void **state)
{
	static const struct {
		enum ack_mode mode;
		const char *needle, *it; /* the reason, and its Italian (--lang it) */
	} cases[] = {
	    {ACK_NONE, "unsigned (logged before protocol 3)",
	     "non porta una conferma firmata dal destinatario: senza firma (registrata prima del "
	     "protocollo 3); prova solo la parola del broker"},
	    {ACK_WRONG_KEY, "directory in force at the delivery",
	     "verificata con la chiave di " CPI " nella directory in vigore alla consegna: "},
	    {ACK_WRONG_LEAF, "leaf hash",
	     "l'hash della foglia nella conferma non è quello della voce del messaggio: il "
	     "destinatario ha confermato altri byte"},
	    {ACK_REFUSAL, "refusal", "il destinatario ha firmato un rifiuto (errore "},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		logspec sp = GOOD;
		rete_msg m = {{0}};
		char *text, path[1300], *out = NULL;
		sp.ack = cases[i].mode;
		build(&sp);
		text = bundle("r1");
		const char *part = check(text, NULL, NULL, NULL, &m);
		if (strcmp(part, "acknowledgement") != 0 || strstr(m.text, cases[i].needle) == NULL)
			fail_msg("ack case %zu: part %s: %s", i, part, m.text);
		/* the CLI names the part, exit 1 */
		tu_path(path, sizeof(path), "%s/ack.json", F->tmp);
		assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
		assert_int_equal(
		    tu_run(&out, "'%s/rete' evidence verify '%s' --broker-key '%s' --lang it",
			   RETE_BIN_DIR, path, F->bkey),
		    1);
		assert_non_null(strstr(out, "LA PROVA NON REGGE: la conferma di ricezione"));
		/* the reason in Italian too, no English left in it (but the
		 * refusal's own words, as the recipient signed them) */
		if (strstr(out, cases[i].it) == NULL || strstr(out, cases[i].needle) != NULL ||
		    (cases[i].mode != ACK_REFUSAL && strstr(out, " the ") != NULL) ||
		    strstr(out, "dettaglio tecnico") != NULL)
			fail_msg("ack case %zu, --lang it: %s", i, out);
		free(out);
		/* and in English as it was */
		assert_int_equal(
		    tu_run(&out, "'%s/rete' evidence verify '%s' --broker-key '%s' --lang en",
			   RETE_BIN_DIR, path, F->bkey),
		    1);
		if (strstr(out, "THE EVIDENCE DOES NOT HOLD: the recipient's acknowledgement: ") ==
			NULL ||
		    strstr(out, m.text) == NULL)
			fail_msg("ack case %zu, --lang en: %s (want %s)", i, out, m.text);
		free(out);
		free(text);
	}
	/* export checks what it assembled before it writes: a log whose ACK
	 * is another key's (a broker that logged what it should have refused)
	 * gives no bundle that would fail later, in front of a court */
	logspec sp = GOOD;
	char path[1300], *out = NULL;
	sp.ack = ACK_WRONG_KEY;
	build(&sp);
	tu_path(path, sizeof(path), "%s/bad-export.json", F->tmp);
	unlink(path);
	assert_int_equal(tu_run(&out,
				"'%s/rete' evidence export " SOCIAL " r1 --store '%s' "
				"--broker-key '%s' -o '%s' 2>&1",
				RETE_BIN_DIR, F->dir, F->bkey, path),
			 1);
	if (strstr(out, "does not hold") == NULL || strstr(out, "acknowledgement") == NULL ||
	    strstr(out, "nothing written") == NULL)
		fail_msg("export of a bundle that does not hold: %s", out);
	free(out);
	assert_int_equal(access(path, F_OK), -1);
	/* the good log: exported and checked, with the key and without */
	build(&GOOD);
	assert_int_equal(tu_run(&out,
				"'%s/rete' evidence export " SOCIAL " r1 --store '%s' "
				"--broker-key '%s' -o '%s' 2>&1",
				RETE_BIN_DIR, F->dir, F->bkey, path),
			 0);
	assert_non_null(strstr(out, "checked"));
	free(out);
}

/* ---- cosignatures --------------------------------------------------------------------- */

static void test_cosignatures(void **state)
{
	logspec sp = GOOD;
	rete_msg m = {{0}};
	const char *part;
	char *text;
	(void)state;

	/* a policy whose quorum did not cosign */
	build(&GOOD);
	text = bundle("r1");
	part = check(text, NULL, F->policy_missing, NULL, &m);
	assert_string_equal(part, "cosignatures");
	assert_non_null(strstr(m.text, SOCIAL));
	free(text);

	/* no cosignature at all: holds without a policy, fails with one */
	sp.cosign = false;
	build(&sp);
	text = bundle("r1");
	assert_string_equal(check(text, NULL, NULL, NULL, &m), "holds");
	part = check(text, NULL, F->policy, NULL, &m);
	assert_string_equal(part, "cosignatures");
	free(text);

	/* a forged line (asst's name, social's key): fails with or without */
	sp = GOOD;
	sp.forged_cosign = true;
	build(&sp);
	text = bundle("r1"); /* the export leaves the forged line out */
	assert_string_equal(check(text, NULL, NULL, NULL, &m), "holds");
	free(text);
	text = bundle_raw("r1");
	assert_string_equal(check(text, NULL, NULL, NULL, &m), "cosignatures");
	assert_string_equal(check(text, NULL, F->policy, NULL, &m), "cosignatures");
	free(text);

	/* a policy file that is not one: a usage error (exit 2), not a verdict */
	{
		rete_evidence_opts o;
		char bad[1300], ev[1300], *out = NULL;
		text = bundle("r1");
		memset(&o, 0, sizeof(o));
		o.broker_key = F->k[K_BROKER]->pub;
		o.witnesses = tu_path(bad, sizeof(bad), "%s/bad.policy", F->tmp);
		assert_int_equal(
		    tu_write_file(bad, "witness " CPI "\n", strlen("witness " CPI "\n")), 0);
		assert_int_equal(rete_evidence_verify(text, strlen(text), &o, NULL, NULL, &m),
				 RETE_EIO);
		assert_non_null(strstr(m.text, "--witnesses"));
		tu_path(ev, sizeof(ev), "%s/ev.json", F->tmp);
		assert_int_equal(tu_write_file(ev, text, strlen(text)), 0);
		assert_int_equal(tu_run(&out,
					"'%s/rete' evidence verify '%s' --broker-key '%s' "
					"--witnesses '%s' 2>&1",
					RETE_BIN_DIR, ev, F->bkey, bad),
				 2);
		free(out);
		assert_int_equal(tu_run(&out,
					"'%s/rete' evidence verify '%s' --broker-key '%s' "
					"--witnesses '%s/no-such.policy' 2>&1",
					RETE_BIN_DIR, ev, F->bkey, F->tmp),
				 2);
		free(out);
		free(text);
	}

	/* a line nobody can check */
	sp = GOOD;
	sp.stranger_line = true;
	build(&sp);
	text = bundle("r1"); /* the export leaves it out */
	assert_null(strstr(text, "stranger.test"));
	free(text);
	text = bundle_raw("r1");
	part = check(text, NULL, NULL, NULL, &m);
	assert_string_equal(part, "cosignatures");
	assert_non_null(strstr(m.text, "stranger.test"));
	free(text);

	/* the broker's own signature line twice: the checkpoint part, which
	 * counts the lines after the note's blank line */
	{
		rete_store *s = NULL;
		rete_evidence ev;
		const char *own;
		char *twice = NULL;
		size_t ll;
		build(&GOOD);
		assert_int_equal(rete_store_open(&s, F->dir, RETE_STORE_RDONLY, &m), RETE_OK);
		assert_int_equal(rete_evidence_from_store(s, SOCIAL, "r1", &ev, &m), RETE_OK);
		rete_store_close(&s);
		own = strstr(ev.checkpoint, "\n\n\xe2\x80\x94 " ORIGIN " ");
		assert_non_null(own);
		own += 2;
		ll = (size_t)(strchr(own, '\n') + 1 - own);
		assert_true(asprintf(&twice, "%s%.*s", ev.checkpoint, (int)ll, own) > 0);
		free(ev.checkpoint);
		ev.checkpoint = twice;
		assert_int_equal(rete_evidence_write(&ev, &text, &m), RETE_OK);
		rete_evidence_free(&ev);
		assert_string_equal(check(text, NULL, NULL, NULL, &m), "checkpoint");
		assert_non_null(strstr(m.text, "the checkpoint carries 2 signature lines of the "
					       "broker (" ORIGIN "); one is expected"));
		free(text);
	}
}

/* with_line: the bundle of r1 (GOOD) with line added to its checkpoint's
 * signature lines, written in the exporter's form (an edited bundle). */
static char *with_line(const char *line)
{
	rete_store *s = NULL;
	rete_evidence ev;
	char *text = NULL, *more = NULL;
	rete_msg m;
	assert_int_equal(rete_store_open(&s, F->dir, RETE_STORE_RDONLY, &m), RETE_OK);
	assert_int_equal(rete_evidence_from_store(s, SOCIAL, "r1", &ev, &m), RETE_OK);
	rete_store_close(&s);
	assert_true(asprintf(&more, "%s%s\n", ev.checkpoint, line) > 0);
	free(ev.checkpoint);
	ev.checkpoint = more;
	assert_int_equal(rete_evidence_write(&ev, &text, &m), RETE_OK);
	rete_evidence_free(&ev);
	return text;
}

/* A party's name on two signature lines of the checkpoint: the broker
 * keeps one line per party, so a second is an edit. Each variant once
 * verified, and the story without a policy counted the party twice
 * ("cosigned by 3 parties of the directory: cpi.test, asst.test,
 * cpi.test"). */
static void test_cosignature_lines_once(void **state)
{
	rete_evidence_facts f;
	rete_msg m = {{0}};
	char *text, *line = NULL, *note = NULL;
	(void)state;

	build(&GOOD);
	text = bundle("r1");
	assert_string_equal(check(text, NULL, NULL, &f, &m), "holds");
	assert_int_equal(f.cosigned, 2);
	{ /* cpi's line of the exported checkpoint, and the note without it */
		rete_evidence ev;
		const char *at, *nl;
		assert_int_equal(rete_evidence_parse(text, strlen(text), &ev, NULL, &m), RETE_OK);
		at = strstr(ev.checkpoint, "\xe2\x80\x94 " CPI " ");
		assert_non_null(at);
		nl = strchr(at, '\n');
		line = strndup(at, (size_t)(nl - at));
		note = strdup(ev.checkpoint);
		rete_evidence_free(&ev);
	}
	free(text);

	/* the same line twice */
	text = with_line(line);
	assert_string_equal(check(text, NULL, NULL, &f, &m), "cosignatures");
	assert_non_null(strstr(m.text, "2 signature lines of " CPI));
	assert_string_equal(check(text, NULL, F->policy, &f, &m), "cosignatures");
	free(text);

	/* a second, valid cosignature of cpi at another time */
	{
		char *other = NULL;
		assert_int_equal(
		    rete_cosign_line(note, strlen(note), CPI, F->k[K_CPI], 1790000099, &other, &m),
		    RETE_OK);
		text = with_line(other);
		free(other);
		assert_string_equal(check(text, NULL, NULL, &f, &m), "cosignatures");
		assert_non_null(strstr(m.text, "2 signature lines of " CPI));
		free(text);
	}

	/* a line of cpi's name that is no cosignature at all (random bytes:
	 * another key ID), beside cpi's valid one */
	{
		uint8_t junk[RETE_COSIGN_BLOB];
		char *b64, *forged = NULL;
		randombytes_buf(junk, sizeof(junk));
		b64 = rete_b64_encode(junk, sizeof(junk));
		assert_true(asprintf(&forged, "\xe2\x80\x94 " CPI " %s", b64) > 0);
		free(b64);
		text = with_line(forged);
		free(forged);
		assert_string_equal(check(text, NULL, NULL, &f, &m), "cosignatures");
		assert_non_null(strstr(m.text, CPI));
		assert_string_equal(check(text, NULL, F->policy, &f, &m), "cosignatures");
		free(text);
	}
	free(line);
	free(note);
}

/* ---- rotation, not found ---------------------------------------------------------------- */

static void test_rotation(void **state)
{
	logspec sp = GOOD;
	rete_evidence_facts f;
	rete_msg m = {{0}};
	char *text;
	(void)state;
	sp.rotate = true;
	build(&sp);
	text = bundle("r1");
	assert_non_null(strstr(text, "\"deliveryDirectory\""));
	const char *part = check(text, F->tsa->lt_ca, NULL, &f, &m);
	if (strcmp(part, "holds") != 0)
		fail_msg("%s: %s", part, m.text);
	assert_int_equal(f.directory_index, 0);
	assert_int_equal(f.delivery_directory_index, 2);
	/* (cpi cosigned with its new key: checked with the directory's keys) */
	flip_all(text, F->tsa->lt_ca, NULL);
	free(text);
}

/* cpi's key rotated after the delivery and cpi cosigned the checkpoint
 * with its new key, which the bundle's directories do not hold: the export
 * leaves that line out (the bundle keeps only what it can check), and the
 * bundle holds, asst's cosignature counted. */
static void test_rotation_after_delivery(void **state)
{
	logspec sp = GOOD;
	rete_evidence_facts f;
	rete_msg m = {{0}};
	char *text;
	(void)state;
	sp.rotate_after = true;
	build(&sp);
	text = bundle("r1");
	const char *part = check(text, F->tsa->lt_ca, NULL, &f, &m);
	if (strcmp(part, "holds") != 0)
		fail_msg("%s: %s", part, m.text);
	assert_int_equal(f.cosigned, 1);
	assert_string_equal(f.cosigners, ASST);
	free(text);
}

static void test_not_found(void **state)
{
	rete_store *s = NULL;
	rete_evidence ev;
	rete_msg m = {{0}};
	char *out = NULL;
	(void)state;
	build(&GOOD);
	assert_int_equal(rete_store_open(&s, F->dir, RETE_STORE_RDONLY, &m), RETE_OK);
	assert_int_equal(rete_evidence_from_store(s, SOCIAL, "nope", &ev, &m), RETE_ENOENT);
	assert_non_null(strstr(m.text, "no message 'nope'"));
	assert_int_equal(rete_evidence_from_store(s, SOCIAL, "r2", &ev, &m), RETE_ENOENT);
	assert_non_null(strstr(m.text, "has no Delivery"));
	rete_store_close(&s);
	assert_int_equal(tu_run(&out, "'%s/rete' evidence export " SOCIAL " r2 --store '%s' -o -",
				RETE_BIN_DIR, F->dir),
			 1);
	free(out);
}

/* ---- standard tools --------------------------------------------------------------------- */

/* doc_block copies from docs/auditing.md the fenced block (```lang) that
 * contains needle into path; the test fails when there is none. */
static void doc_block(const char *lang, const char *needle, const char *path)
{
	char doc[1300], open[32];
	char *text =
	    tu_read_file(tu_path(doc, sizeof(doc), "%s/docs/auditing.md", RETE_SOURCE_DIR), NULL);
	assert_non_null(text);
	snprintf(open, sizeof(open), "```%s\n", lang);
	for (char *p = strstr(text, open); p != NULL; p = strstr(p + 1, open)) {
		char *b = p + strlen(open), *end = strstr(b, "```\n");
		assert_non_null(end);
		*end = '\0';
		if (strstr(b, needle) != NULL) {
			assert_int_equal(tu_write_file(path, b, strlen(b)), 0);
			free(text);
			return;
		}
		*end = '`';
	}
	free(text);
	fail_msg("docs/auditing.md has no %s block with '%s'", lang, needle);
}

static void test_standard_tools(void **state)
{
	char script[1300], sh[1300], path[1300], *text, *out = NULL;
	(void)state;
	build(&GOOD);
	text = bundle("r1");
	tu_path(script, sizeof(script), "%s/evidence_check.py", F->tmp);
	tu_path(sh, sizeof(sh), "%s/token.sh", F->tmp);
	tu_path(path, sizeof(path), "%s/ref-a1.evidence.json", F->tmp);
	doc_block("python", "# evidence_check.py", script);
	doc_block("sh", "openssl ts -verify", sh);
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);

	/* the script of the docs: holds, then fails on altered copies */
	if (tu_run(&out, "python3 '%s' '%s' '%s' 2>&1", script, path, F->bkey) != 0)
		fail_msg("evidence_check.py: %s", out);
	assert_non_null(strstr(out, "holds: " SOCIAL " -> " CPI ", entry 1"));
	free(out);
	static const char *const keys_to_alter[] = {"\"message\": \"", "\"directory\": \"",
						    "\"delivery\": \"",
						    "\"consistency\": [\n    \""};
	for (size_t i = 0; i < sizeof(keys_to_alter) / sizeof(keys_to_alter[0]); i++) {
		char *copy = strdup(text), *v = strstr(copy, keys_to_alter[i]);
		assert_non_null(v);
		v += strlen(keys_to_alter[i]) + 20;
		*v = *v == 'A' ? 'B' : 'A';
		assert_int_equal(tu_write_file(path, copy, strlen(copy)), 0);
		assert_int_not_equal(
		    tu_run(&out, "python3 '%s' '%s' '%s' 2>&1", script, path, F->bkey), 0);
		free(out);
		free(copy);
	}

	/* the openssl commands of the docs, on the bundle and the TSA's CA */
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
	assert_int_equal(tu_run(&out, "cp '%s' '%s/tsa-ca.pem'", F->tsa->lt_ca, F->tmp), 0);
	free(out);
	if (tu_run(&out, "cd '%s' && bash -e token.sh 2>&1", F->tmp) != 0)
		fail_msg("the openssl commands of docs/auditing.md: %s", out);
	assert_non_null(strstr(out, "Verification: OK"));
	assert_non_null(strstr(out, "Time stamp:"));
	free(out);
	/* and they refuse a token over another checkpoint */
	{
		logspec sp = GOOD;
		sp.stamp = false;
		sp.other_stamp = true;
		build(&sp);
		free(text);
		text = bundle("r1");
		assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
		assert_int_not_equal(tu_run(&out, "cd '%s' && bash -e token.sh 2>&1", F->tmp), 0);
		free(out);
	}
	free(text);
}

/* ---- a real run ----------------------------------------------------------------------- */

#define RUN_WAIT 90000 /* generous: 2 cores, sanitizers */

/* run_export runs `rete evidence export` (args: the source) into path
 * until it is written (exit 0) or the deadline passes; exit 1 means not
 * yet (not delivered, or no checkpoint covers the delivery yet). */
static int run_export(const char *args, const char *path)
{
	int64_t end = it_mono_ms() + it_scaled_ms(RUN_WAIT);
	int rc;
	char *out = NULL;
	for (;;) {
		free(out);
		out = NULL;
		rc = tu_run(&out, "'%s/rete' evidence export social.mantova run-1 %s -o '%s' 2>&1",
			    RETE_BIN_DIR, args, path);
		if (rc != 1 || it_mono_ms() >= end)
			break;
		it_nap(200); /* polls the log for the delivery and its checkpoint */
	}
	if (rc != 0)
		fprintf(stderr, "rete evidence export %s: %s\n", args, out ? out : "");
	free(out);
	return rc;
}

static void test_real_run(void **state)
{
	it_net *n = it_net_new("evidence-run", NULL);
	char outbox[1300], ini[1300], local[1300], remote[1300], key[1300], src[1500];
	char *out = NULL, *a, *b;
	json_t *j;
	assert_non_null(n);
	*state = n;
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI));

	/* the auditor's configuration, for the export at a distance */
	assert_int_equal(it_audit_ini(n, ini, sizeof(ini), "timeout = 10s\n"), 0);

	/* a referral, as an agency's system drops it into the outbox */
	j = json_pack("{s:s,s:{s:s,s:s},s:s,s:s,s:{s:s,s:s,s:s,s:{s:s,s:s,s:s},s:s},"
		      "s:{s:{s:s,s:s}}}",
		      "id", "run-1", "operator", "staffId", "as-0042", "role", "social-worker",
		      "recipient", "cpi.mantova", "caseId", "mn-2026-0173", "referral", "service",
		      "employment-orientation", "priority", "routine", "reasonCode",
		      "long-term-unemployment", "consent", "basis", "consent", "givenAt",
		      "2026-11-20T09:30:00Z", "reference", "CONS-2026-0412", "ageBand", "adult",
		      "private", "person", "name", "Maria Rossi", "fiscalCode", "RSSMRA85M41E897X");
	a = json_dumps(j, JSON_INDENT(2));
	json_decref(j);
	it_spool(n, IT_SOCIAL, "outbox", outbox, sizeof(outbox));
	tu_path(src, sizeof(src), "%s/.run-1.json.tmp", outbox);
	assert_int_equal(tu_write_file(src, a, strlen(a)), 0);
	free(a);
	tu_path(local, sizeof(local), "%s/run-1.json", outbox);
	assert_int_equal(rename(src, local), 0);

	/* exported from the store, then from the broker at a distance */
	tu_path(local, sizeof(local), "%s/local.evidence.json", n->dir);
	tu_path(remote, sizeof(remote), "%s/remote.evidence.json", n->dir);
	tu_path(src, sizeof(src), "--store '%s'", n->data);
	assert_int_equal(run_export(src, local), 0);
	tu_path(src, sizeof(src), "-c '%s'", ini);
	assert_int_equal(run_export(src, remote), 0);

	/* the same entries either way */
	a = tu_read_file(local, NULL);
	b = tu_read_file(remote, NULL);
	assert_non_null(a);
	assert_non_null(b);
	for (const char *k = "message\0directory\0delivery\0"; *k; k += strlen(k) + 1) {
		json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
		assert_string_equal(json_string_value(json_object_get(ja, k)),
				    json_string_value(json_object_get(jb, k)));
		json_decref(ja);
		json_decref(jb);
	}
	free(a);
	free(b);

	tu_path(key, sizeof(key), "%s/keys/" IT_BROKER_ID ".pub", n->dir);
	for (int i = 0; i < 2; i++) {
		int rc = tu_run(&out, "'%s/rete' evidence verify '%s' --broker-key '%s' --lang en",
				RETE_BIN_DIR, i == 0 ? local : remote, key);
		if (rc != 0)
			fprintf(stderr, "rete evidence verify: %s\n", out);
		assert_int_equal(rc, 0);
		assert_non_null(strstr(out, "sent by social.mantova to cpi.mantova"));
		assert_non_null(strstr(out, "acknowledged by cpi.mantova"));
		assert_non_null(strstr(out, "the evidence holds"));
		free(out);
	}
}

/* ---- reasons in Italian --------------------------------------------------------------- */

/* The store's sentences (store/checkpoint.c, store/merkle.c) as verify
 * gives them, with sample values: --lang it has each all in Italian, no
 * English left inside (R3: an empty line, a key name with '+', a size with
 * a leading zero, 'computed old root', merkle.c's sentences). */
static void test_reasons_italian(void **state)
{
	(void)state;
	static const char *const en[] = {
	    "checkpoint line 2 is empty; the first three lines are origin, tree size and root hash",
	    "checkpoint line 4 is empty; extension lines must not be empty",
	    "note line 5: the key name 'rete+x' contains '+'",
	    "note line 5: the key name '' is empty",
	    "note line 5: the key name 'a b' contains a space",
	    "note line 5: the key name 'a\\x01' has a control character or invalid UTF-8",
	    "note line 5: the key name 'aaaa' is longer than 255 bytes",
	    "the key name 'rete+x' contains '+'",
	    "checkpoint line 2 (tree size) '03' has a leading zero; the size is decimal without "
	    "leading zeroes",
	    "checkpoint line 2 (tree size) '3x' is not a decimal number",
	    "checkpoint line 2 (tree size) '99999999999999999999' is larger than "
	    "18446744073709551615",
	    "checkpoint line 3 (root hash) 'AAAA' is not the standard base64 of exactly 32 bytes",
	    "checkpoint line 1 (origin) is 300 bytes; at most 255 are accepted",
	    "the checkpoint note has a control character or invalid UTF-8 at byte 7 ('\\x01'); "
	    "only "
	    "UTF-8 text and newlines are allowed",
	    "the checkpoint note has more than 64 signature lines",
	    "checkpoint line 4: 'epoch x' is not an epoch line; expected 'epoch N' with N a "
	    "decimal "
	    "number >= 2",
	    "consistency proof from size 3 to 7: computed old root 0a1b2c3d differs from the given "
	    "old root 4e5f6a7b",
	    "consistency proof from size 3 to 7: computed new root 0a1b2c3d differs from the given "
	    "new root 4e5f6a7b",
	    "inclusion proof for leaf 3 in a tree of size 0: the empty tree has no leaves",
	    "inclusion proof for leaf 9 in a tree of size 5: the index must be below the size",
	    "inclusion proof: the leaf hash is 3 bytes; a leaf hash is 32",
	    "inclusion proof: hash 2 is 3 bytes; every hash must be 32",
	    "inclusion proof has 2 hashes; a proof for leaf 3 in a tree of 7 needs 3",
	    "inclusion proof: the root is 3 bytes; a root is 32",
	    "consistency proof from size 0 to 5: a proof from the empty tree proves nothing; the "
	    "old "
	    "size must be at least 1",
	    "consistency proof from size 5 to 3: the new size must not be smaller than the old one",
	    "consistency proof between equal sizes 5 has 2 hashes; it must be empty",
	    "consistency at size 5: the two roots differ (0a1b2c3d, 4e5f6a7b); a tree of one size "
	    "has one root",
	    "consistency proof from size 3 to 5 is empty; a growing tree needs hashes",
	    "consistency proof: hash 1 is 3 bytes; every hash must be 32",
	    "consistency proof has 2 hashes; a proof from size 3 to 7 needs 4",
	    "consistency proof: the roots are 3 and 32 bytes; a root is 32",
	};
	/* English words that no Italian sentence has */
	static const char *const english[] = {
	    "the ",    " is ",	 " has ", "must ",  "contains",	 " bytes",
	    " hashes", " old ",	 " new ", " needs", " tree ",	 "proof",
	    " leaf",   " empty", " size", " line ", "dettaglio", "origin ",
	    "origin)", "zeroes", "old)",  "new)",   " only ",	 "allowed"};
	int bad = 0;
	for (size_t i = 0; i < sizeof(en) / sizeof(en[0]); i++) {
		char it[1024];
		bool all = rete_evidence_reason(en[i], RETE_EVIDENCE_IT, it, sizeof(it));
		const char *w = NULL;
		for (size_t k = 0; w == NULL && k < sizeof(english) / sizeof(english[0]); k++)
			if (strstr(it, english[k]) != NULL)
				w = english[k];
		if (!all || w != NULL) {
			fprintf(stderr, "not all Italian ('%s'): %s\n  -> %s\n", w ? w : "", en[i],
				it);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_holds),
	    cmocka_unit_test(test_every_flipped_byte_fails),
	    cmocka_unit_test(test_every_reordering_fails),
	    cmocka_unit_test(test_timestamp),
	    cmocka_unit_test(test_acknowledgement),
	    cmocka_unit_test(test_cosignatures),
	    cmocka_unit_test(test_cosignature_lines_once),
	    cmocka_unit_test(test_rotation),
	    cmocka_unit_test(test_rotation_after_delivery),
	    cmocka_unit_test(test_not_found),
	    cmocka_unit_test(test_standard_tools),
	    cmocka_unit_test(test_reasons_italian),
	    cmocka_unit_test_teardown(test_real_run, it_teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
