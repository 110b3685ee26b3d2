/* cmd_evidence.c — `rete evidence export` and `rete evidence verify`: one
 * message's evidence bundle (evidence.h), written from a store or from the
 * broker at a distance, and checked offline. */
#define _GNU_SOURCE
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli_access.h"
#include "coord_config.h"
#include "evidence.h"
#include "keys.h"
#include "store.h"
#include "store_identity.h"
#include "wire.h"

#define BATCH 1000u /* entries asked for per query (the broker may send fewer) */

static void evidence_usage(FILE *out)
{
	fprintf(out, "usage: rete evidence export SENDER ID (--store DIR | -c audit.ini) -o FILE\n"
		     "                            [--broker-key KEY]\n"
		     "       rete evidence verify FILE --broker-key KEY [--tsa-ca CERT]\n"
		     "                            [--witnesses POLICY] [--lang it|en]\n"
		     "\n"
		     "export writes the evidence bundle of message ID sent by SENDER (a referral,\n"
		     "update or note): the signed message as logged, the directory entry that\n"
		     "states the sender's key, the broker's Delivery with the recipient's signed\n"
		     "acknowledgement, their inclusion proofs to a stored checkpoint (with the\n"
		     "witnesses' cosignatures and its RFC 3161 time-stamp token, when there is\n"
		     "one) and a consistency proof to the latest checkpoint. From a store folder\n"
		     "(--store, opened read-only) or from the broker as the auditor of audit.ini\n"
		     "(-c). -o - writes to standard output. What it assembled is verified\n"
		     "first, with --broker-key, else the key audit.ini pins or the store\n"
		     "records: a bundle that does not hold is not written (exit 1).\n"
		     "\n"
		     "verify checks a bundle offline with the broker's public key and tells its\n"
		     "story: sent by, logged at, timestamped by ... at ..., delivered to,\n"
		     "acknowledged at, cosigned by k of n witnesses. --tsa-ca requires a\n"
		     "time-stamp token that verifies against that CA (PEM); --witnesses requires\n"
		     "the cosignatures of a witness policy (\"witness NAME KEY\" and \"quorum K\"\n"
		     "lines). --lang chooses the story's language (default: from LANG; it or en).\n"
		     "\n"
		     "Exit codes: export 0 written, 1 no such message (or not delivered yet, or\n"
		     "no checkpoint covers it yet), 2 usage, store, configuration or connection\n"
		     "error; verify 0 the evidence holds, 1 it does not (the first part that\n"
		     "fails is named), 2 usage or a file that cannot be read.\n");
}

/* ---- export from the broker ----------------------------------------------------- */

struct remote {
	coord_config r_cfg;
	rete_wire *r_w;
};

/* remote_ask asks q and checks the answer is of kind want; *f is the
 * caller's. RETE_EREFUSED with *code for the broker's error. */
static rete_err remote_ask(struct remote *r, Rete__Query *q, Rete__QueryResult__AnswerCase want,
			   Rete__BrokerFrame **f, Rete__ErrorCode *code, rete_msg *m)
{
	rete_err e;

	*f = NULL;
	q->request_id = 0;
	if ((e = rete_wire_call(r->r_w, q, r->r_cfg.timeout_ms, f, m)) != RETE_OK) {
		if (e == RETE_ETIMEDOUT)
			coord_silent(&r->r_cfg, NULL, m);
		return e;
	}
	if ((*f)->command_case == RETE__BROKER_FRAME__COMMAND_REFUSAL) {
		rete_msg_set(m, RETE_EREFUSED, "the broker refused our query: %s",
			     (*f)->refusal && (*f)->refusal->error_text ? (*f)->refusal->error_text
									: "");
		rete__broker_frame__free_unpacked(*f, NULL);
		*f = NULL;
		return RETE_EREFUSED;
	}
	if ((e = coord_answer(*f, want, code, m)) != RETE_OK)
		*f = NULL; /* coord_answer freed it */
	return e;
}

