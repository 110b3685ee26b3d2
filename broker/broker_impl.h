/* broker_impl.h — the broker's state, shared by broker.c (loop, delivery,
 * scans, checkpoints), submit.c (the checks of a submission) and query.c
 * (answers to QUERY). Not for other modules.
 */
#ifndef RETE_BROKER_IMPL_H
#define RETE_BROKER_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

#include "codec.h"
#include "config.h"
#include "folderlock.h"
#include "metrics.h"
#include "ratelimit.h"
#include "pool.h"
#include "stallwatch.h"
#include "worker.h"
#include "store.h"
#include "timestamp.h"
#include "zap.h"

#define BROKER_BATCH_MAX     1024 /* frames read per batch without waiting */
#define BROKER_PIPE_MIN	     4	  /* smaller batches are committed on the main thread */
#define BROKER_RID_MAX	     256  /* ZeroMQ routing ids are at most 255 bytes */
#define BROKER_ENTRIES_MAX   1000 /* entries per QUERY answer */
#define BROKER_ENTRIES_BYTES (4u << 20)
#define BROKER_SCAN_MAX	     1000 /* expiries / overdue notices per scan */

#define BROKER_CONNS_MAX 4  /* connections remembered per party (HELLOs) */
#define BROKER_ADDR_MAX	 64 /* a peer's address as ZeroMQ says it (Peer-Address) */
/* Take-overs of a live delivery connection remembered per party: this many
 * within BROKER_FIGHT_MS is two connections fighting over the party's
 * deliveries (health names it). */
#define BROKER_FIGHTS	3
#define BROKER_FIGHT_MS (3600 * 1000)
#define BROKER_WARN_MS	(60 * 1000) /* one take-over warning per agency a minute */
/* store sentences said in full within one spell of refused batches: a
 * store that alternates between a few causes cannot flood the log */
#define BROKER_REFUSED_TEXTS 4

/* One connection of a party that said HELLO: its ROUTER routing id, and
 * how far it has read. A connection reads what it is sent in order, so a
 * PONG to a PING proves it read everything sent to it before that PING
 * (sends are numbered by broker.send_seq). */
typedef struct broker_conn {
	uint8_t rid[BROKER_RID_MAX];
	size_t rid_len;
	uint64_t ping_nonce[2];	    /* of the latest two PINGs sent to it (random) */
	uint64_t ping_seq[2];	    /* their send numbers ([0]: the latest) */
	uint64_t read_seq;	    /* it has read every frame numbered below this */
	char addr[BROKER_ADDR_MAX]; /* where it comes from ("" : not said) */
	/* protocol 5: a connection another one took the deliveries from, and
	 * one that said HELLO with `standby` (behind the others, ahead of
	 * standby and told ones) */
	bool standby;
	/* a send number, set when it was put behind another connection (the
	 * TAKEN_OVER notice's, when it was told): a PONG to a PING sent after
	 * it proves it alive there (displaced). 0: it has the deliveries. */
	uint64_t taken_seq;
	bool displaced;		     /* alive behind another (it answered a PING sent after
					taken_seq): two connections hold the key */
	bool told;		     /* told TAKEN_OVER, not yet answered: if it answers, the
					take-over is counted and warned of (a connection that
					goes without answering was a dead line, not an agent) */
	char taker[BROKER_ADDR_MAX]; /* where the one that took them came from */
} broker_conn;

/* One delivery in flight: sent, not yet acked. */
typedef struct broker_inflight {
	uint64_t index;
	int64_t sent_ms;   /* monotonic; sent again `redeliver` after it... */
	uint64_t sent_seq; /* ...once the connection has read past it */
} broker_inflight;

/* What the broker knows of one party between frames.
 *
 * Deliveries follow the connections that are alive: conns lists the ones
 * that said HELLO, newest first, and conns[0] gets the deliveries. A
 * connection the ROUTER no longer knows (a send fails with EHOSTUNREACH:
 * ROUTER_MANDATORY is on) is dropped when the broker next sends to it — a
 * delivery, a PING (every heartbeat, to every connection listed) or the
 * probe after ZeroMQ reports a disconnection — and what was in flight on
 * conns[0] goes to the next one listed. So a second connection with the
 * agency's key that says HELLO and goes away cannot capture its
 * deliveries. */
