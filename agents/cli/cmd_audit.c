/* cmd_audit.c — the auditor's commands on a local store (an offline copy,
 * or the broker's live folder opened read-only):
 *   rete audit verify STORE_DIR --broker-key FILE.pub [...]   the whole log
 *   rete audit log STORE_DIR [--from N] [--to N] [--case ID]  entries, metadata
 *   rete audit timeline STORE_DIR --case ID                   one case, for people
 *   rete audit proof STORE_DIR --index N [--size M]           inclusion proof
 *   rete audit consistency STORE_DIR --from M --to N          consistency proof
 *   rete audit check-proof FILE --checkpoint FILE --broker-key FILE.pub
 * Proof files use the key names of the shared Merkle test vectors (leafIdx,
 * treeSize, root, leafHash, proof, size1, size2, root1, root2). */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "audit_remote.h"
#include "checkpoint.h"
#include "cli_access.h"
#include "coord_config.h"
#include "cosign.h"
#include "duration.h"
#include "codec.h"
#include "json.h"
#include "keys.h"
#include "lifecycle.h"
#include "merkle.h"
#include "store.h"
#include "verify.h"

static void audit_usage(FILE *out)
{
	fprintf(
	    out,
	    "usage: rete audit verify STORE_DIR --broker-key FILE.pub [--since-checkpoint FILE]\n"
	    "                         [--origin NAME] [--json] [--threads N] [--no-replay]\n"
	    "                         [--scratch DIR] [--witnesses POLICY]\n"
	    "       rete audit verify [--broker ENDPOINT] -c audit.ini --state FILE [--json]\n"
	    "                         [--threads N] [--batch N] [--witnesses POLICY]\n"
	    "       rete audit log STORE_DIR [--from N] [--to N] [--case ID]\n"
	    "       rete audit timeline (STORE_DIR | -c audit.ini) --case ID [--tz ZONE]\n"
	    "       rete audit proof STORE_DIR --index N [--size M]\n"
	    "       rete audit consistency STORE_DIR --from M --to N\n"
	    "       rete audit check-proof FILE --checkpoint FILE --broker-key FILE.pub\n"
	    "                              [--origin NAME]\n"
	    "\n"
	    "The auditor's commands. STORE_DIR is the broker's store folder (or a copy,\n"
	    "e.g. from 'rete store backup'); it is opened read-only, so these commands\n"
	    "work while the broker runs and writes.\n"
	    "\n"
	    "verify     checks the whole log at one fixed size: every entry decodes\n"
	    "           strictly and sits at its index; every signature verifies (the\n"
	    "           broker's bodies with --broker-key, an agency's message with its\n"
	    "           key in the Directory in force at that point of the log); the\n"
	    "           Merkle tree recomputed from the entries equals the stored one and\n"
	    "           every stored checkpoint, each checkpoint is signed by the broker\n"
	    "           key and consistent with the one before; and the referral lifecycle\n"
	    "           replayed from the log (in a scratch store, removed afterwards)\n"
	    "           gives the same referral projections as the store, and the same\n"
	    "           derived indexes, row by row: the case index (cases), the dedup\n"
	    "           index (msgids), the due times (due), the delivery queue (queue,\n"
	    "           less what the log shows delivered, refused or expired) and the\n"
	    "           sealed parts kept (blobs, each hashing to what its entry signs);\n"
	    "           a difference names the database, the row and what differs. Prints\n"
	    "           'verified N entries, M checkpoints; latest checkpoint size S root R'\n"
	    "           or the first failure, naming the entry's index. Signatures are\n"
	    "           checked on every core. A progress line goes to standard error when\n"
	    "           it is a terminal.\n"
	    "  --broker-key FILE.pub    the broker's public key (required)\n"
	    "  --since-checkpoint FILE  a checkpoint note kept from an earlier audit: the\n"
	    "                           log must extend it (catches a truncated log or an\n"
	    "                           older backup put back), or follow it with a\n"
	    "                           declared restore (an epoch entry that does not\n"
	    "                           contradict it: said in words); a damaged note\n"
	    "                           does not hold (exit 1); a file that is plainly\n"
	    "                           not a note (its first lines are not an origin\n"
	    "                           and a size): exit 2\n"
	    "  --origin NAME            the log's origin (the checkpoints' key name);\n"
	    "                           default: the first checkpoint's origin\n"
	    "  --json                   print a summary object instead of the sentence\n"
	    "  --threads N              threads for the signatures (default: all cores)\n"
	    "  --no-replay              skip the lifecycle replay and the comparison of\n"
	    "                           projections and derived indexes (the replay adds\n"
	    "                           about a tenth to the CPU the check takes); a\n"
	    "                           local store only (at a distance there is none)\n"
	    "  --scratch DIR            where the replay's scratch store goes (default\n"
	    "                           $TMPDIR or /tmp)\n"
	    "  --witnesses POLICY       a witness policy file ('witness NAME KEY' lines,\n"
	    "                           'quorum K'): the latest checkpoint verified must\n"
	    "                           carry valid cosignatures of the quorum; else exit\n"
	    "                           1 naming the missing and invalid witnesses (also\n"
	    "                           at a distance; docs/auditing.md \"Witnesses\")\n"
	    "\n"
	    "verify at a distance (-c audit.ini: the auditor's id, key, broker endpoint and\n"
	    "           pinned broker key, in the coord.ini format) asks the broker for its\n"
	    "           latest signed checkpoint and fetches only the entries not verified\n"
	    "           yet, in batches, checking them as above (without the replay, which\n"
	    "           needs the store). --state FILE keeps the last checkpoint verified,\n"
	    "           the frontier of the verified tree and the directory in force,\n"
	    "           signed with the auditor's key; each run first checks that the\n"
	    "           broker's log is consistent with it (a consistency proof), and\n"
	    "           replaces it (atomically) only when everything held. A broker whose\n"
	    "           log does not extend the saved checkpoint (rolled back, forked) gets\n"
	    "           an ALARM with both checkpoint notes. After a declared restore (a\n"
	    "           checkpoint of a later epoch) the log is verified again from 0,\n"
	    "           its epoch entry checked against the saved checkpoint, the earlier\n"
	    "           state kept as FILE.epoch-N, and the run says what the restore\n"
	    "           left out. The first run, without FILE, verifies the log from 0.\n"
	    "           FILE's folder is checked first: when it cannot take the new\n"
	    "           state, a warning, and the run goes on against the saved one (an\n"
	    "           ALARM is still exit 1); exit 2 at the end if all else held.\n"
	    "  --broker ENDPOINT        the broker's endpoint (default: [client] broker)\n"
	    "  --batch N                entries asked for per query (default 1000; the\n"
	    "                           broker may send fewer)\n"
	    "\n"
	    "log        prints entries as JSON lines, metadata only: index, loggedAt,\n"
	    "           sender, recipient, kind, messageId, referralId, status, caseId.\n"
	    "           --from and --to are log indexes, both inclusive; --case keeps one\n"
	    "           case's entries.\n"
	    "timeline   prints one case's history for people to read, in log order: who\n"
	    "           sent what to whom, services and priorities, status changes with\n"
	    "           business status and reason, outcomes, deliveries, notices, notes\n"
	    "           (their kind). Times in the network's time zone (--tz, else the\n"
	    "           directory's in the store, or audit.ini's time_zone; a zone this\n"
	    "           machine does not know: exit 2, as for rete report). With -c the\n"
	    "           broker's whole log is read by range and filtered (the broker has\n"
	    "           no query by case).\n"
	    "\n"
	    "proof      prints the inclusion proof of entry --index in the tree of --size\n"
	    "           entries (default: the latest checkpoint's size when it covers the\n"
	    "           entry, else the log size) as JSON: leafIdx, treeSize, leafHash,\n"
	    "           proof (base64 hashes), root, and checkpoint (the signed note)\n"
	    "           when the store holds a checkpoint of that size.\n"
	    "consistency prints the consistency proof between tree sizes --from and --to\n"
	    "           as JSON: size1, size2, root1, root2, proof, and checkpoint1 /\n"
	    "           checkpoint (the signed notes of those sizes, when stored).\n"
	    "check-proof checks a proof file of either kind against a signed checkpoint\n"
	    "           note (a file): the note must carry a valid signature of\n"
	    "           --broker-key under the origin's name (--origin, default the\n"
	    "           note's first line), its size must be the proof's treeSize (or\n"
	    "           size2) and its root the proof's root (or root2), and the proof\n"
	    "           must verify (RFC 9162). A checkpoint file that is plainly not a\n"
	    "           checkpoint note (as for --since-checkpoint), or a proof file that\n"
	    "           is not a proof (not JSON, not an object, a key no proof has, no\n"
	    "           sizes): exit 2; a damaged note does not hold (exit 1).\n"
	    "\n"
	    "Exit codes: 0 the log / proof holds (or the output was printed); 1 it does\n"
	    "not (the sentence says where and why); 2 usage error, unreadable file or\n"
	    "store, I/O error.\n");
}

/* ---- small helpers ---------------------------------------------------------- */

static bool parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = v;
	return true;
}

static char *b64h(const uint8_t h[RETE_MERKLE_HASH])
{
	return rete_b64_encode(h, RETE_MERKLE_HASH);
}

