/* tsa.c — RFC 3161 time-stamp tokens over checkpoint notes. See tsa.h. */
#define _GNU_SOURCE /* timegm */
#include "tsa.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pkcs7.h>
#include <openssl/ts.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include "checkpoint.h"

#define CONNECT_TIMEOUT_MS 5000L
#define TIMEOUT_MS	   30000L

struct rete_tsa_query {
	uint8_t tq_hash[RETE_TSA_HASH_LEN];
	uint64_t tq_nonce;
	uint8_t *tq_der; /* malloc'd */
	size_t tq_der_len;
};

/* Printable, bounded copy of outside text for a sentence: anything but
 * printable ASCII becomes '?', and at most cap - 1 bytes are kept. */
static void printable(char *out, size_t cap, const uint8_t *p, size_t len)
{
	size_t o = 0;

	for (size_t i = 0; i < len && o + 1 < cap; i++)
		out[o++] = (p[i] >= 0x20 && p[i] < 0x7f) ? (char)p[i] : '?';
	out[o] = '\0';
}

/* The first OpenSSL reason on this thread's error queue (or a fallback), and
 * the queue emptied: what a failed OpenSSL call leaves is read once and
 * never leaks into the next caller's errors. */
static const char *ossl_reason(char *buf, size_t n)
{
	const char *data = NULL;
	int flags = 0;
	unsigned long e = ERR_peek_error_data(&data, &flags);
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	/* The reason, and the detail OpenSSL attaches to it when it has one
	 * (for a chain: "Verify error:unable to get local issuer certificate"). */
	if (data != NULL && (flags & ERR_TXT_STRING) && *data != '\0')
		snprintf(buf, n, "%s (%s)", r ? r : "no reason given by OpenSSL", data);
	else
		snprintf(buf, n, "%s", r ? r : "no reason given by OpenSSL");
	printable(buf, n, (const uint8_t *)buf, strlen(buf));
	ERR_clear_error();
	return buf;
}

/* The URL as a sentence may show it: without "user:password@". */
static void show_url(char out[200], const char *url)
{
	const char *scheme_end = strstr(url, "://");
	const char *host = scheme_end ? scheme_end + 3 : url;
	const char *slash = strchr(host, '/');
	const char *at = strchr(host, '@');

	if (at != NULL && (slash == NULL || at < slash))
		snprintf(out, 200, "%.*s%s", (int)(host - url), url, at + 1);
	else
		snprintf(out, 200, "%s", url);
	printable(out, 200, (const uint8_t *)out, strlen(out));
}

static void hex(char *out, size_t cap, const uint8_t *p, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < len && o + 2 < cap; i++) {
		out[o++] = digits[p[i] >> 4];
		out[o++] = digits[p[i] & 15];
	}
	out[o] = '\0';
}

/* ca_file_check: RETE_OK when path is a regular file (a named pipe
 * without a writer would block OpenSSL's open of it for good); else
 * RETE_EIO with a sentence in m. */
static rete_err ca_file_check(const char *path, rete_msg *m)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	bool ok;

	if (fd < 0)
		return rete_msg_set(m, RETE_EIO,
				    "cannot read the TSA CA certificates from '%s': %s", path,
				    strerror(errno));
	ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
	close(fd);
	if (!ok)
		return rete_msg_set(m, RETE_EIO,
				    "the TSA CA certificates '%s' are not a regular file (a "
				    "folder, device, pipe or socket); expected a PEM file with the "
				    "CA that issued the TSA's certificate",
				    path);
	return RETE_OK;
}

rete_err rete_tsa_global_init(rete_msg *m)
{
	CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);

	if (c != CURLE_OK)
		return rete_msg_set(m, RETE_ENET, "libcurl cannot initialise: %s",
				    curl_easy_strerror(c));
	return RETE_OK;
}

void rete_tsa_global_cleanup(void)
{
	curl_global_cleanup();
}

/* The note's signed text: note[0:*body_len], everything before the blank
 * line that opens the signature lines (the note is parsed strictly first,
 * so that blank line exists and the text ends with its newline). */
static rete_err note_body(const char *note, size_t len, size_t *body_len, rete_msg *m)
{
	rete_checkpoint cp;
	rete_err err = rete_checkpoint_parse(note, len, &cp, m);

	if (err != RETE_OK) {
		rete_msg_prefix(m, "cannot time-stamp the note");
		return err;
	}
	*body_len = rete_checkpoint_body_len(note, len);
	if (*body_len == len) /* not after a strict parse: said in case */
		return rete_msg_set(m, RETE_EINVAL,
				    "cannot time-stamp the note: it has no blank line");
	return RETE_OK;
}

rete_err rete_tsa_note_hash(const char *note, size_t len, uint8_t hash[RETE_TSA_HASH_LEN],
			    rete_msg *m)
{
	size_t body_len;
	rete_err err = note_body(note, len, &body_len, m);

	if (err != RETE_OK)
		return err;
	crypto_hash_sha256(hash, (const unsigned char *)note, body_len);
	return RETE_OK;
}