typedef struct broker_peer {
	char id[RETE_ID_MAX + 1];
	broker_conn conns[BROKER_CONNS_MAX];
	size_t nconns;		   /* 0: no live HELLO (nothing delivered) */
	broker_inflight *inflight; /* delivered, not yet acked */
	size_t ninflight;
	/* Deliveries set aside (broker.c, "set aside"): in flight for
	 * `redeliver` without an ACK while the connection read past them. Out
	 * of the window, ascending; sent again in rounds (park_round: one in
	 * progress, park_pos its next one; park_seq the send number of the
	 * last one sent on this connection, 0: none yet; park_round_ms when
	 * the latest began, monotonic). park_full_said: the room is full,
	 * said once. park_keep_due: the list changed since the store last got
	 * it (parked_keep: a restart takes it back from there). */
	uint64_t *parked;
	size_t nparked, parked_cap;
	size_t park_pos;
	bool park_round;
	uint64_t park_seq;
	int64_t park_round_ms;
	bool park_full_said;
	bool park_keep_due;
	uint64_t next_from; /* next queue index to look at */
	int64_t last_seen_ms;
	bool dirty; /* look at its queue after this batch */
	/* take-overs whose told connection answered after the notice (two
	 * agents), since the start, and the latest ones (monotonic; 0: none) */
	uint64_t takeovers;
	int64_t takeover_ms[BROKER_FIGHTS];
	/* take-over warnings, one a BROKER_WARN_MS (the ones held back are
	 * counted in the next, or at the stop), and the latest HELLO-time note
	 * logged (monotonic; one a BROKER_WARN_MS) */
	rete_ratewin warn;
	int64_t note_ms;
	/* An agency's HELLOs at info, one a BROKER_WARN_MS (a flapping line
	 * or a key holder reconnecting in a loop would fill the log); a window
	 * that held some goes on from the latest (proto/ratelimit.h): a HELLO
	 * after a quiet BROKER_WARN_MS is said at once. The ones held back are
	 * said with the agency's delivery connections lost meanwhile
	 * (gone_held), its latest HELLO (at last_hello_ms, wall clock: its
	 * kind, software, standby) and whether it is connected, when the
	 * window ends or the broker stops (broker.c, hellos_sweep). */
	rete_ratewin hello;
	uint64_t gone_held;
	int64_t last_hello_ms;
	Rete__PartyKind last_kind;
	bool last_standby;
	char last_software[65];
	/* when a batch holding its ACKs was refused by the store (monotonic;
	 * 0: none since): its deliveries pause until `redeliver` after it or
	 * the next commit that goes through (broker.c, acks_unlogged) */
	int64_t acks_lost_ms;
	/* since when the store refuses its ACKs (wall ms, 0: the store
	 * committed since) and how many it refused: the pause comes and
	 * goes every `redeliver`, this lasts the spell (health) */
	int64_t acks_refused_since;
	uint64_t acks_refused;
} broker_peer;

