/* fileplace.h — may this program write a file at this path?
 *
 * One judge for the files the programs write where their configuration
 * says: the broker's state file, its access record and its ipc:// socket
 * files (broker/config.c), the agent's and the console's access records
 * (agents/common/config_check.c). It asks as the running user (access(2):
 * root passes the mode bits, as it does when it writes), and adds what
 * access(2) does not say: a file system the kernel makes up (/proc, /sys,
 * cgroups: root "may write" there, yet no file of ours can be made or
 * appended to) and one mounted read-only. The answer is the cause, in a
 * sentence naming the path; the caller adds its key and what to give
 * instead.
 */
#ifndef RETE_FILEPLACE_H
#define RETE_FILEPLACE_H

#include <stdbool.h>
#include <stddef.h>

/* What rete_file_place takes as a place, beside a regular file the user
 * may write in a folder it may write. MAKE_FOLDERS: missing folders are
 * made (the nearest one that exists must be writable); SOCKET: anything
 * but a folder may be there (ZeroMQ replaces it); RENAMED: the file is
 * replaced by a rename, so it may be read-only or another user's; APPEND:
 * a regular file the user may write is enough, whatever its folder (lines
 * are appended; the clients' access records, which 0.7.0 took so). */
#define RETE_PLACE_MAKE_FOLDERS 1u
#define RETE_PLACE_SOCKET	2u
#define RETE_PLACE_RENAMED	4u
#define RETE_PLACE_APPEND	8u

/* rete_file_place says what keeps this program (its user) from writing a
 * file at path: NULL when nothing, else buf (n bytes) with a sentence
 * ("P is a folder", "the folder F does not exist", "the folder F cannot be
 * written by this user (uid 999): Permission denied", "P is on the
 * kernel's proc file system, where nothing can be written"). The folder
 * must be writable too (each such file is made, replaced by a rename or,
 * a socket, unlinked in it), but with RETE_PLACE_APPEND for a file that
 * is there. flags: RETE_PLACE_* above, or 0. */
const char *rete_file_place(const char *path, unsigned flags, char *buf, size_t n);

/* rete_fs_unusable: NULL when the file system of path (which exists) may
 * hold files of ours, else what it is: "the kernel's proc file system",
 * ..., "a file system mounted read-only" (a static string). */
const char *rete_fs_unusable(const char *path);

#endif
