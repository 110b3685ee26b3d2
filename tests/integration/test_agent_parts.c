/* test_agent_parts.c — the agent's own modules, on real files: its
 * configuration, its spool folders, its LMDB store and the referral
 * records it keeps. The agent's sources are compiled in here (they are not
 * a library), so these tests see exactly what rete-agent runs.
 */
#include "../../agents/agent/agent_config.c"
#include "../../agents/agent/agent_db.c"
#include "../../agents/agent/agent_spool.c"
#include "../../agents/agent/agent_track.c"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "testutil.h"

static char *dir;

static int setup(void **state)
{
	(void)state;
	dir = tu_tmpdir("agent-parts");
	return dir == NULL ? -1 : 0;
}

static int teardown(void **state)
{
	(void)state;
	tu_rmrf(dir);
	free(dir);
	return 0;
}

static void put(const char *name, const char *text)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(tu_write_file(path, text, strlen(text)), 0);
}

/* --- configuration ------------------------------------------------------ */

static void test_config_paths_and_defaults(void **state)
{
	(void)state;
	agent_config cfg;
	rete_msg m;
	char ini[1024], want[1200];
	put("a.ini", "; comment\n[agent]\nid = cpi.mantova\nkey = keys/cpi.key\n"
		     "broker = tcp://127.0.0.1:7700\nbroker_key = /etc/rete/broker.pub\n"
		     "resubmit = 1500ms\nheartbeat = 2m\n[other]\nanything = goes\n");
	snprintf(ini, sizeof(ini), "%s/a.ini", dir);
	assert_int_equal(agent_config_load(ini, &cfg, &m), RETE_OK);
	assert_string_equal(cfg.id, "cpi.mantova");
	char real[PATH_MAX];
	assert_non_null(realpath(dir, real));
	snprintf(want, sizeof(want), "%s/keys/cpi.key", real);
	assert_string_equal(cfg.key_path, want);
	assert_string_equal(cfg.broker_key_path, "/etc/rete/broker.pub");
	snprintf(want, sizeof(want), "%s/spool", real);
	assert_string_equal(cfg.spool, want);
	snprintf(want, sizeof(want), "%s/data", real);
	assert_string_equal(cfg.data, want);
	assert_null(cfg.on_message);
	assert_int_equal(cfg.resubmit_ms, 1500);
	assert_int_equal(cfg.heartbeat_ms, 120000);
	assert_int_equal(cfg.poll_ms, 2000);
	assert_int_equal(cfg.max_inflight, 64);
	assert_int_equal(cfg.witness_patience_ms, 3600000);
	agent_config_free(&cfg);
}

/* load_refused writes text as b.ini (ini its path) and checks that
 * agent_config_load refuses it, saying said; load_ok that it takes it. */
static void load_refused(const char *ini, const char *text, const char *said)
{
	agent_config cfg;
	rete_msg m;
	put("b.ini", text);
	assert_int_equal(agent_config_load(ini, &cfg, &m), RETE_EINVAL);
	if (strstr(m.text, said) == NULL)
		fail_msg("'%s' said '%s', not '%s'", text, m.text, said);
	agent_config_free(&cfg);
}

static void load_ok(const char *ini, const char *text)
{
	agent_config cfg;
	rete_msg m;
	put("b.ini", text);
	if (agent_config_load(ini, &cfg, &m) != RETE_OK)
		fail_msg("'%s' refused: %s", text, m.text);
	agent_config_free(&cfg);
}

