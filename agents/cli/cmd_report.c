/* cmd_report.c — `rete report (-c coord.ini | --store DIR) --from DATE
 * --to DATE [--by LIST] [--format csv|json] [--sep C] [--decimal C]
 * [--tz ZONE]`.
 *
 * Gets the referral projection either from the broker (a snapshot query as
 * the coordinator of coord.ini) or from a store folder opened read-only
 * (which works beside a running broker, and on a backup copy), turns the
 * dates into a period in the network's time zone, and prints the report of
 * report.h. The time zone is --tz, else coord.ini's time_zone, else (with
 * --store) the one of the Directory in force in the log, else Europe/Rome.
 * Exit 0 when printed; 1 when the broker refused the query; 2 for usage,
 * configuration, connection and I/O errors.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_access.h"
#include "codec.h"
#include "coord_config.h"
#include "duration.h"
#include "json.h"
#include "report.h"
#include "store.h"

static void report_usage(FILE *f)
{
	fprintf(
	    f, "usage: rete report (-c coord.ini | --store DIR) --from YYYY-MM-DD --to YYYY-MM-DD\n"
	       "                   [--by agency,service,age-band,status] [--format csv|json]\n"
	       "                   [--sep ,|;|tab] [--decimal .|,] [--tz ZONE]\n"
	       "                   [--months] [--lang en|it] [--format xlsx -o FILE]\n"
	       "                   [--min-count N]\n\n"
	       "Counts of referrals sent, received, accepted, rejected (by reason), completed\n"
	       "(by outcome), cancelled, failed, overdue and open at the end of the period,\n"
	       "with median response times in hours; dates are whole days, both inclusive, in\n"
	       "the network's time zone. agency groups by requester -> performer pair.\n"
	       "CSV by default (--sep ';' also sets the decimal mark to ','); --format xlsx\n"
	       "-o FILE writes a workbook. Every agency pair and age band has a row, zeros\n"
	       "included; --months adds one column per month (referrals sent); --lang it\n"
	       "writes the headers in Italian (and a UTF-8 byte order mark first, for Excel).\n"
	       "Counts below N, 0 included (--min-count, else [report] min_count of\n"
	       "coord.ini, else 3) are shown as '< N', every other count rounded to 5 on its own "
	       "(totals\n"
	       "included), a median of fewer than N as 'suppressed', and the groups of fewer\n"
	       "than N referrals in the whole log summed into one row 'others' ('altri', the\n"
	       "same rows in every period): small counts point at\n"
	       "families (GDPR art. 25, 89); --min-count 1 shows every count and row exact.\n");
}

/* Referrals copied out of the store (the iterator lends them). */
struct collect {
	Rete__ReferralInfo **v;
	size_t n, cap;
	bool oom;
};

static int collect_one(void *ctx, const Rete__ReferralInfo *r)
{
	struct collect *c = ctx;
	size_t len = rete__referral_info__get_packed_size(r);
	uint8_t *buf = malloc(len ? len : 1);
	Rete__ReferralInfo *copy;

	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 256;
		Rete__ReferralInfo **nv = realloc(c->v, cap * sizeof(*nv));
		if (nv == NULL) {
			free(buf);
			c->oom = true;
			return 1;
		}
		c->v = nv;
		c->cap = cap;
	}
	if (buf == NULL) {
		c->oom = true;
		return 1;
	}
	rete__referral_info__pack(r, buf);
	copy = rete__referral_info__unpack(NULL, len, buf);
	free(buf);
	if (copy == NULL) {
		c->oom = true;
		return 1;
	}
	c->v[c->n++] = copy;
	return 0;
}

static void collect_free(struct collect *c)
{
	for (size_t i = 0; i < c->n; i++)
		rete__referral_info__free_unpacked(c->v[i], NULL);
	free(c->v);
	memset(c, 0, sizeof(*c));
}

/* from_store reads every referral of the store in dir, in one read
 * transaction. */
