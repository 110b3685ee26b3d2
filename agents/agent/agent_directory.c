/* agent_directory.c — see agent_directory.h. */
#include "agent_directory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

rete_err agent_directory_load(const uint8_t *entry, size_t len, const rete_pubkey *broker_pk,
			      agent_directory **out, rete_msg *m)
{
	Rete__LogEntry *le;
	Rete__SignedMessage *sm = NULL;
	Rete__Message *msg = NULL;
	rete_err err;

	*out = NULL;
	le = rete__log_entry__unpack(NULL, len, entry);
	if (le == NULL)
		return rete_msg_set(m, RETE_EDECODE, "directory entry: not a LogEntry");
	err = rete_signed_decode(le->signed_message.data, le->signed_message.len, &sm, &msg, m);
	if (err != RETE_OK)
		goto out;
	if (msg->body_case != RETE__MESSAGE__BODY_DIRECTORY || msg->directory == NULL) {
		err = rete_msg_set(m, RETE_EDECODE,
				   "directory entry %llu: body is '%s', not a directory",
				   (unsigned long long)le->index, rete_message_kind(msg));
		goto out;
	}
	if ((err = rete_signed_verify(sm, broker_pk, m)) != RETE_OK) {
		rete_msg_prefix(m, "directory entry %llu: not signed by the pinned broker key",
				(unsigned long long)le->index);
		goto out;
	}
	agent_directory *d = calloc(1, sizeof(*d));
	if (d == NULL) {
		err = rete_msg_set(m, RETE_ENOMEM, "out of memory");
		goto out;
	}
	d->msg = msg;
	d->dir = msg->directory;
	d->index = le->index;
	d->logged_at = le->logged_at;
	msg = NULL;
	*out = d;
out:
	if (msg != NULL)
		rete__message__free_unpacked(msg, NULL);
	if (sm != NULL)
		rete__signed_message__free_unpacked(sm, NULL);
	rete__log_entry__free_unpacked(le, NULL);
	return err;
}

void agent_directory_free(agent_directory **pd)
{
	if (pd == NULL || *pd == NULL)
		return;
	rete__message__free_unpacked((*pd)->msg, NULL);
	free(*pd);
	*pd = NULL;
}

const Rete__Party *agent_directory_party(const agent_directory *d, const char *id)
{
	if (d == NULL || id == NULL)
		return NULL;
	for (size_t i = 0; i < d->dir->n_parties; i++)
		if (d->dir->parties[i]->id != NULL && strcmp(d->dir->parties[i]->id, id) == 0)
			return d->dir->parties[i];
	return NULL;
}

char *agent_directory_services(const Rete__Party *p, char *buf, size_t n)
{
	size_t used = 0;
	buf[0] = '\0';
	for (size_t i = 0; p != NULL && i < p->n_services && used < n; i++)
		used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "",
					 p->services[i]->code);
	if (buf[0] == '\0')
		snprintf(buf, n, "none");
	return buf;
}
