/* cli.h — the `rete` command's subcommands.
 *
 * Each subcommand is a function taking the arguments after its name (argv[0]
 * is the subcommand's name) and returning the process exit code of the
 * contract: 0 = done / holds; 1 = the thing checked is false or was refused;
 * 2 = usage, configuration or I/O error.
 */
#ifndef RETE_CLI_H
#define RETE_CLI_H

#include <stdbool.h>

enum { CLI_OK = 0, CLI_FALSE = 1, CLI_USAGE = 2 };

/* cli_wants_help is true when argv holds -h or --help. */
bool cli_wants_help(int argc, char **argv);

/* cli_tz_known is true when tz names a time zone this machine knows ("UTC",
 * or a file under the zone database the C library reads: $TZDIR, else
 * /usr/share/zoneinfo); the C library would otherwise compute in UTC
 * without saying so. */
bool cli_tz_known(const char *tz);

/* cli_tz_refuse says on standard error, for who ("rete report"), why the
 * zone tz (from says where it came from: "--tz", "the default", ...)
 * cannot be used and what would happen instead (instead: "the times would
 * be shown in UTC"): a machine without the zone database (tzdata not
 * installed: the default zone is missing too) is said as such, with the
 * package to install; otherwise the zone is unknown, and one is
 * suggested. */
void cli_tz_refuse(const char *who, const char *tz, const char *from, const char *instead);

/* The subcommands (one file each: cmd_NAME.c). */
int cmd_keygen(int argc, char **argv);
int cmd_message(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_checkpoint(int argc, char **argv);
int cmd_witnesses(int argc, char **argv);
int cmd_store(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_send(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_health(int argc, char **argv);
int cmd_monitor(int argc, char **argv);
int cmd_console(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_sar(int argc, char **argv);
int cmd_evidence(int argc, char **argv);

#endif
