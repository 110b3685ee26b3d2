/* test_console_limits.c — the web console's HTTP layer (proto/httpd.c under
 * `rete console`) against clients that hold its connections, with the real
 * console attached to a real broker, over real sockets on 127.0.0.0/8
 * (every 127.x address is this host's loopback: one client address each):
 *
 * 1. one address cannot take all the connections: 127.0.0.1 opens 16
 *    connections (the server's whole RETE_HTTP_CONNS_MAX) and trickles a
 *    byte of its request headers every quarter second; with
 *    connections_per_address = 8 the ones beyond 8 are closed at once, and
 *    a coordinator at 127.0.0.2 is answered meanwhile;
 * 2. a request whose headers do not arrive whole within header_timeout is
 *    dropped, however steadily its bytes trickle (each byte would reset an
 *    idle timeout);
 * 3. a live-updates reader that vanished (simulated as a real one looks to
 *    the server: it acknowledges nothing more, here by never reading with a
 *    receive buffer of the kernel's minimum, so its window closes) loses its
 *    stream within stream_timeout (and a heartbeat), and a new reader gets
 *    the slot; a reader that reads keeps its stream past header_timeout;
 * 4. bad values of the four [console] keys are refused with a sentence;
 * 5. one address cannot take all the live-update streams: with
 *    streams_per_address = 4, 127.0.0.7 gets four and its fifth is answered
 *    429 with a sentence naming the setting, while a coordinator at
 *    127.0.0.8 still gets one; a stream 127.0.0.7 closes lets it open
 *    another.
 *
 * The tests set short timeouts so they run in seconds; their deadlines are
 * generous bounds (the behaviour, not its speed, is what is checked).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include "itest.h"

#define ATTACK_CONNS  16 /* RETE_HTTP_CONNS_MAX */
#define PER_ADDRESS   8
#define STREAMS_MAX   8 /* agents/console/console.c CONSOLE_STREAMS_MAX */
#define VANISHED      (STREAMS_MAX - 1)
#define TRICKLE_EVERY 250 /* ms between two trickled bytes */

struct fixture {
	it_net *n;
	pid_t console;
	unsigned port;
};

/* console_start writes DIR/coord.ini (the coordinator's client section and
 * [console] with the lines given) and starts `rete console` on
 * 127.0.0.1:0; returns once it said its port. */
static void console_start(struct fixture *f, const char *console_lines)
{
	it_net *n = f->n;
	char ini[1300], log[1300], *text = NULL;
	snprintf(ini, sizeof(ini), "%s/coord.ini", n->dir);
	snprintf(log, sizeof(log), "%s/console.log", n->dir);
	assert_true(asprintf(&text,
			     "[client]\nid = coord.mantova\nkey = keys/coord.mantova.key\n"
			     "broker = %s\nbroker_key = keys/" IT_BROKER_ID ".pub\nevents = %s\n\n"
			     "[console]\n%s",
			     n->listen, n->events, console_lines) > 0);
	assert_int_equal(tu_write_file(ini, text, strlen(text)), 0);
	free(text);
	unlink(log);
	char bin[1100];
	snprintf(bin, sizeof(bin), "%s/rete", n->bin);
	char *args[] = {bin, "console", "-c", ini, "--listen", "127.0.0.1:0", NULL};
	f->console = it_spawn(n->dir, "console", args, NULL);
	assert_true(f->console > 0);
	int64_t end = it_mono_ms() + it_wait_ms();
	f->port = 0;
	while (f->port == 0 && it_mono_ms() < end) {
		char *t = tu_read_file(log, NULL);
		const char *at = t ? strstr(t, "view at http://127.0.0.1:") : NULL;
		if (at)
			f->port = (unsigned)atoi(at + strlen("view at http://127.0.0.1:"));
		free(t);
		if (f->port == 0) {
			int st;
			if (it_reap(f->console, &st)) {
				f->console = 0;
				it_show(n, "console.log");
				fail_msg("the console exited before serving");
			}
			it_nap(50); /* polling the console's log: nothing to wait on */
		}
	}
	if (f->port == 0) {
		it_show(n, "console.log");
		fail_msg("the console never said its port");
	}
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -1;
	f->n = it_net_new("console-limits", NULL);
	*state = f;
	if (f->n == NULL || !it_broker_start(f->n))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	int rc = 0;
	if (f == NULL)
		return 0;
	if (f->console > 0) {
		int st = it_stop(&f->console, SIGTERM, it_wait_ms());
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			fprintf(stderr, "the console did not stop cleanly (status %d)\n", st);
			if (f->n)
				it_show(f->n, "console.log");
			rc = -1;
		}
	}
	bool bad = false;
	if (f->n)
		it_net_free(&f->n, false, &bad);
	free(f);
	*state = NULL;
	return bad ? -1 : rc;
}

