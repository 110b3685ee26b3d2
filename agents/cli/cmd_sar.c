/* cmd_sar.c — `rete sar --person FISCALCODE [--person-id ID] -c agent.ini
 * [--json | --html FILE] [--lang it|en]`: an agency's answer to one person's
 * subject-access request (GDPR Art. 15): which referrals, updates and notes
 * this agency sent or received that concerned that person, which agencies
 * received them and when, each with its log index and whether a checkpoint
 * the agent verified covers it.
 *
 * The answer comes from the agent's keyed person index (privacy_index.h):
 * the person's fiscal code (and case-system id) is turned into the
 * agency's pseudonym with its index key, and only the messages whose sealed
 * part named that person are listed — never the other members of a case's
 * family. Deliveries come from the log's Delivery entries the broker
 * delivered to this agency (the sender) and the agent recorded; the index
 * of a sent message from its receipt (the agent's store). Each message
 * names the copies the agency still holds ("files": inbox/NAME for what it
 * received; sent/USED or failed/USED for what it sent, the name the agent
 * recorded at the move or, for records older than that, found by the
 * messageId of the receipts and refusals beside them; outbox/NAME while
 * the message waits for its answer), "refused" the files of failed/
 * refused before they were sealed and "waiting" those of outbox/ not
 * sealed yet (in no index record) that name the person, or name nobody
 * and update or annotate one of her referrals (sar_unindexed). The read is
 * recorded in the agent's access record (the person as the pseudonym,
 * never the fiscal code) before anything is read.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../agent/agent_config.h"
#include "../agent/agent_db.h"
#include "../agent/agent_spool.h"
#include "../agent/privacy_index.c"
#include "checkpoint.h"
#include "cli.h"
#include "cli_access.h"
#include "json.h"
#include "validate.h"

static void sar_usage(FILE *f)
{
	fprintf(f, "usage: rete sar --person FISCALCODE [--person-id ID] -c agent.ini\n"
		   "                [--json | --html FILE] [--lang it|en]\n"
		   "\n"
		   "Answers a person's subject-access request for this agency: the referrals,\n"
		   "updates and notes it sent or received whose sealed part named that person\n"
		   "(by fiscal code, upper or lower case, or by the person's id in the case\n"
		   "system), which agencies received them and when (from the log's Delivery\n"
		   "entries), each with its log index and the checkpoint that covers it, and\n"
		   "the copies the agency still holds (inbox/, sent/, failed/ files, also those\n"
		   "of messages refused before they were sent, and outbox/ files not sent yet).\n"
		   "Other persons of the same case are never listed. The agent indexes what\n"
		   "it seals or opens from its first start with this version.\n"
		   "\n"
		   "  --person FISCALCODE  the person's fiscal code as messages carry it: 16\n"
		   "                       letters and digits (RSSMRA85M41E897X, an STP or ENI\n"
		   "                       code such as STP0300150000123: any code message\n"
		   "                       check accepts), or an 11-digit temporary code\n"
		   "                       (codice fiscale provvisorio) with its check digit;\n"
		   "                       upper or lower case, spaces ignored. Anything else\n"
		   "                       can match nothing and is refused (exit 2), never\n"
		   "                       answered \"nothing concerns the person\"\n"
		   "  --person-id ID       the person's id in this agency's case system\n"
		   "                       (person.personId of the sealed parts it sealed, 1\n"
		   "                       to 256 bytes; another agency's ids never match);\n"
		   "                       with --person, messages naming either are listed\n"
		   "  -c, --config FILE    the agency's agent.ini\n"
		   "  --json               print the answer as JSON\n"
		   "  --html FILE          write a printable page (no scripts, no external\n"
		   "                       resources) to FILE\n"
		   "  --lang it|en         the language of the text and of the page (default it)\n"
		   "\n"
		   "The read is recorded in the agent's access record ([privacy] access_log).\n"
		   "Exit codes: 0 answered (also when nothing concerns the person); 2 usage\n"
		   "(also a --person that can be no fiscal code), configuration or I/O\n"
		   "error.\n");
}

/* The grammatical gender of a kind of message, for the participles that
 * qualify it (Italian: la segnalazione inviata, l'aggiornamento inviato). */
enum sar_gender { SAR_F = 0, SAR_M = 1 };

/* The words of the answer, per language. sent, received and delivered
 * qualify the message: one form per gender of its kind (kinds[k], of
 * gender genders[k]). covered and not_covered qualify the log entry
 * (index: "voce", feminine), whatever the message. */
struct sar_words {
	const char *title, *intro, *agency, *person, *asked, *none, *sent[2], *received[2], *to,
	    *from, *delivered[2], *not_delivered, *index, *covered, *not_covered, *kinds[4],
	    *col_what, *col_when, *col_who, *col_log, *footer, *files, *no_files, *col_files,
	    *refused, *waiting, *reason;
	enum sar_gender genders[4];
};

static const struct sar_words words_it = {
    .title = "Risposta alla richiesta di accesso ai dati personali",
    .intro = "Comunicazioni della rete che riguardano la persona indicata, inviate o "
	     "ricevute da questo ente (art. 15 GDPR).",
    .agency = "Ente",
    .person = "Persona",
    .asked = "Data della risposta",
    .none = "Nessuna comunicazione di questo ente riguarda la persona indicata.",
    .sent = {"inviata", "inviato"},
    .received = {"ricevuta", "ricevuto"},
    .to = "a",
    .from = "da",
    .delivered = {"consegnata a", "consegnato a"},
    .not_delivered = "consegna non ancora registrata",
    .index = "voce del registro",
    .covered = "coperta dal checkpoint verificato di dimensione",
    .not_covered = "non ancora coperta da un checkpoint verificato",
    .kinds = {"segnalazione", "aggiornamento", "nota", "comunicazione"},
    .genders = {SAR_F, SAR_M, SAR_F, SAR_F},
    .col_what = "Comunicazione",
    .col_when = "Quando (UTC)",
    .col_who = "Destinatari e consegne",
    .col_log = "Registro",
    .footer = "Il registro della rete contiene solo codici; i dati personali viaggiano "
	      "cifrati e il gestore della rete non può leggerli. Ogni ente risponde per ciò "
	      "che ha inviato e ricevuto.",
    .files = "copia conservata dall'ente",
    .no_files = "nessuna copia conservata dall'ente",
    .col_files = "Copie conservate dall'ente",
    .refused = "Comunicazioni rifiutate prima dell'invio, di cui l'ente conserva la copia "
	       "scritta dal proprio gestionale",
    .waiting = "Comunicazioni non ancora inviate (in outbox/), di cui l'ente conserva la copia "
	       "scritta dal proprio gestionale",
    .reason = "motivo"};