/* set_b64 adds key: base64(h) to obj. */
static void set_b64(json_t *obj, const char *key, const uint8_t *h, size_t len)
{
	char *s = rete_b64_encode(h, len);
	json_object_set_new(obj, key, s != NULL ? json_string(s) : json_null());
	free(s);
}

static int print_json(json_t *obj, const char *who)
{
	int rc = CLI_OK;
	if (obj == NULL || json_dumpf(obj, stdout, JSON_INDENT(2)) != 0 ||
	    fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
		fprintf(stderr, "rete audit %s: cannot write to standard output: %s\n", who,
			strerror(errno));
		rc = CLI_USAGE;
	}
	json_decref(obj);
	return rc;
}

static int open_store(const char *dir, rete_store **s, const char *who)
{
	rete_msg m = {{0}};
	rete_err e = rete_store_open(s, dir, RETE_STORE_RDONLY, &m);

	if (e != RETE_OK) {
		fprintf(stderr, "rete audit %s: %s\n", who, m.text[0] ? m.text : rete_strerror(e));
		return CLI_USAGE;
	}
	return CLI_OK;
}

/* need_value takes the value of option argv[*i]. */
static const char *need_value(int argc, char **argv, int *i, const char *who, const char *what)
{
	if (*i + 1 >= argc) {
		fprintf(stderr, "rete audit %s: %s needs %s\n", who, argv[*i], what);
		return NULL;
	}
	return argv[++*i];
}

/* origin_ok: name can be a log's origin (the checkpoints' key name:
 * 1 to 255 bytes of UTF-8 with no space, '+' or control character, C1
 * included); otherwise says so, naming --origin and why, and the caller
 * exits 2 (a usage error, as any other bad value), not 1 (which says the
 * log or proof does not hold). The check is the checkpoints' own:
 * rete_checkpoint_verify refuses a bad key name before it reads the note
 * ("the key name '...' contains '+'"); any other answer to an empty note
 * means the name is fine. */
static bool origin_ok(const char *sub, const char *name)
{
	static const rete_pubkey none;
	const char *pre = "the key name '";
	rete_msg m = {0};

	if (rete_checkpoint_verify("", 0, name, &none, NULL, &m) != RETE_EINVAL ||
	    strncmp(m.text, pre, strlen(pre)) != 0)
		return true;
	/* the store's sentence: the key name '<name, escaped>' <why> */
	const char *shown = m.text + strlen(pre), *why = NULL;
	static const char *const whys[] = {"' is ", "' has ", "' contains "};
	for (size_t i = 0; i < sizeof(whys) / sizeof(whys[0]); i++) {
		const char *w = strstr(shown, whys[i]);
		if (w != NULL && (why == NULL || w < why))
			why = w;
	}
	int len = why != NULL ? (int)(why - shown) : (int)strlen(shown);
	fprintf(stderr,
		"rete audit %s: --origin '%.*s%s' cannot be a log's origin: it %s; it is the "
		"checkpoints' key name, 1 to %d bytes of UTF-8 without spaces, '+' or control "
		"characters (e.g. rete.example/mantova)\n",
		sub, len > 80 ? 80 : len, shown, len > 80 ? "..." : "",
		why != NULL ? why + 2 : "is not accepted", RETE_ORIGIN_MAX);
	return false;
}

static int unknown_option(const char *who, const char *opt, const char *accepted)
{
	fprintf(stderr, "rete audit %s: unknown option '%s'; accepted: %s\n", who, opt, accepted);
	return CLI_USAGE;
}

static int bad_number(const char *who, const char *opt, const char *v)
{
	fprintf(stderr, "rete audit %s: %s '%s' is not a number; give a decimal integer >= 0\n",
		who, opt, v);
	return CLI_USAGE;
}

/* NOTE_FILE_MAX: more than any checkpoint note (RETE_NOTE_MAX_SIGS lines of
 * at most a few hundred bytes each); PROOF_FILE_MAX: more than any proof
 * file (64 hashes and two notes). */
#define NOTE_FILE_MAX  65535
#define PROOF_FILE_MAX (1u << 20)

/* read_small reads a file the user gave (a pipe too) into a malloc'd,
 * NUL-terminated buffer, at most max bytes: what (in "larger than any
 * WHAT") names the kind of file. A file that cannot be read or is larger
 * is said on stderr (false: exit 2); nothing more than max + 1 bytes is
 * read (a huge file, or /dev/zero, is not taken into memory). */
static bool read_small(const char *path, const char *who, const char *opt, size_t max,
		       const char *what, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	size_t n = 0;
	char *buf;

	*out = NULL;
	*len = 0;
	if (f == NULL) {
		fprintf(stderr, "rete audit %s: %s: cannot read %s: %s\n", who, opt, path,
			strerror(errno));
		return false;
	}
	if ((buf = malloc(max + 2)) == NULL) {
		fclose(f);
		fprintf(stderr, "rete audit %s: out of memory\n", who);
		return false;
	}
	n = fread(buf, 1, max + 1, f);
	if (ferror(f)) {
		int err = errno;
		fclose(f);
		free(buf);
		fprintf(stderr, "rete audit %s: %s: cannot read %s: %s\n", who, opt, path,
			strerror(err));
		return false;
	}
	fclose(f);
	if (n > max) {
		free(buf);
		fprintf(stderr, "rete audit %s: %s: %s is larger than any %s (%zu KiB)\n", who, opt,
			path, what, (max + 1) / 1024);
		return false;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return true;
}

/* note_line: the length of the line at s (of len bytes), without its
 * newline and a carriage return before it; *next is where the next line
 * starts (len when none). */
static size_t note_line(const char *s, size_t len, size_t *next)
{
	const char *nl = memchr(s, '\n', len);
	size_t n = nl != NULL ? (size_t)(nl - s) : len;
	*next = nl != NULL ? n + 1 : len;
	return n > 0 && s[n - 1] == '\r' ? n - 1 : n;
}

/* note_like: is the file text (len bytes) a checkpoint note, whole or
 * damaged, rather than another file? It is when its first line is the
 * log's origin (origin, when given), or when it has a note's opening: a
 * first line that is not empty, then a line of 1 to 20 decimal digits
 * (the size; a leading zero and a carriage return before the newline
 * allowed). A note's damage (a lost final newline, a cut or missing
 * signature, a garbled root, CRLF) keeps that opening, so it is judged:
 * the note does not hold (exit 1). /etc/passwd, a proof's JSON, an empty
 * or binary file have no such opening: an input error (exit 2). */
static bool note_like(const char *text, size_t len, const char *origin)
{
	size_t next, next2;
	size_t first = note_line(text, len, &next);
	if (first == 0 || next == len)
		return false;
	if (origin != NULL && strlen(origin) == first && memcmp(text, origin, first) == 0)
		return true;
	size_t size = note_line(text + next, len - next, &next2);
	if (size == 0 || size > 20)
		return false;
	for (size_t i = 0; i < size; i++)
		if (text[next + i] < '0' || text[next + i] > '9')
			return false;
	return true;
}

/* read_note reads a checkpoint note file (read_small) and checks it is
 * one. An empty file or one that is not a checkpoint note at all (another
 * file given by mistake: note_like) is the input's fault, said as such: it
 * is not a checkpoint that fails, and the log is not judged by it (exit 2,
 * never the tamper alarm of exit 1). A note, even a damaged one, is judged
 * later: one that does not parse or whose signature fails does not hold
 * (exit 1). origin is --origin (NULL: not given). */
static bool read_note(const char *path, const char *who, const char *opt, const char *origin,
		      char **note, size_t *len)
{
	rete_checkpoint cp;
	rete_msg m = {{0}};

	if (!read_small(path, who, opt, NOTE_FILE_MAX, "checkpoint note", note, len))
		return false;
	if (*len == 0) {
		free(*note);
		*note = NULL;
		fprintf(stderr,
			"rete audit %s: %s: %s is empty (no checkpoint was written into it); give "
			"a checkpoint note as 'rete checkpoint' prints it\n",
			who, opt, path);
		return false;
	}
	if (rete_checkpoint_parse(*note, *len, &cp, &m) != RETE_OK &&
	    !note_like(*note, *len, origin)) {
		free(*note);
		*note = NULL;
		fprintf(stderr,
			"rete audit %s: %s: %s is not a checkpoint note (%s; its first two lines "
			"are not a log's origin and a size); give a checkpoint note as 'rete "
			"checkpoint' prints it\n",
			who, opt, path, m.text);
		return false;
	}
	return true;
}

/* ---- verify ------------------------------------------------------------------- */

static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
	(void)ctx;
	fprintf(stderr, "\rverifying: %" PRIu64 " of %" PRIu64 " entries (%d%%)", done, total,
		total == 0 ? 100 : (int)(done * 100 / total));
	if (done == total)
		fputc('\n', stderr);
	fflush(stderr);
}

