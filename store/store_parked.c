/* store_parked.c — the broker's lists of deliveries set aside, one record
 * per party in meta (store.h, "Deliveries set aside"). The store keeps the
 * indexes as given; the broker (broker.c, "set aside") decides what they
 * mean and checks them against the queue when it reads them back. They
 * are written by store_commit.c (put_parked: alone, or with a batch, whose
 * journal record then holds them too); read and swept here. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "store_impl.h"

/* store_parked_key: store_impl.h */
size_t store_parked_key(char key[STORE_PARKED_KEY_MAX], const char *party)
{
	size_t pre = sizeof(RETE_STORE_PARKED_KEY) - 1, len = party ? strlen(party) : 0;
	if (len == 0 || len > RETE_ID_MAX)
		return 0;
	memcpy(key, RETE_STORE_PARKED_KEY, pre);
	memcpy(key + pre, party, len);
	return pre + len;
}

/* parked_id: the party id of a "parked/" key k, into id (NUL-ended);
 * false when k's id is not one (empty, too long, a NUL byte in it). */
static bool parked_id(const MDB_val *k, char id[RETE_ID_MAX + 1])
{
	const size_t pre = sizeof(RETE_STORE_PARKED_KEY) - 1;
	size_t len = k->mv_size - pre;
	if (len == 0 || len > RETE_ID_MAX || memchr((const char *)k->mv_data + pre, 0, len))
		return false;
	memcpy(id, (const char *)k->mv_data + pre, len);
	id[len] = '\0';
	return true;
}

static bool parked_prefix(const MDB_val *k)
{
	const size_t pre = sizeof(RETE_STORE_PARKED_KEY) - 1;
	return k->mv_size >= pre && memcmp(k->mv_data, RETE_STORE_PARKED_KEY, pre) == 0;
}

/* parked_each's fn stops the walk without an error by returning this (no
 * LMDB code or errno is negative and this large) */
#define PARKED_STOP INT_MIN

/* parked_each calls fn(ctx, cur, k) for every "parked/" key of meta in
 * txn, in key order, on a cursor it opens and closes (fn may delete the
 * key under it: the cursor is then on the next one, which MDB_NEXT
 * gives). fn returns 0 to go on, PARKED_STOP to stop, or an LMDB code,
 * which stops the walk and is returned. Returns 0 or an LMDB code. */
static int parked_each(rete_store *s, MDB_txn *txn,
		       int (*fn)(void *ctx, MDB_cursor *cur, const MDB_val *k), void *ctx)
{
	MDB_cursor *cur = NULL;
	MDB_val k = {sizeof(RETE_STORE_PARKED_KEY) - 1, (void *)RETE_STORE_PARKED_KEY}, v;
	int rc = mdb_cursor_open(txn, s->st_meta, &cur);
	if (rc == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && parked_prefix(&k))
		if ((rc = fn(ctx, cur, &k)) == 0)
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	if (cur)
		mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND || rc == PARKED_STOP ? 0 : rc;
}

rete_err store_parked_check(const rete_store_parked *lists, size_t n, rete_msg *m)
{
	if (n > 0 && lists == NULL)
		return rete_msg_set(m, RETE_EINVAL,
				    "store: no lists of deliveries set aside given");
	for (size_t i = 0; i < n; i++) {
		char key[STORE_PARKED_KEY_MAX];
		if (store_parked_key(key, lists[i].party) == 0)
			return rete_msg_set(
			    m, RETE_EINVAL,
			    "store: a list of deliveries set aside for party '%.80s': "
			    "a party id is 1 to %d bytes",
			    lists[i].party ? lists[i].party : "", RETE_ID_MAX);
		if (lists[i].n > RETE_STORE_PARKED_MAX || (lists[i].n > 0 && !lists[i].index))
			return rete_msg_set(m, RETE_EINVAL,
					    "store: a list of %zu deliveries set aside for %s; at "
					    "most %u are kept",
					    lists[i].n, lists[i].party,
					    (unsigned)RETE_STORE_PARKED_MAX);
	}
	return RETE_OK;
}

