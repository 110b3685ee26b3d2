/* test_httpd.c — proto/httpd.c, the small HTTP server of the metrics
 * endpoints (issue 17): bind addresses, routes, the refusals in sentences,
 * the limits and a clean stop, against a real socket with libcurl. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <poll.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "httpd.h"

/* --- a libcurl client -------------------------------------------------------- */

struct got {
	long status;
	char body[8192];
	size_t len;
	char ctype[128];
	char allow[128];
	char hdrs[2048]; /* every header line as received */
	CURLcode rc;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct got *g = ud;
	size_t k = sz * n;
	size_t room = sizeof(g->body) - 1 - g->len;
	memcpy(g->body + g->len, p, k < room ? k : room);
	g->len += k < room ? k : room;
	g->body[g->len] = '\0';
	return k;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
	struct got *g = ud;
	size_t k = sz * n;
	size_t hl = strlen(g->hdrs);
	snprintf(g->hdrs + hl, sizeof(g->hdrs) - hl, "%.*s", (int)k, p);
	if (k > 7 && strncasecmp(p, "Allow: ", 7) == 0) {
		size_t e = k;
		while (e > 7 && (p[e - 1] == '\r' || p[e - 1] == '\n'))
			e--;
		snprintf(g->allow, sizeof(g->allow), "%.*s", (int)(e - 7), p + 7);
	}
	return k;
}

/* fetch asks url with method (NULL: GET), an optional body and an extra
 * header line; fills g. */
static void fetch(struct got *g, const char *url, const char *method, const char *body,
		  const char *header)
{
	memset(g, 0, sizeof(*g));
	CURL *c = curl_easy_init();
	assert_non_null(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, g);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, g);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (method && strcmp(method, "HEAD") == 0)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (method)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		if (!method)
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "GET");
	}
	struct curl_slist *hl = NULL;
	if (header) {
		hl = curl_slist_append(NULL, header);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
	}
	g->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &g->status);
	char *ct = NULL;
	if (curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct) == CURLE_OK && ct)
		snprintf(g->ctype, sizeof(g->ctype), "%s", ct);
	curl_slist_free_all(hl);
	curl_easy_cleanup(c);
}

/* --- routes ------------------------------------------------------------------- */

static void route_hello(void *ctx, const char *path, rete_http_answer *a)
{
	int *calls = ctx;
	(*calls)++;
	a->content_type = "text/plain; version=0.0.4; charset=utf-8";
	rete_http_printf(a, "hello from %s, call %d\n", path, *calls);
}

static void route_json(void *ctx, const char *path, rete_http_answer *a)
{
	(void)ctx;
	(void)path;
	a->content_type = "application/json";
	rete_http_printf(a, "{\"label\":\"");
	rete_http_label(a, "a\"b\\c\nd");
	rete_http_printf(a, "\"}");
}

static void route_big(void *ctx, const char *path, rete_http_answer *a)
{
	(void)ctx;
	(void)path;
	for (int i = 0; i < 1000; i++)
		rete_http_printf(a, "line %04d %0600d\n", i, 0); /* > the printf's small buffer */
}

static rete_httpd *start(const char *addr_text, int *calls, uint16_t *port)
{
	rete_http_addr addr;
	rete_msg m;
	assert_int_equal(rete_http_addr_parse(addr_text, &addr, &m), RETE_OK);
	rete_httpd *h = NULL;
	assert_int_equal(rete_httpd_new(&h, "test", &m), RETE_OK);
	assert_int_equal(rete_httpd_route(h, "/hello", route_hello, calls, &m), RETE_OK);
	assert_int_equal(rete_httpd_route(h, "/json", route_json, NULL, &m), RETE_OK);
	assert_int_equal(rete_httpd_route(h, "/big", route_big, NULL, &m), RETE_OK);
	if (rete_httpd_start(h, &addr, &m) != RETE_OK)
		fail_msg("start on %s: %s", addr_text, m.text);
	*port = rete_httpd_port(h);
	assert_true(*port > 0);
	return h;
}

/* --- tests ---------------------------------------------------------------------- */

