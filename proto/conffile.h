/* conffile.h — open the file given with -c, if it is a configuration file.
 *
 * Every program reads its .ini file given with -c. A device (/dev/zero)
 * or a file far larger than any configuration (a store's data.mdb given by
 * mistake) would be read without end or for minutes, a named pipe without
 * a writer would block the open itself, and a folder reads as an empty
 * file, which then "lacks" every key. A configuration is a regular file:
 * the broker reads it again at SIGHUP, rete --check-config reads it twice.
 *
 * Every configuration file is UTF-8. Windows' editors save two other ways:
 * UTF-8 with a byte order mark (Notepad), which is read as without one, and
 * UTF-16 ("Unicode"), where every other byte is a zero: each line would be
 * refused on its own with a puzzling sentence, so the file is refused once,
 * saying how to save it. Every reader (broker.ini, agent.ini, coord.ini,
 * audit.ini, the console's accounts file, a witness policy) starts with
 * rete_conffile_start. A third way, an editor set to Windows-1252 or
 * Latin-1, writes an accented letter as one byte that is no UTF-8: each
 * reader checks every value (rete_conffile_utf8_column) and names its line,
 * section and key with rete_conffile_not_utf8's sentence.
 */
#ifndef RETE_CONFFILE_H
#define RETE_CONFFILE_H

#include <stdio.h>

#include "error.h"

/* The largest configuration file read: a broker.ini of thousands of
 * agencies is a few hundred KiB. */
#define RETE_CONFFILE_MAX (4 * 1024 * 1024)

/* rete_conffile_open opens path for reading into *out when it is a regular
 * file of at most RETE_CONFFILE_MAX bytes, without blocking on a named
 * pipe. Errors: RETE_EIO (it cannot be opened: m says why, with errno's
 * words), RETE_EINVAL (a folder, a device, a pipe or a socket, or too
 * large: m says which and what is wanted). m's sentence does not name the
 * file: the caller's prefix does. */
rete_err rete_conffile_open(const char *path, FILE **out, rete_msg *m);

/* rete_conffile_start reads the start of f, a file just opened: f is left
 * after a UTF-8 byte order mark when one opens the file, at its start
 * otherwise. rete_conffile_open calls it. Errors: RETE_EINVAL when the file
 * is saved as UTF-16 (a byte order mark FF FE or FE FF): m says so and how
 * to save it as UTF-8; RETE_EIO when f cannot be read or rewound. m's
 * sentence does not name the file: the caller's prefix does. */
rete_err rete_conffile_start(FILE *f, rete_msg *m);

/* rete_conffile_utf8_column: the column (1 the first character; a byte
 * that is no UTF-8 counts as one) of the first byte of line[0..len) that
 * is not UTF-8 (rete_utf8_bad_offset), that byte in *byte; 0 when the line
 * is all UTF-8. */
size_t rete_conffile_utf8_column(const char *line, size_t len, unsigned char *byte);

/* rete_conffile_not_utf8 writes into out (n bytes) the sentence for a
 * value whose byte `byte`, at column col of its line (0: not known), is not
 * UTF-8: the byte, what it is in Windows-1252 when a letter there, and to
 * save the file as UTF-8. The caller puts "FILE:LINE: [section] key: "
 * before it. */
void rete_conffile_not_utf8(char *out, size_t n, unsigned char byte, size_t col);

#endif