rete_err rete_store_parked_get(rete_store *s, rete_store_rtxn *rt, const char *party, size_t max,
			       uint64_t **index, size_t *n, size_t *stored, rete_msg *m)
{
	char key[STORE_PARKED_KEY_MAX];
	MDB_val k = {0, key}, v;
	MDB_txn *txn;
	bool own;
	rete_err err;

	if (stored != NULL)
		*stored = 0;
	if (s == NULL || index == NULL || n == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no store or output given");
	*index = NULL;
	*n = 0;
	if ((k.mv_size = store_parked_key(key, party)) == 0)
		return rete_msg_set(
		    m, RETE_EINVAL,
		    "store: deliveries set aside for party '%.80s': a party id is 1 "
		    "to %d bytes",
		    party ? party : "", RETE_ID_MAX);
	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	int rc = mdb_get(txn, s->st_meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		err = RETE_OK;
	} else if (rc != 0) {
		err = store_lmdb_err(m, rc, "store: reading a list of deliveries set aside");
	} else if (v.mv_size % 8 != 0 || v.mv_size / 8 > RETE_STORE_PARKED_MAX) {
		err = rete_msg_set(m, RETE_ECORRUPT,
				   "store %s: the list of deliveries set aside for %s (meta "
				   "'" RETE_STORE_PARKED_KEY "%s') is %zu bytes: not a list of at "
				   "most %u 8-byte log indexes",
				   s->st_dir, party, party, v.mv_size,
				   (unsigned)RETE_STORE_PARKED_MAX);
	} else if (v.mv_size > 0) {
		/* only what the caller can use: a damaged list as long as
		 * the largest room costs no more than the room in force */
		size_t all = v.mv_size / 8, take = all < max ? all : max;
		uint64_t *out = take ? malloc(take * 8) : NULL;
		if (stored != NULL)
			*stored = all;
		if (take > 0 && out == NULL) {
			err = rete_msg_set(m, RETE_ENOMEM, "store: out of memory");
		} else {
			for (size_t j = 0; j < take; j++)
				out[j] = be64_get((const uint8_t *)v.mv_data + j * 8);
			*index = out;
			*n = take;
		}
	}
	if (own)
		store_txn_done(s, txn);
	return err;
}

struct parties_walk {
	rete_store_party_fn fn;
	void *ctx;
};

/* parties_one: rete_store_parked_parties's step (parked_each). A key that
 * names no party is not given (rete_store_parked_sweep removes it). */
static int parties_one(void *ctx, MDB_cursor *cur, const MDB_val *k)
{
	struct parties_walk *c = ctx;
	char party[RETE_ID_MAX + 1];
	(void)cur;
	return parked_id(k, party) && c->fn(c->ctx, party) != 0 ? PARKED_STOP : 0;
}

rete_err rete_store_parked_parties(rete_store *s, rete_store_rtxn *rt, rete_store_party_fn fn,
				   void *ctx, rete_msg *m)
{
	struct parties_walk c = {fn, ctx};
	MDB_txn *txn;
	bool own;
	rete_err err;

	if (s == NULL || fn == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no store or function given");
	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	int rc = parked_each(s, txn, parties_one, &c);
	if (rc != 0)
		err = store_lmdb_err(m, rc, "store: reading the lists of deliveries set aside");
	if (own)
		store_txn_done(s, txn);
	return err;
}

/* sweep: what rete_store_parked_sweep removes (sweep_keys: n removed),
 * named first by its read (sweep_read: names[0..nnames), err RETE_ENOMEM
 * when the list could not grow) */
struct sweep {
	rete_store_party_keep_fn keep;
	void *ctx;
	size_t n;
	char (*names)[160];
	size_t nnames, cap;
	rete_err err;
};

/* sweep_gone: k is to go (a damaged key, or a party keep does not keep) */
static bool sweep_gone(const struct sweep *c, const MDB_val *k, char party[RETE_ID_MAX + 1])
{
	return !parked_id(k, party) || !c->keep(c->ctx, party);
}

/* sweep_del: sweep_keys's step (parked_each): k goes by the key as it is */
static int sweep_del(void *ctx, MDB_cursor *cur, const MDB_val *k)
{
	struct sweep *c = ctx;
	char party[RETE_ID_MAX + 1];
	if (!sweep_gone(c, k, party))
		return 0;
	int rc = mdb_cursor_del(cur, 0);
	if (rc == 0)
		c->n++;
	return rc;
}

static rete_err sweep_keys(rete_store *s, MDB_txn *txn, uint64_t log_size, void *ctx, int *lmdb_rc,
			   rete_msg *m)
{
	struct sweep *c = ctx;
	(void)log_size;
	c->n = 0;
	int rc = parked_each(s, txn, sweep_del, c);
	if (rc != 0) {
		*lmdb_rc = rc;
		return store_lmdb_err(m, rc, "store: removing lists of deliveries set aside");
	}
	return RETE_OK;
}

/* sweep_name: what parked/ key k is, for rete_store_parked_sweep's gone */
static void sweep_name(const MDB_val *k, char *out, size_t cap)
{
	const size_t pre = sizeof(RETE_STORE_PARKED_KEY) - 1;
	char party[RETE_ID_MAX + 1];
	if (parked_id(k, party))
		snprintf(out, cap, "%s", party);
	else if (k->mv_size == pre)
		snprintf(out, cap, "a damaged key ('" RETE_STORE_PARKED_KEY "' with no party id)");
	else if (k->mv_size - pre > RETE_ID_MAX)
		snprintf(out, cap,
			 "a damaged key ('" RETE_STORE_PARKED_KEY "' and %zu bytes, where a "
			 "party id has at most %d)",
			 k->mv_size - pre, RETE_ID_MAX);
	else
		snprintf(out, cap,
			 "a damaged key ('" RETE_STORE_PARKED_KEY "' and %zu bytes with a NUL "
			 "byte: not a party id)",
			 k->mv_size - pre);
}

/* sweep_read: rete_store_parked_sweep's read step (parked_each): the
 * name of a key that is to go, kept for `gone` */
static int sweep_read(void *ctx, MDB_cursor *cur, const MDB_val *k)
{
	struct sweep *c = ctx;
	char party[RETE_ID_MAX + 1];
	(void)cur;
	if (!sweep_gone(c, k, party))
		return 0;
	if (c->nnames == c->cap) {
		size_t nc = c->cap ? c->cap * 2 : 8;
		char(*p)[160] = realloc(c->names, nc * sizeof(*p));
		if (p == NULL) {
			c->err = RETE_ENOMEM;
			return PARKED_STOP;
		}
		c->names = p;
		c->cap = nc;
	}
	sweep_name(k, c->names[c->nnames++], sizeof(c->names[0]));
	return 0;
}

rete_err rete_store_parked_sweep(rete_store *s, rete_store_party_keep_fn keep,
				 rete_store_party_fn gone, void *ctx, size_t *removed, rete_msg *m)
{
	struct sweep c = {.keep = keep, .ctx = ctx};
	MDB_txn *txn;
	bool own;
	rete_err err;

	if (removed != NULL)
		*removed = 0;
	if (s == NULL || keep == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no store or function given");
	/* what goes, read first: a sweep with nothing to remove (every
	 * start, as a rule) writes nothing; the names are said once the
	 * write went through, so they are read into a list */
	if ((err = store_rt_get(s, NULL, &txn, &own, m)) != RETE_OK)
		return err;
	int rc = parked_each(s, txn, sweep_read, &c);
	if (c.err != RETE_OK)
		err = rete_msg_set(m, c.err, "store: out of memory");
	else if (rc != 0)
		err = store_lmdb_err(m, rc, "store: reading the lists of deliveries set aside");
	if (own)
		store_txn_done(s, txn);
	if (err == RETE_OK && c.nnames > 0)
		err = store_write_raw(s, sweep_keys, &c, m);
	if (err == RETE_OK) {
		if (removed != NULL)
			*removed = c.n;
		for (size_t i = 0; gone != NULL && i < c.nnames; i++)
			gone(ctx, c.names[i]);
	}
	free(c.names);
	return err;
}