/* One frame of a batch and what became of it. */
typedef struct broker_frame {
	uint8_t rid[BROKER_RID_MAX];
	size_t rid_len;
	char party[RETE_ID_MAX + 1]; /* ZAP User-Id */
	const broker_party *who;     /* NULL: refused before decoding */
	/* cf, sm and msg are decoded into arena, its batch's, and a SUBMIT's
	 * bytes fields point into body, the ZeroMQ message as received (not
	 * copied: rete_client_frame_decode): both live, with the pointers the
	 * batch's ops and the committer take into them, until the batch is
	 * answered (frame_clear closes body, batch_reset resets the arena);
	 * never free them */
	rete_arena *arena;
	zmq_msg_t body;
	bool has_body; /* body is open */
	Rete__ClientFrame *cf;
	/* SUBMIT */
	Rete__SignedMessage *sm;
	Rete__Message *msg;
	bool pending; /* passed the checks so far */
	bool sig_ok;
	bool resent;	/* the very bytes already logged */
	bool valid;	/* rete_validate_message found nothing (precheck): the
			   checks after the signature need not run it again */
	long op;	/* index in the batch's ops, or -1 */
	rete_buf proof; /* its receipt's inclusion proof (hashes of RETE_MERKLE_HASH
			   bytes) to the batch's note, made by the committer */
	bool receipted; /* its receipt went once the journal held the batch */
	Rete__ErrorCode error;
	char error_text[RETE_STORE_ERROR_MAX]; /* the store's sentences pass whole */
	char field[128];
	bool authed; /* the peer proved its directory key (refusals signed) */
} broker_frame;

/* An entry the broker writes itself (Delivery, Notice, Directory). */
typedef struct broker_own {
	Rete__Message msg;
	Rete__Delivery delivery;
	Rete__Notice notice;
	char id[96];
	char recipient[RETE_ID_MAX + 1];
	char case_id[128];
	char ref_id[128];
	char msg_id[128];
	char text[512];
	rete_buf signed_bytes;
	long op; /* its APPEND op in the batch */
	/* Delivery.ack / Notice.ack: the recipient's signed ACK, copied */
	Rete__SignedAck ack;
	uint8_t *ack_body;
	uint8_t ack_sig[RETE_SIG_LEN];
} broker_own;

/* A batch: the frames read together and the store ops they became. One is
 * built by the main thread while the one before is committed. */
typedef struct broker_batch {
	broker_frame *frames;
	size_t n;
	rete_store_op *ops;
	const Rete__Message **op_msg; /* message of each APPEND op (events) */
	size_t nops, capops;
	broker_own **own;
	size_t nown, capown;
	rete_err err;	 /* the commit's verdict */
	rete_msg m;	 /* its sentence */
	int64_t read_us; /* when its frames were read (metrics.h; monotonic) */
	char *note;	 /* the signed checkpoint its receipts prove their entries
			    in (NULL: none, or it could not be made) */
	char *cp_note;	 /* a stored checkpoint due, stored by its commit (NULL:
			    none; checkpoint_attach) */
	uint64_t cp_size;
	char cp_err[512];	   /* why the store refused cp_note ("": it did not) */
	rete_store_parked *parked; /* lists set aside its commit writes
				      (parked_attach: copies, owned) */
	char (*parked_id)[RETE_ID_MAX + 1];
	size_t nparked;
	rete_arena arena; /* its frames' decoded messages (one per batch: the
			     committer reads the one in flight while the main
			     thread decodes into the other) */
} broker_batch;

