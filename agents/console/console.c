/* console.c — `rete console -c coord.ini [--listen ADDR]`: the web console.
 *
 * One process holds the party's broker connection and events subscription
 * (monitor_session.h: the same session, and the same monitor state, as
 * `rete monitor`) and serves, read-only, over rete_http:
 *   /, /panoramica     the overview page (static HTML; app.js fills it)
 *   /salute            the health page (each page: static/frame.html, the
 *                      head and navigation they share, around its own
 *                      static/NAME.html: send_page)
 *   /static/NAME       the embedded static files (agents/console/static/)
 *   /api/overview      monitor_to_json (what `rete monitor --json` prints)
 *                      with the directory's names and the time zone
 *   /api/health        the broker's latest health answer, the witnesses'
 *                      cosignatures on the latest stored checkpoint (and
 *                      the [console] witnesses policy: met, who is missing)
 *                      and the newest RFC 3161 time-stamp token
 *   /api/evidence      ?sender=ID&id=MESSAGE: the message's evidence bundle
 *                      (agents/cli/evidence.h, what `rete evidence export
 *                      -c` writes), as a download
 *   /api/events        Server-Sent Events: "update" whenever the state moved
 * Every answer carries a strict Content-Security-Policy (scripts and styles
 * from the console itself only: no inline script). Every page and API read
 * is written to the console's access record (store/access_log.h).
 *
 * It listens on 127.0.0.1:8480 unless told otherwise ([console] listen in
 * the configuration, or --listen). A listen address that is not loopback is
 * refused unless the console has TLS ([console] tls_cert, tls_key) and
 * accounts ([console] users): the network's referrals must not be shown to
 * whoever reaches that address.
 *
 * Against clients that hold connections (proto/httpd.h's limits): [console]
 * connections_per_address, header_timeout and stream_timeout; against one
 * address holding every live-update stream, streams_per_address; the stream
 * writes a heartbeat every CONSOLE_KEEPALIVE_MS (or stream_timeout / 4), so
 * a reader that vanished is found by a write within stream_timeout and a
 * heartbeat, and its place (CONSOLE_STREAMS_MAX) freed.
 *
 * The main thread runs the session (events, snapshots, health every few
 * seconds, the directory's names when the directory changes) under the
 * console's lock; the HTTP threads read under the same lock.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>
#include <zmq.h>

#include "access_log.h"
#include "accounts.h"
#include "audit_remote.h"
#include "checkpoint.h"
#include "codec.h"
#include "merkle.h"
#include "cli.h"
#include "cosign.h"
#include "evidence.h"
#include "console_assets.h"
#include "console_check.h"
#include "coord_config.h"
#include "duration.h"
#include "httpd.h"
#include "ini_file.h"
#include "json.h"
#include "lifecycle.h"
#include "monitor.h"
#include "monitor_session.h"
#include "report.h"
#include "wire.h"

#define CONSOLE_LISTEN_DEFAULT "127.0.0.1:8480"
#define CONSOLE_STREAMS_MAX    8
#define CONSOLE_KEEPALIVE_MS   4000 /* a stream's heartbeat, or stream_timeout / 4 */
#define CONSOLE_BATCH	       1000u

static volatile sig_atomic_t console_stop;

static void console_on_signal(int sig)
{
	(void)sig;
	console_stop = 1;
}

struct console {
	struct mon_ctx mc;
	pthread_mutex_t lock;
	pthread_cond_t moved;
	uint64_t version; /* bumped whenever what the pages show moved */
	/* the steering group's version: the time (ms) of the latest health
	 * refresh, every MON_HEALTH_EVERY_MS whatever happened; version
	 * counts the drains of events, and two readings of it gave how many
	 * referrals came in a quiet network */
	int64_t health_at;
	bool stopping;
	int streams;
	json_t *health;		     /* the latest health answer, or NULL */
	json_t *names;		     /* party id -> name, from the directory in force */
	json_t *services;	     /* service code -> name */
	json_t *keys;		     /* agency id -> base64 Ed25519 key, from the directory */
	json_t *trust;		     /* witnesses and time-stamping (console_trust), or NULL */
	char *witnesses_path;	     /* [console] witnesses: a witness policy file */
	rete_witness_policy *policy; /* loaded from it, or NULL */
	bool dir_dirty;		     /* a directory entry was logged: read the names again */
	rete_access_log *access;
	unsigned long record_fails; /* reads refused in a row: the record took no line */
	char listen[RETE_HTTP_ADDR_MAX];
	char *access_path;
	char *users_path;		    /* [console] users: the accounts file, or NULL */
	char *steering;			    /* [console] steering_group: "USER, USER", or NULL */
	char *tls_cert_path, *tls_key_path; /* [console] tls_cert, tls_key */
	bool auth;			    /* logins required (accounts exist) */
	bool tls;
	/* [console] connections_per_address, header_timeout, stream_timeout
	 * (0: the default of rete_http_limits_default; per_address_set: the
	 * key was given, 0 there meaning no limit) */
	unsigned per_address, header_ms, stall_ms;
	bool per_address_set;
	unsigned heartbeat_ms; /* how often a stream writes when nothing moved */
	/* [console] streams_per_address (streams_set: the key was given, 0
	 * there meaning no limit); streams_per_addr is the one in force (its
	 * default by the listen address, console_serve) */
	unsigned streams_key, streams_per_addr;
	bool streams_set;
	char stream_peer[CONSOLE_STREAMS_MAX][RETE_HTTP_ADDR_MAX]; /* "": a free slot */
	/* the lines of listen, users, tls_cert, tls_key, witnesses, access_log,
	 * steering_group in the file (console_key_line), 0: not given */
	int key_line[7];
	bool console_section; /* the file has a [console] section */
};

/* ---- the configuration's [console] section ------------------------------------ */

struct console_ini {
	struct console *c;
	char dir[4096];
	rete_err err;	     /* out of memory: the reading stops */
	rete_check_list *pr; /* every problem, with its line */
	int line;	     /* the line the handler was given */
	rete_ini_keys given; /* the [console] keys given so far */
	char last[32];	     /* the [console] key of the previous call ("": none) */
};

/* console_ini_ms reads the duration value of [console] name into *out, from
 * 1 s to max_s seconds. */
static bool console_ini_ms(struct console_ini *p, const char *name, const char *value,
			   unsigned max_s, unsigned *out)
{
	rete_duration d;
	rete_msg dm;
	if (rete_duration_parse(value, &d, &dm) != RETE_OK || d.working_days != 0 || d.ms < 1000 ||
	    d.ms > (int64_t)max_s * 1000) {
		rete_check_add(p->pr,
			       "[console] %s: '%s' is not a duration from 1s to %us (e.g. 10s, 2m)",
			       name, value, max_s);
		return false;
	}
	*out = (unsigned)d.ms;
	return true;
}

/* console_ini_count reads the value of [console] name, a number from 0
 * (no limit) to max of what the console serves at once, into *out. */
static bool console_ini_count(struct console_ini *p, const char *name, const char *value,
			      unsigned max, const char *what, unsigned *out)
{
	char *end = NULL;
	errno = 0;
	unsigned long n = value[0] >= '0' && value[0] <= '9' ? strtoul(value, &end, 10) : 0;
	if (end == NULL || *end != '\0' || errno != 0 || n > max) {
		rete_check_add(p->pr,
			       "[console] %s: '%s' is not a number from 0 (no limit) to %u (the "
			       "console serves %u %s at once)",
			       name, value, max, max, what);
		return false;
	}
	*out = (unsigned)n;
	return true;
}

/* list_next: the next name of a list "a, b, c" (commas between, spaces
 * around taken off) from *p into out (n bytes), *p moved past it; false at
 * the end. A name longer than n - 1 is cut. */
static bool list_next(const char **p, char *out, size_t n)
{
	const char *s = *p + strspn(*p, ", \t");
	size_t len = strcspn(s, ",");
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	if (len == 0)
		return false;
	snprintf(out, n, "%.*s", (int)len, s);
	*p = s + len;
	return true;
}

/* console_ini_users checks the value of [console] name, a list of user
 * names. */
static bool console_ini_users(struct console_ini *p, const char *name, const char *value)
{
	char u[CONSOLE_USER_MAX + 2];
	for (const char *q = value; list_next(&q, u, sizeof(u));)
		if (!console_user_valid(u)) {
			rete_check_add(p->pr,
				       "[console] %s: '%.64s' is not a user name (a-z, 0-9, '.', "
				       "'_', '-'); give the accounts' names, separated by commas",
				       name, u);
			return false;
		}
	return true;
}

/* console_key_line notes the line [console] key was given on, for the
 * checks done after reading (console_settle) to say FILE:LINE. */
static const char *const console_line_keys[7] = {
    "listen", "users", "tls_cert", "tls_key", "witnesses", "access_log", "steering_group"};

static void console_key_line(struct console *c, const char *key, int line)
{
	for (size_t i = 0; i < 7; i++)
		if (strcmp(console_line_keys[i], key) == 0)
			c->key_line[i] = line;
}

static int console_key_line_of(const struct console *c, const char *key)
{
	for (size_t i = 0; i < 7; i++)
		if (strcmp(console_line_keys[i], key) == 0)
			return c->key_line[i];
	return 0;
}

static int console_ini_handler(void *user, const char *section, const char *name, const char *value)
{
	struct console_ini *p = user;
	if (p->err != RETE_OK)
		return 0;
	if (strcmp(section, "console") != 0) {
		p->last[0] = '\0';
		return 1;
	}
	p->c->console_section = true;
	rete_check_at(p->pr, p->line);
	/* an indented line after a key: inih gives it as that key again, its
	 * text the value (a continuation, as broker.ini's wrapped lists) */
	bool cont = rete_ini_indented() && p->last[0] != '\0' && strcmp(p->last, name) == 0;
	snprintf(p->last, sizeof(p->last), "%s", name);
	if (cont && strcmp(name, "steering_group") == 0) {
		/* the list goes on: its names join the line's before, as
		 * broker.ini's (never the last line alone: the first line's
		 * names would lose the steering group's limits) */
		char *joined = NULL;
		if (!console_ini_users(p, name, value) || p->c->steering == NULL)
			return 1; /* said already, or the first line was refused */
		if (asprintf(&joined, "%s, %s", p->c->steering, value) < 0) {
			p->err = RETE_ENOMEM;
			return 0;
		}
		free(p->c->steering);
		p->c->steering = joined;
		return 1;
	}
	if (cont) {
		rete_check_add(p->pr,
			       "[console] %s: a value on one line only; this indented line "
			       "continues it (only steering_group's list may go on over indented "
			       "lines): write the value on the key's line, or remove the indent "
			       "if this line is a key of its own",
			       name);
		return 1;
	}
	if (rete_ini_key_again(&p->given, name)) {
		rete_check_add(p->pr,
			       "[console] %s: given twice; give each key once (a steering "
			       "group's list may go on over indented lines)",
			       name);
		/* a steering group given twice keeps no list: the start is
		 * refused anyway, and nothing is taken silently */
		return 1;
	}
	console_key_line(p->c, name, p->line);
	if (strcmp(name, "connections_per_address") == 0) {
		if (!console_ini_count(p, name, value, RETE_HTTP_CONNS_MAX, "connections",
				       &p->c->per_address))
			return 1;
		p->c->per_address_set = true;
	} else if (strcmp(name, "streams_per_address") == 0) {
		if (!console_ini_count(p, name, value, CONSOLE_STREAMS_MAX, "live-update streams",
				       &p->c->streams_key))
			return 1;
		p->c->streams_set = true;
	} else if (strcmp(name, "header_timeout") == 0) {
		console_ini_ms(p, name, value, 300, &p->c->header_ms);
	} else if (strcmp(name, "stream_timeout") == 0) {
		console_ini_ms(p, name, value, 3600, &p->c->stall_ms);
	} else if (strcmp(name, "listen") == 0) {
		snprintf(p->c->listen, sizeof(p->c->listen), "%s", value);
	} else if (strcmp(name, "access_log") == 0) {
		free(p->c->access_path);
		p->c->access_path = rete_ini_abs_path(p->dir, value);
	} else if (strcmp(name, "users") == 0) {
		free(p->c->users_path);
		p->c->users_path = rete_ini_abs_path(p->dir, value);
	} else if (strcmp(name, "tls_cert") == 0) {
		free(p->c->tls_cert_path);
		p->c->tls_cert_path = rete_ini_abs_path(p->dir, value);
	} else if (strcmp(name, "tls_key") == 0) {
		free(p->c->tls_key_path);
		p->c->tls_key_path = rete_ini_abs_path(p->dir, value);
	} else if (strcmp(name, "witnesses") == 0) {
		free(p->c->witnesses_path);
		p->c->witnesses_path = rete_ini_abs_path(p->dir, value);
	} else if (strcmp(name, "steering_group") == 0) {
		if (!console_ini_users(p, name, value))
			return 1;
		free(p->c->steering);
		if ((p->c->steering = strdup(value)) == NULL) {
			p->err = RETE_ENOMEM;
			return 0;
		}
	} else {
		rete_check_add(p->pr,
			       "[console] %s: unknown key; the keys are listen, access_log, "
			       "users, steering_group, tls_cert, tls_key, witnesses, "
			       "connections_per_address, streams_per_address, header_timeout and "
			       "stream_timeout",
			       name);
	}
	return 1;
}

/* console_ini_read reads [console] of path into c, every problem of its
 * keys listed in pr with its line; whole: the file's lines that are no
 * `key = value` too (when no other reader of the file lists them). Errors: RETE_EINVAL (pr has
 * them), RETE_EIO (the file cannot be read; m says why), RETE_ENOMEM. */
static rete_err console_ini_read(struct console *c, const char *path, bool whole,
				 rete_check_list *pr, rete_msg *m)
{
	struct console_ini p = {.c = c, .pr = pr};
	char *abs = NULL;
	int syntax = 0, long_line = 0;
	size_t before = pr->n;
	rete_err err = rete_ini_read_at(path, console_ini_handler, &p, &p.err, &p.line, &syntax,
					&long_line, &abs, p.dir, sizeof(p.dir), m);
	if (err == RETE_OK && whole)
		rete_ini_syntax_list(syntax, long_line, pr);
	if (err == RETE_OK && c->access_path == NULL &&
	    (c->access_path = rete_ini_abs_path(p.dir, "console-access.jsonl")) == NULL)
		err = rete_msg_set(m, RETE_ENOMEM, "out of memory");
	free(abs);
	rete_check_at(pr, 0);
	if (err == RETE_ENOMEM && p.err == RETE_ENOMEM)
		rete_msg_set(m, RETE_ENOMEM, "out of memory");
	if (err != RETE_OK)
		return err;
	return pr->n == before ? RETE_OK : RETE_EINVAL;
}

/* console_settings_free frees what console_ini_read and console_settle
 * put in c (the paths, the steering group, the witness policy). */
static void console_settings_free(struct console *c)
{
	rete_witness_policy_free(&c->policy);
	free(c->witnesses_path);
	free(c->access_path);
	free(c->users_path);
	free(c->steering);
	free(c->tls_cert_path);
	free(c->tls_key_path);
	c->witnesses_path = c->access_path = c->users_path = c->steering = NULL;
	c->tls_cert_path = c->tls_key_path = NULL;
}

/* console_problems_say prints pr's sentences on stderr, "who: FILE:LINE:
 * ...", and the count. */
static void console_problems_say(const char *who, const char *path, const rete_check_list *pr)
{
	for (size_t i = 0; i < pr->n; i++) {
		if (pr->lines[i] == RETE_CHECK_NOT_FILE)
			fprintf(stderr, "%s: %s\n", who, pr->items[i]);
		else if (pr->lines[i] > 0)
			fprintf(stderr, "%s: %s:%d: %s\n", who, path, pr->lines[i], pr->items[i]);
		else
			fprintf(stderr, "%s: %s: %s\n", who, path, pr->items[i]);
	}
	if (pr->n > 1)
		fprintf(stderr, "%s: %s: %zu problems; nothing was started\n", who, path, pr->n);
}

/* console_ini_load is console_ini_read of the whole file for a program:
 * the problems are printed after who (the command's name), and RETE_EINVAL
 * returned with m empty. */
static rete_err console_ini_load(struct console *c, const char *path, const char *who, rete_msg *m)
{
	rete_check_list pr = {0};
	rete_err err = console_ini_read(c, path, true, &pr, m);
	if (err == RETE_EINVAL) {
		console_problems_say(who, path, &pr);
		m->text[0] = '\0';
	}
	rete_check_free(&pr);
	return err;
}

/* ---- the directory's names ------------------------------------------------------ */

/* the parties that cosign checkpoints: agencies (not the broker, the
 * coordinators or the auditors) */
static bool console_is_agency(Rete__PartyKind k)
{
	return k != RETE__PARTY_KIND__PARTY_KIND_COORDINATOR &&
	       k != RETE__PARTY_KIND__PARTY_KIND_AUDITOR &&
	       k != RETE__PARTY_KIND__PARTY_KIND_BROKER &&
	       k != RETE__PARTY_KIND__PARTY_KIND_UNSPECIFIED;
}

