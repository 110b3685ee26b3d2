/* test_delivery_proof.c — a delivery stands on the recipient's signature,
 * and a delivered entry on the log (attack report of session 12, findings
 * 2 and 5), with the real broker and agents; the dishonest broker is the
 * operator editing its stopped store:
 *
 *   unsigned_delivery   after one honest delivery (its Delivery carries
 *                       cpi's signed ACK), the operator takes social's next
 *                       referral off cpi's queue and logs a broker-signed
 *                       Delivery of it with no signed ACK (cpi's agent is
 *                       down and never saw it). social's agent does not
 *                       settle on it: it logs the alarm at error level
 *                       naming cpi and the entry, keeps the message held,
 *                       the referral stays "requested", `rete status`
 *                       shows the alarm; `rete audit verify` fails (exit 1)
 *                       naming the Delivery entry, since the same log holds
 *                       a signed acknowledgement before it
 *   delivered_not_logged cpi's agent is down while two referrals are logged;
 *                       the operator rewrites, in the stopped store, the
 *                       first one's loggedAt (a day earlier) and the
 *                       second one's index (+1000), without touching the
 *                       tree. cpi's agent takes both (their signatures
 *                       hold), and its witness then asks for the inclusion
 *                       proof of what it was delivered against a checkpoint
 *                       it verified: the first is not the entry the log
 *                       holds at that index (WITNESS ALARM, error level,
 *                       `rete status` shows it); the second is at an index
 *                       no checkpoint reaches (the patience warning). Once
 *                       the true entries are back in the store, the second
 *                       message is delivered at its real index: a warning
 *                       names both indexes.
 *   early_delivery      the Delivery reaches the sender's agent before the
 *                       message's receipt: social's agent signs and submits
 *                       dp-early-1 to a broker that does not answer (frozen)
 *                       and is stopped; its bytes reach the log on a
 *                       connection that is gone before the receipt comes
 *                       (the test sends those very bytes as social, and
 *                       drops the receipt); cpi
 *                       takes and acks it. Social's agent, started again,
 *                       gets the Delivery (queued for it) before the receipt
 *                       of its resubmission: it keeps the Delivery, and once
 *                       the receipt comes the message is settled as any
 *                       delivered one (no longer held, the referral
 *                       `received`, its receipt in sent/), with no alarm
 *   early_forged        the same, cpi's agent down, and the operator logs a
 *                       Delivery of dp-early-2 carrying cpi's genuine ack of
 *                       another entry (dp-ref-1's), replayed: kept as early,
 *                       then, once the receipt names another entry, the
 *                       DELIVERY ALARM, not a settlement
 *   early_unsigned      the same with a Delivery that carries no signed ack
 *                       (the entry taken off cpi's queue): the alarm once
 *                       the receipt comes
 *   early_unsigned_fresh the same where social's agent never verified a
 *                       signed ack before: still the alarm (whether one is
 *                       due is the receipt's to say), not a settlement
 *
 * Waits are for log lines and files with deadlines, never sleeps.
 */
#define _GNU_SOURCE
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "itest.h"
#include "store.h"
/* the agent's store, read as the test's evidence of what the agent signed
 * (as test_agent_parts does) */
#include "../../agents/agent/agent_db.c"

#define DP_WAIT 60000

static int teardown(void **state)
{
	return it_teardown(state);
}

/* What the log says of one message: where it was logged, and the index
 * of its Delivery (0: none yet) and whether that one carries an ack. */
struct dp_find {
	const char *msg_id;
	uint64_t logged;
	bool have_logged;
	uint64_t delivery;
	bool signed_ack;
};

static void dp_on_entry(void *ctx, uint64_t index, const Rete__Message *msg)
{
	struct dp_find *d = ctx;
	if (msg->body_case == RETE__MESSAGE__BODY_REFERRAL && strcmp(msg->id, d->msg_id) == 0) {
		d->logged = index;
		d->have_logged = true;
	}
	if (msg->body_case == RETE__MESSAGE__BODY_DELIVERY &&
	    strcmp(msg->delivery->message_id, d->msg_id) == 0) {
		d->delivery = index;
		d->signed_ack = msg->delivery->ack != NULL;
	}
}

/* dp_until_logged polls the log (the agents work on their own) until
 * message id is logged and, with delivered, its Delivery too. */
static struct dp_find dp_until_logged(it_net *n, const char *id, bool delivered)
{
	struct dp_find d = {.msg_id = id};
	int64_t end = it_mono_ms() + it_scaled_ms(DP_WAIT);
	for (;;) {
		d.have_logged = false;
		d.delivery = 0;
		assert_true(it_log_each(n, dp_on_entry, &d) >= 0);
		if (d.have_logged && (!delivered || d.delivery != 0))
			return d;
		if (it_mono_ms() >= end) {
			it_show(n, "broker.log");
			fail_msg("message %s was never %s", id, delivered ? "delivered" : "logged");
		}
		it_nap(100); /* polls the log: no event to wait on */
	}
}

/* dp_expect waits until party p's log holds needle (want times), failing
 * the test with the log shown when it never does. */
