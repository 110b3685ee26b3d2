/* store_check.c — see store_check.h.
 *
 * LMDB's on-disk format (liblmdb 0.9, 64-bit; lmdb.h does not publish it,
 * mdb.c describes it): the file is an array of pages of one size. Pages 0
 * and 1 are meta pages; transaction N writes meta page N % 2, and a reader
 * takes the one with the larger transaction id. Every page starts with a
 * 16-byte header: the page number (u64), a pad (u16), flags (u16), then
 * either the lower and upper bounds of the free space (u16 each) or, on the
 * first page of an overflow run, the number of pages in the run (u32).
 * Branch and leaf pages hold an array of u16 node offsets after the header
 * (lower - 16 bytes of it) and the nodes from `upper` to the end of the
 * page. A node is lo, hi, flags, key size (u16 each), the key, then on a
 * leaf the data (size lo | hi << 16) or, with F_BIGDATA, the number of the
 * overflow run holding it; on a branch page lo | hi << 16 | flags << 32 is
 * the child's page number. A named database is a leaf node of the main
 * database with F_SUBDATA whose data is a database record (48 bytes: pad,
 * flags, depth, branch, leaf and overflow page counts, entries, root). The
 * meta record after a meta page's header: magic, version, address, map
 * size, the free-page database's record (its pad is the page size) and the
 * main database's, the last page used, the transaction id. The free-page
 * database maps transaction ids to page lists (a u64 count, then the page
 * numbers). All integers are in the machine's byte order.
 *
 * The walk reads each page once with pread: the cost is one read per page
 * in use, the same pages LMDB itself would fault in to read the whole
 * store. A bitmap of the pages seen catches a page reached twice (a cycle
 * would otherwise recurse until the depth bound).
 */
#include "store_check.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR	     16u  /* page header */
#define NODE_HDR     8u	  /* node header */
#define DB_REC	     48u  /* a database record */
#define META_REC     136u /* the meta record after the page header */
#define MAGIC	     0xBEEFC0DEu
#define DATA_VERSION 1u
#define PGNO_NONE    UINT64_MAX	  /* an empty tree's root */
#define MAX_DEPTH    32u	  /* LMDB's cursor stack: no deeper tree opens */
#define MAX_PAGES    (1ull << 40) /* 4 PiB of 4 KiB pages: more is garbage */
#define ATTEMPTS     5		  /* walks spoiled by a writer before giving up */

/* page flags */
#define P_BRANCH   0x01u
#define P_LEAF	   0x02u
#define P_OVERFLOW 0x04u
#define P_META	   0x08u
#define P_LEAF2	   0x20u
#define P_SUBP	   0x40u
#define P_KINDS	   (P_BRANCH | P_LEAF | P_OVERFLOW | P_META | P_LEAF2 | P_SUBP)
/* node flags */
#define F_BIGDATA 0x01u
#define F_SUBDATA 0x02u
#define F_DUPDATA 0x04u
/* database flags that change the key order or the layout */
#define DB_REVERSEKEY 0x02u
#define DB_DUPSORT    0x04u
#define DB_INTEGERKEY 0x08u

/* A database record as the file holds it. */
struct dbrec {
	uint32_t pad;
	uint16_t flags, depth;
	uint64_t branch, leaf, overflow, entries, root;
};

/* A meta page as the file holds it (the fields the check uses). */
struct meta {
	uint64_t pgno;
	uint16_t pflags;
	uint32_t magic, version, psize;
	struct dbrec free, main;
	uint64_t last_pg, txnid;
};

/* The counts a walk of one tree finds. */
struct counts {
	uint64_t branch, leaf, overflow, entries;
};