rete_err rete_tsa_query_new(rete_tsa_query **out, const char *note, size_t len, rete_msg *m)
{
	rete_tsa_query *q = NULL;
	TS_REQ *req = NULL;
	TS_MSG_IMPRINT *mi = NULL;
	X509_ALGOR *alg = NULL;
	ASN1_INTEGER *nonce = NULL;
	unsigned char *der = NULL;
	int der_len;
	char why[160];
	rete_err err;

	*out = NULL;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "out of memory for a time-stamp request");
	err = rete_tsa_note_hash(note, len, q->tq_hash, m);
	if (err != RETE_OK)
		goto fail;
	/* A positive nonce below 2^63: INTEGER encodings stay 8 bytes or
	 * fewer and every TSA reads it as the same number. */
	randombytes_buf(&q->tq_nonce, sizeof(q->tq_nonce));
	q->tq_nonce &= INT64_MAX;
	if (q->tq_nonce == 0)
		q->tq_nonce = 1;

	req = TS_REQ_new();
	mi = TS_MSG_IMPRINT_new();
	alg = X509_ALGOR_new();
	nonce = ASN1_INTEGER_new();
	if (req == NULL || mi == NULL || alg == NULL || nonce == NULL ||
	    !X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL) ||
	    !TS_MSG_IMPRINT_set_algo(mi, alg) ||
	    !TS_MSG_IMPRINT_set_msg(mi, q->tq_hash, RETE_TSA_HASH_LEN) ||
	    !TS_REQ_set_version(req, 1) || !TS_REQ_set_msg_imprint(req, mi) ||
	    !ASN1_INTEGER_set_uint64(nonce, q->tq_nonce) || !TS_REQ_set_nonce(req, nonce) ||
	    !TS_REQ_set_cert_req(req, 1) || (der_len = i2d_TS_REQ(req, &der)) <= 0) {
		err = rete_msg_set(m, RETE_ECRYPTO, "cannot build the time-stamp request: %s",
				   ossl_reason(why, sizeof(why)));
		goto fail;
	}
	q->tq_der = malloc((size_t)der_len);
	if (q->tq_der == NULL) {
		err = rete_msg_set(m, RETE_ENOMEM, "out of memory for a time-stamp request");
		goto fail;
	}
	memcpy(q->tq_der, der, (size_t)der_len);
	q->tq_der_len = (size_t)der_len;
	OPENSSL_free(der);
	TS_REQ_free(req);
	TS_MSG_IMPRINT_free(mi);
	X509_ALGOR_free(alg);
	ASN1_INTEGER_free(nonce);
	*out = q;
	return RETE_OK;
fail:
	OPENSSL_free(der);
	TS_REQ_free(req);
	TS_MSG_IMPRINT_free(mi);
	X509_ALGOR_free(alg);
	ASN1_INTEGER_free(nonce);
	rete_tsa_query_free(&q);
	ERR_clear_error();
	return err;
}

void rete_tsa_query_free(rete_tsa_query **q)
{
	if (q == NULL || *q == NULL)
		return;
	free((*q)->tq_der);
	free(*q);
	*q = NULL;
}

const uint8_t *rete_tsa_query_der(const rete_tsa_query *q, size_t *len)
{
	*len = q->tq_der_len;
	return q->tq_der;
}

uint64_t rete_tsa_query_nonce(const rete_tsa_query *q)
{
	return q->tq_nonce;
}

/* ---- HTTP ---------------------------------------------------------------- */

typedef struct sink {
	uint8_t *sk_buf;
	size_t sk_len, sk_cap, sk_max;
	bool sk_over; /* the answer passed sk_max */
	bool sk_nomem;
} sink;

static size_t sink_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
	sink *s = ud;
	size_t n = size * nmemb;

	if (n > s->sk_max - s->sk_len) {
		s->sk_over = true;
		return 0; /* libcurl stops with CURLE_WRITE_ERROR */
	}
	if (s->sk_len + n > s->sk_cap) {
		size_t cap = s->sk_cap ? s->sk_cap : 4096;
		while (cap < s->sk_len + n)
			cap *= 2;
		if (cap > s->sk_max)
			cap = s->sk_max;
		uint8_t *nb = realloc(s->sk_buf, cap);
		if (nb == NULL) {
			s->sk_nomem = true;
			return 0;
		}
		s->sk_buf = nb;
		s->sk_cap = cap;
	}
	memcpy(s->sk_buf + s->sk_len, ptr, n);
	s->sk_len += n;
	return n;
}

/* abandon_check is libcurl's progress callback: non-zero ends the transfer
 * with CURLE_ABORTED_BY_CALLBACK. libcurl calls it about once a second
 * even when nothing moves, which bounds how long a stop waits. */
static int abandon_check(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			 curl_off_t ulnow)
{
	const rete_tsa_http *http = ud;
	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return http->abandon(http->abandon_arg) ? 1 : 0;
}

