/* error.h — the one error type of rete.
 *
 * Every function of the project that can fail returns a rete_err: RETE_OK
 * (0) or one of the codes below. Foreign errors (LMDB, ZeroMQ, errno) are
 * mapped to these at the boundary where they occur; the detail a person
 * needs (file, field, value, what would be accepted) travels beside the code
 * in a caller-supplied rete_msg buffer.
 */
#ifndef RETE_ERROR_H
#define RETE_ERROR_H

#include <stdarg.h>
#include <stddef.h>

typedef enum rete_err {
	RETE_OK = 0,
	RETE_EINVAL,      /* invalid input: a field, a value, a file */
	RETE_ENOMEM,      /* out of memory */
	RETE_EIO,         /* file or system I/O failed */
	RETE_EPERM,       /* permission: e.g. a secret key readable by others */
	RETE_ENOENT,      /* not found */
	RETE_EEXIST,      /* already exists */
	RETE_ECRYPTO,     /* a key cannot be used (e.g. X25519 conversion failed) */
	RETE_EBADSIG,     /* a signature does not verify */
	RETE_EOPEN,       /* a sealed part does not open with this key */
	RETE_EDECODE,     /* bytes do not decode strictly */
	RETE_EJSON,       /* JSON does not map to the message */
	RETE_ELIFECYCLE,  /* a status transition is not allowed */
	RETE_EPROOF,      /* a Merkle proof does not verify */
	RETE_ECORRUPT,    /* stored data is inconsistent with itself */
	RETE_EVERSION,    /* unknown store schema or protocol version */
	RETE_EFULL,       /* storage full */
	RETE_ESTORE,      /* other store (LMDB) failure */
	RETE_ENET,        /* ZeroMQ / network failure */
	RETE_ETIMEDOUT,   /* a deadline passed */
	RETE_EREFUSED,    /* the peer refused (policy, lifecycle, ...) */
	RETE_ERR_COUNT
} rete_err;

/* rete_strerror returns a static, human-readable sentence for err. */
const char *rete_strerror(rete_err err);

/* rete_msg is a fixed buffer for the sentence that explains an error. A NULL
 * rete_msg pointer is accepted everywhere and means "no detail wanted". */
typedef struct rete_msg {
	char text[512];
} rete_msg;

/* rete_msg_set formats into m (if m is not NULL) and returns err, so that
 * `return rete_msg_set(m, RETE_EINVAL, "...", ...);` reads naturally. */
rete_err rete_msg_set(rete_msg *m, rete_err err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* rete_msg_vset is rete_msg_set with a va_list. */
rete_err rete_msg_vset(rete_msg *m, rete_err err, const char *fmt, va_list ap);

/* rete_msg_prefix prepends "prefix: " to the sentence already in m. */
void rete_msg_prefix(rete_msg *m, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