static void console_key_keep(json_t *keys, const char *id, const uint8_t pk[RETE_PK_LEN])
{
	char b64[sodium_base64_ENCODED_LEN(RETE_PK_LEN, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(b64, sizeof(b64), pk, RETE_PK_LEN, sodium_base64_VARIANT_ORIGINAL);
	json_object_set_new(keys, id, json_string(b64));
}

/* console_directory reads the log's entries (from the broker) and keeps the
 * names of the latest directory: parties and services. */
static void console_directory(struct console *c, uint64_t size)
{
	json_t *names = json_object(), *services = json_object(), *keys = json_object();
	bool found = false;

	for (uint64_t lo = 0; names && services && keys && lo < size;) {
		Rete__Query q = RETE__QUERY__INIT;
		Rete__EntriesQuery eq = RETE__ENTRIES_QUERY__INIT;
		Rete__BrokerFrame *f = NULL;
		eq.from = lo;
		eq.count = size - lo < CONSOLE_BATCH ? size - lo : CONSOLE_BATCH;
		q.what_case = RETE__QUERY__WHAT_ENTRIES;
		q.entries = &eq;
		if (rete_wire_call(c->mc.dealer, &q, c->mc.cfg.timeout_ms, &f, NULL) != RETE_OK ||
		    f->command_case != RETE__BROKER_FRAME__COMMAND_RESULT ||
		    f->result->answer_case != RETE__QUERY_RESULT__ANSWER_ENTRIES ||
		    f->result->entries->from != lo || f->result->entries->n_entries == 0) {
			if (f != NULL)
				rete__broker_frame__free_unpacked(f, NULL);
			break;
		}
		const Rete__Entries *e = f->result->entries;
		for (size_t i = 0; i < e->n_entries; i++, lo++) {
			Rete__LogEntry *le =
			    rete__log_entry__unpack(NULL, e->entries[i].len, e->entries[i].data);
			Rete__SignedMessage *sm =
			    le ? rete__signed_message__unpack(NULL, le->signed_message.len,
							      le->signed_message.data)
			       : NULL;
			Rete__Message *msg =
			    sm ? rete__message__unpack(NULL, sm->message.len, sm->message.data)
			       : NULL;
			if (msg && msg->body_case == RETE__MESSAGE__BODY_DIRECTORY &&
			    msg->directory) {
				json_object_clear(names);
				json_object_clear(services);
				json_object_clear(keys);
				found = true;
				for (size_t k = 0; k < msg->directory->n_parties; k++) {
					const Rete__Party *pa = msg->directory->parties[k];
					if (console_is_agency(pa->kind) &&
					    pa->public_key.len == RETE_PK_LEN)
						console_key_keep(keys, pa->id, pa->public_key.data);
					if (pa->name && pa->name[0])
						json_object_set_new(names, pa->id,
								    json_string(pa->name));
					for (size_t s = 0; s < pa->n_services; s++)
						if (pa->services[s]->name &&
						    pa->services[s]->name[0])
							json_object_set_new(
							    services, pa->services[s]->code,
							    json_string(pa->services[s]->name));
				}
			}
			if (msg)
				rete__message__free_unpacked(msg, NULL);
			if (sm)
				rete__signed_message__free_unpacked(sm, NULL);
			if (le)
				rete__log_entry__free_unpacked(le, NULL);
		}
		rete__broker_frame__free_unpacked(f, NULL);
	}
	pthread_mutex_lock(&c->lock);
	if (found && names && services && keys) {
		json_decref(c->names);
		json_decref(c->services);
		json_decref(c->keys);
		c->names = names;
		c->services = services;
		c->keys = keys;
		names = services = keys = NULL;
		c->version++;
		pthread_cond_broadcast(&c->moved);
	}
	pthread_mutex_unlock(&c->lock);
	json_decref(names);
	json_decref(services);
	json_decref(keys);
}

static void console_on_event(void *arg, const Rete__Event *ev)
{
	struct console *c = arg;
	if (ev->kind != NULL && strcmp(ev->kind, "directory") == 0)
		c->dir_dirty = true;
}

/* console_health asks the broker for its health and keeps the answer. */
static void console_health(struct console *c)
{
	Rete__BrokerFrame *f = NULL;
	rete_msg m = {{0}};
	json_t *j = NULL;

	if (coord_query(&c->mc.cfg, c->mc.dealer, RETE__QUERY__WHAT_HEALTH, &f, &m) == RETE_OK) {
		const Rete__Health *h = f->result->health;
		j = rete_pb_to_json(&h->base);
		pthread_mutex_lock(&c->lock);
		monitor_set_agencies(c->mc.mo, h->agencies, h->n_agencies, NULL);
		pthread_mutex_unlock(&c->lock);
		rete__broker_frame__free_unpacked(f, NULL);
	} else {
		j = json_pack("{s:b, s:[s]}", "ok", 0, "problems", m.text);
	}
	int64_t at = rete_now_ms();
	if (j != NULL)
		json_object_set_new(j, "askedAt", json_integer(at));
	pthread_mutex_lock(&c->lock);
	json_decref(c->health);
	c->health = j;
	c->health_at = at;
	c->version++;
	pthread_cond_broadcast(&c->moved);
	pthread_mutex_unlock(&c->lock);
}

/* ---- witnesses and time-stamping -------------------------------------------------- */

/* trust_ask asks q on the session's connection: *f gets an answer of kind
 * want (the caller frees it), or the error, with the broker's *code. */
static rete_err trust_ask(struct console *c, Rete__Query *q, Rete__QueryResult__AnswerCase want,
			  Rete__BrokerFrame **f, Rete__ErrorCode *code, rete_msg *m)
{
	rete_err e = rete_wire_call(c->mc.dealer, q, c->mc.cfg.timeout_ms, f, m);
	if (e != RETE_OK) {
		*f = NULL;
		return e;
	}
	if ((*f)->command_case != RETE__BROKER_FRAME__COMMAND_RESULT || (*f)->result == NULL) {
		rete__broker_frame__free_unpacked(*f, NULL);
		*f = NULL;
		return rete_msg_set(m, RETE_EREFUSED,
				    "the broker answered with something else than the answer to "
				    "our query");
	}
	if ((e = coord_answer(*f, want, code, m)) != RETE_OK)
		*f = NULL;
	return e;
}

/* witness_one checks name's cosignature with pk on the note and files it
 * under cosigners (valid, with its time), invalid (with why) or missing. */
static bool witness_one(const char *note, const char *name, const rete_pubkey *pk, json_t *w)
{
	uint64_t t = 0;
	rete_msg m = {{0}};
	rete_err e = rete_cosign_verify(note, strlen(note), name, pk, &t, &m);
	if (e == RETE_OK) {
		json_array_append_new(
		    json_object_get(w, "cosigners"),
		    json_pack("{s:s, s:I}", "id", name, "at", (json_int_t)(t * 1000)));
		return true;
	}
	if (e == RETE_ENOENT)
		json_array_append_new(json_object_get(w, "missing"), json_string(name));
	else
		json_array_append_new(json_object_get(w, "invalid"),
				      json_pack("{s:s, s:s}", "id", name, "why", m.text));
	return false;
}

/* trust_witnesses: the cosignatures on the latest stored checkpoint,
 * checked with the policy's keys ([console] witnesses) or, without one,
 * with the keys of the directory's agencies. */
static json_t *trust_witnesses(struct console *c)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__CheckpointQuery cq = RETE__CHECKPOINT_QUERY__INIT;
	Rete__BrokerFrame *f = NULL;
	rete_msg m = {{0}};
	rete_checkpoint cp;
	rete_pubkey bk;
	json_t *w = json_pack("{s:[], s:[], s:[]}", "cosigners", "missing", "invalid");

	if (w == NULL)
		return NULL;
	q.what_case = RETE__QUERY__WHAT_CHECKPOINT;
	q.checkpoint = &cq;
	if (trust_ask(c, &q, RETE__QUERY_RESULT__ANSWER_CHECKPOINT, &f, NULL, &m) != RETE_OK) {
		json_object_set_new(w, "problem", json_string(m.text));
		return w;
	}
	const char *note = f->result->checkpoint ? f->result->checkpoint : "";
	if (rete_checkpoint_parse(note, strlen(note), &cp, &m) != RETE_OK ||
	    rete_keyfile_load_public(c->mc.cfg.broker_key_path, &bk, &m) != RETE_OK ||
	    rete_checkpoint_verify(note, strlen(note), cp.origin, &bk, &cp, &m) != RETE_OK) {
		char why[700];
		snprintf(why, sizeof(why), "the latest checkpoint does not verify: %s", m.text);
		json_object_set_new(w, "problem", json_string(why));
		rete__broker_frame__free_unpacked(f, NULL);
		return w;
	}
	json_object_set_new(w, "checkpointSize", json_integer((json_int_t)cp.size));
	if (c->policy != NULL) {
		size_t n = rete_witness_policy_count(c->policy), ok = 0;
		for (size_t i = 0; i < n; i++)
			ok += witness_one(note, rete_witness_policy_name(c->policy, i),
					  rete_witness_policy_key(c->policy, i), w);
		size_t quorum = rete_witness_policy_quorum(c->policy);
		rete_msg pm = {{0}};
		rete_witness_policy_check(c->policy, note, strlen(note), &pm);
		json_object_set_new(w, "policy",
				    json_pack("{s:I, s:I, s:b, s:s}", "witnesses", (json_int_t)n,
					      "quorum", (json_int_t)quorum, "met", ok >= quorum,
					      "text", pm.text));
	} else {
		json_t *keys;
		pthread_mutex_lock(&c->lock);
		keys = json_deep_copy(c->keys);
		pthread_mutex_unlock(&c->lock);
		const char *id;
		json_t *v;
		json_object_foreach(keys, id, v)
		{
			uint8_t *ed = NULL;
			size_t n = 0;
			rete_pubkey pk;
			if (rete_b64_decode(json_string_value(v), &ed, &n) == RETE_OK &&
			    n == RETE_PK_LEN && rete_pubkey_from_ed(&pk, ed, NULL) == RETE_OK)
				witness_one(note, id, &pk, w);
			free(ed);
		}
		json_decref(keys);
	}
	rete__broker_frame__free_unpacked(f, NULL);
	return w;
}

/* trust_timestamp: the newest RFC 3161 token's checkpoint size and time;
 * the broker answers NOT_FOUND when it asks no TSA (or has no token yet:
 * its sentence says which). */
static json_t *trust_timestamp(struct console *c)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__TimestampQuery tq = RETE__TIMESTAMP_QUERY__INIT;
	Rete__BrokerFrame *f = NULL;
	Rete__ErrorCode code = 0;
	rete_msg m = {{0}};
	json_t *t;

	q.what_case = RETE__QUERY__WHAT_TIMESTAMP;
	q.timestamp = &tq;
	if (trust_ask(c, &q, RETE__QUERY_RESULT__ANSWER_TIMESTAMP, &f, &code, &m) != RETE_OK)
		return json_pack(
		    "{s:b, s:s}", "stamped", 0,
		    code == RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND ? "none" : "problem", m.text);
	t = json_pack("{s:b, s:I, s:I}", "stamped", 1, "size",
		      (json_int_t)f->result->timestamp->size, "genTime",
		      (json_int_t)f->result->timestamp->gen_time);
	rete__broker_frame__free_unpacked(f, NULL);
	return t;
}

static void console_trust(struct console *c)
{
	json_t *w = trust_witnesses(c), *t = trust_timestamp(c);
	json_t *o = json_object();
	if (o != NULL) {
		json_object_set_new(o, "witnesses", w ? w : json_null());
		json_object_set_new(o, "timestamp", t ? t : json_null());
	} else {
		json_decref(w);
		json_decref(t);
	}
	pthread_mutex_lock(&c->lock);
	json_decref(c->trust);
	c->trust = o;
	pthread_mutex_unlock(&c->lock);
}

/* ---- the HTTP side -------------------------------------------------------------- */

static bool console_record_as(struct console *c, const char *who, const char *what);

/* console_problem_code names the problem of an answer that is not ok in
 * its X-Rete-Problem header ("period", "broker", ...): the pages show the
 * sentence of their catalogue for it (texts.js, "api.CODE"), in the
 * reader's language, and after it the body's English sentence, as the
 * detail for IT. */
static void console_problem_code(rete_http_answer *a, const char *code)
{
	rete_http_header(a, "X-Rete-Problem", code);
}

static void answer_json(rete_http_answer *a, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (s == NULL) {
		a->status = 500;
		rete_http_printf(a, "rete console: out of memory while answering; try again\n");
		return;
	}
	a->content_type = "application/json; charset=utf-8";
	rete_http_append(a, s, strlen(s));
	free(s);
}

static const console_asset *asset_find(const char *name)
{
	for (const console_asset *x = console_assets; x->name != NULL; x++)
		if (strcmp(x->name, name) == 0)
			return x;
	return NULL;
}

static void send_asset(rete_http_answer *a, const char *name)
{
	const console_asset *x = asset_find(name);
	if (x == NULL) {
		a->status = 404;
		rete_http_printf(a, "rete console: there is no file %.100s here\n", name);
		return;
	}
	a->content_type = x->content_type;
	rete_http_append(a, (const char *)x->data, x->len);
}

/* the lang argument, when given, is "it" or "en" (the pages read it) */
static bool lang_ok(const rete_http_req *rq, rete_http_answer *a)
{
	const char *l = rete_http_arg(rq, "lang");
	if (l == NULL || strcmp(l, "it") == 0 || strcmp(l, "en") == 0)
		return true;
	a->status = 400;
	rete_http_printf(a,
			 "rete console: lang=%.40s is not a language of the console; use lang=it "
			 "or lang=en\n",
			 l);
	return false;
}

/* ---- logins ------------------------------------------------------------------------- */

#define SESSION_COOKIE "rete_session"

/* console_host_ok: rq's Host names a loopback address (127.0.0.0/8, ::1)
 * or localhost, with any port. Without accounts the console listens on
 * loopback only, and a page of another site whose name was made to resolve
 * to 127.0.0.1 (DNS rebinding) would otherwise read it as its own origin. */
static bool console_host_ok(const rete_http_req *rq)
{
	const char *host = rete_http_req_header(rq, "Host");
	char name[RETE_HTTP_ADDR_MAX];
	size_t n;
	if (host == NULL)
		return false;
	if (host[0] == '[') {
		const char *end = strchr(host, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return false;
		n = (size_t)(end - host - 1);
		host++;
	} else {
		n = strcspn(host, ":");
	}
	if (n == 0 || n >= sizeof(name))
		return false;
	memcpy(name, host, n);
	name[n] = '\0';
	if (strcasecmp(name, "localhost") == 0)
		return true;
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, name, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, name, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* The console's pages. static/NAME.html holds a page's own part (its
 * <main>); static/frame.html what they all share (the head, the header
 * with the navigation, the footer), with markers send_page fills in:
 * @title@, @page@ (the NAME), @chart@ (the chart library's script, for the
 * pages that draw), @here:NAME@ (class="here" on this page's link),
 * @signout@ (the sign-out link, with accounts) and @main@ (the page's
 * part). The first is the page of "/". */
static const struct console_page {
	const char *path;  /* "/salute" */
	const char *name;  /* "salute": its file and its body's data-page */
	const char *title; /* after "rete · " */
	bool chart;	   /* loads /lib/chart.min.js */
} console_pages[] = {
    {"/panoramica", "panoramica", "Panoramica", false},
    {"/flussi", "flussi", "Flussi", true},
    {"/andamento", "andamento", "Andamento", true},
    {"/rapporto", "rapporto", "Rapporto", false},
    {"/caso", "caso", "Caso", false},
    {"/salute", "salute", "Salute", false},
};

/* next_ok: s is a page of the console to go back to after the sign-in: a
 * path ("/caso?case=mn-2026-0999&lang=it") of letters, digits and
 * / ? = & . , _ : -, at most 200, not "//" (another site's address) */
static bool next_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;
	if (n < 1 || n > 200 || s[0] != '/' || s[1] == '/' ||
	    strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/?=&.,_:-") !=
		n)
		return false;
	/* a page, with its query: not /api/..., /logout or a file, which a
	 * link would have the browser fetch in the user's name at sign-in */
	size_t path = strcspn(s, "?");
	if (path == 1)
		return true; /* "/" */
	for (size_t i = 0; i < sizeof(console_pages) / sizeof(console_pages[0]); i++)
		if (strlen(console_pages[i].path) == path &&
		    strncmp(s, console_pages[i].path, path) == 0)
			return true;
	return false;
}

/* page_url writes rq's path and the pages' query arguments it has into out
 * (n bytes): "" when that is no next_ok page */
static void page_url(const rete_http_req *rq, char *out, size_t n)
{
	static const char *const keys[] = {"case", "from", "to", "by", "months", "step", "lang"};
	size_t len = (size_t)snprintf(out, n, "%s", rq->path);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]) && len < n; i++) {
		const char *v = rete_http_arg(rq, keys[i]);
		if (v != NULL)
			len += (size_t)snprintf(out + len, n - len, "%c%s=%s",
						strchr(out, '?') ? '&' : '?', keys[i], v);
	}
	if (len >= n || !next_ok(out))
		out[0] = '\0';
}

/* url_put appends s (a next_ok text) to out (n bytes), as a query argument's value */
static void url_put(char *out, size_t n, const char *s)
{
	size_t len = strlen(out);
	for (; *s && len + 4 < n; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '/' || ch == '.' || ch == '_' || ch == '-')
			out[len++] = (char)ch;
		else
			len += (size_t)snprintf(out + len, n - len, "%%%02X", ch);
	}
	out[len] = '\0';
}

/* how a read came (console_who): a person's (a page opened, a case asked
 * for, a form sent), or one a page made by itself at an update of its live
 * stream (X-Rete-Auto: 1, app.js), the first since the person's last use
 * or a further one */
enum who_use { WHO_PERSON, WHO_AUTO_FIRST, WHO_AUTO_AGAIN };

/* console_who: the signed-in user of rq (into user), or false with the
 * answer set: a page is sent to /login, anything else gets a 401. Without
 * accounts everyone is let in, as the peer's address. A read with
 * X-Rete-Auto: 1 (a page refreshing itself) does not restart the session's
 * idle time; use (may be NULL) says which it was: the routes a page
 * refreshes (overview, health: route, CONSOLE_AUTO_*) record each route's
 * first such read after a use, not every refresh. */
static bool console_who(struct console *c, const rete_http_req *rq, rete_http_answer *a, bool page,
			char user[CONSOLE_USER_MAX + 1], enum who_use *use, unsigned route)
{
	char token[CONSOLE_TOKEN_HEX + 2];
	const char *ck = rete_http_req_header(rq, "Cookie");
	const char *au = rete_http_req_header(rq, "X-Rete-Auto");
	bool autom = !page && au != NULL && strcmp(au, "1") == 0, first = false;

	if (use != NULL)
		*use = WHO_PERSON;
	if (!c->auth) {
		if (!console_host_ok(rq)) {
			a->status = 421;
			rete_http_printf(
			    a,
			    "rete console: Host '%.100s' is not this console's address; "
			    "without accounts it answers only 127.0.0.1, [::1] or "
			    "localhost (another name that resolves here is a page of "
			    "another site trying to read it)\n",
			    rete_http_req_header(rq, "Host") ? rete_http_req_header(rq, "Host")
							     : "");
			return false;
		}
		snprintf(user, CONSOLE_USER_MAX + 1, "%s", rq->peer);
		return true;
	}
	if (ck != NULL && strlen(ck) < 4096 &&
	    console_cookie(ck, SESSION_COOKIE, token, sizeof(token)) &&
	    (!autom	   ? console_session_user(token, rete_now_ms(), user)
	     : use != NULL ? console_session_auto(token, rete_now_ms(), user, route, &first)
			   : console_session_peek(token, rete_now_ms(), user))) {
		if (use != NULL && autom)
			*use = first ? WHO_AUTO_FIRST : WHO_AUTO_AGAIN;
		return true;
	}
	if (page) {
		/* the sign-in then leads back to the page asked, its query kept */
		char here[210], loc[256] = "/login";
		page_url(rq, here, sizeof(here));
		if (here[0] != '\0' && strcmp(here, "/") != 0) {
			snprintf(loc, sizeof(loc), "/login?next=");
			url_put(loc, sizeof(loc), here);
		}
		a->status = 303;
		rete_http_header(a, "Location", loc);
		rete_http_printf(a, "rete console: sign in first, at /login\n");
	} else {
		a->status = 401;
		rete_http_printf(a, "rete console: sign in first, at /login (no session, or it "
				    "ended)\n");
	}
	return false;
}

/* console_steering: user is an account of the steering group ([console]
 * steering_group), which sees the network's totals but not a case's
 * history or a message's evidence (data minimisation: who sees what is in
 * docs/coordinator.md). Without accounts there are no roles. */
static bool console_steering(const struct console *c, const char *user)
{
	char u[CONSOLE_USER_MAX + 2];
	if (!c->auth || c->steering == NULL)
		return false;
	for (const char *q = c->steering; list_next(&q, u, sizeof(u));)
		if (strcmp(u, user) == 0)
			return true;
	return false;
}

