/* agent_check.h — `--check-config` of an agent.ini (rete-agent and rete). */
#ifndef RETE_AGENT_CHECK_H
#define RETE_AGENT_CHECK_H

#include "agent_config.h"
#include "config_check.h"

/* agent_check_config opens what cfg names as the agent would at start,
 * without writing anything: its key (secret, mode 0600), the broker's key
 * (public), the spool folder and outbox/ sent/ failed/ inbox/, the data
 * folder. Appends every problem to problems and what the agent will do
 * about the rest (folders it creates; sent/ or failed/ on another file
 * system than outbox/, which it copies into) to notes. */
void agent_check_config(const agent_config *cfg, rete_check_list *problems, rete_check_list *notes);

/* agent_check_run is `--check-config` of the agent.ini ini, for rete-agent
 * and rete (prog names the program in a sentence): reads it listing every
 * problem of its keys, opens what it names (agent_check_config) and prints
 * the problems (FILE:LINE: where a key is the cause), the notes and the
 * last line (rete_check_report). Returns the exit code: 0 fine, 2. */
int agent_check_run(const char *prog, const char *ini);

#endif