static void test_addr(void **state)
{
	(void)state;
	rete_http_addr a;
	rete_msg m;
	assert_int_equal(rete_http_addr_parse("127.0.0.1:9464", &a, &m), RETE_OK);
	assert_false(a.v6);
	assert_int_equal(ntohs(((struct sockaddr_in *)&a.sa)->sin_port), 9464);
	assert_string_equal(a.text, "127.0.0.1:9464");
	assert_int_equal(rete_http_addr_parse("[::1]:80", &a, &m), RETE_OK);
	assert_true(a.v6);
	assert_int_equal(rete_http_addr_parse("10.1.2.3:0", &a, &m), RETE_OK);

	static const struct {
		const char *in, *says;
	} bad[] = {
	    {"0.0.0.0:9464", "every interface"},
	    {"[::]:9464", "every interface"},
	    {"localhost:9464", "not an IPv4 address"},
	    {"127.0.0.1", "HOST:PORT"},
	    {"127.0.0.1:", "not a number"},
	    {"127.0.0.1:65536", "not a number"},
	    {"127.0.0.1:94x", "not a number"},
	    {"127.0.0.1:-1", "not a number"},
	    {"::1:9464", "brackets"},
	    {"[::1]9464", "brackets"},
	    {"[zz::1]:9464", "not an IPv6 address"},
	    /* what ZeroMQ's endpoints refuse too (endpoint.c) */
	    {"[fe80::1]:9464", "a link-local address (fe80::/10) is not accepted"},
	    {"[fe80::1%eth0]:9464", "a zone id ('%eth0') is not accepted"},
	    {"[ff02::1]:9464", "a multicast address (ff00::/8) is not accepted"},
	    {"[::ffff:127.0.0.1]:9464", "an IPv4 address goes without brackets: 127.0.0.1:9464"},
	    {"", "HOST:PORT"},
	    {"300.1.1.1:80", "not an IPv4 address"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&m, 0, sizeof(m));
		if (rete_http_addr_parse(bad[i].in, &a, &m) != RETE_EINVAL)
			fail_msg("'%s' was accepted", bad[i].in);
		if (!strstr(m.text, bad[i].says))
			fail_msg("'%s': the sentence '%s' does not say '%s'", bad[i].in, m.text,
				 bad[i].says);
	}
}

static void test_routes(void **state)
{
	(void)state;
	int calls = 0;
	uint16_t port;
	rete_httpd *h = start("127.0.0.1:0", &calls, &port);
	char url[128];
	struct got g;

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/hello", port);
	fetch(&g, url, NULL, NULL, NULL);
	assert_int_equal(g.rc, CURLE_OK);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.body, "hello from /hello, call 1\n");
	assert_string_equal(g.ctype, "text/plain; version=0.0.4; charset=utf-8");

	/* a query string is not part of the path */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/hello?x=1", port);
	fetch(&g, url, NULL, NULL, NULL);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.body, "hello from /hello, call 2\n");

	/* HEAD: the GET's status and type, no body */
	fetch(&g, url, "HEAD", NULL, NULL);
	assert_int_equal(g.rc, CURLE_OK);
	assert_int_equal(g.status, 200);
	assert_int_equal(g.len, 0);

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/json", port);
	fetch(&g, url, NULL, NULL, NULL);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.ctype, "application/json");
	assert_string_equal(g.body, "{\"label\":\"a\\\"b\\\\c\\nd\"}");

	snprintf(url, sizeof(url), "http://127.0.0.1:%u/big", port);
	fetch(&g, url, NULL, NULL, NULL);
	assert_int_equal(g.status, 200);
	assert_memory_equal(g.body, "line 0000 000", 13);

	/* 404 with a sentence that lists what there is */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/nothing", port);
	fetch(&g, url, NULL, NULL, NULL);
	assert_int_equal(g.status, 404);
	assert_string_equal(g.body, "test: there is nothing at /nothing; this server answers "
				    "GET /hello, GET /json, GET /big\n");
	/* a prefix is not the route */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/hello/x", port);
	fetch(&g, url, NULL, NULL, NULL);
	assert_int_equal(g.status, 404);

	/* 405 with Allow */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/hello", port);
	fetch(&g, url, "DELETE", NULL, NULL);
	assert_int_equal(g.status, 405);
	assert_string_equal(g.allow, "GET, HEAD");
	assert_string_equal(g.body, "test: /hello is read with GET (or HEAD), not DELETE\n");
	fetch(&g, url, "POST", "a=b", NULL);
	assert_int_equal(g.status, 405);

	/* a GET with a body */
	fetch(&g, url, NULL, "some body", NULL);
	assert_int_equal(g.status, 413);
	assert_non_null(strstr(g.body, "takes no body"));

	/* headers beyond the limit: refused by libmicrohttpd, the route never runs */
	int before = calls;
	size_t n = RETE_HTTP_REQUEST_MAX * 2;
	char *hdr = malloc(n + 16);
	assert_non_null(hdr);
	memcpy(hdr, "X-Big: ", 7);
	memset(hdr + 7, 'a', n);
	hdr[7 + n] = '\0';
	fetch(&g, url, NULL, NULL, hdr);
	free(hdr);
	assert_true(g.rc != CURLE_OK || g.status >= 400);
	assert_int_equal(calls, before);

	/* and it still serves */
	fetch(&g, url, NULL, NULL, NULL);
	assert_int_equal(g.status, 200);
	rete_httpd_free(&h);
	assert_null(h);

	/* after the stop, nothing listens */
	fetch(&g, url, NULL, NULL, NULL);
	assert_int_equal(g.rc, CURLE_COULDNT_CONNECT);
}