static void dp_expect(it_net *n, int p, const char *needle, size_t want)
{
	char log[1300];
	tu_path(log, sizeof(log), "%s/%s.log", n->dir, it_party_ids[p]);
	if (!it_wait_occurrences(log, needle, want, DP_WAIT)) {
		char name[200];
		snprintf(name, sizeof(name), "%s.log", it_party_ids[p]);
		it_show(n, name);
		fail_msg("%s's log never said: %s", it_party_ids[p], needle);
	}
}

/* dp_one_delivered starts the broker, social and cpi; dp-ref-1 is
 * delivered honestly (its Delivery carries cpi's signed ACK: *one); then
 * cpi's agent is stopped when cpi_down. */
static void dp_one_delivered(it_net *n, struct dp_find *one, bool cpi_down)
{
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI));
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "dp-ref-1");
	*one = dp_until_logged(n, "dp-ref-1", true);
	assert_true(one->signed_ack);
	dp_expect(n, IT_SOCIAL, "message dp-ref-1 delivered: no longer held", 1);
	if (cpi_down)
		assert_true(it_stop(&n->agent_pid[IT_CPI], SIGTERM, it_wait_ms()) != -1);
}

/* dp_delivered_then_held: dp_one_delivered; then, cpi's agent down,
 * social's dp-ref-2 is logged and receipted (*two). */
static void dp_delivered_then_held(it_net *n, struct dp_find *one, struct dp_find *two)
{
	dp_one_delivered(n, one, true);
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "dp-ref-2");
	*two = dp_until_logged(n, "dp-ref-2", false);
	char sent[1300];
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	int64_t end = it_mono_ms() + it_scaled_ms(DP_WAIT);
	while (tu_count_suffix(sent, ".receipt.json") < 2 && it_mono_ms() < end)
		it_nap(50); /* a file another process writes */
	assert_int_equal(tu_count_suffix(sent, ".receipt.json"), 2);
}

/* dp_forge_delivery is the operator's edit of the stopped broker's store:
 * entry idx (an agency's message to `recipient`) leaves the recipient's
 * queue without any ACK, and a Delivery of it with no signed
 * acknowledgement is logged, signed with the broker key, to its sender.
 * Returns the Delivery's index. */
static uint64_t dp_forge_delivery(it_net *n, uint64_t idx, const char *recipient)
{
	rete_msg m = {{0}};
	rete_store *s = NULL;
	assert_int_equal(rete_store_open(&s, n->data, 0, &m), RETE_OK);
	rete_buf raw = {0};
	assert_int_equal(rete_store_entry(s, NULL, idx, &raw, &m), RETE_OK);
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, raw.len, raw.data);
	assert_non_null(le);
	Rete__Message *orig = NULL;
	assert_int_equal(
	    rete_signed_decode(le->signed_message.data, le->signed_message.len, NULL, &orig, &m),
	    RETE_OK);
	Rete__Message msg = RETE__MESSAGE__INIT;
	Rete__Delivery d = RETE__DELIVERY__INIT;
	char id[64];
	snprintf(id, sizeof(id), "delivery-%" PRIu64, idx);
	msg.id = id;
	msg.sender = IT_BROKER_ID;
	msg.recipient = orig->sender;
	msg.case_id = orig->case_id;
	msg.origin = IT_ORIGIN;
	msg.created_at = le->logged_at + 1000;
	d.index = idx;
	d.message_id = orig->id;
	d.referral_id = orig->id;
	d.delivered_at = le->logged_at + 1000;
	msg.body_case = RETE__MESSAGE__BODY_DELIVERY;
	msg.delivery = &d; /* and no ack */
	rete_buf b = {0};
	assert_int_equal(rete_message_sign(&msg, n->broker, &b, &m), RETE_OK);
	rete_store_op ops[2];
	memset(ops, 0, sizeof(ops));
	ops[0].kind = RETE_STORE_OP_ACK;
	ops[0].in.recipient = recipient;
	ops[0].in.index = idx;
	ops[1].kind = RETE_STORE_OP_APPEND;
	ops[1].in.signed_message = b.data;
	ops[1].in.len = b.len;
	ops[1].in.logged_at = le->logged_at + 1000;
	assert_int_equal(rete_store_commit(s, ops, 2, &m), RETE_OK);
	assert_true(ops[0].was_present);
	assert_int_equal(ops[1].status, RETE_STORE_ACCEPTED);
	uint64_t at = ops[1].index;
	rete_buf_free(&b);
	rete__message__free_unpacked(orig, NULL);
	rete__log_entry__free_unpacked(le, NULL);
	rete_buf_free(&raw);
	rete_store_close(&s);
	return at;
}

