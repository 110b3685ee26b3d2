/* stallwatch.h — says a commit that hangs, while it hangs.
 *
 * commit_timed (broker.c) says a slow commit when it ends; a flush that
 * does not end (a hung disk, a dead NFS or SAN path) left the broker's log
 * silent for as long as it lasted, while the agents told their operators
 * to read it (s16 rev-stall #3). On a quiet network the commit runs on the
 * main thread, so neither the main loop nor the committer can speak: the
 * watch has a thread of its own that waits on nothing but its clock. The
 * thread that commits marks the commit's start and end (atomic stores, no
 * lock: thousands of commits a second); the watch looks once a second and
 * warns of a commit that has run longer than the threshold, then again
 * each time the wait has doubled (at most every BROKER_STALL_REPEAT_MS),
 * so that a disk hung for hours says a few lines an hour, not a flood.
 * A disk slow on every commit but never hung (each commit past the
 * threshold, each ending) is one spell: its first commit is said, a later
 * one only when it reaches the wait the spell's ladder has reached or when
 * the watch said nothing for a minute; the others are counted, and
 * commit_timed says how many when the spell ends (broker_stall_calm;
 * rev-broker s17 #2). The line counts the entries the commit appends, not
 * its ops (rev-broker s17 #3).
 * The watch owns its thread and its copy of the store's folder name.
 */
#ifndef RETE_BROKER_STALLWATCH_H
#define RETE_BROKER_STALLWATCH_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store.h"

/* the longest interval between two warnings of the same hung commit */
#define BROKER_STALL_REPEAT_MS (5 * 60 * 1000)

typedef struct broker_stall broker_stall;

/* broker_stall_start starts the watch of the commits to the store in
 * folder data (copied), warning of one that runs longer than after_ms.
 * *out is the caller's (broker_stall_stop). RETE_ENOMEM when the struct
 * could not be had; a thread that cannot be started leaves a watch that
 * says nothing (the broker runs without it). */
rete_err broker_stall_start(broker_stall **out, const char *data, int64_t after_ms);

/* broker_stall_begin marks a commit of nops store ops started now; from
 * the thread that commits. The ops are read by the watch's thread (their
 * kind and in.signed_message/len, to count the entries) until
 * broker_stall_end: the caller changes none of those fields, nor frees
 * them, before it. NULL s: nothing. */
void broker_stall_begin(broker_stall *s, const rete_store_op *ops, size_t nops);

/* broker_stall_end marks the commit begun last as ended. NULL s: nothing. */
void broker_stall_end(broker_stall *s);

/* broker_stall_calm ends a spell of slow commits (commit_timed, at its
 * first fast commit) and gives the number of the spell's commits past the
 * threshold that the watch did not say. From the thread that commits,
 * between two commits. NULL s: 0. */
uint64_t broker_stall_calm(broker_stall *s);

/* broker_stall_stop stops and joins the thread, frees *s and sets it to
 * NULL; NULL is fine. */
void broker_stall_stop(broker_stall **s);

#endif
