/* cmd_monitor.c — `rete monitor -c coord.ini [--once] [--json]
 * [--agency TEXT] [--service TEXT]`.
 *
 * The coordinator's live view. It subscribes to the broker's events FIRST,
 * waits for that connection, then asks for a snapshot (log size S) and
 * applies only the events with index >= S, in order; an event beyond the
 * next index (a gap: the subscription missed something) makes it take a new
 * snapshot and offer the event again, so nothing is missed or counted twice
 * (monitor.h). Agencies' health comes with the snapshot and again from a
 * health query every few seconds.
 *
 * Live, it draws the panels of monitor.h with ncurses, redrawing on events
 * and every second: Tab / Shift-Tab move between panels, the arrows and
 * PgUp/PgDn scroll the panel in focus (left/right for wide tables), `a` and `s` ask for an agency
 * or a service filter at a prompt, `c` clears the filter, `q` quits. --once prints the same content
 * as text and exits; --json prints it as JSON. Exit 0; 1 when the broker refuses the coordinator; 2
 * for usage, configuration and connection errors.
 */
#include <errno.h>
#include <getopt.h>
#include <ncurses.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "cli.h"
#include "coord_config.h"
#include "duration.h"
#include "json.h"
#include "monitor.h"
#include "monitor_session.h"
#include "wire.h"

static volatile sig_atomic_t mon_stop;

static void mon_on_signal(int sig)
{
	(void)sig;
	mon_stop = 1;
}

static void monitor_usage(FILE *f)
{
	fprintf(f,
		"usage: rete monitor -c coord.ini [--once] [--json] [--agency TEXT] [--service "
		"TEXT]\n\n"
		"The network's referrals live, from the broker's snapshot and events: overdue\n"
		"referrals first, referrals by status per agency pair and service, response\n"
		"times, log entries per minute, agencies connected or silent. Only metadata.\n"
		"Keys: Tab next panel, arrows scroll, a agency filter, s service filter,\n"
		"c clear the filter, q quit. --once prints the view and exits; --json as JSON.\n");
}

/* ------------------------------------------------------------------------
 * The live view
 * ---------------------------------------------------------------------- */

struct ui {
	int focus;
	int scroll[MONITOR_NPANELS];
	int hscroll[MONITOR_NPANELS]; /* columns scrolled off to the left */
	monitor_lines lines[MONITOR_NPANELS];
};

static void ui_put(int y, int x, int width, const char *s, attr_t attr)
{
	if (width <= 0 || y < 0 || y >= LINES)
		return;
	attron(attr);
	mvaddnstr(y, x, s, width);
	attroff(attr);
}

/* ui_cut: s without its first `skip` characters (horizontal scrolling). */
static const char *ui_cut(const char *s, int skip)
{
	size_t n = strlen(s);
	return skip <= 0 ? s : (size_t)skip >= n ? "" : s + skip;
}

