/* gen_seeds.c — writes the seed corpus of the fuzz targets.
 *
 * Usage: fuzz_gen_seeds SOURCE_DIR SHARED_DIR OUT_DIR
 * SOURCE_DIR is the project (examples/messages/ JSON files are read), SHARED_DIR
 * the shared folder (testdata/merkle proof files are copied), OUT_DIR the
 * corpus root (tests/fuzz/corpus): one folder per target is filled. Messages
 * and checkpoints are signed with the fixed fuzz key (fuzz_common.h), so the
 * targets start from inputs that pass every check and the fuzzer mutates
 * from there. The output is deterministic except for the sealed parts
 * (sealed boxes use a fresh ephemeral key): run it again only to change the
 * corpus. Exit 0, or 2 with a sentence on the first failure.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint.h"
#include "codec.h"
#include "cosign.h"
#include "fuzz_common.h"
#include "json.h"
#include "merkle.h"
#include "rete.pb-c.h"
#include "validate.h"

static const char *out_dir;

#define die(...)                                                                                   \
	do {                                                                                       \
		fprintf(stderr, "fuzz_gen_seeds: " __VA_ARGS__);                                   \
		fputc('\n', stderr);                                                               \
		exit(2);                                                                           \
	} while (0)

static void put(const char *target, const char *name, const void *data, size_t len)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", out_dir, target);
	if (mkdir(path, 0755) != 0 && errno != EEXIST)
		die("%s: %s", path, strerror(errno));
	snprintf(path, sizeof(path), "%s/%s/%s", out_dir, target, name);
	FILE *f = fopen(path, "wb");
	if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
		die("%s: cannot be written", path);
}

static void put_pb(const char *target, const char *name, const ProtobufCMessage *msg)
{
	size_t n = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		die("out of memory");
	protobuf_c_message_pack(msg, buf);
	put(target, name, buf, n);
	free(buf);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		die("%s: %s", path, strerror(errno));
	char *buf = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n + 4096 > cap) {
			cap = cap * 2 + 4096;
			if (!(buf = realloc(buf, cap)))
				die("out of memory");
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	*len = n;
	return buf;
}

static void copy(const char *target, const char *name, const char *path)
{
	size_t len;
	char *buf = slurp(path, &len);
	put(target, name, buf, len);
	free(buf);
}

/* --- messages ------------------------------------------------------------- */

/* Signed messages kept for the frame seeds. */
#define MAX_MSGS 16
static rete_buf signed_msgs[MAX_MSGS], sealed_parts[MAX_MSGS];
static size_t nmsgs;

static void set_private_hash(Rete__Message *msg, const uint8_t hash[RETE_HASH_LEN])
{
	ProtobufCBinaryData *h = NULL;
	if (msg->body_case == RETE__MESSAGE__BODY_REFERRAL)
		h = &msg->referral->private_sha256;
	else if (msg->body_case == RETE__MESSAGE__BODY_UPDATE)
		h = &msg->update->private_sha256;
	else if (msg->body_case == RETE__MESSAGE__BODY_NOTE)
		h = &msg->note->private_sha256;
	if (!h)
		return;
	free(h->data);
	if (!(h->data = malloc(RETE_HASH_LEN)))
		die("out of memory");
	memcpy(h->data, hash, RETE_HASH_LEN);
	h->len = RETE_HASH_LEN;
}

/* set_str replaces a string field (which may be protobuf-c's static empty
 * string, never to be freed). */
static void set_str(char **field, const char *value)
{
	if (*field != protobuf_c_empty_string)
		free(*field);
	if (!(*field = strdup(value)))
		die("out of memory");
}

