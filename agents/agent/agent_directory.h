/* agent_directory.h — the directory in force, as the agent received it.
 *
 * The broker hands the Directory entry (LogEntry bytes) over in WELCOME and
 * delivers later ones like any entry. The agent believes it only after
 * verifying the broker's signature with the pinned broker key: the
 * directory is where it takes the keys it seals personal data to and
 * verifies senders with, so an unsigned or altered one is refused.
 */
#ifndef RETE_AGENT_DIRECTORY_H
#define RETE_AGENT_DIRECTORY_H

#include <stdint.h>

#include "codec.h"
#include "error.h"
#include "keys.h"

/* agent_directory: the verified Directory message and where it was logged. */
typedef struct agent_directory {
	Rete__Message *msg;	    /* owned; msg->directory is set */
	const Rete__Directory *dir; /* = msg->directory */
	uint64_t index;		    /* log index of the entry */
	int64_t logged_at;	    /* its LogEntry.logged_at (Unix ms) */
} agent_directory;

/* agent_directory_load decodes the LogEntry bytes of a Directory entry,
 * verifies its signature with broker_pk and returns it in *out (caller
 * frees with agent_directory_free). RETE_EDECODE (not a LogEntry or not a
 * Directory), RETE_EBADSIG, RETE_ENOMEM; m says which. */
rete_err agent_directory_load(const uint8_t *entry, size_t len, const rete_pubkey *broker_pk,
			      agent_directory **out, rete_msg *m);

/* agent_directory_free frees *d and sets it to NULL; NULL is fine. */
void agent_directory_free(agent_directory **d);

/* agent_directory_party returns the party with this id (borrowed from d,
 * valid until d is freed), or NULL. */
const Rete__Party *agent_directory_party(const agent_directory *d, const char *id);

/* agent_directory_services writes the service codes of a party as
 * "a, b, c" into buf (size n) and returns buf ("none" when it offers none). */
char *agent_directory_services(const Rete__Party *p, char *buf, size_t n);

#endif