static rete_err remote_proof(struct remote *r, bool inclusion, uint64_t a, uint64_t b,
			     rete_evidence_proof *p, char **note, rete_msg *m)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__InclusionQuery iq = RETE__INCLUSION_QUERY__INIT;
	Rete__ConsistencyQuery cq = RETE__CONSISTENCY_QUERY__INIT;
	Rete__BrokerFrame *f = NULL;
	const Rete__Proof *pr;
	rete_err e;

	if (inclusion) {
		q.what_case = RETE__QUERY__WHAT_INCLUSION;
		q.inclusion = &iq;
		iq.index = a;
		iq.tree_size = b;
	} else {
		q.what_case = RETE__QUERY__WHAT_CONSISTENCY;
		q.consistency = &cq;
		cq.size1 = a;
		cq.size2 = b;
	}
	if ((e = remote_ask(r, &q, RETE__QUERY_RESULT__ANSWER_PROOF, &f, NULL, m)) != RETE_OK)
		return e;
	pr = f->result->proof;
	if ((inclusion ? pr->tree_size != b || pr->leaf_index != a
		       : pr->size1 != a || pr->size2 != b) ||
	    pr->n_hashes > RETE_MERKLE_MAX_PROOF) {
		e = rete_msg_set(m, RETE_EPROOF,
				 "the broker answered with another proof than asked");
		goto out;
	}
	free(p->h);
	p->n = 0;
	if ((p->h = calloc(pr->n_hashes + 1, RETE_MERKLE_HASH)) == NULL) {
		e = rete_msg_set(m, RETE_ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < pr->n_hashes; i++) {
		if (pr->hashes[i].len != RETE_MERKLE_HASH) {
			e = rete_msg_set(m, RETE_EPROOF,
					 "the broker's proof has a hash of %zu bytes",
					 pr->hashes[i].len);
			goto out;
		}
		memcpy(p->h[i], pr->hashes[i].data, RETE_MERKLE_HASH);
	}
	p->n = pr->n_hashes;
	if (note != NULL && pr->checkpoint != NULL && pr->checkpoint[0] != '\0' && *note == NULL &&
	    (*note = strdup(pr->checkpoint)) == NULL)
		e = rete_msg_set(m, RETE_ENOMEM, "out of memory");
out:
	rete__broker_frame__free_unpacked(f, NULL);
	return e;
}

/* remote_latest: the broker's latest checkpoint note (malloc'd). */
static rete_err remote_latest(struct remote *r, char **note, rete_msg *m)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__CheckpointQuery cq = RETE__CHECKPOINT_QUERY__INIT;
	Rete__BrokerFrame *f = NULL;
	rete_err e;

	q.what_case = RETE__QUERY__WHAT_CHECKPOINT;
	q.checkpoint = &cq;
	if ((e = remote_ask(r, &q, RETE__QUERY_RESULT__ANSWER_CHECKPOINT, &f, NULL, m)) != RETE_OK)
		return e;
	*note = strdup(f->result->checkpoint ? f->result->checkpoint : "");
	rete__broker_frame__free_unpacked(f, NULL);
	return *note != NULL ? RETE_OK : rete_msg_set(m, RETE_ENOMEM, "out of memory");
}

/* remote_timestamp: the latest checkpoint with a time-stamp token, when
 * the broker has one (*size 0 when not: none yet, or a broker without
 * trusted time). */
