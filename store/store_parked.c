/* store_parked.c — the broker's lists of deliveries set aside, one record
 * per party in meta (store.h, "Deliveries set aside"). The store keeps the
 * indexes as given; the broker (broker.c, "set aside") decides what they
 * mean and checks them against the queue when it reads them back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "store_impl.h"

/* the longest key: the prefix and a party id (RETE_ID_MAX), well under
 * LMDB's 511 bytes */
#define PARKED_KEY_MAX (sizeof(RETE_STORE_PARKED_KEY) - 1 + RETE_ID_MAX)

/* parked_key writes meta's key of party's list into key (PARKED_KEY_MAX
 * bytes) and returns its length; 0 when party is empty or too long. */
static size_t parked_key(char key[PARKED_KEY_MAX], const char *party)
{
	size_t pre = sizeof(RETE_STORE_PARKED_KEY) - 1, len = party ? strlen(party) : 0;
	if (len == 0 || len > RETE_ID_MAX)
		return 0;
	memcpy(key, RETE_STORE_PARKED_KEY, pre);
	memcpy(key + pre, party, len);
	return pre + len;
}

struct parked_put {
	const rete_store_parked *lists;
	size_t n;
};

static rete_err put_lists(rete_store *s, MDB_txn *txn, uint64_t log_size, void *ctx, int *lmdb_rc,
			  rete_msg *m)
{
	struct parked_put *c = ctx;
	(void)log_size;
	for (size_t i = 0; i < c->n; i++) {
		const rete_store_parked *l = &c->lists[i];
		char key[PARKED_KEY_MAX];
		MDB_val k = {parked_key(key, l->party), key}, v;
		int rc;
		if (l->n == 0) {
			rc = mdb_del(txn, s->st_meta, &k, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		} else {
			v.mv_size = l->n * 8;
			v.mv_data = NULL;
			rc = mdb_put(txn, s->st_meta, &k, &v, MDB_RESERVE);
			for (size_t j = 0; rc == 0 && j < l->n; j++)
				be64_put((uint8_t *)v.mv_data + j * 8, l->index[j]);
		}
		if (rc != 0) {
			*lmdb_rc = rc;
			return store_lmdb_err(m, rc,
					      "store: writing a list of deliveries set aside");
		}
	}
	return RETE_OK;
}

rete_err rete_store_parked_put(rete_store *s, const rete_store_parked *lists, size_t n, rete_msg *m)
{
	struct parked_put c = {lists, n};

	if (s == NULL || (n > 0 && lists == NULL))
		return rete_msg_set(m, RETE_EINVAL, "store: no store or lists given");
	for (size_t i = 0; i < n; i++) {
		char key[PARKED_KEY_MAX];
		if (parked_key(key, lists[i].party) == 0)
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
	if (n == 0)
		return RETE_OK;
	return store_write_raw(s, put_lists, &c, m);
}

rete_err rete_store_parked_get(rete_store *s, rete_store_rtxn *rt, const char *party,
			       uint64_t **index, size_t *n, rete_msg *m)
{
	char key[PARKED_KEY_MAX];
	MDB_val k = {0, key}, v;
	MDB_txn *txn;
	bool own;
	rete_err err;

	if (s == NULL || index == NULL || n == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no store or output given");
	*index = NULL;
	*n = 0;
	if ((k.mv_size = parked_key(key, party)) == 0)
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
		uint64_t *out = malloc(v.mv_size);
		if (out == NULL) {
			err = rete_msg_set(m, RETE_ENOMEM, "store: out of memory");
		} else {
			for (size_t j = 0; j < v.mv_size / 8; j++)
				out[j] = be64_get((const uint8_t *)v.mv_data + j * 8);
			*index = out;
			*n = v.mv_size / 8;
		}
	}
	if (own)
		store_txn_done(s, txn);
	return err;
}

rete_err rete_store_parked_parties(rete_store *s, rete_store_rtxn *rt, rete_store_party_fn fn,
				   void *ctx, rete_msg *m)
{
	const size_t pre = sizeof(RETE_STORE_PARKED_KEY) - 1;
	MDB_txn *txn;
	MDB_cursor *cur = NULL;
	bool own;
	rete_err err;

	if (s == NULL || fn == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no store or function given");
	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	int rc = mdb_cursor_open(txn, s->st_meta, &cur);
	MDB_val k = {pre, (void *)RETE_STORE_PARKED_KEY}, v;
	if (rc == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0 && k.mv_size >= pre && memcmp(k.mv_data, RETE_STORE_PARKED_KEY, pre) == 0) {
		/* the party as it is written (a key too long for one is
		 * given cut: its caller removes it all the same) */
		char party[RETE_ID_MAX + 1];
		size_t len = k.mv_size - pre < RETE_ID_MAX ? k.mv_size - pre : RETE_ID_MAX;
		memcpy(party, (const char *)k.mv_data + pre, len);
		party[len] = '\0';
		if (fn(ctx, party) != 0)
			break;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		err = store_lmdb_err(m, rc, "store: reading the lists of deliveries set aside");
	if (cur)
		mdb_cursor_close(cur);
	if (own)
		store_txn_done(s, txn);
	return err;
}
