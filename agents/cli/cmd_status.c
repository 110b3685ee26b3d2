/* cmd_status.c — `rete status -c agent.ini [REFERRAL_ID] [--json]`.
 *
 * Shows the agency's referrals, with status and history, from the agent's
 * own store (opened read-only beside the running agent) and, when the
 * broker answers within --timeout (default 3 s), the broker's projection,
 * which is the authoritative status. First of all, when no process holds
 * the agent's locks (DATA/agent.lock, SPOOL/spool.lock), that the agent is
 * not running, with how many files wait in outbox/ ("agentRunning",
 * "outboxWaiting" in --json): `rete send` only queues. Then, when the agent recorded that
 * another connection with the agency's key took its deliveries (protocol
 * 5, TAKEN_OVER), it says so ("takenOver" in --json); and the key watch's
 * alarms (agents/agent/agent_keys.h): a directory that gave this agency's
 * id a key not its own ("ownKeyAlarms"), a party whose new key waits for
 * this agency's operator ("keyChanges"). A broker that answers
 * but refuses to say (e.g. a read it cannot record in its access record) is
 * said with its sentence ("brokerError" in --json). Exit 0; 1 when the
 * referral asked for is known to neither; 2 for configuration and I/O errors,
 * and for a referral not in the store that the broker refused to say about.
 *
 * The agent's store and tracking code are compiled into this command from
 * agents/agent/ (the build gives `rete` only the files of agents/cli), so the record
 * format has one reader and one writer.
 */
#include "../agent/agent_db.c"
#include "../agent/agent_track.c"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <unistd.h>

#include "../agent/agent_config.h"
#include "../agent/agent_spool.h"
#include "cli.h"
#include "folderlock.h"
#include "json.h"
#include "status_alarms.h"
#include "wire.h"

/* status_agent_running: is this agency's agent running? It holds the
 * locks of its data folder and spool while it runs (agents/agent/
 * agent_main.c, agent_setup; folderlock.h); either one held is an agent
 * at work on this data folder or spool. The probe is a shared lock let go
 * at once, nothing created nor written; an agent starting in that instant
 * tries again, so the probe never stops a start. 1 yes, 0 no, -1 cannot
 * tell. */
static int status_agent_running(const agent_config *cfg)
{
	int data = rete_folder_lock_held(cfg->data, "agent.lock");
	int spool = rete_folder_lock_held(cfg->spool, "spool.lock");
	if (data == 1 || spool == 1)
		return 1;
	return data < 0 || spool < 0 ? -1 : 0;
}

/* status_outbox_waiting: how many files wait in SPOOL/outbox/ (regular
 * files whose name is not someone's file being written: those the agent
 * takes, or answers in failed/ for their name). They leave outbox/ when
 * the agent answers them (sent/ with the broker's receipt, or failed/).
 * -1 when outbox/ cannot be read (0 when there is none yet). */
static long status_outbox_waiting(const agent_config *cfg)
{
	char dir[4200];
	char **names = NULL;
	size_t n = 0;
	rete_msg m;
	agent_spool_path(cfg, "outbox", NULL, dir, sizeof(dir));
	if (access(dir, F_OK) != 0 && errno == ENOENT)
		return 0;
	if (agent_spool_list_all(dir, &names, &n, NULL, NULL, &m) != RETE_OK)
		return -1;
	agent_spool_list_free(names, n);
	return (long)n;
}

/* agent_print says, first, that the agent is not running (running 0):
 * nothing in outbox/ (waiting files, -1: unknown) is sent and nothing is
 * taken from the broker until it starts. A running agent (or one that
 * cannot be told) is not said here; a running one's files not answered yet
 * are counted after the referrals. */
static void agent_print(const agent_config *cfg, int running, long waiting, FILE *out)
{
	if (running != 0)
		return;
	fprintf(out, "%s: the agent is not running (no process holds %s/agent.lock): ", cfg->id,
		cfg->data);
	if (waiting > 0)
		fprintf(out, "%ld file%s in outbox/ wait%s to be sent", waiting,
			waiting == 1 ? "" : "s", waiting == 1 ? "s" : "");
	else if (waiting == 0)
		fprintf(out, "nothing waits in outbox/");
	else
		fprintf(out, "outbox/ (%s/outbox) cannot be read", cfg->spool);
	fprintf(out,
		", and nothing is taken from the broker, until it starts (rete-agent -c %s); the "
		"statuses below are this agency's record of when it last ran\n",
		cfg->ini_path ? cfg->ini_path : "agent.ini");
}

