/* cli_access.h — the access record of the `rete` commands that read the
 * log (audit, timeline, report, sar, evidence).
 *
 * A command records its read BEFORE it reads: a read that cannot be
 * recorded is not made (exit 2 with the sentence). The record goes to the
 * [privacy] access_log of the configuration file the command was given
 * (agent.ini, coord.ini or audit.ini; see privacy_config.h), else, for a
 * command given only a store folder, to rete_access_default_path
 * ($RETE_ACCESS_LOG, $XDG_STATE_HOME/rete/access.log or
 * ~/.local/state/rete/access.log). "who" is the operating-system user.
 */
#ifndef RETE_CLI_ACCESS_H
#define RETE_CLI_ACCESS_H

#include <stdbool.h>

/* cli_access_record records one read: program (e.g. "rete evidence
 * export"), what (codes only: a case id, an index range, a message id;
 * never a person's name or fiscal code), ini the configuration file given
 * (NULL: none). On failure it prints the sentence on stderr (prefixed with
 * program) and returns false: the caller exits with CLI_USAGE without
 * reading. This is the function `rete evidence` calls. */
bool cli_access_record(const char *ini, const char *program, const char *what);

/* cli_access_argv records a command's read from its argument vector: the
 * program is prefix and argv[0] (and argv[1] when it is a subcommand:
 * "rete audit timeline"), what is the remaining arguments, the
 * configuration the -c/--config value. Same result as cli_access_record. */
bool cli_access_argv(const char *prefix, int argc, char **argv, bool subcommand);

#endif