static int from_store(const char *dir, struct collect *c, char **tz)
{
	rete_store *s = NULL;
	rete_store_rtxn *rt = NULL;
	rete_msg m = {{0}};
	rete_err err;

	if ((err = rete_store_open(&s, dir, RETE_STORE_RDONLY, &m)) != RETE_OK) {
		fprintf(stderr, "rete report: %s\n", m.text[0] ? m.text : rete_strerror(err));
		return CLI_USAGE;
	}
	if ((err = rete_store_read_begin(s, &rt, &m)) == RETE_OK) {
		*tz = rete_store_time_zone(s, rt);
		err = rete_store_referrals_iter(s, rt, collect_one, c, &m);
		rete_store_read_end(&rt);
	}
	rete_store_close(&s);
	if (err == RETE_OK && c->oom)
		err = rete_msg_set(&m, RETE_ENOMEM, "out of memory");
	if (err != RETE_OK) {
		fprintf(stderr, "rete report: %s: %s\n", dir,
			m.text[0] ? m.text : rete_strerror(err));
		return CLI_USAGE;
	}
	return CLI_OK;
}

/* date_shaped: s is written YYYY-MM-DD (digits and dashes), a day of the
 * calendar or not */
static bool date_shaped(const char *s)
{
	if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
		return false;
	for (int i = 0; i < 10; i++)
		if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9'))
			return false;
	return true;
}

/* output_ok checks -o FILE before anything is read: a file that can be
 * made in a folder that exists (libxlsxwriter says only "Usually a
 * permissions error" when it cannot); false with the sentence said. */
static bool output_ok(const char *path)
{
	struct stat st;
	char dir[4096];
	const char *slash = strrchr(path, '/');

	if (path[0] == '\0' || (slash != NULL && slash[1] == '\0')) {
		fprintf(stderr,
			"rete report: -o '%s' is not a file name; give -o FOLDER/NAME.xlsx\n",
			path);
		return false;
	}
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		fprintf(stderr,
			"rete report: -o '%s' is a folder; give the workbook's file name, e.g. "
			"-o %s/report.xlsx\n",
			path, path);
		return false;
	}
	/* the folder: what is before the last '/' ("/" for "/x", "." for "x") */
	char copy[4096];
	snprintf(copy, sizeof(copy), "%s", path);
	snprintf(dir, sizeof(dir), "%s", dirname(copy));
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr,
			"rete report: -o '%s': the folder '%s' %s; make it first or give another\n",
			path, dir, stat(dir, &st) != 0 ? "does not exist" : "is not a folder");
		return false;
	}
	if (access(dir, W_OK | X_OK) != 0) {
		fprintf(stderr,
			"rete report: -o '%s': the folder '%s' cannot be written by this "
			"user (%s); give a folder of yours\n",
			path, dir, strerror(errno));
		return false;
	}
	if (access(path, F_OK) == 0 && access(path, W_OK) != 0) {
		fprintf(stderr,
			"rete report: -o '%s' exists and cannot be written by this user (%s)\n",
			path, strerror(errno));
		return false;
	}
	return true;
}