static json_t *verify_json(const rete_verify_report *rep, bool replay)
{
	json_t *o = json_object();
	const char *verdict = rep->verdict == RETE_VERIFY_HOLDS	  ? "holds"
			      : rep->verdict == RETE_VERIFY_FAILS ? "fails"
								  : "error";

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "holds", json_boolean(rep->verdict == RETE_VERIFY_HOLDS));
	json_object_set_new(o, "verdict", json_string(verdict));
	json_object_set_new(o, "origin", json_string(rep->origin));
	json_object_set_new(o, "logSize", json_integer((json_int_t)rep->size));
	json_object_set_new(o, "entriesChecked", json_integer((json_int_t)rep->entries));
	json_object_set_new(o, "checkpointsChecked", json_integer((json_int_t)rep->checkpoints));
	json_object_set_new(o, "directories", json_integer((json_int_t)rep->directories));
	json_object_set_new(o, "replay", json_boolean(replay));
	json_object_set_new(o, "referralsCompared", json_integer((json_int_t)rep->referrals));
	json_object_set_new(o, "indexRowsCompared", json_integer((json_int_t)rep->index_rows));
	json_object_set_new(o, "unloggedAcks", json_integer((json_int_t)rep->unlogged_acks));
	json_object_set_new(o, "acksVerified", json_integer((json_int_t)rep->acks_verified));
	json_object_set_new(o, "acksUnsigned", json_integer((json_int_t)rep->acks_unsigned));
	json_object_set_new(o, "keyChangesBack", json_integer((json_int_t)rep->key_changes_back));
	json_t *clock = audit_clock_json(rep);
	if (clock != NULL)
		json_object_set_new(o, "clock", clock);
	if (rep->verdict == RETE_VERIFY_HOLDS)
		set_b64(o, "root", rep->root, RETE_MERKLE_HASH);
	if (rep->has_checkpoint) {
		json_t *c = json_object();
		json_object_set_new(c, "size", json_integer((json_int_t)rep->latest_size));
		set_b64(c, "root", rep->latest_root, RETE_MERKLE_HASH);
		json_object_set_new(o, "latestCheckpoint", c);
	}
	if (rep->has_bad_entry)
		json_object_set_new(o, "badEntry", json_integer((json_int_t)rep->bad_index));
	if (rep->reason[0] != '\0')
		json_object_set_new(o, "reason", json_string(rep->reason));
	if (rep->restored)
		json_object_set_new(o, "restore", audit_restore_json(rep, NULL));
	return o;
}

/* The newest stored checkpoint below `below` that meets a witness policy. */
struct newest_met {
	const rete_witness_policy *p;
	uint64_t below, size;
	bool found;
};

static int newest_met_fn(void *ctx, uint64_t size, const char *note)
{
	struct newest_met *nm = ctx;
	if (size < nm->below &&
	    rete_witness_policy_check(nm->p, note, strlen(note), NULL) == RETE_OK) {
		nm->size = size;
		nm->found = true;
	}
	return 0;
}

/* state_dir_ok: can the state file at path be written (its folder exists,
 * is a folder, and this user may create files in it)? Checked before the
 * log is fetched, so that the operator knows at once; when not, a warning
 * says why and that the run goes on: the log is still verified against the
 * state saved there (a rollback still raises the ALARM, exit 1), and only
 * a run where all else held ends in exit 2 for the state not saved. */
static bool state_dir_ok(const char *path)
{
	char copy[PATH_MAX];
	struct stat st;

	snprintf(copy, sizeof(copy), "%s", path);
	const char *dir = dirname(copy); /* in copy, or a static "." or "/" */
	const char *why = stat(dir, &st) != 0		  ? strerror(errno)
			  : !S_ISDIR(st.st_mode)	  ? "it is not a folder"
			  : access(dir, W_OK | X_OK) != 0 ? "this user cannot create files in it"
							  : NULL;
	if (why == NULL)
		return true;
	fprintf(stderr,
		"rete audit verify: warning: --state %s: its folder %s cannot hold it: %s. The "
		"log is verified all the same, against the state saved there, but the new state "
		"cannot be saved: exit 2 if all else holds. Give a state file in a folder that "
		"exists and this user may write\n",
		path, dir, why);
	return false;
}

