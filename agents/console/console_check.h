/* console_check.h — what `rete --check-config` asks of the web console.
 *
 * The check of a coord.ini (or audit.ini) runs the console's own reading
 * of [console] and the judgements its start makes (the listen address, the
 * accounts file, TLS, the witness policy, the time zone), so that the
 * check and the start never disagree.
 */
#ifndef RETE_CONSOLE_CHECK_H
#define RETE_CONSOLE_CHECK_H

#include "config_check.h"

/* console_check appends to problems every problem `rete console -c ini`
 * would refuse at start, before it connects to the broker (with the line
 * of the key where one is the cause), and to notes what is no problem for
 * every program reading the file ([client] events not set, without a
 * [console] section). Nothing is made or written. Returns the number of
 * problems now in the list. */
int console_check(const char *ini, rete_check_list *problems, rete_check_list *notes);

#endif