/* console_case_refused: true (with the 403 in a and the refusal in the
 * access record, as what) when user may not read a case or its evidence */
static bool console_case_refused(struct console *c, const char *user, rete_http_answer *a,
				 const char *what)
{
	char rec[300];
	if (!console_steering(c, user))
		return false;
	a->status = 403;
	console_problem_code(a, "steering");
	rete_http_printf(a,
			 "rete console: %s is an account of the steering group ([console] "
			 "steering_group): a case's history and a message's evidence are for the "
			 "coordinator and the auditor; the steering group's pages are Panoramica, "
			 "Flussi, Andamento, Rapporto and Salute\n",
			 user);
	snprintf(rec, sizeof(rec), "%s refused: steering group", what);
	console_record_as(c, user, rec);
	return true;
}

/* console_record_as writes the access record's line for a read of what
 * by who: false when it cannot (a full disk, a file it cannot open), and
 * then the read is not made (console_unrecorded), as `rete evidence
 * export` and the broker refuse theirs. The console's log says it once,
 * and when the record takes lines again, how many reads were refused. */
static bool console_record_as(struct console *c, const char *who, const char *what)
{
	rete_access_rec r = {
	    .program = "rete console", .who = who, .party = c->mc.cfg.id, .what = what};
	rete_msg m = {{0}};
	bool ok = true;
	pthread_mutex_lock(&c->lock);
	if (c->access != NULL && rete_access_log_add(c->access, &r, &m) != RETE_OK) {
		ok = false;
		if (c->record_fails++ == 0)
			fprintf(stderr,
				"rete console: %s; every read that needs a line there is refused "
				"(503) until it takes lines again\n",
				m.text);
	} else if (c->access != NULL && c->record_fails > 0) {
		fprintf(stderr,
			"rete console: the access record takes lines again; %lu reads were refused "
			"meanwhile\n",
			c->record_fails);
		c->record_fails = 0;
	}
	pthread_mutex_unlock(&c->lock);
	return ok;
}

/* the sentence of a read the access record did not take */
#define CONSOLE_UNRECORDED_EN                                                                      \
	"the console cannot write its access record (its log says why: a full disk, a file "       \
	"it cannot open); this read was not made, since every read is recorded; tell IT, and "     \
	"try again once it is fixed"
#define CONSOLE_UNRECORDED_IT                                                                      \
	"La console non riesce a scrivere il registro degli accessi (il suo log dice perché: "    \
	"disco pieno, file che non si apre): questa lettura non è stata fatta, perché ogni "     \
	"lettura viene registrata; avvisate il tecnico e riprovate quando è risolto."

/* console_unrecorded answers a read whose line console_record_as could
 * not write: 503, no data; a page (page) in Italian and English, the API
 * naming the problem "record" for the pages' catalogue (texts.js). */
static void console_unrecorded(rete_http_answer *a, bool page)
{
	a->status = 503;
	a->len = 0;
	a->content_type = "text/plain; charset=utf-8";
	rete_http_header(a, "X-Rete-Problem", "record");
	rete_http_header(a, "Retry-After", "60");
	if (page)
		rete_http_printf(a, CONSOLE_UNRECORDED_IT "\n\n");
	rete_http_printf(a, "rete console: " CONSOLE_UNRECORDED_EN "\n");
}

/* console_record: console_record_as, and when the line cannot be written
 * the 503 of console_unrecorded in a; false then (the read not made). */
static bool console_record(struct console *c, rete_http_answer *a, const char *who,
			   const char *what, bool page)
{
	if (console_record_as(c, who, what))
		return true;
	console_unrecorded(a, page);
	return false;
}

/* console_same_origin: false when a browser says rq (a login, a logout) comes from
 * another site's page: SameSite cookies do not stop a forged login, which
 * would sign the victim in as the attacker. Sec-Fetch-Site, which a page
 * cannot set, decides when the browser sends it (same-origin, or none: an
 * address typed); only without it an Origin other than this console's
 * scheme://Host ("null" included) refuses. A browser sends Origin "null"
 * for its own form when a page's Referrer-Policy is no-referrer (the
 * console's, before: no sign-in got through). A client that sends neither
 * header (curl, an old browser) is let through. */
static bool console_same_origin(const struct console *c, const rete_http_req *rq)
{
	const char *site = rete_http_req_header(rq, "Sec-Fetch-Site");
	if (site != NULL)
		return strcmp(site, "same-origin") == 0 || strcmp(site, "none") == 0;
	const char *origin = rete_http_req_header(rq, "Origin");
	if (origin == NULL)
		return true;
	const char *host = rete_http_req_header(rq, "Host");
	const char *scheme = c->tls ? "https://" : "http://";
	size_t sl = strlen(scheme);
	return host != NULL && host[0] != '\0' && strncmp(origin, scheme, sl) == 0 &&
	       strcasecmp(origin + sl, host) == 0;
}

static pthread_mutex_t login_lock = PTHREAD_MUTEX_INITIALIZER;

/* send_login answers the sign-in page (static/login.html) with note, a
 * sentence in Italian and English of the console's own (never a value of
 * the request), in place of its @note@ marker: the page has no script, so
 * what went wrong is said by the page the console sends. */
static void send_login(rete_http_answer *a, const char *note, const char *next)
{
	static const char mark[] = "@note@";
	const console_asset *x = asset_find("login.html");
	const char *at = x ? memmem(x->data, x->len, mark, strlen(mark)) : NULL;
	if (at == NULL) {
		send_asset(a, "login.html");
		return;
	}
	size_t head = (size_t)(at - (const char *)x->data), tail = strlen(mark);
	a->content_type = x->content_type;
	rete_http_append(a, (const char *)x->data, head);
	if (note != NULL && note[0] != '\0')
		rete_http_printf(a, "<p class=\"problem\" role=\"alert\">%s</p>", note);
	const char *form = "</form>", *end = memmem(at + tail, x->len - head - tail, form, 7);
	if (next_ok(next) && end != NULL) { /* the page to go back to, in the form */
		rete_http_append(a, at + tail, (size_t)(end - (at + tail)));
		rete_http_printf(a, "<input type=\"hidden\" name=\"next\" value=\"");
		for (const char *p = next; *p; p++) /* next_ok: '&' is its only HTML character */
			if (*p == '&')
				rete_http_printf(a, "&amp;");
			else
				rete_http_append(a, p, 1);
		rete_http_printf(a, "\">");
		rete_http_append(a, end, x->len - (size_t)(end - (const char *)x->data));
		return;
	}
	rete_http_append(a, at + tail, x->len - head - tail);
}

/* console_throttle_say: the log says when a failed sign-in started a
 * user-wide pause (naming the user only when it is an account: a name
 * that is none may be a password typed into the user field) or the
 * console-wide brake, so that IT learns of the attack. */
static void console_throttle_say(struct console *c, const char *user, unsigned started)
{
	if (started & CONSOLE_THROTTLE_USER_PAUSED)
		fprintf(stderr,
			"rete console: %s: %d failed sign-ins from addresses it never signed in "
			"from (someone may be guessing its password): its sign-in from such "
			"addresses is paused, up to %lld minutes at a time, until the failures "
			"stop; from an address it signed in from it is not paused\n",
			console_accounts_known(c->users_path, user) ? user : "(unknown account)",
			CONSOLE_LOGIN_FREE_USER, CONSOLE_THROTTLE_MAX_MS / 60000);
	if (started & CONSOLE_THROTTLE_BRAKE_ON)
		fprintf(stderr,
			"rete console: %d failed sign-ins on the console from addresses not known "
			"for their user (a password spray?): every sign-in from such an address "
			"now waits, one let through every %d s, until the failures stop; a user "
			"at an address it signed in from is not held\n",
			CONSOLE_LOGIN_FREE_CONSOLE, CONSOLE_LOGIN_CONSOLE_MS / 1000);
}

/* How far back the access record's sign-ins are recalled at the start. */
#define CONSOLE_GOOD_RECALL_MS (90LL * 24 * 3600 * 1000)

/* console_goods_recall: the addresses users signed in from (the record's
 * "login USER from ADDRESS ok" lines of the last CONSOLE_GOOD_RECALL_MS,
 * in its current file) are known again after a restart, so that a pause
 * of a user, or the console-wide brake, does not hold her at her own PC
 * until she has signed in once more. A line that does not read as one is
 * skipped; a record that cannot be read recalls nothing. */
static void console_goods_recall(const struct console *c)
{
	FILE *f = fopen(c->access_path, "r");
	char line[2048];
	int64_t since = rete_now_ms() - CONSOLE_GOOD_RECALL_MS;
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strstr(line, "\"login ") == NULL || strstr(line, " ok\"") == NULL)
			continue;
		json_t *o = json_loads(line, 0, NULL);
		const char *prog = json_string_value(json_object_get(o, "program"));
		const char *what = json_string_value(json_object_get(o, "what"));
		const char *at = json_string_value(json_object_get(o, "at"));
		int64_t at_ms = 0;
		char user[CONSOLE_USER_MAX + 1], host[INET6_ADDRSTRLEN], client[RETE_HTTP_ADDR_MAX];
		struct sockaddr_storage ss = {0};
		struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
		const char *from = what != NULL ? strstr(what, " from ") : NULL;
		size_t wl = what != NULL ? strlen(what) : 0,
		       ul = from != NULL ? (size_t)(from - what) - 6 : 0;
		size_t hl = from != NULL ? wl - (size_t)(from + 6 - what) - 3 : 0;
		if (prog != NULL && strcmp(prog, "rete console") == 0 && at != NULL &&
		    rete_time_parse(at, &at_ms) == RETE_OK && at_ms >= since && from != NULL &&
		    strncmp(what, "login ", 6) == 0 && wl > 9 &&
		    strcmp(what + wl - 3, " ok") == 0 && ul > 0 && ul <= CONSOLE_USER_MAX &&
		    from + 6 <= what + wl - 3 && hl > 0 && hl < sizeof(host)) {
			memcpy(user, what + 6, ul);
			user[ul] = '\0';
			memcpy(host, from + 6, hl);
			host[hl] = '\0';
			client[0] = '\0';
			if (inet_pton(AF_INET, host, &v4->sin_addr) == 1)
				ss.ss_family = AF_INET;
			else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1)
				ss.ss_family = AF_INET6;
			if (ss.ss_family != 0)
				rete_http_client_of((const struct sockaddr *)&ss, client,
						    sizeof(client));
			if (console_user_valid(user) && client[0] != '\0')
				console_throttle_note(user, client, true, at_ms);
		}
		json_decref(o);
	}
	fclose(f);
}

static void route_login(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	struct console *c = ctx;
	char user[CONSOLE_USER_MAX + 2], pw[CONSOLE_PASSWORD_MAX + 1], what[160];
	rete_msg m = {{0}};

	if (strcmp(rq->method, "POST") != 0) {
		const char *failed = rete_http_arg(rq, "failed"),
			   *ended = rete_http_arg(rq, "ended"), *next = rete_http_arg(rq, "next");
		send_login(a,
			   failed != NULL && strcmp(failed, "1") == 0
			       ? "Utente o password errati. · Wrong user or password."
			   : ended != NULL && strcmp(ended, "1") == 0
			       ? "La sessione è terminata: accedi di nuovo. · The session "
				 "ended: sign in again."
			       : NULL,
			   next);
		return;
	}
	if (!c->auth) {
		a->status = 303;
		rete_http_header(a, "Location", "/");
		return;
	}
	if (!console_same_origin(c, rq)) {
		a->status = 403;
		rete_http_printf(a, "rete console: this login was sent by another site's page; "
				    "sign in on the console's own /login page\n");
		snprintf(what, sizeof(what), "login refused: sent by another site's page");
		console_record_as(c, rq->peer, what);
		return;
	}
	if (rq->body == NULL ||
	    !console_form_field(rq->body, rq->body_len, "user", user, sizeof(user)) ||
	    !console_form_field(rq->body, rq->body_len, "password", pw, sizeof(pw))) {
		a->status = 400;
		rete_http_printf(a,
				 "rete console: a login is a form with user (a-z, 0-9, '.', '_', "
				 "'-') and password (at most %d bytes)\n",
				 CONSOLE_PASSWORD_MAX);
		sodium_memzero(pw, sizeof(pw));
		return;
	}
	char next[210] = "";
	if (!console_form_field(rq->body, rq->body_len, "next", next, sizeof(next)) ||
	    !next_ok(next))
		next[0] = '\0';
	if (!console_user_valid(user)) { /* "Anna.Rossi": no account has it */
		sodium_memzero(pw, sizeof(pw));
		a->status = 400;
		send_login(a,
			   "Il nome utente si scrive in lettere minuscole (a-z), cifre e "
			   "'.', '_', '-': nessun utente ha questo. · A user name is written "
			   "in lower-case letters (a-z), digits and '.', '_', '-': no user "
			   "has this one.",
			   next);
		return;
	}
	/* one password check at a time: the throttle then counts every guess
	 * before the next is checked (guesses sent at once got through all
	 * together), and at most one Argon2 hash (64 MiB) is in memory */
	pthread_mutex_lock(&login_lock);
	bool brake = false;
	int64_t now = rete_now_ms(),
		wait = console_throttle_wait_why(user, rq->client, now, &brake);
	if (wait > 0) {
		pthread_mutex_unlock(&login_lock);
		char ra[32];
		snprintf(ra, sizeof(ra), "%lld", (long long)(wait + 999) / 1000);
		char note[600];
		if (brake)
			snprintf(
			    note, sizeof(note),
			    "Troppi accessi non riusciti alla console, da indirizzi diversi: "
			    "da un indirizzo da cui questo utente non ha mai fatto l'accesso "
			    "riprova tra %s s; dal PC da cui hai già fatto l'accesso entri "
			    "subito. · Sign-in paused: too many failed logins on the console, "
			    "from many addresses: from an address this user never signed in "
			    "from, try again in %s s; from a PC you signed in from before, you "
			    "get in at once.",
			    ra, ra);
		else
			snprintf(note, sizeof(note),
				 "Troppi accessi non riusciti per questo utente o da questo "
				 "indirizzo: riprova tra %s s. · Sign-in paused: too many failed "
				 "logins for this user or from this address; try again in %s s.",
				 ra, ra);
		a->status = 429;
		rete_http_header(a, "Retry-After", ra);
		send_login(a, note, next);
		snprintf(what, sizeof(what), "login %s refused: throttled", user);
		console_record_as(c, rq->peer, what);
		sodium_memzero(pw, sizeof(pw));
		return;
	}
	uint8_t stamp[CONSOLE_STAMP_LEN];
	bool ok = console_accounts_check(c->users_path, user, pw, stamp, &m) == RETE_OK;
	sodium_memzero(pw, sizeof(pw));
	unsigned started = console_throttle_note(user, rq->client, ok, now);
	pthread_mutex_unlock(&login_lock);
	console_throttle_say(c, user, started);
	/* a refused name is recorded only when it is an account's: one that
	 * is not may be a password typed into the user field by mistake, and
	 * the record is kept 24 months */
	snprintf(what, sizeof(what), "login %s from %s %s",
		 ok || console_accounts_known(c->users_path, user) ? user : "(unknown account)",
		 rq->peer, ok ? "ok" : "refused");
	if (!console_record_as(c, ok ? user : rq->peer, what) && ok) {
		/* a session whose sign-in is not recorded is not opened */
		a->status = 503;
		rete_http_header(a, "Retry-After", "60");
		send_login(a, CONSOLE_UNRECORDED_IT " · " CONSOLE_UNRECORDED_EN, next);
		return;
	}
	if (!ok) {
		char loc[256] = "/login?failed=1";
		if (next[0] != '\0') {
			snprintf(loc, sizeof(loc), "/login?failed=1&next=");
			url_put(loc, sizeof(loc), next);
		}
		a->status = 303;
		rete_http_header(a, "Location", loc);
		rete_http_printf(a, "rete console: wrong user or password\n");
		return;
	}
	char token[CONSOLE_TOKEN_HEX + 1], cookie[200];
	if (!console_session_new(user, now, stamp, token)) { /* the line checked */
		/* the table holds live sessions of others, one each: none of
		 * them is ended for this one (one account signing in again and
		 * again would sign everyone out) */
		a->status = 503;
		rete_http_header(a, "Retry-After", "60");
		char note[400];
		snprintf(
		    note, sizeof(note),
		    "La console ha già il massimo di sessioni aperte (%d), tutte di altri "
		    "utenti: riprovate tra qualche minuto, o chiedete ai colleghi di uscire con "
		    "Esci. · The console holds its most open sessions (%d), all of other "
		    "users: try again in a few minutes, or ask colleagues to sign out with "
		    "Esci.",
		    CONSOLE_SESSIONS_MAX, CONSOLE_SESSIONS_MAX);
		send_login(a, note, next);
		snprintf(what, sizeof(what), "login %s refused: the sessions' table is full", user);
		console_record_as(c, user, what);
		return;
	}
	/* no Max-Age: the cookie ends with the browser (the next person at a
	 * shared PC signs in); the session itself ends sooner when idle */
	snprintf(cookie, sizeof(cookie),
		 SESSION_COOKIE "=%s; HttpOnly; Secure; SameSite=Strict; Path=/", token);
	sodium_memzero(token, sizeof(token));
	a->status = 303;
	rete_http_header(a, "Set-Cookie", cookie);
	rete_http_header(a, "Location", next[0] != '\0' ? next : "/");
	rete_http_printf(a, "rete console: signed in\n");
}

static void route_logout(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	struct console *c = ctx;
	char token[CONSOLE_TOKEN_HEX + 2], user[CONSOLE_USER_MAX + 1], what[120];
	const char *ck = rete_http_req_header(rq, "Cookie");
	if (!console_same_origin(c, rq)) {
		a->status = 403;
		rete_http_printf(a, "rete console: this logout was asked by another site's page; "
				    "sign out from the console's own pages\n");
		return;
	}
	if (ck != NULL && console_cookie(ck, SESSION_COOKIE, token, sizeof(token))) {
		if (console_session_user(token, rete_now_ms(), user)) {
			snprintf(what, sizeof(what), "logout %s", user);
			console_record_as(c, user, what);
		}
		console_session_end(token);
	}
	a->status = 303;
	rete_http_header(a, "Set-Cookie",
			 SESSION_COOKIE "=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0");
	rete_http_header(a, "Location", "/login");
}

