/* store_check.h — checking an LMDB file before anything maps it.
 *
 * LMDB trusts its file: a data.mdb cut short (a half-finished copy) makes
 * the first read past the end a SIGBUS, a garbled page header or node
 * offset a SIGSEGV or an assertion (SIGABRT), and a 0-byte file silently
 * becomes a new, empty environment. rete_store_file_check reads the file
 * with pread (never a mapping, so it cannot fault) and checks what LMDB
 * would rely on: the two meta pages, then every page reachable from the
 * newer one (the free-page list, the main database and each named
 * database), their headers, bounds, node offsets, key order within a page,
 * overflow runs and counts. It owns nothing after it returns.
 *
 * What it cannot see: bytes garbled inside a value (LMDB keeps no page
 * checksums). Those reach the program as wrong data, never as a fault: the
 * store's readers and `rete audit verify` decode strictly and say so.
 */
#ifndef RETE_STORE_CHECK_H
#define RETE_STORE_CHECK_H

#include "error.h"

/* rete_store_file_check checks the LMDB file `path` (a data.mdb, or a
 * folder holding one) as above. Safe beside a running writer (a snapshot
 * that changes under the walk is walked again). Returns RETE_OK when it is
 * sound. Errors (the sentence in m names the file, the page and what is
 * wrong with it): RETE_ENOENT (no such file or folder: nothing to check),
 * RETE_ECORRUPT (empty, cut short, garbled meta or tree pages: not safe
 * to open), RETE_EPERM (not readable), RETE_EIO, RETE_ENOMEM. */
rete_err rete_store_file_check(const char *path, rete_msg *m);

/* Flags of rete_store_file_check_ex. */
#define RETE_STORE_CHECK_QUICK	     0x1u /* see rete_store_file_check_ex */
#define RETE_STORE_CHECK_SPINE	     0x2u /* QUICK's check whatever the size */
#define RETE_STORE_CHECK_QUICK_ABOVE ((unsigned long long)64 << 20)

/* rete_store_file_check_ex is rete_store_file_check with flags. With
 * RETE_STORE_CHECK_QUICK, a file larger than RETE_STORE_CHECK_QUICK_ABOVE
 * is checked without reading the leaf pages of the named databases (the
 * meta pages, the main database, every branch page, and every leaf's page
 * number in range and inside the file are still checked): reading every
 * page costs about 1 us per page in use (0.5 s for a million-entry log),
 * too much for a broker's start-up; the leaves are what `rete audit
 * verify` reads anyway. A file shorter than the pages its meta page
 * counts is always read whole. Errors as rete_store_file_check. */
rete_err rete_store_file_check_ex(const char *path, unsigned flags, rete_msg *m);

#endif
