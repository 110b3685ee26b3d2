/* tsa.h — RFC 3161 time-stamp tokens over checkpoint notes.
 *
 * A time-stamping authority (TSA) signs "these 32 bytes existed at time T".
 * rete asks one to stamp the SHA-256 of a checkpoint note's signed text (the
 * note body: origin, size, root and extension lines, without the signature
 * lines, so that cosignatures added later do not change what was stamped);
 * one token then dates every log entry below the checkpoint. This module
 * builds the request (OpenSSL's TS API, SHA-256, a random nonce, certReq),
 * posts it over HTTP(S) with libcurl, checks the answer (status granted,
 * our hash, our nonce, a signature that chains to a given CA with the
 * timeStamping purpose) and verifies a stored token offline against a note
 * and a CA. It keeps nothing: tokens are DER bytes the caller stores.
 *
 * Nothing the TSA sends is trusted: every answer is parsed with bounds and
 * any failure is a rete_err with a sentence naming the TSA, the field and
 * what would be accepted. OpenSSL's thread-local error queue is emptied
 * before each function returns.
 */
#ifndef RETE_TSA_H
#define RETE_TSA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

#define RETE_TSA_RESPONSE_MAX (256 * 1024) /* default bound on a TSA's answer */
#define RETE_TSA_NAME_MAX     256
#define RETE_TSA_HASH_LEN     32 /* SHA-256 */

/* What a verified token says. Plain values, no resources. */
typedef struct rete_tsa_info {
	int64_t gen_time_ms;		  /* the token's genTime, Unix milliseconds */
	char tsa_name[RETE_TSA_NAME_MAX]; /* the TSTInfo's tsa name, else the signer's subject */
	char serial[80];		  /* the token's serial number, hexadecimal */
	char policy[80];		  /* the TSA policy OID, dotted */
	uint8_t hash[RETE_TSA_HASH_LEN];  /* the stamped SHA-256 (of the note body) */
} rete_tsa_info;

/* How to reach a TSA. Only url is required; zeroes mean the defaults. The
 * strings are borrowed for the call. */
typedef struct rete_tsa_http {
	const char *url;	   /* http:// or https:// only */
	long connect_timeout_ms;   /* 0: 5000 */
	long timeout_ms;	   /* whole exchange; 0: 30000 */
	size_t max_response;	   /* 0: RETE_TSA_RESPONSE_MAX */
	const char *user;	   /* HTTP basic authentication, when set */
	const char *password;	   /* (never printed in a sentence) */
	const char *https_ca_file; /* CA bundle for an https URL's TLS; NULL: the system's */
	/* abandon, when set: asked about once a second while the exchange
	 * waits (and at every byte moved); true ends it at once. The broker's
	 * stop uses it, so that a TSA that does not answer cannot hold the
	 * stop for tsa_timeout. Called on the posting thread. */
	bool (*abandon)(void *arg);
	void *abandon_arg;
} rete_tsa_http;

/* A time-stamp request in the making: the hash, the nonce, the DER bytes. */
typedef struct rete_tsa_query rete_tsa_query;

/* rete_tsa_global_init initialises libcurl once per process (call it before
 * any thread is started); rete_tsa_global_cleanup undoes it at exit.
 * Errors: RETE_ENET (libcurl cannot initialise). */
rete_err rete_tsa_global_init(rete_msg *m);
void rete_tsa_global_cleanup(void);

/* rete_tsa_note_hash writes the SHA-256 of note[0:len]'s signed text (the
 * note must parse as a checkpoint note; its signature lines are excluded).
 * Errors: RETE_EINVAL (not a checkpoint note: the parser's sentence). */
rete_err rete_tsa_note_hash(const char *note, size_t len, uint8_t hash[RETE_TSA_HASH_LEN],
			    rete_msg *m);