static void send_page(rete_http_answer *a, const struct console_page *pg, bool auth, bool case_link)
{
	static const char signout[] =
	    "<a href=\"/logout\" id=\"signout\" data-t=\"nav.signout\">Esci</a>";
	static const char chart[] = "<script src=\"/lib/chart.min.js\" defer></script>\n";
	char file[64];
	const console_asset *fr = asset_find("frame.html"), *body;

	snprintf(file, sizeof(file), "%s.html", pg->name);
	body = asset_find(file);
	if (fr == NULL || body == NULL) {
		send_asset(a, fr == NULL ? "frame.html" : file); /* the 404 */
		return;
	}
	a->content_type = fr->content_type;
	for (const char *p = (const char *)fr->data, *end = p + fr->len; p < end;) {
		const char *at = memchr(p, '@', (size_t)(end - p));
		const char *close = at ? memchr(at + 1, '@', (size_t)(end - at - 1)) : NULL;
		if (close == NULL) {
			rete_http_append(a, p, (size_t)(end - p));
			break;
		}
		rete_http_append(a, p, (size_t)(at - p));
		const char *k = at + 1;
		size_t kl = (size_t)(close - k);
#define MARK(s) (kl == strlen(s) && memcmp(k, s, kl) == 0)
		if (MARK("title"))
			rete_http_append(a, pg->title, strlen(pg->title));
		else if (MARK("page"))
			rete_http_append(a, pg->name, strlen(pg->name));
		else if (MARK("chart")) {
			if (pg->chart)
				rete_http_append(a, chart, strlen(chart));
		} else if (MARK("signout")) {
			if (auth)
				rete_http_append(a, signout, strlen(signout));
		} else if (MARK("caso")) { /* the Caso link, for who may read it */
			if (case_link)
				rete_http_printf(
				    a, "<a href=\"/caso\"%s data-t=\"nav.case\">Caso</a>",
				    strcmp(pg->name, "caso") == 0 ? " class=\"here\"" : "");
		} else if (MARK("main"))
			rete_http_append(a, (const char *)body->data, body->len);
		else if (kl > 5 && memcmp(k, "here:", 5) == 0) {
			if (kl - 5 == strlen(pg->name) && memcmp(k + 5, pg->name, kl - 5) == 0)
				rete_http_append(a, " class=\"here\"", strlen(" class=\"here\""));
		} else { /* not a marker: the '@' as it is, and on from the next byte */
			rete_http_append(a, at, 1);
			p = at + 1;
			continue;
		}
#undef MARK
		p = close + 1;
	}
}

static void route_page(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	struct console *c = ctx;
	char who_[CONSOLE_USER_MAX + 1];
	if (!console_who(c, rq, a, true, who_, NULL, 0))
		return;
	if (!lang_ok(rq, a))
		return;
	const struct console_page *pg = &console_pages[0];
	for (size_t i = 0; i < sizeof(console_pages) / sizeof(console_pages[0]); i++)
		if (strcmp(rq->path, console_pages[i].path) == 0)
			pg = &console_pages[i];
	if (strcmp(pg->name, "caso") == 0 && console_case_refused(c, who_, a, rq->path))
		return;
	if (!console_record(c, a, who_, rq->path, true))
		return;
	send_page(a, pg, c->auth, !console_steering(c, who_));
}

static void route_static(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	(void)ctx;
	const char *name = rq->path + strlen("/static/");
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '.' ||
		      *p == '-' || *p == '_')) {
			a->status = 400;
			rete_http_printf(a,
					 "rete console: '%.100s' is not a file name of the console "
					 "(lower-case letters, digits, '.', '-', '_')\n",
					 name);
			return;
		}
	send_asset(a, name);
	if (a->status == 200)
		rete_http_header(a, "Cache-Control", "no-cache");
}

/* steering_count: the count at o's key k as the steering group reads it
 * (report_round: 0, "< N", or rounded to 5); -1 when out of memory. */
static int steering_count(json_t *o, const char *k, unsigned min)
{
	json_t *x = json_object_get(o, k);
	char buf[32];
	uint8_t h = 0;

	if (!json_is_integer(x) || json_integer_value(x) < 0)
		return 0;
	uint64_t v = report_round((uint64_t)json_integer_value(x), min, &h);
	snprintf(buf, sizeof(buf), "< %u", min);
	return json_object_set_new(o, k, h ? json_string(buf) : json_integer((json_int_t)v));
}

/* steering_queues publishes the queue lengths of the agencies of list
 * (queueDepth, a 64-bit counter written as a string) as `rete report`'s
 * counts: "< N", or rounded to 5 (still a string). The time the oldest
 * message of a queue was logged (oldestUndeliveredAt) goes with it (report
 * s12, 8): beside a hidden length it would date one referral to the
 * millisecond, an individual event, so it is left out; beside a length
 * shown (N or more) it is cut to the hour. -1 out of memory. */
static int steering_queues(json_t *list, unsigned min)
{
	json_t *a;
	size_t i;
	int rc = 0;

	json_array_foreach(list, i, a)
	{
		json_t *q = json_object_get(a, "queueDepth");
		const char *s = json_is_string(q) ? json_string_value(q) : "0";
		uint64_t n =
		    json_is_integer(q) ? (uint64_t)json_integer_value(q) : strtoull(s, NULL, 10);
		uint8_t h = 0;
		char buf[32];
		int64_t at = 0;
		n = report_round(n, min, &h);
		if (h)
			snprintf(buf, sizeof(buf), "< %u", min);
		else
			snprintf(buf, sizeof(buf), "%llu", (unsigned long long)n);
		rc |= json_object_set_new(a, "queueDepth", json_string(buf));
		json_t *o = json_object_get(a, "oldestUndeliveredAt");
		if (o == NULL)
			continue;
		if (h || !json_is_string(o) ||
		    rete_time_parse(json_string_value(o), &at) != RETE_OK)
			rc |= json_object_del(a, "oldestUndeliveredAt") != 0;
		else
			rc |= json_object_set_new(
			    a, "oldestUndeliveredAt",
			    json_string(rete_time_format(at - at % (3600 * 1000), buf)));
	}
	return rc ? -1 : 0;
}

/* steering_others merges the rows of byStatus whose total is below min
 * into one row {"others": true, "counts", "total"}, last, always there (so
 * that it says nothing by being there): a row listed by name said that its
 * agency pair and service had one referral at least, and two such rows
 * under a total of "< 3" were 1 each (session 11). Before the rounding:
 * its counts are the sums of the exact ones. -1 out of memory. */
static int steering_others(json_t *mon, unsigned min)
{
	json_t *bs = json_object_get(mon, "byStatus"), *st = json_object_get(mon, "statusTotals");
	json_t *kept = json_array(), *counts = json_object(), *g, *x;
	json_int_t total = 0;
	const char *key;
	size_t i;
	int rc = 0;

	if (kept == NULL || counts == NULL) {
		json_decref(kept);
		json_decref(counts);
		return -1;
	}
	json_object_foreach(st, key, x)
	{
		if (strcmp(key, "total") != 0)
			rc |= json_object_set_new(counts, key, json_integer(0));
	}
	json_array_foreach(bs, i, g)
	{
		json_t *t = json_object_get(g, "total");
		if (json_is_integer(t) && json_integer_value(t) >= (json_int_t)min) {
			rc |= json_array_append(kept, g);
			continue;
		}
		json_object_foreach(json_object_get(g, "counts"), key, x)
		{
			json_t *sum = json_object_get(counts, key);
			json_int_t v = (json_is_integer(sum) ? json_integer_value(sum) : 0) +
				       (json_is_integer(x) ? json_integer_value(x) : 0);
			rc |= json_object_set_new(counts, key, json_integer(v));
		}
		total += json_is_integer(t) ? json_integer_value(t) : 0;
	}
	rc |= json_array_append_new(
	    kept, json_pack("{s:b, s:o, s:I}", "others", 1, "counts", counts, "total", total));
	rc |= json_object_set_new(mon, "byStatus", kept);
	return rc ? -1 : 0;
}

/* steering_small publishes the overview mon for the steering group with
 * threshold min ([report] min_count), as `rete report` does
 * (report_round): the rows of byStatus below min merged into one
 * (steering_others), every count of byStatus (per agency pair and service,
 * and their totals), statusTotals, overdueCount, the times' counts and the
 * agencies' queue lengths rounded on its own, and a time's median and 90th
 * percentile hidden over 0 to min - 1 referrals. -1 when out of memory. */
static int steering_small(json_t *mon, unsigned min)
{
	json_t *bs, *st = json_object_get(mon, "statusTotals");
	json_t *times = json_object_get(mon, "times"), *g, *x;
	const char *key;
	size_t i;
	int rc = 0;

	if (min <= 1)
		return 0;
	if (steering_others(mon, min) != 0 ||
	    steering_queues(json_object_get(mon, "agencies"), min) != 0)
		return -1;
	bs = json_object_get(mon, "byStatus");
	json_array_foreach(bs, i, g)
	{
		json_t *counts = json_object_get(g, "counts");
		json_object_foreach(counts, key, x) rc |= steering_count(counts, key, min);
		rc |= steering_count(g, "total", min);
	}
	json_object_foreach(st, key, x) rc |= steering_count(st, key, min);
	rc |= steering_count(mon, "overdueCount", min);
	/* exact counts beside the rule (R4): the log's size and the messages
	 * of each of the last minutes; no page of theirs shows them */
	json_object_del(mon, "logSize");
	json_object_del(mon, "messagesPerMinute");
	json_object_foreach(times, key, x)
	{
		json_t *cnt = json_object_get(x, "count");
		json_int_t c = json_is_integer(cnt) ? json_integer_value(cnt) : 0;
		/* none too: "suppressed" beside a null said one at least */
		if (c < (json_int_t)min)
			rc |= json_object_set_new(x, "medianHours", json_string("suppressed")) |
			      json_object_set_new(x, "p90Hours", json_string("suppressed"));
		rc |= steering_count(x, "count", min);
	}
	rc |= json_object_set_new(mon, "minCount", json_integer(min));
	rc |= json_object_set_new(mon, "roundedTo", json_integer(REPORT_ROUND));
	return rc ? -1 : 0;
}

/* shown_version: the version a page of who's reads (under c->lock): the
 * steering group's changes at each health refresh and says only that
 * time went on (health_at), the others' at each change */
static json_int_t shown_version(const struct console *c, bool steering)
{
	return steering ? (json_int_t)c->health_at : (json_int_t)c->version;
}

/* console_who_refresh: console_who and the access record's line for a
 * read of what (overview, health) a page also makes by itself at each
 * update: a person's read is recorded, a page's own the first time after
 * the person's last use ("WHAT, kept up to date by the open page"), for
 * each route (route, CONSOLE_AUTO_*), not every refresh. While the record
 * takes no line (the last read refused) a page's further reads are refused
 * too: none is made unrecorded. False when a holds the answer (401, the
 * 503 of a line not written). */
static bool console_who_refresh(struct console *c, const rete_http_req *rq, rete_http_answer *a,
				char who_[CONSOLE_USER_MAX + 1], const char *what, unsigned route)
{
	enum who_use use;
	char line[80];
	if (!console_who(c, rq, a, false, who_, &use, route))
		return false;
	if (use == WHO_AUTO_AGAIN) {
		pthread_mutex_lock(&c->lock);
		bool failing = c->record_fails > 0;
		if (failing)
			c->record_fails++;
		pthread_mutex_unlock(&c->lock);
		if (failing)
			console_unrecorded(a, false);
		return !failing;
	}
	snprintf(line, sizeof(line), "%s%s", what,
		 use == WHO_AUTO_FIRST ? ", kept up to date by the open page" : "");
	if (console_record(c, a, who_, line, false))
		return true;
	if (use == WHO_AUTO_FIRST) {
		/* refused unrecorded: the page's next read of it is its first
		 * again, whatever other reads (other users') record meanwhile */
		char token[CONSOLE_TOKEN_HEX + 2];
		const char *ck = rete_http_req_header(rq, "Cookie");
		if (ck != NULL && strlen(ck) < 4096 &&
		    console_cookie(ck, SESSION_COOKIE, token, sizeof(token)))
			console_session_auto_unnote(token, rete_now_ms(), route);
	}
	return false;
}

static void route_overview(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	struct console *c = ctx;
	char who_[CONSOLE_USER_MAX + 1];
	if (!console_who_refresh(c, rq, a, who_, "overview", CONSOLE_AUTO_OVERVIEW))
		return;
	pthread_mutex_lock(&c->lock);
	json_t *mon = monitor_to_json(c->mc.mo, rete_now_ms(), NULL);
	/* the steering group: how many referrals are overdue, not which (each
	 * row names a referral, its agencies, its service and its dates) */
	json_t *ov = mon ? json_object_get(mon, "overdue") : NULL;
	bool steering = console_steering(c, who_);
	if (ov != NULL && steering) {
		size_t n = json_array_size(ov);
		/* then its counts published as `rete report`'s (steering_small) */
		if (json_object_set_new(mon, "overdueCount", json_integer((json_int_t)n)) != 0 ||
		    json_object_set_new(mon, "overdue", json_array()) != 0 ||
		    steering_small(mon, c->mc.cfg.min_count) != 0) {
			json_decref(mon);
			mon = NULL;
		}
	}
	json_t *o =
	    mon ? json_pack("{s:s, s:s, s:O, s:O, s:o, s:I}", "party", c->mc.cfg.id, "timeZone",
			    c->mc.cfg.time_zone ? c->mc.cfg.time_zone : "Europe/Rome", "names",
			    c->names, "services", c->services, "monitor", mon, "version",
			    shown_version(c, steering))
		: NULL;
	pthread_mutex_unlock(&c->lock);
	answer_json(a, o);
	json_decref(o);
}

/* steering_problem: the broker's problem p (broker/query.c,
 * broker/timestamp.c) as the steering group reads it, a new string: the
 * sense kept (which agency, how long its oldest message waits; the
 * checkpoint late; the map full; the time stamps late), no count of
 * messages nor size of the log (each entry is a referral, an update or a
 * delivery). The connections' problems (two agents with one key) and the
 * disk's free MiB (diskFree is theirs in MiB) stay as they are; any other
 * sentence with a figure is told without it. NULL out of memory. */
static char *steering_problem(const char *p)
{
	char *out = NULL;
	const char *has = strstr(p, " has "), *old = strstr(p, ", the oldest waiting for ");
	if (has != NULL && old != NULL && has < old &&
	    strstr(has, " undelivered message") != NULL) {
		/* in whole hours, as oldestUndeliveredAt (steering_queues): the
		 * minutes, beside the time of the answer, would date the oldest
		 * message to the minute (the broker says it after an hour) */
		long min = strtol(old + strlen(", the oldest waiting for "), NULL, 10);
		if (asprintf(&out,
			     "%.*s has undelivered messages, the oldest waiting for more than %ld "
			     "h; is its agent running?",
			     (int)(has - p), p, min / 60 > 0 ? min / 60 : 1) < 0)
			out = NULL;
		return out;
	}
	if (strncmp(p, "the latest checkpoint (size ", 28) == 0)
		return strdup("the latest checkpoint is older than 3 checkpoint intervals while "
			      "the log grew");
	if (strncmp(p, "the store's map is ", 19) == 0)
		return strdup("the store's map is over 90% used and the disk has less room than "
			      "it needs to grow");
	if (strncmp(p, "time stamps are late: ", 22) == 0)
		return strdup(strstr(p, "new submissions are refused") != NULL
				  ? "time stamps are late: a checkpoint waits for the "
				    "time-stamping authority's token; new submissions are refused "
				    "(timestamp_grace)"
				  : "time stamps are late: a checkpoint waits for the "
				    "time-stamping authority's token");
	if (strstr(p, "two connections") != NULL || strstr(p, "another connection") != NULL ||
	    (strncmp(p, "only ", 5) == 0 && strstr(p, " MiB free on the store's disk") != NULL) ||
	    p[strcspn(p, "0123456789")] == '\0')
		return strdup(p);
	return strdup("the broker reports a problem; the coordinator's Salute gives it in full");
}

/* steering_hidden: whether the agency named by the first n bytes of id
 * has its queue's length hidden in list (queueDepth "< N", written by
 * steering_queues) */
static bool steering_hidden(json_t *list, const char *id, size_t n)
{
	json_t *a;
	size_t i;

	json_array_foreach(list, i, a)
	{
		json_t *x = json_object_get(a, "id"), *q = json_object_get(a, "queueDepth");
		if (json_is_string(x) && strlen(json_string_value(x)) == n &&
		    strncmp(json_string_value(x), id, n) == 0)
			return json_is_string(q) && json_string_value(q)[0] == '<';
	}
	return false;
}

/* steering_unseen adds to problems np, for each agency of list whose queue
 * is hidden and whose agent is not connected, the sentence that depends on
 * its lastSeenAt only (and on now, the console's time of asking): "not
 * seen for more than N h", from the hour on, as the broker's own delay. It
 * stands for the broker's "has undelivered messages, the oldest waiting
 * for" (steering_health): that one appears when a message turns one hour
 * old and changes each hour after, and beside "< 3" it dated a single
 * referral (review s12 small-eyes, 2). -1 out of memory. */
static int steering_unseen(json_t *list, int64_t now, json_t *np)
{
	json_t *a;
	size_t i;
	int rc = 0;

	json_array_foreach(list, i, a)
	{
		json_t *id = json_object_get(a, "id"), *seen = json_object_get(a, "lastSeenAt");
		json_t *q = json_object_get(a, "queueDepth");
		int64_t at = 0;
		char *t = NULL;
		if (!json_is_string(id) || !json_is_string(q) || json_string_value(q)[0] != '<' ||
		    json_is_true(json_object_get(a, "connected")))
			continue;
		if (!json_is_string(seen) ||
		    rete_time_parse(json_string_value(seen), &at) != RETE_OK || at <= 0) {
			if (asprintf(&t,
				     "%s's agent has not connected since the broker started; is it "
				     "running?",
				     json_string_value(id)) < 0)
				return -1;
		} else if (now - at > 3600 * 1000) {
			if (asprintf(&t,
				     "%s's agent has not been seen for more than %lld h; is it "
				     "running?",
				     json_string_value(id),
				     (long long)((now - at) / (3600 * 1000))) < 0)
				return -1;
		}
		if (t != NULL)
			rc |= json_array_append_new(np, json_string(t));
		free(t);
	}
	return rc ? -1 : 0;
}

/* steering_health publishes the Salute page's answer o for the steering
 * group (threshold min): the agencies' queue lengths as counts are (< N or
 * rounded); no log size, nor the sizes of the latest checkpoint and of the
 * time-stamped one (the log's size at that checkpoint): each entry of the
 * log is a referral, an update, a delivery, and a size read twice gives
 * their number exactly; the broker's health is said by its problems (told
 * without their counts and sizes: steering_problem) and the checkpoint's
 * age. The store's and the disk's bytes, which grow with
 * the log, to whole MiB (hundreds of entries). o's objects are replaced,
 * not changed: they are the console's own (json_pack "O"). -1 out of
 * memory. */