static const struct sar_words words_en = {
    .title = "Answer to a subject-access request",
    .intro = "Messages of the network that concerned the person named, sent or received "
	     "by this agency (GDPR Art. 15).",
    .agency = "Agency",
    .person = "Person",
    .asked = "Answered on",
    .none = "No message of this agency concerned the person named.",
    .sent = {"sent", "sent"},
    .received = {"received", "received"},
    .to = "to",
    .from = "from",
    .delivered = {"delivered to", "delivered to"},
    .not_delivered = "delivery not recorded yet",
    .index = "log entry",
    .covered = "covered by the verified checkpoint of size",
    .not_covered = "not yet covered by a verified checkpoint",
    .kinds = {"referral", "update", "note", "message"},
    .col_what = "Message",
    .col_when = "When (UTC)",
    .col_who = "Recipients and deliveries",
    .col_log = "Log",
    .footer = "The network's log holds codes only; personal data travels sealed and the "
	      "network's operator cannot read it. Each agency answers for what it sent "
	      "and received.",
    .files = "copy held by the agency",
    .no_files = "no copy held by the agency",
    .col_files = "Copies held by the agency",
    .refused = "Messages refused before they were sent, of which the agency holds the copy "
	       "its case system wrote",
    .waiting = "Messages not sent yet (in outbox/), of which the agency holds the copy its case "
	       "system wrote",
    .reason = "reason"};

/* sar_kind_at: the place of a message's kind in sar_words' kinds. */
static int sar_kind_at(const char *kind)
{
	static const char *const known[] = {"referral", "update", "note"};
	for (int k = 0; kind != NULL && k < 3; k++)
		if (strcmp(kind, known[k]) == 0)
			return k;
	return 3;
}

static const char *sar_kind(const struct sar_words *w, const char *kind)
{
	return w->kinds[sar_kind_at(kind)];
}

/* sar_gender_of: the gender of the kind of message m (a JSON message of
 * the answer), for its participles. */
static enum sar_gender sar_gender_of(const struct sar_words *w, json_t *m)
{
	return w->genders[sar_kind_at(json_string_value(json_object_get(m, "kind")))];
}

/* sar_names: does the index line name one of the pseudonyms asked for? */
static bool sar_names(json_t *line, const char *mac1, const char *mac2)
{
	size_t i;
	json_t *v;
	json_array_foreach(json_object_get(line, "persons"), i, v)
	{
		const char *s = json_string_value(v);
		if (s != NULL &&
		    ((mac1[0] && strcmp(s, mac1) == 0) || (mac2[0] && strcmp(s, mac2) == 0)))
			return true;
	}
	return false;
}

static json_t *sar_time(int64_t ms)
{
	char buf[32];
	return ms > 0 ? json_string(rete_time_format(ms, buf)) : json_null();
}

/* sar_covered adds "covered" (the checkpoint size) to o for log index idx. */
static void sar_cover(json_t *o, const char *key, uint64_t idx, const rete_checkpoint *cp)
{
	if (cp != NULL && cp->size > idx)
		json_object_set_new(o, key, json_integer((json_int_t)cp->size));
	else
		json_object_set_new(o, key, json_null());
}

/* The spool folders of the agency, for the copies it holds. */
typedef struct sar_spool {
	char sent[PATH_MAX], failed[PATH_MAX], inbox[PATH_MAX], outbox[PATH_MAX];
	agent_db *db;  /* the agent's store (read-only; may be NULL) */
	json_t *by_id; /* messageId -> ["sent/USED", ...], from a scan (lazily) */
} sar_spool;

/* sar_add_file appends "sub/name" to files unless it is there. */
static void sar_add_file(json_t *files, const char *sub, const char *name)
{
	char rel[PATH_MAX];
	size_t i;
	json_t *v;
	snprintf(rel, sizeof(rel), "%s/%s", sub, name);
	json_array_foreach(files, i, v)
	{
		if (strcmp(json_string_value(v), rel) == 0)
			return;
	}
	json_array_append_new(files, json_string(rel));
}

/* sar_scan_dir adds each message file of dir that has a companion ending
 * in suffix to sp->by_id under its messageId. */
static void sar_scan_dir(sar_spool *sp, const char *dir, const char *sub, const char *suffix)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t sl = strlen(suffix);
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		size_t len = strlen(e->d_name);
		if (e->d_name[0] == '.' || len <= sl || strcmp(e->d_name + len - sl, suffix) != 0)
			continue;
		char base[NAME_MAX + 1];
		snprintf(base, sizeof(base), "%.*s", (int)(len - sl), e->d_name);
		char *id = privacy_companion_id(dir, base, suffix);
		if (id != NULL && privacy_file_regular(dir, base)) {
			json_t *files = json_object_get(sp->by_id, id);
			if (files == NULL) {
				files = json_array();
				json_object_set_new(sp->by_id, id, files);
			}
			sar_add_file(files, sub, base);
		}
		free(id);
	}
	closedir(d);
}

/* sar_outbox_is: is outbox/name, as it is now, the file the agent took in
 * as message id (its record: file name and content hash -> id)? A message
 * sealed and not yet answered is still there. */
