/* problems.h — a list of problems found in one document or message.
 *
 * Checking a file a person wrote should tell them everything that is wrong
 * at once, not one thing per run. The JSON mapping (json.h) and the semantic
 * validation (validate.h) both append to a rete_problems list: each problem
 * is a path into the document (`referral.consent.givenAt`, `contacts[1].kind`,
 * empty for the whole document) and a sentence naming the value and what
 * would be accepted. The list owns its items; free it with
 * rete_problems_free.
 */
#ifndef RETE_PROBLEMS_H
#define RETE_PROBLEMS_H

#include <stdarg.h>
#include <stddef.h>

/* rete_problem is one problem: where (path, possibly truncated, always
 * NUL-terminated) and what (text, a sentence without a trailing newline).
 * error is the protocol's ErrorCode the problem calls for when it is not a
 * plain ERROR_CODE_INVALID (0): validate.h sets ERROR_CODE_PERSONAL_DATA on
 * free text or personal data where only codes go. */
typedef struct rete_problem {
	char path[128];
	char text[384];
	int error;
} rete_problem;

/* rete_problems is a growable list; a zeroed struct is an empty list. */
typedef struct rete_problems {
	rete_problem *items;
	size_t n, cap;
} rete_problems;

/* rete_problems_add appends one problem (path may be NULL or ""). Long paths
 * and sentences are truncated. Out of memory never leaves the list looking
 * clean: the last item (or a static one, if none could be allocated) then
 * says "out of memory", so n > 0 after any add. p NULL is a no-op. */
void rete_problems_add(rete_problems *p, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* rete_problems_vadd is rete_problems_add with a va_list. */
void rete_problems_vadd(rete_problems *p, const char *path, const char *fmt, va_list ap);

/* rete_problems_free frees the items and empties the list; NULL is fine. */
void rete_problems_free(rete_problems *p);

#endif