/* --- raw clients ------------------------------------------------------------------ */

/* conn_from connects from the loopback address src to the console; a
 * receive buffer of rcvbuf bytes when not 0 (set before connect, so the
 * window the kernel offers is that small from the start). Non-blocking
 * after the connect. */
static int conn_from(const struct fixture *f, const char *src, int rcvbuf)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	if (rcvbuf)
		assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
	struct sockaddr_in me = {.sin_family = AF_INET};
	assert_int_equal(inet_pton(AF_INET, src, &me.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof(me)), 0);
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
	to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&to, sizeof(to)) != 0)
		fail_msg("connect from %s: %s", src, strerror(errno));
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

static void send_all(int fd, const char *s)
{
	size_t len = strlen(s), off = 0;
	while (off < len) {
		ssize_t w = send(fd, s + off, len - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EAGAIN) {
			struct pollfd p = {.fd = fd, .events = POLLOUT};
			poll(&p, 1, 1000);
			continue;
		}
		if (w <= 0)
			fail_msg("send: %s", w < 0 ? strerror(errno) : "nothing sent");
		off += (size_t)w;
	}
}

/* gone: the server closed fd (an end of stream or a reset; anything it
 * sent before is read and dropped). */
static bool gone(int fd)
{
	char buf[4096];
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r == 0)
			return true;
		if (r < 0)
			return errno != EAGAIN && errno != EWOULDBLOCK;
	}
}

/* hung_up: the server closed fd and nothing is left to read. */
static bool hung_up(int fd)
{
	char c;
	ssize_t r = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

/* request writes a whole GET of path with the console's own Host. */
static void request(const struct fixture *f, int fd, const char *path)
{
	char req[256];
	snprintf(req, sizeof(req),
		 "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\nConnection: close\r\n\r\n", path,
		 f->port);
	send_all(fd, req);
}

/* status reads fd's status line ("HTTP/1.1 200"), waiting at most ms:
 * the code, 0 when the connection closed or the time ran out without one.
 * With peek the bytes stay in the socket (nothing is acknowledged as read:
 * the receive window stays as small as it was). */
static int status(int fd, int ms, bool peek)
{
	char buf[64];
	int64_t end = it_mono_ms() + ms;
	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf) - 1, MSG_PEEK | MSG_DONTWAIT);
		if (r >= 12) {
			buf[r] = '\0';
			int code = 0;
			if (sscanf(buf, "HTTP/1.%*d %d", &code) != 1)
				fail_msg("not a status line: '%.40s'", buf);
			if (!peek)
				recv(fd, buf, (size_t)r, 0);
			return code;
		}
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			return 0;
		int left = (int)(end - it_mono_ms());
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		poll(&p, 1, left < 200 ? left : 200);
	}
}

/* streams_from opens k live-update streams from src (a receive buffer of
 * rcvbuf bytes when not 0, conn_from) into fds, each let in (200, peeked:
 * nothing is read). */
static void streams_from(const struct fixture *f, const char *src, int rcvbuf, int *fds, int k)
{
	for (int i = 0; i < k; i++) {
		fds[i] = conn_from(f, src, rcvbuf);
		request(f, fds[i], "/api/events");
		if (status(fds[i], it_wait_ms(), true) != 200)
			fail_msg("stream %d of %s was not let in", i, src);
	}
}

/* --- 1. one address cannot take all the connections ----------------------------- */