static bool sar_outbox_is(const sar_spool *sp, const char *name, const char *id)
{
	char path[PATH_MAX * 2];
	uint8_t hash[RETE_HASH_LEN];
	if (sp->db == NULL || strchr(name, '/') != NULL)
		return false;
	snprintf(path, sizeof(path), "%s/%s", sp->outbox, name);
	if (!agent_spool_file_hash(path, hash))
		return false;
	agent_outrec rec;
	rete_msg m;
	if (agent_db_outbox_get(sp->db, name, hash, &rec, &m) != RETE_OK)
		return false;
	bool yes = strcmp(rec.id, id) == 0;
	agent_outrec_free(&rec);
	return yes;
}

/* sar_files: the copies the agency holds of the message of index line o
 * (a new array). What we received: its inbox/ file. What we sent: each
 * sent/ or failed/ file the index names for it (its outbox name, then the
 * name the move took) whose receipt or refusal names the message; when
 * none does (a record from before the agent recorded the moves), the
 * receipts and refusals of sent/ and failed/ are read once to find it. */
static json_t *sar_files(const agent_config *cfg, sar_spool *sp, json_t *lines, json_t *o)
{
	json_t *files = json_array();
	const char *dir = json_string_value(json_object_get(o, "dir"));
	const char *id = json_string_value(json_object_get(o, "id"));
	if (strcmp(dir, "sent") != 0) {
		const char *f = json_string_value(json_object_get(o, "file"));
		if (f != NULL && strchr(f, '/') == NULL && privacy_file_regular(sp->inbox, f))
			sar_add_file(files, "inbox", f);
		return files;
	}
	size_t i;
	json_t *l;
	json_array_foreach(lines, i, l)
	{
		const char *f = json_string_value(json_object_get(l, "file"));
		if (f == NULL ||
		    strcmp(json_string_value(json_object_get(l, "dir")) ?: "", "sent") != 0 ||
		    strcmp(json_string_value(json_object_get(l, "sender")) ?: "", cfg->id) != 0 ||
		    strcmp(json_string_value(json_object_get(l, "id")) ?: "", id) != 0)
			continue;
		if (sar_outbox_is(sp, f, id))
			sar_add_file(files, "outbox", f);
		if (privacy_file_is_copy(sp->sent, f, ".receipt.json", id))
			sar_add_file(files, "sent", f);
		if (privacy_file_is_copy(sp->failed, f, ".error.json", id))
			sar_add_file(files, "failed", f);
	}
	if (json_array_size(files) > 0)
		return files;
	if (sp->by_id == NULL) {
		sp->by_id = json_object();
		sar_scan_dir(sp, sp->sent, "sent", ".receipt.json");
		sar_scan_dir(sp, sp->failed, "failed", ".error.json");
	}
	json_t *v;
	json_array_foreach(json_object_get(sp->by_id, id), i, v) json_array_append(files, v);
	return files;
}

/* sar_bytes_name: does the file at path hold the fiscal code fc (already
 * upper case, no spaces), in any case? Read in pieces, for a file that is
 * not JSON or too large to parse. */
static bool sar_bytes_name(const char *path, const char *fc)
{
	size_t fl = strlen(fc);
	if (fl == 0 || fl > 64)
		return false;
	FILE *f = fopen(path, "re");
	if (f == NULL)
		return false;
	enum { PIECE = 1 << 20 };
	char *buf = malloc(PIECE + 64);
	bool found = false;
	size_t keep = 0, got;
	while (buf != NULL && !found && (got = fread(buf + keep, 1, PIECE, f)) > 0) {
		size_t len = keep + got;
		for (size_t i = keep; i < len; i++)
			buf[i] = (char)toupper((unsigned char)buf[i]);
		found = memmem(buf, len, fc, fl) != NULL;
		keep = len < fl - 1 ? len : fl - 1;
		memmove(buf, buf + len - keep, keep);
	}
	free(buf);
	fclose(f);
	return found;
}

/* sar_of_her_referral: is doc (a message as the case system wrote it) an
 * update or note about one of the referrals in msgs (the person's)? As the
 * person index has it for sealed ones (agent_privacy.c, ap_base), an
 * update or note that names nobody concerns the person of its referral,
 * and that person alone. */
static bool sar_of_her_referral(json_t *doc, json_t *msgs)
{
	static const char *const bodies[] = {"update", "note"};
	const char *ref = NULL;
	for (size_t k = 0; k < 2 && ref == NULL; k++)
		ref = json_string_value(
		    json_object_get(json_object_get(doc, bodies[k]), "referralId"));
	if (ref == NULL || ref[0] == '\0')
		return false;
	size_t i;
	json_t *m;
	json_array_foreach(msgs, i, m)
	{
		const char *kind = json_string_value(json_object_get(m, "kind"));
		const char *id = json_string_value(json_object_get(m, "id"));
		const char *of = json_string_value(json_object_get(m, "referral"));
		if ((kind != NULL && strcmp(kind, "referral") == 0 && id != NULL &&
		     strcmp(id, ref) == 0) ||
		    (of != NULL && strcmp(of, ref) == 0))
			return true;
	}
	return false;
}

/* sar_unindexed: the files of SUB that name the person and are in no index
 * record, as the case system wrote them: in failed/, those refused before
 * they were sealed (the agent never sealed them); in outbox/, those not
 * sealed yet (the agent stopped, or waiting for the directory). A file
 * names her by private.person.fiscalCode or .personId (ours: our case
 * system wrote it) turned into the pseudonym and compared, or by the
 * fiscal code itself anywhere in the whole file (JSON or not, parsed only
 * up to 64 MiB), in any case (one in the metadata is a typical refusal).
 * Files already listed in msgs, and in failed/ the answers beside them,
 * are left out; so are temporary names (.NAME, *.tmp: being written). A
 * new array of {"file","messageId","code","refusedAt"} (failed/) or
 * {"file","writtenAt"} (outbox/). */