static void ui_draw(struct mon_ctx *c, struct ui *u)
{
	int64_t now = rete_now_ms();
	char head[512], at[48];
	int heights[MONITOR_NPANELS], y = 1;
	int avail = LINES - 2;

	erase();
	for (int p = 0; p < MONITOR_NPANELS; p++) {
		monitor_lines_free(&u->lines[p]);
		monitor_panel_lines(c->mo, p, now, &c->filter, &u->lines[p], NULL);
	}
	/* the small panels get what they need; overdue and status share the
	 * rest, overdue first */
	heights[MONITOR_PANEL_TIMES] = 1 + (int)u->lines[MONITOR_PANEL_TIMES].n;
	heights[MONITOR_PANEL_RATE] = 1 + (int)u->lines[MONITOR_PANEL_RATE].n;
	heights[MONITOR_PANEL_AGENCIES] = 1 + (int)u->lines[MONITOR_PANEL_AGENCIES].n;
	if (heights[MONITOR_PANEL_AGENCIES] > 9)
		heights[MONITOR_PANEL_AGENCIES] = 9;
	int rest = avail - heights[MONITOR_PANEL_TIMES] - heights[MONITOR_PANEL_RATE] -
		   heights[MONITOR_PANEL_AGENCIES];
	if (rest < 4)
		rest = 4;
	heights[MONITOR_PANEL_OVERDUE] = rest / 2;
	heights[MONITOR_PANEL_STATUS] = rest - rest / 2;

	/* gaps: snapshots taken again because the event stream lost something
	 * (the view is exact again after each; many of them mean a slow link) */
	char gaps[48] = "";
	if (c->snapshots > 1)
		snprintf(gaps, sizeof(gaps), "  gaps %llu", (unsigned long long)(c->snapshots - 1));
	/* the local time, in the network's time zone (set at the start) */
	time_t secs = (time_t)(now / 1000);
	struct tm tm;
	if (localtime_r(&secs, &tm) == NULL || strftime(at, sizeof(at), "%H:%M:%S %Z", &tm) == 0)
		rete_time_format(now / 1000 * 1000, at);
	snprintf(head, sizeof(head),
		 "rete monitor  %s  log size %llu  referrals %zu%s  %s%s%s%s%s%s", c->cfg.id,
		 (unsigned long long)monitor_next_index(c->mo), monitor_referral_count(c->mo), gaps,
		 at, c->filter.agency[0] ? "  agency ~ " : "", c->filter.agency,
		 c->filter.service[0] ? "  service ~ " : "", c->filter.service,
		 rete_wire_connected(c->dealer) ? "" : "  [broker not connected]");
	ui_put(0, 0, COLS, head, A_BOLD);

	for (int p = 0; p < MONITOR_NPANELS && y < LINES - 1; p++) {
		const monitor_lines *l = &u->lines[p];
		int body = heights[p] - 1;
		char title[256];
		if (u->scroll[p] > (int)l->n - body)
			u->scroll[p] = (int)l->n - body;
		if (u->scroll[p] < 0)
			u->scroll[p] = 0;
		size_t widest = 0;
		for (size_t k = 0; k < l->n; k++)
			if (strlen(l->line[k]) > widest)
				widest = strlen(l->line[k]);
		/* a table drops whole columns on a narrow screen (monitor_lines_fit):
		 * no horizontal scrolling, the first column always shown */
		int hidden = 0;
		char fitted[1024], hint[64] = "";
		if (l->ncol > 0) {
			u->hscroll[p] = 0;
			monitor_lines_fit(l, 0, COLS - 2, fitted, sizeof(fitted), &hidden);
			if (hidden > 0)
				snprintf(hint, sizeof(hint), "  (%d column%s hidden)", hidden,
					 hidden > 1 ? "s" : "");
		} else if ((int)widest - u->hscroll[p] > COLS - 2 || u->hscroll[p] > 0) {
			snprintf(hint, sizeof(hint), "  (wider: left/right)");
		}
		snprintf(title, sizeof(title), "%s %s%s%s", p == u->focus ? ">" : " ",
			 monitor_panel_title(p), (int)l->n > body ? "  (more: up/down)" : "", hint);
		ui_put(y++, 0, COLS, title, p == u->focus ? A_REVERSE : A_BOLD);
		/* a header line (the first, when the panel has rows) stays put */
		int first = 0;
		if (l->n > 1 && p != MONITOR_PANEL_RATE && body > 1) {
			monitor_lines_fit(l, 0, COLS - 2, fitted, sizeof(fitted), NULL);
			ui_put(y++, 2, COLS - 2,
			       l->ncol ? fitted : ui_cut(l->line[0], u->hscroll[p]), A_UNDERLINE);
			body--;
			first = 1;
		}
		for (int i = 0; i < body && y < LINES - 1; i++) {
			size_t k = (size_t)(first + u->scroll[p] + i);
			if (k < l->n) {
				monitor_lines_fit(l, k, COLS - 2, fitted, sizeof(fitted), NULL);
				ui_put(y, 2, COLS - 2,
				       l->ncol ? fitted : ui_cut(l->line[k], u->hscroll[p]),
				       p == MONITOR_PANEL_OVERDUE && k > 0 ? A_BOLD : A_NORMAL);
			}
			y++;
		}
	}
	ui_put(LINES - 1, 0, COLS,
	       c->error[0]
		   ? c->error
		   : "Tab next panel  arrows scroll  a agency  s service  c clear filter  q quit",
	       c->error[0] ? A_REVERSE : A_DIM);
	refresh();
}

/* ui_prompt asks for a filter value at the bottom line. */
static void ui_prompt(const char *label, char *out, size_t n)
{
	char buf[96] = {0};

	move(LINES - 1, 0);
	clrtoeol();
	attron(A_BOLD);
	printw("%s (empty = any, Enter to apply): ", label);
	attroff(A_BOLD);
	nodelay(stdscr, FALSE);
	echo();
	curs_set(1);
	if (getnstr(buf, (int)sizeof(buf) - 1) == OK)
		snprintf(out, n, "%s", buf);
	noecho();
	curs_set(0);
	nodelay(stdscr, TRUE);
}