static int audit_verify(int argc, char **argv)
{
	const char *dir = NULL, *keyfile = NULL, *since = NULL, *origin = NULL, *v;
	const char *ini = NULL, *endpoint = NULL, *state = NULL, *witnesses = NULL;
	rete_witness_policy *policy = NULL;
	struct newest_met nm = {0};
	char *wnote = NULL;
	bool wmet = true;
	uint64_t batch = 0;
	bool json = false, replay = true;
	rete_verify_options opt;
	rete_verify_report rep;
	rete_store *s = NULL;
	char *note = NULL;
	size_t note_len = 0;
	uint64_t threads = 0;
	rete_msg m = {{0}};
	rete_err e;
	int rc;

	memset(&opt, 0, sizeof(opt));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--broker-key") == 0) {
			if ((keyfile = need_value(argc, argv, &i, "verify", "a .pub file")) == NULL)
				return CLI_USAGE;
		} else if (strcmp(argv[i], "--since-checkpoint") == 0) {
			if ((since = need_value(argc, argv, &i, "verify", "a checkpoint file")) ==
			    NULL)
				return CLI_USAGE;
		} else if (strcmp(argv[i], "--origin") == 0) {
			if ((origin = need_value(argc, argv, &i, "verify", "a name")) == NULL)
				return CLI_USAGE;
		} else if (strcmp(argv[i], "--scratch") == 0) {
			if ((opt.scratch_dir = need_value(argc, argv, &i, "verify", "a folder")) ==
			    NULL)
				return CLI_USAGE;
		} else if (strcmp(argv[i], "--threads") == 0) {
			if ((v = need_value(argc, argv, &i, "verify", "a number")) == NULL)
				return CLI_USAGE;
			if (!parse_u64(v, &threads) || threads == 0 || threads > 256) {
				fprintf(
				    stderr,
				    "rete audit verify: --threads '%s' is not accepted; give 1 to "
				    "256\n",
				    v);
				return CLI_USAGE;
			}
		} else if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
			if ((ini = need_value(argc, argv, &i, "verify", "an audit.ini file")) ==
			    NULL)
				return CLI_USAGE;
		} else if (strcmp(argv[i], "--broker") == 0) {
			if ((endpoint = need_value(argc, argv, &i, "verify", "an endpoint")) ==
			    NULL)
				return CLI_USAGE;
		} else if (strcmp(argv[i], "--state") == 0) {
			if ((state = need_value(argc, argv, &i, "verify", "a state file")) == NULL)
				return CLI_USAGE;
		} else if (strcmp(argv[i], "--batch") == 0) {
			if ((v = need_value(argc, argv, &i, "verify", "a number")) == NULL)
				return CLI_USAGE;
			if (!parse_u64(v, &batch) || batch == 0 || batch > 100000) {
				fprintf(
				    stderr,
				    "rete audit verify: --batch '%s' is not accepted; give 1 to "
				    "100000 (entries per query; the broker may send fewer)\n",
				    v);
				return CLI_USAGE;
			}
		} else if (strcmp(argv[i], "--witnesses") == 0) {
			if ((witnesses = need_value(argc, argv, &i, "verify",
						    "a witness policy file")) == NULL)
				return CLI_USAGE;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "--no-replay") == 0) {
			replay = false;
		} else if (argv[i][0] == '-') {
			return unknown_option(
			    "verify", argv[i],
			    "--broker-key, --since-checkpoint, --origin, --json, "
			    "--threads, --no-replay, --scratch, --witnesses; at a "
			    "distance: --broker, -c, --state, --batch, --witnesses");
		} else if (dir == NULL) {
			dir = argv[i];
		} else {
			fprintf(stderr, "rete audit verify: unexpected argument '%s'\n", argv[i]);
			return CLI_USAGE;
		}
	}
	if (origin != NULL && !origin_ok("verify", origin))
		return CLI_USAGE;
	if (witnesses != NULL &&
	    (e = rete_witness_policy_load(witnesses, &policy, &m)) != RETE_OK) {
		fprintf(stderr, "rete audit verify: --witnesses: %s\n", m.text);
		return CLI_USAGE;
	}
	if (ini != NULL || endpoint != NULL || state != NULL || batch != 0) {
		/* at a distance: the keys come from audit.ini, the log from the broker */
		audit_remote_opts ro;
		/* --no-replay too: the replay compares the store's projections,
		 * which a remote verify does not have, so it never replays;
		 * accepting the option would pretend it changed something */
		const char *bad = dir != NULL		    ? "STORE_DIR"
				  : keyfile != NULL	    ? "--broker-key"
				  : since != NULL	    ? "--since-checkpoint"
				  : opt.scratch_dir != NULL ? "--scratch"
				  : origin != NULL	    ? "--origin"
				  : !replay		    ? "--no-replay"
							    : NULL;
		if (bad != NULL) {
			fprintf(stderr,
				"rete audit verify: %s is for a local store%s; at a distance give "
				"[--broker ENDPOINT] -c audit.ini --state FILE\n",
				bad,
				!replay && strcmp(bad, "--no-replay") == 0
				    ? " (at a distance the lifecycle is never replayed: the "
				      "replay needs the broker's store)"
				    : "");
			rete_witness_policy_free(&policy);
			return CLI_USAGE;
		}
		if (ini == NULL || state == NULL) {
			fprintf(stderr, "rete audit verify: missing %s; see 'rete audit --help'\n",
				ini == NULL ? "-c audit.ini" : "--state FILE");
			rete_witness_policy_free(&policy);
			return CLI_USAGE;
		}
		state_dir_ok(state); /* a warning: the run goes on */
		memset(&ro, 0, sizeof(ro));
		ro.ini = ini;
		ro.endpoint = endpoint;
		ro.state = state;
		ro.json = json;
		ro.threads = (unsigned)threads;
		ro.batch = (unsigned)batch;
		ro.witnesses_path = witnesses;
		ro.witnesses = policy;
		rc = audit_remote_verify(&ro);
		rete_witness_policy_free(&policy);
		return rc;
	}
	if (dir == NULL || keyfile == NULL) {
		fprintf(stderr, "rete audit verify: %s; see 'rete audit --help'\n",
			dir == NULL ? "missing STORE_DIR" : "missing --broker-key FILE.pub");
		rete_witness_policy_free(&policy);
		return CLI_USAGE;
	}
	if ((e = rete_keyfile_load_public(keyfile, &opt.broker_key, &m)) != RETE_OK) {
		fprintf(stderr, "rete audit verify: %s\n", m.text[0] ? m.text : rete_strerror(e));
		rete_witness_policy_free(&policy);
		return CLI_USAGE;
	}
	if (since != NULL) {
		if (!read_note(since, "verify", "--since-checkpoint", origin, &note, &note_len)) {
			rete_witness_policy_free(&policy);
			return CLI_USAGE;
		}
		opt.since_note = note;
		opt.since_len = note_len;
	}
	opt.origin = origin;
	opt.threads = (unsigned)threads;
	opt.replay = replay;
	if (isatty(STDERR_FILENO))
		opt.progress = on_progress;
	if ((rc = open_store(dir, &s, "verify")) != CLI_OK) {
		free(note);
		rete_witness_policy_free(&policy);
		return rc;
	}
	/* every key change of a party, said after the verdict (a rotation and a
	 * broker's operator who signed as the party look alike in the log) */
	json_t *changes = json_array();
	opt.key_change = audit_key_change_keep;
	opt.key_change_ctx = changes;
	e = rete_verify_log(s, &opt, &rep, &m);
	if (policy != NULL && rep.verdict == RETE_VERIFY_HOLDS && rep.has_checkpoint) {
		/* the verified checkpoint as stored now, with the cosignatures
		 * gathered so far (the broker adds them to the stored note) */
		rete_msg wm = {{0}};
		if (rete_store_checkpoint_get(s, NULL, rep.latest_size, &wnote, &wm) != RETE_OK ||
		    rete_checkpoint_verify(wnote, strlen(wnote), rep.origin, &opt.broker_key, NULL,
					   &wm) != RETE_OK) {
			fprintf(stderr,
				"rete audit verify: the checkpoint of size %" PRIu64 ": %s\n",
				rep.latest_size, wm.text);
			free(wnote);
			wnote = NULL;
		}
		if (wnote != NULL &&
		    rete_witness_policy_check(policy, wnote, strlen(wnote), NULL) != RETE_OK) {
			/* say how far back the witnesses' quorum reaches */
			nm.p = policy;
			nm.below = rep.latest_size;
			rete_store_checkpoints_iter(s, NULL, 0, newest_met_fn, &nm, NULL);
		}
	}
	/* batches receipted from the journal that data.mdb lacks (a crash
	 * before LMDB's commit; a broker behind on a full disk) */
	unsigned jahead = 0;
	uint64_t jto = 0;
	(void)rete_store_journal_state(s, false, false, &jahead, &jto, NULL);
	rete_store_close(&s);
	if (opt.progress != NULL && rep.verdict != RETE_VERIFY_HOLDS)
		fputc('\n', stderr); /* end the progress line where it stopped */
	free(note);
	if (rep.verdict == RETE_VERIFY_ERROR) {
		fprintf(stderr, "rete audit verify: %s\n", m.text[0] ? m.text : rete_strerror(e));
		if (json)
			print_json(verify_json(&rep, replay), "verify");
		rete_witness_policy_free(&policy);
		free(wnote);
		json_decref(changes);
		return CLI_USAGE;
	}
	if (json) {
		json_t *jo = verify_json(&rep, replay);
		json_object_set(jo, "keyChanges", changes);
		if (policy != NULL && rep.verdict == RETE_VERIFY_HOLDS) {
			wmet = audit_witnesses_check(policy, witnesses, wnote, true, jo);
			if (nm.found)
				json_object_set_new(json_object_get(jo, "witnesses"),
						    "newestMetSize",
						    json_integer((json_int_t)nm.size));
		}
		rc = print_json(jo, "verify");
		if (rc != CLI_OK) {
			rete_witness_policy_free(&policy);
			free(wnote);
			json_decref(changes);
			return rc;
		}
	} else if (rep.verdict == RETE_VERIFY_HOLDS) {
		if (rep.has_checkpoint) {
			char *r = b64h(rep.latest_root);
			printf("verified %" PRIu64 " entries, %" PRIu64
			       " checkpoints; latest checkpoint size %" PRIu64 " root %s\n",
			       rep.entries, rep.checkpoints, rep.latest_size, r ? r : "?");
			free(r);
		} else {
			printf("verified %" PRIu64 " entries, 0 checkpoints; no checkpoint yet\n",
			       rep.entries);
		}
		if (jahead > 0)
			printf("note: the store's journal holds %u receipted batch(es) that data.mdb "
			       "does not hold yet (the log up to %" PRIu64 " entries), not verified "
			       "here: the broker takes them in at its next start (a running broker "
			       "in a moment; if it stays behind, rete health says why)\n",
			       jahead, jto);
		audit_acks_print(&rep);
		audit_key_changes_print(changes, dir, NULL);
		audit_clock_print(&rep);
		if (rep.restored)
			audit_restore_print(&rep, NULL, NULL);
		if (policy != NULL)
			wmet = audit_witnesses_check(policy, witnesses, wnote, false, NULL);
		if (policy != NULL && nm.found)
			printf("the newest checkpoint that meets it is of size %" PRIu64
			       "; agents cosign a checkpoint at their next 'witness' interval\n",
			       nm.size);
	}
	rete_witness_policy_free(&policy);
	free(wnote);
	if (!json && rep.verdict != RETE_VERIFY_HOLDS)
		audit_key_changes_print(changes, dir, NULL); /* those met before the failure */
	json_decref(changes);
	if (!json && rep.verdict != RETE_VERIFY_HOLDS) {
		printf("the log does not verify: %s\n", rep.reason);
		printf("(%" PRIu64 " of %" PRIu64 " entries and %" PRIu64
		       " checkpoints checked before it)\n",
		       rep.entries, rep.size, rep.checkpoints);
	}
	if (fflush(stdout) != 0)
		return CLI_USAGE;
	return rep.verdict == RETE_VERIFY_HOLDS && wmet ? CLI_OK : CLI_FALSE;
}

/* ---- log and timeline ----------------------------------------------------------- */

/* The metadata of one entry. msg may be NULL when it does not decode. */
static const char *status_of(const Rete__Message *msg)
{
	if (msg->body_case == RETE__MESSAGE__BODY_REFERRAL)
		return "requested";
	if (msg->body_case == RETE__MESSAGE__BODY_UPDATE &&
	    msg->update->status != RETE__STATUS__STATUS_UNSPECIFIED)
		return rete_status_name(msg->update->status);
	return NULL;
}

static void set_str(json_t *o, const char *key, const char *v)
{
	if (v != NULL && *v != '\0')
		json_object_set_new(o, key, json_string(v));
}

/* epoch_json adds what an epoch entry (a declared restore) says: the new
 * epoch, and the size and epoch of the last checkpoint signed before. */
static void epoch_json(json_t *o, const Rete__Epoch *e)
{
	rete_checkpoint cp;
	char size[24];

	json_object_set_new(o, "epoch", json_integer((json_int_t)e->epoch));
	json_object_set_new(o, "previousEpoch", json_integer((json_int_t)e->previous_epoch));
	if (e->checkpoint != NULL &&
	    rete_checkpoint_parse(e->checkpoint, strlen(e->checkpoint), &cp, NULL) == RETE_OK) {
		/* 64-bit integers are strings in rete's JSON */
		snprintf(size, sizeof(size), "%" PRIu64, cp.size);
		json_object_set_new(o, "previousCheckpointSize", json_string(size));
	}
}

/* entry_json: the metadata object of entry index (NULL on out of memory). */
static json_t *entry_json(uint64_t index, const rete_buf *raw)
{
	json_t *o = json_object();
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, raw->len, raw->data);
	Rete__Message *msg = NULL;
	rete_msg m = {{0}};
	char tb[32];

	if (o == NULL)
		return NULL;
	json_object_set_new(o, "index", json_integer((json_int_t)index));
	if (le == NULL) {
		json_object_set_new(o, "error", json_string("the LogEntry does not decode"));
		return o;
	}
	json_object_set_new(o, "loggedAt", json_string(rete_time_format(le->logged_at, tb)));
	if (rete_signed_decode(le->signed_message.data, le->signed_message.len, NULL, &msg, &m) !=
	    RETE_OK) {
		json_object_set_new(o, "error", json_string(m.text));
	} else {
		set_str(o, "sender", msg->sender);
		set_str(o, "recipient", msg->recipient);
		set_str(o, "kind", rete_message_kind(msg));
		set_str(o, "messageId", msg->id);
		set_str(o, "referralId", rete_message_referral_id(msg));
		set_str(o, "status", status_of(msg));
		set_str(o, "caseId", msg->case_id);
		if (msg->body_case == RETE__MESSAGE__BODY_EPOCH)
			epoch_json(o, msg->epoch);
		rete__message__free_unpacked(msg, NULL);
	}
	rete__log_entry__free_unpacked(le, NULL);
	return o;
}

