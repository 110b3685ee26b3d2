/* httpd.h — the one small HTTP server of rete (library rete_http), over
 * libmicrohttpd: the broker's and the agent's /metrics now, the web console
 * and the agent API later.
 *
 * It serves read-only routes: GET (and HEAD, answered as GET without the
 * body) of an exact path. Anything else is answered with a sentence: 404
 * for a path no route has, 405 (with Allow) for another method, 413 for a
 * request with a body, 431/400 from libmicrohttpd for a request whose
 * headers do not fit RETE_HTTP_REQUEST_MAX. At most RETE_HTTP_CONNS_MAX
 * connections are served at once (more wait in the kernel's backlog, or are
 * closed by libmicrohttpd: it does so with a thread per connection), and an
 * idle connection is closed after RETE_HTTP_IDLE_S seconds.
 *
 * Clients that hold connections without using them (rete_http_limits, set
 * with rete_httpd_set_limits, defaults from rete_http_limits_default):
 * one client address holds at most per_addr connections at once (the ones
 * beyond are closed as they come: libmicrohttpd's per-IP limit); a request
 * (its line, headers and a POST's body) must arrive whole within header_ms
 * of its connection's start, or of the end of the connection's previous
 * answer, however steadily its bytes trickle (each byte would keep the idle
 * timeout away), or its connection is closed (libmicrohttpd 0.9.75 has no
 * such deadline: httpd.c keeps each connection's start, from libmicrohttpd's
 * connection notifications, and a thread of its own shuts the late ones
 * down); and a stream's connection whose reader acknowledges nothing for
 * stall_ms (a reader that vanished without a FIN or a reset: its machine
 * gone, its network cut) is dropped by the kernel (TCP_USER_TIMEOUT on the
 * socket), so the stream's next write fails and it ends.
 *
 * Routes are called on the server's own thread (one thread, libmicrohttpd's
 * internal polling thread), never on the caller's main loop: a route reads
 * only what is safe from another thread (a snapshot under a lock, atomics,
 * a store read transaction) and must not block for long. That thread
 * blocks every signal: SIGTERM, SIGCHLD and the like reach the program's
 * own threads.
 *
 * Bind address: rete_http_addr_parse takes "HOST:PORT" with HOST an IPv4
 * literal (127.0.0.1) or a bracketed IPv6 literal ([::1]); no host names
 * (no DNS at start). A wildcard address (0.0.0.0, [::]) is refused: the
 * answers are not authenticated, so the operator names the one interface
 * the scraper reaches. PORT 0 takes a free port (rete_http_port says
 * which; the tests use it).
 */
#ifndef RETE_HTTPD_H
#define RETE_HTTPD_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "error.h"

#define RETE_HTTP_CONNS_MAX	     16
#define RETE_HTTP_REQUEST_MAX	     (16u << 10) /* bytes of request line + headers */
#define RETE_HTTP_IDLE_S	     10
#define RETE_HTTP_ROUTES_MAX	     32
#define RETE_HTTP_ADDR_MAX	     64 /* "[v6]:port" as written */
#define RETE_HTTP_ANSWER_HEADERS_MAX 4
#define RETE_HTTP_SERVER_HEADERS_MAX 8
#define RETE_HTTP_POST_MAX	     4096 /* bytes of a POST route's body */
#define RETE_HTTP_PER_ADDR_MAX	     8	  /* connections of one address (network listen) */
#define RETE_HTTP_HEADER_S	     10	  /* a request arrives whole within this */
#define RETE_HTTP_STALL_S	     30	  /* a stream's reader acknowledges within this */

/* A parsed bind address. */
typedef struct rete_http_addr {
	struct sockaddr_storage sa;
	socklen_t salen;
	bool v6;
	char text[RETE_HTTP_ADDR_MAX]; /* as written, e.g. "127.0.0.1:9464" */
	char host[RETE_HTTP_ADDR_MAX]; /* the address alone, e.g. "::1" */
} rete_http_addr;

/* rete_http_addr_parse parses text ("127.0.0.1:9464", "[::1]:9464") into
 * out. RETE_EINVAL with a sentence naming the value and what is accepted:
 * not HOST:PORT, a host name, a port beyond 65535, a wildcard address. */
rete_err rete_http_addr_parse(const char *text, rete_http_addr *out, rete_msg *m);

/* rete_http_addr_use: what a user of the parser says in its sentences (a
 * metrics endpoint, the web console): the port of its examples ("9464")
 * and the sentence for a wildcard address, after "'0.0.0.0:N' listens on
 * every interface" (the value is named before it). */
typedef struct rete_http_addr_use {
	const char *port;
	const char *wildcard;
} rete_http_addr_use;

