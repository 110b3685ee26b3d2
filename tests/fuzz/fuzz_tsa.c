/* fuzz_tsa.c — libFuzzer target: what a time-stamping authority sends.
 *
 * The first input byte chooses the door, the rest is the TSA's bytes (not
 * NUL-terminated, so a read past the end is caught by ASan):
 *   even  an answer to a fixed query (rete_tsa_response_check): a
 *         TimeStampResp from the TSA over HTTP;
 *   odd   a stored token (rete_tsa_token_verify) against a fixed note, as
 *         `rete evidence verify --tsa-ca` will read it from a bundle.
 * Both are checked against a CA made once in process (a self-signed P-256
 * certificate written to a temporary file), so the fuzzer reaches the CA
 * store and OpenSSL's signature check behind the parsing. Properties
 * besides "no crash, no leak, no UB": a success fills a token of the
 * length it claims, and that token verifies offline against the same note
 * and CA, to the same genTime. (With a CA nobody else holds a success
 * cannot happen; the property guards the day seeds carry its signatures.)
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "checkpoint.h"
#include "fuzz_common.h"
#include "tsa.h"

static char ca_path[64];
static char *note;
static rete_tsa_query *query;

static void remove_ca(void)
{
	unlink(ca_path);
}

/* A self-signed CA certificate, written once (removed at exit). */
static void make_ca(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *c = X509_new();
	X509_NAME *n = c ? X509_get_subject_name(c) : NULL;
	FILE *f;
	int fd;

	snprintf(ca_path, sizeof(ca_path), "/tmp/fuzz_tsa_ca_XXXXXX");
	fd = mkstemp(ca_path);
	if (k == NULL || c == NULL || n == NULL || fd < 0 || !X509_set_version(c, 2) ||
	    !ASN1_INTEGER_set(X509_get_serialNumber(c), 1) ||
	    !X509_gmtime_adj(X509_getm_notBefore(c), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(c), 3600) ||
	    !X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"fuzz CA", -1,
					-1, 0) ||
	    !X509_set_issuer_name(c, n) || !X509_set_pubkey(c, k) ||
	    !X509_sign(c, k, EVP_sha256()) || (f = fdopen(fd, "w")) == NULL) {
		fprintf(stderr, "fuzz_tsa: cannot make the CA\n");
		abort();
	}
	PEM_write_X509(f, c);
	fclose(f);
	atexit(remove_ca);
	X509_free(c);
	EVP_PKEY_free(k);
}

static void init(void)
{
	uint8_t root[RETE_MERKLE_HASH];
	rete_msg m;

	memset(root, 0x42, sizeof(root));
	if (rete_checkpoint_sign(FUZZ_ORIGIN, 12, root, fuzz_key(), &note, &m) != RETE_OK ||
	    rete_tsa_query_new(&query, note, strlen(note), &m) != RETE_OK) {
		fprintf(stderr, "fuzz_tsa: cannot make the note or query: %s\n", m.text);
		abort();
	}
	make_ca();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *bytes, *tok = NULL;
	size_t len, tok_len = 0;
	rete_tsa_info info, again;
	rete_msg m;
	rete_err err;

	if (note == NULL)
		init();
	if (size == 0)
		return 0;
	len = size - 1;
	bytes = malloc(len ? len : 1);
	if (bytes == NULL)
		abort();
	memcpy(bytes, data + 1, len);
	if ((data[0] & 1) == 0) {
		err =
		    rete_tsa_response_check(query, bytes, len, ca_path, &tok, &tok_len, &info, &m);
		if (err == RETE_OK) {
			if (tok == NULL || tok_len == 0)
				fuzz_fail("a granted answer gave no token");
			if (rete_tsa_token_verify(tok, tok_len, note, strlen(note), ca_path, &again,
						  &m) != RETE_OK)
				fuzz_fail("a checked answer's token does not verify: %s", m.text);
			if (again.gen_time_ms != info.gen_time_ms)
				fuzz_fail("the token's genTime changed between checks");
		} else if (tok != NULL || tok_len != 0) {
			fuzz_fail("a refused answer left a token behind");
		}
		free(tok);
	} else {
		err = rete_tsa_token_verify(bytes, len, note, strlen(note), ca_path, &info, &m);
		if (err != RETE_OK && memchr(m.text, 0, sizeof(m.text)) == NULL)
			fuzz_fail("a sentence is not NUL-terminated");
	}
	free(bytes);
	return 0;
}