static json_t *sar_unindexed(const agent_config *cfg, const privacy_key *key, const char *fc,
			     const char *mac1, const char *mac2, json_t *msgs, const char *sub)
{
	bool failed = strcmp(sub, "failed") == 0;
	char dir[PATH_MAX], path[PATH_MAX * 2], norm[80] = "", hex[PRIVACY_MAC_HEX];
	json_t *out = json_array();
	privacy_fiscal_norm(fc, norm, sizeof(norm));
	agent_spool_path(cfg, sub, NULL, dir, sizeof(dir));
	DIR *d = opendir(dir);
	struct dirent *e;
	while (d != NULL && (e = readdir(d)) != NULL) {
		const char *name = e->d_name;
		size_t len = strlen(name);
		static const char *const skip[] = {".tmp", ".error.json", ".ack"};
		bool companion = name[0] == '.';
		for (size_t k = 0; k < (failed ? 3 : 1); k++)
			if (len > strlen(skip[k]) &&
			    strcmp(name + len - strlen(skip[k]), skip[k]) == 0)
				companion = true;
		struct stat st;
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		if (companion || lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		char rel[PATH_MAX];
		snprintf(rel, sizeof(rel), "%s/%s", sub, name);
		bool listed = false;
		size_t i, j;
		json_t *m, *v;
		json_array_foreach(msgs, i, m)
		{
			json_array_foreach(json_object_get(m, "files"), j, v)
			{
				if (strcmp(json_string_value(v), rel) == 0)
					listed = true;
			}
		}
		if (listed)
			continue;
		bool names = false;
		json_t *doc = st.st_size <= (64 << 20) ? json_load_file(path, 0, NULL) : NULL;
		if (json_is_object(doc)) {
			json_t *person = json_object_get(json_object_get(doc, "private"), "person");
			const char *pfc = json_string_value(json_object_get(person, "fiscalCode"));
			const char *pid = json_string_value(json_object_get(person, "personId"));
			names = (mac1[0] && pfc && privacy_mac_fiscal(key, pfc, hex) &&
				 strcmp(hex, mac1) == 0) ||
				(mac2[0] && pid && privacy_mac_person_id(key, pid, hex) &&
				 strcmp(hex, mac2) == 0);
			/* naming nobody, about one of her referrals */
			if (!names && person == NULL)
				names = sar_of_her_referral(doc, msgs);
		}
		/* anywhere else too: a fiscal code in the metadata is a typical
		 * refusal (personal-data) */
		if (!names)
			names = norm[0] && sar_bytes_name(path, norm);
		json_decref(doc);
		if (!names)
			continue;
		json_t *r = json_object();
		json_object_set_new(r, "file", json_string(rel));
		if (failed) {
			snprintf(path, sizeof(path), "%s/%s.error.json", dir, name);
			json_t *err = json_load_file(path, 0, NULL);
			if (json_is_string(json_object_get(err, "messageId")))
				json_object_set(r, "messageId", json_object_get(err, "messageId"));
			if (json_is_string(json_object_get(err, "code")))
				json_object_set(r, "code", json_object_get(err, "code"));
			json_decref(err);
		}
		json_object_set_new(
		    r, failed ? "refusedAt" : "writtenAt",
		    sar_time((int64_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000));
		json_array_append_new(out, r);
	}
	if (d != NULL)
		closedir(d);
	return out;
}

/* sar_answer builds the JSON answer from the index lines. */
static json_t *sar_answer(const agent_config *cfg, agent_db *db, json_t *lines, const char *mac1,
			  const char *mac2, const rete_checkpoint *cp)
{
	json_t *msgs = json_array(), *seen = json_object();
	sar_spool sp = {.db = db, .by_id = NULL};
	agent_spool_path(cfg, "outbox", NULL, sp.outbox, sizeof(sp.outbox));
	agent_spool_path(cfg, "sent", NULL, sp.sent, sizeof(sp.sent));
	agent_spool_path(cfg, "failed", NULL, sp.failed, sizeof(sp.failed));
	agent_spool_path(cfg, "inbox", NULL, sp.inbox, sizeof(sp.inbox));
	size_t i, j;
	json_t *o, *d;
	char key[600];

	json_array_foreach(lines, i, o)
	{
		if (!sar_names(o, mac1, mac2))
			continue;
		const char *dir = json_string_value(json_object_get(o, "dir"));
		const char *sender = json_string_value(json_object_get(o, "sender"));
		const char *id = json_string_value(json_object_get(o, "id"));
		if (dir == NULL || sender == NULL || id == NULL)
			continue;
		snprintf(key, sizeof(key), "%s\n%s\n%s", dir, sender, id);
		if (json_object_get(seen, key) != NULL)
			continue; /* sealed twice (a retry after a crash): once */
		json_object_set_new(seen, key, json_true());
		bool sent = strcmp(dir, "sent") == 0;
		json_t *m = json_object();
		json_object_set_new(m, "direction", json_string(dir));
		json_object_set(m, "kind", json_object_get(o, "kind"));
		json_object_set_new(m, "id", json_string(id));
		if (json_object_get(o, "referral"))
			json_object_set(m, "referral", json_object_get(o, "referral"));
		if (json_object_get(o, "case"))
			json_object_set(m, "case", json_object_get(o, "case"));
		json_object_set_new(m, "sender", json_string(sender));
		json_object_set(m, "recipient", json_object_get(o, "recipient"));
		json_t *dl = json_array();
		if (sent) {
			json_object_set_new(m, "sealedAt",
					    sar_time(json_integer_value(json_object_get(o, "at"))));
			agent_idrec r = {0};
			rete_msg ignored;
			if (db != NULL && agent_db_id_get(db, id, &r, &ignored) == RETE_OK) {
				json_object_set_new(m, "index", json_integer((json_int_t)r.index));
				sar_cover(m, "checkpoint", r.index, cp);
			} else {
				json_object_set_new(m, "index", json_null());
			}
			free(r.receipt_json);
			json_array_foreach(lines, j, d)
			{
				const char *did =
				    json_string_value(json_object_get(d, "delivered"));
				if (did == NULL || strcmp(did, id) != 0 ||
				    strcmp(json_string_value(json_object_get(d, "sender")) ?: "",
					   cfg->id) != 0)
					continue;
				json_t *x = json_object();
				json_object_set(x, "to", json_object_get(o, "recipient"));
				json_object_set_new(x, "deliveredAt",
						    sar_time(json_integer_value(
							json_object_get(d, "deliveredAt"))));
				json_int_t di =
				    json_integer_value(json_object_get(d, "deliveryIndex"));
				json_object_set_new(x, "deliveryIndex", json_integer(di));
				sar_cover(x, "checkpoint", (uint64_t)di, cp);
				json_array_append_new(dl, x);
			}
		} else {
			json_int_t idx = json_integer_value(json_object_get(o, "index"));
			json_object_set_new(m, "index", json_integer(idx));
			sar_cover(m, "checkpoint", (uint64_t)idx, cp);
			json_object_set_new(
			    m, "loggedAt",
			    sar_time(json_integer_value(json_object_get(o, "loggedAt"))));
			json_t *x = json_object();
			json_object_set_new(x, "to", json_string(cfg->id));
			json_object_set_new(x, "deliveredAt",
					    sar_time(json_integer_value(json_object_get(o, "at"))));
			json_array_append_new(dl, x);
		}
		json_object_set_new(m, "deliveries", dl);
		json_object_set_new(m, "files", sar_files(cfg, &sp, lines, o));
		json_array_append_new(msgs, m);
	}
	json_decref(seen);
	json_decref(sp.by_id);
	return msgs;
}

static void html_text(FILE *f, const char *s)
{
	for (; s != NULL && *s; s++) {
		switch (*s) {
		case '<':
			fputs("&lt;", f);
			break;
		case '>':
			fputs("&gt;", f);
			break;
		case '&':
			fputs("&amp;", f);
			break;
		case '"':
			fputs("&quot;", f);
			break;
		case '\'':
			fputs("&#39;", f);
			break;
		default:
			fputc(*s, f);
		}
	}
}

static const char *js(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));
	return s ? s : "";
}