static rete_err remote_timestamp(struct remote *r, uint64_t *size, rete_buf *token, rete_msg *m)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__TimestampQuery tq = RETE__TIMESTAMP_QUERY__INIT;
	Rete__BrokerFrame *f = NULL;
	Rete__ErrorCode code = 0;
	rete_msg mm;
	rete_err e;

	*size = 0;
	q.what_case = RETE__QUERY__WHAT_TIMESTAMP;
	q.timestamp = &tq;
	e = remote_ask(r, &q, RETE__QUERY_RESULT__ANSWER_TIMESTAMP, &f, &code, &mm);
	if (e == RETE_EREFUSED || e == RETE_EDECODE)
		return RETE_OK; /* none: the bundle goes without a token */
	if (e != RETE_OK) {
		*m = mm;
		return e;
	}
	if (f->result->timestamp->token.len > 0) {
		rete_buf_free(token);
		token->data = malloc(f->result->timestamp->token.len);
		if (token->data == NULL) {
			rete__broker_frame__free_unpacked(f, NULL);
			return rete_msg_set(m, RETE_ENOMEM, "out of memory");
		}
		memcpy(token->data, f->result->timestamp->token.data,
		       f->result->timestamp->token.len);
		token->len = f->result->timestamp->token.len;
		*size = f->result->timestamp->size;
	}
	rete__broker_frame__free_unpacked(f, NULL);
	return RETE_OK;
}

static rete_err remote_scan(struct remote *r, rete_evidence_scan *sc, uint64_t size, rete_msg *m)
{
	bool done = false;
	rete_err e = RETE_OK;

	for (uint64_t from = 0; !done && from < size;) {
		Rete__Query q = RETE__QUERY__INIT;
		Rete__EntriesQuery eq = RETE__ENTRIES_QUERY__INIT;
		Rete__BrokerFrame *f = NULL;
		const Rete__Entries *en;

		q.what_case = RETE__QUERY__WHAT_ENTRIES;
		q.entries = &eq;
		eq.from = from;
		eq.count = size - from < BATCH ? size - from : BATCH;
		if ((e = remote_ask(r, &q, RETE__QUERY_RESULT__ANSWER_ENTRIES, &f, NULL, m)) !=
		    RETE_OK)
			return e;
		en = f->result->entries;
		if (en->from != from || en->n_entries == 0) {
			rete__broker_frame__free_unpacked(f, NULL);
			return rete_msg_set(m, RETE_EDECODE,
					    "the broker answered entries from %" PRIu64
					    " (%zu of them) "
					    "when asked for entries from %" PRIu64,
					    en->from, en->n_entries, from);
		}
		for (size_t i = 0; e == RETE_OK && !done && i < en->n_entries; i++)
			e = rete_evidence_scan_feed(sc, from + i, en->entries[i].data,
						    en->entries[i].len, &done, m);
		from += en->n_entries;
		rete__broker_frame__free_unpacked(f, NULL);
		if (e != RETE_OK)
			return e;
	}
	return RETE_OK;
}

/* rete_evidence_from_broker (evidence.h): the assembly over a connection
 * the caller holds (export -c, and the web console's Caso page). */
