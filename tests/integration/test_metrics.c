/* test_metrics.c — the Prometheus endpoints of the broker and the agent
 * (issue 17, "Metrics"): a real broker and a real agent with `metrics`
 * set, scraped over HTTP with libcurl; the values are checked against
 * what the test did (N referrals submitted: the accepted counter is N; a
 * forbidden route: one refusal of that code; the recipient's agent
 * connected: its queue drains, its inbox holds N files and its own
 * endpoint says so). Bad settings are refused by --check-config, a port
 * in use stops the start with a sentence, and every metric the endpoints
 * name is documented in docs/operations.md. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "itest.h"

#define N_REFERRALS 5

/* ini_set_broker adds line to the [broker] section of n's broker.ini. */
static void ini_set_broker(it_net *n, const char *line)
{
	assert_int_equal(it_write_ini(n), 0);
	it_ini_broker_add(n, line);
}

/* documented: every metric name the scrape declares (# TYPE) appears in
 * docs/operations.md. */
static void documented(const char *scrape_text)
{
	char *doc = tu_read_file(RETE_SOURCE_DIR "/docs/operations.md", NULL);
	assert_non_null(doc);
	size_t names = 0;
	for (const char *p = strstr(scrape_text, "# TYPE "); p; p = strstr(p + 1, "# TYPE ")) {
		char name[128];
		assert_int_equal(sscanf(p, "# TYPE %127s", name), 1);
		char quoted[160];
		snprintf(quoted, sizeof(quoted), "`%s`", name);
		if (!strstr(doc, quoted))
			fail_msg("metric %s is not documented in docs/operations.md", name);
		names++;
	}
	assert_true(names > 5);
	free(doc);
}

/* --- tests ------------------------------------------------------------------------- */