/* sar_who: the person asked for, as given ("FISCALCODE / ID"). */
static const char *sar_who(json_t *ans)
{
	static char buf[300];
	json_t *p = json_object_get(ans, "person");
	const char *fc = js(p, "fiscalCode"), *id = js(p, "personId");
	snprintf(buf, sizeof(buf), "%s%s%s", fc, fc[0] && id[0] ? " / " : "", id);
	return buf;
}

/* html_cell writes the lines of one table cell: none when list is empty,
 * else each item on a line of its own (a file's name, or a delivery, said
 * with delivered: the participle of the message's gender). */
static void html_cell(FILE *f, const struct sar_words *w, json_t *list, const char *none,
		      const char *delivered)
{
	size_t j;
	json_t *d;
	if (json_array_size(list) == 0)
		html_text(f, none);
	json_array_foreach(list, j, d)
	{
		if (j > 0)
			fputs("<br>", f);
		if (json_is_string(d)) {
			html_text(f, json_string_value(d));
			continue;
		}
		html_text(f, delivered);
		fputs(" ", f);
		html_text(f, js(d, "to"));
		fputs(": ", f);
		html_text(f, js(d, "deliveredAt"));
		if (json_is_integer(json_object_get(d, "deliveryIndex")))
			fprintf(f, " (%s %" JSON_INTEGER_FORMAT ")", w->index,
				json_integer_value(json_object_get(d, "deliveryIndex")));
	}
}

/* The lists of files in no index record: refused before they were sealed
 * (failed/), not sealed yet (outbox/); at is the key of their time. */
static const struct sar_list {
	const char *key, *at;
	bool refused; /* its heading: words' refused, else waiting */
} sar_lists[] = {{"refused", "refusedAt", true}, {"waiting", "writtenAt", false}};

static const char *sar_heading(const struct sar_words *w, const struct sar_list *l)
{
	return l->refused ? w->refused : w->waiting;
}

/* sar_nothing: does the answer list nothing at all? */
static bool sar_nothing(json_t *ans)
{
	size_t n = json_array_size(json_object_get(ans, "messages"));
	for (size_t k = 0; k < sizeof(sar_lists) / sizeof(sar_lists[0]); k++)
		n += json_array_size(json_object_get(ans, sar_lists[k].key));
	return n == 0;
}

/* sar_html writes the printable page: one table, inline print styles, no
 * script and nothing fetched from elsewhere. */
