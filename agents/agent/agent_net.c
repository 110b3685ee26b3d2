/* agent_net.c — the agent's connection to the broker (over wire.h).
 *
 * ZeroMQ reconnects by itself after a broker restart and wire.h says HELLO
 * again; every WELCOME starts a new session here: the directory is taken
 * from it (verified with the pinned broker key) and every unanswered
 * submission is sent again. A broker that refuses our key is said plainly
 * once, and the connection is rebuilt with exponential backoff and jitter
 * (an operator may be fixing the directory) instead of spinning.
 */
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "agent_keys.h"
#include "agent_metrics.h"
#include "agent_net.h"
#include "duration.h"
#include "json.h"
#include "ratelimit.h"
#include "version.h"
#include "wire.h"

#define NET_BURST     256   /* frames handled per loop turn, so timers still run */
#define NET_SILENT_MS 15000 /* no WELCOME for this long: say what may be wrong */
/* A refused key is said once, then at most once per this period with the
 * count of refusals since (a rete_ratewin, proto/ratelimit.h): an agent
 * left on an old key reminds the operator without a line per reconnect.
 * The count still open is said when the broker takes the key again and at
 * a clean stop (agent_net_flush), never dropped. */
#define NET_REFUSED_AGAIN_MS (10 * 60 * 1000)

struct agent_net {
	rete_wire *w;
	int64_t reopen_at; /* when w is NULL: when to connect again */
	int64_t backoff_ms;
	int64_t last_ping;
	uint64_t nonce;
	bool refused_said;    /* "refused our key" logged for this episode */
	rete_ratewin refused; /* opened when it was last logged; the refusals
			       * since, not logged one by one */
	bool lost_said;
	int64_t waiting_since; /* since when we wait for a WELCOME */
	bool silent_said;      /* "no WELCOME yet" logged for this wait */
	bool version_said;     /* "another protocol version" logged since the
				* last WELCOME */
	bool taken_over;       /* another connection with our key took the
				* deliveries (protocol 5): until the agent is
				* restarted it says HELLO with standby */
	bool taken_back;       /* since then, a DELIVER came: the deliveries
				* are here again (the other connection went) */
};

bool agent_net_ready(const agent *a)
{
	return a->net != NULL && a->net->w != NULL && a->welcomed;
}

rete_err agent_net_send(agent *a, Rete__ClientFrame *frame)
{
	rete_msg m = {{0}};
	if (a->net == NULL || a->net->w == NULL)
		return RETE_ENET;
	if (frame->version == 0)
		frame->version = RETE_PROTOCOL_VERSION;
	rete_err err = rete_wire_send(a->net->w, frame, &m);
	if (err != RETE_OK)
		agent_debug(a, "send: %s", m.text);
	return err;
}

static void net_open(agent *a, int64_t now)
{
	struct agent_net *n = a->net;
	rete_msg m = {{0}};

	/* HELLO's software: the broker logs it, so its operator sees which
	 * agents still run an old release */
	char software[160], v[128];
	snprintf(software, sizeof(software), "rete-agent %s", rete_version_short(v, sizeof(v)));
	rete_err err = rete_wire_connect(&n->w, a->cfg.broker, &a->broker_pk, a->sk, &m);
	if (err == RETE_OK && n->taken_over)
		rete_wire_standby(n->w);
	if (err != RETE_OK || rete_wire_hello(n->w, a->cfg.id, software, &m) != RETE_OK) {
		agent_log(a, "error", "broker %s: %s", a->cfg.broker, m.text);
		rete_wire_close(&n->w);
		agent_net_backoff(a, now);
		return;
	}
	n->last_ping = now;
	n->waiting_since = now;
	n->silent_said = false;
	agent_debug(a, "connecting to %s", a->cfg.broker);
}