struct chk {
	int fd;
	const char *file;
	uint64_t fsize;
	uint32_t psize;
	uint64_t last_pg;
	uint8_t *seen; /* bitmap of pages reached, last_pg + 1 bits */
	/* one page buffer per level: the main database's tree, then a named
	 * database's, walked while the main one's leaf is still in use */
	uint8_t *buf[2 * (MAX_DEPTH + 1)];
	uint8_t *ovf; /* a free-page list kept in an overflow run */
	size_t ovf_cap;
	rete_msg *m;
	const char *tree; /* the database being walked, for the sentences */
	bool quick;	  /* the leaves of the named databases are not read */
};

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;
	memcpy(&v, p, 2);
	return v;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static void dbrec_get(struct dbrec *d, const uint8_t *p)
{
	d->pad = rd32(p);
	d->flags = rd16(p + 4);
	d->depth = rd16(p + 6);
	d->branch = rd64(p + 8);
	d->leaf = rd64(p + 16);
	d->overflow = rd64(p + 24);
	d->entries = rd64(p + 32);
	d->root = rd64(p + 40);
}

static void meta_get(struct meta *mt, const uint8_t *p)
{
	mt->pgno = rd64(p);
	mt->pflags = rd16(p + 10);
	mt->magic = rd32(p + HDR);
	mt->version = rd32(p + HDR + 4);
	dbrec_get(&mt->free, p + HDR + 24);
	dbrec_get(&mt->main, p + HDR + 24 + DB_REC);
	mt->psize = mt->free.pad;
	mt->last_pg = rd64(p + HDR + 24 + 2 * DB_REC);
	mt->txnid = rd64(p + HDR + 32 + 2 * DB_REC);
}