static void sar_html(FILE *f, const struct sar_words *w, const char *lang, json_t *ans)
{
	json_t *msgs = json_object_get(ans, "messages");
	size_t i;
	json_t *m;
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"%s\">\n<head>\n<meta charset=\"utf-8\">\n", lang);
	fputs("<title>", f);
	html_text(f, w->title);
	fputs("</title>\n<style>\nbody{font-family:serif;margin:2em;color:#000;background:#fff}\n"
	      "table{border-collapse:collapse;width:100%}\n"
	      "th,td{border:1px solid #444;padding:.3em .5em;text-align:left;vertical-align:top}\n"
	      "@media print{body{margin:1cm}}\n</style>\n</head>\n<body>\n<h1>",
	      f);
	html_text(f, w->title);
	fputs("</h1>\n<p>", f);
	html_text(f, w->intro);
	fputs("</p>\n<dl>\n<dt>", f);
	html_text(f, w->agency);
	fputs("</dt><dd>", f);
	html_text(f, js(ans, "agency"));
	fputs("</dd>\n<dt>", f);
	html_text(f, w->person);
	fputs("</dt><dd>", f);
	html_text(f, sar_who(ans));
	fputs("</dd>\n<dt>", f);
	html_text(f, w->asked);
	fputs("</dt><dd>", f);
	html_text(f, js(ans, "answeredAt"));
	fputs("</dd>\n</dl>\n", f);
	if (sar_nothing(ans)) {
		fputs("<p>", f);
		html_text(f, w->none);
		fputs("</p>\n", f);
	} else if (json_array_size(msgs) > 0) {
		fputs("<table>\n<thead><tr><th>", f);
		html_text(f, w->col_what);
		fputs("</th><th>", f);
		html_text(f, w->col_when);
		fputs("</th><th>", f);
		html_text(f, w->col_who);
		fputs("</th><th>", f);
		html_text(f, w->col_log);
		fputs("</th><th>", f);
		html_text(f, w->col_files);
		fputs("</th></tr></thead>\n<tbody>\n", f);
		json_array_foreach(msgs, i, m)
		{
			bool sent = strcmp(js(m, "direction"), "sent") == 0;
			fputs("<tr><td>", f);
			html_text(f, sar_kind(w, js(m, "kind")));
			fputs(" ", f);
			html_text(f, js(m, "id"));
			fputs("<br>", f);
			enum sar_gender g = sar_gender_of(w, m);
			html_text(f, sent ? w->sent[g] : w->received[g]);
			fputs(" ", f);
			html_text(f, sent ? w->to : w->from);
			fputs(" ", f);
			html_text(f, sent ? js(m, "recipient") : js(m, "sender"));
			fputs("</td><td>", f);
			html_text(f, sent ? js(m, "sealedAt") : js(m, "loggedAt"));
			fputs("</td><td>", f);
			html_cell(f, w, json_object_get(m, "deliveries"), w->not_delivered,
				  w->delivered[g]);
			fputs("</td><td>", f);
			if (json_is_integer(json_object_get(m, "index"))) {
				fprintf(f, "%s %" JSON_INTEGER_FORMAT "<br>", w->index,
					json_integer_value(json_object_get(m, "index")));
				if (json_is_integer(json_object_get(m, "checkpoint")))
					fprintf(
					    f, "%s %" JSON_INTEGER_FORMAT, w->covered,
					    json_integer_value(json_object_get(m, "checkpoint")));
				else
					html_text(f, w->not_covered);
			}
			fputs("</td><td>", f);
			html_cell(f, w, json_object_get(m, "files"), w->no_files, NULL);
			fputs("</td></tr>\n", f);
		}
		fputs("</tbody>\n</table>\n", f);
	}
	for (size_t k = 0; k < sizeof(sar_lists) / sizeof(sar_lists[0]); k++) {
		json_t *list = json_object_get(ans, sar_lists[k].key);
		if (json_array_size(list) == 0)
			continue;
		fputs("<h2>", f);
		html_text(f, sar_heading(w, &sar_lists[k]));
		fputs("</h2>\n<ul>\n", f);
		json_array_foreach(list, i, m)
		{
			fputs("<li>", f);
			html_text(f, js(m, "file"));
			fputs(", ", f);
			html_text(f, js(m, sar_lists[k].at));
			if (js(m, "code")[0]) {
				fputs(" (", f);
				html_text(f, w->reason);
				fputs(": ", f);
				html_text(f, js(m, "code"));
				fputs(")", f);
			}
			fputs("</li>\n", f);
		}
		fputs("</ul>\n", f);
	}
	fputs("<p>", f);
	html_text(f, w->footer);
	fputs("</p>\n</body>\n</html>\n", f);
}

/* sar_text prints the answer for people, in the chosen language. */
static void sar_text(FILE *f, const struct sar_words *w, json_t *ans)
{
	json_t *msgs = json_object_get(ans, "messages");
	size_t i, j;
	json_t *m, *d;
	fprintf(f, "%s\n%s: %s\n%s: %s\n%s: %s\n\n", w->title, w->agency, js(ans, "agency"),
		w->person, sar_who(ans), w->asked, js(ans, "answeredAt"));
	if (sar_nothing(ans))
		fprintf(f, "%s\n", w->none);
	json_array_foreach(msgs, i, m)
	{
		bool sent = strcmp(js(m, "direction"), "sent") == 0;
		enum sar_gender g = sar_gender_of(w, m);
		fprintf(f, "- %s %s, %s %s %s, %s", sar_kind(w, js(m, "kind")), js(m, "id"),
			sent ? w->sent[g] : w->received[g], sent ? w->to : w->from,
			sent ? js(m, "recipient") : js(m, "sender"),
			sent ? js(m, "sealedAt") : js(m, "loggedAt"));
		if (json_is_integer(json_object_get(m, "index"))) {
			fprintf(f, " (%s %" JSON_INTEGER_FORMAT ", ", w->index,
				json_integer_value(json_object_get(m, "index")));
			/* the size, as the page says it: the checkpoint a reader
			 * can ask for and check the entry against */
			if (json_is_integer(json_object_get(m, "checkpoint")))
				fprintf(f, "%s %" JSON_INTEGER_FORMAT ")", w->covered,
					json_integer_value(json_object_get(m, "checkpoint")));
			else
				fprintf(f, "%s)", w->not_covered);
		}
		fputc('\n', f);
		json_t *dl = json_object_get(m, "deliveries");
		if (json_array_size(dl) == 0)
			fprintf(f, "    %s\n", w->not_delivered);
		json_array_foreach(dl, j, d)
		{
			fprintf(f, "    %s %s: %s", w->delivered[g], js(d, "to"),
				js(d, "deliveredAt"));
			if (json_is_integer(json_object_get(d, "deliveryIndex")))
				fprintf(f, " (%s %" JSON_INTEGER_FORMAT ")", w->index,
					json_integer_value(json_object_get(d, "deliveryIndex")));
			fputc('\n', f);
		}
		json_t *files = json_object_get(m, "files");
		if (json_array_size(files) == 0)
			fprintf(f, "    %s\n", w->no_files);
		json_array_foreach(files, j, d)
		    fprintf(f, "    %s: %s\n", w->files, json_string_value(d));
	}
	for (size_t k = 0; k < sizeof(sar_lists) / sizeof(sar_lists[0]); k++) {
		json_t *list = json_object_get(ans, sar_lists[k].key);
		if (json_array_size(list) > 0)
			fprintf(f, "\n%s:\n", sar_heading(w, &sar_lists[k]));
		json_array_foreach(list, i, m)
		{
			fprintf(f, "- %s, %s", js(m, "file"), js(m, sar_lists[k].at));
			if (js(m, "code")[0])
				fprintf(f, " (%s: %s)", w->reason, js(m, "code"));
			fputc('\n', f);
		}
	}
}