struct idx_list {
	uint64_t *il_v;
	size_t il_n, il_cap;
	bool il_oom;
};

static int collect_index(void *ctx, uint64_t index)
{
	struct idx_list *l = ctx;
	if (l->il_n == l->il_cap) {
		size_t cap = l->il_cap ? l->il_cap * 2 : 64;
		uint64_t *nv = realloc(l->il_v, cap * sizeof(*nv));
		if (nv == NULL) {
			l->il_oom = true;
			return 1;
		}
		l->il_v = nv;
		l->il_cap = cap;
	}
	l->il_v[l->il_n++] = index;
	return 0;
}

/* for_entries calls fn for the entries [from, to] (or those of case_id
 * among them), in log order, inside one read transaction. */
static int for_entries(const char *dir, const char *who, uint64_t from, uint64_t to,
		       const char *case_id,
		       int (*fn)(void *ctx, uint64_t index, const rete_buf *raw), void *ctx)
{
	rete_store *s = NULL;
	rete_store_rtxn *rt = NULL;
	struct idx_list l = {0};
	uint64_t size = 0;
	rete_msg m = {{0}};
	rete_err e;
	int rc;

	if ((rc = open_store(dir, &s, who)) != CLI_OK)
		return rc;
	e = rete_store_read_begin(s, &rt, &m);
	if (e == RETE_OK)
		e = rete_store_size(s, rt, &size, &m);
	if (e == RETE_OK && case_id != NULL)
		e = rete_store_case_entries(s, rt, case_id, collect_index, &l, &m);
	if (e == RETE_OK && l.il_oom)
		e = rete_msg_set(&m, RETE_ENOMEM, "out of memory");
	if (e == RETE_OK) {
		if (to >= size)
			to = size == 0 ? 0 : size - 1;
		if (case_id != NULL) {
			for (size_t i = 0; e == RETE_OK && rc == CLI_OK && i < l.il_n; i++) {
				rete_buf raw = {0};
				if (l.il_v[i] < from || l.il_v[i] > to)
					continue;
				if ((e = rete_store_entry(s, rt, l.il_v[i], &raw, &m)) == RETE_OK)
					rc = fn(ctx, l.il_v[i], &raw);
				rete_buf_free(&raw);
			}
		} else {
			for (uint64_t i = from; size > 0 && e == RETE_OK && rc == CLI_OK && i <= to;
			     i++) {
				rete_buf raw = {0};
				if ((e = rete_store_entry(s, rt, i, &raw, &m)) == RETE_OK)
					rc = fn(ctx, i, &raw);
				rete_buf_free(&raw);
			}
		}
	}
	rete_store_read_end(&rt);
	rete_store_close(&s);
	free(l.il_v);
	if (e != RETE_OK) {
		fprintf(stderr, "rete audit %s: %s\n", who, m.text[0] ? m.text : rete_strerror(e));
		return CLI_USAGE;
	}
	return rc;
}

static int print_line(void *ctx, uint64_t index, const rete_buf *raw)
{
	json_t *o = entry_json(index, raw);
	int rc = CLI_OK;
	(void)ctx;
	if (o == NULL || json_dumpf(o, stdout, JSON_COMPACT) != 0 || fputc('\n', stdout) == EOF)
		rc = CLI_USAGE;
	json_decref(o);
	return rc;
}

/* ---- the timeline ----------------------------------------------------------------- */

/* An entry of the case already printed: deliveries name its recipient. */
struct tl_seen {
	uint64_t ts_index;
	char *ts_recipient;
	const char *ts_kind; /* static */
};

struct timeline {
	struct tl_seen *tl_seen;
	size_t tl_n, tl_cap;
	uint64_t tl_count; /* entries printed */
	bool tl_oom;
};

/* clean copies s into buf for a terminal: control characters become '?'
 * (the log's strings are valid UTF-8 without NUL, but may hold escapes). */
static const char *clean(const char *s, char *buf, size_t n)
{
	size_t i = 0;

	if (s == NULL)
		s = "";
	for (; *s != '\0' && i + 1 < n; s++)
		buf[i++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
	buf[i] = '\0';
	return buf;
}

/* tl_time formats ms in the process time zone (set by the caller). */
static const char *tl_time(int64_t ms, char buf[64])
{
	time_t secs = (time_t)(ms / 1000);
	struct tm tm;

	if (ms < 0 || localtime_r(&secs, &tm) == NULL ||
	    strftime(buf, 64, "%Y-%m-%d %H:%M:%S %Z", &tm) == 0)
		snprintf(buf, 64, "%" PRId64 " ms", ms);
	return buf;
}

static const char *ename(const ProtobufCEnumDescriptor *d, int v)
{
	const char *n = rete_enum_json_name(d, v);
	return n != NULL ? n : "?";
}

static void tl_remember(struct timeline *t, uint64_t index, const Rete__Message *msg)
{
	struct tl_seen *ts;

	if (t->tl_n == t->tl_cap) {
		size_t cap = t->tl_cap ? t->tl_cap * 2 : 32;
		struct tl_seen *nv = realloc(t->tl_seen, cap * sizeof(*nv));
		if (nv == NULL) {
			t->tl_oom = true;
			return;
		}
		t->tl_seen = nv;
		t->tl_cap = cap;
	}
	ts = &t->tl_seen[t->tl_n];
	ts->ts_index = index;
	ts->ts_kind = rete_message_kind(msg);
	if ((ts->ts_recipient = strdup(msg->recipient != NULL ? msg->recipient : "")) != NULL)
		t->tl_n++;
}

static const struct tl_seen *tl_find(const struct timeline *t, uint64_t index)
{
	for (size_t i = 0; i < t->tl_n; i++)
		if (t->tl_seen[i].ts_index == index)
			return &t->tl_seen[i];
	return NULL;
}

static void timeline_free(struct timeline *t)
{
	for (size_t i = 0; i < t->tl_n; i++)
		free(t->tl_seen[i].ts_recipient);
	free(t->tl_seen);
	memset(t, 0, sizeof(*t));
}

/* print_update: the words of a status change. */
static void print_update(const Rete__ReferralUpdate *u)
{
	char b1[256], b2[256];

	if (u->status != RETE__STATUS__STATUS_UNSPECIFIED)
		printf("status %s", rete_status_name(u->status));
	else
		printf("status unchanged");
	if (u->business_status != NULL && *u->business_status != '\0')
		printf(", business status '%s'", clean(u->business_status, b1, sizeof(b1)));
	if (u->status_reason != NULL &&
	    ((u->status_reason->code != NULL && *u->status_reason->code != '\0') ||
	     (u->status_reason->text != NULL && *u->status_reason->text != '\0'))) {
		printf(", reason %s", clean(u->status_reason->code, b1, sizeof(b1)));
		if (u->status_reason->text != NULL && *u->status_reason->text != '\0')
			printf(" (\"%s\")", clean(u->status_reason->text, b2, sizeof(b2)));
	}
	if (u->outcome != NULL) {
		printf(", outcome %s",
		       ename(&rete__outcome_result__descriptor, (int)u->outcome->result));
		if (u->outcome->reason != RETE__OUTCOME_REASON__OUTCOME_REASON_UNSPECIFIED)
			printf(" (%s)",
			       ename(&rete__outcome_reason__descriptor, (int)u->outcome->reason));
		if (u->outcome->text != NULL && *u->outcome->text != '\0')
			printf(": \"%s\"", clean(u->outcome->text, b2, sizeof(b2)));
	}
}

/* print_timeline_entry: one entry of a case for a person, in the process
 * time zone. Only metadata exists in the log: parties, codes, statuses. */
static int print_timeline_entry(void *ctx, uint64_t index, const rete_buf *raw)
{
	struct timeline *t = ctx;
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, raw->len, raw->data);
	Rete__Message *msg = NULL;
	char when[64], b1[256], b2[256], b3[256], b4[256];
	rete_msg m = {{0}};

	t->tl_count++;
	if (le == NULL || rete_signed_decode(le->signed_message.data, le->signed_message.len, NULL,
					     &msg, &m) != RETE_OK) {
		printf("%-23s  #%-5" PRIu64 " this entry does not decode (%s); run 'rete audit "
		       "verify'\n",
		       le != NULL ? tl_time(le->logged_at, when) : "?", index,
		       le != NULL ? m.text : "LogEntry");
		if (le != NULL)
			rete__log_entry__free_unpacked(le, NULL);
		return ferror(stdout) ? CLI_USAGE : CLI_OK;
	}
	printf("%-23s  #%-5" PRIu64 " ", tl_time(le->logged_at, when), index);
	clean(msg->sender, b1, sizeof(b1));
	clean(msg->recipient, b2, sizeof(b2));
	switch (msg->body_case) {
	case RETE__MESSAGE__BODY_REFERRAL: {
		const Rete__Referral *r = msg->referral;
		printf("referral %s: %s -> %s, service %s, priority %s",
		       clean(msg->id, b3, sizeof(b3)), b1, b2, clean(r->service, b4, sizeof(b4)),
		       ename(&rete__priority__descriptor, (int)r->priority));
		if (r->age_band != RETE__AGE_BAND__AGE_BAND_UNSPECIFIED)
			printf(", age band %s",
			       ename(&rete__age_band__descriptor, (int)r->age_band));
		if (r->consent != NULL && r->consent->basis != 0)
			printf(", basis %s",
			       ename(&rete__consent_basis__descriptor, (int)r->consent->basis));
		if (r->do_not_contact)
			printf(", do not contact at home");
		if (r->previous_referral != NULL && *r->previous_referral != '\0')
			printf(", re-refers %s", clean(r->previous_referral, b3, sizeof(b3)));
		tl_remember(t, index, msg);
		break;
	}
	case RETE__MESSAGE__BODY_UPDATE:
		printf("update of %s by %s -> %s: ",
		       clean(msg->update->referral_id, b3, sizeof(b3)), b1, b2);
		print_update(msg->update);
		tl_remember(t, index, msg);
		break;
	case RETE__MESSAGE__BODY_NOTE:
		printf("note by %s -> %s on %s%s: kind %s", b1, b2,
		       msg->note->referral_id != NULL && *msg->note->referral_id != '\0'
			   ? "referral "
			   : "the case",
		       clean(msg->note->referral_id, b3, sizeof(b3)),
		       clean(msg->note->kind, b4, sizeof(b4)));
		tl_remember(t, index, msg);
		break;
	case RETE__MESSAGE__BODY_DELIVERY: {
		const Rete__Delivery *d = msg->delivery;
		const struct tl_seen *ts = tl_find(t, d->index);
		if (ts != NULL)
			printf("delivered to %s: the %s of entry #%" PRIu64,
			       clean(ts->ts_recipient, b3, sizeof(b3)), ts->ts_kind, d->index);
		else
			printf("delivered: entry #%" PRIu64, d->index);
		if (d->referral_id != NULL && *d->referral_id != '\0')
			printf(" (%s)", clean(d->referral_id, b3, sizeof(b3)));
		printf("; delivery receipt to %s", b2);
		break;
	}
	case RETE__MESSAGE__BODY_NOTICE: {
		const Rete__Notice *n = msg->notice;
		printf("notice to %s: ", b2);
		if (n->referral_id != NULL && *n->referral_id != '\0')
			printf("%s ", clean(n->referral_id, b3, sizeof(b3)));
		switch (n->kind) {
		case RETE__NOTICE_KIND__NOTICE_KIND_OVERDUE:
			printf("overdue");
			if (n->due_at > 0)
				printf(" (an answer was due %s)", tl_time(n->due_at, when));
			break;
		case RETE__NOTICE_KIND__NOTICE_KIND_NOT_DELIVERED:
			printf("not delivered before the expiry");
			break;
		case RETE__NOTICE_KIND__NOTICE_KIND_DELIVERY_REFUSED:
			printf("the recipient could not verify or open entry #%" PRIu64, n->index);
			break;
		default:
			printf("%s", ename(&rete__notice_kind__descriptor, (int)n->kind));
		}
		if (n->error != 0)
			printf(", error %s", ename(&rete__error_code__descriptor, (int)n->error));
		if (n->text != NULL && *n->text != '\0')
			printf(": \"%s\"", clean(n->text, b3, sizeof(b3)));
		break;
	}
	case RETE__MESSAGE__BODY_EPOCH: {
		rete_checkpoint cp = {0};
		const Rete__Epoch *e = msg->epoch;
		if (e->checkpoint != NULL)
			rete_checkpoint_parse(e->checkpoint, strlen(e->checkpoint), &cp, NULL);
		printf("the broker's log goes on as epoch %" PRIu32 " after a restore (the last "
		       "checkpoint before it: %" PRIu64 " entries, epoch %" PRIu32 ")",
		       e->epoch, cp.size, e->previous_epoch);
		break;
	}
	default:
		printf("%s by %s", rete_message_kind(msg), b1);
	}
	putchar('\n');
	rete__message__free_unpacked(msg, NULL);
	rete__log_entry__free_unpacked(le, NULL);
	if (t->tl_oom) {
		fprintf(stderr, "rete audit timeline: out of memory\n");
		return CLI_USAGE;
	}
	return ferror(stdout) ? CLI_USAGE : CLI_OK;
}