/* damaged sets the sentence for damage found in the file. */
static rete_err damaged(struct chk *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static rete_err damaged(struct chk *c, const char *fmt, ...)
{
	char what[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return rete_msg_set(c->m, RETE_ECORRUPT,
			    "%s is damaged: %s; it cannot be opened safely: put back a copy "
			    "from a backup",
			    c->file, what);
}

/* read_page reads page pgno into buf (psize bytes). */
static rete_err read_page(struct chk *c, uint64_t pgno, uint8_t *buf, size_t len)
{
	off_t off = (off_t)(pgno * c->psize);
	size_t done = 0;

	while (done < len) {
		ssize_t r = pread(c->fd, buf + done, len - done, off + (off_t)done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return rete_msg_set(c->m, RETE_EIO, "%s: reading page %llu: %s", c->file,
					    (unsigned long long)pgno, strerror(errno));
		if (r == 0)
			return damaged(c,
				       "page %llu of %s ends past the end of the file (%llu "
				       "bytes): the file was cut short",
				       (unsigned long long)pgno, c->tree,
				       (unsigned long long)c->fsize);
		done += (size_t)r;
	}
	return RETE_OK;
}

/* reach checks that the run of n pages at pgno is inside the file and not
 * reached before, and marks it. */
static rete_err reach(struct chk *c, uint64_t pgno, uint64_t n, const char *what)
{
	if (pgno < 2 || n == 0 || pgno > c->last_pg || n > c->last_pg - pgno + 1)
		return damaged(c,
			       "%s of %s names page %llu (%llu page%s), outside the pages in use "
			       "(2 to %llu)",
			       what, c->tree, (unsigned long long)pgno, (unsigned long long)n,
			       n == 1 ? "" : "s", (unsigned long long)c->last_pg);
	if ((pgno + n) * (uint64_t)c->psize > c->fsize)
		return damaged(c,
			       "%s of %s is page %llu, past the end of the file (%llu bytes, %llu "
			       "pages): the file was cut short (a half-finished copy?)",
			       what, c->tree, (unsigned long long)(pgno + n - 1),
			       (unsigned long long)c->fsize,
			       (unsigned long long)(c->fsize / c->psize));
	for (uint64_t p = pgno; p < pgno + n; p++) {
		if (c->seen[p >> 3] & (1u << (p & 7)))
			return damaged(c, "page %llu is reached twice (again as %s of %s)",
				       (unsigned long long)p, what, c->tree);
		c->seen[p >> 3] |= (uint8_t)(1u << (p & 7));
	}
	return RETE_OK;
}

/* key_cmp is LMDB's default order: bytes, then length. */
static int key_cmp(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	int r = memcmp(a, b, al < bl ? al : bl);
	if (r != 0)
		return r;
	return al < bl ? -1 : al > bl;
}

static rete_err walk_tree(struct chk *c, const char *name, const struct dbrec *db, bool main,
			  bool free, unsigned base);

/* free_list checks a free-page list record (count, then page numbers). */
static rete_err free_list(struct chk *c, uint64_t pgno, const uint8_t *d, uint64_t len)
{
	uint64_t n;

	if (len < 8 || len % 8 != 0)
		return damaged(c, "a free-page list on page %llu is %llu bytes long",
			       (unsigned long long)pgno, (unsigned long long)len);
	n = rd64(d);
	if (n != len / 8 - 1)
		return damaged(c, "a free-page list on page %llu counts %llu pages in %llu bytes",
			       (unsigned long long)pgno, (unsigned long long)n,
			       (unsigned long long)len);
	for (uint64_t i = 1; i <= n; i++) {
		uint64_t p = rd64(d + i * 8);
		/* Free pages may lie past the end of the file (never written),
		 * but never past the last page the meta page counts. */
		if (p < 2 || p > c->last_pg)
			return damaged(c,
				       "the free-page list on page %llu lists page %llu, outside "
				       "the pages in use (2 to %llu)",
				       (unsigned long long)pgno, (unsigned long long)p,
				       (unsigned long long)c->last_pg);
	}
	return RETE_OK;
}

/* overflow checks the overflow run at opg holding dsize bytes of a node of
 * page pgno (and, for a free-page list, its content). */
static rete_err overflow(struct chk *c, uint64_t pgno, uint64_t opg, uint64_t dsize, bool free,
			 struct counts *ct)
{
	uint8_t hdr[HDR];
	uint64_t need = (HDR - 1 + dsize) / c->psize + 1, n;
	rete_err e;

	if (opg < 2 || opg > c->last_pg)
		return reach(c, opg, 1, "an overflow run");
	if ((opg + 1) * (uint64_t)c->psize > c->fsize)
		return reach(c, opg, 1, "an overflow run");
	if ((e = read_page(c, opg, hdr, HDR)) != RETE_OK)
		return e;
	n = rd32(hdr + 12);
	if (rd64(hdr) != opg || (rd16(hdr + 10) & P_KINDS) != P_OVERFLOW)
		return damaged(
		    c,
		    "page %llu, an overflow run named by page %llu of %s, has the header "
		    "of page %llu with flags 0x%x",
		    (unsigned long long)opg, (unsigned long long)pgno, c->tree,
		    (unsigned long long)rd64(hdr), (unsigned)rd16(hdr + 10));
	if (n < need)
		return damaged(c,
			       "the overflow run at page %llu (%s) has %llu pages for %llu bytes "
			       "(%llu pages needed)",
			       (unsigned long long)opg, c->tree, (unsigned long long)n,
			       (unsigned long long)dsize, (unsigned long long)need);
	if ((e = reach(c, opg, n, "an overflow run")) != RETE_OK)
		return e;
	ct->overflow += n;
	if (free) {
		size_t len = (size_t)(HDR + dsize);
		if (len > c->ovf_cap) {
			uint8_t *nb = realloc(c->ovf, len);
			if (nb == NULL)
				return rete_msg_set(c->m, RETE_ENOMEM, "%s: out of memory",
						    c->file);
			c->ovf = nb;
			c->ovf_cap = len;
		}
		if ((e = read_page(c, opg, c->ovf, len)) != RETE_OK)
			return e;
		return free_list(c, opg, c->ovf + HDR, dsize);
	}
	return RETE_OK;
}

/* walk_page checks page pgno at depth `level` (1 = the root) of a tree of
 * `depth` levels, and below it. */
static rete_err walk_page(struct chk *c, uint64_t pgno, unsigned level, const struct dbrec *db,
			  bool main, bool free, unsigned base, struct counts *ct)
{
	uint8_t *p = c->buf[base + level];
	bool leaf = level == db->depth;
	unsigned want = leaf ? P_LEAF : P_BRANCH;
	unsigned flags, lower, upper, nkeys;
	bool ordered = !(db->flags & (DB_REVERSEKEY | DB_INTEGERKEY)) && !free;
	const uint8_t *prev = NULL;
	size_t prev_len = 0;
	rete_err e;

	if ((e = reach(c, pgno, 1, level == 1 ? "the root" : "a child")) != RETE_OK)
		return e;
	if ((e = read_page(c, pgno, p, c->psize)) != RETE_OK)
		return e;
	flags = rd16(p + 10);
	lower = rd16(p + 12);
	upper = rd16(p + 14);
	if (rd64(p) != pgno)
		return damaged(c, "page %llu of %s says it is page %llu", (unsigned long long)pgno,
			       c->tree, (unsigned long long)rd64(p));
	if ((flags & P_KINDS) != want)
		return damaged(c,
			       "page %llu of %s, at level %u of %u, has flags 0x%x where a %s "
			       "page belongs",
			       (unsigned long long)pgno, c->tree, level, (unsigned)db->depth, flags,
			       leaf ? "leaf" : "branch");
	if (lower < HDR || (lower - HDR) % 2 != 0 || upper < lower || upper > c->psize)
		return damaged(c,
			       "page %llu of %s has free space from %u to %u, outside its %u "
			       "bytes",
			       (unsigned long long)pgno, c->tree, lower, upper, c->psize);
	nkeys = (lower - HDR) / 2;
	if (nkeys == 0 || (!leaf && !free && nkeys < 2))
		return damaged(c, "%s page %llu of %s holds %u node%s", leaf ? "leaf" : "branch",
			       (unsigned long long)pgno, c->tree, nkeys, nkeys == 1 ? "" : "s");
	if (leaf)
		ct->leaf++;
	else
		ct->branch++;
	for (unsigned i = 0; i < nkeys; i++) {
		unsigned off = rd16(p + HDR + 2 * i);
		const uint8_t *nd = p + off;
		unsigned nflags, ksize;
		uint64_t end;

		if (off < upper || off % 2 != 0 || off + NODE_HDR > c->psize)
			return damaged(c,
				       "node %u of page %llu (%s) is at offset %u, outside the "
				       "page's nodes (%u to %u)",
				       i, (unsigned long long)pgno, c->tree, off, upper, c->psize);
		nflags = rd16(nd + 4);
		ksize = rd16(nd + 6);
		end = (uint64_t)off + NODE_HDR + ksize;
		if (end > c->psize)
			return damaged(c,
				       "node %u of page %llu (%s) has a key of %u bytes, past the "
				       "end of the page",
				       i, (unsigned long long)pgno, c->tree, ksize);
		if (ordered && (leaf || i > 0)) {
			if (prev != NULL && key_cmp(prev, prev_len, nd + NODE_HDR, ksize) >= 0)
				return damaged(c,
					       "the keys of page %llu (%s) are out of order at "
					       "node %u",
					       (unsigned long long)pgno, c->tree, i);
			prev = nd + NODE_HDR;
			prev_len = ksize;
		}
		if (!leaf) {
			uint64_t child =
			    rd16(nd) | ((uint64_t)rd16(nd + 2) << 16) | ((uint64_t)nflags << 32);
			if (c->quick && !main && level + 1 == db->depth) {
				/* a leaf not read: in range and inside the file */
				if ((e = reach(c, child, 1, "a leaf")) != RETE_OK)
					return e;
				ct->leaf++;
				continue;
			}
			if ((e = walk_page(c, child, level + 1, db, main, free, base, ct)) !=
			    RETE_OK)
				return e;
			continue;
		}
		/* a leaf node */
		uint64_t dsize = rd16(nd) | ((uint64_t)rd16(nd + 2) << 16);
		const uint8_t *data = nd + NODE_HDR + ksize;
		ct->entries++;
		if ((nflags & ~(F_BIGDATA | F_SUBDATA | F_DUPDATA)) != 0 ||
		    ((nflags & F_BIGDATA) && (nflags & (F_SUBDATA | F_DUPDATA))) ||
		    ((nflags & F_DUPDATA) && !(db->flags & DB_DUPSORT)) ||
		    ((nflags & F_SUBDATA) && !(nflags & F_DUPDATA) && !main))
			return damaged(c, "node %u of page %llu (%s) has flags 0x%x", i,
				       (unsigned long long)pgno, c->tree, nflags);
		if (nflags & F_BIGDATA) {
			if (end + 8 > c->psize)
				return damaged(c,
					       "node %u of page %llu (%s) runs past the end of "
					       "the page",
					       i, (unsigned long long)pgno, c->tree);
			if ((e = overflow(c, pgno, rd64(data), dsize, free, ct)) != RETE_OK)
				return e;
			continue;
		}
		if (end + dsize > c->psize)
			return damaged(c,
				       "node %u of page %llu (%s) has %llu bytes of data, past the "
				       "end of the page",
				       i, (unsigned long long)pgno, c->tree,
				       (unsigned long long)dsize);
		if (free && (e = free_list(c, pgno, data, dsize)) != RETE_OK)
			return e;
		if ((nflags & F_SUBDATA) && !(nflags & F_DUPDATA)) {
			/* a named database: its record, then its tree */
			struct dbrec sub;
			char name[80];
			const char *saved = c->tree;
			if (dsize != DB_REC)
				return damaged(c,
					       "the record of a named database on page %llu is "
					       "%llu bytes, not %u",
					       (unsigned long long)pgno, (unsigned long long)dsize,
					       DB_REC);
			dbrec_get(&sub, data);
			snprintf(name, sizeof(name), "database '%.*s'",
				 ksize > 40 ? 40 : (int)ksize, (const char *)nd + NODE_HDR);
			for (char *q = name; *q; q++)
				if ((unsigned char)*q < 0x20 || (unsigned char)*q >= 0x7f)
					*q = '?';
			e = walk_tree(c, name, &sub, false, false, MAX_DEPTH + 1);
			c->tree = saved;
			if (e != RETE_OK)
				return e;
		}
		/* F_DUPDATA (a sub-page or sub-database of duplicates): rete
		 * opens no MDB_DUPSORT database; such data is bounds-checked
		 * above and not walked. */
	}
	return RETE_OK;
}

/* walk_tree checks the tree of database record db and its counts. */
static rete_err walk_tree(struct chk *c, const char *name, const struct dbrec *db, bool main,
			  bool free, unsigned base)
{
	struct counts ct = {0, 0, 0, 0};
	rete_err e;

	c->tree = name;
	if (db->root == PGNO_NONE) {
		if (db->depth != 0 || db->entries != 0 || db->branch != 0 || db->leaf != 0 ||
		    db->overflow != 0)
			return damaged(c, "%s is empty but its record counts %llu entries", name,
				       (unsigned long long)db->entries);
		return RETE_OK;
	}
	if (db->depth == 0 || db->depth > MAX_DEPTH)
		return damaged(c, "%s has a depth of %u levels", name, (unsigned)db->depth);
	if ((e = walk_page(c, db->root, 1, db, main, free, base, &ct)) != RETE_OK)
		return e;
	c->tree = name;
	if (c->quick && !main && db->depth > 1) {
		/* entries and overflow pages sit in the leaves not read */
		ct.entries = db->entries;
		ct.overflow = db->overflow;
	}
	if (ct.entries != db->entries || ct.branch != db->branch || ct.leaf != db->leaf ||
	    ct.overflow != db->overflow)
		return damaged(c,
			       "%s holds %llu entries on %llu branch, %llu leaf and %llu overflow "
			       "pages, but its record says %llu on %llu, %llu and %llu",
			       name, (unsigned long long)ct.entries, (unsigned long long)ct.branch,
			       (unsigned long long)ct.leaf, (unsigned long long)ct.overflow,
			       (unsigned long long)db->entries, (unsigned long long)db->branch,
			       (unsigned long long)db->leaf, (unsigned long long)db->overflow);
	return RETE_OK;
}

/* read_metas reads both meta pages' first bytes into raw (2 x (HDR +
 * META_REC)); false when the file is too short for them. */
static bool read_metas(struct chk *c, uint32_t psize, uint8_t *raw)
{
	size_t len = HDR + META_REC;
	return pread(c->fd, raw, len, 0) == (ssize_t)len &&
	       (psize == 0 || pread(c->fd, raw + len, len, psize) == (ssize_t)len);
}

/* newer_meta: one of the meta pages in raw (both, as read_metas reads
 * them) carries a transaction id above txnid. */
static bool newer_meta(const uint8_t *raw, uint64_t txnid)
{
	struct meta a, b;
	meta_get(&a, raw);
	meta_get(&b, raw + HDR + META_REC);
	return (a.magic == MAGIC && a.txnid > txnid) || (b.magic == MAGIC && b.txnid > txnid);
}

/* meta_check checks meta page i (mt, as read). */
static rete_err meta_check(struct chk *c, unsigned i, const struct meta *mt)
{
	if (mt->magic != MAGIC)
		return damaged(c,
			       "meta page %u does not start with LMDB's magic number (0x%08x where "
			       "0x%08x belongs): this is not an LMDB file, or its start was "
			       "overwritten",
			       i, mt->magic, MAGIC);
	if (mt->version != DATA_VERSION)
		return damaged(c, "meta page %u has format version %u; LMDB 0.9 writes version %u",
			       i, mt->version, DATA_VERSION);
	if (mt->pgno != i || !(mt->pflags & P_META))
		return damaged(c, "meta page %u has the header of page %llu with flags 0x%x", i,
			       (unsigned long long)mt->pgno, (unsigned)mt->pflags);
	if (mt->psize < 512 || mt->psize > 32768 || (mt->psize & (mt->psize - 1)) != 0)
		return damaged(c, "meta page %u gives a page size of %u bytes", i, mt->psize);
	return RETE_OK;
}

/* check_once: one attempt. *txnid gets the transaction id of the meta page
 * walked (0 when none was). */
static rete_err check_once(struct chk *c, uint8_t *raw, uint64_t *txnid)
{
	struct meta mt[2];
	const struct meta *cur;
	size_t len = HDR + META_REC;
	rete_err e;

	*txnid = 0;
	c->tree = "the meta pages";
	if (!read_metas(c, 0, raw))
		return damaged(c, "it is %llu bytes long, too short for an LMDB file",
			       (unsigned long long)c->fsize);
	meta_get(&mt[0], raw);
	if ((e = meta_check(c, 0, &mt[0])) != RETE_OK)
		return e;
	c->psize = mt[0].psize;
	if (c->fsize % c->psize != 0 || c->fsize < 2 * (uint64_t)c->psize)
		return damaged(c,
			       "it is %llu bytes long, not a whole number of its %u-byte pages "
			       "(at least 2): the file was cut short (a half-finished copy?)",
			       (unsigned long long)c->fsize, c->psize);
	if (!read_metas(c, c->psize, raw))
		return damaged(c, "meta page 1 cannot be read");
	meta_get(&mt[1], raw + len);
	if ((e = meta_check(c, 1, &mt[1])) != RETE_OK)
		return e;
	if (mt[1].psize != c->psize)
		return damaged(c, "the meta pages give page sizes of %u and %u bytes", c->psize,
			       mt[1].psize);
	cur = &mt[mt[0].txnid < mt[1].txnid ? 1 : 0];
	*txnid = cur->txnid;
	c->last_pg = cur->last_pg;
	/* A file shorter than the pages in use is most often one cut short
	 * (it may also end in free pages never written): read every page. */
	if ((c->last_pg + 1) * (uint64_t)c->psize > c->fsize)
		c->quick = false;
	if (c->last_pg < 1 || c->last_pg >= MAX_PAGES)
		return damaged(c, "meta page %u (transaction %llu) says the last page is %llu",
			       cur == &mt[1], (unsigned long long)cur->txnid,
			       (unsigned long long)c->last_pg);
	free(c->seen);
	if ((c->seen = calloc(1, (size_t)(c->last_pg / 8 + 1))) == NULL)
		return rete_msg_set(c->m, RETE_ENOMEM, "%s: out of memory for %llu pages", c->file,
				    (unsigned long long)c->last_pg);
	for (unsigned i = 0; i < 2 * (MAX_DEPTH + 1); i++)
		if (c->buf[i] == NULL && (c->buf[i] = malloc(c->psize)) == NULL)
			return rete_msg_set(c->m, RETE_ENOMEM, "%s: out of memory", c->file);
	if ((e = walk_tree(c, "the free-page list", &cur->free, false, true, 0)) != RETE_OK)
		return e;
	return walk_tree(c, "the main database", &cur->main, true, false, 0);
}

rete_err rete_store_file_check(const char *path, rete_msg *m)
{
	return rete_store_file_check_ex(path, 0, m);
}

rete_err rete_store_file_check_ex(const char *path, unsigned flags, rete_msg *m)
{
	struct chk c;
	struct stat st;
	char file[PATH_MAX];
	uint8_t raw[2][2 * (HDR + META_REC)];
	rete_err e = RETE_OK;

	if (path == NULL || *path == '\0')
		return rete_msg_set(m, RETE_EINVAL, "store check: no file given");
	if (stat(path, &st) != 0)
		return rete_msg_set(m,
				    errno == ENOENT   ? RETE_ENOENT
				    : errno == EACCES ? RETE_EPERM
						      : RETE_EIO,
				    "%s: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		if (snprintf(file, sizeof(file), "%s/data.mdb", path) >= (int)sizeof(file))
			return rete_msg_set(m, RETE_EINVAL, "%s: path too long", path);
	} else {
		snprintf(file, sizeof(file), "%s", path);
	}
	memset(&c, 0, sizeof(c));
	c.file = file;
	c.m = m;
	c.fd = open(file, O_RDONLY | O_CLOEXEC);
	if (c.fd < 0)
		return rete_msg_set(m,
				    errno == ENOENT   ? RETE_ENOENT
				    : errno == EACCES ? RETE_EPERM
						      : RETE_EIO,
				    "%s: %s", file, strerror(errno));
	if (fstat(c.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		e = rete_msg_set(m, RETE_ECORRUPT, "%s is not a regular file", file);
		goto out;
	}
	if (st.st_size == 0) {
		e = rete_msg_set(
		    m, RETE_ECORRUPT,
		    "%s is empty (0 bytes): it is not a store (an interrupted copy, "
		    "or a file made by hand); put back a copy from a backup, or remove "
		    "it to start anew",
		    file);
		goto out;
	}
	/* A writer may commit while we walk: the pages of the snapshot we walk
	 * are reused only two commits later. When the walk fails and the meta
	 * pages changed meanwhile, it may have read a page being rewritten:
	 * walk the new snapshot. A writer that keeps committing faster than
	 * ATTEMPTS walks is reading and writing this file itself: its damage,
	 * if any, is not something this check can pin down, and it passes. */
	for (int attempt = 0;; attempt++) {
		uint64_t txnid;
		memset(raw, 0, sizeof(raw));
		c.fsize = (uint64_t)st.st_size;
		c.quick =
		    (flags & RETE_STORE_CHECK_SPINE) ||
		    ((flags & RETE_STORE_CHECK_QUICK) && c.fsize > RETE_STORE_CHECK_QUICK_ABOVE);
		e = check_once(&c, raw[0], &txnid);
		if (e != RETE_ECORRUPT)
			break;
		/* the file's size was taken before its meta pages were read: a
		 * commit between the two that grew the file gives a snapshot
		 * whose pages lie past the size walked against (test_journal_live:
		 * "the root of the free-page list is page 776, past the end of
		 * the file (... 766 pages)" of a live broker's store, once in 398
		 * backups). A file that grew since is walked again, its new size
		 * taken first. */
		struct stat now_st;
		bool grew = fstat(c.fd, &now_st) == 0 && (uint64_t)now_st.st_size > c.fsize;
		/* the snapshot walked was not a snapshot only when a commit came
		 * after it: a newer transaction id on a meta page */
		if (!grew &&
		    (txnid == 0 || !read_metas(&c, c.psize, raw[1]) || !newer_meta(raw[1], txnid)))
			break; /* nothing moved: the damage is real */
		if (attempt + 1 >= ATTEMPTS) {
			e = RETE_OK;
			break;
		}
		if (fstat(c.fd, &st) != 0)
			break;
	}
out:
	close(c.fd);
	free(c.seen);
	free(c.ovf);
	for (unsigned i = 0; i < 2 * (MAX_DEPTH + 1); i++)
		free(c.buf[i]);
	return e;
}