/* sar_fiscal_ok: can code (as a person may write it: any case, spaces
 * anywhere) name someone in this agency's files? It can when, with the
 * spaces dropped and in upper case (as the person index keys it), it is
 * what private.person.fiscalCode may hold (rete_fiscal_code_check: 16
 * letters and digits, whatever their shape, so every code an agent sealed
 * and indexed: STP/ENI codes, omocodia, an O typed for a zero; or the
 * 11-digit temporary fiscal code, codice fiscale numerico provvisorio,
 * with its check digit). Anything else can never match: message check
 * refuses it, so no agent sealed it (a temporary code with a wrong check
 * digit is a typo, said so). When not, why says what is wrong without
 * repeating the code, counting characters, not bytes (what comes before
 * the first character that is not a letter or a digit is ASCII, so the
 * two agree up to there). */
static bool sar_fiscal_ok(const char *code, char *why, size_t n)
{
	char norm[24];
	size_t chars = 0;
	for (const unsigned char *p = (const unsigned char *)code; *p; p++) {
		if (isspace(*p))
			continue;
		chars++;
		bool digit = *p >= '0' && *p <= '9';
		if (!digit && !((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))) {
			snprintf(why, n,
				 "its character %zu (spaces aside) is neither a letter nor a digit",
				 chars);
			return false;
		}
	}
	if (chars != 16 && chars != 11) {
		snprintf(why, n,
			 "it has %zu character%s (spaces aside); a fiscal code has 16, a "
			 "temporary one 11 digits",
			 chars, chars == 1 ? "" : "s");
		return false;
	}
	/* letters and digits only, so the length is the same */
	privacy_fiscal_norm(code, norm, sizeof(norm));
	bool ok = rete_fiscal_code_check(norm, why, n);
	sodium_memzero(norm, sizeof(norm));
	return ok;
}