static void status_usage(FILE *f)
{
	fprintf(f, "usage: rete status -c agent.ini [REFERRAL_ID] [--json] [--timeout SECONDS]\n\n"
		   "The agency's referrals with status and history, from the agent's store and,\n"
		   "when the broker is reachable, the broker's authoritative status; first, if\n"
		   "another agent with this agency's key took its deliveries, since when, and\n"
		   "the key alarms: the directory gave this agency's id a key not its own, or\n"
		   "a party's new key waits for this agency's operator (--trust); and when the\n"
		   "agent is not running, that, with how many files wait in outbox/.\n"
		   "A broker that refuses to say is named with its sentence (\"brokerError\").\n\n"
		   "Exit 0; 1 when REFERRAL_ID is known neither here nor to the broker; 2 when\n"
		   "it is not here and the broker refused to say, or on a configuration error.\n");
}

/* status_broker asks the broker for one referral; NULL when it cannot
 * answer (unreachable: *reachable set false), does not know it
 * (NOT_FOUND: *unknown set true), or refuses to say (any other error:
 * *refusal, malloc'd, is the broker's sentence, e.g. a read it cannot
 * record). */
static json_t *status_broker(rete_wire *w, const char *id, int timeout_ms, bool *reachable,
			     bool *unknown, char **refusal)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__ReferralQuery rq = RETE__REFERRAL_QUERY__INIT;
	Rete__BrokerFrame *f = NULL;
	rete_msg m = {{0}};
	json_t *out = NULL;

	rq.referral_id = (char *)id;
	q.what_case = RETE__QUERY__WHAT_REFERRAL;
	q.referral = &rq;
	rete_err err = rete_wire_call(w, &q, timeout_ms, &f, &m);
	if (err != RETE_OK) {
		*reachable = false;
		return NULL;
	}
	*unknown = f->command_case == RETE__BROKER_FRAME__COMMAND_RESULT &&
		   f->result->error == RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND;
	if (f->command_case == RETE__BROKER_FRAME__COMMAND_RESULT && f->result->error == 0 &&
	    f->result->answer_case == RETE__QUERY_RESULT__ANSWER_REFERRAL)
		out = rete_pb_to_json(&f->result->referral->base);
	else if (f->command_case == RETE__BROKER_FRAME__COMMAND_RESULT && f->result->error != 0 &&
		 f->result->error != RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND)
		*refusal = strdup(f->result->error_text && f->result->error_text[0]
				      ? f->result->error_text
				      : "an error without a sentence");
	else if (f->command_case == RETE__BROKER_FRAME__COMMAND_REFUSAL && f->refusal != NULL)
		*refusal = strdup(f->refusal->error_text && f->refusal->error_text[0]
				      ? f->refusal->error_text
				      : "a refusal without a sentence");
	rete__broker_frame__free_unpacked(f, NULL);
	return out;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

/* status_taken_over: the agent's record that another connection with the
 * agency's key took its deliveries (agent_db.h, AGENT_META_TAKEN_OVER), or
 * NULL when there is none (or it cannot be read: the referrals still show). */