typedef struct broker {
	broker_config *cfg;
	rete_seckey *key;
	void *zctx, *router, *pub, *mon;
	broker_zap *zap;
	rete_store *store;
	broker_pool *pool;
	int sigfd;
	bool stop;
	broker_peer *peers; /* sorted by id */
	size_t npeers;
	broker_id_index peer_index; /* peers by id (broker_peer_find) */
	rete_buf dir_entry; /* LogEntry bytes of the Directory in force */
	uint64_t dir_serial;
	uint64_t log_size;
	uint64_t cp_size; /* size of the latest checkpoint */
	char *cp_note;
	int64_t cp_at_ms; /* when it was made (0: before this start) */
	/* storage full: since when the commits fail with RETE_EFULL (wall ms,
	 * 0: the last commit went through) and how many submissions were
	 * refused since; a health problem of its own (a quota or a file size
	 * limit fails writes on a disk with room) */
	int64_t full_since_ms;
	uint64_t full_refused;
	int64_t cp_mono_ms; /* the same, on the monotonic clock */
	/* the latest per-commit checkpoint (receipts), by the committer's
	 * thread or the main thread, never both at once; not stored */
	char *rc_note;
	uint64_t rc_size;
	bool state_due;	      /* the state file is behind cp_note (checkpoint_state) */
	int64_t cp_failed_ms; /* when a batch's commit last refused its checkpoint */
	bool behind;	      /* a receipted batch is in the store's journal only */
	int64_t behind_said_ms; /* when the log last said why (mono) */
	/* slow commits (commit_timed): since when commits have taken longer
	 * than BROKER_COMMIT_SLOW_MS (wall ms, 0: the last one did not), how
	 * many did and the longest; by the committer's thread or the main
	 * thread, never both at once (as rc_note) */
	int64_t slow_since_ms;
	uint64_t slow_commits;
	int64_t slow_worst_us;
	/* batches the store refused since the last one it committed, and
	 * since when (mono); acks_paused: a peer has acks_lost_ms set */
	uint64_t refused_batches;
	int64_t refused_since_ms;
	bool acks_paused;
	/* the refused batches' line (broker.c, refusal_said): the first of a
	 * spell, and the first with each store sentence within it (up to
	 * BROKER_REFUSED_TEXTS of them, in refused_texts), said at once; the
	 * repeats counted in refused_win, said once a BROKER_WARN_MS */
	rete_ratewin refused_win;
	char refused_texts[BROKER_REFUSED_TEXTS][512];
	size_t nrefused_texts;
	uint32_t epoch;	      /* the log's epoch (store_identity.h) */
	char *restore_note;   /* a declared restore: the last checkpoint signed before */
	bool restore_own;     /* restore_note is the restored copy's own checkpoint, signed
				 at the start (not the state file's): for the log line */
	bool journal_lost;    /* --restore went on without a journal file the store
				 should have had (rete_store_journal_lost): a new epoch */
	/* a --check-config run (broker_check_store): the store's refusals
	 * go here instead of the log; NULL when running */
	rete_problems *check_problems, *check_notes;
	/* the store's writer lock (rete_store_lock), held while the broker runs */
	rete_folder_lock store_lock;
	uint32_t restore_epoch, restore_prev;
	int64_t last_scan_ms, last_ping_ms;
	/* the wall clock's jumps (clock_watch, broker.c): the wall and boot
	 * clocks at the last scan, how far the wall clock is ahead of the
	 * time that passed (forward jumps not counted, 0: none), and the
	 * jump's sentence for health */
	int64_t clock_wall_ms, clock_boot_ms, clock_ahead_ms;
	char clock_text[384];
	/* a start with the wall clock away from the store's newest time
	 * (clock_start, broker.c): the boot clock at the start; the start's gap
	 * not counted yet (ahead; 0: none); while clock_hold, nothing is logged
	 * until the wall clock reaches clock_floor_ms (behind); clock_held_said:
	 * the gap held something back and said so; the sentence for health */
	int64_t clock_start_boot_ms, clock_start_ahead_ms, clock_floor_ms;
	bool clock_hold, clock_held_said;
	char clock_start_text[768], clock_start_what[176];
	/* the state file's time as last set (clock_mark), and when (mono) */
	int64_t clock_seen_ms, clock_mark_mono_ms;
	/* queues of parties the configuration no longer names, found at the
	 * start and at each reload (orphans_say, broker.c) */
	char (*orphans)[RETE_ID_MAX + 1];
	size_t norphans;
	broker_batch batches[2];
	broker_batch *bt;  /* the batch being built */
	broker_batch *fly; /* the batch being committed, or NULL */
	broker_worker *worker;
	broker_stall *stall; /* says a commit that hangs (stallwatch.h) */
	uint64_t *epoch_at; /* indexes of the broker's Epoch entries (broker_epochs_load) */
	uint32_t *epoch_no; /* the epoch each of them begins */
	size_t nepoch_at;
	bool park_keep_failed;		   /* the store refused the last lists set aside
					      (parked_keep: said once, tried every second) */
	int64_t park_kept_ms;		   /* when lists set aside last went to the store
					      (parked_attach, parked_keep; monotonic) */
	broker_tsa *tsa;		   /* trusted time (timestamp.h), NULL: no TSA */
	uint64_t send_seq;		   /* numbers DELIVERs and PINGs (broker_conn) */
	char (*fd_party)[RETE_ID_MAX + 1]; /* the party whose frames came on fd i */
	size_t nfd_party;
	broker_metrics *metrics;	/* the Prometheus endpoint, or NULL (metrics.h) */
	struct rete_access_log *access; /* access.c: opened at the start */
	bool access_failed;		/* access.c: the last read could not be recorded */
	rete_ratewin access_win;	/* access.c: the refusals' lines, one a minute */
} broker;