rete_err rete_tsa_post(const rete_tsa_http *http, const uint8_t *req, size_t req_len,
		       uint8_t **resp, size_t *resp_len, rete_msg *m)
{
	char url[200], errbuf[CURL_ERROR_SIZE] = "";
	long connect_ms, total_ms, status = 0;
	struct curl_slist *headers = NULL;
	sink s = {0};
	CURL *c = NULL;
	CURLcode rc;
	rete_err err = RETE_OK;

	*resp = NULL;
	*resp_len = 0;
	if (http == NULL || http->url == NULL || *http->url == '\0')
		return rete_msg_set(
		    m, RETE_EINVAL,
		    "no TSA URL is configured; expected an http:// or https:// URL");
	show_url(url, http->url);
	if (strncmp(http->url, "http://", 7) != 0 && strncmp(http->url, "https://", 8) != 0)
		return rete_msg_set(m, RETE_EINVAL,
				    "TSA URL '%s' is neither http:// nor https://; RFC 3161 over "
				    "HTTP(S) is what rete speaks",
				    url);
	connect_ms = http->connect_timeout_ms > 0 ? http->connect_timeout_ms : CONNECT_TIMEOUT_MS;
	total_ms = http->timeout_ms > 0 ? http->timeout_ms : TIMEOUT_MS;
	s.sk_max = http->max_response > 0 ? http->max_response : RETE_TSA_RESPONSE_MAX;

	c = curl_easy_init();
	headers = curl_slist_append(NULL, "Content-Type: application/timestamp-query");
	if (headers != NULL)
		headers = curl_slist_append(headers, "Accept: application/timestamp-reply");
	if (headers != NULL) /* no "Expect: 100-continue" round trip */
		headers = curl_slist_append(headers, "Expect:");
	if (c == NULL || headers == NULL) {
		err = rete_msg_set(m, RETE_ENOMEM, "cannot prepare the request to the TSA at %s",
				   url);
		goto done;
	}
	curl_easy_setopt(c, CURLOPT_URL, http->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, (const char *)req);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req_len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, total_ms);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)s.sk_max);
	if (http->user != NULL) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, http->user);
		curl_easy_setopt(c, CURLOPT_PASSWORD, http->password ? http->password : "");
	}
	if (http->https_ca_file != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, http->https_ca_file);
	if (http->abandon != NULL) {
		curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abandon_check);
		curl_easy_setopt(c, CURLOPT_XFERINFODATA, (void *)http);
		curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	}

	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		char detail[CURL_ERROR_SIZE];
		printable(detail, sizeof(detail), (const uint8_t *)errbuf, strlen(errbuf));
		if (*detail == '\0')
			snprintf(detail, sizeof(detail), "%s", curl_easy_strerror(rc));
		if (s.sk_nomem)
			err =
			    rete_msg_set(m, RETE_ENOMEM,
					 "out of memory reading the answer of the TSA at %s", url);
		else if (s.sk_over || rc == CURLE_FILESIZE_EXCEEDED)
			err =
			    rete_msg_set(m, RETE_ENET,
					 "the TSA at %s answered more than %zu bytes; a time-stamp "
					 "reply is a few kilobytes",
					 url, s.sk_max);
		else if (rc == CURLE_ABORTED_BY_CALLBACK)
			err = rete_msg_set(m, RETE_ENET,
					   "the exchange with the TSA at %s was abandoned: the "
					   "program is stopping",
					   url);
		else if (rc == CURLE_OPERATION_TIMEDOUT)
			err = rete_msg_set(m, RETE_ETIMEDOUT,
					   "the TSA at %s did not answer within %ld ms (connect "
					   "%ld ms): %s",
					   url, total_ms, connect_ms, detail);
		else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST)
			err = rete_msg_set(m, RETE_ENET,
					   "cannot connect to the TSA at %s: %s; is the TSA up and "
					   "the URL right?",
					   url, detail);
		else
			err = rete_msg_set(m, RETE_ENET, "posting to the TSA at %s failed: %s", url,
					   detail);
		goto done;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		char body[120];
		printable(body, sizeof(body), s.sk_buf ? s.sk_buf : (const uint8_t *)"", s.sk_len);
		err = rete_msg_set(m, RETE_ENET,
				   "the TSA at %s answered HTTP %ld ('%s'); a TSA answers 200 with "
				   "an application/timestamp-reply body",
				   url, status, body);
		goto done;
	}
	if (s.sk_len == 0) {
		err = rete_msg_set(m, RETE_EDECODE,
				   "the TSA at %s answered 200 with an empty body; expected an "
				   "application/timestamp-reply",
				   url);
		goto done;
	}
	*resp = s.sk_buf;
	*resp_len = s.sk_len;
	s.sk_buf = NULL;
done:
	free(s.sk_buf);
	curl_slist_free_all(headers);
	if (c != NULL)
		curl_easy_cleanup(c);
	return err;
}

/* ---- tokens --------------------------------------------------------------- */

