/* logline.h — text from outside made safe for one log line.
 *
 * File names, party ids, HELLO's software string, ACK reasons and other
 * peers' sentences end up in log lines. A newline in them would forge a
 * line of its own (a fake "WITNESS ALARM"), an escape sequence would drive
 * the operator's terminal. Every log line of the broker and the agent goes
 * through rete_log_escape, so one call is always exactly one line:
 *
 *   \n \r \t            as those two characters
 *   \\                  a backslash is doubled, so "\n" in the text can only
 *                       be an escaped newline, never the two characters
 *   \xHH                every other control character (0x00-0x1f, 0x7f),
 *                       the C1 controls U+0080-U+009F (some terminals take
 *                       U+009B as an escape sequence) and every byte that
 *                       does not belong to well-formed UTF-8
 *
 * Well-formed UTF-8 otherwise passes unchanged (names with accents stay
 * readable). Owns nothing; pure functions, safe from any thread.
 */
#ifndef RETE_LOGLINE_H
#define RETE_LOGLINE_H

#include <stddef.h>

/* rete_log_escape writes the escaped form of in[0..len) into out (size
 * bytes, the caller's; always NUL-terminated when size > 0, cut only at a
 * whole escape) and returns the length the whole escaped text needs
 * (without the NUL), as snprintf does: a result >= size means it was cut. */
size_t rete_log_escape(char *out, size_t size, const char *in, size_t len);

/* rete_log_escape_dup returns the escaped form of the NUL-terminated s in
 * new memory (the caller frees it), or NULL when out of memory. */
char *rete_log_escape_dup(const char *s);

#endif