static void one_message(const char *dir, const char *file)
{
	char path[1024], base[256];
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	snprintf(base, sizeof(base), "%.*s", (int)(strlen(file) - 5), file);
	copy("fuzz_json", file, path);

	Rete__Message *msg = NULL;
	Rete__Private *priv = NULL;
	rete_problems pr = {0};
	if (rete_json_load_outbox(path, NULL, &msg, &priv, &pr) != RETE_OK)
		die("%s: %s: %s", path, pr.items[0].path, pr.items[0].text);

	/* Fill what the agent fills. */
	set_str(&msg->sender,
		strcmp(msg->recipient, FUZZ_SENDER) == 0 ? "cpi.mantova" : FUZZ_SENDER);
	if (!msg->id[0])
		set_str(&msg->id, base);
	msg->created_at = 1795430400000; /* 2026-11-22T...Z */
	set_str(&msg->origin, FUZZ_ORIGIN);

	rete_buf sealed = {0};
	if (priv) {
		char pname[300];
		snprintf(pname, sizeof(pname), "private-%s.bin", base);
		put_pb("fuzz_client_frame", pname, &priv->base);
		uint8_t hash[RETE_HASH_LEN];
		rete_msg m;
		if (rete_seal(priv, &fuzz_key()->pub, &sealed, hash, &m) != RETE_OK)
			die("%s: seal: %s", path, m.text);
		set_private_hash(msg, hash);
	}
	if (rete_validate_message(msg, NULL, RETE_VALIDATE_SIGNED, &pr) != RETE_OK)
		die("%s: not a valid signed message: %s: %s", path, pr.items[0].path,
		    pr.items[0].text);

	rete_buf sm = {0};
	rete_msg m;
	if (rete_message_sign(msg, fuzz_key(), &sm, &m) != RETE_OK)
		die("%s: sign: %s", path, m.text);
	char name[300];
	snprintf(name, sizeof(name), "%s.bin", base);
	put("fuzz_signed_message", name, sm.data, sm.len);
	if (nmsgs < MAX_MSGS) {
		signed_msgs[nmsgs] = sm;
		sealed_parts[nmsgs] = sealed;
		nmsgs++;
	} else {
		rete_buf_free(&sm);
		rete_buf_free(&sealed);
	}
	rete__message__free_unpacked(msg, NULL);
	if (priv)
		rete__private__free_unpacked(priv, NULL);
	rete_problems_free(&pr);
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void messages(const char *src)
{
	char dir[1024];
	snprintf(dir, sizeof(dir), "%s/examples/messages", src);
	struct dirent **list;
	int n = scandir(dir, &list, NULL, by_name);
	if (n < 0)
		die("%s: %s", dir, strerror(errno));
	for (int i = 0; i < n; i++) {
		size_t len = strlen(list[i]->d_name);
		if (len > 5 && strcmp(list[i]->d_name + len - 5, ".json") == 0)
			one_message(dir, list[i]->d_name);
		free(list[i]);
	}
	free(list);
	if (nmsgs == 0)
		die("%s: no example messages", dir);
}

/* --- frames --------------------------------------------------------------- */

static void client_frames(void)
{
	const char *T = "fuzz_client_frame";
	char name[64];
	for (size_t i = 0; i < nmsgs; i++) {
		Rete__Submit s = RETE__SUBMIT__INIT;
		s.signed_message.data = signed_msgs[i].data;
		s.signed_message.len = signed_msgs[i].len;
		s.sealed.data = sealed_parts[i].data;
		s.sealed.len = sealed_parts[i].len;
		Rete__ClientFrame f = RETE__CLIENT_FRAME__INIT;
		f.version = RETE_PROTOCOL_VERSION;
		f.command_case = RETE__CLIENT_FRAME__COMMAND_SUBMIT;
		f.submit = &s;
		snprintf(name, sizeof(name), "submit-%zu.bin", i);
		put_pb(T, name, &f.base);
	}
	Rete__ClientFrame f = RETE__CLIENT_FRAME__INIT;
	f.version = RETE_PROTOCOL_VERSION;

	Rete__Hello h = RETE__HELLO__INIT;
	h.party = (char *)FUZZ_SENDER;
	h.software = (char *)"rete-agent 0.1";
	f.command_case = RETE__CLIENT_FRAME__COMMAND_HELLO;
	f.hello = &h;
	put_pb(T, "hello.bin", &f.base);

	Rete__Ack a = RETE__ACK__INIT;
	a.index = 42;
	f.command_case = RETE__CLIENT_FRAME__COMMAND_ACK;
	f.ack = &a;
	put_pb(T, "ack.bin", &f.base);
	a.error = RETE__ERROR_CODE__ERROR_CODE_BAD_SIGNATURE;
	a.error_text = (char *)"the signature does not verify";
	put_pb(T, "ack-error.bin", &f.base);

	Rete__Ping p = RETE__PING__INIT;
	p.nonce = 7;
	f.command_case = RETE__CLIENT_FRAME__COMMAND_PING;
	f.ping = &p;
	put_pb(T, "ping.bin", &f.base);

	Rete__Query q = RETE__QUERY__INIT;
	q.request_id = 3;
	f.command_case = RETE__CLIENT_FRAME__COMMAND_QUERY;
	f.query = &q;
	Rete__ReferralQuery rq = RETE__REFERRAL_QUERY__INIT;
	rq.referral_id = (char *)"social.mantova-2026-0001";
	q.what_case = RETE__QUERY__WHAT_REFERRAL;
	q.referral = &rq;
	put_pb(T, "query-referral.bin", &f.base);
	Rete__EntriesQuery eq = RETE__ENTRIES_QUERY__INIT;
	eq.from = 10;
	eq.count = 100;
	q.what_case = RETE__QUERY__WHAT_ENTRIES;
	q.entries = &eq;
	put_pb(T, "query-entries.bin", &f.base);
	Rete__ConsistencyQuery cq = RETE__CONSISTENCY_QUERY__INIT;
	cq.size1 = 5;
	cq.size2 = 9;
	q.what_case = RETE__QUERY__WHAT_CONSISTENCY;
	q.consistency = &cq;
	put_pb(T, "query-consistency.bin", &f.base);
	Rete__SnapshotQuery sq = RETE__SNAPSHOT_QUERY__INIT;
	q.what_case = RETE__QUERY__WHAT_SNAPSHOT;
	q.snapshot = &sq;
	put_pb(T, "query-snapshot.bin", &f.base);
}

static char *note_for(uint64_t size)
{
	uint8_t root[RETE_MERKLE_HASH];
	rete_sha256(root, &size, sizeof(size));
	char *note = NULL;
	rete_msg m;
	if (rete_checkpoint_sign(FUZZ_ORIGIN, size, root, fuzz_key(), &note, &m) != RETE_OK)
		die("checkpoint: %s", m.text);
	return note;
}

static void broker_frames(void)
{
	const char *T = "fuzz_client_frame";
	Rete__BrokerFrame f = RETE__BROKER_FRAME__INIT;
	f.version = RETE_PROTOCOL_VERSION;

	Rete__LogEntry le = RETE__LOG_ENTRY__INIT;
	le.index = 5;
	le.logged_at = 1795430401000;
	le.signed_message.data = signed_msgs[0].data;
	le.signed_message.len = signed_msgs[0].len;
	size_t n = rete__log_entry__get_packed_size(&le);
	uint8_t *entry = malloc(n);
	if (!entry)
		die("out of memory");
	rete__log_entry__pack(&le, entry);

	Rete__Deliver d = RETE__DELIVER__INIT;
	d.log_entry.data = entry;
	d.log_entry.len = n;
	d.sealed.data = sealed_parts[0].data;
	d.sealed.len = sealed_parts[0].len;
	f.command_case = RETE__BROKER_FRAME__COMMAND_DELIVER;
	f.deliver = &d;
	put_pb(T, "deliver.bin", &f.base);

	char *note = note_for(6);
	Rete__Welcome w = RETE__WELCOME__INIT;
	w.party = (char *)FUZZ_SENDER;
	w.kind = RETE__PARTY_KIND__PARTY_KIND_SOCIAL_SERVICES;
	w.origin = (char *)FUZZ_ORIGIN;
	w.checkpoint = note;
	w.directory_entry.data = entry;
	w.directory_entry.len = n;
	f.command_case = RETE__BROKER_FRAME__COMMAND_WELCOME;
	f.welcome = &w;
	put_pb(T, "welcome.bin", &f.base);

	/* a receipt of protocol 3: entry 5 of a log of 6 (filler leaves
	 * before it), its inclusion proof and the signed checkpoint */
	rete_merkle_mem tree;
	rete_merkle_mem_init(&tree);
	uint8_t leaf[RETE_MERKLE_HASH], root[RETE_MERKLE_HASH];
	for (uint64_t i = 0; i < 5; i++) {
		rete_sha256(leaf, &i, sizeof(i));
		if (rete_merkle_mem_append(&tree, leaf) != RETE_OK)
			die("out of memory");
	}
	rete_merkle_leaf_hash(leaf, entry, n);
	if (rete_merkle_mem_append(&tree, leaf) != RETE_OK)
		die("out of memory");
	uint8_t proof[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH];
	size_t np = 0;
	if (rete_merkle_root(rete_merkle_mem_get, &tree, 6, root) != RETE_OK ||
	    rete_merkle_inclusion_proof(rete_merkle_mem_get, &tree, 5, 6, proof, &np) != RETE_OK)
		die("receipt proof");
	rete_merkle_mem_free(&tree);
	char *rnote = NULL;
	rete_msg rm;
	if (rete_checkpoint_sign(FUZZ_ORIGIN, 6, root, fuzz_key(), &rnote, &rm) != RETE_OK)
		die("checkpoint: %s", rm.text);
	ProtobufCBinaryData pv[RETE_MERKLE_MAX_PROOF];
	for (size_t i = 0; i < np; i++) {
		pv[i].data = proof[i];
		pv[i].len = RETE_MERKLE_HASH;
	}
	Rete__Receipt r = RETE__RECEIPT__INIT;
	r.message_id = (char *)"social.mantova-2026-0001";
	r.index = 5;
	r.logged_at = le.logged_at;
	r.n_proof = np;
	r.proof = pv;
	r.checkpoint = rnote;
	f.command_case = RETE__BROKER_FRAME__COMMAND_RECEIPT;
	f.receipt = &r;
	put_pb(T, "receipt.bin", &f.base);

	Rete__Receipt refusal = RETE__RECEIPT__INIT;
	refusal.message_id = r.message_id;
	refusal.error = RETE__ERROR_CODE__ERROR_CODE_ID_REUSED;
	refusal.error_text = (char *)"message id reused with other bytes";
	refusal.field = (char *)"id";
	f.command_case = RETE__BROKER_FRAME__COMMAND_REFUSAL;
	f.refusal = &refusal;
	put_pb(T, "refusal.bin", &f.base);

	Rete__QueryResult qr = RETE__QUERY_RESULT__INIT;
	qr.request_id = 3;
	Rete__Entries es = RETE__ENTRIES__INIT;
	ProtobufCBinaryData items[1] = {{n, entry}};
	es.from = 5;
	es.n_entries = 1;
	es.entries = items;
	qr.answer_case = RETE__QUERY_RESULT__ANSWER_ENTRIES;
	qr.entries = &es;
	f.command_case = RETE__BROKER_FRAME__COMMAND_RESULT;
	f.result = &qr;
	put_pb(T, "result-entries.bin", &f.base);

	Rete__Proof pf = RETE__PROOF__INIT;
	pf.leaf_index = 2;
	pf.tree_size = 6;
	pf.leaf_hash.data = leaf;
	pf.leaf_hash.len = sizeof(leaf);
	ProtobufCBinaryData hs[2] = {{32, leaf}, {32, leaf}};
	pf.n_hashes = 2;
	pf.hashes = hs;
	pf.checkpoint = note;
	qr.answer_case = RETE__QUERY_RESULT__ANSWER_PROOF;
	qr.proof = &pf;
	put_pb(T, "result-proof.bin", &f.base);

	qr.answer_case = RETE__QUERY_RESULT__ANSWER_CHECKPOINT;
	qr.checkpoint = note;
	put_pb(T, "result-checkpoint.bin", &f.base);

	free(note);
	free(rnote);
	free(entry);
}

/* --- checkpoints ----------------------------------------------------------- */

static void checkpoints(void)
{
	const char *T = "fuzz_checkpoint";
	static const uint64_t sizes[] = {0, 1, 7, 1000000, UINT64_MAX};
	char name[64];
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char *note = note_for(sizes[i]);
		snprintf(name, sizeof(name), "note-%zu.txt", i);
		put(T, name, note, strlen(note));
		free(note);
	}
	/* A note with an extension line and a second signer's line: the text
	 * is rebuilt by hand, the first signature line is the fuzz key's. */
	char *note = note_for(12);
	char *blank = strstr(note, "\n\n");
	if (!blank)
		die("checkpoint: no blank line in a signed note");
	uint8_t other_seed[RETE_SEED_LEN];
	memset(other_seed, 0x77, sizeof(other_seed));
	rete_seckey *other = NULL;
	if (rete_seckey_from_seed(&other, other_seed, NULL) != RETE_OK)
		die("other key");
	uint8_t root[RETE_MERKLE_HASH];
	uint64_t twelve = 12;
	rete_sha256(root, &twelve, sizeof(twelve));
	char *note2 = NULL;
	if (rete_checkpoint_sign(FUZZ_ORIGIN, 12, root, other, &note2, NULL) != RETE_OK)
		die("checkpoint: other key");
	char *sig2 = strstr(note2, "\n\n");
	char both[2048];
	snprintf(both, sizeof(both), "%s%s", note, sig2 + 2);
	put(T, "two-signers.txt", both, strlen(both));
	/* The same with an extension line after the root. */
	char ext[2048];
	snprintf(ext, sizeof(ext), "%.*s\nextension line\n%s", (int)(blank - note), note,
		 blank + 1);
	put(T, "extension-line.txt", ext, strlen(ext));
	/* A note of epoch 2 (after a declared restore): "epoch 2" after the root. */
	char *ep = NULL;
	if (rete_checkpoint_sign_epoch(FUZZ_ORIGIN, 12, root, 2, fuzz_key(), &ep, NULL) != RETE_OK)
		die("checkpoint: epoch 2");
	put(T, "epoch-line.txt", ep, strlen(ep));
	free(ep);
	free(note);
	free(note2);
	rete_seckey_free(&other);
}