/* store_time_zone_of: the time zone of the Directory in force in the store
 * at dir (malloc'd), or NULL when it cannot be read or names none. */
static char *store_time_zone_of(const char *dir)
{
	rete_store *s = NULL;
	char *tz;

	if (rete_store_open(&s, dir, RETE_STORE_RDONLY, NULL) != RETE_OK)
		return NULL;
	tz = rete_store_time_zone(s, NULL);
	rete_store_close(&s);
	return tz;
}

/* use_time_zone makes tz the process time zone for tl_time. A zone this
 * machine does not know is refused (NULL), as rete report refuses it: the
 * C library would show every time in UTC under the zone's name. from says
 * where the zone came from, for the sentence. */
static const char *use_time_zone(const char *tz, const char *from)
{
	if (tz == NULL || *tz == '\0') {
		tz = RETE_DEFAULT_TZ;
		from = "the default";
	}
	if (!cli_tz_known(tz)) {
		cli_tz_refuse("rete audit timeline", tz, from, "the times would be shown in UTC");
		return NULL;
	}
	setenv("TZ", tz, 1);
	tzset();
	return tz;
}

static int audit_timeline(int argc, char **argv)
{
	const char *dir = NULL, *ini = NULL, *case_id = NULL, *tz_opt = NULL, *tz;
	char *tz_src = NULL, b[256];
	struct timeline t;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--case") == 0) {
			if ((case_id = need_value(argc, argv, &i, "timeline", "a case id")) == NULL)
				return CLI_USAGE;
		} else if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) {
			if ((ini = need_value(argc, argv, &i, "timeline", "an audit.ini file")) ==
			    NULL)
				return CLI_USAGE;
		} else if (strcmp(argv[i], "--tz") == 0) {
			if ((tz_opt = need_value(argc, argv, &i, "timeline", "a time zone")) ==
			    NULL)
				return CLI_USAGE;
		} else if (argv[i][0] == '-') {
			return unknown_option("timeline", argv[i], "--case, -c, --tz");
		} else if (dir == NULL) {
			dir = argv[i];
		} else {
			fprintf(stderr, "rete audit timeline: unexpected argument '%s'\n", argv[i]);
			return CLI_USAGE;
		}
	}
	if ((dir == NULL) == (ini == NULL) || case_id == NULL || *case_id == '\0') {
		fprintf(stderr, "rete audit timeline: %s; see 'rete audit --help'\n",
			dir == NULL && ini == NULL   ? "give STORE_DIR or -c audit.ini"
			: dir != NULL && ini != NULL ? "give STORE_DIR or -c audit.ini, not both"
						     : "missing --case ID (a non-empty case id)");
		return CLI_USAGE;
	}
	memset(&t, 0, sizeof(t));
	if (ini != NULL && tz_opt == NULL) {
		coord_config cfg;
		rete_msg m = {{0}};
		if (coord_config_load(ini, &cfg, &m) != RETE_OK) {
			fprintf(stderr, "rete audit timeline: %s\n", m.text);
			coord_config_free(&cfg);
			return CLI_USAGE;
		}
		/* the file's zone is refused as rete console refuses it: a
		 * setting that would silently give UTC is a mistake to fix */
		if (!cli_tz_known(cfg.time_zone)) {
			char at[16] = "";
			if (cfg.lines[CC_LINE_TZ] > 0)
				snprintf(at, sizeof(at), ":%d", cfg.lines[CC_LINE_TZ]);
			fprintf(
			    stderr,
			    "rete audit timeline: %s%s: [client] time_zone: '%s'%s is not a time "
			    "zone this machine knows (no /usr/share/zoneinfo/%s); give a zone "
			    "such as Europe/Rome (install tzdata), or --tz ZONE\n",
			    ini, at, cfg.time_zone, cfg.time_zone_default ? " (the default)" : "",
			    cfg.time_zone);
			coord_config_free(&cfg);
			return CLI_USAGE;
		}
		tz_src = strdup(cfg.time_zone);
		coord_config_free(&cfg);
	}
	if (dir != NULL && tz_opt == NULL)
		tz_src = store_time_zone_of(dir);
	tz = use_time_zone(tz_opt != NULL ? tz_opt : tz_src,
			   tz_opt != NULL ? "--tz"
			   : ini != NULL  ? "time_zone of the configuration"
					  : "the time zone of the store's directory");
	if (tz == NULL) {
		free(tz_src);
		return CLI_USAGE;
	}
	printf("case %s: its entries in log order, times in %s%s\n", clean(case_id, b, sizeof(b)),
	       tz, ini != NULL ? " (the whole log read from the broker and filtered here)" : "");
	if (ini != NULL)
		rc = audit_remote_case_entries(ini, case_id, "timeline", print_timeline_entry, &t);
	else
		rc = for_entries(dir, "timeline", 0, UINT64_MAX, case_id, print_timeline_entry, &t);
	if (rc == CLI_OK)
		printf("%" PRIu64 " entr%s\n", t.tl_count, t.tl_count == 1 ? "y" : "ies");
	free(tz_src);
	timeline_free(&t);
	if (fflush(stdout) != 0)
		return CLI_USAGE;
	return rc;
}