/* rete_http_addr_parse_as is rete_http_addr_parse with use's sentences;
 * rete_http_addr_parse is it with the metrics endpoint's (port 9464, "the
 * answers are not authenticated; give the address of the one interface
 * the scraper reaches"). */
rete_err rete_http_addr_parse_as(const char *text, const rete_http_addr_use *use,
				 rete_http_addr *out, rete_msg *m);

/* An answer a route builds: a status, a content type and a body (grown
 * with rete_http_printf / rete_http_append; the server frees it). */
typedef struct rete_http_answer {
	unsigned status;	  /* 200 unless the route sets it */
	const char *content_type; /* static string; default text/plain */
	char *body;
	size_t len, cap;
	bool oom;
	/* headers a route adds (rete_http_header); none by default */
	unsigned nhdr;
	const char *hname[RETE_HTTP_ANSWER_HEADERS_MAX];
	char hvalue[RETE_HTTP_ANSWER_HEADERS_MAX][256];
} rete_http_answer;

/* rete_http_printf appends formatted text to a's body (an allocation
 * failure sets a->oom: the server then answers 500). */
void rete_http_printf(rete_http_answer *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* rete_http_append appends len bytes. */
void rete_http_append(rete_http_answer *a, const char *data, size_t len);

/* A route: called with the route's ctx, the path asked for and the answer
 * to fill (status 200, text/plain, empty body on entry). */
typedef void (*rete_http_fn)(void *ctx, const char *path, rete_http_answer *a);

typedef struct rete_httpd rete_httpd;

/* rete_httpd_new makes a server (not yet listening) named `who` (for the
 * sentences, e.g. "metrics"). RETE_ENOMEM. */
rete_err rete_httpd_new(rete_httpd **out, const char *who, rete_msg *m);

/* rete_httpd_route adds GET path (exact, e.g. "/metrics") -> fn(ctx, ...).
 * Before rete_httpd_start only. RETE_EINVAL (too many routes, a path that
 * does not start with '/'), RETE_ENOMEM. */
rete_err rete_httpd_route(rete_httpd *h, const char *path, rete_http_fn fn, void *ctx, rete_msg *m);

/* rete_httpd_start binds addr and starts serving on a thread of its own.
 * RETE_EIO with a sentence naming the address and the reason (in use,
 * not an address of this host, permission). */
rete_err rete_httpd_start(rete_httpd *h, const rete_http_addr *addr, rete_msg *m);

/* rete_httpd_port: the port it listens on (the one chosen for port 0);
 * 0 when not started. */
uint16_t rete_httpd_port(const rete_httpd *h);

/* rete_httpd_free stops serving (connections in progress are closed; a
 * route running finishes first), frees *h and sets it to NULL; NULL is
 * fine. */
void rete_httpd_free(rete_httpd **h);

/* rete_http_label writes s as the value of a Prometheus label (",
 * \ and newline escaped) into a. */
void rete_http_label(rete_http_answer *a, const char *s);

/* ---- for the web console ---------------------------------------------------
 * Routes that read the request (its query arguments, headers and the peer),
 * prefix routes (a folder of static files), headers every answer of a server
 * carries (a Content-Security-Policy), headers a route adds to its answer,
 * and streams (Server-Sent Events), which need a thread per connection
 * (rete_httpd_start_threads). Servers that use none of them (the metrics)
 * behave as above. */

/* A request as a route sees it (valid during the call only). */
typedef struct rete_http_req {
	const char *path;		 /* the path, without the query string */
	const char *method;		 /* "GET" or "HEAD" */
	char peer[RETE_HTTP_ADDR_MAX];	 /* the client's address, e.g. "127.0.0.1" */
	char client[RETE_HTTP_ADDR_MAX]; /* the client as limits count it (rete_http_client_of) */
	void *conn;			 /* libmicrohttpd's connection (internal) */
	const char *body;		 /* a POST's body (NUL-ended), or NULL */
	size_t body_len;
} rete_http_req;

/* rete_http_arg: the query argument key of rq (decoded), NULL when absent. */
const char *rete_http_arg(const rete_http_req *rq, const char *key);

/* rete_http_req_header: the request header name of rq, NULL when absent. */
const char *rete_http_req_header(const rete_http_req *rq, const char *name);

/* rete_http_header adds the header name (a static string): value to the
 * answer (at most RETE_HTTP_ANSWER_HEADERS_MAX; values cut at 255 bytes). */
void rete_http_header(rete_http_answer *a, const char *name, const char *value);

/* A route that reads its request. */
typedef void (*rete_http_req_fn)(void *ctx, const rete_http_req *rq, rete_http_answer *a);

/* rete_httpd_route_req adds GET path -> fn(ctx, rq, a); prefix: every path
 * that starts with path (e.g. "/static/"). Errors as rete_httpd_route. */
rete_err rete_httpd_route_req(rete_httpd *h, const char *path, bool prefix, rete_http_req_fn fn,
			      void *ctx, rete_msg *m);

/* rete_httpd_server_header: every answer of h carries name: value (both
 * copied). Before rete_httpd_start only. RETE_EINVAL (too many), RETE_ENOMEM. */
rete_err rete_httpd_server_header(rete_httpd *h, const char *name, const char *value, rete_msg *m);

/* A stream (an answer of unknown length, sent as it comes): open makes the
 * stream's state for a request, or refuses it with NULL: the answer is then
 * what open set in *no (its status, sentence and headers, e.g. 429 and
 * Retry-After), or 503 "busy" when it set no status; next writes the
 * next bytes into buf (at most max) and returns how many, waiting for them
 * as long as it likes (on its connection's own thread) but returning
 * something (a comment, for events) every few seconds so that an idle
 * connection is not closed, and well within stall_ms: a reader that
 * vanished is found by a write; -1 ends the stream; close frees the
 * state. */
typedef struct rete_http_stream {
	void *(*open)(void *ctx, const rete_http_req *rq, rete_http_answer *no);
	long (*next)(void *st, char *buf, size_t max);
	void (*close)(void *st);
	const char *content_type; /* e.g. "text/event-stream" */
} rete_http_stream;

/* rete_httpd_route_stream adds GET path -> the stream s (borrowed; must
 * outlive h) with ctx. Errors as rete_httpd_route. */
rete_err rete_httpd_route_stream(rete_httpd *h, const char *path, const rete_http_stream *s,
				 void *ctx, rete_msg *m);

/* rete_httpd_start_threads is rete_httpd_start with a thread per
 * connection (at most RETE_HTTP_CONNS_MAX), for servers with streams. */
rete_err rete_httpd_start_threads(rete_httpd *h, const rete_http_addr *addr, rete_msg *m);

/* rete_httpd_route_post adds path -> fn for GET, HEAD and POST (a body of
 * at most RETE_HTTP_POST_MAX bytes, in rq->body; a larger one is answered
 * 413). Errors as rete_httpd_route. */
rete_err rete_httpd_route_post(rete_httpd *h, const char *path, rete_http_req_fn fn, void *ctx,
			       rete_msg *m);

/* rete_httpd_tls makes h serve HTTPS (libmicrohttpd with GnuTLS) with the
 * certificate chain and private key given in PEM (copied; the key's copy
 * is wiped when h is freed). Before the start only. RETE_EINVAL,
 * RETE_ENOMEM; a certificate or key GnuTLS refuses makes the start fail. */
rete_err rete_httpd_tls(rete_httpd *h, const char *cert_pem, const char *key_pem, rete_msg *m);

/* rete_http_addr_loopback: addr is 127.0.0.0/8 or ::1. */
bool rete_http_addr_loopback(const rete_http_addr *addr);

/* rete_http_client_of writes the client the limits count for the address
 * sa (per_addr connections, a console's streams and login attempts): an
 * IPv4 address as it is ("10.1.2.3", also when it comes IPv4-mapped), an
 * IPv6 address by its /64 ("2001:db8:1:2::/64"), since one IPv6 network
 * hands its hosts as many addresses of it as they like; ::1 as it is. ""
 * for another family. */
struct sockaddr;
void rete_http_client_of(const struct sockaddr *sa, char *out, size_t n);

/* ---- limits against clients that hold connections --------------------------- */

typedef struct rete_http_limits {
	unsigned per_addr;  /* connections one client address may hold at once; 0: no
			       limit (up to RETE_HTTP_CONNS_MAX) */
	unsigned header_ms; /* a request arrives whole within this, or is dropped */
	unsigned stall_ms;  /* a stream whose reader acknowledges nothing for this
			       long is dropped */
} rete_http_limits;

/* rete_http_limits_default: the limits of a server listening on addr:
 * RETE_HTTP_HEADER_S, RETE_HTTP_STALL_S, and per_addr RETE_HTTP_PER_ADDR_MAX
 * on a network address but 0 (no limit) on loopback, where every client
 * comes from the one address of this host (a reverse proxy, SSH tunnels,
 * a local scraper) and the limit would be the proxy's. */
void rete_http_limits_default(const rete_http_addr *addr, rete_http_limits *out);

/* rete_httpd_set_limits sets h's limits (copied); before the start only.
 * Without it, rete_httpd_start takes rete_http_limits_default of its
 * address. RETE_EINVAL (after the start, per_addr beyond
 * RETE_HTTP_CONNS_MAX, a time of 0). */
rete_err rete_httpd_set_limits(rete_httpd *h, const rete_http_limits *l, rete_msg *m);

#endif