/* --- proofs ---------------------------------------------------------------- */

static void proofs(const char *shared)
{
	const char *T = "fuzz_proof";
	static const char *const files[] = {
	    "inclusion/1/happy-path.json",   "inclusion/2/happy-path.json",
	    "inclusion/3/happy-path.json",   "inclusion/4/happy-path.json",
	    "inclusion/1/wrong-leaf.json",   "consistency/1/happy-path.json",
	    "consistency/2/happy-path.json", "consistency/3/happy-path.json",
	    "consistency/4/happy-path.json", "consistency/1/truncated-proof.json",
	};
	char path[1024], name[256];
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/testdata/merkle/%s", shared, files[i]);
		snprintf(name, sizeof(name), "%s", files[i]);
		for (char *s = name; *s; s++)
			if (*s == '/')
				*s = '-';
		copy(T, name, path);
	}
	/* Model seeds: byte 0 % 3 == 2, then nleaves (2 bytes), salt, mode,
	 * sizes/indexes (8 bytes each) and the bit to flip (2 bytes). */
	static const uint8_t model_incl[] = {2, 0, 13, 9, 0, 13, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0,
					     0, 0, 0,  0, 0, 3,	 0, 0, 0, 0, 0, 0, 0, 1, 7};
	static const uint8_t model_cons[] = {5, 0,  200, 1, 1, 57, 0, 0, 0, 0, 0, 0,
					     0, 99, 0,	 0, 0, 0,  0, 0, 0, 2, 9};
	put(T, "model-inclusion.bin", model_incl, sizeof(model_incl));
	put(T, "model-consistency.bin", model_cons, sizeof(model_cons));

	/* Raw seeds from a real proof: index 3 in a tree of 7. */
	rete_merkle_mem t;
	rete_merkle_mem_init(&t);
	for (uint8_t i = 0; i < 7; i++) {
		uint8_t h[RETE_MERKLE_HASH];
		rete_merkle_leaf_hash(h, &i, 1);
		if (rete_merkle_mem_append(&t, h) != RETE_OK)
			die("out of memory");
	}
	uint8_t proof[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH], root[RETE_MERKLE_HASH],
	    root1[RETE_MERKLE_HASH], leaf[RETE_MERKLE_HASH];
	size_t n = 0;
	uint8_t buf[4096];
	size_t len = 0;
	if (rete_merkle_inclusion_proof(rete_merkle_mem_get, &t, 3, 7, proof, &n) != RETE_OK ||
	    rete_merkle_root(rete_merkle_mem_get, &t, 7, root) != RETE_OK ||
	    rete_merkle_mem_get(&t, 0, 3, leaf) != RETE_OK)
		die("merkle: inclusion");
	/* mode 0 (inclusion), flags 0 (one-byte numbers), index 3, size 7. */
	buf[len++] = 0;
	buf[len++] = 0;
	buf[len++] = 3;
	buf[len++] = 7;
	buf[len++] = 32;
	memcpy(buf + len, leaf, 32), len += 32;
	buf[len++] = 32;
	memcpy(buf + len, root, 32), len += 32;
	buf[len++] = (uint8_t)n;
	for (size_t i = 0; i < n; i++) {
		buf[len++] = 32;
		memcpy(buf + len, proof[i], 32), len += 32;
	}
	put(T, "raw-inclusion.bin", buf, len);

	if (rete_merkle_consistency_proof(rete_merkle_mem_get, &t, 3, 7, proof, &n) != RETE_OK ||
	    rete_merkle_root(rete_merkle_mem_get, &t, 3, root1) != RETE_OK)
		die("merkle: consistency");
	len = 0;
	buf[len++] = 1;
	buf[len++] = 0;
	buf[len++] = 3;
	buf[len++] = 7;
	buf[len++] = 32;
	memcpy(buf + len, root1, 32), len += 32;
	buf[len++] = 32;
	memcpy(buf + len, root, 32), len += 32;
	buf[len++] = (uint8_t)n;
	for (size_t i = 0; i < n; i++) {
		buf[len++] = 32;
		memcpy(buf + len, proof[i], 32), len += 32;
	}
	put(T, "raw-consistency.bin", buf, len);
	rete_merkle_mem_free(&t);
}

