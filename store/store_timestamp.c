/* store_timestamp.c — schema 3's RFC 3161 tokens, one per stored
 * checkpoint (store.h, "Time-stamp tokens"). The store keeps the DER bytes
 * as given; store/tsa.c parses and verifies them. */
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "store_impl.h"

struct ts_put {
	uint64_t size;
	const uint8_t *token;
	size_t len;
};

static rete_err put_token(rete_store *s, MDB_txn *txn, uint64_t log_size, void *ctx, int *lmdb_rc,
			  rete_msg *m)
{
	struct ts_put *c = ctx;
	uint8_t key[8];
	MDB_val k = {8, key}, v;
	int rc;

	(void)log_size;
	be64_put(key, c->size);
	rc = mdb_get(txn, s->st_checkpoints, &k, &v);
	if (rc == MDB_NOTFOUND)
		return rete_msg_set(m, RETE_EINVAL,
				    "store %s: a time-stamp token for tree size %llu, but no "
				    "checkpoint of that size is stored; a token is kept only "
				    "beside its checkpoint",
				    s->st_dir, (unsigned long long)c->size);
	if (rc == 0) {
		v.mv_size = c->len;
		v.mv_data = (void *)c->token;
		rc = mdb_put(txn, s->st_timestamps, &k, &v, 0);
	}
	if (rc != 0) {
		*lmdb_rc = rc;
		return store_lmdb_err(m, rc, "store: writing a time-stamp token");
	}
	return RETE_OK;
}

rete_err rete_store_timestamp_put(rete_store *s, uint64_t size, const uint8_t *token, size_t len,
				  rete_msg *m)
{
	struct ts_put c = {size, token, len};

	if (s == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no store given");
	if (token == NULL || len == 0)
		return rete_msg_set(m, RETE_EINVAL, "store: empty time-stamp token");
	if (len > RETE_STORE_TOKEN_MAX)
		return rete_msg_set(m, RETE_EINVAL,
				    "store: a time-stamp token of %zu bytes; at most %u are kept",
				    len, (unsigned)RETE_STORE_TOKEN_MAX);
	return store_write_raw(s, put_token, &c, m);
}

static rete_err token_copy(const MDB_val *v, rete_buf *token, rete_msg *m)
{
	token->data = malloc(v->mv_size > 0 ? v->mv_size : 1);
	if (token->data == NULL)
		return rete_msg_set(m, RETE_ENOMEM, "store: out of memory");
	memcpy(token->data, v->mv_data, v->mv_size);
	token->len = v->mv_size;
	return RETE_OK;
}

int store_timestamp_note_replaced(rete_store *s, MDB_txn *txn, uint64_t size, const char *note,
				  bool *dropped)
{
	uint8_t key[8];
	MDB_val k = {8, key}, v;
	int rc;

	*dropped = false;
	if (!s->st_have_timestamps)
		return 0;
	be64_put(key, size);
	rc = mdb_get(txn, s->st_checkpoints, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc != 0)
		return rc;
	/* the lenient body: a stored note with a broken signature line keeps
	 * its token as long as its text is the same */
	size_t old = rete_checkpoint_body_len(v.mv_data, v.mv_size),
	       new = rete_checkpoint_body_len(note, strlen(note));
	if (old == new &&memcmp(v.mv_data, note, old) == 0)
		return 0;
	rc = mdb_del(txn, s->st_timestamps, &k, NULL);
	*dropped = rc == 0;
	return rc == MDB_NOTFOUND ? 0 : rc;
}

rete_err rete_store_timestamp_get(rete_store *s, rete_store_rtxn *rt, uint64_t size,
				  rete_buf *token, rete_msg *m)
{
	uint8_t key[8];
	MDB_val k = {8, key}, v;
	MDB_txn *txn;
	bool own;
	rete_err err;
	int rc;

	if (s == NULL || token == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no store or output given");
	token->data = NULL;
	token->len = 0;
	if (!s->st_have_timestamps)
		return rete_msg_set(m, RETE_ENOENT,
				    "store %s: no time-stamp token for tree size %llu (a store of "
				    "schema 1 or 2, read-only: it keeps no tokens)",
				    s->st_dir, (unsigned long long)size);
	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	be64_put(key, size);
	rc = mdb_get(txn, s->st_timestamps, &k, &v);
	if (rc == MDB_NOTFOUND)
		err =
		    rete_msg_set(m, RETE_ENOENT, "store %s: no time-stamp token for tree size %llu",
				 s->st_dir, (unsigned long long)size);
	else if (rc != 0)
		err = store_lmdb_err(m, rc, "store: reading a time-stamp token");
	else
		err = token_copy(&v, token, m);
	if (own)
		store_txn_done(s, txn);
	return err;
}

rete_err rete_store_timestamp_latest(rete_store *s, rete_store_rtxn *rt, uint64_t *size,
				     rete_buf *token, rete_msg *m)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	MDB_txn *txn;
	bool own;
	rete_err err;
	int rc;

	if (s == NULL || size == NULL || token == NULL)
		return rete_msg_set(m, RETE_EINVAL, "store: no store or output given");
	token->data = NULL;
	token->len = 0;
	if (!s->st_have_timestamps)
		return rete_msg_set(m, RETE_ENOENT,
				    "store %s: no time-stamp token yet (a store of schema 1 or 2, "
				    "read-only: it keeps no tokens)",
				    s->st_dir);
	if ((err = store_rt_get(s, rt, &txn, &own, m)) != RETE_OK)
		return err;
	if ((rc = mdb_cursor_open(txn, s->st_timestamps, &cur)) != 0) {
		err = store_lmdb_err(m, rc, "store: reading time-stamp tokens");
		goto done;
	}
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	if (rc == MDB_NOTFOUND)
		err = rete_msg_set(m, RETE_ENOENT, "store %s: no time-stamp token yet", s->st_dir);
	else if (rc != 0)
		err = store_lmdb_err(m, rc, "store: reading time-stamp tokens");
	else if (k.mv_size != 8)
		err =
		    rete_msg_set(m, RETE_ECORRUPT,
				 "store %s: a time-stamp token's key is %zu bytes long, expected 8",
				 s->st_dir, k.mv_size);
	else {
		*size = be64_get(k.mv_data);
		err = token_copy(&v, token, m);
	}
done:
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (own)
		store_txn_done(s, txn);
	return err;
}