static void test_ipv6(void **state)
{
	(void)state;
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	bool have = fd >= 0 && bind(fd, (struct sockaddr *)&s6, sizeof(s6)) == 0;
	if (fd >= 0)
		close(fd);
	if (!have) {
		print_message("no IPv6 loopback here: the IPv6 case is skipped\n");
		skip();
	}
	int calls = 0;
	uint16_t port;
	rete_httpd *h = start("[::1]:0", &calls, &port);
	char url[128];
	struct got g;
	snprintf(url, sizeof(url), "http://[::1]:%u/hello", port);
	fetch(&g, url, NULL, NULL, NULL);
	assert_int_equal(g.status, 200);
	rete_httpd_free(&h);
}

static void test_port_taken(void **state)
{
	(void)state;
	int calls = 0;
	uint16_t port;
	rete_httpd *h = start("127.0.0.1:0", &calls, &port);
	char text[64];
	snprintf(text, sizeof(text), "127.0.0.1:%u", port);
	rete_http_addr a;
	rete_msg m;
	assert_int_equal(rete_http_addr_parse(text, &a, &m), RETE_OK);
	rete_httpd *h2 = NULL;
	assert_int_equal(rete_httpd_new(&h2, "second", &m), RETE_OK);
	assert_int_equal(rete_httpd_start(h2, &a, &m), RETE_EIO);
	assert_non_null(strstr(m.text, "second: cannot listen on 127.0.0.1:"));
	assert_non_null(strstr(m.text, "another program has that port"));
	assert_int_equal(rete_httpd_port(h2), 0);
	rete_httpd_free(&h2);

	/* an address of no interface of this host */
	assert_int_equal(rete_http_addr_parse("192.0.2.77:0", &a, &m), RETE_OK);
	assert_int_equal(rete_httpd_new(&h2, "third", &m), RETE_OK);
	assert_int_equal(rete_httpd_start(h2, &a, &m), RETE_EIO);
	assert_non_null(strstr(m.text, "no interface of this host has that address"));
	rete_httpd_free(&h2);

	/* routes only before the start */
	assert_int_equal(rete_httpd_route(h, "/late", route_json, NULL, &m), RETE_EINVAL);
	rete_httpd_free(&h);
	rete_httpd_free(&h); /* NULL is fine */
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* raw_get connects to port, sends a GET of /hello and returns the socket. */
static int raw_get(uint16_t port)
{
	struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(port)};
	s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&s4, sizeof(s4)), 0);
	static const char req[] = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	assert_int_equal(write(fd, req, sizeof(req) - 1), (ssize_t)(sizeof(req) - 1));
	return fd;
}

/* More connections than the limit: the ones over it wait (in the kernel's
 * backlog) and are served when a place frees, never beside the others. */