static int mon_live(struct mon_ctx *c)
{
	struct ui u = {0};
	rete_msg m = {{0}};
	bool quit = false, dirty = true;
	int64_t last_draw = 0;
	int rc = CLI_OK;

	signal(SIGINT, mon_on_signal);
	signal(SIGTERM, mon_on_signal);
	/* newterm, not initscr: initscr exits the process when the terminal
	 * cannot be used, newterm says so */
	SCREEN *scr = newterm(NULL, stdout, stdin);
	if (scr == NULL) {
		fprintf(stderr, "rete monitor: the terminal cannot be used (TERM=%s); try --once\n",
			getenv("TERM") ? getenv("TERM") : "");
		return CLI_USAGE;
	}
	set_term(scr);
	cbreak();
	noecho();
	keypad(stdscr, TRUE);
	nodelay(stdscr, TRUE);
	curs_set(0);

	while (!quit && !mon_stop) {
		int64_t now = mon_mono_ms();
		if (dirty || now - last_draw >= 1000) {
			ui_draw(c, &u);
			last_draw = now;
			dirty = false;
		}
		zmq_pollitem_t items[3] = {
		    {rete_wire_socket(c->sub), 0, ZMQ_POLLIN, 0},
		    {rete_wire_socket(c->dealer), 0, ZMQ_POLLIN, 0},
		    {NULL, STDIN_FILENO, ZMQ_POLLIN, 0},
		};
		long wait = 1000 - (long)(mon_mono_ms() - last_draw);
		if (zmq_poll(items, 3, wait > 0 ? wait : 0) < 0 && errno != EINTR)
			break;

		/* events (also every second: the wire watches handshakes there) */
		if (mon_drain(c, &dirty, &m) != RETE_OK) {
			snprintf(c->error, sizeof(c->error), "%s", m.text);
			dirty = true;
		}
		/* answers to our health queries */
		for (;;) {
			Rete__BrokerFrame *f = NULL;
			rete_err err = rete_wire_recv(c->dealer, 0, &f, &m);
			if (err != RETE_OK) {
				if (err == RETE_EREFUSED) {
					snprintf(c->error, sizeof(c->error), "%s", m.text);
					dirty = true;
				}
				break;
			}
			if (f->command_case == RETE__BROKER_FRAME__COMMAND_RESULT && f->result &&
			    f->result->answer_case == RETE__QUERY_RESULT__ANSWER_HEALTH) {
				monitor_set_agencies(c->mo, f->result->health->agencies,
						     f->result->health->n_agencies, NULL);
				dirty = true;
			}
			rete__broker_frame__free_unpacked(f, NULL);
		}
		if (mon_mono_ms() - c->last_health >= MON_HEALTH_EVERY_MS) {
			Rete__Query q = RETE__QUERY__INIT;
			Rete__HealthQuery hq = RETE__HEALTH_QUERY__INIT;
			q.what_case = RETE__QUERY__WHAT_HEALTH;
			q.health = &hq;
			rete_wire_query(c->dealer, &q, NULL, NULL);
			c->last_health = mon_mono_ms();
		}

		/* keys */
		int ch;
		while ((ch = getch()) != ERR) {
			dirty = true;
			switch (ch) {
			case 'q':
			case 'Q':
				quit = true;
				break;
			case '\t':
				u.focus = (u.focus + 1) % MONITOR_NPANELS;
				break;
			case KEY_BTAB:
				u.focus = (u.focus + MONITOR_NPANELS - 1) % MONITOR_NPANELS;
				break;
			case KEY_DOWN:
				u.scroll[u.focus]++;
				break;
			case KEY_UP:
				u.scroll[u.focus]--;
				break;
			case KEY_RIGHT:
				u.hscroll[u.focus] += 8;
				break;
			case KEY_LEFT:
				u.hscroll[u.focus] -=
				    u.hscroll[u.focus] >= 8 ? 8 : u.hscroll[u.focus];
				break;
			case KEY_NPAGE:
				u.scroll[u.focus] += 10;
				break;
			case KEY_PPAGE:
				u.scroll[u.focus] -= 10;
				break;
			case 'a':
				ui_prompt("agency", c->filter.agency, sizeof(c->filter.agency));
				break;
			case 's':
				ui_prompt("service", c->filter.service, sizeof(c->filter.service));
				break;
			case 'c':
				c->filter.agency[0] = c->filter.service[0] = '\0';
				c->error[0] = '\0';
				break;
			default:
				break;
			}
		}
	}
	endwin();
	delscreen(scr);
	for (int p = 0; p < MONITOR_NPANELS; p++)
		monitor_lines_free(&u.lines[p]);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	return rc;
}