rete_err rete_evidence_from_broker(const coord_config *cfg, rete_wire *w, const char *sender,
				   const char *id, rete_evidence *ev, rete_msg *m)
{
	struct remote r;
	rete_evidence_scan *sc = NULL;
	rete_checkpoint lp;
	uint64_t idx[4], last = 0, ts_size = 0, size;
	rete_buf token = {0};
	char *note = NULL;
	rete_err e;

	memset(ev, 0, sizeof(*ev));
	r.r_cfg = *cfg; /* borrowed: read only, never freed here */
	r.r_w = w;
	if ((e = remote_latest(&r, &ev->latest, m)) != RETE_OK)
		goto out;
	if ((e = rete_evidence_strip_latest(&ev->latest, m)) != RETE_OK) {
		rete_msg_prefix(m, "the broker's latest checkpoint");
		goto out;
	}
	if ((e = rete_checkpoint_parse(ev->latest, strlen(ev->latest), &lp, m)) != RETE_OK) {
		rete_msg_prefix(m, "the broker's latest checkpoint");
		goto out;
	}
	if ((e = rete_evidence_scan_new(&sc, sender, id, m)) != RETE_OK ||
	    (e = remote_scan(&r, sc, lp.size, m)) != RETE_OK)
		goto out;
	if ((e = rete_evidence_scan_take(sc, ev, idx, &last, m)) != RETE_OK) {
		/* only what a checkpoint covers was read: a message (or its
		 * Delivery) logged since is there, and not yet provable */
		if (e == RETE_ENOENT && !rete_evidence_scan_found(sc)) {
			rete_msg_set(
			    m, e,
			    "no message '%.100s' of %s (a referral, update or note) is among "
			    "the %" PRIu64 " entries of the broker's latest checkpoint, the "
			    "ones it can prove; one logged beyond the broker's latest "
			    "checkpoint is covered by the next one, which the broker signs "
			    "within its checkpoint_interval: try again then",
			    id, sender, lp.size);
		} else if (e == RETE_ENOENT) {
			char why[sizeof(m->text)];
			snprintf(why, sizeof(why), "%s", m->text);
			rete_msg_set(m, e,
				     "%.300s, among the %" PRIu64 " entries of the broker's latest "
				     "checkpoint; a Delivery logged beyond the broker's latest "
				     "checkpoint is covered by the next one: try again then",
				     why, lp.size);
		}
		goto out;
	}
	/* the checkpoint: the latest one with a token when it covers the
	 * delivery, else the latest */
	if ((e = remote_timestamp(&r, &ts_size, &token, m)) != RETE_OK)
		goto out;
	size = ts_size > last && ts_size <= lp.size ? ts_size : lp.size;
	if (size <= last) {
		e = rete_msg_set(m, RETE_ENOENT,
				 "the broker's latest checkpoint (%" PRIu64 " entries) does not "
				 "cover the delivery (entry %" PRIu64 ") yet; try again after its "
				 "next checkpoint",
				 lp.size, last);
		goto out;
	}
	if (size == ts_size) {
		ev->timestamp = token;
		memset(&token, 0, sizeof(token));
	}
	/* the inclusion answers carry the stored note of that size, with the
	 * cosignatures gathered */
	if ((e = remote_proof(&r, true, idx[0], size, &ev->message_proof, &note, m)) != RETE_OK ||
	    (e = remote_proof(&r, true, idx[1], size, &ev->directory_proof, &note, m)) != RETE_OK ||
	    (e = remote_proof(&r, true, idx[2], size, &ev->delivery_proof, &note, m)) != RETE_OK)
		goto out;
	if (ev->delivery_directory.len > 0 &&
	    (e = remote_proof(&r, true, idx[3], size, &ev->delivery_directory_proof, &note, m)) !=
		RETE_OK)
		goto out;
	if (note == NULL && size == lp.size)
		note = strdup(ev->latest);
	if (note == NULL) {
		e = rete_msg_set(m, RETE_ENOENT,
				 "the broker gave no checkpoint note of size %" PRIu64, size);
		goto out;
	}
	ev->checkpoint = note;
	note = NULL;
	if ((e = rete_evidence_keep_checkable(ev, m)) != RETE_OK)
		goto out;
	if (lp.size > size)
		e = remote_proof(&r, false, size, lp.size, &ev->consistency, NULL, m);
out:
	if (e != RETE_OK)
		rete_evidence_free(ev);
	free(note);
	rete_buf_free(&token);
	rete_evidence_scan_free(&sc);
	return e;
}

static rete_err export_remote(const char *ini, const char *sender, const char *id,
			      rete_evidence *ev, rete_pubkey *broker_key, rete_msg *m)
{
	coord_config cfg;
	rete_wire *w = NULL;
	rete_seckey *sk = NULL;
	rete_err e;

	memset(&cfg, 0, sizeof(cfg));
	memset(ev, 0, sizeof(*ev));
	if ((e = coord_config_load(ini, &cfg, m)) == RETE_OK &&
	    (e = coord_config_keys(&cfg, &sk, broker_key, m)) == RETE_OK &&
	    (e = coord_connect(&cfg, false, &w, m)) == RETE_OK)
		e = rete_evidence_from_broker(&cfg, w, sender, id, ev, m);
	rete_seckey_free(&sk);
	rete_wire_close(&w);
	coord_config_free(&cfg);
	return e;
}