/* --- JSON beyond the examples ---------------------------------------------- */

static void json_docs(void)
{
	/* A directory and a broker frame as rete_pb_to_json spells them. */
	Rete__Party p = RETE__PARTY__INIT;
	p.id = (char *)"cpi.mantova";
	p.name = (char *)"Centro per l'impiego";
	p.kind = RETE__PARTY_KIND__PARTY_KIND_JOB_CENTRE;
	p.public_key.data = (uint8_t *)fuzz_key()->pub.ed;
	p.public_key.len = RETE_PK_LEN;
	Rete__Service s = RETE__SERVICE__INIT;
	s.code = (char *)"employment-orientation";
	s.name = (char *)"Orientamento";
	s.consent_required = 1;
	Rete__Service *sv[1] = {&s};
	p.n_services = 1;
	p.services = sv;
	Rete__Party *ps[1] = {&p};
	Rete__Route r = RETE__ROUTE__INIT;
	r.from = RETE__PARTY_KIND__PARTY_KIND_SOCIAL_SERVICES;
	r.to = RETE__PARTY_KIND__PARTY_KIND_JOB_CENTRE;
	Rete__Route *rs[1] = {&r};
	Rete__PriorityLimit l = RETE__PRIORITY_LIMIT__INIT;
	l.priority = RETE__PRIORITY__PRIORITY_URGENT;
	l.limit = (char *)"1wd";
	l.limit_ms = 86400000;
	Rete__PriorityLimit *ls[1] = {&l};
	char *hol[1] = {(char *)"2026-12-08"};
	Rete__Directory d = RETE__DIRECTORY__INIT;
	d.serial = 3;
	d.n_parties = 1;
	d.parties = ps;
	d.n_routes = 1;
	d.routes = rs;
	d.n_limits = 1;
	d.limits = ls;
	d.n_holidays = 1;
	d.holidays = hol;
	d.time_zone = (char *)"Europe/Rome";
	d.expiry_ms = 432000000;
	json_t *j = rete_pb_to_json(&d.base);
	char *text = json_dumps(j, JSON_INDENT(2));
	put("fuzz_json", "directory.json", text, strlen(text));
	free(text);
	json_decref(j);

	Rete__Notice nt = RETE__NOTICE__INIT;
	nt.kind = RETE__NOTICE_KIND__NOTICE_KIND_OVERDUE;
	nt.index = 9;
	nt.message_id = (char *)"social.mantova-2026-0001";
	nt.due_at = 1795430400123;
	Rete__Message msg = RETE__MESSAGE__INIT;
	msg.id = (char *)"notice-9";
	msg.sender = (char *)"broker.mantova";
	msg.created_at = 1795430400000;
	msg.body_case = RETE__MESSAGE__BODY_NOTICE;
	msg.notice = &nt;
	j = rete_pb_to_json(&msg.base);
	text = json_dumps(j, JSON_INDENT(2));
	put("fuzz_json", "notice.json", text, strlen(text));
	free(text);
	json_decref(j);
}

