/* local_tsa.h — the tests' own time-stamping authority.
 *
 * local_tsa_open makes, in a fresh temporary folder, with `rete-test-tsa
 * --make-ca` (the `openssl` command): a test CA (ca.pem), a TSA certificate
 * it issues with the critical extendedKeyUsage timeStamping (tsa.pem,
 * tsa.key; "CN=rete test TSA") and a second, unrelated CA (other-ca.pem);
 * then starts rete-test-tsa (tests/tsa/tsa_server.c) on 127.0.0.1. The test can stop it, start it
 * again on the same port, and tell it what to answer next (local_tsa_mode). Its tokens carry the
 * TSA certificate and the CA certificate (as real TSAs add their chain). Nothing reaches the
 * internet.
 */
#ifndef RETE_LOCAL_TSA_H
#define RETE_LOCAL_TSA_H

#include <stdbool.h>
#include <sys/types.h>

typedef struct local_tsa {
	char *lt_dir;		/* the temporary folder (owned) */
	char lt_ca[4096];	/* lt_dir/ca.pem: the CA that issued the TSA's certificate */
	char lt_other_ca[4096]; /* lt_dir/other-ca.pem: a CA that issued nothing here */
	char lt_url[64];	/* http://127.0.0.1:PORT/tsa */
	char lt_bin[4096];	/* the rete-test-tsa program */
	int lt_port;		/* 0 until first started */
	pid_t lt_pid;		/* the running server, or 0 */
} local_tsa;

/* local_tsa_open makes the certificates in a new temporary folder and
 * starts the server (bin_dir holds rete-test-tsa). *out is malloc'd; close
 * it with local_tsa_close. Returns 0, or -1 with the reason on stderr. */
int local_tsa_open(local_tsa **out, const char *bin_dir);

/* local_tsa_start starts the server (again, on the port it had, so the URL
 * stays the same) and returns once it listens (deadline 10 s): 0 or -1. */
int local_tsa_start(local_tsa *t);

/* local_tsa_stop stops the server (SIGTERM) and waits for it; a connection
 * to the URL is then refused. No-op when it is not running. */
void local_tsa_stop(local_tsa *t);

/* local_tsa_mode sets what the server answers from the next request on:
 * "ok", "reject", "garbage", "http-error", "wrong-nonce", "huge" (see
 * tsa_server.c). 0 or -1. */
int local_tsa_mode(local_tsa *t, const char *mode);

/* local_tsa_close stops the server, removes the folder, frees *t and sets
 * *t = NULL (NULL accepted). */
void local_tsa_close(local_tsa **t);

#endif