static void test_unsigned_delivery(void **state)
{
	it_net *n = it_net_new("dp-unsigned", NULL);
	assert_non_null(n);
	*state = n;
	struct dp_find one, two;
	dp_delivered_then_held(n, &one, &two);

	/* the auditor at a distance verifies the log so far and keeps its
	 * state (which says a signed acknowledgement was seen) */
	char ini[1300], st[1300];
	assert_int_equal(it_audit_ini(n, ini, sizeof(ini), NULL), 0);
	tu_path(st, sizeof(st), "%s/audit.state", n->dir);
	char *out = NULL;
	int rc = tu_run(&out, "'%s/rete' audit verify --broker '%s' -c '%s' --state '%s' 2>&1",
			n->bin, n->listen, ini, st);
	if (rc != 0)
		fprintf(stderr, "rete audit verify (remote): %s\n", out ? out : "");
	assert_int_equal(rc, 0);
	free(out);
	out = NULL;

	/* the operator's edit: a Delivery cpi never signed */
	assert_true(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) != -1);
	uint64_t forged = dp_forge_delivery(n, two.logged, it_party_ids[IT_CPI]);
	assert_true(it_broker_start(n));

	/* social's agent: the alarm, and the message still held */
	char want[300];
	snprintf(
	    want, sizeof(want),
	    "social.mantova error: DELIVERY ALARM: the broker logged a delivery to cpi.mantova "
	    "that cpi.mantova did not sign (entry %" PRIu64 ")",
	    forged);
	dp_expect(n, IT_SOCIAL, want, 1);
	char log[1300];
	tu_path(log, sizeof(log), "%s/%s.log", n->dir, it_party_ids[IT_SOCIAL]);
	assert_int_equal(tu_occurrences(log, "message dp-ref-2 delivered: no longer held"), 0);

	/* rete status: the alarm first, the referral not received */
	rc = tu_run(&out, "'%s/rete' status -c '%s/agents/social.mantova/agent.ini' --timeout 0",
		    n->bin, n->dir);
	fprintf(stderr, "rete status:\n%s\n", out ? out : "");
	assert_int_equal(rc, 0);
	snprintf(want, sizeof(want),
		 "DELIVERY ALARM: the broker logged a delivery to cpi.mantova that cpi.mantova "
		 "did not sign (entry %" PRIu64 ")",
		 forged);
	assert_non_null(strstr(out, want));
	const char *line = strstr(out, "dp-ref-2  to cpi.mantova");
	assert_non_null(line);
	assert_non_null(strstr(line, "status requested"));
	free(out);
	out = NULL;
	rc = tu_run(&out,
		    "'%s/rete' status -c '%s/agents/social.mantova/agent.ini' --json "
		    "--timeout 0",
		    n->bin, n->dir);
	assert_int_equal(rc, 0);
	json_t *doc = json_loads(out, 0, NULL);
	assert_non_null(doc);
	json_t *alarms = json_object_get(doc, "deliveryAlarms");
	assert_true(json_is_array(alarms) && json_array_size(alarms) == 1);
	json_t *a0 = json_array_get(alarms, 0);
	assert_string_equal(json_string_value(json_object_get(a0, "messageId")), "dp-ref-2");
	assert_string_equal(json_string_value(json_object_get(a0, "recipient")), "cpi.mantova");
	json_decref(doc);
	free(out);
	out = NULL;

	/* the auditor: a failure naming the Delivery entry */
	rc = it_audit_verify(n, &out);
	fprintf(stderr, "rete audit verify: %s\n", out ? out : "");
	assert_int_equal(rc, 1);
	snprintf(want, sizeof(want), "entry %" PRIu64 ":", forged);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "no acknowledgement signed by"));
	free(out);
	out = NULL;

	/* the auditor at a distance, resuming from its state: the same
	 * failure (a later referral makes the broker sign a checkpoint that
	 * covers the forged entry) */
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "dp-ref-6");
	dp_until_logged(n, "dp-ref-6", false);
	rc = tu_run(&out, "'%s/rete' audit verify --broker '%s' -c '%s' --state '%s' 2>&1", n->bin,
		    n->listen, ini, st);
	fprintf(stderr, "rete audit verify (remote, resumed): %s\n", out ? out : "");
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, "no acknowledgement signed by"));
	free(out);
}

/* dp_entry reads the bytes of log entry idx from the stopped broker's
 * store. */
static rete_buf dp_entry(it_net *n, uint64_t idx)
{
	rete_msg m = {{0}};
	rete_store *s = NULL;
	rete_buf raw = {0};
	assert_int_equal(rete_store_open(&s, n->data, RETE_STORE_RDONLY, &m), RETE_OK);
	assert_int_equal(rete_store_entry(s, NULL, idx, &raw, &m), RETE_OK);
	rete_store_close(&s);
	return raw;
}

/* dp_rewrite puts, behind the store's back, entry idx's bytes with its
 * loggedAt moved by shift_ms and its index by shift_index (the tree and
 * checkpoints untouched: what a broker that shows a recipient another
 * history would deliver). */
static void dp_rewrite(it_net *n, uint64_t idx, const rete_buf *orig, int64_t shift_ms,
		       uint64_t shift_index)
{
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, orig->len, orig->data);
	assert_non_null(le);
	le->logged_at += shift_ms;
	le->index += shift_index;
	size_t len = rete__log_entry__get_packed_size(le);
	uint8_t *buf = malloc(len);
	assert_non_null(buf);
	rete__log_entry__pack(le, buf);
	uint8_t key[8];
	for (int i = 0; i < 8; i++)
		key[i] = (uint8_t)(idx >> (56 - 8 * i));
	tu_raw_put(n->data, "entries", key, sizeof(key), buf, len);
	free(buf);
	rete__log_entry__free_unpacked(le, NULL);
}