static void test_counters_move(void **state)
{
	it_net *n = it_net_new("metrics", NULL);
	*state = n;
	ini_set_broker(n, "metrics = 127.0.0.1:0");
	assert_true(it_broker_start(n));
	char url[128];
	unsigned port = it_metrics_port(n->log);
	if (!port) {
		it_show(n, "broker.log");
		fail_msg("the broker never said where its metrics are");
	}
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/metrics", port);

	long status = 0;
	char *t = it_scrape(url, &status);
	assert_non_null(t);
	assert_int_equal(status, 200);
	assert_true(it_metric(t, "rete_broker_submissions_accepted_total") == 0);
	assert_true(it_metric(t, "rete_broker_verify_cpu_seconds_total") == 0);
	assert_true(it_metric(t, "rete_broker_queue_depth{agency=\"cpi.mantova\"}") == 0);
	assert_true(it_metric(t, "rete_broker_agency_connected{agency=\"cpi.mantova\"}") == 0);
	assert_true(it_metric(t, "rete_broker_store_readable") == 1);
	assert_true(it_metric(t, "rete_broker_log_entries") >= 1); /* the directory */
	assert_true(it_metric(t, "rete_broker_disk_free_bytes") > 0);
	assert_true(it_metric(t, "rete_broker_timestamp_configured") == 0); /* no tsa_url */
	assert_true(it_metric(t, "rete_broker_timestamp_refusing") == -1);
	assert_true(it_metric(t, "rete_broker_store_used_bytes") > 0);
	assert_non_null(strstr(t, "rete_build_info{program=\"rete-broker\",version=\""));
	double entries0 = it_metric(t, "rete_broker_log_entries");
	documented(t);
	free(t);

	/* N referrals to the job centre, one of them sent twice; one on a
	 * route the policy forbids (job centre -> health) */
	rete_wire *ws = it_connect(n, IT_SOCIAL), *wc = it_connect(n, IT_CPI);
	assert_non_null(ws);
	assert_non_null(wc);
	it_msg first = {0};
	for (int i = 0; i < N_REFERRALS; i++) {
		it_msg o = {0};
		char id[32];
		snprintf(id, sizeof(id), "metrics-%d", i);
		assert_int_equal(it_referral(n, IT_SOCIAL, IT_CPI, id, &o), RETE_OK);
		Rete__BrokerFrame *f = it_submit(ws, &o, it_wait_ms());
		assert_non_null(f);
		assert_int_equal(f->command_case, RETE__BROKER_FRAME__COMMAND_RECEIPT);
		assert_int_equal(it_answer(f)->error, 0);
		rete__broker_frame__free_unpacked(f, NULL);
		if (i == 0)
			first = o;
		else
			it_msg_free(&o);
	}
	Rete__BrokerFrame *f = it_submit(ws, &first, it_wait_ms());
	assert_non_null(f);
	assert_int_equal(it_answer(f)->error, 0);
	rete__broker_frame__free_unpacked(f, NULL);
	it_msg_free(&first);
	it_msg bad = {0};
	assert_int_equal(it_referral(n, IT_CPI, IT_ASST, "metrics-forbidden", &bad), RETE_OK);
	f = it_submit(wc, &bad, it_wait_ms());
	assert_non_null(f);
	assert_int_equal(it_answer(f)->error, RETE__ERROR_CODE__ERROR_CODE_ROUTE_FORBIDDEN);
	rete__broker_frame__free_unpacked(f, NULL);
	it_msg_free(&bad);
	rete_wire_close(&ws);
	rete_wire_close(&wc);

	/* the counters are the loop's: they are there when the receipt is */
	t = it_scrape(url, NULL);
	assert_non_null(t);
	if (it_metric(t, "rete_broker_submissions_accepted_total") != N_REFERRALS ||
	    it_metric(t, "rete_broker_submissions_duplicate_total") != 1 ||
	    it_metric(t, "rete_broker_refusals_total{code=\"route-forbidden\"}") != 1 ||
	    it_metric(t, "rete_broker_queue_depth{agency=\"cpi.mantova\"}") != N_REFERRALS ||
	    it_metric(t, "rete_broker_log_entries") != entries0 + N_REFERRALS ||
	    it_metric(t, "rete_broker_entries_appended_total") < N_REFERRALS ||
	    it_metric(t, "rete_broker_queue_oldest_age_seconds{agency=\"cpi.mantova\"}") < 0 ||
	    it_metric(t, "rete_broker_deliveries_sent_total") != 0 ||
	    it_metric(t, "rete_broker_receipt_seconds_count") != N_REFERRALS + 1 ||
	    it_metric(t, "rete_broker_receipt_seconds_bucket{le=\"+Inf\"}") != N_REFERRALS + 1 ||
	    it_metric(t, "rete_broker_commit_seconds_count") < 1 ||
	    it_metric(t, "rete_broker_commit_seconds_sum") <= 0 ||
	    it_metric(t, "rete_broker_signatures_verified_total") < N_REFERRALS ||
	    /* each verification takes tens of microseconds of some thread's CPU */
	    it_metric(t, "rete_broker_verify_cpu_seconds_total") <= 0)
		fail_msg("after %d referrals, one resent and one refused:\n%s", N_REFERRALS, t);
	free(t);

	/* the job centre's agent, with its own endpoint, takes them */
	assert_true(it_agent_start_ex(n, IT_CPI, "metrics = 127.0.0.1:0\n"));
	char alog[1300];
	snprintf(alog, sizeof(alog), "%s/%s.log", n->dir, it_party_ids[IT_CPI]);
	unsigned aport = it_metrics_port(alog);
	if (!aport) {
		it_show(n, "cpi.mantova.log");
		fail_msg("the agent never said where its metrics are");
	}
	char aurl[128];
	snprintf(aurl, sizeof(aurl), "http://127.0.0.1:%u/metrics", aport);
	assert_true(it_until_metric(url, "rete_broker_deliveries_acknowledged_total", N_REFERRALS));
	assert_true(it_until_metric(url, "rete_broker_queue_depth{agency=\"cpi.mantova\"}", 0));
	assert_true(
	    it_until_metric(url, "rete_broker_agency_connected{agency=\"cpi.mantova\"}", 1));
	assert_true(it_until_metric(url, "rete_broker_agencies_connected", 1));
	t = it_scrape(url, NULL);
	assert_true(it_metric(t, "rete_broker_deliveries_sent_total") >= N_REFERRALS);
	assert_true(it_metric(t, "rete_broker_commits_total") >= 1);
	free(t);

	/* the agent's view: connected, N files in its inbox (as on disk) */
	char inbox[1300];
	it_spool(n, IT_CPI, "inbox", inbox, sizeof(inbox));
	assert_true(it_until_metric(aurl, "rete_agent_connected", 1));
	assert_true(it_until_metric(aurl, "rete_agent_spool_files{folder=\"inbox\"}", N_REFERRALS));
	assert_int_equal(tu_count_suffix(inbox, ".json"), N_REFERRALS);
	t = it_scrape(aurl, NULL);
	assert_non_null(t);
	if (it_metric(t, "rete_agent_deliveries_total") < N_REFERRALS ||
	    it_metric(t, "rete_agent_last_delivery_timestamp_seconds") <= 0 ||
	    it_metric(t, "rete_agent_connections_total") < 1 ||
	    it_metric(t, "rete_agent_alarm") != 0 ||
	    it_metric(t, "rete_agent_held_messages") != 0 ||
	    it_metric(t, "rete_agent_witness_pending_receipts") != 0 ||
	    it_metric(t, "rete_agent_spool_files{folder=\"outbox\"}") != 0 ||
	    !strstr(t, "rete_agent_info{agency=\"cpi.mantova\"} 1"))
		fail_msg("the job centre's agent after %d deliveries:\n%s", N_REFERRALS, t);
	documented(t);
	free(t);

	/* the witness: once the broker's checkpoint covers the whole log (it
	 * no longer grows: every delivery is acknowledged), the agent verifies
	 * it and says so */
	t = it_scrape(url, NULL);
	assert_non_null(t);
	double size = it_metric(t, "rete_broker_log_entries");
	free(t);
	assert_true(size >= entries0 + 2 * N_REFERRALS); /* the referrals and their Deliveries */
	assert_true(it_until_metric(url, "rete_broker_checkpoint_size", size));
	assert_true(it_until_metric(aurl, "rete_agent_witness_checkpoint_size", size));
	/* the agent cosigns what it verified: the broker counts its cosignature
	 * on that checkpoint (the only agent process of this test) */
	assert_true(it_until_metric(url, "rete_broker_checkpoint_cosigned_size", size));
	assert_true(it_until_metric(url, "rete_broker_checkpoint_cosignatures", 1));

	/* an outbox file the agent cannot take is counted in failed/ */
	char path[1400];
	it_spool(n, IT_CPI, "outbox/broken.json", path, sizeof(path));
	assert_int_equal(tu_write_file(path, "{not json", 9), 0);
	assert_true(it_until_metric(aurl, "rete_agent_spool_files{folder=\"failed\"}", 2));

	/* the agent stops: the broker sees it gone */
	assert_int_equal(it_stop(&n->agent_pid[IT_CPI], SIGTERM, it_wait_ms()), 0);
	assert_true(
	    it_until_metric(url, "rete_broker_agency_connected{agency=\"cpi.mantova\"}", 0));
	long st = 0;
	t = it_scrape(aurl, &st);
	assert_null(t); /* nothing listens any more */

	/* another path, another method */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", port);
	t = it_scrape(url, &st);
	assert_int_equal(st, 404);
	assert_non_null(strstr(t, "GET /metrics"));
	free(t);
}

