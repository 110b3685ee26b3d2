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
 * The watch owns its thread and its copy of the store's folder name.
 */
#ifndef RETE_BROKER_STALLWATCH_H
#define RETE_BROKER_STALLWATCH_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* the longest interval between two warnings of the same hung commit */
#define BROKER_STALL_REPEAT_MS (5 * 60 * 1000)

typedef struct broker_stall broker_stall;

/* broker_stall_start starts the watch of the commits to the store in
 * folder data (copied), warning of one that runs longer than after_ms.
 * *out is the caller's (broker_stall_stop). RETE_ENOMEM when the struct
 * could not be had; a thread that cannot be started leaves a watch that
 * says nothing (the broker runs without it). */
rete_err broker_stall_start(broker_stall **out, const char *data, int64_t after_ms);

/* broker_stall_begin marks a commit of entries store ops started now
 * whose oldest frame was read at read_us (broker_metrics_now_us's clock);
 * from the thread that commits. NULL s: nothing. */
void broker_stall_begin(broker_stall *s, size_t entries, int64_t read_us);

/* broker_stall_end marks the commit begun last as ended. NULL s: nothing. */
void broker_stall_end(broker_stall *s);

/* broker_stall_stop stops and joins the thread, frees *s and sets it to
 * NULL; NULL is fine. */
void broker_stall_stop(broker_stall **s);

#endif
