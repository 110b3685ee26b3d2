/* conffile.h — is the file given with -c a configuration file at all?
 *
 * Every program reads its .ini file given with -c. A device (/dev/zero),
 * a pipe or a file far larger than any configuration (a store's data.mdb
 * given by mistake) would be read without end or for minutes, and a folder
 * reads as an empty file, which then "lacks" every key. rete_conffile_check
 * is asked first, on the file opened.
 */
#ifndef RETE_CONFFILE_H
#define RETE_CONFFILE_H

#include <stdio.h>

#include "error.h"

/* The largest configuration file read: a broker.ini of thousands of
 * agencies is a few hundred KiB. */
#define RETE_CONFFILE_MAX (4 * 1024 * 1024)

/* rete_conffile_check: RETE_OK when f is a regular file of at most
 * RETE_CONFFILE_MAX bytes; RETE_EINVAL otherwise (RETE_EIO when fstat
 * fails), m a sentence without the file's name (the caller's prefix) that
 * says what the file is and what is wanted. */
rete_err rete_conffile_check(FILE *f, rete_msg *m);

#endif