/* The bits of PKIFailureInfo (RFC 3161 2.4.2) a sentence may name. */
static const struct {
	int bit;
	const char *name;
} failure_bits[] = {
    {0, "badAlg (unrecognized or unsupported algorithm)"},
    {2, "badRequest (transaction not permitted or supported)"},
    {5, "badDataFormat (the data submitted has the wrong format)"},
    {14, "timeNotAvailable (the TSA's time source is not available)"},
    {15, "unacceptedPolicy (the requested TSA policy is not supported)"},
    {16, "unacceptedExtension (the requested extension is not supported)"},
    {17, "addInfoNotAvailable (the additional information requested is not available)"},
    {25, "systemFailure (the request cannot be handled due to system failure)"},
};

static const char *status_name(long st)
{
	switch (st) {
	case 0:
		return "granted";
	case 1:
		return "grantedWithMods";
	case 2:
		return "rejection";
	case 3:
		return "waiting";
	case 4:
		return "revocationWarning";
	case 5:
		return "revocationNotification";
	default:
		return "unknown";
	}
}

/* A printable rendering of a name (a certificate subject or a GeneralName). */
static void name_text(char out[RETE_TSA_NAME_MAX], const X509_NAME *xn, const GENERAL_NAME *gn)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL;
	long n;

	out[0] = '\0';
	if (b == NULL)
		return;
	if (gn != NULL && gn->type == GEN_DIRNAME)
		xn = gn->d.directoryName;
	if (xn != NULL)
		X509_NAME_print_ex(b, xn, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
	else if (gn != NULL)
		GENERAL_NAME_print(b, (GENERAL_NAME *)gn);
	n = BIO_get_mem_data(b, &p);
	if (n > 0 && p != NULL)
		printable(out, RETE_TSA_NAME_MAX, (const uint8_t *)p, (size_t)n);
	BIO_free(b);
}

/* genTime as Unix milliseconds: the calendar fields through OpenSSL (which
 * checks the format), the fraction of a second read here (OpenSSL skips it). */
static bool gen_time_ms(const ASN1_GENERALIZEDTIME *gt, int64_t *ms)
{
	struct tm tm;
	const char *d;
	int len, frac = 0, digits = 0;
	const char *dot;
	time_t t;

	if (gt == NULL || ASN1_STRING_type(gt) != V_ASN1_GENERALIZEDTIME ||
	    !ASN1_TIME_to_tm(gt, &tm))
		return false;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	d = (const char *)ASN1_STRING_get0_data(gt);
	len = ASN1_STRING_length(gt);
	dot = memchr(d, '.', (size_t)len);
	if (dot != NULL)
		for (const char *p = dot + 1; p < d + len && *p >= '0' && *p <= '9'; p++)
			if (digits < 3) {
				frac = frac * 10 + (*p - '0');
				digits++;
			}
	while (digits > 0 && digits < 3) {
		frac *= 10;
		digits++;
	}
	*ms = (int64_t)t * 1000 + frac;
	return true;
}

/* An AlgorithmIdentifier outside what is signed (the SignedData's digest
 * algorithms, the signer's digest and signature algorithms) has no
 * parameters or NULL ones: OpenSSL does not read them, so any other value
 * would be bytes changed in a token that still verifies. */
static bool plain_alg(const X509_ALGOR *a)
{
	int ptype = V_ASN1_UNDEF;
	const void *pval = NULL;
	const ASN1_OBJECT *obj = NULL;

	if (a == NULL)
		return false;
	X509_ALGOR_get0(&obj, &ptype, &pval, a);
	return obj != NULL && (ptype == V_ASN1_UNDEF || ptype == V_ASN1_NULL);
}

/* The signer's digest and signature algorithms are ones rete accepts and
 * agree with each other and with the signer's key. OpenSSL verifies with
 * the key and the digest algorithm and does not read the signature
 * algorithm's name, so a changed name would still verify. NULL when they
 * agree, else what is wrong. */
static const char *signer_algs(PKCS7_SIGNER_INFO *si, X509 *signer)
{
	const ASN1_OBJECT *d = NULL, *e = NULL;
	int dig, sig, sig_md = NID_undef, sig_pk = NID_undef;
	EVP_PKEY *pk = signer ? X509_get0_pubkey(signer) : NULL;

	if (si == NULL || pk == NULL)
		return "names no signer certificate";
	X509_ALGOR_get0(&d, NULL, NULL, si->digest_alg);
	X509_ALGOR_get0(&e, NULL, NULL, si->digest_enc_alg);
	dig = OBJ_obj2nid(d);
	sig = OBJ_obj2nid(e);
	if (dig != NID_sha256 && dig != NID_sha384 && dig != NID_sha512)
		return "uses a digest other than SHA-2";
	if (OBJ_find_sigid_algs(sig, &sig_md, &sig_pk)) {
		if (sig_md != dig)
			return "names a signature algorithm for another digest";
	} else {
		sig_pk = sig; /* a bare key algorithm, e.g. rsaEncryption */
	}
	if (sig_pk == NID_undef || sig_pk != EVP_PKEY_get_base_id(pk))
		return "names a signature algorithm for another kind of key";
	return NULL;
}