static void test_connection_limit(void **state)
{
	(void)state;
	int calls = 0;
	uint16_t port;
	rete_httpd *h = start("127.0.0.1:0", &calls, &port);
	struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons(port)};
	s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fds[RETE_HTTP_CONNS_MAX];
	for (int i = 0; i < RETE_HTTP_CONNS_MAX; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		assert_true(fds[i] >= 0);
		assert_int_equal(connect(fds[i], (struct sockaddr *)&s4, sizeof(s4)), 0);
	}
	/* the server accepts the idle ones on its thread; one request over
	 * the limit is not answered while they stay (the check looks for an
	 * answer for a second: a slow machine can only make it pass) */
	int extra = raw_get(port);
	struct pollfd pf = {.fd = extra, .events = POLLIN};
	assert_int_equal(poll(&pf, 1, 1000), 0);
	assert_int_equal(calls, 0);
	for (int i = 0; i < RETE_HTTP_CONNS_MAX; i++)
		close(fds[i]);
	/* a place freed: it is answered */
	char buf[512];
	size_t got = 0;
	int64_t deadline = now_ms() + 30000;
	while (got < sizeof(buf) - 1 && now_ms() < deadline) {
		if (poll(&pf, 1, 1000) <= 0)
			continue;
		ssize_t r = read(extra, buf + got, sizeof(buf) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	close(extra);
	if (strncmp(buf, "HTTP/1.1 200", 12) != 0)
		fail_msg("the request that waited got '%.60s'", buf);
	assert_int_equal(calls, 1);
	rete_httpd_free(&h);
}

/* The server's thread blocks every signal (libmicrohttpd 0.9.75 does it
 * itself; httpd.c does not rely on that), so SIGTERM and SIGCHLD go to
 * the program's own threads (the agent's poll must wake with EINTR). Read
 * in /proc: every thread but this one (the server's) has SIGTERM and
 * SIGCHLD in its blocked mask. */
/* --- the console's extensions: routes that read the request, prefix routes,
 * server and answer headers, streams, loopback ------------------------------ */

static void route_req(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	(void)ctx;
	const char *x = rete_http_arg(rq, "x");
	const char *ua = rete_http_req_header(rq, "X-Who");
	rete_http_header(a, "X-Route", "req");
	rete_http_printf(a, "%s x=%s who=%s peer=%s\n", rq->path, x ? x : "(none)",
			 ua ? ua : "(none)", rq->peer);
}

struct tstream {
	int n;
	int *closed;
};

static void *ts_open(void *ctx, const rete_http_req *rq, rete_http_answer *no)
{
	(void)rq;
	(void)no;
	struct tstream *t = calloc(1, sizeof(*t));
	if (t)
		t->closed = ctx;
	return t;
}

static long ts_next(void *st, char *buf, size_t max)
{
	struct tstream *t = st;
	if (t->n == 3)
		return -1;
	return snprintf(buf, max, "data: %d\n\n", t->n++);
}

static void ts_close(void *st)
{
	struct tstream *t = st;
	(*t->closed)++;
	free(t);
}

static const rete_http_stream tstream_fns = {ts_open, ts_next, ts_close, "text/event-stream"};

static void test_console_extensions(void **state)
{
	(void)state;
	rete_http_addr addr;
	rete_msg m;
	rete_httpd *h = NULL;
	int calls = 0, closed = 0;
	char url[160];
	struct got g;

	assert_int_equal(rete_http_addr_parse("127.0.0.1:0", &addr, &m), RETE_OK);
	assert_true(rete_http_addr_loopback(&addr));
	assert_int_equal(rete_httpd_new(&h, "console", &m), RETE_OK);
	assert_int_equal(
	    rete_httpd_server_header(h, "Content-Security-Policy", "default-src 'none'", &m),
	    RETE_OK);
	assert_int_equal(rete_httpd_route(h, "/hello", route_hello, &calls, &m), RETE_OK);
	assert_int_equal(rete_httpd_route_req(h, "/static/", true, route_req, NULL, &m), RETE_OK);
	assert_int_equal(rete_httpd_route_req(h, "/exact", false, route_req, NULL, &m), RETE_OK);
	assert_int_equal(rete_httpd_route_stream(h, "/events", &tstream_fns, &closed, &m), RETE_OK);
	assert_int_equal(rete_httpd_start_threads(h, &addr, &m), RETE_OK);
	uint16_t port = rete_httpd_port(h);
	/* headers are added before the start only */
	assert_int_equal(rete_httpd_server_header(h, "X-Late", "1", &m), RETE_EINVAL);

	/* a prefix route: every path under it, with its arguments, headers, peer */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/static/app.js?x=a%%20b", port);
	fetch(&g, url, NULL, NULL, "X-Who: tester");
	assert_int_equal(g.status, 200);
	assert_string_equal(g.body, "/static/app.js x=a b who=tester peer=127.0.0.1\n");
	assert_non_null(strstr(g.hdrs, "Content-Security-Policy: default-src 'none'"));
	assert_non_null(strstr(g.hdrs, "X-Route: req"));
	/* an exact route that reads its request is not a prefix */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/exact/more", port);
	fetch(&g, url, NULL, NULL, NULL);
	assert_int_equal(g.status, 404);
	/* the refusals carry the server's headers too */
	assert_non_null(strstr(g.hdrs, "Content-Security-Policy: default-src 'none'"));
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/exact", port);
	fetch(&g, url, "POST", "a=b", NULL);
	assert_int_equal(g.status, 405);
	/* the old routes answer as before, with the server's headers */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/hello", port);
	fetch(&g, url, NULL, NULL, NULL);
	assert_string_equal(g.body, "hello from /hello, call 1\n");

	/* a stream: what next gives, until -1; then closed */
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/events", port);
	fetch(&g, url, NULL, NULL, NULL);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.ctype, "text/event-stream");
	assert_string_equal(g.body, "data: 0\n\ndata: 1\n\ndata: 2\n\n");
	rete_httpd_free(&h);
	assert_int_equal(closed, 1);

	/* loopback or not */
	assert_int_equal(rete_http_addr_parse("127.8.0.1:80", &addr, &m), RETE_OK);
	assert_true(rete_http_addr_loopback(&addr));
	assert_int_equal(rete_http_addr_parse("[::1]:80", &addr, &m), RETE_OK);
	assert_true(rete_http_addr_loopback(&addr));
	assert_int_equal(rete_http_addr_parse("10.0.0.5:80", &addr, &m), RETE_OK);
	assert_false(rete_http_addr_loopback(&addr));
	assert_int_equal(rete_http_addr_parse("[fd00::1]:80", &addr, &m), RETE_OK);
	assert_false(rete_http_addr_loopback(&addr));
}

