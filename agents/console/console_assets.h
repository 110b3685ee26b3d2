/* console_assets.h — the console's static files (agents/console/static/),
 * embedded at build time by cmake/embed_assets.cmake. */
#ifndef RETE_CONSOLE_ASSETS_H
#define RETE_CONSOLE_ASSETS_H

#include <stddef.h>

typedef struct console_asset {
	const char *name;	  /* file name, e.g. "app.js" */
	const char *content_type; /* from its extension */
	const unsigned char *data;
	size_t len;
} console_asset;

/* ended by an entry with name NULL */
extern const console_asset console_assets[];

#endif