/* ---- the commands ------------------------------------------------------------------ */

static int cmd_export(int argc, char **argv)
{
	const char *store = NULL, *ini = NULL, *out = NULL, *pos[2] = {NULL, NULL};
	const char *bkey = NULL;
	rete_pubkey broker_key;
	bool have_key = false;
	rete_evidence ev;
	rete_store *s = NULL;
	rete_msg m = {{0}};
	char *text = NULL;
	int npos = 0, rc;
	rete_err e;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--store") == 0 && i + 1 < argc)
			store = argv[++i];
		else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
			ini = argv[++i];
		else if (strcmp(argv[i], "-o") == 0 && i + 1 < argc)
			out = argv[++i];
		else if (strcmp(argv[i], "--broker-key") == 0 && i + 1 < argc)
			bkey = argv[++i];
		else if (argv[i][0] == '-' || npos == 2) {
			fprintf(stderr, "rete evidence export: unexpected argument '%s'\n",
				argv[i]);
			evidence_usage(stderr);
			return CLI_USAGE;
		} else
			pos[npos++] = argv[i];
	}
	if (npos != 2 || out == NULL || (store == NULL) == (ini == NULL)) {
		fprintf(stderr,
			"rete evidence export: give SENDER ID, -o FILE and one of --store DIR "
			"or -c audit.ini\n");
		evidence_usage(stderr);
		return CLI_USAGE;
	}
	{
		/* recorded before reading (codes only: the message and its sender) */
		char what[600];
		snprintf(what, sizeof(what), "evidence of message %.256s of %.256s", pos[1],
			 pos[0]);
		if (!cli_access_record(ini, "rete evidence export", what))
			return CLI_USAGE;
	}
	if (bkey != NULL) {
		if ((e = rete_keyfile_load_public(bkey, &broker_key, &m)) != RETE_OK) {
			fprintf(stderr, "rete evidence export: --broker-key: %s\n", m.text);
			return CLI_USAGE;
		}
		have_key = true;
	}
	if (store != NULL) {
		rete_store_identity id;
		if ((e = rete_store_open(&s, store, RETE_STORE_RDONLY, &m)) == RETE_OK)
			e = rete_evidence_from_store(s, pos[0], pos[1], &ev, &m);
		/* no --broker-key: the key the store recorded, when it did */
		if (e == RETE_OK && !have_key &&
		    rete_store_identity_get(s, NULL, &id, NULL) == RETE_OK && id.recorded) {
			have_key = rete_pubkey_from_ed(&broker_key, id.broker_key, NULL) == RETE_OK;
		}
		rete_store_close(&s);
	} else {
		rete_pubkey pinned;
		e = export_remote(ini, pos[0], pos[1], &ev, &pinned, &m);
		if (!have_key) {
			broker_key = pinned;
			have_key = true;
		}
	}
	if (e == RETE_OK) {
		e = rete_evidence_write(&ev, &text, &m);
		rete_evidence_free(&ev);
	}
	if (e != RETE_OK) {
		fprintf(stderr, "rete evidence export: %s\n",
			m.text[0] ? m.text : rete_strerror(e));
		return e == RETE_ENOENT ? CLI_FALSE : CLI_USAGE;
	}
	/* what was assembled is checked as `rete evidence verify` would, before
	 * it is written: a bundle that would not hold later (a log the broker
	 * should not have written, answers of a broker that lie) is not handed
	 * on */
	if (have_key) {
		rete_evidence_opts o = {.broker_key = broker_key};
		const char *part = NULL;
		e = rete_evidence_verify(text, strlen(text), &o, NULL, &part, &m);
		if (e != RETE_OK) {
			fprintf(stderr,
				"rete evidence export: the bundle assembled from %s does not hold "
				"(%s: %s); nothing written\n",
				store != NULL ? "the store" : "the broker's answers",
				part ? rete_evidence_part_name(part, RETE_EVIDENCE_EN) : "?",
				m.text);
			free(text);
			return e == RETE_EIO || e == RETE_ENOMEM ? CLI_USAGE : CLI_FALSE;
		}
	}
	rc = CLI_OK;
	if (strcmp(out, "-") == 0) {
		if (fputs(text, stdout) == EOF || fflush(stdout) != 0) {
			fprintf(stderr,
				"rete evidence export: cannot write to standard output: %s\n",
				strerror(errno));
			rc = CLI_USAGE;
		}
	} else {
		FILE *f = fopen(out, "w");
		if (f == NULL || fputs(text, f) == EOF || fclose(f) != 0) {
			fprintf(stderr, "rete evidence export: cannot write %s: %s\n", out,
				strerror(errno));
			rc = CLI_USAGE;
		} else {
			fprintf(stderr, "rete evidence export: wrote %s (message '%s' of %s; %s)\n",
				out, pos[1], pos[0],
				have_key ? "checked: it holds with the broker's key"
					 : "not checked: the store records no broker key; give "
					   "--broker-key, or check it with rete evidence verify");
		}
	}
	free(text);
	return rc;
}