static void test_config_refusals(void **state)
{
	(void)state;
	agent_config cfg;
	rete_msg m;
	char ini[1024];
	snprintf(ini, sizeof(ini), "%s/b.ini", dir);
	put("b.ini", "[agent]\nid = x\n");
	assert_int_equal(agent_config_load(ini, &cfg, &m), RETE_EINVAL);
	assert_non_null(strstr(m.text, "'x' is not a party id"));
	agent_config_free(&cfg);
	put("b.ini", "[agent]\nid = cpi.mantova\nmax_inflight = 0\n");
	assert_int_equal(agent_config_load(ini, &cfg, &m), RETE_EINVAL);
	assert_non_null(strstr(m.text, "max_inflight"));
	agent_config_free(&cfg);
	/* max_inflight and map_size are two keys: each sets its own value
	 * (they were once told apart by their second letter, which both share) */
	put("b.ini", "[agent]\nid = cpi.mantova\nkey = k\nbroker = tcp://127.0.0.1:1\n"
		     "broker_key = b.pub\nmax_inflight = 8\nmap_size = 3\n");
	assert_int_equal(agent_config_load(ini, &cfg, &m), RETE_OK);
	assert_int_equal(cfg.max_inflight, 8);
	assert_int_equal(cfg.map_size, (uint64_t)3 << 20);
	agent_config_free(&cfg);
	put("b.ini", "[agent]\nid = cpi.mantova\nmax_inflight = 70000\n");
	assert_int_equal(agent_config_load(ini, &cfg, &m), RETE_EINVAL);
	assert_non_null(strstr(m.text, "from 1 to 65536"));
	agent_config_free(&cfg);
	put("b.ini", "[agent]\nid = cpi.mantova\nheartbeat = 3wd\n");
	assert_int_equal(agent_config_load(ini, &cfg, &m), RETE_EINVAL);
	assert_non_null(strstr(m.text, "heartbeat"));
	agent_config_free(&cfg);
	/* witness_patience: a duration, and not shorter than witness */
	put("b.ini", "[agent]\nid = cpi.mantova\nwitness_patience = soon\n");
	assert_int_equal(agent_config_load(ini, &cfg, &m), RETE_EINVAL);
	assert_non_null(strstr(m.text, "[agent] witness_patience: 'soon' is not a duration"));
	agent_config_free(&cfg);
	put("b.ini", "[agent]\nid = cpi.mantova\nkey = k\nbroker = tcp://127.0.0.1:1\n"
		     "broker_key = b.pub\nwitness = 1m\nwitness_patience = 30s\n");
	assert_int_equal(agent_config_load(ini, &cfg, &m), RETE_EINVAL);
	assert_non_null(strstr(m.text, "witness_patience (30000 ms) is shorter than witness"));
	agent_config_free(&cfg);
	put("b.ini", "[agent]\nid = cpi.mantova\nkey = k\nbroker = tcp://127.0.0.1:1\n"
		     "broker_key = b.pub\nwitness = 1m\nwitness_patience = 2h\n");
	assert_int_equal(agent_config_load(ini, &cfg, &m), RETE_OK);
	assert_int_equal(cfg.witness_patience_ms, 7200000);
	agent_config_free(&cfg);
	/* a key given twice: the last one is taken (tools append a key to
	 * override one), and which keys were is kept for the start's warning
	 * and --check-config's note */
	put("b.ini", "[agent]\nid = cpi.mantova\nkey = k\nbroker = tcp://127.0.0.1:1\n"
		     "broker_key = b.pub\nwitness = 2s\nwitness_patience = 1h\nspool = /srv/a\n"
		     "witness = 1s\nspool = /srv/b\nwitness = 3s\n");
	assert_int_equal(agent_config_load(ini, &cfg, &m), RETE_OK);
	assert_string_equal(cfg.twice, "witness, spool");
	assert_string_equal(cfg.spool, "/srv/b");
	assert_int_equal(cfg.witness_ms, 3000);
	agent_config_free(&cfg);
	/* data: never one of the spool's folders, however spelt (cfg_places) */
	char norm[256];
	path_norm("/a//b/./c/../d/", norm, sizeof(norm));
	assert_string_equal(norm, "/a/b/d");
	path_norm("/..", norm, sizeof(norm));
	assert_string_equal(norm, "/");
	char sp[1100], link[1200];
	snprintf(sp, sizeof(sp), "%s/sp", dir);
	assert_int_equal(agent_spool_prepare(sp, &m), RETE_OK);
	snprintf(link, sizeof(link), "%s/store-link", dir);
	assert_int_equal(symlink("sp/sent", link), 0);
	load_refused(ini,
		     "[agent]\nid = cpi.mantova\nkey = k\nbroker = tcp://127.0.0.1:1\n"
		     "broker_key = b.pub\nspool = sp\ndata = store-link\n",
		     "store-link is the spool's sent/");
	load_ok(ini, "[agent]\nid = cpi.mantova\nkey = k\nbroker = tcp://127.0.0.1:1\n"
		     "broker_key = b.pub\nspool = sp\ndata = sp\n"); /* the spool's root */
	snprintf(ini, sizeof(ini), "%s/none.ini", dir);
	assert_int_equal(agent_config_load(ini, &cfg, &m), RETE_EIO);
	assert_non_null(strstr(m.text, "none.ini"));
	agent_config_free(&cfg);
}