void agent_net_backoff(agent *a, int64_t now)
{
	struct agent_net *n = a->net;
	rete_wire_close(&n->w);
	a->welcomed = false;
	n->backoff_ms = n->backoff_ms ? n->backoff_ms * 2 : a->cfg.reconnect_min_ms;
	if (n->backoff_ms > a->cfg.reconnect_max_ms)
		n->backoff_ms = a->cfg.reconnect_max_ms;
	/* Jitter: between half and all of the backoff, so agencies refused
	 * together do not come back together. */
	int64_t half = n->backoff_ms / 2;
	n->reopen_at =
	    now + half + (half > 0 ? (int64_t)randombytes_uniform((uint32_t)half + 1) : 0);
}

rete_err agent_net_start(agent *a, rete_msg *m)
{
	a->net = calloc(1, sizeof(*a->net));
	if (a->net == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory");
	/* a start says a plain HELLO and takes the deliveries back: a take-over
	 * recorded by the run before is over (`rete status` stops saying it) */
	rete_msg dm = {{0}};
	if (agent_db_del(a->db, AGENT_DB_META, AGENT_META_TAKEN_OVER, strlen(AGENT_META_TAKEN_OVER),
			 &dm) != RETE_OK)
		agent_log(a, "warning",
			  "%s; `rete status` may still say that another agent took this "
			  "agency's deliveries",
			  dm.text);
	net_open(a, rete_now_ms());
	return RETE_OK;
}

void agent_net_stop(agent *a)
{
	if (a->net == NULL)
		return;
	rete_wire_close(&a->net->w);
	free(a->net);
	a->net = NULL;
}

struct rete_wire *agent_net_wire(agent *a)
{
	return a->net ? a->net->w : NULL;
}

void *agent_net_socket(agent *a)
{
	return a->net && a->net->w ? rete_wire_socket(a->net->w) : NULL;
}

/* refused_flush says the refusals of our key counted since the last line
 * about them and not said yet, as the broker takes the key again or the
 * agent stops, and closes the count. */
static void refused_flush(agent *a, bool stopping)
{
	struct agent_net *n = a->net;
	int64_t since = n->refused.rw_since, secs = (rete_now_ms() - since) / 1000;
	uint64_t held = rete_ratewin_flush(&n->refused);
	if (held == 0)
		return;
	char span[64];
	if (secs < 120)
		snprintf(span, sizeof(span), "%lld s", (long long)secs);
	else
		snprintf(span, sizeof(span), "%lld min", (long long)(secs / 60));
	if (stopping)
		agent_log(a, "error",
			  "the broker still refused our key when the agent stopped: %" PRIu64
			  " more refusal%s in the last %s, not logged one by one (%s is not in "
			  "its directory with the key of %s)",
			  held, held == 1 ? "" : "s", span, a->cfg.id, a->cfg.key_path);
	else
		agent_log(a, "info",
			  "the broker takes our key again, after %" PRIu64
			  " more refusal%s in the last %s, not logged one by one",
			  held, held == 1 ? "" : "s", span);
}

void agent_net_flush(agent *a)
{
	if (a->net != NULL)
		refused_flush(a, true);
}

static void net_welcome(agent *a, const Rete__Welcome *wel)
{
	agent_directory *dir = NULL;
	rete_msg m = {{0}};

	if (wel->party == NULL || strcmp(wel->party, a->cfg.id) != 0) {
		agent_log(a, "error",
			  "the broker welcomed us as '%s', but we are %s; check [agent] id "
			  "and key",
			  wel->party ? wel->party : "", a->cfg.id);
		return;
	}
	if (agent_directory_load(wel->directory_entry.data, wel->directory_entry.len, &a->broker_pk,
				 &dir, &m) != RETE_OK) {
		agent_log(a, "error",
			  "the broker's directory is not usable: %s; nothing is sealed "
			  "or verified until it is",
			  m.text);
		return;
	}
	agent_keys_own_check(a, dir);
	if (a->dir == NULL || a->dir->index <= dir->index) {
		agent_directory_free(&a->dir);
		a->dir = dir;
	} else {
		agent_directory_free(&dir);
	}
	snprintf(a->origin, sizeof(a->origin), "%s", wel->origin ? wel->origin : "");
	/* The largest frame the broker takes (0: an older broker that does not
	 * say; the outbox then assumes that broker's default). */
	a->max_frame = wel->max_frame;
	a->welcomed = true;
	a->net->backoff_ms = 0;
	refused_flush(a, false);
	a->net->refused_said = false;
	a->net->version_said = false;
	a->net->lost_said = false;
	agent_log(a, "info", "connected to %s (log '%s', directory of entry %" PRIu64 ")%s",
		  a->cfg.broker, a->origin, a->dir->index,
		  a->net->taken_over ? "; standing by: another agent with our key takes the "
				       "deliveries"
				     : "");
	/* A new connection: a sign that the log lost what it receipted may
	 * again submit the held messages (once). The epoch first: after a
	 * declared restore the witness takes the new epoch's checkpoint as its
	 * baseline instead of raising the alarm. */
	a->held_resubmitted = false;
	agent_witness_epoch(a, wel->epoch, wel->checkpoint);
	agent_witness_directory(a, wel->directory_entry.data, wel->directory_entry.len);
	agent_witness_on_welcome(a, wel->checkpoint);
	agent_outbox_on_welcome(a);
	agent_inbox_on_welcome(a);
}

uint64_t agent_net_ping_nonce(const agent *a)
{
	return a->net != NULL ? a->net->nonce : 0;
}

/* taken_over_put writes o (NULL: out of memory or not readable; freed
 * here) as the take-over record (AGENT_META_TAKEN_OVER); when it cannot,
 * a warning says why and then what it means (unsaid). */
static void taken_over_put(agent *a, json_t *o, const char *unsaid)
{
	char *js = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(o);
	rete_msg m = {{0}};
	if (js == NULL)
		rete_msg_set(&m, RETE_ENOMEM,
			     "the record of the take-over: out of memory, or not "
			     "readable");
	if (js == NULL ||
	    agent_db_put(a->db, AGENT_DB_META, AGENT_META_TAKEN_OVER, strlen(AGENT_META_TAKEN_OVER),
			 js, strlen(js), &m) != RETE_OK)
		agent_log(a, "warning", "%s; %s", m.text, unsaid);
	free(js);
}

/* taken_over_record keeps, for `rete status`, that the broker said at at
 * (its sentence, text) that another connection with our key took the
 * deliveries: meta AGENT_META_TAKEN_OVER (agent_db.h), with the other
 * connection's address taken from the sentence when it says one. */
static void taken_over_record(agent *a, int64_t at, const char *text)
{
	char when[32], from[128] = "";
	rete_time_format(at - at % 1000, when);
	const char *f = strstr(text, "(from "), *e = f ? strstr(f, ") said HELLO") : NULL;
	if (f && e && e - f - 6 < (ptrdiff_t)sizeof(from) && strncmp(f + 6, "an address", 10) != 0)
		snprintf(from, sizeof(from), "%.*s", (int)(e - f - 6), f + 6);
	json_t *o = json_object();
	json_object_set_new(o, "at", json_string(when));
	if (from[0])
		json_object_set_new(o, "from", json_string(from));
	json_object_set_new(o, "broker", json_string(text));
	taken_over_put(a, o,
		       "`rete status` will not say that another agent took this agency's "
		       "deliveries (this log and the metrics do)");
}

/* net_taken_over: the broker says another connection with our key said
 * HELLO and takes the deliveries (protocol 5). Two agents with one key put
 * an agency's referrals in two inboxes, one perhaps on a machine nobody
 * watches: said once as an error, and in the metrics, until a restart.
 * This agent does not take the deliveries back (its HELLOs, after every
 * reconnect, say standby), so the two do not flip at each reconnect; it
 * still sends its outbox, and takes whatever is still delivered to it
 * (what was in flight goes to the new connection: the broker sends it
 * again there; it comes back here only if no other connection is left). */
static void net_taken_over(agent *a, const Rete__Receipt *r)
{
	struct agent_net *n = a->net;
	if (n->taken_over) {
		agent_debug(a, "the broker says again that another connection took our "
			       "deliveries");
		return;
	}
	n->taken_over = true;
	rete_wire_standby(n->w);
	int64_t now = rete_now_ms();
	agent_metrics_taken_over(a, now);
	taken_over_record(a, now, r->error_text ? r->error_text : "");
	agent_log(a, "error",
		  "another agent with the key of %s took this agency's deliveries; the broker "
		  "says: %s. While that other agent is connected, referrals for %s go to it, "
		  "not here (until this agent is restarted): this one keeps sending its outbox "
		  "but does not take the deliveries back, also after a reconnect",
		  a->cfg.id, r->error_text ? r->error_text : "", a->cfg.id);
}

/* net_deliveries_back: a DELIVER came after the broker said another
 * connection took our deliveries (the broker delivers on one connection
 * only: the other one went). Said in the log and added to the record
 * (AGENT_META_TAKEN_OVER, "back"), so `rete status` stays true; the agent
 * still stands by until it is restarted. */
static void net_deliveries_back(agent *a, int64_t now)
{
	a->net->taken_back = true;
	char when[32];
	rete_time_format(now - now % 1000, when);
	rete_buf v = {0};
	rete_msg m = {{0}};
	json_t *o = NULL;
	if (agent_db_get(a->db, AGENT_DB_META, AGENT_META_TAKEN_OVER, strlen(AGENT_META_TAKEN_OVER),
			 &v, &m) == RETE_OK)
		o = json_loadb((const char *)v.data, v.len, 0, NULL);
	rete_buf_free(&v);
	if (json_is_object(o))
		json_object_set_new(o, "back", json_string(when));
	else {
		json_decref(o);
		o = NULL;
	}
	taken_over_put(a, o,
		       "`rete status` will still say that another agent has this agency's "
		       "deliveries");
	agent_log(a, "info",
		  "deliveries for %s come to this agent again: the other agent with its key went; "
		  "this one still stands by until it is restarted (another agent with the key "
		  "would take them without the broker telling this one)",
		  a->cfg.id);
}

static void net_frame(agent *a, const Rete__BrokerFrame *f)
{
	switch (f->command_case) {
	case RETE__BROKER_FRAME__COMMAND_WELCOME:
		agent_metrics_event(a, AM_WELCOME, rete_now_ms());
		net_welcome(a, f->welcome);
		break;
	case RETE__BROKER_FRAME__COMMAND_RECEIPT:
		agent_metrics_event(a, AM_RECEIPT, rete_now_ms());
		agent_outbox_on_receipt(a, f->receipt);
		break;
	case RETE__BROKER_FRAME__COMMAND_REFUSAL:
		agent_metrics_event(a, AM_REFUSAL, rete_now_ms());
		if (f->refusal->error == RETE__ERROR_CODE__ERROR_CODE_TAKEN_OVER)
			net_taken_over(a, f->refusal);
		else if (f->refusal->error == RETE__ERROR_CODE__ERROR_CODE_EXPIRED &&
			 strcmp(f->refusal->field ? f->refusal->field : "", "index") == 0 &&
			 (f->refusal->message_id == NULL || f->refusal->message_id[0] == '\0'))
			/* our ACK of an entry withdrawn at its expiry */
			agent_inbox_withdrawn(a, f->refusal);
		else
			agent_outbox_on_receipt(a, f->refusal);
		break;
	case RETE__BROKER_FRAME__COMMAND_DELIVER:
		agent_metrics_event(a, AM_DELIVERY, rete_now_ms());
		if (a->net->taken_over && !a->net->taken_back)
			net_deliveries_back(a, rete_now_ms());
		if (!a->welcomed || a->dir == NULL) {
			agent_log(a, "warning", "a delivery came before the directory; not acked");
			break;
		}
		agent_inbox_deliver(a, f->deliver);
		break;
	case RETE__BROKER_FRAME__COMMAND_RESULT:
		if (!agent_witness_on_result(a, f->result))
			agent_debug(a, "an answer to a question no longer asked");
		break;
	case RETE__BROKER_FRAME__COMMAND_PONG:
		agent_inbox_on_pong(a, f->pong->nonce);
		break;
	case RETE__BROKER_FRAME__COMMAND_PING:
	default:
		break;
	}
}

void agent_net_poll(agent *a, int64_t now)
{
	struct agent_net *n = a->net;
	rete_msg m = {{0}};

	if (n->w == NULL) {
		if (now >= n->reopen_at)
			net_open(a, now);
		return;
	}
	for (int i = 0; i < NET_BURST; i++) {
		Rete__BrokerFrame *f = NULL;
		rete_err err = rete_wire_recv(n->w, 0, &f, &m);
		if (err == RETE_ETIMEDOUT)
			break;
		if (err == RETE_EREFUSED) {
			uint64_t held = 0;
			if (!n->refused_said) {
				agent_log(a, "error",
					  "the broker refused our key: %s is not in its directory "
					  "with the key of %s; retrying with backoff",
					  a->cfg.id, a->cfg.key_path);
				n->refused = (rete_ratewin){0};
				rete_ratewin_admit(&n->refused, NET_REFUSED_AGAIN_MS, now, &held);
			} else {
				int64_t since = n->refused.rw_since;
				/* admitted: the window is over; its count and this
				 * refusal are said, and this line opens the next */
				if (rete_ratewin_admit(&n->refused, NET_REFUSED_AGAIN_MS, now,
						       &held))
					agent_log(
					    a, "error",
					    "the broker still refuses our key: %" PRIu64
					    " more refusals in the last %lld min (%s is not in "
					    "its directory with the key of %s); retrying with "
					    "backoff",
					    held + 1, (long long)((now - since) / 60000), a->cfg.id,
					    a->cfg.key_path);
			}
			n->refused_said = true;
			agent_net_backoff(a, now);
			return;
		}
		if (err == RETE_EVERSION) {
			/* Every frame of ours is refused the same way (a broker
			 * of another release): said once, as the error it is; the
			 * outbox waits, and ZeroMQ's reconnection says HELLO again
			 * to the upgraded broker. */
			if (!n->version_said)
				agent_log(
				    a, "error",
				    "broker %s: %s; meanwhile the outbox keeps what is to be sent",
				    a->cfg.broker, m.text);
			n->version_said = true;
			continue;
		}
		if (err != RETE_OK) {
			agent_log(a, "warning", "from the broker: %s", m.text);
			if (err == RETE_ENET) {
				agent_net_backoff(a, now);
				return;
			}
			continue;
		}
		net_frame(a, f);
		rete__broker_frame__free_unpacked(f, NULL);
		n->last_ping = now;
	}
	if (!a->welcomed && !n->silent_said && !n->refused_said && !n->version_said &&
	    now - n->waiting_since > NET_SILENT_MS) {
		agent_log(a, "warning",
			  "no answer from the broker at %s for %d s: is it running there, and is "
			  "%s its public key? Still trying",
			  a->cfg.broker, NET_SILENT_MS / 1000, a->cfg.broker_key_path);
		n->silent_said = true;
	}
	if (!rete_wire_connected(n->w)) {
		if (a->welcomed) {
			n->waiting_since = now;
			n->silent_said = false;
		}
		if (a->welcomed && !n->lost_said) {
			agent_log(a, "warning", "lost the broker at %s; reconnecting",
				  a->cfg.broker);
			n->lost_said = true;
		}
		a->welcomed = false;
	}
	if (a->welcomed && now - n->last_ping >= a->cfg.heartbeat_ms) {
		rete_wire_ping(n->w, ++n->nonce, &m);
		n->last_ping = now;
	}
}

int64_t agent_net_wait(const agent *a, int64_t now)
{
	const struct agent_net *n = a->net;
	if (n->w == NULL)
		return n->reopen_at > now ? n->reopen_at - now : 0;
	return 1000; /* handshake events are read at least every second */
}