static int steering_health(json_t *o, unsigned min)
{
	static const char *const drop[][2] = {
	    {"health", "logSize"}, {"witnesses", "checkpointSize"}, {"timestamp", "size"}};
	int rc = 0;

	if (min <= 1)
		return 0;
	for (size_t i = 0; i < sizeof(drop) / sizeof(drop[0]); i++) {
		json_t *x = json_object_get(o, drop[i][0]);
		if (!json_is_object(x))
			continue;
		json_t *copy = json_deep_copy(x);
		if (copy == NULL || json_object_set_new(o, drop[i][0], copy) != 0)
			return -1;
		json_object_del(copy, drop[i][1]);
	}
	json_t *h = json_object_get(o, "health");
	if (!json_is_object(h))
		return 0;
	rc |= steering_queues(json_object_get(h, "agencies"), min);
	/* the problems, in the broker's words, carry the queue's length and
	 * the log's size: told without them (steering_problem). h is a copy
	 * (above, "health" is one of drop's) */
	json_t *ag = json_object_get(h, "agencies"), *at = json_object_get(h, "askedAt");
	json_t *pr = json_object_get(h, "problems"), *x, *np = NULL;
	size_t k;
	/* the broker's answer (it says its version); else the console's own
	 * sentence (the broker did not answer) */
	if (json_object_get(h, "version") != NULL) {
		if ((np = json_array()) == NULL)
			return -1;
		json_array_foreach(pr, k, x)
		{
			const char *p = json_is_string(x) ? json_string_value(x) : "";
			const char *has = strstr(p, " has ");
			/* beside a hidden length, no sentence about its messages
			 * (steering_unseen says what the agent's absence says) */
			if (has != NULL && strstr(has, " undelivered message") != NULL &&
			    steering_hidden(ag, p, (size_t)(has - p)))
				continue;
			char *t = json_is_string(x) ? steering_problem(p) : NULL;
			rc |= t == NULL || json_array_append_new(np, json_string(t)) != 0;
			free(t);
		}
		if (steering_unseen(ag,
				    json_is_integer(at) ? json_integer_value(at) : rete_now_ms(),
				    np) != 0) {
			json_decref(np);
			return -1;
		}
		/* ok when no problem is left: the broker's "ok" turning false
		 * when a hidden queue's message turned one hour old was that
		 * problem's time again */
		rc |= json_object_set_new(h, "ok", json_boolean(json_array_size(np) == 0));
		rc |= json_object_set_new(h, "problems", np);
	}
	static const char *const bytes[] = {"mapUsed", "diskFree"};
	for (size_t i = 0; i < 2; i++) {
		json_t *v = json_object_get(h, bytes[i]);
		uint64_t n = json_is_string(v)	  ? strtoull(json_string_value(v), NULL, 10)
			     : json_is_integer(v) ? (uint64_t)json_integer_value(v)
						  : 0;
		char buf[32];
		if (v == NULL)
			continue;
		snprintf(buf, sizeof(buf), "%llu", (unsigned long long)(n >> 20 << 20));
		rc |= json_object_set_new(h, bytes[i], json_string(buf));
	}
	return rc ? -1 : 0;
}

static void route_health(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	struct console *c = ctx;
	char who_[CONSOLE_USER_MAX + 1];
	if (!console_who_refresh(c, rq, a, who_, "health", CONSOLE_AUTO_HEALTH))
		return;
	bool steering = console_steering(c, who_);
	pthread_mutex_lock(&c->lock);
	json_t *o = json_pack("{s:s, s:s, s:O, s:O, s:I, s:I}", "party", c->mc.cfg.id, "timeZone",
			      c->mc.cfg.time_zone ? c->mc.cfg.time_zone : "Europe/Rome", "health",
			      c->health ? c->health : json_null(), "names", c->names, "now",
			      (json_int_t)rete_now_ms(), "version", shown_version(c, steering));
	if (o != NULL && c->trust != NULL)
		json_object_update(o, c->trust);
	if (o != NULL && steering && steering_health(o, c->mc.cfg.min_count) != 0) {
		json_decref(o);
		o = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	answer_json(a, o);
	json_decref(o);
}

/* ---- the period report ------------------------------------------------------------ */

struct rep_req {
	const char *from, *to, *by_s;
	unsigned by;
	bool months;
	report_lang lang;
	char sep, dec;
};

/* rep_params reads and checks the report's query arguments; false with a
 * 400 and its sentence in a. */
static bool rep_params(const rete_http_req *rq, rete_http_answer *a, struct rep_req *p)
{
	rete_msg m = {{0}};
	const char *v;

	memset(p, 0, sizeof(*p));
	p->from = rete_http_arg(rq, "from");
	p->to = rete_http_arg(rq, "to");
	p->by_s = rete_http_arg(rq, "by");
	if (p->by_s == NULL)
		p->by_s = "agency";
	a->status = 400;
	if (p->from == NULL || p->to == NULL || !rete_date_valid(p->from) ||
	    !rete_date_valid(p->to)) {
		console_problem_code(a, "dates"); /* a field of the form left empty */
		rete_http_printf(a,
				 "rete console: the report needs from= and to=, dates YYYY-MM-DD "
				 "(both inclusive), e.g. from=2026-11-01&to=2026-11-30\n");
		return false;
	}
	if (strlen(p->by_s) > 64 || report_parse_by(p->by_s, &p->by, &m) != RETE_OK) {
		rete_http_printf(a, "rete console: by=%.64s: %s\n", p->by_s, m.text);
		return false;
	}
	v = rete_http_arg(rq, "months");
	if (v != NULL && strcmp(v, "0") != 0 && strcmp(v, "1") != 0) {
		rete_http_printf(a, "rete console: months=%.20s: use months=1 or months=0\n", v);
		return false;
	}
	p->months = v != NULL && strcmp(v, "1") == 0;
	v = rete_http_arg(rq, "lang");
	if (v != NULL && report_parse_lang(v, &p->lang, &m) != RETE_OK) {
		rete_http_printf(a, "rete console: lang=%.20s: %s\n", v, m.text);
		return false;
	}
	if (v == NULL)
		p->lang = REPORT_IT;
	v = rete_http_arg(rq, "sep");
	if (v == NULL || strcmp(v, "comma") == 0) {
		p->sep = ',';
		p->dec = '.';
	} else if (strcmp(v, "semicolon") == 0) {
		p->sep = ';';
		p->dec = ',';
	} else {
		rete_http_printf(a,
				 "rete console: sep=%.20s: use sep=comma, or sep=semicolon (with "
				 "a decimal comma, for Italian spreadsheets)\n",
				 v);
		return false;
	}
	a->status = 200;
	return true;
}

/* rep_build asks the broker for the referrals (on a connection of this
 * request's own) and builds the report. */
static bool rep_build(struct console *c, const struct rep_req *p, rete_http_answer *a, report **out,
		      bool steering)
{
	rete_wire *w = NULL;
	Rete__BrokerFrame *f = NULL;
	rete_msg m = {{0}};
	const char *tz = c->mc.cfg.time_zone ? c->mc.cfg.time_zone : "Europe/Rome";
	int64_t from_ms, to_ms, x;
	bool ok = false;

	*out = NULL;
	if (rete_day_bounds(p->from, tz, &from_ms, &x, &m) != RETE_OK ||
	    rete_day_bounds(p->to, tz, &x, &to_ms, &m) != RETE_OK || from_ms >= to_ms) {
		a->status = 400;
		console_problem_code(a, "period");
		rete_http_printf(a, "rete console: from=%s to=%s is not a period: %s\n", p->from,
				 p->to, m.text[0] ? m.text : "from is after to");
		return false;
	}
	if (coord_connect(&c->mc.cfg, false, &w, &m) != RETE_OK ||
	    coord_query(&c->mc.cfg, w, RETE__QUERY__WHAT_SNAPSHOT, &f, &m) != RETE_OK) {
		a->status = 503;
		console_problem_code(a, "broker");
		rete_http_printf(a, "rete console: the broker did not give the referrals: %s\n",
				 m.text);
		goto out;
	}
	const Rete__Snapshot *sn = f->result->snapshot;
	const Rete__ReferralInfo *const *infos = (const Rete__ReferralInfo *const *)sn->referrals;
	rete_err e =
	    report_build(infos, sn->n_referrals, from_ms, to_ms, rete_now_ms(), p->by, out, &m);
	if (e == RETE_OK && p->months)
		e = report_add_months(*out, infos, sn->n_referrals, p->from, p->to, tz, &m);
	/* the steering group reads totals, not families: small counts hidden */
	if (e == RETE_OK)
		e = report_suppress(*out, steering ? c->mc.cfg.min_count : 1, &m);
	if (e != RETE_OK) {
		report_free(out);
		a->status = e == RETE_EINVAL ? 400 : 500;
		rete_http_printf(a, "rete console: %s\n", m.text);
		goto out;
	}
	ok = true;
out:
	if (f != NULL)
		rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&w);
	return ok;
}

static bool rep_record(struct console *c, rete_http_answer *a, const char *who,
		       const struct rep_req *p, const char *kind)
{
	char what[200];
	snprintf(what, sizeof(what), "report %s %s..%s by %s%s", kind, p->from, p->to, p->by_s,
		 p->months ? " months" : "");
	return console_record(c, a, who, what, false);
}

/* rep_begin is what every report route does first: the session, the query
 * arguments, the access record (as KIND), the report built. False when a
 * holds the answer already (401, 400, 503, ...). */
static bool rep_begin(struct console *c, const rete_http_req *rq, rete_http_answer *a,
		      const char *kind, struct rep_req *p, report **r)
{
	char who_[CONSOLE_USER_MAX + 1];

	*r = NULL;
	if (!console_who(c, rq, a, false, who_, NULL, 0) || !rep_params(rq, a, p))
		return false;
	if (!rep_record(c, a, who_, p, kind))
		return false;
	return rep_build(c, p, a, r, console_steering(c, who_));
}

/* rep_attach answers a download of the report: its content type, and its
 * file name rapporto-FROM-TO.EXT (report-... in English). */
static void rep_attach(rete_http_answer *a, const struct rep_req *p, const char *type,
		       const char *ext)
{
	char cd[160];

	a->content_type = type;
	snprintf(cd, sizeof(cd), "attachment; filename=\"%s-%s-%s.%s\"",
		 p->lang == REPORT_IT ? "rapporto" : "report", p->from, p->to, ext);
	rete_http_header(a, "Content-Disposition", cd);
}

static void route_report(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	struct console *c = ctx;
	struct rep_req p;
	report *r = NULL;
	char buf[160];

	if (!rep_begin(c, rq, a, "json", &p, &r))
		return;
	size_t nc = report_header_count(r);
	json_t *o = json_object(), *hd = json_array(), *rows = json_array(), *kinds = json_array();
	for (size_t i = 0; o && hd && kinds && i < nc; i++) {
		json_array_append_new(hd,
				      json_string(report_header(r, p.lang, i, buf, sizeof(buf))));
		report_header(r, REPORT_EN, i, buf, sizeof(buf));
		json_array_append_new(kinds, json_string(buf));
	}
	for (size_t k = 0; rows && k <= r->nrows; k++) {
		const report_row *w = k < r->nrows ? &r->rows[k] : &r->total;
		json_t *row = json_array();
		for (size_t i = 0; row && i < nc; i++) {
			double v;
			bool isnum;
			report_cell_lang(r, w, i, p.lang, buf, sizeof(buf), &v, &isnum);
			json_array_append_new(row, !isnum     ? json_string(buf)
						   : isnan(v) ? json_null()
							      : json_real(round(v * 100) / 100));
		}
		if (k < r->nrows)
			json_array_append_new(rows, row);
		else if (o)
			json_object_set_new(o, "total", row);
	}
	if (o) {
		pthread_mutex_lock(&c->lock);
		json_object_set(o, "names", c->names);
		json_object_set(o, "services", c->services);
		pthread_mutex_unlock(&c->lock);
		json_object_set_new(o, "party", json_string(c->mc.cfg.id));
		json_object_set_new(o, "from", json_string(p.from));
		json_object_set_new(o, "to", json_string(p.to));
		json_object_set_new(
		    o, "timeZone",
		    json_string(c->mc.cfg.time_zone ? c->mc.cfg.time_zone : "Europe/Rome"));
		json_object_set_new(o, "headers", hd);
		json_object_set_new(o, "columns", kinds);
		json_object_set_new(o, "rows", rows);
		json_object_set_new(o, "minCount",
				    json_integer(r->min_count > 1 ? r->min_count : 1));
		json_object_set_new(o, "roundedTo",
				    json_integer(r->min_count > 1 ? REPORT_ROUND : 1));
		/* the row of the rows of fewer than minCount referrals, merged
		 * (its first cell "altri" / "others", the other keys empty) */
		for (size_t k = 0; k < r->nrows; k++)
			if (r->rows[k].others)
				json_object_set_new(o, "othersRow", json_integer((json_int_t)k));
		hd = kinds = rows = NULL;
	}
	answer_json(a, o);
	json_decref(o);
	json_decref(hd);
	json_decref(kinds);
	json_decref(rows);
	report_free(&r);
}

static void route_report_csv(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	struct console *c = ctx;
	struct rep_req p;
	report *r = NULL;
	char *buf = NULL;
	size_t len = 0;
	rete_msg m = {{0}};

	if (!rep_begin(c, rq, a, "csv", &p, &r))
		return;
	FILE *f = open_memstream(&buf, &len);
	if (f == NULL || report_write_csv_lang(r, f, p.sep, p.dec, p.lang, &m) != RETE_OK) {
		if (f)
			fclose(f);
		free(buf);
		report_free(&r);
		a->status = 500;
		rete_http_printf(a, "rete console: cannot write the report; try again\n");
		return;
	}
	fclose(f);
	rep_attach(a, &p, "text/csv; charset=utf-8", "csv");
	/* the Italian headers (età, capacità): a UTF-8 byte order mark first,
	 * or Excel opens the file in the PC's old code page ("Fascia d'etÃ ");
	 * the English file is ASCII and needs none */
	if (p.lang == REPORT_IT)
		rete_http_append(a, "\xEF\xBB\xBF", 3);
	rete_http_append(a, buf, len);
	free(buf);
	report_free(&r);
}

static void route_report_xlsx(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	struct console *c = ctx;
	struct rep_req p;
	report *r = NULL;
	char path[] = "/tmp/rete-console-XXXXXX.xlsx", title[160];
	rete_msg m = {{0}};

	if (!rep_begin(c, rq, a, "xlsx", &p, &r))
		return;
	int fd = mkstemps(path, 5);
	if (fd >= 0)
		close(fd);
	snprintf(title, sizeof(title),
		 p.lang == REPORT_IT ? "Rapporto dal %s al %s (%s)" : "Report from %s to %s (%s)",
		 p.from, p.to, c->mc.cfg.time_zone ? c->mc.cfg.time_zone : "Europe/Rome");
	if (fd < 0 || report_write_xlsx(r, path, p.lang, title, &m) != RETE_OK) {
		a->status = 500;
		rete_http_printf(a, "rete console: cannot write the workbook: %s\n",
				 fd < 0 ? strerror(errno) : m.text);
	} else {
		FILE *f = fopen(path, "rb");
		char chunk[8192];
		size_t n;
		while (f && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
			rete_http_append(a, chunk, n);
		if (f)
			fclose(f);
		rep_attach(a, &p,
			   "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
			   "xlsx");
	}
	if (fd >= 0)
		unlink(path);
	report_free(&r);
}

/* ---- Andamento: the period report's totals per week or month ---------------------- */

#define CONSOLE_BUCKETS_MAX 120

static json_t *hours_json(double h)
{
	return isnan(h) ? json_null() : json_real(round(h * 100) / 100);
}

/* next_date writes into out the date `days` days after date (YYYY-MM-DD),
 * or the first of the next month when days is 0. */
static void next_date(const char *date, int days, char out[16])
{
	struct tm tm = {0};
	int y, mo, d;
	sscanf(date, "%d-%d-%d", &y, &mo, &d);
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = days ? d + days : 1;
	if (!days)
		tm.tm_mon++;
	tm.tm_hour = 12;
	time_t t = timegm(&tm);
	gmtime_r(&t, &tm);
	snprintf(out, 16, "%04d-%02d-%02d", (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday);
}

/* trend_small marks, in the steering group's bucket bk of Andamento (built
 * from the network's total r after report_suppress: its counts rounded),
 * the hidden values as their text ("< 3", "suppressed"). -1 out of
 * memory. */
static int trend_small(json_t *bk, const report *r)
{
	static const struct {
		const char *obj, *key;
		size_t v; /* the report's value (column, with no grouping) */
	} at[] = {{NULL, "sent", 0},
		  {NULL, "accepted", 2},
		  {NULL, "rejected", 3},
		  {NULL, "completed", 10},
		  {NULL, "cancelled", 19},
		  {NULL, "overdue", 21},
		  {"rejectedByReason", "client-refused", 4},
		  {"rejectedByReason", "lack-of-capacity", 5},
		  {"rejectedByReason", "no-longer-needed", 6},
		  {"rejectedByReason", "unable-to-contact-client", 7},
		  {"rejectedByReason", "unable-to-contact-organisation", 8},
		  {"rejectedByReason", "other", 9},
		  {"median", "toReceive", 23},
		  {"median", "toAccept", 24},
		  {"median", "toComplete", 25},
		  {"p90", "toReceive", 23},
		  {"p90", "toAccept", 24},
		  {"p90", "toComplete", 25}};
	char buf[32];
	double v;
	bool isnum;

	if (bk == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		report_cell_lang(r, &r->total, at[i].v, REPORT_EN, buf, sizeof(buf), &v, &isnum);
		json_t *o = at[i].obj ? json_object_get(bk, at[i].obj) : bk;
		if (!isnum && o != NULL && json_object_set_new(o, at[i].key, json_string(buf)) != 0)
			return -1;
	}
	return 0;
}

static void route_trend(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	struct console *c = ctx;
	char who_[CONSOLE_USER_MAX + 1];
	if (!console_who(c, rq, a, false, who_, NULL, 0))
		return;
	struct rep_req p;
	rete_msg m = {{0}};
	const char *tz = c->mc.cfg.time_zone ? c->mc.cfg.time_zone : "Europe/Rome";
	const char *step = rete_http_arg(rq, "step");
	rete_wire *w = NULL;
	Rete__BrokerFrame *f = NULL;
	json_t *out = NULL, *buckets = NULL;

	bool steering = console_steering(c, who_);
	if (!rep_params(rq, a, &p))
		return;
	if (step == NULL)
		step = "month";
	if (strcmp(step, "month") != 0 && strcmp(step, "week") != 0) {
		a->status = 400;
		console_problem_code(a, "step");
		rete_http_printf(a, "rete console: step=%.20s: use step=week or step=month\n",
				 step);
		return;
	}
	if (!rep_record(c, a, who_, &p, step[0] == 'w' ? "weekly" : "monthly"))
		return;
	int64_t from_ms, to_ms, x;
	if (rete_day_bounds(p.from, tz, &from_ms, &x, &m) != RETE_OK ||
	    rete_day_bounds(p.to, tz, &x, &to_ms, &m) != RETE_OK || from_ms >= to_ms) {
		a->status = 400;
		console_problem_code(a, "period");
		rete_http_printf(a, "rete console: from=%s to=%s is not a period\n", p.from, p.to);
		return;
	}
	if (coord_connect(&c->mc.cfg, false, &w, &m) != RETE_OK ||
	    coord_query(&c->mc.cfg, w, RETE__QUERY__WHAT_SNAPSHOT, &f, &m) != RETE_OK) {
		a->status = 503;
		console_problem_code(a, "broker");
		rete_http_printf(a, "rete console: the broker did not give the referrals: %s\n",
				 m.text);
		goto out;
	}
	const Rete__Snapshot *sn = f->result->snapshot;
	const Rete__ReferralInfo *const *infos = (const Rete__ReferralInfo *const *)sn->referrals;
	out = json_object();
	buckets = json_array();
	char day[16], next[16];
	snprintf(day, sizeof(day), "%s", p.from);
	int64_t b0 = from_ms;
	for (int k = 0; out && buckets && b0 < to_ms; k++) {
		int64_t b1, y;
		if (k == CONSOLE_BUCKETS_MAX) {
			json_decref(out);
			out = NULL;
			a->status = 400;
			/* by week the month is the way out; by month only a
			 * shorter period is */
			if (step[0] == 'w')
				console_problem_code(a, "period-long");
			else
				console_problem_code(a, "period-long-month");
			rete_http_printf(a,
					 "rete console: from=%s to=%s has more than %d %ss; "
					 "choose a shorter period%s\n",
					 p.from, p.to, CONSOLE_BUCKETS_MAX, step,
					 step[0] == 'w' ? " or step=month" : "");
			goto out;
		}
		next_date(day, step[0] == 'w' ? 7 : 0, next);
		if (rete_day_bounds(next, tz, &b1, &y, &m) != RETE_OK)
			break;
		if (b1 > to_ms)
			b1 = to_ms;
		report *r = NULL;
		if (report_build(infos, sn->n_referrals, b0, b1, rete_now_ms(), 0, &r, &m) !=
			RETE_OK ||
		    (steering && report_suppress(r, c->mc.cfg.min_count, &m) != RETE_OK)) {
			report_free(&r);
			break;
		}
		/* the steering group's: each count as `rete report` publishes it */
		const report_row *t = &r->total;
		json_t *rej = json_object();
		static const char *const rnames[REPORT_NREASONS] = {
		    NULL,
		    "client-refused",
		    "lack-of-capacity",
		    "no-longer-needed",
		    "unable-to-contact-client",
		    "unable-to-contact-organisation",
		    "other"};
		for (int i = 1; rej && i < REPORT_NREASONS; i++)
			json_object_set_new(rej, rnames[i],
					    json_integer((json_int_t)t->rejected_by[i]));
		json_array_append_new(
		    buckets,
		    json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:{s:o, s:o, s:o}, "
			      "s:{s:o, s:o, s:o}}",
			      "from", day, "sent", (json_int_t)t->sent, "accepted",
			      (json_int_t)t->accepted, "completed", (json_int_t)t->completed,
			      "rejected", (json_int_t)t->rejected, "overdue",
			      (json_int_t)t->overdue, "rejectedByReason", rej ? rej : json_object(),
			      "cancelled", (json_int_t)t->cancelled, "median", "toReceive",
			      hours_json(t->median_receive_h), "toAccept",
			      hours_json(t->median_accept_h), "toComplete",
			      hours_json(t->median_complete_h), "p90", "toReceive",
			      hours_json(t->p90_receive_h), "toAccept", hours_json(t->p90_accept_h),
			      "toComplete", hours_json(t->p90_complete_h)));
		if (steering &&
		    trend_small(json_array_get(buckets, json_array_size(buckets) - 1), r) != 0) {
			report_free(&r);
			break;
		}
		report_free(&r);
		snprintf(day, sizeof(day), "%s", next);
		b0 = b1;
	}
	if (out) {
		json_object_set_new(out, "party", json_string(c->mc.cfg.id));
		json_object_set_new(out, "step", json_string(step));
		json_object_set_new(out, "timeZone", json_string(tz));
		json_object_set_new(out, "buckets", buckets);
		buckets = NULL;
		if (steering && c->mc.cfg.min_count > 1) {
			json_object_set_new(out, "minCount", json_integer(c->mc.cfg.min_count));
			json_object_set_new(out, "roundedTo", json_integer(REPORT_ROUND));
		}
		pthread_mutex_lock(&c->lock);
		json_object_set(out, "names", c->names);
		pthread_mutex_unlock(&c->lock);
	}
	answer_json(a, out);
out:
	json_decref(out);
	json_decref(buckets);
	if (f != NULL)
		rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&w);
}