/* A delivery not acknowledged is sent again after `redeliver`: counted. The
 * job centre says HELLO over a bare connection, reads (and answers PINGs:
 * rete_wire_recv does) but never acknowledges. */
static void test_redelivery_counted(void **state)
{
	it_net *n = it_net_new("metrics-redeliver", NULL);
	*state = n;
	ini_set_broker(n, "metrics = 127.0.0.1:0\nredeliver = 1s");
	assert_true(it_broker_start(n));
	char url[128];
	it_metrics_url(n->log, url, sizeof(url));

	rete_wire *ws = it_connect(n, IT_SOCIAL), *wc = it_connect(n, IT_CPI);
	assert_non_null(ws);
	assert_non_null(wc);
	it_msg o = {0};
	assert_int_equal(it_referral(n, IT_SOCIAL, IT_CPI, "metrics-again", &o), RETE_OK);
	Rete__BrokerFrame *f = it_submit(ws, &o, it_wait_ms());
	assert_non_null(f);
	assert_int_equal(it_answer(f)->error, 0);
	rete__broker_frame__free_unpacked(f, NULL);
	it_msg_free(&o);
	assert_int_equal(rete_wire_hello(wc, it_party_ids[IT_CPI], "test_metrics", NULL), RETE_OK);
	int delivers = 0;
	double again = 0;
	char *t = NULL;
	int64_t end = it_mono_ms() + it_wait_ms();
	while (it_mono_ms() < end && (again < 1 || delivers < 2)) {
		if (rete_wire_recv(wc, 200, &f, NULL) == RETE_OK) {
			delivers += f->command_case == RETE__BROKER_FRAME__COMMAND_DELIVER;
			rete__broker_frame__free_unpacked(f, NULL);
		}
		free(t);
		t = it_scrape(url, NULL);
		again = t ? it_metric(t, "rete_broker_redeliveries_total") : 0;
	}
	if (again < 1 || delivers < 2 ||
	    it_metric(t, "rete_broker_deliveries_sent_total") < delivers ||
	    it_metric(t, "rete_broker_deliveries_acknowledged_total") != 0 ||
	    it_metric(t, "rete_broker_queue_depth{agency=\"cpi.mantova\"}") != 1 ||
	    it_metric(t, "rete_broker_agency_connected{agency=\"cpi.mantova\"}") != 1)
		fail_msg("one delivery never acknowledged, received %d times:\n%s", delivers,
			 t ? t : "(no answer)");
	free(t);
	rete_wire_close(&ws);
	rete_wire_close(&wc);
}

