/* tsa_server.c — rete-test-tsa, the local RFC 3161 time-stamping authority
 * the tests run (nothing reaches the internet).
 *
 *   rete-test-tsa --cert TSA.pem --key TSA.key --dir DIR [--port N]
 *                 [--chain CERTS.pem]
 *   rete-test-tsa --make-ca DIR [--name NAME]
 *
 * --make-ca makes the test certificates in DIR (created if missing) with
 * the `openssl` command, and exits: a CA (ca.pem, ca.key; "CN=NAME TSA
 * CA"), the TSA's certificate it issues (tsa.pem, tsa.key; "O=NAME, CN=NAME
 * TSA", with the critical extendedKeyUsage timeStamping RFC 3161 2.3 asks
 * for), a second, unrelated CA (other-ca.pem: a CA that issued nothing)
 * and the empty state folder DIR/state for --dir. NAME defaults to "rete
 * test". EC P-256 keys (fast), valid 30 days. The tests (local_tsa.c,
 * test_console_browser.sh) and scripts/demo.sh all make theirs this way.
 * openssl's output goes to DIR/openssl.log, shown on stderr on failure.
 *
 * Listens on 127.0.0.1:N (0 or absent: a free port), prints "port N" on
 * standard output once it accepts, then answers one HTTP POST at a time
 * with an application/timestamp-reply made in process by OpenSSL's
 * TS_RESP_CTX (the signer certificate must carry the critical
 * extendedKeyUsage timeStamping; SHA-256 and ESS signingCertificateV2;
 * genTime to the millisecond; the tsa name set; policy 1.2.3.4.1), until
 * SIGTERM or SIGINT. --chain adds the certificates of a PEM file to every
 * token (as real TSAs add their chain). Started again with the same --port it comes back on
 * that port (a test stops and starts it).
 *
 * What it answers is read from DIR/mode before each request (a test writes
 * it; no file means "ok"):
 *   ok          a granted response
 *   reject      a rejection (status 2, badAlg: only SHA-512 is accepted)
 *   garbage     200 with bytes that are no TimeStampResp
 *   http-error  HTTP 500 with a short text
 *   wrong-nonce a granted response to the request with its nonce plus one
 *   huge        200 with 1 MiB of zero bytes
 *   hang        no answer at all: the request is read, its mode logged at
 *               once, and the connection held open until SIGTERM (a TSA
 *               that accepts and never answers)
 * Each request served appends its mode to DIR/log, one line.
 * Test material only: no TLS, no authentication, one client at a time.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

#define HEAD_MAX 16384
#define BODY_MAX 65536

static volatile sig_atomic_t stopping;
static uint64_t serial_next = 1;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static ASN1_INTEGER *next_serial(TS_RESP_CTX *ctx, void *ud)
{
	ASN1_INTEGER *s = ASN1_INTEGER_new();
	(void)ud;
	if (s == NULL || !ASN1_INTEGER_set_uint64(s, serial_next++)) {
		ASN1_INTEGER_free(s);
		TS_RESP_CTX_set_status_info(ctx, TS_STATUS_REJECTION, "no serial number");
		TS_RESP_CTX_add_failure_info(ctx, TS_INFO_ADD_INFO_NOT_AVAILABLE);
		return NULL;
	}
	return s;
}

/* A response context signing with (cert, key), accepting only md. */
static TS_RESP_CTX *make_ctx(X509 *cert, EVP_PKEY *key, const EVP_MD *md, STACK_OF(X509) * chain)
{
	TS_RESP_CTX *ctx = TS_RESP_CTX_new();
	ASN1_OBJECT *policy = OBJ_txt2obj("1.2.3.4.1", 1);

	if (ctx == NULL || policy == NULL || !TS_RESP_CTX_set_signer_cert(ctx, cert) ||
	    !TS_RESP_CTX_set_signer_key(ctx, key) || !TS_RESP_CTX_set_def_policy(ctx, policy) ||
	    !TS_RESP_CTX_add_md(ctx, md) || !TS_RESP_CTX_set_signer_digest(ctx, EVP_sha256()) ||
	    !TS_RESP_CTX_set_ess_cert_id_digest(ctx, EVP_sha256()) ||
	    !TS_RESP_CTX_set_accuracy(ctx, 1, 0, 0) ||
	    !TS_RESP_CTX_set_clock_precision_digits(ctx, 3)) {
		ERR_print_errors_fp(stderr);
		TS_RESP_CTX_free(ctx);
		ASN1_OBJECT_free(policy);
		return NULL;
	}
	ASN1_OBJECT_free(policy);
	if (chain != NULL && !TS_RESP_CTX_set_certs(ctx, chain)) {
		TS_RESP_CTX_free(ctx);
		return NULL;
	}
	TS_RESP_CTX_add_flags(ctx, TS_TSA_NAME);
	TS_RESP_CTX_set_serial_cb(ctx, next_serial, NULL);
	return ctx;
}