/* Every certificate the token carries besides the signer's (a TSA often
 * adds its chain) lies outside what the TSA signed: the signature covers
 * the signer's certificate only, through the ESS attribute. Each must then
 * carry a valid signature by a certificate of the CA file or of the token
 * (itself, for a root), so that no byte of the token can change unseen.
 * 0 when they all do, else the 1-based position of the first that does
 * not. */
static int certs_covered(STACK_OF(X509) * certs, X509 *signer, X509_STORE *store)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);

	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *c = sk_X509_value(certs, i);
		bool ok = false;

		if (X509_cmp(c, signer) == 0)
			continue;
		for (int j = 0; !ok && j < sk_X509_num(certs); j++) {
			X509 *iss = sk_X509_value(certs, j);
			ok = X509_check_issued(iss, c) == X509_V_OK &&
			     X509_verify(c, X509_get0_pubkey(iss)) == 1;
		}
		for (int j = 0; !ok && j < sk_X509_OBJECT_num(objs); j++) {
			X509 *iss = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, j));
			ok = iss != NULL && X509_check_issued(iss, c) == X509_V_OK &&
			     X509_verify(c, X509_get0_pubkey(iss)) == 1;
		}
		if (!ok) {
			ERR_clear_error();
			return i + 1;
		}
	}
	return 0;
}

/* Reads the token's DER strictly, checks what it stamps (SHA-256 of hash,
 * and the nonce when want_nonce) and its signature against ca_file. The
 * subject of sentences is `who` ("the token", "the TSA at URL's token"). */