/* ---- Caso: a case's timeline from the log, each entry's proof checked ---------------- */

struct case_walk {
	json_t *entries;
	rete_buf *raw; /* the entries' bytes, for their proofs */
	size_t n, cap;
	json_t *labels; /* referral id -> "#index" */
};

static int case_entry(void *ctx, uint64_t index, const rete_buf *raw)
{
	struct case_walk *w = ctx;
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, raw->len, raw->data);
	Rete__SignedMessage *sm =
	    le ? rete__signed_message__unpack(NULL, le->signed_message.len, le->signed_message.data)
	       : NULL;
	Rete__Message *msg =
	    sm ? rete__message__unpack(NULL, sm->message.len, sm->message.data) : NULL;
	if (msg != NULL && w->n < 5000) {
		json_t *e = json_object();
		const char *rid = NULL, *status = NULL, *service = NULL;
		char lab[32];
		if (msg->body_case == RETE__MESSAGE__BODY_REFERRAL) {
			rid = msg->id;
			status = "requested";
			service = msg->referral->service;
			json_object_set_new(w->labels, msg->id,
					    json_string(monitor_label(index, lab, sizeof(lab))));
		} else if (msg->body_case == RETE__MESSAGE__BODY_UPDATE) {
			rid = msg->update->referral_id;
			if (msg->update->status != RETE__STATUS__STATUS_UNSPECIFIED)
				status = rete_status_name(msg->update->status);
		} else if (msg->body_case == RETE__MESSAGE__BODY_DELIVERY) {
			rid = msg->delivery->referral_id;
		} else if (msg->body_case == RETE__MESSAGE__BODY_NOTICE) {
			rid = msg->notice->referral_id;
		}
		json_t *l = rid ? json_object_get(w->labels, rid) : NULL;
		json_object_set_new(e, "index", json_integer((json_int_t)index));
		json_object_set_new(e, "loggedAt", json_integer(le->logged_at));
		json_object_set_new(e, "kind", json_string(rete_message_kind(msg)));
		json_object_set_new(e, "sender", json_string(msg->sender));
		json_object_set_new(e, "recipient", json_string(msg->recipient));
		if (rid && rid[0])
			json_object_set_new(e, "referralId", json_string(rid));
		/* the messages an evidence bundle is made for (the sender's own) */
		if ((msg->body_case == RETE__MESSAGE__BODY_REFERRAL ||
		     msg->body_case == RETE__MESSAGE__BODY_UPDATE ||
		     msg->body_case == RETE__MESSAGE__BODY_NOTE) &&
		    msg->id && msg->id[0])
			json_object_set_new(e, "messageId", json_string(msg->id));
		if (l)
			json_object_set(e, "label", l);
		if (status)
			json_object_set_new(e, "status", json_string(status));
		if (service)
			json_object_set_new(e, "service", json_string(service));
		if (w->n == w->cap) {
			size_t cap = w->cap ? w->cap * 2 : 32;
			rete_buf *nr = realloc(w->raw, cap * sizeof(*nr));
			if (nr == NULL) {
				json_decref(e);
				goto done;
			}
			w->raw = nr;
			w->cap = cap;
		}
		w->raw[w->n].data = malloc(raw->len ? raw->len : 1);
		if (w->raw[w->n].data != NULL) {
			memcpy(w->raw[w->n].data, raw->data, raw->len);
			w->raw[w->n].len = raw->len;
			w->n++;
			json_array_append_new(w->entries, e);
		} else {
			json_decref(e);
		}
	}
done:
	if (msg)
		rete__message__free_unpacked(msg, NULL);
	if (sm)
		rete__signed_message__free_unpacked(sm, NULL);
	if (le)
		rete__log_entry__free_unpacked(le, NULL);
	return 0;
}

/* case_prove checks entry k's inclusion in the broker's latest checkpoint:
 * the proof the broker gives, against the leaf the console computes from the
 * entry's own bytes and a checkpoint signed by the pinned broker key. */
static void case_prove(struct console *c, rete_wire *w, const struct case_walk *cw, size_t k,
		       json_t *e, json_t *top, uint64_t cp_size)
{
	Rete__Query q = RETE__QUERY__INIT;
	Rete__InclusionQuery iq = RETE__INCLUSION_QUERY__INIT;
	Rete__BrokerFrame *f = NULL;
	rete_msg m = {{0}};
	rete_pubkey bk;
	rete_seckey *sk = NULL;
	const char *why = NULL;
	char whybuf[600];

	iq.index = (uint64_t)json_integer_value(json_object_get(e, "index"));
	if (iq.index >= cp_size) { /* no checkpoint covers it yet: nothing is wrong */
		snprintf(whybuf, sizeof(whybuf),
			 cp_size == 0
			     ? "the broker has signed no checkpoint yet; try again after "
			       "its first"
			     : "no checkpoint covers this entry yet (the latest covers %llu "
			       "entries); try again after the broker's next one",
			 (unsigned long long)cp_size);
		json_object_set_new(e, "proof", json_string("pending"));
		json_object_set_new(e, "proofProblem", json_string(whybuf));
		return;
	}
	q.what_case = RETE__QUERY__WHAT_INCLUSION;
	q.inclusion = &iq;
	if (rete_wire_call(w, &q, c->mc.cfg.timeout_ms, &f, &m) != RETE_OK ||
	    f->command_case != RETE__BROKER_FRAME__COMMAND_RESULT ||
	    f->result->answer_case != RETE__QUERY_RESULT__ANSWER_PROOF) {
		if (f != NULL && f->command_case == RETE__BROKER_FRAME__COMMAND_RESULT &&
		    coord_answer(f, RETE__QUERY_RESULT__ANSWER_PROOF, NULL, &m) != RETE_OK)
			f = NULL; /* freed, its sentence in m */
		snprintf(whybuf, sizeof(whybuf), "the broker gave no proof%s%s",
			 m.text[0] ? ": " : "", m.text);
		why = whybuf;
		goto out;
	}
	const Rete__Proof *pr = f->result->proof;
	rete_checkpoint cp;
	if (coord_config_keys(&c->mc.cfg, &sk, &bk, &m) != RETE_OK) {
		snprintf(whybuf, sizeof(whybuf), "%s", m.text);
		why = whybuf;
		goto out;
	}
	rete_seckey_free(&sk);
	if (rete_checkpoint_parse(pr->checkpoint, strlen(pr->checkpoint), &cp, &m) != RETE_OK ||
	    rete_checkpoint_verify(pr->checkpoint, strlen(pr->checkpoint), cp.origin, &bk, &cp,
				   &m) != RETE_OK) {
		snprintf(whybuf, sizeof(whybuf), "the checkpoint: %s", m.text);
		why = whybuf;
		goto out;
	}
	if (pr->tree_size != cp.size || pr->leaf_index != iq.index) {
		why = "the proof is for another size or entry than asked";
		goto out;
	}
	uint8_t leaf[RETE_MERKLE_HASH];
	rete_merkle_leaf_hash(leaf, cw->raw[k].data, cw->raw[k].len);
	rete_merkle_elem el[64];
	if (pr->n_hashes > 64) {
		why = "the proof is too long";
		goto out;
	}
	for (size_t i = 0; i < pr->n_hashes; i++)
		el[i] = (rete_merkle_elem){pr->hashes[i].data, pr->hashes[i].len};
	if (rete_merkle_verify_inclusion(iq.index, cp.size, leaf, sizeof(leaf), el, pr->n_hashes,
					 cp.root, sizeof(cp.root), &m) != RETE_OK) {
		snprintf(whybuf, sizeof(whybuf), "the proof does not lead to the checkpoint: %s",
			 m.text);
		why = whybuf;
		goto out;
	}
	if (json_object_get(top, "checkpointSize") == NULL)
		json_object_set_new(top, "checkpointSize", json_integer((json_int_t)cp.size));
out:
	json_object_set_new(e, "proof", json_string(why ? "failed" : "verified"));
	if (why)
		json_object_set_new(e, "proofProblem", json_string(why));
	if (f != NULL)
		rete__broker_frame__free_unpacked(f, NULL);
}

/* id_arg_ok: an argument that names a case, a party or a message: 1 to
 * max of letters, digits, '.', '_', '-', ':' (NULL: no). */
static bool id_arg_ok(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > max)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-' || *s == ':'))
			return false;
	return true;
}

static void route_case(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	struct console *c = ctx;
	char who_[CONSOLE_USER_MAX + 1], what[120];
	if (!console_who(c, rq, a, false, who_, NULL, 0))
		return;
	const char *cid = rete_http_arg(rq, "case");
	snprintf(what, sizeof(what), "case %.64s", id_arg_ok(cid, 64) ? cid : "(not a case id)");
	if (console_case_refused(c, who_, a, what))
		return;
	if (cid == NULL || !id_arg_ok(cid, 64)) {
		a->status = 400;
		console_problem_code(a, "case-id");
		rete_http_printf(a,
				 "rete console: case= needs a case id: 1 to 64 of letters, digits, "
				 "'.', '_', '-', ':'\n");
		return;
	}
	snprintf(what, sizeof(what), "case %s", cid);
	if (!console_record(c, a, who_, what, false))
		return;
	struct case_walk cw = {.entries = json_array(), .labels = json_object()};
	json_t *top = json_object();
	rete_wire *w = NULL;
	rete_msg m = {{0}};
	if (cw.entries == NULL || cw.labels == NULL || top == NULL)
		goto out;
	if (audit_remote_case_entries(c->mc.cfg.ini_path, cid, "console", case_entry, &cw) != 0) {
		a->status = 503;
		console_problem_code(a, "broker");
		rete_http_printf(a, "rete console: the broker did not give the log's entries\n");
		goto out;
	}
	if (coord_connect(&c->mc.cfg, false, &w, &m) != RETE_OK) {
		a->status = 503;
		console_problem_code(a, "broker");
		rete_http_printf(a, "rete console: %s\n", m.text);
		goto out;
	}
	/* the latest checkpoint's size: an entry at or beyond it waits for the
	 * next checkpoint (its proof "pending"); unknown (the broker did not
	 * say): every entry's proof is asked */
	uint64_t cp_size = UINT64_MAX;
	Rete__Query cq = RETE__QUERY__INIT;
	Rete__CheckpointQuery cpq = RETE__CHECKPOINT_QUERY__INIT;
	Rete__BrokerFrame *cf = NULL;
	Rete__ErrorCode code = 0;
	cq.what_case = RETE__QUERY__WHAT_CHECKPOINT;
	cq.checkpoint = &cpq;
	if (rete_wire_call(w, &cq, c->mc.cfg.timeout_ms, &cf, &m) == RETE_OK) {
		if (coord_answer(cf, RETE__QUERY_RESULT__ANSWER_CHECKPOINT, &code, &m) == RETE_OK) {
			rete_checkpoint cp;
			const char *note = cf->result->checkpoint ? cf->result->checkpoint : "";
			if (rete_checkpoint_parse(note, strlen(note), &cp, &m) == RETE_OK)
				cp_size = cp.size;
			rete__broker_frame__free_unpacked(cf, NULL);
		} else if (code == RETE__ERROR_CODE__ERROR_CODE_NOT_FOUND) {
			cp_size = 0;
		}
	}
	for (size_t k = 0; k < cw.n; k++)
		case_prove(c, w, &cw, k, json_array_get(cw.entries, k), top, cp_size);
	if (json_object_get(top, "checkpointSize") == NULL && cp_size != UINT64_MAX)
		json_object_set_new(top, "checkpointSize", json_integer((json_int_t)cp_size));
	json_object_set_new(top, "party", json_string(c->mc.cfg.id));
	json_object_set_new(top, "case", json_string(cid));
	json_object_set_new(top, "timeZone",
			    json_string(c->mc.cfg.time_zone ? c->mc.cfg.time_zone : "Europe/Rome"));
	json_object_set(top, "entries", cw.entries);
	pthread_mutex_lock(&c->lock);
	json_object_set(top, "names", c->names);
	json_object_set(top, "services", c->services);
	pthread_mutex_unlock(&c->lock);
	answer_json(a, top);
out:
	rete_wire_close(&w);
	for (size_t k = 0; k < cw.n; k++)
		free(cw.raw[k].data);
	free(cw.raw);
	json_decref(cw.entries);
	json_decref(cw.labels);
	json_decref(top);
}

/* ---- evidence bundles: one message's, as `rete evidence export -c` writes it ------- */

/* evidence_problem sets the status and problem code of an evidence bundle
 * that could not be made (e, from coord_connect when !connected, else from
 * asking the broker or writing the bundle): none yet (404,
 * evidence-missing); answers of the broker that do not hold (502,
 * evidence-bad); the broker not reached, refusing or not answering in time
 * (502, broker); the console's own files or memory, e.g. its key or the
 * broker's key unreadable, or a broker address that is none (500,
 * console). */
static void evidence_problem(rete_http_answer *a, rete_err e, bool connected)
{
	const char *code;
	if (e == RETE_ENOENT && connected)
		a->status = 404, code = "evidence-missing";
	else if (e == RETE_EPROOF || e == RETE_EBADSIG || e == RETE_EDECODE || e == RETE_ECORRUPT)
		a->status = 502, code = "evidence-bad";
	else if (e == RETE_ENET || e == RETE_ETIMEDOUT || e == RETE_EREFUSED ||
		 e == RETE_EVERSION || (connected && e != RETE_ENOMEM))
		a->status = 502, code = "broker";
	else
		a->status = 500, code = "console";
	console_problem_code(a, code);
}

static void route_evidence(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	struct console *c = ctx;
	char who_[CONSOLE_USER_MAX + 1], what[300], disp[320];
	const char *sender = rete_http_arg(rq, "sender"), *id = rete_http_arg(rq, "id");
	rete_evidence ev;
	rete_wire *w = NULL;
	rete_msg m = {{0}};
	char *text = NULL;
	rete_err e;

	if (!console_who(c, rq, a, false, who_, NULL, 0))
		return;
	snprintf(what, sizeof(what), "evidence %s %s", id_arg_ok(sender, 128) ? sender : "-",
		 id_arg_ok(id, 128) ? id : "-");
	if (console_case_refused(c, who_, a, what))
		return;
	if (!id_arg_ok(sender, 128) || !id_arg_ok(id, 128)) {
		a->status = 400;
		rete_http_printf(a,
				 "rete console: an evidence bundle is asked for by sender= (the "
				 "sending party's id) and id= (the message's id), each 1 to 128 of "
				 "letters, digits, '.', '_', '-', ':'\n");
		return;
	}
	snprintf(what, sizeof(what), "evidence %s %s", sender, id);
	if (!console_record(c, a, who_, what, false))
		return;
	bool connected = false;
	if ((e = coord_connect(&c->mc.cfg, false, &w, &m)) == RETE_OK) {
		connected = true;
		e = rete_evidence_from_broker(&c->mc.cfg, w, sender, id, &ev, &m);
	}
	rete_wire_close(&w);
	if (e == RETE_OK) {
		e = rete_evidence_write(&ev, &text, &m);
		rete_evidence_free(&ev);
	}
	if (e != RETE_OK) {
		evidence_problem(a, e, connected);
		rete_http_printf(a, "rete console: no evidence bundle for message %s of %s: %s\n",
				 id, sender, m.text[0] ? m.text : rete_strerror(e));
		return;
	}
	/* checked as rete evidence export checks it, with the broker's pinned
	 * key: a bundle that would not hold (answers of a broker that lie) is
	 * not handed on as evidence */
	rete_evidence_opts vo;
	const char *part = NULL;
	memset(&vo, 0, sizeof(vo));
	if ((e = rete_keyfile_load_public(c->mc.cfg.broker_key_path, &vo.broker_key, &m)) ==
	    RETE_OK)
		e = rete_evidence_verify(text, strlen(text), &vo, NULL, &part, &m);
	if (e != RETE_OK) {
		/* the bundle does not hold: the broker's answers; the key or
		 * the memory of the console itself: the console's problem */
		bool bundle = part != NULL && e != RETE_EIO && e != RETE_ENOMEM;
		a->status = bundle ? 502 : 500;
		console_problem_code(a, bundle ? "evidence-bad" : "console");
		rete_http_printf(a,
				 "rete console: the evidence bundle of message %s of %s, made from "
				 "the broker's answers, does not hold (%s: %s); it is not served\n",
				 id, sender, part ? part : "the broker's key", m.text);
		free(text);
		return;
	}
	snprintf(disp, sizeof(disp), "attachment; filename=\"evidence-%s-%s.json\"", sender, id);
	for (char *p = disp; *p; p++)
		if (*p == ':')
			*p = '_';
	a->content_type = "application/json; charset=utf-8";
	rete_http_header(a, "Content-Disposition", disp);
	rete_http_append(a, text, strlen(text));
	free(text);
}