/* --- spool ---------------------------------------------------------------- */

static void test_spool_names_and_moves(void **state)
{
	(void)state;
	char sp[1024], out[1100], sent[1100], path[1300];
	rete_msg m;
	snprintf(sp, sizeof(sp), "%s/spool", dir);
	assert_int_equal(agent_spool_prepare(sp, &m), RETE_OK);
	snprintf(out, sizeof(out), "%s/outbox", sp);
	snprintf(sent, sizeof(sent), "%s/sent", sp);

	assert_true(agent_spool_name_ok("referral.json"));
	assert_false(agent_spool_name_ok(".referral.json"));
	assert_false(agent_spool_name_ok("referral.json.tmp"));
	assert_false(agent_spool_name_ok(""));

	assert_int_equal(agent_spool_write(out, "a.json", "one", 3, &m), RETE_OK);
	assert_int_equal(agent_spool_write(out, ".b.json.tmp", "x", 1, &m), RETE_OK);
	char **names;
	size_t n;
	assert_int_equal(agent_spool_list(out, &names, &n, &m), RETE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(names[0], "a.json");
	agent_spool_list_free(names, n);

	/* First answer: its own name, the companion beside it. */
	static const char comp_a[] = "{\"file\": \"a.json\"}\n";
	agent_spool_answer ans = {.from_dir = out,
				  .name = "a.json",
				  .to_dir = sent,
				  .suffix = ".receipt.json",
				  .companion = comp_a,
				  .companion_len = strlen(comp_a)};
	assert_int_equal(agent_spool_answer_put(&ans, &m), RETE_OK);
	assert_string_equal(ans.used, "a.json");
	snprintf(path, sizeof(path), "%s/a.json", out);
	assert_int_equal(access(path, F_OK), -1);
	/* A second file of that name never overwrites the first. */
	assert_int_equal(agent_spool_write(out, "a.json", "two", 3, &m), RETE_OK);
	assert_int_equal(agent_spool_answer_put(&ans, &m), RETE_OK);
	assert_string_equal(ans.used, "a.json.2");
	snprintf(path, sizeof(path), "%s/a.json", sent);
	char *t = tu_read_file(path, NULL);
	assert_string_equal(t, "one");
	free(t);
	snprintf(path, sizeof(path), "%s/a.json.2", sent);
	t = tu_read_file(path, NULL);
	assert_string_equal(t, "two");
	free(t);
	snprintf(path, sizeof(path), "%s/a.json.2.receipt.json", sent);
	t = tu_read_file(path, NULL);
	assert_string_equal(t, comp_a);
	free(t);
	/* Nor a companion's name taken by someone else's file. */
	assert_int_equal(agent_spool_write(sent, "b.json.receipt.json", "theirs", 6, &m), RETE_OK);
	assert_int_equal(agent_spool_write(out, "b.json", "bee", 3, &m), RETE_OK);
	ans.name = "b.json";
	assert_int_equal(agent_spool_answer_put(&ans, &m), RETE_OK);
	assert_string_equal(ans.used, "b.json.2");
	snprintf(path, sizeof(path), "%s/b.json.receipt.json", sent);
	t = tu_read_file(path, NULL);
	assert_string_equal(t, "theirs");
	free(t);
	/* An answer cut short by a crash (companion written, file linked, not
	 * yet unlinked) is completed under the same name, not made twice. */
	static const char comp_c[] = "{\"file\": \"c.json\", \"messageId\": \"m-1\"}\n";
	assert_int_equal(agent_spool_write(out, "c.json", "three", 5, &m), RETE_OK);
	assert_int_equal(agent_spool_write(sent, "c.json.receipt.json", comp_c, strlen(comp_c), &m),
			 RETE_OK);
	char from[1300], to[1300];
	snprintf(from, sizeof(from), "%s/c.json", out);
	snprintf(to, sizeof(to), "%s/c.json", sent);
	assert_int_equal(link(from, to), 0);
	ans.name = "c.json";
	ans.id = "m-1";
	ans.companion = comp_c;
	ans.companion_len = strlen(comp_c);
	assert_int_equal(agent_spool_answer_put(&ans, &m), RETE_OK);
	assert_string_equal(ans.used, "c.json");
	assert_int_equal(access(from, F_OK), -1);
	assert_int_equal(access(to, F_OK), 0);
	snprintf(path, sizeof(path), "%s/c.json.2", sent);
	assert_int_equal(access(path, F_OK), -1);
	/* The same across file systems: a copy (another inode, the same
	 * content) beside our companion is the answer a crash cut short. */
	assert_int_equal(agent_spool_write(out, "e.json", "four", 4, &m), RETE_OK);
	assert_int_equal(agent_spool_write(sent, "e.json", "four", 4, &m), RETE_OK);
	static const char comp_e[] = "{\"file\": \"e.json\", \"messageId\": \"m-2\"}\n";
	assert_int_equal(agent_spool_write(sent, "e.json.receipt.json", comp_e, strlen(comp_e), &m),
			 RETE_OK);
	ans.name = "e.json";
	ans.id = "m-2";
	ans.companion = comp_e;
	ans.companion_len = strlen(comp_e);
	assert_int_equal(agent_spool_answer_put(&ans, &m), RETE_OK);
	assert_string_equal(ans.used, "e.json");
	snprintf(path, sizeof(path), "%s/e.json", out);
	assert_int_equal(access(path, F_OK), -1);
	snprintf(path, sizeof(path), "%s/e.json.2", sent);
	assert_int_equal(access(path, F_OK), -1);
	/* but another message's answer of that name is not ours: a new name */
	assert_int_equal(agent_spool_write(out, "e.json", "four", 4, &m), RETE_OK);
	ans.id = "m-3";
	assert_int_equal(agent_spool_answer_put(&ans, &m), RETE_OK);
	assert_string_equal(ans.used, "e.json.2");
	/* A file replaced after it was taken in: the fallback (what was sent)
	 * is answered, the new file stays where it is. */
	agent_spool_ident orig;
	char *data;
	size_t dlen;
	assert_int_equal(agent_spool_write(out, "d.json", "first", 5, &m), RETE_OK);
	assert_int_equal(agent_spool_read_ident(out, "d.json", 100, &data, &dlen, &orig, &m),
			 RETE_OK);
	free(data);
	assert_true(orig.have_hash);
	assert_int_equal(agent_spool_write(out, "d.json", "second", 6, &m), RETE_OK);
	ans.name = "d.json";
	ans.id = NULL;
	ans.companion = "{\"file\": \"d.json\"}\n";
	ans.companion_len = strlen(ans.companion);
	ans.orig = &orig;
	ans.fallback = "as sent";
	ans.fallback_len = 7;
	assert_int_equal(agent_spool_answer_put(&ans, &m), RETE_OK);
	assert_true(ans.replaced);
	assert_string_equal(ans.used, "d.json");
	snprintf(path, sizeof(path), "%s/d.json", sent);
	t = tu_read_file(path, NULL);
	assert_string_equal(t, "as sent");
	free(t);
	snprintf(path, sizeof(path), "%s/d.json", out);
	t = tu_read_file(path, NULL);
	assert_string_equal(t, "second");
	free(t);
	/* Gone, and nothing taken in: ENOENT, nothing written. */
	ans.name = "nothing.json";
	ans.orig = NULL;
	assert_int_equal(agent_spool_answer_put(&ans, &m), RETE_ENOENT);
	snprintf(path, sizeof(path), "%s/nothing.json.receipt.json", sent);
	assert_int_equal(access(path, F_OK), -1);
	/* Names: too long, not UTF-8, ignored. */
	char why[300], longname[240];
	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_string_equal(agent_spool_name_problem(longname, why, sizeof(why)), "name-too-long");
	assert_string_equal(agent_spool_name_problem("caf\xe9.json", why, sizeof(why)), "bad-name");
	assert_null(agent_spool_name_problem("caff\xc3\xa8.json", why, sizeof(why)));
	assert_true(agent_spool_name_ignored(".x.json"));
	assert_true(agent_spool_name_ignored("x.json.tmp"));
	json_t *jn = agent_spool_name_json("caf\xe9.json");
	assert_string_equal(json_string_value(jn), "caf\\xe9.json");
	json_decref(jn);
}

/* --- store ---------------------------------------------------------------- */

/* set_schema writes meta's "schema" record of the store in data as LMDB
 * holds it (NULL: removes it), as another version of the agent would */
static void set_schema(const char *data, const char *value)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val k = {6, (void *)"schema"};
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 32);
	assert_int_equal(mdb_env_open(env, data, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", MDB_CREATE, &dbi), 0);
	if (value) {
		MDB_val v = {strlen(value), (void *)value};
		assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	} else {
		assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* expect_schema: meta's "schema" record of the store in data, read as
 * LMDB holds it, is want */
static void expect_schema(const char *data, const char *want)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val k = {6, (void *)"schema"}, v;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 32);
	assert_int_equal(mdb_env_open(env, data, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	if (v.mv_size != strlen(want) || memcmp(v.mv_data, want, v.mv_size) != 0)
		fail_msg("the agent store records schema '%.*s', want '%s'", (int)v.mv_size,
			 (const char *)v.mv_data, want);
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

/* expect_refused: both a writer and a reader refuse the store in data with
 * err, and a sentence holding every one of the texts (NULL-terminated) */
static void expect_refused(const char *data, rete_err err, ...)
{
	for (int rdonly = 0; rdonly <= 1; rdonly++) {
		agent_db *db = NULL;
		rete_msg m;
		m.text[0] = '\0';
		rete_err got = agent_db_open(data, rdonly, 0, &db, &m);
		if (got != err)
			fail_msg("agent_db_open (%s) gave %s, want %s: %s",
				 rdonly ? "read-only" : "writer", rete_strerror(got),
				 rete_strerror(err), m.text);
		assert_null(db);
		va_list ap;
		va_start(ap, err);
		for (const char *t; (t = va_arg(ap, const char *)) != NULL;)
			if (strstr(m.text, t) == NULL)
				fail_msg("no '%s' in: %s", t, m.text);
		va_end(ap);
	}
}

/* The agent store records its schema; a store of a later schema (a newer
 * agent's) is refused by writer and reader alike, and left as it was; a
 * store of an earlier one, or from before the record, is read as it is,
 * and recorded only by the upgrade (agent_db_schema_record). */
static void test_db_schema(void **state)
{
	(void)state;
	char data[1024], want[16];
	agent_db *db = NULL;
	rete_msg m;
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(want, sizeof(want), "%d", AGENT_STORE_SCHEMA);

	assert_int_equal(agent_db_open(data, false, 1u << 20, &db, &m), RETE_OK);
	assert_int_equal(agent_db_put(db, AGENT_DB_META, "alarm", 5, "kept", 4, &m), RETE_OK);
	agent_db_close(&db);
	expect_schema(data, want);

	char later[16];
	snprintf(later, sizeof(later), "%d", AGENT_STORE_SCHEMA + 1);
	set_schema(data, later);
	char says[64];
	snprintf(says, sizeof(says), "has schema %s", later);
	expect_refused(data, RETE_EVERSION, data, says, "a newer rete-agent wrote it",
		       "Upgrades and downgrades", NULL);
	expect_schema(data, later); /* left as it was */

	set_schema(data, "2x");
	expect_refused(data, RETE_ECORRUPT, "is not a decimal number from 1 to", NULL);
	set_schema(data, "");
	expect_refused(data, RETE_ECORRUPT, "is not a decimal number from 1 to", NULL);

	/* schema 2 (the one before the outbox records' content hash): read as
	 * it is by a reader and by a writer (`rete-agent --trust`), which
	 * leave it of schema 2; a record of layout 2 is refused there, and
	 * comes only with the start's upgrade, which records schema 3 in the
	 * same transaction */
	set_schema(data, "2");
	assert_int_equal(agent_db_open(data, true, 0, &db, &m), RETE_OK);
	assert_int_equal(agent_db_schema_was(db), 2);
	agent_db_close(&db);
	expect_schema(data, "2");
	assert_int_equal(agent_db_open(data, false, 0, &db, &m), RETE_OK);
	assert_int_equal(agent_db_schema_was(db), 2);
	assert_int_equal(agent_db_put(db, AGENT_DB_PINS, "p", 1, "k", 1, &m), RETE_OK);
	uint8_t hash[RETE_HASH_LEN];
	memset(hash, 3, sizeof(hash));
	agent_outrec r = {.state = AGENT_OUT_MINTED, .minted_at = 1, .have_content = true};
	snprintf(r.id, sizeof(r.id), "m-2");
	assert_int_equal(agent_db_outbox_put(db, "a.json", hash, &r, &m), RETE_EINVAL);
	assert_non_null(strstr(m.text, "the store records schema 2"));
	r.have_content = false; /* layout 1: what a schema-2 agent reads */
	assert_int_equal(agent_db_outbox_put(db, "a.json", hash, &r, &m), RETE_OK);
	assert_int_equal(agent_db_schema_record(db, &m), RETE_EINVAL); /* no transaction */
	agent_db_close(&db);
	expect_schema(data, "2");
	/* an upgrade that does not commit leaves it of schema 2 */
	assert_int_equal(agent_db_open(data, false, 0, &db, &m), RETE_OK);
	assert_int_equal(agent_db_begin(db, &m), RETE_OK);
	assert_int_equal(agent_db_schema_record(db, &m), RETE_OK);
	r.have_content = true;
	assert_int_equal(agent_db_outbox_put(db, "a.json", hash, &r, &m), RETE_OK);
	agent_db_abort(db);
	assert_int_equal(agent_db_outbox_put(db, "a.json", hash, &r, &m), RETE_EINVAL);
	agent_db_close(&db);
	expect_schema(data, "2");
	assert_int_equal(agent_db_open(data, false, 0, &db, &m), RETE_OK);
	assert_int_equal(agent_db_begin(db, &m), RETE_OK);
	assert_int_equal(agent_db_schema_record(db, &m), RETE_OK);
	assert_int_equal(agent_db_outbox_put(db, "a.json", hash, &r, &m), RETE_OK);
	assert_int_equal(agent_db_commit(db, &m), RETE_OK);
	assert_int_equal(agent_db_schema_was(db), 2);
	agent_db_close(&db);
	expect_schema(data, want);
	assert_int_equal(agent_db_open(data, false, 0, &db, &m), RETE_OK);
	assert_int_equal(agent_db_schema_was(db), AGENT_STORE_SCHEMA);
	assert_int_equal(agent_db_outbox_del(db, "a.json", hash, &m), RETE_OK);
	agent_db_close(&db);

	/* an earlier recorded schema: read as it is, left so by a writer */
	set_schema(data, "1");
	assert_int_equal(agent_db_open(data, true, 0, &db, &m), RETE_OK);
	agent_db_close(&db);
	expect_schema(data, "1");
	assert_int_equal(agent_db_open(data, false, 0, &db, &m), RETE_OK);
	assert_int_equal(agent_db_schema_was(db), 1);
	agent_db_close(&db);
	expect_schema(data, "1");

	/* an older agent's store: no record. Read as it is, by a writer too;
	 * recorded by the upgrade. */
	set_schema(data, NULL);
	assert_int_equal(agent_db_open(data, true, 0, &db, &m), RETE_OK);
	rete_buf v;
	assert_int_equal(agent_db_get(db, AGENT_DB_META, "schema", 6, &v, &m), RETE_ENOENT);
	assert_int_equal(agent_db_get(db, AGENT_DB_META, "alarm", 5, &v, &m), RETE_OK);
	assert_int_equal(v.len, 4);
	rete_buf_free(&v);
	agent_db_close(&db);
	assert_int_equal(agent_db_open(data, false, 0, &db, &m), RETE_OK);
	assert_int_equal(agent_db_schema_was(db), 0);
	assert_int_equal(agent_db_get(db, AGENT_DB_META, "schema", 6, &v, &m), RETE_ENOENT);
	assert_int_equal(agent_db_begin(db, &m), RETE_OK);
	assert_int_equal(agent_db_schema_record(db, &m), RETE_OK);
	assert_int_equal(agent_db_commit(db, &m), RETE_OK);
	agent_db_close(&db);
	expect_schema(data, want);
}

static void test_db_records_and_growth(void **state)
{
	(void)state;
	char data[1024];
	agent_db *db = NULL, *ro = NULL;
	rete_msg m;
	uint8_t hash[RETE_HASH_LEN];
	snprintf(data, sizeof(data), "%s/data", dir);

	assert_int_equal(agent_db_open(data, true, 0, &ro, &m), RETE_ENOENT);
	assert_int_equal(agent_db_open(data, false, 1u << 20, &db, &m), RETE_OK);
	/* a store created now is of this schema, not one to upgrade */
	assert_int_equal(agent_db_schema_was(db), AGENT_STORE_SCHEMA);
	memset(hash, 7, sizeof(hash));
	agent_outrec r = {.state = AGENT_OUT_MINTED, .minted_at = 1763800000123};
	snprintf(r.id, sizeof(r.id), "m-0001");
	assert_int_equal(agent_db_outbox_put(db, "a.json", hash, &r, &m), RETE_OK);
	agent_outrec got;
	assert_int_equal(agent_db_outbox_get(db, "a.json", hash, &got, &m), RETE_OK);
	assert_int_equal(got.state, AGENT_OUT_MINTED);
	assert_string_equal(got.id, "m-0001");
	assert_int_equal(got.minted_at, 1763800000123);
	assert_int_equal(got.signed_msg.len, 0);
	agent_outrec_free(&got);
	/* Another content under the same name is another record. */
	uint8_t other[RETE_HASH_LEN];
	memset(other, 8, sizeof(other));
	assert_int_equal(agent_db_outbox_get(db, "a.json", other, &got, &m), RETE_ENOENT);

	/* Signed: the bytes come back exactly. */
	uint8_t sig[300], seal[5000];
	for (size_t i = 0; i < sizeof(sig); i++)
		sig[i] = (uint8_t)(i * 7);
	for (size_t i = 0; i < sizeof(seal); i++)
		seal[i] = (uint8_t)(i * 13);
	r.state = AGENT_OUT_SIGNED;
	r.signed_msg = (rete_buf){sig, sizeof(sig)};
	r.sealed = (rete_buf){seal, sizeof(seal)};
	assert_int_equal(agent_db_outbox_put(db, "a.json", hash, &r, &m), RETE_OK);
	assert_int_equal(agent_db_outbox_get(db, "a.json", hash, &got, &m), RETE_OK);
	assert_int_equal(got.state, AGENT_OUT_SIGNED);
	assert_memory_equal(got.signed_msg.data, sig, sizeof(sig));
	assert_memory_equal(got.sealed.data, seal, sizeof(seal));
	assert_false(got.have_content);
	agent_outrec_free(&got);

	/* With the content hash of the file (schema 3, layout 2); without it
	 * the layout of schema 2 (1), which is read as it is. */
	uint8_t okey[64];
	rete_buf raw;
	memcpy(okey, "a.json", 7);
	memcpy(okey + 7, hash, RETE_HASH_LEN);
	assert_int_equal(agent_db_get(db, AGENT_DB_OUTBOX, okey, 7 + RETE_HASH_LEN, &raw, &m),
			 RETE_OK);
	assert_true(agent_db_outbox_layout1(raw.data, raw.len));
	rete_buf_free(&raw);
	r.have_content = true;
	memset(r.content, 0x5c, sizeof(r.content));
	assert_int_equal(agent_db_outbox_put(db, "a.json", hash, &r, &m), RETE_OK);
	assert_int_equal(agent_db_get(db, AGENT_DB_OUTBOX, okey, 7 + RETE_HASH_LEN, &raw, &m),
			 RETE_OK);
	assert_false(agent_db_outbox_layout1(raw.data, raw.len));
	assert_int_equal(raw.len,
			 2 + 2 + 6 + 8 + RETE_HASH_LEN + 4 + sizeof(sig) + 4 + sizeof(seal));
	rete_buf_free(&raw);
	assert_int_equal(agent_db_outbox_get(db, "a.json", hash, &got, &m), RETE_OK);
	assert_true(got.have_content);
	assert_memory_equal(got.content, r.content, RETE_HASH_LEN);
	assert_string_equal(got.id, "m-0001");
	assert_int_equal(got.minted_at, 1763800000123);
	assert_memory_equal(got.signed_msg.data, sig, sizeof(sig));
	assert_memory_equal(got.sealed.data, seal, sizeof(seal));
	agent_outrec_free(&got);

	/* A transaction larger than the 1 MiB map: the first attempt fails with
	 * RETE_EFULL and grows the map; the redo commits. */
	static uint8_t big[64 << 10];
	memset(big, 0x42, sizeof(big));
	rete_err err = RETE_EFULL;
	int attempts = 0;
	while (err == RETE_EFULL && attempts < 8) {
		attempts++;
		err = agent_db_begin(db, &m);
		for (unsigned i = 0; err == RETE_OK && i < 48; i++) {
			uint8_t key[8];
			agent_db_index_key(key, i);
			err =
			    agent_db_put(db, AGENT_DB_META, key, sizeof(key), big, sizeof(big), &m);
		}
		if (err == RETE_OK)
			err = agent_db_commit(db, &m);
		else
			agent_db_abort(db);
	}
	assert_int_equal(err, RETE_OK);
	assert_true(attempts > 1);

	/* A reader in the same folder sees all of it. */
	assert_int_equal(agent_db_open(data, true, 0, &ro, &m), RETE_OK);
	rete_buf v;
	uint8_t key[8];
	agent_db_index_key(key, 47);
	assert_int_equal(agent_db_get(ro, AGENT_DB_META, key, sizeof(key), &v, &m), RETE_OK);
	assert_int_equal(v.len, sizeof(big));
	rete_buf_free(&v);
	assert_int_equal(agent_db_outbox_del(db, "a.json", hash, &m), RETE_OK);
	assert_int_equal(agent_db_outbox_get(ro, "a.json", hash, &got, &m), RETE_ENOENT);
	agent_db_close(&ro);
	agent_db_close(&db);
	assert_null(db);
}

/* --- referral records --------------------------------------------------------- */

static void test_track_history(void **state)
{
	(void)state;
	char data[1024];
	agent_db *db = NULL;
	rete_msg m;
	snprintf(data, sizeof(data), "%s/track", dir);
	assert_int_equal(agent_db_open(data, false, 0, &db, &m), RETE_OK);

	Rete__Message ref = RETE__MESSAGE__INIT;
	Rete__Referral rb = RETE__REFERRAL__INIT;
	ref.id = "r-1";
	ref.sender = "social.mantova";
	ref.recipient = "cpi.mantova";
	ref.case_id = "mn-1";
	rb.service = "employment-orientation";
	rb.priority = RETE__PRIORITY__PRIORITY_URGENT;
	ref.body_case = RETE__MESSAGE__BODY_REFERRAL;
	ref.referral = &rb;
	assert_int_equal(agent_track_apply(db, "social.mantova", &ref, 1, 1000, &m), RETE_OK);

	Rete__Message del = RETE__MESSAGE__INIT;
	Rete__Delivery db_ = RETE__DELIVERY__INIT;
	del.id = "delivery-1";
	del.sender = "broker.mantova";
	db_.index = 1;
	db_.message_id = "r-1";
	db_.referral_id = "r-1";
	db_.delivered_at = 2000;
	del.body_case = RETE__MESSAGE__BODY_DELIVERY;
	del.delivery = &db_;

	Rete__Message up = RETE__MESSAGE__INIT;
	Rete__ReferralUpdate ub = RETE__REFERRAL_UPDATE__INIT;
	up.id = "u-1";
	up.sender = "cpi.mantova";
	ub.referral_id = "r-1";
	ub.status = RETE__STATUS__STATUS_ACCEPTED;
	up.body_case = RETE__MESSAGE__BODY_UPDATE;
	up.update = &ub;

	/* The accept is logged (3) before the delivery record (4) reaches us:
	 * the later "received" must not undo "accepted". Twice each: no
	 * change the second time. */
	for (int k = 0; k < 2; k++) {
		assert_int_equal(agent_track_apply(db, "social.mantova", &up, 3, 3000, &m),
				 RETE_OK);
		assert_int_equal(agent_track_apply(db, "social.mantova", &del, 4, 4000, &m),
				 RETE_OK);
	}
	json_t *rec = NULL;
	assert_int_equal(agent_track_get(db, "r-1", &rec, &m), RETE_OK);
	assert_string_equal(json_string_value(json_object_get(rec, "status")), "accepted");
	assert_string_equal(json_string_value(json_object_get(rec, "role")), "requester");
	assert_string_equal(json_string_value(json_object_get(rec, "priority")), "urgent");
	assert_int_equal(json_array_size(json_object_get(rec, "history")), 3);
	json_decref(rec);

	/* The performer's view of the same referral starts as received. */
	assert_int_equal(agent_track_apply(db, "cpi.mantova", &ref, 1, 1000, &m), RETE_OK);
	assert_int_equal(agent_track_get(db, "r-1", &rec, &m), RETE_OK);
	json_decref(rec);
	json_t *all = NULL;
	assert_int_equal(agent_track_all(db, &all, &m), RETE_OK);
	assert_int_equal(json_array_size(all), 1);
	json_decref(all);
	assert_int_equal(agent_track_get(db, "r-2", &rec, &m), RETE_ENOENT);
	agent_db_close(&db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_config_paths_and_defaults, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_config_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_spool_names_and_moves, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_db_records_and_growth, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_db_schema, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_track_history, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