static json_t *status_taken_over(agent_db *db)
{
	rete_buf v = {0};
	json_t *o = NULL;
	if (db && agent_db_get(db, AGENT_DB_META, AGENT_META_TAKEN_OVER,
			       strlen(AGENT_META_TAKEN_OVER), &v, NULL) == RETE_OK)
		o = json_loadb((const char *)v.data, v.len, 0, NULL);
	rete_buf_free(&v);
	if (o && !json_is_object(o)) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

/* inbox_held_print says the agent's record of deliveries held while
 * inbox/ cannot be written (AGENT_META_INBOX_HELD, as status_meta_json
 * reads it): since when, how many, why, and what follows if it lasts. */
static void inbox_held_print(const char *id, json_t *h, FILE *out)
{
	json_int_t n = json_integer_value(json_object_get(h, "held"));
	fprintf(out,
		"%s: INBOX NOT WRITABLE since %s: %" JSON_INTEGER_FORMAT " deliver%s held (not "
		"acked): %s. Make inbox/ (and the agent's data folder) writable before the "
		"network's expiry, or the broker withdraws them and tells their senders they "
		"were not delivered (docs/agent.md, \"When inbox/ cannot be written\")\n",
		id, jstr(h, "since"), n, n == 1 ? "y" : "ies", jstr(h, "problem"));
}

/* taken_over_print says the take-over t in the words of the agent's log:
 * in force, or over since the deliveries came back ("back"). */
static void taken_over_print(const char *id, json_t *t, FILE *out)
{
	const char *from = jstr(t, "from"), *back = jstr(t, "back");
	if (!from[0])
		from = "an address the broker did not say";
	if (back[0])
		fprintf(out,
			"%s: deliveries back since %s: another agent with this agency's key (from "
			"%s) had taken them at %s and went; this agent stands by until it is "
			"restarted (another agent with the key would take them without a word to "
			"it) (docs/operations.md, \"Two agents with one key\")\n",
			id, back, from, jstr(t, "at"));
	else
		fprintf(out,
			"%s: TAKEN OVER at %s: another agent with this agency's key (from %s) took "
			"its deliveries; referrals for %s go to it while it is connected, not to "
			"this agent, which stands by until it is restarted (docs/operations.md, "
			"\"Two agents with one key\")\n",
			id, jstr(t, "at"), from, id);
}

/* status_meta_json: meta key of the agent's store as JSON of type want
 * (JSON_OBJECT, JSON_ARRAY), or NULL (absent, unreadable: the referrals
 * still show). */
static json_t *status_meta_json(agent_db *db, const char *key, json_type want)
{
	rete_buf v = {0};
	json_t *o = NULL;
	if (db && agent_db_get(db, AGENT_DB_META, key, strlen(key), &v, NULL) == RETE_OK)
		o = json_loadb((const char *)v.data, v.len, 0, NULL);
	rete_buf_free(&v);
	if (o && json_typeof(o) != want) {
		json_decref(o);
		o = NULL;
	}
	return o;
}

/* keys_print says the key watch's records (agents/agent/agent_keys.h) in
 * the words of the agent's log: the directories that gave this agency's
 * id a key not its own, and the parties whose new key waits for this
 * agency's operator. */
static void keys_print(const char *id, json_t *own, json_t *changes, FILE *out)
{
	size_t i;
	json_t *it;
	json_array_foreach(own, i, it)
	{
		if (json_is_true(json_object_get(it, "refused"))) {
			fprintf(out,
				"%s: ALARM: the broker says %s is not in its directory (any more, "
				"seen at %s): a directory after %" JSON_INTEGER_FORMAT
				", the last this agent was given, does not name it; an id added "
				"back under a key not ours can sign as %s; unless this agency was "
				"removed on purpose, tell the broker's operator and the auditor\n",
				id, id, jstr(it, "seenAt"),
				json_integer_value(json_object_get(it, "serial")), id);
			continue;
		}
		if (json_is_true(json_object_get(it, "missing"))) {
			fprintf(out,
				"%s: ALARM: the broker's directory %" JSON_INTEGER_FORMAT
				" (log entry %s, logged at %s, seen at %s) does not name %s: the "
				"broker refuses this agency while it is in force, and an id added "
				"back under a key not ours can sign as %s; unless this agency was "
				"removed on purpose, tell the broker's operator and the auditor\n",
				id, json_integer_value(json_object_get(it, "serial")),
				jstr(it, "entry"), jstr(it, "loggedAt"), jstr(it, "seenAt"), id,
				id);
			continue;
		}
		fprintf(
		    out,
		    "%s: ALARM: the broker's directory gave %s a key that is not ours at entry %s "
		    "(logged at %s, seen at %s; key %s): whoever holds it can sign as %s; tell "
		    "the broker's operator and the auditor (docs/security.md, \"The directory's "
		    "keys\")\n",
		    id, id, jstr(it, "entry"), jstr(it, "loggedAt"), jstr(it, "seenAt"),
		    jstr(it, "key"), id);
	}
	const char *party;
	json_object_foreach(changes, party, it)
	{
		fprintf(
		    out,
		    "%s: KEY CHANGE NOT CONFIRMED: the key of %s in the broker's directory (%s) "
		    "is not the one pinned (%s); since %s, %lld log entr%s signed with it not "
		    "taken, the latest %s at %s. They wait with the broker, set aside out of this "
		    "agency's delivery window (what other partners send is delivered meanwhile; "
		    "a restart of the broker keeps them set aside), "
		    "and are delivered again every redeliver. Ask %s by phone for its "
		    "key: if it changed, rete-agent -c agent.ini --trust %s --key KEY (they are "
		    "then taken); if it did not, --key with the pinned key (they are refused), "
		    "and tell the broker's operator and the auditor\n",
		    id, party, jstr(it, "key"), jstr(it, "pinned"), jstr(it, "since"),
		    (long long)json_integer_value(json_object_get(it, "count")),
		    json_integer_value(json_object_get(it, "count")) == 1 ? "y" : "ies",
		    jstr(it, "what"), jstr(it, "last"), party, party);
	}
}

/* status_moved_print says, after a history line, that our message was
 * receipted again after a restore of the broker's store: the index shown
 * is the current log's, and where the earlier epoch's log had it. */
static void status_moved_print(json_t *h, FILE *out)
{
	if (!jstr(h, "previousIndex")[0])
		return;
	fprintf(out, "  (receipted again after a restore of the broker's store; before: #%s",
		jstr(h, "previousIndex"));
	if (json_integer_value(json_object_get(h, "previousEpoch")) > 0)
		fprintf(out, " of epoch %" JSON_INTEGER_FORMAT,
			json_integer_value(json_object_get(h, "previousEpoch")));
	if (jstr(h, "previousAt")[0])
		fprintf(out, ", %s", jstr(h, "previousAt"));
	fputc(')', out);
}

static void status_print(json_t *rec, FILE *out)
{
	json_t *b = json_object_get(rec, "broker");
	const char *role = jstr(rec, "role");
	const char *peer =
	    strcmp(role, "performer") == 0 ? jstr(rec, "requester") : jstr(rec, "performer");
	fprintf(out, "%s  %s %s  service %s  status %s", jstr(rec, "id"),
		strcmp(role, "performer") == 0 ? "from" : "to", peer[0] ? peer : "?",
		jstr(rec, "service")[0] ? jstr(rec, "service") : "?",
		jstr(rec, "status")[0] ? jstr(rec, "status") : "?");
	if (jstr(rec, "businessStatus")[0])
		fprintf(out, " (%s)", jstr(rec, "businessStatus"));
	if (b != NULL) {
		fprintf(out, "  broker: %s", jstr(b, "status"));
		if (jstr(b, "businessStatus")[0])
			fprintf(out, " (%s)", jstr(b, "businessStatus"));
	}
	if (json_is_true(json_object_get(rec, "overdue")))
		fprintf(out, "  OVERDUE");
	fputc('\n', out);
	size_t i;
	json_t *h;
	json_array_foreach(json_object_get(rec, "history"), i, h)
	{
		fprintf(out, "  %-24s #%-6s %-9s %-12s by %s", jstr(h, "at"), jstr(h, "index"),
			jstr(h, "kind"), jstr(h, "status"), jstr(h, "by"));
		if (jstr(h, "businessStatus")[0])
			fprintf(out, "  business status %s", jstr(h, "businessStatus"));
		json_t *o = json_object_get(h, "outcome");
		if (o != NULL)
			fprintf(out, "  outcome %s%s%s", jstr(o, "result"),
				jstr(o, "reason")[0] ? " / " : "", jstr(o, "reason"));
		json_t *r = json_object_get(h, "statusReason");
		if (r != NULL)
			fprintf(out, "  reason %s", jstr(r, "code"));
		if (strcmp(jstr(h, "kind"), "delivery") == 0)
			fprintf(out, "  delivered %s", jstr(h, "messageId"));
		if (jstr(h, "notice")[0])
			fprintf(out, "  notice %s: %s", jstr(h, "notice"), jstr(h, "text"));
		status_moved_print(h, out);
		fputc('\n', out);
	}
}

/* status_held_here: is the referral rec this agency sent still held by
 * its agent (AGENT_DB_HELD, keyed by the message id, which for a referral
 * is the referral id: receipted, no delivery receipt yet, a non-empty
 * record)? Such a message is submitted again by the agent itself after a
 * restore of the broker's store (docs/agent.md, "The sender is
 * responsible"). */
static bool status_held_here(agent_db *db, json_t *rec)
{
	const char *mid = jstr(rec, "id");
	if (db == NULL || strcmp(jstr(rec, "role"), "performer") == 0)
		return false;
	rete_buf v = {0};
	rete_msg m = {{0}};
	bool held = mid[0] &&
		    agent_db_get(db, AGENT_DB_HELD, mid, strlen(mid), &v, &m) == RETE_OK &&
		    v.len > 0; /* empty: delivered */
	rete_buf_free(&v);
	return held;
}

/* status_unknown_mark marks rec, a referral of this agency's store that the
 * broker answered it does not know: "brokerUnknown", and "heldHere" when
 * this agency's agent still holds it (status_held_here). */
static void status_unknown_mark(agent_db *db, json_t *rec)
{
	json_object_set_new(rec, "brokerUnknown", json_true());
	if (status_held_here(db, rec))
		json_object_set_new(rec, "heldHere", json_true());
}

/* status_unknown_print says that the broker answered that it does not
 * know a referral this agency has a record of (brokerUnknown): its log
 * lost it, most likely in a restore of its store from a backup older than
 * the referral; the agency's record is all there is, and who does what
 * to go on: nothing, when this agency's agent still holds it (heldHere:
 * it submits it again itself, with the same id, once it sees the loss:
 * a new epoch at its WELCOME, or its witness's alarm that the log no
 * longer reaches its receipt; a new referral would be a second one for
 * the same family); for one this agency received, its
 * requester's agent may still hold it, so the requester is asked first. */
static void status_unknown_print(json_t *rec, FILE *out)
{
	if (!json_is_true(json_object_get(rec, "brokerUnknown")))
		return;
	const char *id = jstr(rec, "id"), *req = jstr(rec, "requester");
	bool mine = strcmp(jstr(rec, "role"), "performer") != 0;
	const char *overdue = json_is_true(json_object_get(rec, "overdue"))
				  ? " (OVERDUE was said by the broker of the log that lost it)"
				  : "";
	fprintf(out,
		"  broker: NOT IN ITS LOG. The broker answered that it does not know referral "
		"%s: its log no longer has referral %s, most likely lost by a restore of the "
		"broker's store from a backup taken before it (docs/operations.md, \"Restoring "
		"a backup\"). ",
		id, id);
	if (mine && json_is_true(json_object_get(rec, "heldHere"))) {
		fprintf(out,
			"This agency's agent still holds it (no delivery receipt yet) and submits "
			"it again by itself, with the same id, as soon as it sees that the "
			"broker's log lost it: at its first connection after a declared restore "
			"(a new log epoch), or, when the broker came back in the same epoch "
			"without it, at its first connection after (a WITNESS ALARM, \"the log "
			"shrank\", above) (its log then says \"held message %s receipted again "
			"at log index N\"); if the agent is stopped, start it. Do not send it "
			"again (a new referral would be a second one for the same family). Until "
			"then the status above is this agency's own record, and its log indexes "
			"are of the log before the restore%s.\n",
			id, overdue);
		return;
	}
	fprintf(out,
		"The status above is this agency's own record, and its log indexes are of the "
		"log before the restore (they may name other entries now)%s; updates and notes "
		"on %s are refused (unknown-referral). ",
		overdue, id);
	if (mine)
		fprintf(out,
			"To go on, this agency sends it again as a new referral: a new id, with "
			"previousReferral \"%s\".\n",
			id);
	else
		fprintf(out,
			"To go on, ask %s: its agent may still hold it and then submits it again "
			"by itself, with the same id (this status then shows it again); if it does "
			"not, %s sends it again as a new referral: a new id, with previousReferral "
			"\"%s\".\n",
			req[0] ? req : "the requester", req[0] ? req : "the requester", id);
}

/* und_json: one held message u (agent_track.h) as "rete status --json"
 * gives it: its id, kind, receipt (log index, time), age at `now` and
 * whether it is past the directory's expiry (expiry 0: not known, never
 * past). */
static json_t *und_json(const agent_undelivered *u, int64_t now, int64_t expiry)
{
	char at[32], idx[24];
	json_t *o = json_object();
	json_object_set_new(o, "messageId", json_string(u->id));
	json_object_set_new(o, "kind", json_string(u->kind));
	if (u->referral[0])
		json_object_set_new(o, "referralId", json_string(u->referral));
	snprintf(idx, sizeof(idx), "%" PRIu64, u->index);
	json_object_set_new(o, "receiptIndex", json_string(idx));
	if (u->file != NULL) {
		char path[4200];
		snprintf(path, sizeof(path), "sent/%s.receipt.json", u->file);
		json_object_set_new(o, "receipt", json_string(path));
	}
	if (u->receipted_at > 0) {
		int64_t age = now > u->receipted_at ? now - u->receipted_at : 0;
		json_object_set_new(o, "receiptedAt",
				    json_string(rete_time_format(u->receipted_at, at)));
		json_object_set_new(o, "ageSeconds", json_integer(age / 1000));
		/* a receipt dated ahead of this machine by more than two clocks
		 * may differ: a wrong clock, or a broker that post-dates its
		 * receipts to put off this sentence (review rev-held s17, 3) */
		if (u->logged_at - now > RETE_CLOCK_SKEW_MS)
			json_object_set_new(o, "receiptAheadSeconds",
					    json_integer((u->logged_at - now) / 1000));
		/* past the expiry and the tolerance between two clocks, as the
		 * agent judges (agent_undelivered.c) */
		json_object_set_new(o, "overdue",
				    json_boolean(expiry > 0 && age > expiry + RETE_CLOCK_SKEW_MS));
	} else {
		json_object_set_new(o, "receiptedAt", json_null());
		json_object_set_new(o, "ageSeconds", json_null());
		json_object_set_new(o, "overdue", json_false());
	}
	return o;
}

/* und_attach puts each held message of und (all sent by this agency: a
 * referral, or an update or note on one it requested or received) under
 * the referral it concerns ("undelivered") and returns those of no
 * referral shown here (a new array). */
static json_t *und_attach(json_t *recs, const agent_undelivered *und, size_t n, int64_t now,
			  int64_t expiry)
{
	json_t *other = json_array();
	for (size_t k = 0; k < n; k++) {
		json_t *rec, *home = NULL;
		size_t i;
		json_array_foreach(recs, i, rec)
		{
			if (und[k].referral[0] && strcmp(jstr(rec, "id"), und[k].referral) == 0)
				home = rec;
		}
		json_t *o = und_json(&und[k], now, expiry);
		if (home == NULL) {
			json_array_append_new(other, o);
			continue;
		}
		json_t *arr = json_object_get(home, "undelivered");
		if (arr == NULL) {
			arr = json_array();
			json_object_set_new(home, "undelivered", arr);
		}
		json_array_append_new(arr, o);
	}
	return other;
}

/* und_print says the held messages arr (und_json's) of a referral (its
 * status at the broker: broker, NULL when not known), or of none: each
 * one's age and, past the directory's expiry, that no delivery receipt or
 * withdrawal notice reached this agent, and what to do. */
static void und_print(json_t *arr, int64_t expiry, const char *broker, FILE *out)
{
	size_t i;
	json_t *u;
	char limit[32], span[32];
	if (expiry > 0)
		agent_track_span(expiry, limit);
	json_array_foreach(arr, i, u)
	{
		json_t *age = json_object_get(u, "ageSeconds");
		const char *kind = jstr(u, "kind"), *ref = jstr(u, "referralId");
		char what[400];
		if (strcmp(kind, "referral") == 0 || !ref[0])
			snprintf(what, sizeof(what), "%s %s", kind, jstr(u, "messageId"));
		else
			snprintf(what, sizeof(what), "%s %s of referral %s", kind,
				 jstr(u, "messageId"), ref);
		if (!json_is_integer(age)) {
			fprintf(
			    out,
			    "  not delivered yet: %s, receipted at log index #%s (its receipt's "
			    "time is not in this agency's store)\n",
			    what, jstr(u, "receiptIndex"));
			continue;
		}
		agent_track_span(json_integer_value(age) * 1000, span);
		const char *evidence = jstr(u, "receipt")[0]
					   ? jstr(u, "receipt")
					   : "in sent/ (*.receipt.json with its messageId)";
		json_t *ahead = json_object_get(u, "receiptAheadSeconds");
		/* the broker's own word on a referral past "requested": it was
		 * delivered (or withdrawn) and its receipt never came here */
		bool known = broker != NULL && broker[0] && strcmp(broker, "requested") != 0 &&
			     strcmp(kind, "referral") == 0;
		if (json_is_integer(ahead)) {
			agent_track_span(json_integer_value(ahead) * 1000, span);
			fprintf(out,
				"  not delivered yet, and its receipt is dated %s in the future: "
				"the broker's clock or this machine's is wrong, or the broker "
				"post-dates its receipts (which puts off this watch); check this "
				"machine's clock, then tell the broker's operator; the evidence: "
				"its receipt, %s (%s, log index #%s at %s)\n",
				span, evidence, what, jstr(u, "receiptIndex"),
				jstr(u, "receiptedAt"));
		} else if (json_is_true(json_object_get(u, "overdue")) && known)
			fprintf(out,
				"  NO DELIVERY RECEIPT after %s (the directory's expiry is %s): no "
				"delivery receipt reached this agent; the broker says %s. Its "
				"receipt may have expired at the broker while this agent was "
				"stopped for longer than the expiry; the evidence: its receipt, "
				"%s (%s, log index #%s at %s)\n",
				span, limit, broker, evidence, what, jstr(u, "receiptIndex"),
				jstr(u, "receiptedAt"));
		else if (json_is_true(json_object_get(u, "overdue")))
			fprintf(
			    out,
			    "  NOT DELIVERED after %s (the directory's expiry is %s, and 5m for "
			    "the "
			    "clocks): neither its delivery receipt nor a notice that it was "
			    "withdrawn has reached this agent. Either the broker withholds it, or "
			    "it was delivered or withdrawn while this agent was stopped for longer "
			    "than the expiry and that receipt expired at the broker; check rete "
			    "health, or ask the broker's operator; the evidence: its receipt, %s "
			    "(%s, log index #%s at %s)\n",
			    span, limit, evidence, what, jstr(u, "receiptIndex"),
			    jstr(u, "receiptedAt"));
		else
			fprintf(out,
				"  not delivered yet: receipted %s ago (the directory's expiry: "
				"%s): %s, log index #%s at %s\n",
				span,
				expiry > 0 ? limit
					   : "not recorded by the agent: it records it when it "
					     "connects; an agent started before rete was upgraded "
					     "to this version records none: restart it",
				what, jstr(u, "receiptIndex"), jstr(u, "receiptedAt"));
	}
}

int cmd_status(int argc, char **argv)
{
	const char *ini = NULL, *refid = NULL;
	bool as_json = false;
	int timeout_ms = 3000;
	agent_config cfg;
	agent_db *db = NULL;
	rete_msg m = {{0}};
	json_t *recs = NULL, *taken = NULL, *own = NULL, *changes = NULL, *und_other = NULL;
	json_t *inbox_held = NULL;
	agent_undelivered *und = NULL; /* held: receipted, not delivered */
	size_t und_n = 0;
	char *refusal = NULL; /* the broker answers, refusing to say: its sentence */
	int rc = CLI_OK;

	if (cli_wants_help(argc, argv)) {
		status_usage(stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
		    i + 1 < argc) {
			ini = argv[++i];
		} else if (strcmp(argv[i], "--json") == 0) {
			as_json = true;
		} else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
			char *end;
			long v = strtol(argv[++i], &end, 10);
			if (*end != '\0' || v < 0 || v > 600) {
				fprintf(stderr,
					"rete status: --timeout %s: give whole seconds, 0 "
					"to 600\n",
					argv[i]);
				return CLI_USAGE;
			}
			timeout_ms = (int)v * 1000;
		} else if (strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0 ||
			   strcmp(argv[i], "--timeout") == 0) {
			fprintf(stderr, "rete status: %s needs a value\n", argv[i]);
			status_usage(stderr);
			return CLI_USAGE;
		} else if (argv[i][0] == '-') {
			fprintf(
			    stderr,
			    "rete status: unknown option '%s'; accepted: -c, --json, --timeout, "
			    "--help\n",
			    argv[i]);
			status_usage(stderr);
			return CLI_USAGE;
		} else if (refid != NULL) {
			fprintf(
			    stderr,
			    "rete status: unexpected argument '%s': the referral is already '%s' "
			    "(one per run, or none for all)\n",
			    argv[i], refid);
			status_usage(stderr);
			return CLI_USAGE;
		} else {
			refid = argv[i];
		}
	}
	if (ini == NULL) {
		fprintf(stderr, "rete status: missing -c agent.ini (the agent's configuration)\n");
		status_usage(stderr);
		return CLI_USAGE;
	}
	if (agent_config_load_paths(ini, &cfg, &m) != RETE_OK) {
		fprintf(stderr, "rete status: %s\n", m.text);
		agent_config_free(&cfg);
		return CLI_USAGE;
	}
	rete_err err = agent_db_open(cfg.data, true, 0, &db, &m);
	if (err == RETE_OK) {
		if (refid != NULL) {
			json_t *one = NULL;
			err = agent_track_get(db, refid, &one, &m);
			recs = json_array();
			if (err == RETE_OK)
				json_array_append_new(recs, one);
		} else {
			err = agent_track_all(db, &recs, &m);
		}
	}
	if (err != RETE_OK && err != RETE_ENOENT) {
		fprintf(stderr, "rete status: %s\n", m.text);
		rc = CLI_USAGE;
		goto out;
	}
	if (recs == NULL)
		recs = json_array();
	taken = status_taken_over(db);
	inbox_held = status_meta_json(db, AGENT_META_INBOX_HELD, JSON_OBJECT);
	own = status_meta_json(db, AGENT_META_OWN_KEY, JSON_ARRAY);
	changes = status_meta_json(db, AGENT_META_KEY_CHANGES, JSON_OBJECT);
	int64_t expiry = db ? agent_track_expiry(db) : 0, now = rete_now_ms();
	if (db && agent_track_undelivered(db, &und, &und_n, &m) != RETE_OK)
		fprintf(stderr, "rete status: the held messages cannot be read: %s\n", m.text);
	int running = status_agent_running(&cfg);
	long waiting = status_outbox_waiting(&cfg);
	if (refid != NULL && json_array_size(recs) == 0) {
		/* Unknown here: the broker may still know it. */
		json_t *stub = json_object();
		json_object_set_new(stub, "id", json_string(refid));
		json_array_append_new(recs, stub);
	}

	/* The broker's authoritative view, when it answers. */
	bool reachable = timeout_ms > 0;
	rete_seckey *sk = NULL;
	rete_pubkey bpk;
	rete_wire *w = NULL;
	if (reachable && (rete_keyfile_load_secret(cfg.key_path, &sk, &m) != RETE_OK ||
			  rete_keyfile_load_public(cfg.broker_key_path, &bpk, &m) != RETE_OK ||
			  rete_wire_connect(&w, cfg.broker, &bpk, sk, &m) != RETE_OK)) {
		fprintf(stderr, "rete status: the broker is not asked: %s\n", m.text);
		reachable = false;
	}
	bool asked = reachable; /* connected and asking: silence is then said */
	size_t i;
	json_t *rec;
	json_array_foreach(recs, i, rec)
	{
		if (!reachable || refusal != NULL)
			break;
		bool unknown = false;
		json_t *b =
		    status_broker(w, jstr(rec, "id"), timeout_ms, &reachable, &unknown, &refusal);
		if (b != NULL)
			json_object_set_new(rec, "broker", b);
		else if (unknown && json_object_size(rec) > 1) /* ours, not the broker's */
			status_unknown_mark(db, rec);
	}
	rete_wire_close(&w);
	rete_seckey_free(&sk);

	und_other = und_attach(recs, und, und_n, now, expiry);
	if (refid != NULL) /* the others are not asked for */
		json_array_clear(und_other);
	if (refid != NULL) {
		json_t *only = json_array_get(recs, 0);
		if (json_object_size(only) <= 1 && json_object_get(only, "broker") == NULL) {
			if (refusal != NULL) {
				fprintf(stderr,
					"rete status: referral %s is not in this agency's store, "
					"and the broker refused to say whether it knows it: %s\n",
					refid, refusal);
				rc = CLI_USAGE;
				goto out;
			}
			if (!asked)
				fprintf(stderr,
					"rete status: referral %s is not in this agency's store "
					"(the broker was not asked)\n",
					refid);
			else if (reachable)
				fprintf(stderr,
					"rete status: referral %s is known neither to this "
					"agency's store nor to the broker\n",
					refid);
			else
				fprintf(stderr,
					"rete status: referral %s is not in this agency's store, "
					"and the broker at %s did not answer within %d s (is it "
					"running, is [agent] broker right, and is [agent] "
					"broker_key (%s) its public key? or is it running but "
					"too busy to answer (a slow or full disk)?)\n",
					refid, cfg.broker, timeout_ms / 1000, cfg.broker_key_path);
			rc = CLI_FALSE;
			goto out;
		}
	}
	if (as_json) {
		json_t *doc = json_object();
		json_object_set_new(doc, "agency", json_string(cfg.id));
		json_object_set_new(doc, "brokerReachable",
				    json_boolean(reachable && timeout_ms > 0));
		if (refusal != NULL)
			json_object_set_new(doc, "brokerError", json_string(refusal));
		json_object_set_new(doc, "agentRunning",
				    running < 0 ? json_null() : json_boolean(running == 1));
		json_object_set_new(doc, "outboxWaiting",
				    waiting < 0 ? json_null() : json_integer(waiting));
		if (taken)
			json_object_set(doc, "takenOver", taken);
		if (inbox_held)
			json_object_set(doc, "inboxHeld", inbox_held);
		status_alarms_json(db, doc);
		if (own)
			json_object_set(doc, "ownKeyAlarms", own);
		if (changes)
			json_object_set(doc, "keyChanges", changes);
		json_object_set_new(doc, "directoryExpiryMs",
				    expiry > 0 ? json_integer(expiry) : json_null());
		json_object_set(doc, "referrals", recs);
		if (json_array_size(und_other) > 0)
			json_object_set(doc, "undeliveredOther", und_other);
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		fputc('\n', stdout);
		json_decref(doc);
	} else {
		agent_print(&cfg, running, waiting, stdout);
		if (taken)
			taken_over_print(cfg.id, taken, stdout);
		if (inbox_held)
			inbox_held_print(cfg.id, inbox_held, stdout);
		status_alarms_print(db, cfg.id, stdout);
		keys_print(cfg.id, own, changes, stdout);
		if (json_array_size(recs) == 0)
			printf("%s: no referrals yet\n", cfg.id);
		json_array_foreach(recs, i, rec)
		{
			status_print(rec, stdout);
			status_unknown_print(rec, stdout);
			und_print(json_object_get(rec, "undelivered"), expiry,
				  json_string_value(
				      json_object_get(json_object_get(rec, "broker"), "status")),
				  stdout);
		}
		if (json_array_size(und_other) > 0) {
			printf("%s: sent, not in a referral shown above:\n", cfg.id);
			und_print(und_other, expiry, NULL, stdout);
		}
		/* a wrong pinned key looks like silence (the CURVE handshake
		 * fails without a word): say it with the other causes */
		if (asked && !reachable)
			printf(
			    "(the broker at %s did not answer within %d s: statuses are this "
			    "agency's own record; is it running, is [agent] broker right, and is "
			    "[agent] broker_key (%s) its public key? or is it running but too busy "
			    "to answer (a slow or full disk)?)\n",
			    cfg.broker, timeout_ms / 1000, cfg.broker_key_path);
		if (refusal != NULL)
			printf("(the broker refused to give its status: %s; statuses are this "
			       "agency's own record)\n",
			       refusal);
		if (running == 1 && waiting > 0)
			printf("(%ld file%s in outbox/ not answered yet: the agent takes each in, "
			       "submits it and moves it to sent/ with the broker's receipt, or to "
			       "failed/)\n",
			       waiting, waiting == 1 ? "" : "s");
	}
out:
	free(refusal);
	json_decref(recs);
	json_decref(taken);
	json_decref(inbox_held);
	json_decref(own);
	json_decref(changes);
	json_decref(und_other);
	agent_track_undelivered_free(und, und_n);
	agent_db_close(&db);
	agent_config_free(&cfg);
	return rc;
}