static void test_delivered_not_logged(void **state)
{
	it_net *n = it_net_new("dp-notlogged", NULL);
	assert_non_null(n);
	*state = n;
	const char *cpi_extra = "witness_patience = 4s\n";
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start_ex(n, IT_CPI, cpi_extra));

	/* an honest delivery first: cpi's witness has a verified checkpoint */
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "dp-ref-3");
	dp_until_logged(n, "dp-ref-3", true);

	assert_true(it_stop(&n->agent_pid[IT_CPI], SIGTERM, it_wait_ms()) != -1);
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "dp-ref-4");
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "dp-ref-5");
	struct dp_find four = dp_until_logged(n, "dp-ref-4", false);
	struct dp_find five = dp_until_logged(n, "dp-ref-5", false);

	assert_true(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) != -1);
	rete_buf e4 = dp_entry(n, four.logged), e5 = dp_entry(n, five.logged);
	dp_rewrite(n, four.logged, &e4, -86400000, 0);
	dp_rewrite(n, five.logged, &e5, 0, 1000);
	assert_true(it_broker_start(n));
	assert_true(it_agent_start_ex(n, IT_CPI, cpi_extra));

	/* the witness: entry four is not in the log as delivered */
	char want[400];
	snprintf(want, sizeof(want),
		 "cpi.mantova error: WITNESS ALARM: log entry %" PRIu64
		 " delivered to this agent (referral dp-ref-4 from social.mantova",
		 four.logged);
	dp_expect(n, IT_CPI, want, 1);
	/* entry five, at an index no checkpoint reaches: the patience */
	snprintf(want, sizeof(want),
		 "cpi.mantova warning: witness: delivered entry %" PRIu64 " (referral dp-ref-5 "
		 "from social.mantova) has waited",
		 five.logged + 1000);
	dp_expect(n, IT_CPI, want, 1);

	char *out = NULL;
	int rc = tu_run(&out, "'%s/rete' status -c '%s/agents/cpi.mantova/agent.ini' --timeout 0",
			n->bin, n->dir);
	fprintf(stderr, "rete status:\n%s\n", out ? out : "");
	assert_int_equal(rc, 0);
	snprintf(want, sizeof(want), "WITNESS ALARM: log entry %" PRIu64 " delivered to this agent",
		 four.logged);
	assert_non_null(strstr(out, want));
	free(out);

	/* the true entries back: entry five comes at its real index, and the
	 * agent says it had it at another one */
	assert_true(it_stop(&n->agent_pid[IT_CPI], SIGTERM, it_wait_ms()) != -1);
	assert_true(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) != -1);
	uint8_t key[8];
	for (int i = 0; i < 8; i++)
		key[i] = (uint8_t)(four.logged >> (56 - 8 * i));
	tu_raw_put(n->data, "entries", key, sizeof(key), e4.data, e4.len);
	for (int i = 0; i < 8; i++)
		key[i] = (uint8_t)(five.logged >> (56 - 8 * i));
	tu_raw_put(n->data, "entries", key, sizeof(key), e5.data, e5.len);
	rete_buf_free(&e4);
	rete_buf_free(&e5);
	assert_true(it_broker_start(n));
	assert_true(it_agent_start_ex(n, IT_CPI, cpi_extra));
	snprintf(want, sizeof(want),
		 "cpi.mantova warning: witness: log entry %" PRIu64
		 " is message dp-ref-5 from social.mantova, which this agent was delivered "
		 "before as log entry %" PRIu64,
		 five.logged, five.logged + 1000);
	dp_expect(n, IT_CPI, want, 1);
}

/* dp_replay_delivery is the operator's edit of the stopped broker's store:
 * a Delivery, signed with the broker key, to the sender of entry e, that
 * says message `id` (entry e's, or another's) was delivered as entry d1's
 * index, carrying the recipient's genuine signed acknowledgement copied
 * from d1 (an honest Delivery in the log). Returns its index. */