/* rete_tsa_query_new builds a TimeStampReq (version 1, SHA-256 of the note
 * body, a random 63-bit nonce, certReq true, no policy) into *out, which the
 * caller frees with rete_tsa_query_free. Errors: RETE_EINVAL (not a
 * checkpoint note), RETE_ECRYPTO (OpenSSL failed), RETE_ENOMEM. */
rete_err rete_tsa_query_new(rete_tsa_query **out, const char *note, size_t len, rete_msg *m);

/* rete_tsa_query_free frees *q (NULL accepted) and sets *q = NULL. */
void rete_tsa_query_free(rete_tsa_query **q);

/* rete_tsa_query_der returns the request's DER bytes (owned by q, alive
 * until it is freed) and their length in *len. */
const uint8_t *rete_tsa_query_der(const rete_tsa_query *q, size_t *len);

/* rete_tsa_query_nonce returns the request's nonce. */
uint64_t rete_tsa_query_nonce(const rete_tsa_query *q);

/* rete_tsa_post posts req[0:req_len] to http->url as
 * application/timestamp-query and returns the body of a 200 answer in
 * *resp (malloc'd, the caller frees it) and its length in *resp_len.
 * Redirects are not followed. Errors: RETE_EINVAL (no URL, or not http(s)),
 * RETE_ENET (cannot connect, TLS, an HTTP status other than 200, an answer
 * over max_response bytes, or http->abandon said to stop: its sentence says
 * the exchange was abandoned), RETE_ETIMEDOUT, RETE_ENOMEM. */
rete_err rete_tsa_post(const rete_tsa_http *http, const uint8_t *req, size_t req_len,
		       uint8_t **resp, size_t *resp_len, rete_msg *m);

/* rete_tsa_response_check reads a TimeStampResp answering q: its status
 * must be granted (or granted with modifications), its token must stamp
 * q's hash with SHA-256 and carry q's nonce, and its signature must verify
 * against the certificates in the PEM file ca_file (the signer with the
 * timeStamping purpose). On success the token's DER goes to *token
 * (malloc'd, the caller frees it; may be NULL if not wanted) and what it
 * says to *info (may be NULL). Errors: RETE_EDECODE (not a DER
 * TimeStampResp or token), RETE_EREFUSED (the TSA's status is not granted:
 * the sentence quotes its status, failure info and text), RETE_EPROOF (the
 * token stamps another hash, another nonce or another algorithm),
 * RETE_EBADSIG (the signature or the certificate chain does not verify),
 * RETE_EIO (ca_file cannot be read), RETE_ENOMEM. */
rete_err rete_tsa_response_check(const rete_tsa_query *q, const uint8_t *resp, size_t len,
				 const char *ca_file, uint8_t **token, size_t *token_len,
				 rete_tsa_info *info, rete_msg *m);

/* rete_tsa_token_verify verifies a stored token (the DER TimeStampToken,
 * as rete_tsa_response_check returns it, the same bytes `openssl ts -verify
 * -token_in` reads) against note[0:note_len] and the CA certificates in
 * ca_file, offline (no nonce to compare). Fills *info (may be NULL) on
 * success. Errors: as rete_tsa_response_check, less RETE_EREFUSED, plus
 * RETE_EINVAL (the note is not a checkpoint note). */
rete_err rete_tsa_token_verify(const uint8_t *token, size_t len, const char *note, size_t note_len,
			       const char *ca_file, rete_tsa_info *info, rete_msg *m);

/* rete_tsa_stamp is the whole exchange: build the query for note, post it
 * to http->url, check the answer against ca_file. *token (malloc'd DER,
 * the caller frees it) and *info as rete_tsa_response_check. Errors: those
 * of the three steps, each sentence naming the TSA's URL. */
rete_err rete_tsa_stamp(const rete_tsa_http *http, const char *note, size_t note_len,
			const char *ca_file, uint8_t **token, size_t *token_len,
			rete_tsa_info *info, rete_msg *m);

#endif