static int audit_log(int argc, char **argv)
{
	const char *who = "log";
	const char *dir = NULL, *case_id = NULL, *v;
	uint64_t from = 0, to = UINT64_MAX;
	int rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--case") == 0) {
			if ((case_id = need_value(argc, argv, &i, who, "a case id")) == NULL)
				return CLI_USAGE;
		} else if (strcmp(argv[i], "--from") == 0 || strcmp(argv[i], "--to") == 0) {
			const char *opt = argv[i];
			if ((v = need_value(argc, argv, &i, who, "a log index")) == NULL)
				return CLI_USAGE;
			if (!parse_u64(v, opt[2] == 'f' ? &from : &to))
				return bad_number(who, opt, v);
		} else if (argv[i][0] == '-') {
			return unknown_option(who, argv[i], "--from, --to, --case");
		} else if (dir == NULL) {
			dir = argv[i];
		} else {
			fprintf(stderr, "rete audit %s: unexpected argument '%s'\n", who, argv[i]);
			return CLI_USAGE;
		}
	}
	if (dir == NULL) {
		fprintf(stderr, "rete audit log: missing STORE_DIR; see 'rete audit --help'\n");
		return CLI_USAGE;
	}
	if (case_id != NULL && *case_id == '\0') {
		fprintf(stderr, "rete audit %s: --case is empty; give a case id\n", who);
		return CLI_USAGE;
	}
	if (from > to) {
		fprintf(stderr, "rete audit log: --from %" PRIu64 " is after --to %" PRIu64 "\n",
			from, to);
		return CLI_USAGE;
	}
	rc = for_entries(dir, who, from, to, case_id, print_line, NULL);
	if (fflush(stdout) != 0)
		return CLI_USAGE;
	return rc;
}

/* ---- proofs ---------------------------------------------------------------------- */

static json_t *proof_array(uint8_t proof[][RETE_MERKLE_HASH], size_t n)
{
	json_t *a = json_array();
	for (size_t i = 0; a != NULL && i < n; i++) {
		char *s = b64h(proof[i]);
		json_array_append_new(a, s != NULL ? json_string(s) : json_null());
		free(s);
	}
	return a;
}

/* add_note adds key: the stored checkpoint note of size, when there is one. */
static rete_err add_note(rete_store *s, rete_store_rtxn *rt, json_t *o, const char *key,
			 uint64_t size, rete_msg *m)
{
	char *note = NULL;
	rete_err e = rete_store_checkpoint_get(s, rt, size, &note, m);
	if (e == RETE_ENOENT)
		return RETE_OK;
	if (e == RETE_OK)
		json_object_set_new(o, key, json_string(note));
	free(note);
	return e;
}

static int audit_proof(int argc, char **argv, bool consistency)
{
	const char *who = consistency ? "consistency" : "proof";
	const char *dir = NULL, *v;
	uint64_t a = 0, b = 0, size = 0, ck_size = 0;
	bool have_a = false, have_b = false;
	uint8_t proof[RETE_MERKLE_MAX_PROOF][RETE_MERKLE_HASH], h1[RETE_MERKLE_HASH],
	    h2[RETE_MERKLE_HASH];
	size_t n = 0;
	rete_store *s = NULL;
	rete_store_rtxn *rt = NULL;
	json_t *o = NULL;
	rete_msg m = {{0}};
	rete_err e;
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];
		bool first = consistency ? strcmp(opt, "--from") == 0 : strcmp(opt, "--index") == 0;
		bool second = consistency ? strcmp(opt, "--to") == 0 : strcmp(opt, "--size") == 0;
		if (first || second) {
			if ((v = need_value(argc, argv, &i, who, "a number")) == NULL)
				return CLI_USAGE;
			if (!parse_u64(v, first ? &a : &b))
				return bad_number(who, opt, v);
			*(first ? &have_a : &have_b) = true;
		} else if (opt[0] == '-') {
			return unknown_option(who, opt,
					      consistency ? "--from, --to" : "--index, --size");
		} else if (dir == NULL) {
			dir = opt;
		} else {
			fprintf(stderr, "rete audit %s: unexpected argument '%s'\n", who, opt);
			return CLI_USAGE;
		}
	}
	if (dir == NULL || !have_a || (consistency && !have_b)) {
		fprintf(stderr, "rete audit %s: missing %s; see 'rete audit --help'\n", who,
			dir == NULL ? "STORE_DIR"
			: !have_a   ? (consistency ? "--from M" : "--index N")
				    : "--to N");
		return CLI_USAGE;
	}
	if ((rc = open_store(dir, &s, who)) != CLI_OK)
		return rc;
	e = rete_store_read_begin(s, &rt, &m);
	if (e == RETE_OK)
		e = rete_store_size(s, rt, &size, &m);
	if (e != RETE_OK)
		goto io;
	rc = CLI_OK;
	if (!consistency) {
		if (!have_b) {
			char *note = NULL;
			b = size;
			if (rete_store_checkpoint_latest(s, rt, &ck_size, &note, NULL) == RETE_OK &&
			    ck_size > a)
				b = ck_size;
			free(note);
		}
		if (a >= b || b > size) {
			fprintf(stderr,
				"rete audit proof: --index %" PRIu64 " and size %" PRIu64
				" are not accepted: the index must be below the size and the size "
				"at most the log size %" PRIu64 "\n",
				a, b, size);
			rc = CLI_USAGE;
			goto out;
		}
		e = rete_store_inclusion_proof(s, rt, a, b, proof, &n, &m);
		if (e == RETE_OK)
			e = rete_store_leaf_hash(s, rt, a, h1, &m);
		if (e == RETE_OK)
			e = rete_store_root(s, rt, b, h2, &m);
		if (e != RETE_OK)
			goto io;
		o = json_object();
		json_object_set_new(o, "leafIdx", json_integer((json_int_t)a));
		json_object_set_new(o, "treeSize", json_integer((json_int_t)b));
		set_b64(o, "leafHash", h1, RETE_MERKLE_HASH);
		json_object_set_new(o, "proof", proof_array(proof, n));
		set_b64(o, "root", h2, RETE_MERKLE_HASH);
		if ((e = add_note(s, rt, o, "checkpoint", b, &m)) != RETE_OK)
			goto io;
	} else {
		if (a == 0 || a > b || b > size) {
			fprintf(stderr,
				"rete audit consistency: --from %" PRIu64 " --to %" PRIu64
				" are not accepted: give 1 <= from <= to <= %" PRIu64
				" (the log size)\n",
				a, b, size);
			rc = CLI_USAGE;
			goto out;
		}
		e = rete_store_consistency_proof(s, rt, a, b, proof, &n, &m);
		if (e == RETE_OK)
			e = rete_store_root(s, rt, a, h1, &m);
		if (e == RETE_OK)
			e = rete_store_root(s, rt, b, h2, &m);
		if (e != RETE_OK)
			goto io;
		o = json_object();
		json_object_set_new(o, "size1", json_integer((json_int_t)a));
		json_object_set_new(o, "size2", json_integer((json_int_t)b));
		set_b64(o, "root1", h1, RETE_MERKLE_HASH);
		set_b64(o, "root2", h2, RETE_MERKLE_HASH);
		json_object_set_new(o, "proof", proof_array(proof, n));
		if ((e = add_note(s, rt, o, "checkpoint1", a, &m)) != RETE_OK ||
		    (e = add_note(s, rt, o, "checkpoint", b, &m)) != RETE_OK)
			goto io;
	}
	rete_store_read_end(&rt);
	rete_store_close(&s);
	return print_json(o, who);
io:
	fprintf(stderr, "rete audit %s: %s\n", who, m.text[0] ? m.text : rete_strerror(e));
	rc = CLI_USAGE;
out:
	json_decref(o);
	rete_store_read_end(&rt);
	rete_store_close(&s);
	return rc;
}

/* ---- check-proof --------------------------------------------------------------------- */

/* get_u64 reads key of o: a JSON integer >= 0 or a decimal string. */
static bool get_u64(json_t *o, const char *key, uint64_t *out, bool *present)
{
	json_t *v = json_object_get(o, key);
	*present = v != NULL;
	if (v == NULL)
		return true;
	if (json_is_integer(v) && json_integer_value(v) >= 0) {
		*out = (uint64_t)json_integer_value(v);
		return true;
	}
	return json_is_string(v) && parse_u64(json_string_value(v), out);
}

/* get_hash decodes key of o (base64) into a malloc'd buffer. */
static rete_err get_b64(json_t *o, const char *key, uint8_t **out, size_t *len)
{
	json_t *v = json_object_get(o, key);
	*out = NULL;
	*len = 0;
	if (!json_is_string(v))
		return RETE_EINVAL;
	return rete_b64_decode(json_string_value(v), out, len);
}

static void not_proof(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* not_proof says that file is not a proof file (an input error). */
static void not_proof(const char *file, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "rete audit check-proof: %s is not a proof file: ", file);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "; give a file as 'rete audit proof' or 'rete audit consistency' "
			"prints it\n");
}