/* --- broker.ini ------------------------------------------------------------ */

static void configs(void)
{
	const char *T = "fuzz_broker_config";
	static const char full[] =
	    "; a complete broker.ini (key files beside it)\n"
	    "[broker]\n"
	    "origin = rete.example/mantova\n"
	    "id = broker.mantova\n"
	    "key = broker.mantova.key\n"
	    "listen = tcp://127.0.0.1:7700\n"
	    "events = tcp://127.0.0.1:7701\n"
	    "data = store\n"
	    "checkpoint_every = 1000\n"
	    "checkpoint_interval = 10s\n"
	    "delivery_window = 64\n"
	    "expiry = 5d\n"
	    "heartbeat = 5s\n"
	    "max_frame = 4MiB\n"
	    "verify_threads = 2\n"
	    "time_zone = Europe/Rome\n"
	    "holidays = 2026-12-08, 2026-12-25\n"
	    "\n"
	    "[limits]\n"
	    "routine = 5wd\n"
	    "urgent = 1wd\n"
	    "emergency = 4h\n"
	    "\n"
	    "[policy]\n"
	    "routes = social-services>job-centre, job-centre>social-services, "
	    "social-services>health\n"
	    "\n"
	    "[agency social.mantova]\n"
	    "name = Servizi sociali di Mantova\n"
	    "kind = social-services\n"
	    "key = social.mantova.pub\n"
	    "services = family-support, housing-support\n"
	    "consent_services = family-support\n"
	    "\n"
	    "[agency cpi.mantova]\n"
	    "name = Centro per l'impiego\n"
	    "kind = job-centre\n"
	    "key = cpi.mantova.pub\n"
	    "services = employment-orientation, training-voucher\n"
	    "consent_services = employment-orientation\n"
	    "\n"
	    "[agency asst.mantova]\n"
	    "name = ASST Mantova\n"
	    "kind = health\n"
	    "key = asst.mantova.pub\n"
	    "services = mental-health\n";
	put(T, "full.ini", full, strlen(full));
	static const char minimal[] = "[broker]\n"
				      "origin = o\n"
				      "id = broker.mantova\n"
				      "key = broker.mantova.key\n"
				      "listen = ipc:///tmp/l\n"
				      "events = ipc:///tmp/e\n"
				      "data = s\n"
				      "[policy]\n"
				      "routes = social-services>health\n"
				      "[agency social.mantova]\n"
				      "name = S\n"
				      "kind = social-services\n"
				      "key = social.mantova.pub\n";
	put(T, "minimal.ini", minimal, strlen(minimal));
	static const char broken[] = "[broker\n"
				     "origin = has space\n"
				     "no equals sign\n"
				     "[broker]\n"
				     "id = Broker\n"
				     "id = again\n"
				     "max_frame = 12parsecs\n"
				     "[agency x]\n"
				     "kind = dragon\n"
				     "[limits]\n"
				     "urgent = 3fortnights\n";
	put(T, "broken.ini", broken, strlen(broken));
}

