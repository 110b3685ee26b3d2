/* cmd_health.c — `rete health -c coord.ini [--json]`: the broker's health
 * for people and for monitoring systems (exit 0 healthy, 1 not, 2 when the
 * broker cannot be asked). The broker decides what counts as a problem
 * (queues waiting too long, the map or the disk nearly full, an old
 * checkpoint) and lists them; this command shows them and the figures. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "coord_config.h"
#include "duration.h"
#include "json.h"

static void health_usage(FILE *out)
{
	fprintf(out,
		"usage: rete health -c coord.ini [--json]\n\n"
		"Asks the broker for its health: its version, queue depth and oldest\n"
		"undelivered message per agency, when each agency was last heard from, map\n"
		"and disk use, the age of the latest checkpoint (and of the latest time stamp,\n"
		"when the broker asks a TSA), and the problems the broker sees.\n"
		"The configuration is a coordinator's or an auditor's (docs/coordinator.md).\n\n"
		"  -c FILE   the coordinator's (or auditor's) configuration\n"
		"  --json    print the broker's answer as JSON\n\n"
		"Exit codes: 0 healthy, 1 the broker reports problems or refused the query,\n"
		"2 usage, configuration or connection error.\n");
}

/* ago formats the time since ms (0 = never) into buf. */
static const char *ago(int64_t now, int64_t ms, char *buf, size_t n)
{
	if (ms <= 0)
		return "never";
	int64_t s = (now - ms) / 1000;
	if (s < 0)
		s = 0;
	if (s < 120)
		snprintf(buf, n, "%" PRId64 "s ago", s);
	else if (s < 7200)
		snprintf(buf, n, "%" PRId64 "m ago", s / 60);
	else
		snprintf(buf, n, "%" PRId64 "h ago", s / 3600);
	return buf;
}

/* json_default_shown puts key with value (a new reference, taken) into j
 * when the protobuf JSON mapping left it out (proto3 leaves out zeros and
 * false): a monitoring script must read "ok": false and a full disk's
 * "diskFree": "0", not find nothing. 0, or -1 (out of memory). */
static int json_default_shown(json_t *j, const char *key, json_t *value)
{
	if (json_object_get(j, key) != NULL) {
		json_decref(value);
		return 0;
	}
	return json_object_set_new(j, key, value);
}

static void print_health(const Rete__Health *h)
{
	int64_t now = rete_now_ms();
	char b1[32], b2[32];

	printf("broker health: %s   log size %" PRIu64 "\n", h->ok ? "OK" : "PROBLEMS",
	       h->log_size);
	/* a broker of an earlier build of protocol 2 may not say it */
	printf("broker version: %s\n", h->version && h->version[0] ? h->version : "not reported");
	for (size_t i = 0; i < h->n_problems; i++)
		printf("  problem: %s\n", h->problems[i]);
	printf("map: %.1f of %.1f MiB used   disk free: %.1f MiB   latest checkpoint: %s\n",
	       h->map_used / 1048576.0, h->map_size / 1048576.0, h->disk_free / 1048576.0,
	       h->checkpoint_at > 0 ? ago(now, h->checkpoint_at, b1, sizeof(b1))
				    : "none signed since the broker started");
	if (h->timestamp_at > 0) /* v3: the broker asks a TSA (tsa_url) */
		printf("latest time stamp: %s\n", ago(now, h->timestamp_at, b1, sizeof(b1)));
	printf("%-28s %-10s %-12s %8s  %s\n", "AGENCY", "STATE", "LAST SEEN", "QUEUE",
	       "OLDEST UNDELIVERED");
	for (size_t i = 0; i < h->n_agencies; i++) {
		const Rete__AgencyHealth *a = h->agencies[i];
		printf("%-28s %-10s %-12s %8" PRIu64 "  %s\n", a->id ? a->id : "?",
		       a->connected ? "connected" : "silent",
		       ago(now, a->last_seen_at, b1, sizeof(b1)), a->queue_depth,
		       a->queue_depth ? ago(now, a->oldest_undelivered_at, b2, sizeof(b2)) : "-");
	}
}

int cmd_health(int argc, char **argv)
{
	const char *ini = NULL;
	bool json = false;
	coord_config cfg;
	rete_wire *w = NULL;
	Rete__BrokerFrame *f = NULL;
	rete_msg m = {{0}};
	rete_err err;
	int rc;

	if (cli_wants_help(argc, argv)) {
		health_usage(stdout);
		return CLI_OK;
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-c") == 0 && i + 1 < argc) {
			ini = argv[++i];
		} else if (strcmp(argv[i], "--json") == 0) {
			json = true;
		} else if (strcmp(argv[i], "-c") == 0) {
			fprintf(stderr,
				"rete health: -c needs a value: a coord.ini or audit.ini\n");
			health_usage(stderr);
			return CLI_USAGE;
		} else {
			fprintf(stderr, "rete health: unexpected argument '%s'\n", argv[i]);
			health_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (ini == NULL) {
		fprintf(stderr, "rete health: -c coord.ini is required\n");
		health_usage(stderr);
		return CLI_USAGE;
	}
	if ((err = coord_config_load(ini, &cfg, &m)) != RETE_OK) {
		fprintf(stderr, "rete health: %s\n", m.text);
		return CLI_USAGE;
	}
	err = coord_connect(&cfg, false, &w, &m);
	if (err == RETE_OK)
		err = coord_query(&cfg, w, RETE__QUERY__WHAT_HEALTH, &f, &m);
	if (err != RETE_OK) {
		fprintf(stderr, "rete health: %s\n", m.text);
		rc = err == RETE_EREFUSED ? CLI_FALSE : CLI_USAGE;
		goto out;
	}
	const Rete__Health *h = f->result->health;
	if (json) {
		json_t *j = rete_pb_to_json(&h->base);
		if (j != NULL && (json_default_shown(j, "ok", json_boolean(h->ok)) != 0 ||
				  json_default_shown(j, "diskFree", json_string("0")) != 0)) {
			json_decref(j);
			j = NULL;
		}
		if (j == NULL) {
			fprintf(stderr, "rete health: out of memory\n");
			rc = CLI_USAGE;
			goto out;
		}
		json_dumpf(j, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		json_decref(j);
	} else {
		print_health(h);
	}
	rc = h->ok ? CLI_OK : CLI_FALSE;
out:
	if (f != NULL)
		rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&w);
	coord_config_free(&cfg);
	return rc;
}