/* broker_access_query records a remote read of the log (entries, proofs,
 * a referral, the snapshot) in the access record (access.c), before the
 * answer. False: the read could not be recorded (said in the log), and
 * must not be served. True for a query that reads no entry. */
bool broker_access_query(broker *b, broker_frame *f);

/* broker_access_open opens the access record at the start. A record that
 * cannot be opened does not stop the broker: it is said in the log (path
 * and cause), and remote reads are refused until it can be written. */
void broker_access_open(broker *b);

/* broker_access_move makes path (with keep) the record in force, at a
 * reload (the caller logs the move); a record that cannot be opened is
 * warned of, and reads are refused until it can be written. */
void broker_access_move(broker *b, const char *path);

/* broker_access_flush says the refusals the log has not said yet (at the
 * stop): every refused read is said on a line of its own or counted in a
 * later one. */
void broker_access_flush(broker *b);

/* broker_epochs_load lists the indexes of the broker's own Epoch entries
 * (b->epoch_at, sorted, and the epochs they begin, b->epoch_no; one per
 * declared restore, so few) by their ids
 * ("epoch-N", N up to b->epoch) in the dedup index: no entry but those is
 * read. At the start, after epoch_begin; an agency's entries query is
 * answered from the list. Errors (said in the log): RETE_ESTORE,
 * RETE_ENOMEM. */
rete_err broker_epochs_load(broker *b);

/* broker_peer_find: the state of party id (NULL when not in the directory). */
broker_peer *broker_peer_find(broker *b, const char *id);

/* broker_submit_check runs the checks of a SUBMIT frame that need no
 * signature (decoding, sender, kind, origin); f->pending stays true when it
 * passed. */
void broker_submit_precheck(broker *b, broker_frame *f);

/* broker_submit_check runs the checks after the signature (sealed hash,
 * validation, directory, policy); f->pending stays true when it passed. */
void broker_submit_check(broker *b, broker_frame *f, const Rete__Submit *s);

/* broker_refuse marks f refused with code, field path and a sentence. */
void broker_refuse(broker_frame *f, Rete__ErrorCode code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* broker_utf8_clean replaces with '?' every byte of s that does not start
 * a complete UTF-8 sequence: a peer's string cut by a "%.64s" or by a full
 * buffer must not make a frame the peer's strict decoder refuses. */
void broker_utf8_clean(char *s);

/* broker_send sends a BrokerFrame to routing id rid. Returns 0, or the
 * errno of a frame that was dropped: EHOSTUNREACH when no connection has
 * that routing id any more, EAGAIN when its queue is full, ENOMEM. */
int broker_send(broker *b, const uint8_t *rid, size_t rid_len, Rete__BrokerFrame *bf);

/* broker_answer_query answers one QUERY frame. */
void broker_answer_query(broker *b, broker_frame *f);

/* broker_peer_contest says whether two connections hold p's key: one
 * that lost the deliveries is still alive, or the deliveries changed
 * connection BROKER_FIGHTS times within BROKER_FIGHT_MS. When text is not
 * NULL it gets the sentence for health (len bytes). Main thread only. */
bool broker_peer_contest(const broker_peer *p, char *text, size_t len);

/* broker_agency_health fills h (caller's) for agency p, in read txn rt. */
void broker_agency_health(broker *b, rete_store_rtxn *rt, const broker_party *p,
			  Rete__AgencyHealth *h);

#endif