static rete_err token_check(const uint8_t *der, size_t len, const uint8_t hash[RETE_TSA_HASH_LEN],
			    const uint64_t *want_nonce, const char *ca_file, const char *who,
			    rete_tsa_info *info, rete_msg *m)
{
	const unsigned char *p = der;
	unsigned char *re = NULL;
	PKCS7 *tok = NULL;
	TS_TST_INFO *tst = NULL;
	TS_VERIFY_CTX *vc = NULL;
	X509_STORE *store = NULL;
	rete_tsa_info out;
	char why[160], a[80], b[80];
	rete_err err = RETE_OK;
	int re_len;

	memset(&out, 0, sizeof(out));
	if (len == 0 || len > LONG_MAX) {
		err = rete_msg_set(m, RETE_EDECODE, "%s is empty; expected a DER TimeStampToken",
				   who);
		goto done;
	}
	tok = d2i_PKCS7(NULL, &p, (long)len);
	if (tok == NULL || p != der + len) {
		err = rete_msg_set(m, RETE_EDECODE,
				   "%s is not a DER TimeStampToken (%zu bytes%s); expected a CMS "
				   "SignedData over a TSTInfo",
				   who, len, tok ? ", with bytes after its end" : "");
		goto done;
	}
	/* One encoding only: bytes that decode to the same token but differ
	 * (BER lengths, a flipped bit OpenSSL tolerates) are not the token
	 * the TSA signed and stored. */
	re_len = i2d_PKCS7(tok, &re);
	if (re_len <= 0 || (size_t)re_len != len || memcmp(re, der, len) != 0) {
		err = rete_msg_set(m, RETE_EDECODE,
				   "%s is not in DER's one encoding (it re-encodes to %d bytes, "
				   "not %zu); expected the token exactly as the TSA signed it",
				   who, re_len, len);
		goto done;
	}
	if (!PKCS7_type_is_signed(tok) || tok->d.sign == NULL || tok->d.sign->version == NULL) {
		err = rete_msg_set(m, RETE_EDECODE, "%s is not a CMS SignedData", who);
		goto done;
	}
	{
		long v = ASN1_INTEGER_get(tok->d.sign->version);
		STACK_OF(PKCS7_SIGNER_INFO) *sis = PKCS7_get_signer_info(tok);
		PKCS7_SIGNER_INFO *si = sis && sk_PKCS7_SIGNER_INFO_num(sis) == 1
					    ? sk_PKCS7_SIGNER_INFO_value(sis, 0)
					    : NULL;
		if (v != 1 && v != 3) {
			err = rete_msg_set(m, RETE_EDECODE,
					   "%s is a SignedData of version %ld; expected 1 or 3",
					   who, v);
			goto done;
		}
		if (si == NULL) {
			err = rete_msg_set(m, RETE_EDECODE,
					   "%s has %d signers; a time-stamp token has exactly one",
					   who, sis ? sk_PKCS7_SIGNER_INFO_num(sis) : 0);
			goto done;
		}
		for (int i = 0; i < sk_X509_ALGOR_num(tok->d.sign->md_algs); i++)
			if (!plain_alg(sk_X509_ALGOR_value(tok->d.sign->md_algs, i))) {
				err = rete_msg_set(m, RETE_EDECODE,
						   "%s: its digest algorithm %d has parameters; "
						   "expected none or NULL",
						   who, i + 1);
				goto done;
			}
		if (!plain_alg(si->digest_alg) || !plain_alg(si->digest_enc_alg)) {
			err = rete_msg_set(m, RETE_EDECODE,
					   "%s: its signer names its %s algorithm with parameters; "
					   "expected none or NULL",
					   who, plain_alg(si->digest_alg) ? "signature" : "digest");
			goto done;
		}
		if (si->version == NULL || ASN1_INTEGER_get(si->version) != 1) {
			err = rete_msg_set(m, RETE_EDECODE,
					   "%s: its signer info has version %ld; expected 1", who,
					   si->version ? ASN1_INTEGER_get(si->version) : -1L);
			goto done;
		}
	}
	tst = PKCS7_to_TS_TST_INFO(tok);
	if (tst == NULL) {
		err = rete_msg_set(m, RETE_EDECODE,
				   "%s does not carry a TSTInfo (%s); expected the content type "
				   "id-ct-TSTInfo, not detached",
				   who, ossl_reason(why, sizeof(why)));
		goto done;
	}
	if (TS_TST_INFO_get_version(tst) != 1) {
		err = rete_msg_set(m, RETE_EDECODE, "%s: its TSTInfo has version %ld; expected 1",
				   who, TS_TST_INFO_get_version(tst));
		goto done;
	}
	{
		TS_MSG_IMPRINT *mi = TS_TST_INFO_get_msg_imprint(tst);
		X509_ALGOR *alg = mi ? TS_MSG_IMPRINT_get_algo(mi) : NULL;
		ASN1_OCTET_STRING *os = mi ? TS_MSG_IMPRINT_get_msg(mi) : NULL;
		const ASN1_OBJECT *obj = NULL;

		if (alg != NULL)
			X509_ALGOR_get0(&obj, NULL, NULL, alg);
		if (obj == NULL || OBJ_obj2nid(obj) != NID_sha256) {
			if (obj == NULL || OBJ_obj2txt(a, sizeof(a), obj, 0) <= 0)
				snprintf(a, sizeof(a), "none");
			err = rete_msg_set(m, RETE_EPROOF,
					   "%s stamps a hash made with %s; rete stamps SHA-256",
					   who, a);
			goto done;
		}
		if (os == NULL || ASN1_STRING_length(os) != RETE_TSA_HASH_LEN ||
		    memcmp(ASN1_STRING_get0_data(os), hash, RETE_TSA_HASH_LEN) != 0) {
			if (os != NULL)
				hex(a, 20, ASN1_STRING_get0_data(os),
				    (size_t)ASN1_STRING_length(os));
			else
				a[0] = '\0';
			hex(b, 20, hash, RETE_TSA_HASH_LEN);
			err = rete_msg_set(m, RETE_EPROOF,
					   "%s stamps the hash %s..., not this note's %s...: it is "
					   "the token of another note",
					   who, a, b);
			goto done;
		}
	}
	if (want_nonce != NULL) {
		const ASN1_INTEGER *n = TS_TST_INFO_get_nonce(tst);
		uint64_t got = 0;

		if (n == NULL || !ASN1_INTEGER_get_uint64(&got, n) || got != *want_nonce) {
			ERR_clear_error();
			err = rete_msg_set(
			    m, RETE_EPROOF,
			    "%s carries %s nonce than the request's %llu: it answers another "
			    "request (a replayed or mixed-up answer)",
			    who, n == NULL ? "no" : "another", (unsigned long long)*want_nonce);
			goto done;
		}
	}
	if (!gen_time_ms(TS_TST_INFO_get_time(tst), &out.gen_time_ms)) {
		err = rete_msg_set(
		    m, RETE_EDECODE,
		    "%s: its genTime is not a valid GeneralizedTime (YYYYMMDDhhmmss[.f]Z)", who);
		goto done;
	}

	/* The signature, the ESS certificate binding and the chain to the CA,
	 * checked at genTime: a token stays verifiable after its TSA's
	 * certificate expires, as long as it was valid when it signed. */
	store = X509_STORE_new();
	if (store == NULL) {
		err = rete_msg_set(m, RETE_ENOMEM, "out of memory for the TSA CA store");
		goto done;
	}
	if (ca_file != NULL && (err = ca_file_check(ca_file, m)) != RETE_OK)
		goto done;
	if (ca_file == NULL || !X509_STORE_load_file(store, ca_file)) {
		ERR_clear_error();
		err = rete_msg_set(m, RETE_EIO,
				   "cannot read the TSA CA certificates from '%s'; expected a PEM "
				   "file with the CA that issued the TSA's certificate",
				   ca_file ? ca_file : "(none given)");
		goto done;
	}
	X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store), (time_t)(out.gen_time_ms / 1000));
	vc = TS_VERIFY_CTX_new();
	if (vc == NULL) {
		err = rete_msg_set(m, RETE_ENOMEM, "out of memory for the token's verification");
		goto done;
	}
	/* vc takes one reference to the store; this function keeps its own
	 * for the certificates check below and frees it at the end. */
	if (!X509_STORE_up_ref(store)) {
		err = rete_msg_set(m, RETE_ENOMEM, "out of memory for the token's verification");
		goto done;
	}
	TS_VERIFY_CTX_set_store(vc, store);
	/* TS_VFY_SIGNER: the TSTInfo's tsa name, when present, must name the
	 * signer (TS_VFY_TSA_NAME would compare with a name we set, none). */
	TS_VERIFY_CTX_set_flags(vc, TS_VFY_SIGNATURE | TS_VFY_VERSION | TS_VFY_SIGNER);
	if (TS_RESP_verify_token(vc, tok) != 1) {
		err = rete_msg_set(m, RETE_EBADSIG,
				   "%s: its signature does not verify against the CA in '%s': %s; "
				   "accepted: a token signed by a TSA certificate with the "
				   "critical extendedKeyUsage timeStamping that this CA issued",
				   who, ca_file, ossl_reason(why, sizeof(why)));
		goto done;
	}

	{
		STACK_OF(PKCS7_SIGNER_INFO) *sis = PKCS7_get_signer_info(tok);
		X509 *signer = PKCS7_cert_from_signer_info(tok, sk_PKCS7_SIGNER_INFO_value(sis, 0));
		PKCS7_SIGNER_INFO *si = sk_PKCS7_SIGNER_INFO_value(sis, 0);
		const GENERAL_NAME *gn = TS_TST_INFO_get_tsa(tst);
		const char *bad = signer_algs(si, signer);

		if (bad != NULL) {
			err = rete_msg_set(m, RETE_EBADSIG,
					   "%s: its signer info %s; accepted: SHA-256, SHA-384 or "
					   "SHA-512 with the signature algorithm of the TSA's key",
					   who, bad);
			goto done;
		}
		int extra = certs_covered(tok->d.sign->cert, signer, store);
		if (extra > 0) {
			err = rete_msg_set(m, RETE_EBADSIG,
					   "%s: its certificate %d is not signed by the CA file's "
					   "certificates or the token's own; accepted: the TSA's "
					   "certificate and its chain, unchanged",
					   who, extra);
			goto done;
		}
		const ASN1_OBJECT *pol = TS_TST_INFO_get_policy_id(tst);
		BIGNUM *bn = ASN1_INTEGER_to_BN(TS_TST_INFO_get_serial(tst), NULL);
		char *hx = bn ? BN_bn2hex(bn) : NULL;

		if (gn != NULL)
			name_text(out.tsa_name, NULL, gn);
		else if (signer != NULL)
			name_text(out.tsa_name, X509_get_subject_name(signer), NULL);
		if (pol == NULL || OBJ_obj2txt(out.policy, sizeof(out.policy), pol, 1) <= 0)
			out.policy[0] = '\0';
		if (hx != NULL)
			snprintf(out.serial, sizeof(out.serial), "%s", hx);
		OPENSSL_free(hx);
		BN_free(bn);
	}
	memcpy(out.hash, hash, RETE_TSA_HASH_LEN);
	if (info != NULL)
		*info = out;