int cmd_report(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
					     {"store", required_argument, NULL, 'S'},
					     {"from", required_argument, NULL, 'f'},
					     {"to", required_argument, NULL, 't'},
					     {"by", required_argument, NULL, 'b'},
					     {"format", required_argument, NULL, 'F'},
					     {"sep", required_argument, NULL, 's'},
					     {"decimal", required_argument, NULL, 'd'},
					     {"tz", required_argument, NULL, 'z'},
					     {"months", no_argument, NULL, 'M'},
					     {"lang", required_argument, NULL, 'L'},
					     {"output", required_argument, NULL, 'o'},
					     {"min-count", required_argument, NULL, 'n'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	const char *ini = NULL, *store = NULL, *from = NULL, *to = NULL, *by_s = "";
	const char *format = "csv", *tz_opt = NULL, *output = NULL;
	bool months = false;
	unsigned min_count = 0; /* --min-count; else coord.ini's, else REPORT_MIN_COUNT */
	report_lang lang = REPORT_EN;
	char sep = ',', dec = 0;
	int c, rc = CLI_USAGE;
	unsigned by = 0;
	rete_msg m = {{0}};
	coord_config cfg = {0};
	struct collect col = {0};
	Rete__BrokerFrame *frame = NULL;
	rete_wire *w = NULL;
	char *tz_store = NULL;
	report *rep = NULL;

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			ini = optarg;
			break;
		case 'M':
			months = true;
			break;
		case 'o':
			output = optarg;
			break;
		case 'L':
			if (report_parse_lang(optarg, &lang, &m) != RETE_OK) {
				fprintf(stderr, "rete report: --lang: %s\n", m.text);
				return CLI_USAGE;
			}
			break;
		case 'n':
			if (report_parse_min_count(optarg, &min_count, &m) != RETE_OK) {
				fprintf(stderr, "rete report: --min-count %s\n", m.text);
				return CLI_USAGE;
			}
			break;
		case 'S':
			store = optarg;
			break;
		case 'f':
			from = optarg;
			break;
		case 't':
			to = optarg;
			break;
		case 'b':
			by_s = optarg;
			break;
		case 'F':
			format = optarg;
			break;
		case 'z':
			tz_opt = optarg;
			break;
		case 's':
		case 'd':
			if (strcmp(optarg, "tab") == 0 || strcmp(optarg, "\\t") == 0)
				optarg = (char *)"\t";
			if (strlen(optarg) != 1 || (c == 's' ? strchr(",;\t|", optarg[0])
							     : strchr(".,", optarg[0])) == NULL) {
				fprintf(stderr, "rete report: %s '%s' is not accepted; use %s\n",
					c == 's' ? "--sep" : "--decimal", optarg,
					c == 's' ? "',', ';', '|' or tab" : "'.' or ','");
				return CLI_USAGE;
			}
			if (c == 's')
				sep = optarg[0];
			else
				dec = optarg[0];
			break;
		case 'h':
			report_usage(stdout);
			return CLI_OK;
		case ':':
			fprintf(stderr, "rete report: %s needs a value\n", argv[optind - 1]);
			report_usage(stderr);
			return CLI_USAGE;
		default:
			fprintf(stderr, "rete report: unknown option '%s'\n", argv[optind - 1]);
			report_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "rete report: unexpected argument '%s'\n", argv[optind]);
		report_usage(stderr);
		return CLI_USAGE;
	}
	if ((ini == NULL) == (store == NULL)) {
		fprintf(stderr, "rete report: give either -c coord.ini or --store DIR\n");
		report_usage(stderr);
		return CLI_USAGE;
	}
	if (from == NULL || to == NULL) {
		fprintf(stderr, "rete report: --from and --to are required (YYYY-MM-DD)\n");
		return CLI_USAGE;
	}
	if (!rete_date_valid(from) || !rete_date_valid(to)) {
		const char *d = rete_date_valid(from) ? to : from;
		fprintf(stderr,
			"rete report: %s '%s' %s; dates from 1970-01-01 to 9999-12-31 are "
			"accepted, written YYYY-MM-DD (e.g. 2026-11-01)\n",
			rete_date_valid(from) ? "--to" : "--from", d,
			!date_shaped(d)		    ? "is not a date"
			: strncmp(d, "1970", 4) < 0 ? "is out of range"
						    : "is not a day of the calendar");
		return CLI_USAGE;
	}
	if (strcmp(format, "csv") != 0 && strcmp(format, "json") != 0 &&
	    strcmp(format, "xlsx") != 0) {
		fprintf(stderr,
			"rete report: --format '%s' is not accepted; use csv, json or xlsx\n",
			format);
		return CLI_USAGE;
	}
	if ((strcmp(format, "xlsx") == 0) != (output != NULL)) {
		fprintf(stderr, output ? "rete report: -o FILE is for --format xlsx only\n"
				       : "rete report: --format xlsx writes a file: give -o "
					 "FILE.xlsx\n");
		return CLI_USAGE;
	}
	if (output != NULL && !output_ok(output))
		return CLI_USAGE;
	if (report_parse_by(by_s, &by, &m) != RETE_OK) {
		fprintf(stderr, "rete report: %s\n", m.text);
		return CLI_USAGE;
	}
	if (!cli_access_argv("rete", argc, argv, false))
		return CLI_USAGE; /* every read of the log is recorded first (issue 18) */
	if (dec == 0)
		dec = sep == ';' ? ',' : '.';
	if (dec == sep) {
		fprintf(stderr, "rete report: the decimal mark '%c' cannot also be the separator\n",
			dec);
		return CLI_USAGE;
	}

	/* the referrals */
	const Rete__ReferralInfo *const *infos;
	size_t n;
	const char *tz;
	if (store != NULL) {
		if ((rc = from_store(store, &col, &tz_store)) != CLI_OK)
			goto out;
		infos = (const Rete__ReferralInfo *const *)col.v;
		n = col.n;
		tz = tz_opt ? tz_opt : tz_store ? tz_store : RETE_DEFAULT_TZ;
	} else {
		rete_err err;
		if ((err = coord_config_load(ini, &cfg, &m)) != RETE_OK ||
		    (err = coord_connect(&cfg, false, &w, &m)) != RETE_OK) {
			fprintf(stderr, "rete report: %s\n", m.text);
			goto out;
		}
		err = coord_query(&cfg, w, RETE__QUERY__WHAT_SNAPSHOT, &frame, &m);
		if (err != RETE_OK) {
			fprintf(stderr, "rete report: %s\n", m.text);
			rc = err == RETE_EREFUSED && !rete_wire_auth_failed(w) ? CLI_FALSE
									       : CLI_USAGE;
			goto out;
		}
		infos = (const Rete__ReferralInfo *const *)frame->result->snapshot->referrals;
		n = frame->result->snapshot->n_referrals;
		tz = tz_opt ? tz_opt : cfg.time_zone;
	}

	/* the period, whole days in the network's time zone: one this machine
	 * knows (else the C library counts days in UTC and says nothing) */
	if (!cli_tz_known(tz)) {
		cli_tz_refuse("rete report", tz,
			      tz_opt != NULL ? "--tz"
			      : store == NULL && cfg.time_zone_default
				  ? "the default: the configuration gives no time_zone"
			      : store == NULL	 ? "time_zone of the configuration"
			      : tz_store != NULL ? "the time zone of the store's directory"
						 : "the default",
			      "the days of the period would be counted in UTC");
		rc = CLI_USAGE;
		goto out;
	}
	int64_t from_ms, to_ms, a, b;
	if (rete_day_bounds(from, tz, &from_ms, &a, &m) != RETE_OK ||
	    rete_day_bounds(to, tz, &b, &to_ms, &m) != RETE_OK) {
		fprintf(stderr, "rete report: %s\n", m.text);
		rc = CLI_USAGE;
		goto out;
	}
	if (from_ms >= to_ms) {
		fprintf(stderr, "rete report: --from %s is after --to %s\n", from, to);
		rc = CLI_USAGE;
		goto out;
	}
	if (report_build(infos, n, from_ms, to_ms, rete_now_ms(), by, &rep, &m) != RETE_OK) {
		fprintf(stderr, "rete report: %s\n", m.text);
		rc = CLI_USAGE;
		goto out;
	}
	if (months && report_add_months(rep, infos, n, from, to, tz, &m) != RETE_OK) {
		fprintf(stderr, "rete report: %s\n", m.text);
		rc = CLI_USAGE;
		goto out;
	}
	/* small counts point at families: hidden unless asked otherwise */
	if (min_count == 0)
		min_count = store == NULL ? cfg.min_count : REPORT_MIN_COUNT;
	if (report_suppress(rep, min_count, &m) != RETE_OK) {
		fprintf(stderr, "rete report: %s\n", m.text);
		rc = CLI_USAGE;
		goto out;
	}
	if (strcmp(format, "xlsx") == 0) {
		char title[160];
		snprintf(title, sizeof(title),
			 lang == REPORT_IT ? "Rapporto dal %s al %s (%s)"
					   : "Report from %s to %s (%s)",
			 from, to, tz);
		if (report_write_xlsx(rep, output, lang, title, &m) != RETE_OK) {
			fprintf(stderr, "rete report: %s\n", m.text);
			rc = CLI_USAGE;
			goto out;
		}
	} else if (strcmp(format, "csv") == 0) {
		/* the Italian headers (età, capacità): a UTF-8 byte order mark
		 * first, as the console's CSV has, or Excel reads the file in
		 * the PC's old code page; the English one is ASCII */
		if (lang == REPORT_IT)
			fputs("\xEF\xBB\xBF", stdout);
		if (report_write_csv_lang(rep, stdout, sep, dec, lang, &m) != RETE_OK) {
			fprintf(stderr, "rete report: %s\n", m.text);
			rc = CLI_USAGE;
			goto out;
		}
	} else {
		json_t *j = report_to_json(rep, from, to, tz);
		if (j == NULL || json_dumpf(j, stdout, JSON_INDENT(2)) != 0) {
			json_decref(j);
			fprintf(stderr, "rete report: cannot write the report\n");
			rc = CLI_USAGE;
			goto out;
		}
		json_decref(j);
		fputc('\n', stdout);
		if (fflush(stdout) != 0) {
			rc = CLI_USAGE;
			goto out;
		}
	}
	rc = CLI_OK;
out:
	report_free(&rep);
	if (frame != NULL)
		rete__broker_frame__free_unpacked(frame, NULL);
	rete_wire_close(&w);
	coord_config_free(&cfg);
	collect_free(&col);
	free(tz_store);
	return rc;
}