static uint64_t dp_replay_delivery(it_net *n, uint64_t e, const char *id, uint64_t d1)
{
	rete_msg m = {{0}};
	rete_store *s = NULL;
	rete_buf raw = {0}, rawd = {0};
	assert_int_equal(rete_store_open(&s, n->data, 0, &m), RETE_OK);
	assert_int_equal(rete_store_entry(s, NULL, e, &raw, &m), RETE_OK);
	assert_int_equal(rete_store_entry(s, NULL, d1, &rawd, &m), RETE_OK);
	Rete__LogEntry *le = rete__log_entry__unpack(NULL, raw.len, raw.data);
	Rete__LogEntry *led = rete__log_entry__unpack(NULL, rawd.len, rawd.data);
	assert_non_null(le);
	assert_non_null(led);
	Rete__Message *orig = NULL, *hon = NULL;
	assert_int_equal(
	    rete_signed_decode(le->signed_message.data, le->signed_message.len, NULL, &orig, &m),
	    RETE_OK);
	assert_int_equal(
	    rete_signed_decode(led->signed_message.data, led->signed_message.len, NULL, &hon, &m),
	    RETE_OK);
	assert_int_equal(hon->body_case, RETE__MESSAGE__BODY_DELIVERY);
	assert_non_null(hon->delivery->ack);
	Rete__Message msg = RETE__MESSAGE__INIT;
	Rete__Delivery dv = RETE__DELIVERY__INIT;
	char mid[64];
	snprintf(mid, sizeof(mid), "delivery-replayed-%" PRIu64, e);
	int64_t at = le->logged_at + 1000;
	msg.id = mid;
	msg.sender = IT_BROKER_ID;
	msg.recipient = orig->sender;
	msg.case_id = orig->case_id;
	msg.origin = IT_ORIGIN;
	msg.created_at = at;
	dv.index = hon->delivery->index; /* the entry the recipient did ack */
	dv.message_id = (char *)id;	 /* ... said of message id */
	dv.referral_id = (char *)id;
	dv.delivered_at = at;
	dv.ack = hon->delivery->ack; /* its genuine signature, replayed */
	msg.body_case = RETE__MESSAGE__BODY_DELIVERY;
	msg.delivery = &dv;
	rete_buf b = {0};
	assert_int_equal(rete_message_sign(&msg, n->broker, &b, &m), RETE_OK);
	rete_store_op op;
	memset(&op, 0, sizeof(op));
	op.kind = RETE_STORE_OP_APPEND;
	op.in.signed_message = b.data;
	op.in.len = b.len;
	op.in.logged_at = at;
	assert_int_equal(rete_store_commit(s, &op, 1, &m), RETE_OK);
	assert_int_equal(op.status, RETE_STORE_ACCEPTED);
	rete_buf_free(&b);
	rete__message__free_unpacked(orig, NULL);
	rete__message__free_unpacked(hon, NULL);
	rete__log_entry__free_unpacked(le, NULL);
	rete__log_entry__free_unpacked(led, NULL);
	rete_buf_free(&raw);
	rete_buf_free(&rawd);
	rete_store_close(&s);
	return op.index;
}

/* dp_replay_run: dp-ref-1 delivered honestly (cpi's signed ack), dp-ref-2
 * receipted and held (cpi stopped); then the operator logs a Delivery
 * carrying cpi's ack of dp-ref-1's entry, saying message `id` (rev-deliv
 * finding 1). The sender's agent settles nothing on it (say: its line), and
 * rete audit verify fails on that entry with `audit` (local, and at a
 * distance). */
static void dp_replay_run(it_net *n, const char *id, const char *say, const char *audit)
{
	struct dp_find one, two;
	dp_delivered_then_held(n, &one, &two);
	assert_true(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) != -1);
	uint64_t e = strcmp(id, "dp-ref-2") == 0 ? two.logged : one.logged;
	uint64_t forged = dp_replay_delivery(n, e, id, one.delivery);
	assert_true(it_broker_start(n));
	char want[200];
	snprintf(want, sizeof(want), "log entry %" PRIu64 " (delivery from %s) written to inbox",
		 forged, IT_BROKER_ID);
	dp_expect(n, IT_SOCIAL, want, 1);
	/* dp-ref-2 stays held: not settled on a replayed signature */
	char log[1300];
	tu_path(log, sizeof(log), "%s/%s.log", n->dir, it_party_ids[IT_SOCIAL]);
	assert_int_equal(tu_occurrences(log, "message dp-ref-2 delivered: no longer held"), 0);
	assert_int_equal(tu_occurrences(log, "DELIVERY ALARM"), 0);
	char *out = NULL;
	int rc;

	/* the auditor at a distance (a later referral makes the broker sign
	 * a checkpoint that covers the forged entry), then on the store */
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, "dp-ref-3");
	dp_until_logged(n, "dp-ref-3", false);
	char ini[1300], st[1300];
	assert_int_equal(it_audit_ini(n, ini, sizeof(ini), NULL), 0);
	tu_path(st, sizeof(st), "%s/audit.state", n->dir);
	rc = tu_run(&out, "'%s/rete' audit verify --broker '%s' -c '%s' --state '%s' 2>&1", n->bin,
		    n->listen, ini, st);
	fprintf(stderr, "rete audit verify (remote): %s\n", out ? out : "");
	snprintf(want, sizeof(want), "entry %" PRIu64 ":", forged);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, audit));
	free(out);
	out = NULL;
	assert_true(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) != -1);
	rc = it_audit_verify(n, &out);
	fprintf(stderr, "rete audit verify: %s\n", out ? out : "");
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, want));
	assert_non_null(strstr(out, audit));
	free(out);
	/* the sender's agent said why it settled nothing */
	snprintf(want, sizeof(want), "log entry %" PRIu64 ", a delivery of message %s: ", forged,
		 id);
	dp_expect(n, IT_SOCIAL, want, 1);
	dp_expect(n, IT_SOCIAL, say, 1);
}