static void test_one_address_cannot_take_all(void **state)
{
	struct fixture *f = *state;
	/* a long header deadline: here only the per-address limit can help */
	console_start(f, "connections_per_address = 8\nheader_timeout = 5m\n");

	int a[ATTACK_CONNS];
	for (int i = 0; i < ATTACK_CONNS; i++) {
		a[i] = conn_from(f, "127.0.0.1", 0);
		send_all(a[i], "GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
	}
	/* the coordinator, from another address, while 127.0.0.1 trickles: a
	 * connection turned away (closed unanswered) is tried again a second
	 * later, as a browser's user would */
	int coord = -1, got = 0, closed = 0, turned_away = 0;
	bool closed_at[ATTACK_CONNS] = {false};
	int64_t now = it_mono_ms(), end = now + it_scaled_ms(30000), tick = now, retry = now;
	while (now < end && (got != 200 || closed < ATTACK_CONNS - PER_ADDRESS)) {
		for (int i = 0; i < ATTACK_CONNS; i++) {
			if (closed_at[i])
				continue;
			if (gone(a[i])) {
				closed_at[i] = true;
				closed++;
			} else {
				send(a[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			}
		}
		if (got != 200 && coord < 0 && now >= retry) {
			coord = conn_from(f, "127.0.0.2", 0);
			request(f, coord, "/api/overview");
		}
		if (coord >= 0 && (got = status(coord, 0, false)) != 0 && got != 200)
			fail_msg("the coordinator at 127.0.0.2 was answered %d", got);
		if (coord >= 0 && got == 0 && hung_up(coord)) {
			close(coord);
			coord = -1;
			turned_away++;
			retry = now + 1000;
		}
		tick += TRICKLE_EVERY;
		if (tick > it_mono_ms())
			it_nap((int)(tick - it_mono_ms())); /* pacing the trickle */
		now = it_mono_ms();
	}
	if (got != 200)
		fail_msg("the coordinator at 127.0.0.2 got no answer in 30 s (turned away %d "
			 "times) while 127.0.0.1 held %d connections trickling their headers "
			 "(%d of them closed by the console)",
			 turned_away, ATTACK_CONNS, closed);
	if (closed < ATTACK_CONNS - PER_ADDRESS)
		fail_msg("127.0.0.1 still holds %d connections (at most %d from one address)",
			 ATTACK_CONNS - closed, PER_ADDRESS);
	/* the ones it still holds were not closed: the limit refuses only
	 * those beyond it (the header deadline is 5 minutes here) */
	assert_int_equal(closed, ATTACK_CONNS - PER_ADDRESS);
	/* one more from 127.0.0.1, a whole request: closed unanswered */
	int more = conn_from(f, "127.0.0.1", 0);
	request(f, more, "/api/overview");
	assert_int_equal(status(more, it_scaled_ms(20000), false), 0);
	assert_true(gone(more));
	close(more);
	close(coord);
	for (int i = 0; i < ATTACK_CONNS; i++)
		close(a[i]);
	/* with its connections closed, 127.0.0.1 is served again (once the
	 * server has seen them closed: until then a try is turned away) */
	int again = 0;
	for (int64_t until = it_mono_ms() + it_scaled_ms(30000);
	     again != 200 && it_mono_ms() < until;) {
		int fd = conn_from(f, "127.0.0.1", 0);
		request(f, fd, "/api/overview");
		again = status(fd, it_scaled_ms(20000), false);
		close(fd);
		if (again == 0)
			it_nap(200); /* a user trying again */
	}
	assert_int_equal(again, 200);
}

/* --- 2. a header that trickles is dropped ----------------------------------------- */

#define TRICKLERS 4

static void test_trickled_header_dropped(void **state)
{
	struct fixture *f = *state;
	console_start(f, "header_timeout = 2s\n");
	int t[TRICKLERS];
	bool closed_at[TRICKLERS] = {false};
	int closed = 0;
	for (int i = 0; i < TRICKLERS; i++) {
		t[i] = conn_from(f, "127.0.0.3", 0);
		send_all(t[i], "GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ");
	}
	int64_t end = it_mono_ms() + it_scaled_ms(60000);
	while (closed < TRICKLERS && it_mono_ms() < end) {
		for (int i = 0; i < TRICKLERS; i++) {
			if (closed_at[i])
				continue;
			if (gone(t[i])) {
				closed_at[i] = true;
				closed++;
			} else {
				send(t[i], "a", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			}
		}
		it_nap(TRICKLE_EVERY); /* pacing the trickle */
	}
	if (closed < TRICKLERS)
		fail_msg("%d of %d connections trickling a byte of their request headers every "
			 "%d ms are still open after 60 s (header_timeout = 2s)",
			 TRICKLERS - closed, TRICKLERS, TRICKLE_EVERY);
	for (int i = 0; i < TRICKLERS; i++)
		close(t[i]);
	/* a request sent whole is answered as before */
	int ok = conn_from(f, "127.0.0.3", 0);
	request(f, ok, "/api/overview");
	assert_int_equal(status(ok, it_scaled_ms(20000), false), 200);
	close(ok);
}

/* --- 3. a vanished reader frees its stream ------------------------------------ */

static void test_vanished_reader_freed(void **state)
{
	struct fixture *f = *state;
	console_start(f, "stream_timeout = 1s\nheader_timeout = 1s\n");
	/* one reader that reads, and the others that vanish: they never read,
	 * and their receive buffer is the kernel's smallest */
	int live = conn_from(f, "127.0.0.4", 0);
	request(f, live, "/api/events");
	assert_int_equal(status(live, it_wait_ms(), false), 200);
	int v[VANISHED];
	streams_from(f, "127.0.0.5", 1, v, VANISHED);
	/* the slots are full */
	int probe = conn_from(f, "127.0.0.6", 0);
	request(f, probe, "/api/events");
	assert_int_equal(status(probe, it_wait_ms(), false), 503);
	close(probe);

	/* until a new reader gets in, the live one reads on and a new one
	 * tries every second */
	int64_t start = it_mono_ms(), end = start + it_scaled_ms(90000), next = 0;
	size_t live_bytes = 0;
	int got = 503;
	while (got != 200 && it_mono_ms() < end) {
		char buf[4096];
		ssize_t r;
		while ((r = recv(live, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
			live_bytes += (size_t)r;
		if (r == 0 || (r < 0 && errno != EAGAIN))
			fail_msg("the reader that reads lost its stream after %lld ms",
				 (long long)(it_mono_ms() - start));
		if (it_mono_ms() >= next) {
			probe = conn_from(f, "127.0.0.6", 0);
			request(f, probe, "/api/events");
			got = status(probe, it_wait_ms(), false);
			close(probe);
			if (got != 200 && got != 503)
				fail_msg("a new reader got %d", got);
			next = it_mono_ms() + 1000;
		}
		struct pollfd p = {.fd = live, .events = POLLIN};
		poll(&p, 1, 200);
	}
	if (got != 200)
		fail_msg("a new reader is still refused (503) 90 s after %d readers vanished "
			 "(stream_timeout = 1s): their streams keep the slots",
			 VANISHED);
	/* the live reader kept its stream (past header_timeout, with heartbeats) */
	assert_true(live_bytes > 0);
	assert_false(gone(live));
	close(live);
	for (int i = 0; i < VANISHED; i++)
		close(v[i]);
}

/* --- 4. the settings: bad values refused with a sentence ----------------------- */

static void test_bad_settings(void **state)
{
	struct fixture *f = *state;
	static const struct {
		const char *line, *says;
	} bad[] = {
	    {"connections_per_address = 17\n", "is not a number from 0 (no limit) to 16"},
	    {"connections_per_address = -1\n", "is not a number from 0 (no limit) to 16"},
	    {"connections_per_address = 8x\n", "is not a number from 0 (no limit) to 16"},
	    {"header_timeout = 0s\n", "header_timeout: '0s' is not a duration from 1s to 300s"},
	    {"header_timeout = 6m\n", "is not a duration from 1s to 300s"},
	    {"stream_timeout = 2wd\n", "stream_timeout: '2wd' is not a duration from 1s to 3600s"},
	    {"stream_timeout = soon\n", "is not a duration"},
	    {"streams_per_address = 9\n", "is not a number from 0 (no limit) to 8"},
	    {"streams_per_address = x\n", "streams_per_address: 'x' is not a number"},
	};
	char ini[1300], out[1300], bin[1100];
	snprintf(ini, sizeof(ini), "%s/bad.ini", f->n->dir);
	snprintf(out, sizeof(out), "%s/bad.log", f->n->dir);
	snprintf(bin, sizeof(bin), "%s/rete", f->n->bin);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *text = NULL;
		assert_true(asprintf(&text,
				     "[client]\nid = coord.mantova\nkey = keys/coord.mantova.key\n"
				     "broker = %s\nbroker_key = keys/" IT_BROKER_ID ".pub\n\n"
				     "[console]\n%s",
				     f->n->listen, bad[i].line) > 0);
		assert_int_equal(tu_write_file(ini, text, strlen(text)), 0);
		free(text);
		unlink(out);
		char *args[] = {bin, "console", "-c", ini, "--listen", "127.0.0.1:0", NULL};
		pid_t pid = it_spawn(f->n->dir, "bad", args, NULL);
		assert_true(pid > 0);
		int st = it_stop(&pid, 0, it_wait_ms());
		char *said = tu_read_file(out, NULL);
		if (st < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 2 || said == NULL ||
		    strstr(said, bad[i].says) == NULL)
			fail_msg("[console] %.*s: status %d, said '%s'",
				 (int)strlen(bad[i].line) - 1, bad[i].line, st, said ? said : "");
		free(said);
	}
}

/* --- 5. one address cannot take all the streams ---------------------------------- */

#define STREAMS_PER_ADDRESS 4

/* answer reads fd's whole answer (the server closes it: Connection: close)
 * into buf, waiting at most ms; its length. */
static size_t answer(int fd, int ms, char *buf, size_t size)
{
	size_t len = 0;
	int64_t end = it_mono_ms() + ms;
	while (len + 1 < size && it_mono_ms() < end) {
		ssize_t r = recv(fd, buf + len, size - 1 - len, MSG_DONTWAIT);
		if (r == 0)
			break;
		if (r > 0) {
			len += (size_t)r;
			continue;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			break;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		poll(&p, 1, 200);
	}
	buf[len] = '\0';
	return len;
}

static void test_one_address_cannot_take_all_streams(void **state)
{
	struct fixture *f = *state;
	console_start(f, "streams_per_address = 4\n");
	int s[STREAMS_PER_ADDRESS];
	streams_from(f, "127.0.0.7", 0, s, STREAMS_PER_ADDRESS);
	/* the fifth of the same address: turned away, with a sentence */
	int more = conn_from(f, "127.0.0.7", 0);
	request(f, more, "/api/events");
	char buf[4096];
	answer(more, it_wait_ms(), buf, sizeof(buf));
	close(more);
	if (strncmp(buf, "HTTP/1.1 429", 12) != 0 || !strstr(buf, "127.0.0.7") ||
	    !strstr(buf, "streams_per_address") || !strstr(buf, "Retry-After"))
		fail_msg(
		    "the fifth stream of 127.0.0.7 (streams_per_address = 4) was answered:\n%s",
		    buf);
	/* another address: let in (the console has 8 slots) */
	int coord = conn_from(f, "127.0.0.8", 0);
	request(f, coord, "/api/events");
	assert_int_equal(status(coord, it_wait_ms(), true), 200);
	/* one of 127.0.0.7's streams closed: another is let in (once the
	 * server has seen it closed: until then a try is turned away) */
	close(s[0]);
	int got = 0;
	for (int64_t until = it_mono_ms() + it_scaled_ms(30000);
	     got != 200 && it_mono_ms() < until;) {
		s[0] = conn_from(f, "127.0.0.7", 0);
		request(f, s[0], "/api/events");
		got = status(s[0], it_wait_ms(), true);
		if (got != 200) {
			close(s[0]);
			if (got != 429)
				fail_msg("a stream of 127.0.0.7 after one closed got %d", got);
			it_nap(200); /* a user trying again */
		}
	}
	assert_int_equal(got, 200);
	close(coord);
	for (int i = 0; i < STREAMS_PER_ADDRESS; i++)
		close(s[i]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_one_address_cannot_take_all, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_trickled_header_dropped, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vanished_reader_freed, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_settings, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_one_address_cannot_take_all_streams, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