static int check_fail(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int check_fail(const char *file, const char *fmt, ...)
{
	va_list ap;

	printf("the proof in %s does not hold: ", file);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return CLI_FALSE;
}

static int audit_check_proof(int argc, char **argv)
{
	const char *file = NULL, *ckfile = NULL, *keyfile = NULL, *origin = NULL;
	static const char *known[] = {"leafIdx",     "treeSize", "root",  "leafHash", "proof",
				      "size1",	     "size2",	 "root1", "root2",    "checkpoint",
				      "checkpoint1", "desc",	 NULL};
	rete_pubkey pk;
	rete_checkpoint cp, parsed;
	json_t *doc = NULL, *arr, *val;
	const char *key;
	char *note = NULL;
	size_t note_len = 0;
	rete_merkle_elem el[RETE_MERKLE_MAX_PROOF + 1];
	uint8_t *bufs[RETE_MERKLE_MAX_PROOF + 1] = {0};
	uint8_t *h1 = NULL, *h2 = NULL;
	size_t h1len = 0, h2len = 0, n = 0;
	uint64_t x = 0, y = 0;
	bool inclusion, px = false, py = false;
	rete_msg m = {{0}};
	rete_err e;
	int rc = CLI_USAGE;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--checkpoint") == 0) {
			if ((ckfile = need_value(argc, argv, &i, "check-proof", "a file")) == NULL)
				return CLI_USAGE;
		} else if (strcmp(argv[i], "--broker-key") == 0) {
			if ((keyfile = need_value(argc, argv, &i, "check-proof", "a .pub file")) ==
			    NULL)
				return CLI_USAGE;
		} else if (strcmp(argv[i], "--origin") == 0) {
			if ((origin = need_value(argc, argv, &i, "check-proof", "a name")) == NULL)
				return CLI_USAGE;
		} else if (argv[i][0] == '-') {
			return unknown_option("check-proof", argv[i],
					      "--checkpoint, --broker-key, --origin");
		} else if (file == NULL) {
			file = argv[i];
		} else {
			fprintf(stderr, "rete audit check-proof: unexpected argument '%s'\n",
				argv[i]);
			return CLI_USAGE;
		}
	}
	if (origin != NULL && !origin_ok("check-proof", origin))
		return CLI_USAGE;
	if (file == NULL || ckfile == NULL || keyfile == NULL) {
		fprintf(stderr, "rete audit check-proof: missing %s; see 'rete audit --help'\n",
			file == NULL	 ? "FILE"
			: ckfile == NULL ? "--checkpoint FILE"
					 : "--broker-key FILE.pub");
		return CLI_USAGE;
	}
	if ((e = rete_keyfile_load_public(keyfile, &pk, &m)) != RETE_OK) {
		fprintf(stderr, "rete audit check-proof: %s\n", m.text);
		return CLI_USAGE;
	}
	if (!read_note(ckfile, "check-proof", "--checkpoint", origin, &note, &note_len))
		return CLI_USAGE;
	/* the proof file */
	{
		char *text = NULL;
		size_t tlen = 0;
		if (!read_small(file, "check-proof", "the proof file", PROOF_FILE_MAX, "proof file",
				&text, &tlen))
			goto out;
		e = rete_json_loadb(text, tlen, file, &doc, &m);
		free(text);
		if (e != RETE_OK) {
			fprintf(stderr, "rete audit check-proof: %s\n", m.text);
			goto out;
		}
	}
	/* A file that is not a proof at all (another JSON file given by
	 * mistake: no object, a key no proof has, no sizes) is an input error
	 * (exit 2), as a file that is not JSON is; a proof whose values do not
	 * verify does not hold (exit 1). */
	if (!json_is_object(doc)) {
		not_proof(file, "%s", "it is not a JSON object");
		goto out;
	}
	json_object_foreach(doc, key, val)
	{
		bool ok = false;
		for (int i = 0; known[i] != NULL; i++)
			ok = ok || strcmp(known[i], key) == 0;
		if (!ok) {
			not_proof(file,
				  "unknown key '%s'; a proof has leafIdx, treeSize, root, "
				  "leafHash, proof, size1, size2, root1, root2, checkpoint, "
				  "checkpoint1, desc",
				  key);
			goto out;
		}
	}
	inclusion = json_object_get(doc, "leafIdx") != NULL;
	if (!inclusion && json_object_get(doc, "size1") == NULL &&
	    json_object_get(doc, "size2") == NULL && json_object_get(doc, "treeSize") == NULL) {
		not_proof(file, "%s",
			  "it has neither leafIdx and treeSize (an inclusion proof) nor size1 "
			  "and size2 (a consistency proof)");
		goto out;
	}
	if (!get_u64(doc, inclusion ? "leafIdx" : "size1", &x, &px) ||
	    !get_u64(doc, inclusion ? "treeSize" : "size2", &y, &py) || !px || !py) {
		rc = check_fail(file, "%s",
				inclusion ? "leafIdx and treeSize must be integers >= 0"
					  : "it is neither an inclusion proof (leafIdx, treeSize) "
					    "nor a consistency proof (size1, size2) with integer "
					    "sizes");
		goto out;
	}
	if (get_b64(doc, inclusion ? "leafHash" : "root1", &h1, &h1len) != RETE_OK ||
	    get_b64(doc, inclusion ? "root" : "root2", &h2, &h2len) != RETE_OK) {
		rc = check_fail(file, "%s",
				inclusion ? "leafHash and root must be base64 strings"
					  : "root1 and root2 must be base64 strings");
		goto out;
	}
	arr = json_object_get(doc, "proof");
	if (!(json_is_array(arr) || json_is_null(arr)) ||
	    json_array_size(arr) > RETE_MERKLE_MAX_PROOF) {
		rc = check_fail(file, "%s", "proof must be an array of at most 64 base64 hashes");
		goto out;
	}
	for (n = 0; n < json_array_size(arr); n++) {
		json_t *it = json_array_get(arr, n);
		if (!json_is_string(it) ||
		    rete_b64_decode(json_string_value(it), &bufs[n], &el[n].len) != RETE_OK) {
			rc = check_fail(file, "proof[%zu] is not a base64 string", n);
			goto out;
		}
		el[n].data = bufs[n];
	}
	/* the checkpoint */
	if (rete_checkpoint_parse(note, note_len, &parsed, &m) != RETE_OK) {
		printf("the checkpoint note in %s is damaged, so the proof does not hold: %s\n",
		       ckfile, m.text);
		rc = CLI_FALSE;
		goto out;
	}
	if (origin == NULL)
		origin = parsed.origin;
	if (rete_checkpoint_verify(note, note_len, origin, &pk, &cp, &m) != RETE_OK) {
		printf("the checkpoint in %s does not verify with %s: %s\n", ckfile, keyfile,
		       m.text);
		rc = CLI_FALSE;
		goto out;
	}
	if (cp.size != y) {
		rc = check_fail(file, "its %s is %" PRIu64 " but the checkpoint's size is %" PRIu64,
				inclusion ? "treeSize" : "size2", y, cp.size);
		goto out;
	}
	if (h2len != RETE_MERKLE_HASH || memcmp(h2, cp.root, RETE_MERKLE_HASH) != 0) {
		rc = check_fail(file, "%s",
				inclusion ? "its root is not the checkpoint's root"
					  : "its root2 is not the checkpoint's root");
		goto out;
	}
	if (inclusion)
		e = rete_merkle_verify_inclusion(x, y, h1, h1len, el, n, cp.root, RETE_MERKLE_HASH,
						 &m);
	else
		e = rete_merkle_verify_consistency(x, y, h1, h1len, cp.root, RETE_MERKLE_HASH, el,
						   n, &m);
	if (e != RETE_OK) {
		rc = check_fail(file, "%s", m.text);
		goto out;
	}
	if (inclusion)
		printf("proof holds: entry %" PRIu64 " is in the log of %s at size %" PRIu64
		       ", checkpoint signed by the broker key\n",
		       x, cp.origin, y);
	else
		printf("proof holds: the log of %s at size %" PRIu64
		       " extends its tree of size %" PRIu64
		       ", checkpoint signed by the broker key\n",
		       cp.origin, y, x);
	rc = fflush(stdout) == 0 ? CLI_OK : CLI_USAGE;
out:
	for (size_t i = 0; i < RETE_MERKLE_MAX_PROOF + 1; i++)
		free(bufs[i]);
	free(h1);
	free(h2);
	free(note);
	json_decref(doc);
	return rc;
}

int cmd_audit(int argc, char **argv)
{
	if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		if (argc < 2)
			fprintf(stderr, "rete audit: no subcommand given; accepted: verify, log, "
					"timeline, proof, consistency, check-proof\n");
		audit_usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (cli_wants_help(argc - 1, argv + 1)) {
		audit_usage(stdout);
		return CLI_OK;
	}
	/* every read of the log is recorded first (issue 18); check-proof
	 * reads only the files it is given */
	static const char *const reads[] = {"verify", "log", "timeline", "proof", "consistency"};
	for (size_t i = 0; i < sizeof(reads) / sizeof(reads[0]); i++)
		if (strcmp(argv[1], reads[i]) == 0 && !cli_access_argv("rete", argc, argv, true))
			return CLI_USAGE;
	if (strcmp(argv[1], "verify") == 0)
		return audit_verify(argc - 1, argv + 1);
	if (strcmp(argv[1], "log") == 0)
		return audit_log(argc - 1, argv + 1);
	if (strcmp(argv[1], "timeline") == 0)
		return audit_timeline(argc - 1, argv + 1);
	if (strcmp(argv[1], "proof") == 0)
		return audit_proof(argc - 1, argv + 1, false);
	if (strcmp(argv[1], "consistency") == 0)
		return audit_proof(argc - 1, argv + 1, true);
	if (strcmp(argv[1], "check-proof") == 0)
		return audit_check_proof(argc - 1, argv + 1);
	fprintf(stderr,
		"rete audit: unknown command '%s'; accepted: verify, log, timeline, proof, "
		"consistency, check-proof\n",
		argv[1]);
	return CLI_USAGE;
}