/* A replayed acknowledgement under another message's id: dp-ref-2 is not
 * settled, audit verify says the entry is not the message named. */
static void test_replayed_ack(void **state)
{
	it_net *n = it_net_new("dp-replay", NULL);
	assert_non_null(n);
	*state = n;
	dp_replay_run(n, "dp-ref-2",
		      "but our message dp-ref-2 is entry 3 (our receipt): it settles nothing",
		      "the delivery delivery-replayed-3 names entry 1, which is not an agency's "
		      "message awaiting its delivery");
}

/* A second Delivery of an entry delivered already: audit verify fails. */
static void test_second_delivery(void **state)
{
	it_net *n = it_net_new("dp-second", NULL);
	assert_non_null(n);
	*state = n;
	dp_replay_run(n, "dp-ref-1", "this agent holds no message dp-ref-1 awaiting its delivery",
		      "names entry 1, which is not an agency's message awaiting its delivery");
}

/* dp_sign_unanswered: social's agent seals, signs and submits `id` (a
 * referral to cpi) to a broker that does not answer, and is then stopped:
 * the broker is frozen (SIGSTOP: its connection stays up, ZeroMQ's
 * heartbeat gives up only after 15 s, so the agent stays welcomed and
 * signs), the file put in outbox/, and the agent's store read (read-only,
 * beside the running agent) until its outbox record holds the signed
 * bytes, which *o gets with the sealed part: what the agent submitted.
 * The agent is stopped, then the broker let go on: whatever it does with
 * that SUBMIT, its answer reaches no agent. */
static void dp_sign_unanswered(it_net *n, const char *id, it_msg *o)
{
	assert_int_equal(kill(n->broker_pid, SIGSTOP), 0);
	it_outbox_referral(n, IT_SOCIAL, IT_CPI, id);
	char name[200], path[1600], data[1300];
	snprintf(name, sizeof(name), "%s.json", id);
	it_spool(n, IT_SOCIAL, "outbox", data, sizeof(data));
	snprintf(path, sizeof(path), "%s/%s", data, name);
	size_t len = 0;
	char *text = tu_read_file(path, &len);
	assert_non_null(text);
	uint8_t hash[RETE_HASH_LEN];
	rete_sha256(hash, text, len);
	free(text);
	snprintf(data, sizeof(data), "%s/agents/%s/data", n->dir, it_party_ids[IT_SOCIAL]);
	bool got = false;
	int64_t end = it_mono_ms() + it_scaled_ms(DP_WAIT);
	while (!got && it_mono_ms() < end) {
		agent_db *db = NULL;
		rete_msg m = {{0}};
		agent_outrec r;
		memset(&r, 0, sizeof(r));
		if (agent_db_open(data, true, 0, &db, &m) == RETE_OK &&
		    agent_db_outbox_get(db, name, hash, &r, &m) == RETE_OK &&
		    r.state == AGENT_OUT_SIGNED) {
			o->signed_bytes = r.signed_msg;
			o->sealed = r.sealed;
			memset(&r.signed_msg, 0, sizeof(r.signed_msg));
			memset(&r.sealed, 0, sizeof(r.sealed));
			snprintf(o->id, sizeof(o->id), "%s", id);
			got = true;
		}
		agent_outrec_free(&r);
		agent_db_close(&db);
		if (!got)
			it_nap(100); /* a record another process writes */
	}
	if (!got) {
		kill(n->broker_pid, SIGCONT);
		it_show(n, "social.mantova.log");
		fail_msg("social's agent never signed %s while the broker was silent", id);
	}
	int stopped = it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms());
	assert_int_equal(kill(n->broker_pid, SIGCONT), 0);
	assert_true(stopped != -1);
}

/* dp_submit_lost: the bytes social's agent signed and submitted (o) are
 * submitted again on a connection of social's that is closed once the
 * broker answered (the original receipt when the broker had logged the
 * agent's SUBMIT, else a first one): the agent never sees a receipt.
 * Returns the entry's index. */
static uint64_t dp_submit_lost(it_net *n, const it_msg *o)
{
	rete_wire *w = it_hello(n, IT_SOCIAL);
	assert_non_null(w);
	Rete__BrokerFrame *f = it_submit(w, o, it_wait_ms());
	assert_non_null(f);
	assert_int_equal(f->command_case, RETE__BROKER_FRAME__COMMAND_RECEIPT);
	int64_t e = it_receipt_index(n, f);
	assert_true(e > 0);
	rete__broker_frame__free_unpacked(f, NULL);
	rete_wire_close(&w);
	return (uint64_t)e;
}

/* dp_early_order: in social's log, the Delivery at entry dlv was written
 * to inbox/ before the receipt of `id` came (the case under test). */
