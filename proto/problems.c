/* problems.c — a growable list of (path, sentence) problems. */
#include "problems.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* When not even the first item can be allocated the list points at this
 * static item with cap == 0, which rete_problems_free knows not to free. The
 * text is constant, so sharing it between lists and threads is harmless. */
static rete_problem problems_oom = {"", "out of memory: problems could not be recorded", 0};

void rete_problems_vadd(rete_problems *p, const char *path, const char *fmt, va_list ap)
{
	if (!p)
		return;
	if (p->items == &problems_oom)
		return;
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 8;
		rete_problem *items = realloc(p->items, cap * sizeof(*items));
		if (!items) {
			if (p->n == 0) {
				p->items = &problems_oom;
				p->n = 1;
				p->cap = 0;
			} else {
				rete_problem *last = &p->items[p->n - 1];
				snprintf(last->text, sizeof(last->text),
					 "out of memory: further problems were not recorded");
			}
			return;
		}
		p->items = items;
		p->cap = cap;
	}
	rete_problem *it = &p->items[p->n++];
	snprintf(it->path, sizeof(it->path), "%s", path ? path : "");
	vsnprintf(it->text, sizeof(it->text), fmt, ap);
	it->error = 0;
}

void rete_problems_add(rete_problems *p, const char *path, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	rete_problems_vadd(p, path, fmt, ap);
	va_end(ap);
}

void rete_problems_free(rete_problems *p)
{
	if (!p)
		return;
	if (p->items != &problems_oom)
		free(p->items);
	p->items = NULL;
	p->n = 0;
	p->cap = 0;
}
