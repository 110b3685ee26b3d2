/* config.h — the broker's configuration file and the directory it defines.
 *
 * broker.ini (INI, read with inih) names the broker (origin, id, key), its
 * endpoints and store folder, its tuning, the response time limits, and one
 * [agency ID] section per party of the network with its kind, public key
 * and services; [policy] lists which kinds may refer to which. Loading
 * checks everything and reports EVERY problem at once, each as
 * "FILE:LINE: [section] key: what is wrong; what would be accepted".
 * Unknown sections and keys are problems, so a typo never silently falls
 * back to a default.
 *
 * A loaded broker_config is immutable: a reload makes a new one and the
 * broker swaps the pointer. It also builds the Directory message the broker
 * logs (the parties, keys, services and policy in force).
 */
#ifndef RETE_BROKER_CONFIG_H
#define RETE_BROKER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access_log.h"
#include "error.h"
#include "httpd.h"
#include "idindex.h"
#include "keys.h"
#include "problems.h"
#include "rete.pb-c.h"

#define BROKER_ENDPOINT_MAX 256
#define BROKER_NLIMITS	    3 /* routine, urgent, emergency */

/* One party of the directory (an [agency ID] section). */
typedef struct broker_party {
	char id[RETE_ID_MAX + 1];
	char *name;
	Rete__PartyKind kind;
	rete_pubkey key;
	/* key.x in lowercase hex, as the ZAP handler puts it in each
	 * message's metadata (zap.c): compared with it for every frame */
	char keyhex[2 * RETE_PK_LEN + 1];
	char **services; /* codes offered, in file order */
	size_t nservices;
	char **consent; /* the subset that needs consent or a legal basis */
	size_t nconsent;
} broker_party;

/* One allowed referral route: parties of kind `from` may refer to `to`. */
typedef struct broker_route {
	Rete__PartyKind from, to;
} broker_route;

/* The whole configuration; paths are already resolved against the folder
 * of the ini file. */
typedef struct broker_config {
	char *path;		  /* the ini file as given */
	char *origin;		  /* the log's origin (checkpoint key name) */
	char id[RETE_ID_MAX + 1]; /* the broker's own party id */
	char *key_path;		  /* its .key file */
	rete_pubkey key_pub;	  /* the public half of that key */
	char listen[BROKER_ENDPOINT_MAX];
	char events[BROKER_ENDPOINT_MAX];
	int listen_line, events_line; /* their lines in the file, for --check-config */
	char *data;		      /* the store folder */
	char *state;	       /* the state file: the last checkpoint signed (default DATA.state) */
	char *access_log;      /* the access record (default DATA.access.log) */
	int access_log_line;   /* its key's line; 0: not set, the default */
	rete_keep access_keep; /* how long its lines are kept (default 24 months) */
	uint64_t checkpoint_every;
	int64_t checkpoint_interval_ms;
	unsigned delivery_window;
	char expiry[32]; /* as written, e.g. "5d" */
	int64_t expiry_ms;
	int64_t heartbeat_ms; /* 1 s to 7 d: ZeroMQ takes 3 times it as an int of ms */
	int64_t redeliver_ms; /* an unacked delivery is sent again after it */
	uint64_t max_frame;   /* bytes */
	unsigned verify_threads;
	char time_zone[64];
	bool metrics_on;	/* `metrics` set: the Prometheus endpoint (metrics.h) */
	rete_http_addr metrics; /* where it listens */
	char **holidays;	/* YYYY-MM-DD */
	size_t nholidays;
	char limit[BROKER_NLIMITS][32]; /* index = priority - 1 */
	int64_t limit_ms[BROKER_NLIMITS];
	/* Trusted time (broker/timestamp.c); tsa_url NULL: no TSA asked */
	char *tsa_url;		    /* http(s) URL of the RFC 3161 TSA */
	char *tsa_ca;		    /* PEM CA file the tokens must verify against */
	char *tsa_user;		    /* HTTP basic authentication, or NULL */
	char *tsa_password;	    /* read from tsa_password_file (never logged) */
	int64_t tsa_timeout_ms;	    /* one exchange with the TSA */
	int64_t timestamp_grace_ms; /* 0: off */
	char timestamp_grace[32];   /* as written, or "off" */
	/* clock_grace: after a start with the wall clock away from the store's
	 * newest time, how long the gap is not counted (ahead) or nothing is
	 * logged (behind) (docs/operations.md "Trusted time"); 0: off */
	int64_t clock_grace_ms;
	char clock_grace[32]; /* as written, or "off" */
	broker_party *parties;
	size_t nparties;
	broker_id_index party_index; /* parties by id (broker_config_party) */
	broker_route *routes;
	size_t nroutes;
	/* the files the broker reads as its own (broker.ini, keys, state,
	 * tsa_ca, tsa_password_file): never the access record */
	struct broker_own_file {
		char *path;
		char *what; /* e.g. "[agency cpi.mantova] key", "broker.ini itself" */
	} * own_files;
	size_t nown_files;
} broker_config;