static void dp_early_order(it_net *n, const char *id, uint64_t dlv)
{
	char log[1300], a[200], b[200];
	tu_path(log, sizeof(log), "%s/%s.log", n->dir, it_party_ids[IT_SOCIAL]);
	snprintf(a, sizeof(a), "log entry %" PRIu64 " (delivery from %s) written to inbox", dlv,
		 IT_BROKER_ID);
	snprintf(b, sizeof(b), "%s.json: accepted as %s at log index", id, id);
	dp_expect(n, IT_SOCIAL, a, 1);
	dp_expect(n, IT_SOCIAL, b, 1);
	size_t len = 0;
	char *text = tu_read_file(log, &len);
	assert_non_null(text);
	const char *pa = strstr(text, a), *pb = strstr(text, b);
	assert_non_null(pa);
	assert_non_null(pb);
	if (pa > pb) {
		it_show(n, "social.mantova.log");
		fail_msg("the receipt of %s came before its Delivery: not the case under test", id);
	}
	free(text);
}

/* dp_status_line: `rete status` of social, the line of referral id, with
 * the delivery alarms count (--json) into *alarms. */
static char *dp_status_line(it_net *n, const char *id, size_t *alarms)
{
	char *out = NULL;
	int rc =
	    tu_run(&out, "'%s/rete' status -c '%s/agents/social.mantova/agent.ini' --timeout 0",
		   n->bin, n->dir);
	fprintf(stderr, "rete status:\n%s\n", out ? out : "");
	assert_int_equal(rc, 0);
	char want[200];
	snprintf(want, sizeof(want), "%s  to cpi.mantova", id);
	const char *line = strstr(out, want);
	assert_non_null(line);
	const char *eol = strchr(line, '\n');
	char *ret = strndup(line, eol ? (size_t)(eol - line) : strlen(line));
	free(out);
	out = NULL;
	rc = tu_run(&out,
		    "'%s/rete' status -c '%s/agents/social.mantova/agent.ini' --json --timeout 0",
		    n->bin, n->dir);
	assert_int_equal(rc, 0);
	json_t *doc = json_loads(out, 0, NULL);
	assert_non_null(doc);
	json_t *arr = json_object_get(doc, "deliveryAlarms");
	*alarms = json_is_array(arr) ? json_array_size(arr) : 0;
	json_decref(doc);
	free(out);
	return ret;
}

/* dp_early_logged: dp_one_delivered (*one, cpi_down; one NULL: only the
 * broker and social's agent started, cpi's agent down); then social's `id`
 * logged with its receipt lost (dp_sign_unanswered, dp_submit_lost),
 * social's agent stopped. Returns the entry of `id`. */
static uint64_t dp_early_logged(it_net *n, const char *id, bool cpi_down, struct dp_find *one)
{
	if (one != NULL) {
		dp_one_delivered(n, one, cpi_down);
	} else {
		/* a network fresh: no signed ack seen by social's agent yet */
		assert_true(it_broker_start(n));
		assert_true(it_agent_start(n, IT_SOCIAL));
		dp_expect(n, IT_SOCIAL, "info: connected to", 1);
	}
	it_msg o;
	memset(&o, 0, sizeof(o));
	dp_sign_unanswered(n, id, &o);
	uint64_t e = dp_submit_lost(n, &o);
	it_msg_free(&o);
	return e;
}

/* The Delivery before the receipt: settled once the receipt comes. */
static void test_early_delivery(void **state)
{
	it_net *n = it_net_new("dp-early", NULL);
	assert_non_null(n);
	*state = n;
	struct dp_find one;
	uint64_t e = dp_early_logged(n, "dp-early-1", false, &one);
	/* cpi's agent takes it and acks it: the Delivery waits in social's
	 * queue */
	struct dp_find d = dp_until_logged(n, "dp-early-1", true);
	assert_int_equal(d.logged, e);
	assert_true(d.signed_ack);

	assert_true(it_agent_start(n, IT_SOCIAL));
	dp_early_order(n, "dp-early-1", d.delivery);
	char log[1300];
	tu_path(log, sizeof(log), "%s/%s.log", n->dir, it_party_ids[IT_SOCIAL]);
	if (tu_occurrences(log, "holds no message dp-early-1 awaiting its delivery") != 0) {
		it_show(n, "social.mantova.log");
		fail_msg("social's agent dropped the Delivery of dp-early-1 that came before its "
			 "receipt (\"holds no message dp-early-1 awaiting its delivery\"): the "
			 "message stays held for good");
	}
	dp_expect(n, IT_SOCIAL, "message dp-early-1 delivered: no longer held", 1);
	/* no alarm of any kind: not the delivery alarm, nor the one of a
	 * message this agent never sent (it did: its receipt had not come) */
	assert_int_equal(tu_occurrences(log, "ALARM"), 0);

	/* its receipt in sent/, the referral received, no alarm */
	char sent[1300], path[1600];
	it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent));
	snprintf(path, sizeof(path), "%s/dp-early-1.json.receipt.json", sent);
	size_t len = 0;
	char *rcpt = tu_read_file(path, &len);
	assert_non_null(rcpt);
	json_t *r = json_loads(rcpt, 0, NULL);
	free(rcpt);
	assert_non_null(r);
	char idx[24];
	snprintf(idx, sizeof(idx), "%" PRIu64, e);
	assert_string_equal(json_string_value(json_object_get(r, "index")), idx);
	json_decref(r);
	size_t alarms = 9;
	char *line = dp_status_line(n, "dp-early-1", &alarms);
	assert_non_null(strstr(line, "status received"));
	free(line);
	assert_int_equal(alarms, 0);

	/* the held copy released: it is not submitted again at the next
	 * start (a held message would be, in a resubmission round) */
	assert_true(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()) != -1);
	char data[1300];
	snprintf(data, sizeof(data), "%s/agents/%s/data", n->dir, it_party_ids[IT_SOCIAL]);
	agent_db *db = NULL;
	rete_msg m = {{0}};
	assert_int_equal(agent_db_open(data, true, 0, &db, &m), RETE_OK);
	rete_buf h = {0};
	assert_int_equal(agent_db_get(db, AGENT_DB_HELD, "dp-early-1", 10, &h, &m), RETE_OK);
	assert_int_equal(h.len, 0); /* the mark of a delivered message */
	rete_buf_free(&h);
	agent_db_close(&db);
}