/* --check-config refuses what cannot be served, naming file, line and
 * what is accepted; both programs. */
static void test_bad_settings(void **state)
{
	it_net *n = it_net_new("metrics-bad", NULL);
	*state = n;
	static const struct {
		const char *value, *says;
	} bad[] = {
	    {"0.0.0.0:9464", "listens on every interface"},
	    {"[::]:9464", "listens on every interface"},
	    {"localhost:9464", "not an IPv4 address"},
	    {"127.0.0.1:99999", "not a number from 0 to 65535"},
	    {"9464", "give HOST:PORT"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char line[128], *out = NULL;
		snprintf(line, sizeof(line), "metrics = %s", bad[i].value);
		ini_set_broker(n, line);
		int rc =
		    tu_run(&out, "'%s/rete-broker' -c '%s' --check-config 2>&1", n->bin, n->ini);
		if (rc != 2 || !strstr(out, bad[i].says) || !strstr(out, "broker.ini:3:") ||
		    !strstr(out, "[broker] metrics:"))
			fail_msg("broker, metrics = %s: exit %d, said:\n%s", bad[i].value, rc, out);
		free(out);

		char extra[160];
		snprintf(extra, sizeof(extra), "%s\n", line);
		it_write_agent_ini_ex(n, IT_CPI, extra);
		rc = tu_run(&out, "'%s/rete-agent' -c '%s/agents/%s/agent.ini' --check-config 2>&1",
			    n->bin, n->dir, it_party_ids[IT_CPI]);
		if (rc != 2 || !strstr(out, bad[i].says) || !strstr(out, "[agent] metrics:"))
			fail_msg("agent, metrics = %s: exit %d, said:\n%s", bad[i].value, rc, out);
		free(out);
	}
	/* a good one is fine */
	ini_set_broker(n, "metrics = 127.0.0.1:9464");
	char *out = NULL;
	int rc =
	    tu_run(&out, "'%s/rete-broker' -c '%s' --check-config --init 2>&1", n->bin, n->ini);
	if (rc != 0)
		fail_msg("metrics = 127.0.0.1:9464: exit %d:\n%s", rc, out);
	free(out);
}

/* A port another program holds: the broker does not start, and says why. */
static void test_port_in_use(void **state)
{
	it_net *n = it_net_new("metrics-busy", NULL);
	*state = n;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 1), 0);
	socklen_t sl = sizeof(sa);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	char line[64];
	snprintf(line, sizeof(line), "metrics = 127.0.0.1:%u", ntohs(sa.sin_port));
	ini_set_broker(n, line);
	n->broker_pid = it_broker_exec_flag(n->dir, n->bin, n->ini, false, NULL, "--init");
	int st = it_stop(&n->broker_pid, 0, it_wait_ms()); /* waits for its exit */
	close(fd);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 2) {
		it_show(n, "broker.log");
		fail_msg("the broker did not refuse to start (status %d)", st);
	}
	assert_true(tu_occurrences(n->log, "another program has that port") == 1);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_counters_move, it_teardown),
	    cmocka_unit_test_teardown(test_redelivery_counted, it_teardown),
	    cmocka_unit_test_teardown(test_bad_settings, it_teardown),
	    cmocka_unit_test_teardown(test_port_in_use, it_teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