/* broker_config_load reads and checks the ini file at path. On success *out
 * is the caller's (free with broker_config_free) and problems stays empty.
 * Otherwise *out is NULL and every problem found is appended to problems
 * (path = "FILE:LINE", text = "[section] key: ..."). Errors: RETE_EINVAL
 * (problems found), RETE_EIO (the file cannot be read), RETE_ENOMEM. */
rete_err broker_config_load(const char *path, broker_config **out, rete_problems *problems);

/* broker_duration_text writes ms for people, in the largest unit that
 * holds it whole ("5s", "24h" as "1d", "90s" as "90s"; "1500ms") into buf
 * (n bytes), and returns buf. */
char *broker_duration_text(int64_t ms, char *buf, size_t n);

/* broker_access_log_default is the access record's path for the store
 * folder data: DATA.access.log (malloc'd; NULL when out of memory). */
char *broker_access_log_default(const char *data);

/* broker_access_log_bad says what keeps the broker from keeping its
 * access record at path (c's, or another), in buf (n bytes), or returns
 * NULL when nothing does. *mistake is set when it is a mistake in
 * broker.ini, not a state of the disk: a folder, something not a regular
 * file, the store folder or its data.mdb, lock.mdb, journal.0 or
 * journal.1, or one of
 * c->own_files (--check-config
 * refuses these; the rest it warns of). */
const char *broker_access_log_bad(const broker_config *c, const char *path, char *buf, size_t n,
				  bool *mistake);
/* broker_access_log_in_store: path is inside the store folder (not a
 * mistake unless broker_access_log_bad says so, but a poor place: a
 * restore replaces the folder, and the record with it). */
bool broker_access_log_in_store(const broker_config *c, const char *path);

/* broker_config_free frees *c and sets it to NULL; NULL is fine. */
void broker_config_free(broker_config **c);

/* broker_config_party finds party `id` (NULL when it is not in the
 * directory). The pointer lives as long as c. */
const broker_party *broker_config_party(const broker_config *c, const char *id);

/* broker_kind_is_agency: true for the kinds that send and receive
 * referrals (everything but coordinator, auditor and broker). */
bool broker_kind_is_agency(Rete__PartyKind k);

/* broker_kind_name: the configuration spelling of a kind
 * ("social-services"), "unknown" for other values. */
const char *broker_kind_name(Rete__PartyKind k);

/* broker_config_route_allowed: may parties of kind `from` refer to `to`? */
bool broker_config_route_allowed(const broker_config *c, Rete__PartyKind from, Rete__PartyKind to);

/* broker_party_offers: does p offer service `code`? *consent (may be NULL)
 * says whether that service needs consent or a legal basis. */
bool broker_party_offers(const broker_party *p, const char *code, bool *consent);

/* broker_config_directory builds the Directory message of c with the given
 * serial (the broker itself is listed as a party of kind BROKER). The
 * caller frees *out with broker_directory_free. RETE_ENOMEM. */
rete_err broker_config_directory(const broker_config *c, uint64_t serial, Rete__Directory **out);

/* broker_directory_free frees a Directory made by broker_config_directory
 * and sets *d to NULL; NULL is fine. */
void broker_directory_free(Rete__Directory **d);

#endif