/* --- limits against clients that hold connections ------------------------------ */

/* conn_from connects from the loopback address src to port (non-blocking
 * after the connect). */
static int conn_from(const char *src, uint16_t port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	struct sockaddr_in me = {.sin_family = AF_INET};
	assert_int_equal(inet_pton(AF_INET, src, &me.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof(to)), 0);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* closed_within: the server closes fd (without answering) within ms, while
 * the client sends a byte every 100 ms when trickle is set. */
static bool closed_within(int fd, int ms, bool trickle)
{
	int64_t end = now_ms() + ms;
	while (now_ms() < end) {
		char c;
		ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			return true;
		if (r > 0)
			fail_msg("the server answered '%c...'", c);
		if (trickle)
			send(fd, "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		poll(&pf, 1, 100);
	}
	return false;
}

/* answered: the status of the answer to what was sent on fd, read whole
 * (headers and Content-Length bytes of body); 0: none in 20 s, or closed
 * first. */
static int answered(int fd)
{
	char buf[4096];
	size_t got = 0;
	int64_t end = now_ms() + 20000;
	for (;;) {
		buf[got] = '\0';
		const char *eoh = strstr(buf, "\r\n\r\n");
		const char *cl = strcasestr(buf, "Content-Length: ");
		if (eoh != NULL && cl != NULL &&
		    got >= (size_t)(eoh + 4 - buf) + strtoul(cl + 16, NULL, 10))
			break;
		if (now_ms() >= end || got == sizeof(buf) - 1)
			return 0;
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		poll(&pf, 1, 200);
		ssize_t r = recv(fd, buf + got, sizeof(buf) - 1 - got, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			return 0;
		if (r > 0)
			got += (size_t)r;
	}
	int code = 0;
	return sscanf(buf, "HTTP/1.%*d %d", &code) == 1 ? code : 0;
}

static void route_form(void *ctx, const rete_http_req *rq, rete_http_answer *a)
{
	(void)ctx;
	rete_http_printf(a, "got %zu bytes\n", rq->body_len);
}

/* start_limited: a server on 127.0.0.1 with limits l, GET /hello and POST
 * /form. */
static rete_httpd *start_limited(const rete_http_limits *l, int *calls, uint16_t *port)
{
	rete_http_addr addr;
	rete_msg m;
	rete_httpd *h = NULL;
	assert_int_equal(rete_http_addr_parse("127.0.0.1:0", &addr, &m), RETE_OK);
	assert_int_equal(rete_httpd_new(&h, "limits", &m), RETE_OK);
	assert_int_equal(rete_httpd_set_limits(h, l, &m), RETE_OK);
	assert_int_equal(rete_httpd_route(h, "/hello", route_hello, calls, &m), RETE_OK);
	assert_int_equal(rete_httpd_route_post(h, "/form", route_form, NULL, &m), RETE_OK);
	assert_int_equal(rete_httpd_start(h, &addr, &m), RETE_OK);
	*port = rete_httpd_port(h);
	return h;
}

static void test_limits(void **state)
{
	(void)state;
	rete_http_addr addr;
	rete_http_limits lim;
	rete_msg m;
	/* the defaults: no per-address limit on loopback, 8 on a network address */
	assert_int_equal(rete_http_addr_parse("127.0.0.1:0", &addr, &m), RETE_OK);
	rete_http_limits_default(&addr, &lim);
	assert_int_equal(lim.per_addr, 0);
	assert_int_equal(lim.header_ms, RETE_HTTP_HEADER_S * 1000);
	assert_int_equal(lim.stall_ms, RETE_HTTP_STALL_S * 1000);
	assert_int_equal(rete_http_addr_parse("10.0.0.5:0", &addr, &m), RETE_OK);
	rete_http_limits_default(&addr, &lim);
	assert_int_equal(lim.per_addr, RETE_HTTP_PER_ADDR_MAX);

	rete_httpd *h = NULL;
	assert_int_equal(rete_httpd_new(&h, "limits", &m), RETE_OK);
	lim.per_addr = RETE_HTTP_CONNS_MAX + 1;
	assert_int_equal(rete_httpd_set_limits(h, &lim, &m), RETE_EINVAL);
	lim = (rete_http_limits){.per_addr = 2, .header_ms = 0, .stall_ms = 1000};
	assert_int_equal(rete_httpd_set_limits(h, &lim, &m), RETE_EINVAL);
	rete_httpd_free(&h);

	/* two connections of 127.0.0.1 that send nothing: a third of that
	 * address is closed at once, one of 127.0.0.2 is served (a header
	 * deadline of a minute: the two stay meanwhile) */
	int calls = 0;
	lim = (rete_http_limits){.per_addr = 2, .header_ms = 60000, .stall_ms = 1000};
	uint16_t port;
	h = start_limited(&lim, &calls, &port);
	assert_int_equal(rete_httpd_set_limits(h, &lim, &m), RETE_EINVAL); /* started */
	int idle1 = conn_from("127.0.0.1", port), idle2 = conn_from("127.0.0.1", port);
	static const char get[] = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	int third = conn_from("127.0.0.1", port);
	send(third, get, sizeof(get) - 1, MSG_NOSIGNAL);
	assert_int_equal(answered(third), 0);
	close(third);
	int other = conn_from("127.0.0.2", port);
	send(other, get, sizeof(get) - 1, MSG_NOSIGNAL);
	assert_int_equal(answered(other), 200);
	close(other);
	assert_false(closed_within(idle1, 0, false));
	assert_false(closed_within(idle2, 0, false));
	close(idle1);
	close(idle2);
	rete_httpd_free(&h);

	/* a header deadline of 0.6 s: connections that send nothing are closed */
	lim = (rete_http_limits){.per_addr = 0, .header_ms = 600, .stall_ms = 1000};
	h = start_limited(&lim, &calls, &port);
	idle1 = conn_from("127.0.0.1", port);
	assert_true(closed_within(idle1, 20000, false));
	close(idle1);
	/* headers that trickle, a byte every 100 ms: closed all the same */
	int slow = conn_from("127.0.0.3", port);
	send(slow, "GET /hello HTTP/1.1\r\nX-Slow: ", 30, MSG_NOSIGNAL);
	assert_true(closed_within(slow, 20000, true));
	close(slow);
	/* so is a POST whose body trickles after whole headers */
	slow = conn_from("127.0.0.3", port);
	static const char post[] = "POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n";
	send(slow, post, sizeof(post) - 1, MSG_NOSIGNAL);
	assert_true(closed_within(slow, 20000, true));
	close(slow);
	/* a request sent whole is answered; a keep-alive connection's second
	 * request too (its clock restarts at the end of the first answer) */
	int fine = conn_from("127.0.0.3", port);
	static const char keep[] = "GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";
	send(fine, keep, sizeof(keep) - 1, MSG_NOSIGNAL);
	assert_int_equal(answered(fine), 200);
	send(fine, keep, sizeof(keep) - 1, MSG_NOSIGNAL);
	assert_int_equal(answered(fine), 200);
	close(fine);
	assert_int_equal(calls, 3);
	rete_httpd_free(&h);
}

/* The client the limits count: an IPv4 address, an IPv6 /64. */
static void test_client_of(void **state)
{
	(void)state;
	static const struct {
		const char *addr, *want;
	} cases[] = {
	    {"10.1.2.3", "10.1.2.3"},
	    {"2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"},
	    {"2001:db8:1:2::5", "2001:db8:1:2::/64"},
	    {"2001:db8:1:3::5", "2001:db8:1:3::/64"},
	    {"fe80::1234", "fe80::/64"},
	    {"::ffff:10.1.2.3", "10.1.2.3"},
	    {"::1", "::1"},
	};
	char out[RETE_HTTP_ADDR_MAX];
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss = {0};
		if (strchr(cases[i].addr, ':')) {
			struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
			s6->sin6_family = AF_INET6;
			assert_int_equal(inet_pton(AF_INET6, cases[i].addr, &s6->sin6_addr), 1);
		} else {
			struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
			s4->sin_family = AF_INET;
			assert_int_equal(inet_pton(AF_INET, cases[i].addr, &s4->sin_addr), 1);
		}
		rete_http_client_of((struct sockaddr *)&ss, out, sizeof(out));
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("%s counts as '%s', want '%s'", cases[i].addr, out, cases[i].want);
	}
	rete_http_client_of(NULL, out, sizeof(out));
	assert_string_equal(out, "");
}

/* v6_conn: a TCP connection from src to [dst]:port (non-blocking once
 * connected), or -1 */
static int v6_conn(const char *src, const char *dst, uint16_t port)
{
	int fd = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 me = {.sin6_family = AF_INET6},
			    to = {.sin6_family = AF_INET6, .sin6_port = htons(port)};
	if (fd < 0 || inet_pton(AF_INET6, src, &me.sin6_addr) != 1 ||
	    inet_pton(AF_INET6, dst, &to.sin6_addr) != 1 ||
	    bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0 ||
	    connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* v6_get: the status of a GET /hello from src, 0 when the server closed the
 * connection without answering, -1 when it could not connect */
static int v6_get(const char *src, uint16_t port)
{
	static const char get[] = "GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
	int fd = v6_conn(src, "fd00:1::1", port);
	if (fd < 0)
		return -1;
	send(fd, get, sizeof(get) - 1, MSG_NOSIGNAL);
	int code = answered(fd);
	close(fd);
	return code;
}

#define V6_SKIP 77
#define V6_FAIL(...)                                                                               \
	do {                                                                                       \
		fprintf(stderr, __VA_ARGS__);                                                      \
		fputc('\n', stderr);                                                               \
		_exit(1);                                                                          \
	} while (0)

/* v6_net_child: in a network namespace of its own, with fd00:1::/64 and
 * fd00:2::/64 addresses on lo, a server limited to 2 connections per
 * client: two idle connections from two addresses of fd00:1::/64 leave a
 * third address of that /64 no room, while fd00:2::a is served; once one
 * of the two is closed, the third address is served too. Exits 0, 1 (with
 * a sentence) or V6_SKIP. */
static void v6_net_child(void)
{
	if (unshare(CLONE_NEWNET) != 0) {
		fprintf(stderr, "test_httpd: no network namespace here (unshare: %s)\n",
			strerror(errno));
		_exit(V6_SKIP);
	}
	if (system("ip link set lo up && for a in fd00:1::1 fd00:1::a fd00:1::b fd00:1::c "
		   "fd00:2::a; do ip -6 addr add $a/128 dev lo nodad || exit 1; done") != 0) {
		fprintf(stderr, "test_httpd: cannot put IPv6 addresses on lo (ip -6 addr add)\n");
		_exit(V6_SKIP);
	}
	rete_http_addr addr;
	rete_http_limits lim = {.per_addr = 2, .header_ms = 60000, .stall_ms = 1000};
	rete_msg m;
	rete_httpd *h = NULL;
	int calls = 0;
	if (rete_http_addr_parse("[fd00:1::1]:0", &addr, &m) != RETE_OK ||
	    rete_httpd_new(&h, "limits", &m) != RETE_OK ||
	    rete_httpd_set_limits(h, &lim, &m) != RETE_OK ||
	    rete_httpd_route(h, "/hello", route_hello, &calls, &m) != RETE_OK ||
	    rete_httpd_start(h, &addr, &m) != RETE_OK)
		V6_FAIL("the server on [fd00:1::1] did not start: %s", m.text);
	uint16_t port = rete_httpd_port(h);
	int idle1 = v6_conn("fd00:1::a", "fd00:1::1", port),
	    idle2 = v6_conn("fd00:1::b", "fd00:1::1", port);
	if (idle1 < 0 || idle2 < 0)
		V6_FAIL("no connection from fd00:1::a or fd00:1::b");
	int code = v6_get("fd00:1::c", port);
	if (code != 0)
		V6_FAIL("fd00:1::c got %d with fd00:1::a and fd00:1::b holding the 2 connections "
			"of fd00:1::/64: its connection should have been closed unanswered",
			code);
	if ((code = v6_get("fd00:2::a", port)) != 200)
		V6_FAIL("fd00:2::a (another /64) got %d, not 200", code);
	close(idle1);
	/* the server sees the close when it reads it: ask until it has */
	int64_t end = now_ms() + 20000;
	while ((code = v6_get("fd00:1::c", port)) != 200 && now_ms() < end)
		poll(NULL, 0, 50);
	if (code != 200)
		V6_FAIL("fd00:1::c got %d after fd00:1::a closed its connection, not 200", code);
	close(idle2);
	rete_httpd_free(&h);
	_exit(0);
}

/* The limit per client counts an IPv6 client by its /64: one IPv6 network
 * brings as many addresses as it likes. */
static void test_limits_v6_net(void **state)
{
	(void)state;
	fflush(NULL);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		v6_net_child();
	int st = 0;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == V6_SKIP) {
		fprintf(stderr, "test_limits_v6_net: SKIPPED (see above)\n");
		skip();
	}
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_signals_blocked(void **state)
{
	(void)state;
	sigset_t none;
	sigemptyset(&none);
	pthread_sigmask(SIG_SETMASK, &none, NULL); /* as a program's main thread */
	int calls = 0;
	uint16_t port;
	rete_httpd *h = start("127.0.0.1:0", &calls, &port);
	DIR *d = opendir("/proc/self/task");
	assert_non_null(d);
	struct dirent *e;
	int others = 0;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || atoi(e->d_name) == getpid())
			continue;
		char path[128], line[256];
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", e->d_name);
		FILE *f = fopen(path, "r");
		assert_non_null(f);
		unsigned long long blk = 0;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "SigBlk: %llx", &blk) == 1)
				break;
		fclose(f);
		if (!(blk & (1ull << (SIGTERM - 1))) || !(blk & (1ull << (SIGCHLD - 1))))
			fail_msg("thread %s takes SIGTERM or SIGCHLD (blocked mask %llx)",
				 e->d_name, blk);
		others++;
	}
	closedir(d);
	assert_true(others >= 1); /* the server's thread was looked at */
	/* and the caller's mask is as it was */
	sigset_t now;
	pthread_sigmask(SIG_SETMASK, NULL, &now);
	assert_false(sigismember(&now, SIGTERM));
	rete_httpd_free(&h);
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_addr),
	    cmocka_unit_test(test_routes),
	    cmocka_unit_test(test_ipv6),
	    cmocka_unit_test(test_port_taken),
	    cmocka_unit_test(test_connection_limit),
	    cmocka_unit_test(test_signals_blocked),
	    cmocka_unit_test(test_console_extensions),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_client_of),
	    cmocka_unit_test(test_limits_v6_net),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