/* default_lang: Italian when the locale says so (LC_ALL, LC_MESSAGES,
 * LANG, the first one set). */
static rete_evidence_lang default_lang(void)
{
	static const char *const vars[] = {"LC_ALL", "LC_MESSAGES", "LANG"};
	for (size_t i = 0; i < 3; i++) {
		const char *v = getenv(vars[i]);
		if (v != NULL && *v != '\0')
			return strncmp(v, "it", 2) == 0 ? RETE_EVIDENCE_IT : RETE_EVIDENCE_EN;
	}
	return RETE_EVIDENCE_EN;
}

static char *read_bundle(const char *path, size_t *len, rete_msg *m)
{
	/* O_NONBLOCK: a named pipe without a writer would block the open for
	 * good (it is refused below, as not a regular file) */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	FILE *f = NULL;
	struct stat sb;
	char *buf;

	if (fd < 0) {
		rete_msg_set(m, RETE_EIO, "cannot read %s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
	    (uint64_t)sb.st_size > RETE_EVIDENCE_MAX || (f = fdopen(fd, "rb")) == NULL) {
		close(fd);
		rete_msg_set(m, RETE_EIO, "%s is not a regular file of at most 16 MiB", path);
		return NULL;
	}
	buf = malloc((size_t)sb.st_size + 1);
	if (buf == NULL || fread(buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
		rete_msg_set(m, RETE_EIO, "cannot read %s", path);
		free(buf);
		fclose(f);
		return NULL;
	}
	fclose(f);
	buf[sb.st_size] = '\0';
	*len = (size_t)sb.st_size;
	return buf;
}

/* verify_lang: the language --lang asks for (it or en; a wrong value is
 * told by the parse in cmd_verify), else dflt; looked up first, so that
 * even the sentence about an earlier argument is in that language. */
static rete_evidence_lang verify_lang(int argc, char **argv, rete_evidence_lang dflt)
{
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--lang") == 0)
			return strcmp(argv[i + 1], "it") == 0	? RETE_EVIDENCE_IT
			       : strcmp(argv[i + 1], "en") == 0 ? RETE_EVIDENCE_EN
								: dflt;
	return dflt;
}

/* verify_say prints on stderr a sentence of verify's exit 2 (a file or an
 * argument), in the story's language: Italian through the reasons' table
 * (evidence.c), with a detail it has no Italian for said to be in
 * English, as the reasons of a bundle that does not hold are. */
static void verify_say(rete_evidence_lang lang, const char *text)
{
	char buf[2048];
	rete_evidence_reason(text, lang, buf, sizeof(buf));
	fprintf(stderr, "rete evidence verify: %s\n", buf);
}

static int cmd_verify(int argc, char **argv)
{
	const char *file = NULL, *bkey = NULL, *part = NULL;
	rete_evidence_opts o;
	rete_evidence_facts f;
	rete_evidence_lang lang = verify_lang(argc, argv, default_lang());
	rete_msg m = {{0}};
	char *text, *story;
	size_t len = 0;
	rete_err e;

	memset(&o, 0, sizeof(o));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--broker-key") == 0 && i + 1 < argc)
			bkey = argv[++i];
		else if (strcmp(argv[i], "--tsa-ca") == 0 && i + 1 < argc)
			o.tsa_ca = argv[++i];
		else if (strcmp(argv[i], "--witnesses") == 0 && i + 1 < argc)
			o.witnesses = argv[++i];
		else if (strcmp(argv[i], "--lang") == 0 && i + 1 < argc) {
			const char *l = argv[++i];
			if (strcmp(l, "it") == 0)
				lang = RETE_EVIDENCE_IT;
			else if (strcmp(l, "en") == 0)
				lang = RETE_EVIDENCE_EN;
			else {
				fprintf(stderr,
					"rete evidence verify: --lang '%s': accepted are it "
					"and en\n",
					l);
				return CLI_USAGE;
			}
		} else if (argv[i][0] == '-' || file != NULL) {
			fprintf(stderr, "rete evidence verify: %s '%s'\n",
				lang == RETE_EVIDENCE_IT ? "argomento inatteso"
							 : "unexpected argument",
				argv[i]);
			evidence_usage(stderr);
			return CLI_USAGE;
		} else
			file = argv[i];
	}
	if (file == NULL || bkey == NULL) {
		fprintf(stderr, "rete evidence verify: %s\n",
			lang == RETE_EVIDENCE_IT ? "servono il FILE e --broker-key CHIAVE"
						 : "give FILE and --broker-key KEY");
		evidence_usage(stderr);
		return CLI_USAGE;
	}
	if ((e = rete_keyfile_load_public(bkey, &o.broker_key, &m)) != RETE_OK) {
		verify_say(lang, m.text);
		return CLI_USAGE;
	}
	if ((text = read_bundle(file, &len, &m)) == NULL) {
		verify_say(lang, m.text);
		return CLI_USAGE;
	}
	e = rete_evidence_verify(text, len, &o, &f, &part, &m);
	free(text);
	if (e == RETE_EIO || e == RETE_ENOMEM) {
		verify_say(lang, m.text);
		return CLI_USAGE;
	}
	if (e != RETE_OK) {
		/* the reason in the story's language too (names and hashes as
		 * they are) */
		char reason[2048];
		rete_evidence_reason(m.text, lang, reason, sizeof(reason));
		printf("%s: %s: %s\n",
		       lang == RETE_EVIDENCE_IT ? "LA PROVA NON REGGE"
						: "THE EVIDENCE DOES NOT HOLD",
		       rete_evidence_part_name(part, lang), reason);
		return CLI_FALSE;
	}
	if ((story = rete_evidence_story(&f, lang)) == NULL) {
		fprintf(stderr, "rete evidence verify: out of memory\n");
		return CLI_USAGE;
	}
	fputs(story, stdout);
	free(story);
	return CLI_OK;
}

int cmd_evidence(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		if (argc < 2)
			fprintf(stderr,
				"rete evidence: no subcommand given; accepted: export, verify\n");
		evidence_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (cli_wants_help(argc, argv)) {
		evidence_usage(stdout);
		return CLI_OK;
	}
	if (strcmp(argv[1], "export") == 0)
		return cmd_export(argc - 1, argv + 1);
	if (strcmp(argv[1], "verify") == 0)
		return cmd_verify(argc - 1, argv + 1);
	fprintf(stderr, "rete evidence: unknown subcommand '%s'; accepted: export, verify\n",
		argv[1]);
	return CLI_USAGE;
}