int cmd_sar(int argc, char **argv)
{
	const char *ini = NULL, *person = NULL, *person_id = NULL, *html = NULL, *lang = "it";
	bool as_json = false;
	int rc = CLI_USAGE;
	agent_config cfg = {0};
	privacy_key *key = NULL;
	agent_db *db = NULL;
	json_t *lines = NULL, *ans = NULL;
	rete_msg m = {{0}};
	char mac1[PRIVACY_MAC_HEX] = "", mac2[PRIVACY_MAC_HEX] = "";

	if (cli_wants_help(argc, argv)) {
		sar_usage(stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool has = i + 1 < argc;
		static const char *const valued[] = {"-c",	    "--config", "--person",
						     "--person-id", "--html",	"--lang"};
		for (size_t k = 0; !has && k < sizeof(valued) / sizeof(valued[0]); k++)
			if (strcmp(a, valued[k]) == 0) {
				fprintf(stderr, "rete sar: %s needs a value\n", a);
				sar_usage(stderr);
				return CLI_USAGE;
			}
		if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && has)
			ini = argv[++i];
		else if (strcmp(a, "--person") == 0 && has)
			person = argv[++i];
		else if (strcmp(a, "--person-id") == 0 && has)
			person_id = argv[++i];
		else if (strcmp(a, "--html") == 0 && has)
			html = argv[++i];
		else if (strcmp(a, "--lang") == 0 && has)
			lang = argv[++i];
		else if (strcmp(a, "--json") == 0)
			as_json = true;
		else {
			fprintf(stderr, "rete sar: '%s' is not accepted here\n", a);
			sar_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (ini == NULL || (person == NULL && person_id == NULL)) {
		fprintf(stderr, "rete sar: give -c agent.ini and --person FISCALCODE (or "
				"--person-id ID)\n");
		sar_usage(stderr);
		return CLI_USAGE;
	}
	if (as_json && html != NULL) {
		fprintf(stderr, "rete sar: --json and --html exclude each other; give one\n");
		return CLI_USAGE;
	}
	/* A typo must not answer "nothing concerns her": what cannot be a
	 * fiscal code (or a person id a message can carry) is refused. */
	char why[200];
	if (person != NULL && !sar_fiscal_ok(person, why, sizeof(why))) {
		fprintf(
		    stderr,
		    "rete sar: --person is not a fiscal code: %s. Accepted: a fiscal code as "
		    "messages carry it, 16 letters and digits (RSSMRA85M41E897X, or an STP or "
		    "ENI code such as STP0300150000123), or an 11-digit temporary code with its "
		    "check digit; upper or lower case, spaces ignored. For a person without "
		    "one, --person-id ID\n",
		    why);
		return CLI_USAGE;
	}
	if (person_id != NULL && (person_id[0] == '\0' || strlen(person_id) > RETE_SHORT_MAX)) {
		fprintf(stderr,
			"rete sar: --person-id has %zu bytes; a person id as a message carries it "
			"(private.person.personId) has 1 to %d, so it would match nothing\n",
			strlen(person_id), RETE_SHORT_MAX);
		return CLI_USAGE;
	}
	if (strcmp(lang, "it") != 0 && strcmp(lang, "en") != 0) {
		fprintf(stderr, "rete sar: --lang '%s' is not accepted; use it or en\n", lang);
		return CLI_USAGE;
	}
	const struct sar_words *w = strcmp(lang, "it") == 0 ? &words_it : &words_en;
	if (agent_config_load_paths(ini, &cfg, &m) != RETE_OK) {
		fprintf(stderr, "rete sar: %s\n", m.text);
		goto out;
	}
	if (privacy_key_load(cfg.data, false, &key, &m) != RETE_OK) {
		fprintf(stderr, "rete sar: %s\n", m.text);
		goto out;
	}
	if ((person != NULL && !privacy_mac_fiscal(key, person, mac1)) ||
	    (person_id != NULL && !privacy_mac_person_id(key, person_id, mac2))) {
		/* refused above: an empty one has no pseudonym */
		fprintf(stderr, "rete sar: --person and --person-id must not be empty\n");
		goto out;
	}
	{
		/* Recorded before reading, as the pseudonym: the access record
		 * must not itself become a list of fiscal codes. */
		char what[256];
		snprintf(what, sizeof(what), "subject access for person %s%s%s",
			 mac1[0] ? mac1 : mac2, mac1[0] && mac2[0] ? " / " : "",
			 mac1[0] && mac2[0] ? mac2 : "");
		if (!cli_access_record(ini, "rete sar", what))
			goto out;
	}
	/* Lines the agent has not synced into the file yet are in its store,
	 * also after it stopped before that. The store first, then the file:
	 * a line the running agent moves from one to the other in between
	 * (appended, synced, taken from the store) is read in the file. */
	rete_checkpoint cp, *cpp = NULL;
	struct privacy_journal jr = {.texts = json_array()};
	json_t *texts = jr.texts;
	rete_err derr = agent_db_open(cfg.data, true, 0, &db, &m);
	if (derr == RETE_OK)
		derr = agent_db_each(db, AGENT_DB_PERSONS, privacy_journal_collect, &jr, &m);
	if (derr != RETE_OK && derr != RETE_ENOENT) {
		/* an answer without the store's lines could miss the person's
		 * latest messages: none rather than an incomplete one */
		fprintf(stderr,
			"rete sar: %s; no answer: it could miss what the agent's store holds\n",
			m.text);
		json_decref(texts);
		goto out;
	}
	if (privacy_index_load(cfg.data, &lines, &m) != RETE_OK) {
		fprintf(stderr, "rete sar: %s\n", m.text);
		json_decref(texts);
		goto out;
	}
	privacy_index_merge(lines, texts, NULL);
	json_decref(texts);
	if (db != NULL) {
		rete_buf note = {0};
		if (agent_db_get(db, AGENT_DB_META, "checkpoint", 10, &note, &m) == RETE_OK &&
		    rete_checkpoint_parse((const char *)note.data, note.len, &cp, NULL) == RETE_OK)
			cpp = &cp;
		rete_buf_free(&note);
	}
	ans = json_object();
	char now[32];
	json_object_set_new(ans, "agency", json_string(cfg.id));
	json_object_set_new(ans, "answeredAt", json_string(rete_time_format(rete_now_ms(), now)));
	json_t *pq = json_object();
	if (person != NULL)
		json_object_set_new(pq, "fiscalCode", json_string(person));
	if (person_id != NULL)
		json_object_set_new(pq, "personId", json_string(person_id));
	json_object_set_new(ans, "person", pq);
	if (cpp != NULL) {
		json_t *c = json_object();
		json_object_set_new(c, "origin", json_string(cp.origin));
		json_object_set_new(c, "size", json_integer((json_int_t)cp.size));
		json_object_set_new(ans, "checkpoint", c);
	} else {
		json_object_set_new(ans, "checkpoint", json_null());
	}
	json_t *msgs = sar_answer(&cfg, db, lines, mac1, mac2, cpp);
	json_object_set_new(ans, "messages", msgs);
	json_object_set_new(ans, "refused",
			    sar_unindexed(&cfg, key, person, mac1, mac2, msgs, "failed"));
	json_object_set_new(ans, "waiting",
			    sar_unindexed(&cfg, key, person, mac1, mac2, msgs, "outbox"));
	privacy_key_free(&key);
	if (html != NULL) {
		/* the page names the person and the services that concerned
		 * her: readable by the operator alone, like the agent's files
		 * (a page already there is narrowed too). Never through a
		 * symbolic link: the answer would replace the file it points
		 * to, wherever that is (O_NOFOLLOW: ELOOP) */
		int fd = open(html, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd < 0 && errno == ELOOP) {
			fprintf(stderr,
				"rete sar: %s is a symbolic link; the answer names the person, so "
				"it is written only to a file of its own, never through a link to "
				"another file: give the path of a new file or of a regular one; "
				"nothing written\n",
				html);
			goto out;
		}
		FILE *f = fd >= 0 && fchmod(fd, 0600) == 0 ? fdopen(fd, "w") : NULL;
		if (f == NULL) {
			if (fd >= 0)
				close(fd);
			fprintf(stderr, "rete sar: %s: cannot write: %s\n", html, strerror(errno));
			goto out;
		}
		sar_html(f, w, lang, ans);
		if (fclose(f) != 0) {
			fprintf(stderr, "rete sar: %s: cannot write: %s\n", html, strerror(errno));
			goto out;
		}
		printf("%s: %zu message(s)\n", html,
		       json_array_size(json_object_get(ans, "messages")));
	} else if (as_json) {
		json_dumpf(ans, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
	} else {
		sar_text(stdout, w, ans);
	}
	rc = fflush(stdout) == 0 ? CLI_OK : CLI_USAGE;
out:
	privacy_key_free(&key);
	agent_db_close(&db);
	json_decref(lines);
	json_decref(ans);
	agent_config_free(&cfg);
	return rc;
}