/* Chart.js, from Debian's libjs-chart.js, read at the start and served by
 * the console itself (the coordinators' PCs may have no internet) */
#define CONSOLE_CHARTJS "/usr/share/javascript/chart.js/chart.min.js"
static char *chartjs;
static size_t chartjs_len;

static void chartjs_load(const char *path)
{
	FILE *f = fopen(path, "rb");
	char chunk[65536];
	size_t n;
	if (f == NULL) {
		fprintf(stderr,
			"rete console: %s: %s; the Flussi and Andamento pages show tables without "
			"charts (install libjs-chart.js)\n",
			path, strerror(errno));
		return;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		char *nb = realloc(chartjs, chartjs_len + n);
		if (nb == NULL)
			break;
		chartjs = nb;
		memcpy(chartjs + chartjs_len, chunk, n);
		chartjs_len += n;
	}
	fclose(f);
}

static void route_chartjs(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	(void)ctx;
	(void)rq;
	if (chartjs == NULL) {
		a->status = 404;
		rete_http_printf(a, "rete console: Chart.js is not installed here (Debian: "
				    "libjs-chart.js)\n");
		return;
	}
	a->content_type = "text/javascript; charset=utf-8";
	rete_http_header(a, "Cache-Control", "max-age=86400");
	rete_http_append(a, chartjs, chartjs_len);
}

/* Server-Sent Events: "update" with the log size whenever the state moved */
struct sse {
	struct console *c;
	uint64_t seen;
	bool first;
	bool steering;			   /* a steering group's stream: no log size (R4) */
	int slot;			   /* its place in c->stream_peer */
	char token[CONSOLE_TOKEN_HEX + 2]; /* its session's, with accounts */
};

/* sse_slot takes a free place in c->stream_peer for a stream of peer, under
 * c->lock: its index, or -1 with *no set (503: all taken; 429: peer holds
 * streams_per_addr already). */
static int sse_slot(struct console *c, const char *peer, rete_http_answer *no)
{
	int free_at = -1;
	unsigned held = 0;
	for (int i = 0; i < CONSOLE_STREAMS_MAX; i++) {
		if (c->stream_peer[i][0] == '\0')
			free_at = free_at < 0 ? i : free_at;
		else if (strcmp(c->stream_peer[i], peer) == 0)
			held++;
	}
	if (free_at < 0) {
		no->status = 503;
		rete_http_header(no, "Retry-After", "10");
		rete_http_printf(no,
				 "rete console: all %d live-update streams are in use (each open "
				 "page of the console holds one); try again later\n",
				 CONSOLE_STREAMS_MAX);
	} else if (c->streams_per_addr != 0 && held >= c->streams_per_addr) {
		no->status = 429;
		rete_http_header(no, "Retry-After", "10");
		rete_http_printf(
		    no,
		    "rete console: %s already holds %u live-update streams, the most "
		    "one address (or IPv6 /64) may hold ([console] streams_per_address, so that "
		    "others find one free); close a console page open there, or try "
		    "again later\n",
		    peer, held);
		free_at = -1;
	} else {
		snprintf(c->stream_peer[free_at], sizeof(c->stream_peer[free_at]), "%s", peer);
	}
	return free_at;
}

static void *sse_open(void *ctx, const rete_http_req *rq, rete_http_answer *no)
{
	struct console *c = ctx;
	struct sse *s = NULL;
	char user[CONSOLE_USER_MAX + 1], token[CONSOLE_TOKEN_HEX + 2];
	const char *ck = rete_http_req_header(rq, "Cookie");
	if (c->auth && (ck == NULL || !console_cookie(ck, "rete_session", token, sizeof(token)) ||
			!console_session_peek(token, rete_now_ms(), user))) {
		no->status = 401; /* the page then sends its reader to /login */
		rete_http_printf(no, "rete console: sign in first, at /login (no session, or it "
				     "ended)\n");
		return NULL;
	}
	if (!c->auth && !console_host_ok(rq))
		return NULL;
	if (!console_record(c, no, c->auth ? user : rq->peer, "events", false))
		return NULL; /* the 503: a stream not recorded is not opened */
	pthread_mutex_lock(&c->lock);
	int slot = c->stopping ? -1 : sse_slot(c, rq->client, no);
	if (slot >= 0 && (s = calloc(1, sizeof(*s))) == NULL)
		c->stream_peer[slot][0] = '\0';
	if (s != NULL) {
		c->streams++;
		s->c = c;
		s->first = true;
		s->slot = slot;
		if (c->auth) {
			snprintf(s->token, sizeof(s->token), "%s", token);
			s->steering = console_steering(c, user);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return s;
}

static long sse_next(void *st, char *buf, size_t max)
{
	struct sse *s = st;
	struct console *c = s->c;
	struct timespec until;
	long n;

	/* the stream ends with its session (a logout, the 12 hours): it is
	 * checked before every write, so it ends within two keep-alives */
	if (c->auth && !console_session_live(s->token, rete_now_ms()))
		return -1;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += c->heartbeat_ms / 1000;
	until.tv_nsec += (long)(c->heartbeat_ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->lock);
	/* the steering group's stream fires at each health refresh, whatever
	 * happened (shown_version): one fired at each drain of events said
	 * when, and so how many, referrals came in a quiet network */
	while (!c->stopping && !s->first && (uint64_t)shown_version(c, s->steering) == s->seen)
		if (pthread_cond_timedwait(&c->moved, &c->lock, &until) == ETIMEDOUT)
			break;
	if (c->stopping) {
		n = -1;
	} else if (s->first || (uint64_t)shown_version(c, s->steering) != s->seen) {
		s->seen = (uint64_t)shown_version(c, s->steering);
		/* the log's exact size, event by event, would count the
		 * steering group's referrals one by one: version only */
		if (s->steering)
			n = snprintf(buf, max, "%sevent: update\ndata: {\"version\":%llu}\n\n",
				     s->first ? "retry: 2000\n" : "", (unsigned long long)s->seen);
		else
			n = snprintf(
			    buf, max,
			    "%sevent: update\ndata: {\"logSize\":%llu,\"version\":%llu}\n\n",
			    s->first ? "retry: 2000\n" : "",
			    (unsigned long long)monitor_next_index(c->mc.mo),
			    (unsigned long long)c->version);
		s->first = false;
	} else {
		n = snprintf(buf, max, ": still here\n\n");
	}
	pthread_mutex_unlock(&c->lock);
	return n >= 0 && (size_t)n < max ? n : -1;
}

static void sse_close(void *st)
{
	struct sse *s = st;
	sodium_memzero(s->token, sizeof(s->token));
	pthread_mutex_lock(&s->c->lock);
	s->c->streams--;
	s->c->stream_peer[s->slot][0] = '\0';
	pthread_mutex_unlock(&s->c->lock);
	free(s);
}

static const rete_http_stream sse_stream = {sse_open, sse_next, sse_close,
					    "text/event-stream; charset=utf-8"};

#define CONSOLE_CSP                                                                                \
	"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                \
	"connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'self'; "               \
	"frame-ancestors 'none'"

/* read_small reads a PEM file (at most 1 MiB) into a new string. */
static rete_err read_small(const char *path, char **out, rete_msg *m)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	char chunk[4096];

	*out = NULL;
	if (f == NULL)
		return rete_msg_set(m, RETE_EIO, "%s: cannot read: %s", path, strerror(errno));
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (len + n + 1 > (1u << 20)) {
			fclose(f);
			free(buf);
			return rete_msg_set(m, RETE_EINVAL, "%s: larger than 1 MiB: not a PEM file",
					    path);
		}
		if (len + n + 1 > cap) {
			cap = (len + n + 1) * 2;
			char *nb = realloc(buf, cap);
			if (nb == NULL) {
				fclose(f);
				free(buf);
				return rete_msg_set(m, RETE_ENOMEM, "out of memory");
			}
			buf = nb;
		}
		memcpy(buf + len, chunk, n);
		len += n;
	}
	fclose(f);
	if (buf == NULL || strstr(buf ? (buf[len] = '\0', buf) : "", "-----BEGIN ") == NULL) {
		free(buf);
		return rete_msg_set(m, RETE_EINVAL, "%s: not a PEM file (no -----BEGIN line)",
				    path);
	}
	*out = buf;
	return RETE_OK;
}

/* console_tls_read reads [console] tls_cert and tls_key (PEM, each at
 * most 1 MiB) into *cert and *key (the caller's: console_tls_free wipes the
 * key), refusing a key readable by others. The start and the check
 * (console_settle) both read them so: what the check takes, the start
 * takes. Every problem goes to pr (with its key's line) when pr is not
 * NULL, else the first to m. Errors: RETE_EIO (a file cannot be read),
 * RETE_EINVAL (too large, no PEM, a key readable by others), RETE_ENOMEM. */
static rete_err console_tls_read(const struct console *c, char **cert, char **key,
				 rete_check_list *pr, rete_msg *m)
{
	rete_err first = RETE_OK, err;
	struct stat st;
	rete_msg sub;
	const char *const paths[2] = {c->tls_cert_path, c->tls_key_path};
	static const char *const keys[2] = {"tls_cert", "tls_key"};
	static const char *const begin[2] = {"-----BEGIN CERTIFICATE-----", "PRIVATE KEY-----"};
	char **const out[2] = {cert, key};

	*cert = *key = NULL;
	for (int i = 0; i < 2; i++) {
		err = read_small(paths[i], out[i], &sub);
		if (err == RETE_OK && i == 1 && stat(paths[i], &st) == 0 && (st.st_mode & 077) != 0)
			err = rete_msg_set(&sub, RETE_EINVAL,
					   "%s: the TLS private key is readable by others; chmod "
					   "600 %s",
					   paths[i], paths[i]);
		else if (err == RETE_OK && strstr(*out[i], begin[i]) == NULL)
			err = rete_msg_set(
			    &sub, RETE_EINVAL, "%s: not a PEM %s (no '%s' line); give the PEM file",
			    paths[i], i == 0 ? "certificate" : "private key", begin[i]);
		if (err == RETE_OK)
			continue;
		if (pr != NULL) {
			rete_check_at(pr, console_key_line_of(c, keys[i]));
			rete_check_add(pr, "[console] %s: %s", keys[i], sub.text);
			rete_check_at(pr, 0);
		}
		if (first == RETE_OK) {
			first = err;
			if (m != NULL)
				rete_msg_set(m, err, "%s", sub.text);
		}
	}
	return first;
}

/* console_tls_free frees what console_tls_read gave, the key wiped first. */
static void console_tls_free(char **cert, char **key)
{
	free(*cert);
	*cert = NULL;
	if (*key != NULL) {
		sodium_memzero(*key, strlen(*key));
		free(*key);
		*key = NULL;
	}
}

/* console_say_once prints text on stderr after the program's name, once:
 * the HTTP layer's sentences already start with it (rete_httpd_new's
 * "rete console"), the console's own do not. */
static void console_say_once(const char *text)
{
	static const char name[] = "rete console: ";
	fprintf(stderr, "%s%s\n", strncmp(text, name, sizeof(name) - 1) == 0 ? "" : name, text);
}

static rete_err console_serve(struct console *c, const rete_http_addr *addr, rete_httpd **out,
			      rete_msg *m)
{
	rete_httpd *h = NULL;
	rete_err err;
	if ((err = rete_httpd_new(&h, "rete console", m)) != RETE_OK)
		return err;
	rete_http_limits lim;
	rete_http_limits_default(addr, &lim);
	if (c->per_address_set)
		lim.per_addr = c->per_address;
	/* the streams of one address: half of them on a network address, no
	 * limit on loopback (everyone comes from this host's one address, a
	 * reverse proxy's or a tunnel's), as for connections */
	c->streams_per_addr = c->streams_set		      ? c->streams_key
			      : rete_http_addr_loopback(addr) ? 0
							      : CONSOLE_STREAMS_MAX / 2;
	if (c->header_ms)
		lim.header_ms = c->header_ms;
	if (c->stall_ms)
		lim.stall_ms = c->stall_ms;
	/* a stall is found by a write: a stream writes (a heartbeat) well
	 * within stream_timeout */
	c->heartbeat_ms =
	    lim.stall_ms / 4 < CONSOLE_KEEPALIVE_MS ? lim.stall_ms / 4 : CONSOLE_KEEPALIVE_MS;
	if ((err = rete_httpd_set_limits(h, &lim, m)) != RETE_OK) {
		rete_httpd_free(&h);
		return err;
	}
	if (c->tls) {
		char *cert = NULL, *key = NULL;
		err = console_tls_read(c, &cert, &key, NULL, m);
		if (err == RETE_OK)
			err = rete_httpd_tls(h, cert, key, m);
		console_tls_free(&cert, &key);
		if (err != RETE_OK) {
			rete_httpd_free(&h);
			return err;
		}
	}
	if ((err = rete_httpd_server_header(h, "Content-Security-Policy", CONSOLE_CSP, m)) ||
	    (err = rete_httpd_server_header(h, "X-Content-Type-Options", "nosniff", m)) ||
	    (err = rete_httpd_server_header(h, "Referrer-Policy", "same-origin", m)) ||
	    (err = rete_httpd_server_header(h, "X-Frame-Options", "DENY", m)) ||
	    /* over TLS the browser is told to keep to HTTPS for a year (a
	     * console reached by name: browsers ignore it for an IP address) */
	    (c->tls && (err = rete_httpd_server_header(h, "Strict-Transport-Security",
						       "max-age=31536000", m))) ||
	    (err = rete_httpd_route_req(h, "/", false, route_page, c, m)) ||
	    (err = rete_httpd_route_req(h, "/panoramica", false, route_page, c, m)) ||
	    (err = rete_httpd_route_req(h, "/salute", false, route_page, c, m)) ||
	    (err = rete_httpd_route_req(h, "/rapporto", false, route_page, c, m)) ||
	    (err = rete_httpd_route_post(h, "/login", route_login, c, m)) ||
	    (err = rete_httpd_route_req(h, "/logout", false, route_logout, c, m)) ||
	    (err = rete_httpd_route_req(h, "/flussi", false, route_page, c, m)) ||
	    (err = rete_httpd_route_req(h, "/andamento", false, route_page, c, m)) ||
	    (err = rete_httpd_route_req(h, "/api/trend", false, route_trend, c, m)) ||
	    (err = rete_httpd_route_req(h, "/caso", false, route_page, c, m)) ||
	    (err = rete_httpd_route_req(h, "/api/case", false, route_case, c, m)) ||
	    (err = rete_httpd_route_req(h, "/api/evidence", false, route_evidence, c, m)) ||
	    (err = rete_httpd_route_req(h, "/lib/chart.min.js", false, route_chartjs, c, m)) ||
	    (err = rete_httpd_route_req(h, "/api/report", false, route_report, c, m)) ||
	    (err = rete_httpd_route_req(h, "/api/report.csv", false, route_report_csv, c, m)) ||
	    (err = rete_httpd_route_req(h, "/api/report.xlsx", false, route_report_xlsx, c, m)) ||
	    (err = rete_httpd_route_req(h, "/static/", true, route_static, c, m)) ||
	    (err = rete_httpd_route_req(h, "/api/overview", false, route_overview, c, m)) ||
	    (err = rete_httpd_route_req(h, "/api/health", false, route_health, c, m)) ||
	    (err = rete_httpd_route_stream(h, "/api/events", &sse_stream, c, m)) ||
	    (err = rete_httpd_start_threads(h, addr, m))) {
		rete_httpd_free(&h);
		return err;
	}
	*out = h;
	return RETE_OK;
}

/* ---- the command ------------------------------------------------------------------ */

/* The console's sentences for its listen address (proto/httpd.h): a
 * wildcard is refused even with TLS and accounts, since it would publish
 * the network's referrals on every interface the host has, present and to
 * come (a VPN, a management network), not the one the browsers reach
 * (docs/operations.md, "Publishing the console"). */
static const rete_http_addr_use console_listen_use = {
    "8480", "where anyone on any network this host joins could reach the console; give the "
	    "address of the one interface the browsers reach (with TLS and accounts), or "
	    "127.0.0.1:8480 behind a reverse proxy (docs/operations.md, \"Publishing the "
	    "console\")"};

/* console_settle judges what the start refuses once the file is read: the
 * time zone (one this machine knows, as rete report wants), the witness
 * policy, the listen address (listen_opt, --listen, over [console]
 * listen), the accounts file (it exists when named), TLS (both files read
 * as the start reads them), the access record's place, [client] events
 * (starting: rete console itself; else only with a [console] section),
 * and that an address other than loopback has TLS and accounts. Every
 * problem goes to pr (with the line of its key); nothing is made or
 * written; *addr gets the address; *naccounts the accounts. ini names the
 * file in the sentences. */