/* dp_early_forged_run: dp-ref-1 delivered honestly, cpi's agent stopped;
 * social's `id` logged, its receipt lost (dp_early_logged); the operator
 * logs a Delivery of it: with cpi's genuine
 * signed ack of dp-ref-1's entry, replayed (replay), or with none (the
 * entry taken off cpi's queue). Social's agent, started again, gets it
 * before the receipt: the delivery alarm once the receipt comes (the
 * alarm's sentence says why), not a settlement. */
static void dp_early_forged_run(it_net *n, const char *id, bool replay, bool fresh, const char *why)
{
	/* cpi's agent down: cpi never takes it */
	struct dp_find one;
	uint64_t e = dp_early_logged(n, id, true, fresh ? NULL : &one);
	/* the operator's edit */
	assert_true(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()) != -1);
	uint64_t forged = replay ? dp_replay_delivery(n, e, id, one.delivery)
				 : dp_forge_delivery(n, e, it_party_ids[IT_CPI]);
	assert_true(it_broker_start(n));

	assert_true(it_agent_start(n, IT_SOCIAL));
	dp_early_order(n, id, forged);
	char want[400];
	snprintf(
	    want, sizeof(want),
	    "social.mantova error: DELIVERY ALARM: the broker logged a delivery to cpi.mantova "
	    "that cpi.mantova did not sign (entry %" PRIu64 "): %s",
	    forged, why);
	dp_expect(n, IT_SOCIAL, want, 1);
	char log[1300];
	tu_path(log, sizeof(log), "%s/%s.log", n->dir, it_party_ids[IT_SOCIAL]);
	snprintf(want, sizeof(want), "message %s delivered: no longer held", id);
	assert_int_equal(tu_occurrences(log, want), 0);
	size_t alarms = 0;
	char *line = dp_status_line(n, id, &alarms);
	assert_non_null(strstr(line, "status requested"));
	free(line);
	assert_int_equal(alarms, 1);
}

/* A replayed acknowledgement of another entry, before the receipt: the
 * alarm once the receipt comes, no settlement. */
static void test_early_forged(void **state)
{
	it_net *n = it_net_new("dp-early-forged", NULL);
	assert_non_null(n);
	*state = n;
	dp_early_forged_run(n, "dp-early-2", true, false,
			    "it came before our receipt and names entry 1 as our message "
			    "dp-early-2, but the receipt that came after it proves our message is "
			    "entry 3");
}

/* A Delivery with no signed acknowledgement, before the receipt: the
 * alarm once the receipt comes. */
static void test_early_unsigned(void **state)
{
	it_net *n = it_net_new("dp-early-unsigned", NULL);
	assert_non_null(n);
	*state = n;
	dp_early_forged_run(n, "dp-early-3", false, false,
			    "it carries no acknowledgement signed by cpi.mantova");
}

/* The same where social's agent has seen no signed ack yet (a fresh
 * network) and had not submitted the message again on this connection
 * when the Delivery came: whether an ack is due is the receipt's to say
 * (protocol 3), so the unsigned Delivery is the alarm, not a settlement
 * as of a protocol-2 message. */
static void test_early_unsigned_fresh(void **state)
{
	it_net *n = it_net_new("dp-early-fresh", NULL);
	assert_non_null(n);
	*state = n;
	dp_early_forged_run(n, "dp-early-4", false, true,
			    "it carries no acknowledgement signed by cpi.mantova");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_unsigned_delivery, teardown),
	    cmocka_unit_test_teardown(test_delivered_not_logged, teardown),
	    cmocka_unit_test_teardown(test_replayed_ack, teardown),
	    cmocka_unit_test_teardown(test_second_delivery, teardown),
	    cmocka_unit_test_teardown(test_early_delivery, teardown),
	    cmocka_unit_test_teardown(test_early_forged, teardown),
	    cmocka_unit_test_teardown(test_early_unsigned, teardown),
	    cmocka_unit_test_teardown(test_early_unsigned_fresh, teardown),
	};
	if (getenv("RETE_TEST_ONLY") != NULL) /* e.g. RETE_TEST_ONLY=test_early_delivery */
		cmocka_set_test_filter(getenv("RETE_TEST_ONLY"));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