/* --- cosignatures and witness policies (fuzz_cosign) ----------------------- */

/* The first byte says what follows: even a note, odd a witness policy. */
static void put_mode(const char *target, const char *name, char mode, const char *text)
{
	size_t n = strlen(text);
	char *buf = malloc(n + 1);
	if (!buf)
		die("out of memory");
	buf[0] = mode;
	memcpy(buf + 1, text, n);
	put(target, name, buf, n + 1);
	free(buf);
}

static void cosigns(void)
{
	const char *T = "fuzz_cosign";
	uint8_t seed[RETE_SEED_LEN];
	memset(seed, 0x44, sizeof(seed));
	rete_seckey *other = NULL;
	if (rete_seckey_from_seed(&other, seed, NULL) != RETE_OK)
		die("cosign: other key");
	char *note = note_for(9), *l1 = NULL, *l2 = NULL, *one = NULL, *two = NULL;
	rete_msg m;
	if (rete_cosign_line(note, strlen(note), "fuzz.witness", fuzz_key(), 1767225600, &l1, &m) !=
		RETE_OK ||
	    rete_cosign_line(note, strlen(note), "other.witness", other, 1767225601, &l2, &m) !=
		RETE_OK ||
	    rete_cosign_add(note, strlen(note), l1, &one, NULL, &m) != RETE_OK ||
	    rete_cosign_add(one, strlen(one), l2, &two, NULL, &m) != RETE_OK)
		die("cosign: %s", m.text);
	put_mode(T, "note-plain.txt", 0, note);
	put_mode(T, "note-cosigned.txt", 0, one);
	put_mode(T, "note-two-cosigners.txt", 2, two);
	char *k1 = rete_b64_encode(fuzz_key()->pub.ed, RETE_PK_LEN);
	char *k2 = rete_b64_encode(other->pub.ed, RETE_PK_LEN);
	char policy[1024];
	snprintf(policy, sizeof(policy),
		 "# witnesses\nwitness fuzz.witness %s\nwitness other.witness %s\nquorum 1\n", k1,
		 k2);
	put_mode(T, "policy-quorum.txt", 1, policy);
	snprintf(policy, sizeof(policy), "witness fuzz.witness %s\r\n\n\twitness  x  %s\n", k1, k2);
	put_mode(T, "policy-all.txt", 3, policy);
	free(k1);
	free(k2);
	free(note);
	free(l1);
	free(l2);
	free(one);
	free(two);
	rete_seckey_free(&other);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: fuzz_gen_seeds SOURCE_DIR SHARED_DIR OUT_DIR\n");
		return 2;
	}
	out_dir = argv[3];
	if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
		die("%s: %s", out_dir, strerror(errno));
	messages(argv[1]);
	client_frames();
	broker_frames();
	checkpoints();
	cosigns();
	proofs(argv[2]);
	json_docs();
	configs();
	for (size_t i = 0; i < nmsgs; i++) {
		rete_buf_free(&signed_msgs[i]);
		rete_buf_free(&sealed_parts[i]);
	}
	return 0;
}