static void console_settle(struct console *c, const char *ini, const char *listen_opt,
			   bool starting, rete_http_addr *addr, size_t *naccounts,
			   rete_check_list *pr)
{
	rete_msg m;
	const char *tz = c->mc.cfg.time_zone ? c->mc.cfg.time_zone : "Europe/Rome";
	bool addr_ok;

	rete_check_at(pr, c->mc.cfg.lines[CC_LINE_TZ]);
	if (!cli_tz_known(tz))
		rete_check_add(
		    pr,
		    "[client] time_zone: '%s' is not a time zone this machine knows (no "
		    "/usr/share/zoneinfo/%s): the console's and rete report's days would "
		    "be counted in UTC; give a zone such as Europe/Rome",
		    tz, tz);
	rete_check_at(pr, console_key_line_of(c, "witnesses"));
	if (c->witnesses_path != NULL &&
	    rete_witness_policy_load(c->witnesses_path, &c->policy, &m) != RETE_OK)
		rete_check_add(pr, "[console] witnesses: %s", m.text);
	rete_check_at(pr, listen_opt ? RETE_CHECK_NOT_FILE : console_key_line_of(c, "listen"));
	if (listen_opt != NULL)
		snprintf(c->listen, sizeof(c->listen), "%s", listen_opt);
	addr_ok = rete_http_addr_parse_as(c->listen, &console_listen_use, addr, &m) == RETE_OK;
	if (!addr_ok)
		rete_check_add(pr, "%s %s", listen_opt ? "--listen" : "[console] listen:", m.text);
	rete_check_at(pr, console_key_line_of(c, "users"));
	*naccounts = 0;
	struct stat st;
	bool users_there = c->users_path != NULL && stat(c->users_path, &st) == 0;
	if (c->users_path != NULL && users_there &&
	    console_accounts_count(c->users_path, naccounts, &m) != RETE_OK)
		rete_check_add(pr, "%s", m.text);
	/* a users key naming no file is a typo, not "no accounts": on
	 * loopback it would serve every page without sign-in (behind a
	 * reverse proxy, the documented setup, to everyone the proxy lets in) */
	if (c->users_path != NULL && !users_there)
		rete_check_add(pr,
			       "[console] users: %s does not exist (%s): the console would ask "
			       "for no sign-in; create it with `rete console passwd USER -c %s`, "
			       "correct the name, or remove the key for a console without "
			       "accounts (on loopback only)",
			       c->users_path, strerror(errno), ini);
	/* every name of the steering group is an account: a typo (sarra for
	 * sara) would leave sara a coordinator's view of every case */
	rete_check_at(pr, console_key_line_of(c, "steering_group"));
	if (c->steering != NULL && c->users_path == NULL)
		rete_check_add(pr,
			       "[console] steering_group names accounts, but [console] users (the "
			       "accounts file) is not given: give it, or remove steering_group");
	char u[CONSOLE_USER_MAX + 2];
	for (const char *q = c->steering;
	     q != NULL && users_there && list_next(&q, u, sizeof(u));) {
		bool found = false;
		if (console_account_exists(c->users_path, u, &found, &m) != RETE_OK)
			break; /* the file's own problem is listed already */
		if (!found)
			rete_check_add(
			    pr,
			    "[console] steering_group: '%s' has no account in %s: with a "
			    "name mistyped, its person would read as a coordinator; give "
			    "the account's name as `rete console passwd` set it, or make "
			    "the account first; or, if the person no longer has an account, "
			    "remove the name from steering_group",
			    u, c->users_path);
	}
	rete_check_at(pr, console_key_line_of(c, "tls_cert"));
	if ((c->tls_cert_path == NULL) != (c->tls_key_path == NULL))
		rete_check_add(pr,
			       "[console] tls_cert and tls_key go together; give both (PEM files) "
			       "or neither");
	rete_check_at(pr, 0);
	if (c->tls_cert_path != NULL && c->tls_key_path != NULL) {
		char *cert, *key;
		if (console_tls_read(c, &cert, &key, pr, NULL) == RETE_ENOMEM)
			rete_check_add(pr, "out of memory");
		console_tls_free(&cert, &key);
	}
	rete_check_at(pr, console_key_line_of(c, "access_log"));
	rete_check_file(pr, "[console] access_log", c->access_path);
	rete_check_at(pr, 0);
	/* given and refused: its own problem is listed already */
	if (c->mc.cfg.events == NULL && c->mc.cfg.lines[4] == 0 && (starting || c->console_section))
		rete_check_add(
		    pr,
		    "[client] events is missing: rete console follows the broker's "
		    "events on it; give the broker's [broker] events address (e.g. "
		    "tcp://broker.example:7701)%s",
		    starting ? ""
			     : ", or leave out [console] if the console does not read this file");
	bool tls = c->tls_cert_path != NULL, auth = *naccounts > 0;
	if (addr_ok && !rete_http_addr_loopback(addr) && (!tls || !auth))
		rete_check_add(
		    pr,
		    "will not listen on %s: the console would show the network's "
		    "referrals to anyone who reaches that address; an address other "
		    "than loopback needs TLS ([console] tls_cert and tls_key%s) and "
		    "accounts ([console] users with at least one, set by `rete console "
		    "passwd USER -c %s`%s%s%s); or listen on 127.0.0.1 (the default) behind "
		    "a reverse proxy (docs/operations.md, \"Publishing the console\")",
		    addr->text, tls ? ": set" : ": missing", ini,
		    auth	    ? ": set"
		    : users_there   ? ": the file has none"
		    : c->users_path ? ": the file "
				    : ": missing",
		    !auth && !users_there && c->users_path ? c->users_path : "",
		    !auth && !users_there && c->users_path ? " does not exist" : "");
}

static void console_usage(FILE *f)
{
	fprintf(f,
		"usage: rete console -c coord.ini [--listen ADDR]\n\n"
		"The web console: the network's referrals live in a browser (Panoramica:\n"
		"overdue first; Salute: the broker's health, witnesses, time-stamping;\n"
		"Caso: a case's log entries and each message's evidence bundle), from the\n"
		"coordinator's or auditor's configuration. Read-only; only metadata.\n"
		"[console] witnesses names a witness policy the Salute page checks the\n"
		"latest checkpoint's cosignatures against. Listens on %s\n"
		"unless [console] listen or --listen says otherwise; an address that is not\n"
		"loopback needs TLS ([console] tls_cert, tls_key) and accounts ([console]\n"
		"users), and a wildcard (0.0.0.0, [::]) is refused: give the address of the\n"
		"interface the browsers reach. [console] steering_group lists the accounts that "
		"see the totals\n"
		"only, not Caso. Every page read and login goes to the access record\n"
		"([console] access_log, default console-access.jsonl beside coord.ini).\n"
		"       rete console passwd USER -c coord.ini   sets USER's password (at\n"
		"least 10 characters, UTF-8 text)\n",
		CONSOLE_LISTEN_DEFAULT);
}

/* console_utf8_valid: s is well-formed UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF). */
static bool console_utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned c = *p, n = c < 0x80		  ? 0
				     : (c & 0xe0) == 0xc0 ? 1
				     : (c & 0xf0) == 0xe0 ? 2
				     : (c & 0xf8) == 0xf0 ? 3
							  : 9;
		if (n == 9 || (n == 1 && c < 0xc2) || (n == 3 && c > 0xf4))
			return false;
		unsigned cp = n == 0 ? c : c & (0x3f >> n);
		for (unsigned i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		p += n + 1;
	}
	return true;
}

/* `rete console passwd USER -c coord.ini`: sets USER's password in the
 * accounts file ([console] users). The password is read from the terminal
 * (twice, not shown) or, when stdin is not a terminal, as its first line. */
static int console_passwd(int argc, char **argv)
{
	const char *ini = NULL, *user = NULL;
	struct console c;
	rete_msg m = {{0}};
	/* room for one byte over the limit and the line's end: a longer line
	 * is then found too long, not cut */
	char pw[CONSOLE_PASSWORD_MAX + 3] = "", again[CONSOLE_PASSWORD_MAX + 3] = "";
	int rc = CLI_USAGE;

	memset(&c, 0, sizeof(c));
	for (int i = 1; i < argc; i++) {
		if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) &&
		    i + 1 < argc)
			ini = argv[++i];
		else if (argv[i][0] != '-' && user == NULL)
			user = argv[i];
		else {
			fprintf(stderr,
				"rete console passwd: unexpected argument '%s'\n"
				"usage: rete console passwd USER -c coord.ini\n",
				argv[i]);
			return CLI_USAGE;
		}
	}
	if (ini == NULL || user == NULL) {
		fprintf(stderr,
			"rete console passwd: %s\nusage: rete console passwd USER -c coord.ini\n",
			user == NULL ? "the USER whose password to set is required"
				     : "-c coord.ini is required (its [console] users names the "
				       "accounts file)");
		return CLI_USAGE;
	}
	if (console_ini_load(&c, ini, "rete console passwd", &m) != RETE_OK) {
		if (m.text[0] != '\0')
			fprintf(stderr, "rete console passwd: %s\n", m.text);
		goto out;
	}
	if (c.users_path == NULL) {
		fprintf(stderr,
			"rete console passwd: %s has no [console] users = FILE; name the accounts "
			"file there first\n",
			ini);
		goto out;
	}
	bool tty = isatty(STDIN_FILENO);
	struct termios old, quiet;
	for (int k = 0; k < (tty ? 2 : 1); k++) {
		char *dst = k == 0 ? pw : again;
		if (tty) {
			fprintf(stderr, k == 0 ? "password for %s: " : "again: ", user);
			tcgetattr(STDIN_FILENO, &old);
			quiet = old;
			quiet.c_lflag &= ~(tcflag_t)ECHO;
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
		}
		bool got = fgets(dst, (int)sizeof(pw), stdin) != NULL;
		if (tty) {
			tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
			fputc('\n', stderr);
		}
		if (!got) {
			fprintf(stderr, "rete console passwd: no password given\n");
			goto out;
		}
		dst[strcspn(dst, "\r\n")] = '\0';
		/* the sign-in form takes at most CONSOLE_PASSWORD_MAX bytes: a
		 * longer password, set, could never be typed in */
		if (strlen(dst) > CONSOLE_PASSWORD_MAX) {
			fprintf(stderr,
				"rete console passwd: the password has more than %d bytes (UTF-8), "
				"the most the sign-in form takes; give a shorter one; nothing "
				"changed\n",
				CONSOLE_PASSWORD_MAX);
			goto out;
		}
	}
	if (tty && strcmp(pw, again) != 0) {
		fprintf(stderr, "rete console passwd: the two passwords differ; nothing changed\n");
		goto out;
	}
	/* a browser sends the password as UTF-8: one that is not could never
	 * be typed in the sign-in form, and the account never used */
	if (!console_utf8_valid(pw)) {
		fprintf(stderr,
			"rete console passwd: the password is not valid UTF-8 text (a "
			"browser could never send it, so the account could not sign in); "
			"type it in a UTF-8 terminal, or give it as UTF-8; nothing changed\n");
		goto out;
	}
	if (strlen(pw) < 10) {
		fprintf(stderr, "rete console passwd: a password needs at least 10 characters\n");
		goto out;
	}
	if (console_accounts_set(c.users_path, user, pw, &m) != RETE_OK) {
		fprintf(stderr, "rete console passwd: %s\n", m.text);
		goto out;
	}
	printf("rete console passwd: %s's password set in %s\n", user, c.users_path);
	/* with a steering group, an account not in its list sees every case:
	 * say which the account is, so that a new one is not a coordinator
	 * unawares */
	if (c.steering != NULL) {
		bool in = false;
		char u[CONSOLE_USER_MAX + 2];
		for (const char *q = c.steering; !in && list_next(&q, u, sizeof(u));)
			in = strcmp(u, user) == 0;
		if (in)
			printf("rete console passwd: %s is of the steering group ([console] "
			       "steering_group): the account sees the network's totals, not a "
			       "case's history\n"
			       "  %s fa parte della cabina di regia ([console] steering_group): "
			       "l'account vede i totali della rete, non la storia di un caso\n",
			       user, user);
		else
			printf("rete console passwd: %s is not in [console] steering_group: the "
			       "account sees every case (the coordinator's view); if the person "
			       "is of the steering group, add the name there\n"
			       "  %s non fa parte della cabina di regia ([console] "
			       "steering_group): l'account vede ogni caso (la vista del "
			       "coordinatore); se la persona fa parte della cabina di regia, "
			       "aggiungete il nome lì\n",
			       user, user);
	}
	rc = CLI_OK;
out:
	sodium_memzero(pw, sizeof(pw));
	sodium_memzero(again, sizeof(again));
	console_settings_free(&c);
	return rc;
}

int cmd_console(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
					     {"listen", required_argument, NULL, 'l'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	struct console c;
	const char *ini = NULL, *listen_opt = NULL;
	rete_msg m = {{0}};
	rete_http_addr addr;
	rete_httpd *h = NULL;
	int opt, rc = CLI_USAGE;
	rete_err err;

	if (argc > 1 && strcmp(argv[1], "passwd") == 0)
		return console_passwd(argc - 1, argv + 1);
	memset(&c, 0, sizeof(c));
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.moved, NULL);
	snprintf(c.listen, sizeof(c.listen), "%s", CONSOLE_LISTEN_DEFAULT);
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			ini = optarg;
			break;
		case 'l':
			listen_opt = optarg;
			break;
		case 'h':
			console_usage(stdout);
			return CLI_OK;
		case ':':
			fprintf(stderr, "rete console: %s needs a value\n", argv[optind - 1]);
			console_usage(stderr);
			return CLI_USAGE;
		default:
			fprintf(stderr, "rete console: unknown option '%s'\n", argv[optind - 1]);
			console_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind < argc || ini == NULL) {
		fprintf(stderr, optind < argc ? "rete console: unexpected argument\n"
					      : "rete console: -c coord.ini is required\n");
		console_usage(stderr);
		return CLI_USAGE;
	}
	/* made after the options: --help and a usage error return before */
	c.names = json_object();
	c.services = json_object();
	c.keys = json_object();
	if (c.names == NULL || c.services == NULL || c.keys == NULL) {
		fprintf(stderr, "rete console: out of memory\n");
		goto out;
	}
	/* [client], [report], [console] and what the start judges once they
	 * are read: every problem at once, the same as rete --check-config
	 * lists (console_check) */
	rete_check_list pr = {0};
	size_t naccounts = 0;
	if (coord_config_read(ini, &c.mc.cfg, &pr) != RETE_OK && c.mc.cfg.unreadable) {
		fprintf(stderr, "rete console: %s\n", pr.n ? pr.items[0] : "out of memory");
		rete_check_free(&pr);
		goto out;
	}
	err = console_ini_read(&c, ini, false, &pr, &m);
	if (err == RETE_EIO || err == RETE_ENOMEM) {
		fprintf(stderr, "rete console: %s\n", m.text);
		rete_check_free(&pr);
		goto out;
	}
	console_settle(&c, ini, listen_opt, true, &addr, &naccounts, &pr);
	if (pr.n > 0) {
		console_problems_say("rete console", ini, &pr);
		rete_check_free(&pr);
		goto out;
	}
	rete_check_free(&pr);
	c.auth = naccounts > 0;
	/* a session lives while its account does, with the password it signed in with */
	if (c.auth) {
		console_sessions_accounts(c.users_path);
		console_goods_recall(&c);
	}
	c.tls = c.tls_cert_path != NULL;
	if ((err = rete_access_log_open(c.access_path, RETE_ACCESS_KEEP_DEFAULT, false, &c.access,
					&m)) != RETE_OK ||
	    (err = monitor_new(&c.mc.mo, &m)) != RETE_OK) {
		fprintf(stderr, "rete console: %s\n", m.text);
		goto out;
	}
	c.mc.on_event = console_on_event;
	c.mc.on_event_arg = &c;
	if ((err = mon_start(&c.mc, true, &m)) != RETE_OK) {
		fprintf(stderr, "rete console: %s\n", m.text);
		rc = err == RETE_EREFUSED && !rete_wire_auth_failed(c.mc.dealer) ? CLI_FALSE
										 : CLI_USAGE;
		goto out;
	}
	console_directory(&c, monitor_next_index(c.mc.mo));
	console_trust(&c);
	console_health(&c);
	chartjs_load(CONSOLE_CHARTJS);
	if ((err = console_serve(&c, &addr, &h, &m)) != RETE_OK) {
		console_say_once(m.text);
		goto out;
	}
	printf("rete console: serving %s's view at %s://%s%s%s:%u/%s\n", c.mc.cfg.id,
	       c.tls ? "https" : "http", addr.v6 ? "[" : "", addr.host, addr.v6 ? "]" : "",
	       rete_httpd_port(h), c.auth ? " (sign-in required)" : "");
	fflush(stdout);

	signal(SIGINT, console_on_signal);
	signal(SIGTERM, console_on_signal);
	int64_t last_health = mon_mono_ms();
	while (!console_stop) {
		zmq_pollitem_t items[1] = {{rete_wire_socket(c.mc.sub), 0, ZMQ_POLLIN, 0}};
		if (zmq_poll(items, 1, 500) < 0 && errno != EINTR)
			break;
		bool changed = false;
		pthread_mutex_lock(&c.lock);
		err = mon_drain(&c.mc, &changed, &m);
		if (changed) {
			c.version++;
			pthread_cond_broadcast(&c.moved);
		}
		pthread_mutex_unlock(&c.lock);
		if (err != RETE_OK)
			fprintf(stderr, "rete console: %s\n", m.text);
		if (c.dir_dirty) {
			c.dir_dirty = false;
			console_directory(&c, monitor_next_index(c.mc.mo));
		}
		if (mon_mono_ms() - last_health >= MON_HEALTH_EVERY_MS) {
			console_trust(&c);
			console_health(&c);
			last_health = mon_mono_ms();
		}
	}
	rc = CLI_OK;
out:
	pthread_mutex_lock(&c.lock);
	c.stopping = true;
	pthread_cond_broadcast(&c.moved);
	pthread_mutex_unlock(&c.lock);
	rete_httpd_free(&h);
	rete_wire_close(&c.mc.sub);
	rete_wire_close(&c.mc.dealer);
	monitor_free(&c.mc.mo);
	coord_config_free(&c.mc.cfg);
	rete_access_log_close(&c.access);
	json_decref(c.health);
	json_decref(c.names);
	json_decref(c.services);
	json_decref(c.keys);
	json_decref(c.trust);
	console_sessions_accounts(NULL);
	console_settings_free(&c);
	free(chartjs);
	chartjs = NULL;
	chartjs_len = 0;
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	return rc;
}

int console_check(const char *ini, rete_check_list *problems, rete_check_list *notes)
{
	struct console c;
	rete_msg m = {{0}};
	rete_http_addr addr;
	size_t naccounts = 0;

	memset(&c, 0, sizeof(c));
	snprintf(c.listen, sizeof(c.listen), "%s", CONSOLE_LISTEN_DEFAULT);
	/* [client]'s problems are the caller's to list (coord_config_read):
	 * here what was accepted is read again, for the console's judgements */
	rete_check_list client = {0};
	rete_err err = coord_config_read(ini, &c.mc.cfg, &client);
	rete_check_free(&client);
	if (!c.mc.cfg.unreadable && err != RETE_ENOMEM)
		err = console_ini_read(&c, ini, false, problems, &m);
	if (c.mc.cfg.unreadable || err == RETE_ENOMEM)
		; /* said by the caller */
	else if (err == RETE_EIO)
		rete_check_add(problems, "%s", m.text);
	else
		console_settle(&c, ini, NULL, false, &addr, &naccounts, problems);
	if (!c.mc.cfg.unreadable && c.mc.cfg.events == NULL && c.mc.cfg.lines[4] == 0 &&
	    !c.console_section)
		rete_check_add(notes,
			       "[client] events is not set: rete monitor and rete console need it "
			       "(the broker's [broker] events address); rete report and rete audit "
			       "do not");
	coord_config_free(&c.mc.cfg);
	console_settings_free(&c);
	return (int)problems->n;
}