done:
	OPENSSL_free(re);
	TS_VERIFY_CTX_free(vc);
	X509_STORE_free(store);
	TS_TST_INFO_free(tst);
	PKCS7_free(tok);
	ERR_clear_error();
	return err;
}

/* The TSA's status as a sentence fragment: its name, the failure bits and
 * the TSA's own text, all bounded and printable. */
static void status_text(char *out, size_t cap, const TS_STATUS_INFO *si)
{
	const ASN1_BIT_STRING *fi = TS_STATUS_INFO_get0_failure_info(si);
	const STACK_OF(ASN1_UTF8STRING) *txt = TS_STATUS_INFO_get0_text(si);
	size_t o = 0;

	out[0] = '\0';
	for (size_t i = 0; fi != NULL && i < sizeof(failure_bits) / sizeof(failure_bits[0]); i++)
		if (ASN1_BIT_STRING_get_bit(fi, failure_bits[i].bit) && o + 1 < cap)
			o += (size_t)snprintf(out + o, cap - o, "%sfailure %s", o ? ", " : "",
					      failure_bits[i].name);
	for (int i = 0; txt != NULL && i < sk_ASN1_UTF8STRING_num(txt) && o + 1 < cap; i++) {
		const ASN1_UTF8STRING *s = sk_ASN1_UTF8STRING_value(txt, i);
		char shown[160];

		printable(shown, sizeof(shown), ASN1_STRING_get0_data(s),
			  (size_t)ASN1_STRING_length(s));
		o += (size_t)snprintf(out + o, cap - o, "%stext '%s'", o ? ", " : "", shown);
	}
	if (o == 0)
		snprintf(out, cap, "no failure info or text");
}