int cmd_monitor(int argc, char **argv)
{
	static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
					     {"once", no_argument, NULL, 'o'},
					     {"json", no_argument, NULL, 'j'},
					     {"agency", required_argument, NULL, 'a'},
					     {"service", required_argument, NULL, 's'},
					     {"help", no_argument, NULL, 'h'},
					     {NULL, 0, NULL, 0}};
	struct mon_ctx c;
	const char *ini = NULL;
	bool once = false, as_json = false;
	rete_msg m = {{0}};
	int opt, rc = CLI_USAGE;
	rete_err err;

	memset(&c, 0, sizeof(c));
	if (getenv("RETE_MONITOR_TRACE") != NULL && getenv("RETE_MONITOR_TRACE")[0] == '1')
		c.trace = stderr;
	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":c:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			ini = optarg;
			break;
		case 'o':
			once = true;
			break;
		case 'j':
			as_json = true;
			break;
		case 'a':
			snprintf(c.filter.agency, sizeof(c.filter.agency), "%s", optarg);
			break;
		case 's':
			snprintf(c.filter.service, sizeof(c.filter.service), "%s", optarg);
			break;
		case 'h':
			monitor_usage(stdout);
			return CLI_OK;
		case ':':
			fprintf(stderr, "rete monitor: %s needs a value\n", argv[optind - 1]);
			monitor_usage(stderr);
			return CLI_USAGE;
		default:
			fprintf(stderr, "rete monitor: unknown option '%s'\n", argv[optind - 1]);
			monitor_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (optind < argc || ini == NULL) {
		if (optind < argc)
			fprintf(stderr,
				"rete monitor: unexpected argument '%s'; the monitor takes options "
				"only\n",
				argv[optind]);
		else
			fprintf(stderr, "rete monitor: -c coord.ini is required\n");
		monitor_usage(stderr);
		return CLI_USAGE;
	}
	if (!once && !as_json && (!isatty(STDOUT_FILENO) || !isatty(STDIN_FILENO))) {
		fprintf(stderr, "rete monitor: the live view needs a terminal; use --once or "
				"--json\n");
		return CLI_USAGE;
	}
	if ((err = coord_config_load(ini, &c.cfg, &m)) != RETE_OK ||
	    (err = monitor_new(&c.mo, &m)) != RETE_OK) {
		fprintf(stderr, "rete monitor: %s\n", m.text);
		goto out;
	}
	/* every time shown is local, in the network's time zone */
	if (c.cfg.time_zone != NULL && c.cfg.time_zone[0] != '\0') {
		setenv("TZ", c.cfg.time_zone, 1);
		tzset();
	}
	if ((err = mon_start(&c, !(once || as_json), &m)) != RETE_OK) {
		fprintf(stderr, "rete monitor: %s\n", m.text);
		rc = err == RETE_EREFUSED && !rete_wire_auth_failed(c.dealer) ? CLI_FALSE
									      : CLI_USAGE;
		goto out;
	}
	if (as_json) {
		json_t *j = monitor_to_json(c.mo, rete_now_ms(), &c.filter);
		if (j == NULL || json_dumpf(j, stdout, JSON_INDENT(2)) != 0) {
			json_decref(j);
			fprintf(stderr, "rete monitor: cannot write the view\n");
			goto out;
		}
		json_decref(j);
		fputc('\n', stdout);
		rc = fflush(stdout) == 0 ? CLI_OK : CLI_USAGE;
	} else if (once) {
		if (monitor_print(c.mo, rete_now_ms(), &c.filter, stdout, &m) != RETE_OK) {
			fprintf(stderr, "rete monitor: %s\n", m.text);
			goto out;
		}
		rc = CLI_OK;
	} else {
		rc = mon_live(&c);
	}
out:
	rete_wire_close(&c.sub);
	rete_wire_close(&c.dealer);
	monitor_free(&c.mo);
	coord_config_free(&c.cfg);
	return rc;
}
