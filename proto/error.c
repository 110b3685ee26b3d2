/* error.c — rete_strerror and the explanation buffer. */
#include "error.h"

#include <stdio.h>
#include <string.h>

static const char *const err_text[RETE_ERR_COUNT] = {
	[RETE_OK] = "success",
	[RETE_EINVAL] = "invalid input",
	[RETE_ENOMEM] = "out of memory",
	[RETE_EIO] = "input/output error",
	[RETE_EPERM] = "permission problem",
	[RETE_ENOENT] = "not found",
	[RETE_EEXIST] = "already exists",
	[RETE_ECRYPTO] = "unusable key",
	[RETE_EBADSIG] = "signature does not verify",
	[RETE_EOPEN] = "sealed part cannot be opened with this key",
	[RETE_EDECODE] = "data does not decode",
	[RETE_EJSON] = "JSON does not match the schema",
	[RETE_ELIFECYCLE] = "status change not allowed",
	[RETE_EPROOF] = "proof does not verify",
	[RETE_ECORRUPT] = "stored data is corrupt",
	[RETE_EVERSION] = "unsupported version",
	[RETE_EFULL] = "storage full",
	[RETE_ESTORE] = "store error",
	[RETE_ENET] = "network error",
	[RETE_ETIMEDOUT] = "timed out",
	[RETE_EREFUSED] = "refused",
};

const char *rete_strerror(rete_err err)
{
	if ((unsigned)err >= RETE_ERR_COUNT || err_text[err] == NULL)
		return "unknown error";
	return err_text[err];
}

rete_err rete_msg_vset(rete_msg *m, rete_err err, const char *fmt, va_list ap)
{
	if (m != NULL)
		vsnprintf(m->text, sizeof(m->text), fmt, ap);
	return err;
}

rete_err rete_msg_set(rete_msg *m, rete_err err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rete_msg_vset(m, err, fmt, ap);
	va_end(ap);
	return err;
}

void rete_msg_prefix(rete_msg *m, const char *fmt, ...)
{
	char prefix[256];
	va_list ap;
	size_t plen, olen;

	if (m == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	plen = strlen(prefix);
	olen = strnlen(m->text, sizeof(m->text) - 1);
	/* Keep as much of the old sentence as fits after "prefix: ". */
	if (plen + 2 >= sizeof(m->text))
		plen = sizeof(m->text) - 3;
	if (plen + 2 + olen >= sizeof(m->text))
		olen = sizeof(m->text) - 1 - plen - 2;
	memmove(m->text + plen + 2, m->text, olen);
	memcpy(m->text, prefix, plen);
	m->text[plen] = ':';
	m->text[plen + 1] = ' ';
	m->text[plen + 2 + olen] = '\0';
}