static rete_err response_check(const rete_tsa_query *q, const uint8_t *resp, size_t len,
			       const char *ca_file, const char *tsa, uint8_t **token,
			       size_t *token_len, rete_tsa_info *info, rete_msg *m)
{
	const unsigned char *p = resp;
	unsigned char *der = NULL;
	TS_RESP *r = NULL;
	rete_err err;
	int der_len;
	char why[160], who[240];

	snprintf(who, sizeof(who), "the answer of %s", tsa);
	if (token != NULL)
		*token = NULL;
	if (token_len != NULL)
		*token_len = 0;
	if (len == 0 || len > LONG_MAX)
		return rete_msg_set(m, RETE_EDECODE, "%s is empty; expected a DER TimeStampResp",
				    who);
	r = d2i_TS_RESP(NULL, &p, (long)len);
	if (r == NULL || p != resp + len) {
		uint8_t head[8];
		char shown[12];
		size_t n = len < sizeof(head) ? len : sizeof(head);

		memcpy(head, resp, n);
		printable(shown, sizeof(shown), head, n);
		err = rete_msg_set(m, RETE_EDECODE,
				   "%s is not a DER TimeStampResp (%zu bytes, starting '%s'%s); "
				   "expected an RFC 3161 application/timestamp-reply",
				   who, len, shown, r ? ", with bytes after its end" : "");
		goto done;
	}
	{
		TS_STATUS_INFO *si = TS_RESP_get_status_info(r);
		const ASN1_INTEGER *st = si ? TS_STATUS_INFO_get0_status(si) : NULL;
		long status = st ? ASN1_INTEGER_get(st) : -1;

		if (status != 0 && status != 1) {
			char detail[360];
			if (si != NULL)
				status_text(detail, sizeof(detail), si);
			else
				snprintf(detail, sizeof(detail), "no status");
			err = rete_msg_set(m, RETE_EREFUSED,
					   "%s refuses the request: status %s (%ld), %s; expected "
					   "granted (0) or grantedWithMods (1)",
					   tsa, status_name(status), status, detail);
			goto done;
		}
	}
	if (TS_RESP_get_token(r) == NULL) {
		err = rete_msg_set(m, RETE_EDECODE,
				   "%s grants the request but carries no time-stamp token", who);
		goto done;
	}
	der_len = i2d_PKCS7(TS_RESP_get_token(r), &der);
	if (der_len <= 0) {
		err = rete_msg_set(m, RETE_EDECODE, "%s: its token does not encode: %s", who,
				   ossl_reason(why, sizeof(why)));
		goto done;
	}
	{
		char tok_who[240];
		snprintf(tok_who, sizeof(tok_who), "the token from %s", tsa);
		err = token_check(der, (size_t)der_len, q->tq_hash, &q->tq_nonce, ca_file, tok_who,
				  info, m);
	}
	if (err != RETE_OK)
		goto done;
	if (token != NULL) {
		*token = malloc((size_t)der_len);
		if (*token == NULL) {
			err = rete_msg_set(m, RETE_ENOMEM, "out of memory for the token");
			goto done;
		}
		memcpy(*token, der, (size_t)der_len);
	}
	if (token_len != NULL)
		*token_len = (size_t)der_len;
done:
	OPENSSL_free(der);
	TS_RESP_free(r);
	ERR_clear_error();
	return err;
}

rete_err rete_tsa_response_check(const rete_tsa_query *q, const uint8_t *resp, size_t len,
				 const char *ca_file, uint8_t **token, size_t *token_len,
				 rete_tsa_info *info, rete_msg *m)
{
	return response_check(q, resp, len, ca_file, "the TSA", token, token_len, info, m);
}

rete_err rete_tsa_token_verify(const uint8_t *token, size_t len, const char *note, size_t note_len,
			       const char *ca_file, rete_tsa_info *info, rete_msg *m)
{
	uint8_t hash[RETE_TSA_HASH_LEN];
	rete_err err = rete_tsa_note_hash(note, note_len, hash, m);

	if (err != RETE_OK)
		return err;
	return token_check(token, len, hash, NULL, ca_file, "the time-stamp token", info, m);
}

rete_err rete_tsa_stamp(const rete_tsa_http *http, const char *note, size_t note_len,
			const char *ca_file, uint8_t **token, size_t *token_len,
			rete_tsa_info *info, rete_msg *m)
{
	rete_tsa_query *q = NULL;
	uint8_t *resp = NULL;
	size_t resp_len = 0, req_len;
	const uint8_t *req;
	char url[200], who[240];
	rete_err err;

	*token = NULL;
	*token_len = 0;
	err = rete_tsa_query_new(&q, note, note_len, m);
	if (err != RETE_OK)
		return err;
	req = rete_tsa_query_der(q, &req_len);
	err = rete_tsa_post(http, req, req_len, &resp, &resp_len, m);
	if (err == RETE_OK) {
		show_url(url, http->url);
		snprintf(who, sizeof(who), "the TSA at %s", url);
		err = response_check(q, resp, resp_len, ca_file, who, token, token_len, info, m);
	}
	free(resp);
	rete_tsa_query_free(&q);
	return err;
}