static bool write_all(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n > 0) {
		ssize_t w = write(fd, c, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		c += w;
		n -= (size_t)w;
	}
	return true;
}

static void answer(int fd, int code, const char *type, const void *body, size_t len)
{
	char head[256];
	int n = snprintf(head, sizeof(head),
			 "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n",
			 code,
			 code == 200   ? "OK"
			 : code == 400 ? "Bad Request"
				       : "Server Error",
			 type, len);
	if (write_all(fd, head, (size_t)n))
		write_all(fd, body, len);
}

/* Reads one HTTP POST: its body into body (at most BODY_MAX), *len its
 * length. False (after a 400 answer where one can be sent) when the
 * request is not one. */
static bool read_request(int fd, unsigned char *body, size_t *len)
{
	char head[HEAD_MAX + 1];
	size_t n = 0, clen = 0, have;
	char *end = NULL, *p;

	while (end == NULL) {
		if (n == HEAD_MAX)
			return false;
		ssize_t r = read(fd, head + n, HEAD_MAX - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		n += (size_t)r;
		head[n] = '\0';
		end = strstr(head, "\r\n\r\n");
	}
	if (strncmp(head, "POST ", 5) != 0) {
		answer(fd, 400, "text/plain", "POST only\n", 10);
		return false;
	}
	for (p = strstr(head, "\r\n"); p != NULL && p < end; p = strstr(p + 2, "\r\n"))
		if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
			clen = strtoul(p + 17, NULL, 10);
	if (clen == 0 || clen > BODY_MAX) {
		answer(fd, 400, "text/plain", "bad length\n", 11);
		return false;
	}
	have = n - (size_t)(end + 4 - head);
	if (have > clen)
		have = clen;
	memcpy(body, end + 4, have);
	while (have < clen) {
		ssize_t r = read(fd, body + have, clen - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		have += (size_t)r;
	}
	*len = clen;
	return true;
}

/* The granted (or rejected) reply of ctx to req[0:len]; DER in *out. */
static int reply(TS_RESP_CTX *ctx, const unsigned char *req, size_t len, unsigned char **out)
{
	BIO *in = BIO_new_mem_buf(req, (int)len);
	TS_RESP *resp = in ? TS_RESP_create_response(ctx, in) : NULL;
	int n = resp ? i2d_TS_RESP(resp, out) : -1;

	TS_RESP_free(resp);
	BIO_free(in);
	if (n <= 0)
		ERR_print_errors_fp(stderr);
	return n;
}

/* req with its nonce plus one, re-encoded into *out (OPENSSL_free). */
static int bump_nonce(const unsigned char *req, size_t len, unsigned char **out)
{
	const unsigned char *p = req;
	TS_REQ *r = d2i_TS_REQ(NULL, &p, (long)len);
	const ASN1_INTEGER *n = r ? TS_REQ_get_nonce(r) : NULL;
	ASN1_INTEGER *bumped = ASN1_INTEGER_new();
	uint64_t v = 0;
	int outlen = -1;

	if (n != NULL && bumped != NULL && ASN1_INTEGER_get_uint64(&v, n) &&
	    ASN1_INTEGER_set_uint64(bumped, v + 1) && TS_REQ_set_nonce(r, bumped))
		outlen = i2d_TS_REQ(r, out);
	ASN1_INTEGER_free(bumped);
	TS_REQ_free(r);
	return outlen;
}

static void read_mode(const char *dir, char mode[32])
{
	char path[4096];
	FILE *f;

	snprintf(mode, 32, "ok");
	snprintf(path, sizeof(path), "%s/mode", dir);
	f = fopen(path, "r");
	if (f == NULL)
		return;
	if (fgets(mode, 32, f) == NULL)
		snprintf(mode, 32, "ok");
	mode[strcspn(mode, " \r\n")] = '\0';
	fclose(f);
}

static void log_mode(const char *dir, const char *mode)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/log", dir);
	f = fopen(path, "a");
	if (f != NULL) {
		fprintf(f, "%s\n", mode);
		fclose(f);
	}
}

static void serve(int fd, const char *dir, TS_RESP_CTX *ok, TS_RESP_CTX *reject)
{
	static unsigned char body[BODY_MAX];
	unsigned char *der = NULL, *bumped = NULL;
	char mode[32];
	size_t len = 0;
	int n;

	if (!read_request(fd, body, &len))
		return;
	read_mode(dir, mode);
	if (strcmp(mode, "hang") == 0) {
		log_mode(dir, mode); /* now: the test waits for the request */
		while (!stopping)
			sleep(1); /* the signal ends the sleep (no SA_RESTART) */
		return;
	}
	if (strcmp(mode, "garbage") == 0) {
		static const char junk[] = "<html>this is no time-stamp reply</html>\n";
		answer(fd, 200, "application/timestamp-reply", junk, sizeof(junk) - 1);
	} else if (strcmp(mode, "http-error") == 0) {
		answer(fd, 500, "text/plain", "the test TSA fails on purpose\n", 30);
	} else if (strcmp(mode, "huge") == 0) {
		unsigned char *big = calloc(1, 1 << 20);
		if (big != NULL)
			answer(fd, 200, "application/timestamp-reply", big, 1 << 20);
		free(big);
	} else if (strcmp(mode, "wrong-nonce") == 0) {
		int blen = bump_nonce(body, len, &bumped);
		if (blen > 0 && (n = reply(ok, bumped, (size_t)blen, &der)) > 0)
			answer(fd, 200, "application/timestamp-reply", der, (size_t)n);
		else
			answer(fd, 400, "text/plain", "no nonce\n", 9);
	} else {
		TS_RESP_CTX *ctx = strcmp(mode, "reject") == 0 ? reject : ok;
		if ((n = reply(ctx, body, len, &der)) > 0)
			answer(fd, 200, "application/timestamp-reply", der, (size_t)n);
		else
			answer(fd, 500, "text/plain", "cannot sign\n", 12);
	}
	log_mode(dir, mode);
	OPENSSL_free(der);
	OPENSSL_free(bumped);
}

/* The certificates of --make-ca: the script runs with DIR as $1 and NAME
 * as $2, so neither needs quoting. */
static const char make_ca_script[] =
    "set -e; mkdir -p \"$1\"; cd \"$1\"; exec >openssl.log 2>&1\n"
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    " -keyout ca.key -out ca.pem -days 30 -subj \"/CN=$2 TSA CA\""
    " -addext basicConstraints=critical,CA:TRUE"
    " -addext keyUsage=critical,keyCertSign,cRLSign\n"
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    " -keyout other-ca.key -out other-ca.pem -days 30 -subj \"/CN=$2 other CA\""
    " -addext basicConstraints=critical,CA:TRUE"
    " -addext keyUsage=critical,keyCertSign,cRLSign\n"
    "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
    " -keyout tsa.key -out tsa.csr -subj \"/O=$2/CN=$2 TSA\"\n"
    "printf 'basicConstraints=CA:FALSE\\nkeyUsage=critical,digitalSignature\\n"
    "extendedKeyUsage=critical,timeStamping\\nsubjectKeyIdentifier=hash\\n' >tsa.ext\n"
    "openssl x509 -req -in tsa.csr -CA ca.pem -CAkey ca.key -set_serial 2"
    " -out tsa.pem -days 30 -extfile tsa.ext\n"
    "mkdir -p state\n";

/* make_ca runs make_ca_script for dir and name: 0, or 1 with openssl's
 * output on stderr. */
static int make_ca(const char *dir, const char *name)
{
	int st;
	pid_t pid = fork();

	if (pid < 0) {
		fprintf(stderr, "rete-test-tsa: cannot start a shell: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		execl("/bin/sh", "sh", "-c", make_ca_script, "sh", dir, name, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 1;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	fprintf(stderr, "rete-test-tsa: cannot make the test certificates in %s:\n", dir);
	{
		char log[4200], buf[512];
		size_t n;
		FILE *f;
		snprintf(log, sizeof(log), "%s/openssl.log", dir);
		if ((f = fopen(log, "r")) != NULL) {
			while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
				fwrite(buf, 1, n, stderr);
			fclose(f);
		}
	}
	return 1;
}

int main(int argc, char **argv)
{
	const char *cert_path = NULL, *key_path = NULL, *dir = NULL, *chain_path = NULL;
	const char *ca_dir = NULL, *ca_name = "rete test";
	STACK_OF(X509) *chain = NULL;
	int port = 0, lfd, one = 1, rc = 2;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	TS_RESP_CTX *ok = NULL, *reject = NULL;
	FILE *f;
	struct sockaddr_in sa;
	socklen_t salen = sizeof(sa);
	struct sigaction act;

	for (int i = 1; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--cert") == 0)
			cert_path = argv[i + 1];
		else if (strcmp(argv[i], "--key") == 0)
			key_path = argv[i + 1];
		else if (strcmp(argv[i], "--dir") == 0)
			dir = argv[i + 1];
		else if (strcmp(argv[i], "--chain") == 0)
			chain_path = argv[i + 1];
		else if (strcmp(argv[i], "--port") == 0)
			port = atoi(argv[i + 1]);
		else if (strcmp(argv[i], "--make-ca") == 0)
			ca_dir = argv[i + 1];
		else if (strcmp(argv[i], "--name") == 0)
			ca_name = argv[i + 1];
	}
	if (ca_dir != NULL)
		return make_ca(ca_dir, ca_name);
	if (cert_path == NULL || key_path == NULL || dir == NULL) {
		fprintf(stderr, "usage: rete-test-tsa --cert TSA.pem --key TSA.key --dir DIR "
				"[--port N] [--chain CERTS.pem]\n"
				"       rete-test-tsa --make-ca DIR [--name NAME]\n");
		return 2;
	}
	if ((f = fopen(cert_path, "r")) == NULL ||
	    (cert = PEM_read_X509(f, NULL, NULL, NULL)) == NULL) {
		fprintf(stderr, "rete-test-tsa: cannot read the certificate %s\n", cert_path);
		goto out;
	}
	fclose(f);
	if ((f = fopen(key_path, "r")) == NULL ||
	    (key = PEM_read_PrivateKey(f, NULL, NULL, NULL)) == NULL) {
		fprintf(stderr, "rete-test-tsa: cannot read the key %s\n", key_path);
		goto out;
	}
	fclose(f);
	f = NULL;
	if (chain_path != NULL) {
		X509 *c;
		if ((f = fopen(chain_path, "r")) == NULL || (chain = sk_X509_new_null()) == NULL) {
			fprintf(stderr, "rete-test-tsa: cannot read the chain %s\n", chain_path);
			goto out;
		}
		while ((c = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
			if (!sk_X509_push(chain, c))
				X509_free(c);
		ERR_clear_error();
		fclose(f);
		f = NULL;
	}
	ok = make_ctx(cert, key, EVP_sha256(), chain);
	reject = make_ctx(cert, key, EVP_sha512(), chain);
	if (ok == NULL || reject == NULL) {
		fprintf(stderr, "rete-test-tsa: the certificate cannot sign time stamps (it "
				"needs the critical extendedKeyUsage timeStamping)\n");
		goto out;
	}

	memset(&act, 0, sizeof(act));
	act.sa_handler = on_signal; /* no SA_RESTART: accept() returns EINTR */
	sigaction(SIGTERM, &act, NULL);
	sigaction(SIGINT, &act, NULL);
	signal(SIGPIPE, SIG_IGN);

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(lfd, 16) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen) != 0) {
		fprintf(stderr, "rete-test-tsa: cannot listen on 127.0.0.1:%d: %s\n", port,
			strerror(errno));
		goto out;
	}
	printf("port %d\n", ntohs(sa.sin_port));
	fflush(stdout);

	while (!stopping) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		struct timeval tv = {5, 0}; /* a stuck client cannot hold the TSA */
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		serve(fd, dir, ok, reject);
		close(fd);
	}
	close(lfd);
	rc = 0;
out:
	if (f != NULL)
		fclose(f);
	TS_RESP_CTX_free(ok);
	TS_RESP_CTX_free(reject);
	X509_free(cert);
	EVP_PKEY_free(key);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}
