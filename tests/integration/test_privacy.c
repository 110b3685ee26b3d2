/* test_privacy.c — issue 18 on the real broker and agents: a subject-access
 * answer for one person of a family (`rete sar`), the retention of the
 * spool's files and of the person index (erased and recorded), and the
 * access record of every kind of read of the log (audit log, audit
 * timeline, report, sar, and a remote query the broker serves).
 *
 * The family is the demo's: the social services refer the mother (Maria
 * Rossi) to the job centre and her son (Luca Bianchi) to the health
 * service, in one case; the job centre sends back a note about the mother.
 * The mother's answer must list her referral, its delivery and the note,
 * and nothing of her son.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <jansson.h>

#include "itest.h"
#include "json.h"
#include "validate.h"

#define MOTHER_FC  "RSSMRA85M41E897X"
#define SON_FC	   "BNCLCU10T12E897Q"
#define CASE	   "mn-2026-0173"
#define MOTHER_REF "social-2026-m1"
#define SON_REF	   "social-2026-s1"
#define OTHER_NOTE "cpi-2026-n9"
#define UPDATE_ID  "cpi-upd-0042"
#define NOTE_ID	   "cpi-2026-n1"

static char *rete_exe(it_net *n, char *buf, size_t len)
{
	snprintf(buf, len, "%s/rete", n->bin);
	return buf;
}

static char *agent_file(it_net *n, int p, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s/agents/%s/%s", n->dir, it_party_ids[p], name);
	return buf;
}

/* text_occurrences counts needle in text. */
static size_t text_occurrences(const char *text, const char *needle)
{
	size_t n = 0;
	for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
		n++;
	return n;
}

static void family_traffic(it_net *n)
{
	char referral[2048];
	snprintf(
	    referral, sizeof(referral),
	    "{\"id\": \"%s\", \"operator\": {\"staffId\": \"as-0042\", \"role\": "
	    "\"social-worker\"}, \"recipient\": \"%s\", \"caseId\": \"" CASE "\", "
	    "\"referral\": {\"service\": \"%s\", \"priority\": \"routine\", \"reasonCode\": "
	    "\"%s\", \"consent\": {\"basis\": \"consent\", \"givenAt\": "
	    "\"2026-11-20T09:30:00Z\", \"reference\": \"CONS-2026-0412\"}, \"ageBand\": "
	    "\"adult\"}, \"private\": {\"person\": {\"name\": \"Maria Rossi\", \"fiscalCode\": "
	    "\"" MOTHER_FC "\", \"personId\": \"P-0042\"}, \"reason\": \"Unemployed since "
	    "March.\"}}",
	    MOTHER_REF, it_party_ids[IT_CPI], it_service[IT_CPI], "long-term-unemployment");
	it_outbox_put(n, IT_SOCIAL, "mother.json", referral);
	snprintf(referral, sizeof(referral),
		 "{\"id\": \"%s\", \"operator\": {\"staffId\": \"as-0042\", \"role\": "
		 "\"social-worker\"}, \"recipient\": \"%s\", \"caseId\": \"" CASE "\", "
		 "\"referral\": {\"service\": \"%s\", \"priority\": \"urgent\", \"reasonCode\": "
		 "\"school-withdrawal\", \"consent\": {\"basis\": \"guardian-consent\", "
		 "\"givenAt\": \"2026-11-20T09:35:00Z\", \"reference\": \"CONS-2026-0413\"}, "
		 "\"ageBand\": \"14-18\"}, \"private\": {\"person\": {\"name\": \"Luca Bianchi\", "
		 "\"fiscalCode\": \"" SON_FC "\"}, \"reason\": \"Has stopped attending school.\"}}",
		 SON_REF, it_party_ids[IT_ASST], it_service[IT_ASST]);
	it_outbox_put(n, IT_SOCIAL, "son.json", referral);

	/* both referrals delivered, and their Delivery entries back at the
	 * sender's agent (two "delivered" lines in its person index) */
	char idx[1400];
	agent_file(n, IT_SOCIAL, "data/persons.jsonl", idx, sizeof(idx));
	if (!it_wait_occurrences(idx, "\"delivered\"", 2, 30000)) {
		it_show(n, "social.mantova.log");
		it_show(n, "broker.log");
		fail_msg("the deliveries of the two referrals were not recorded in %s", idx);
	}
	/* the job centre's note about the mother, back to the social services */
	char note[1024];
	snprintf(
	    note, sizeof(note),
	    "{\"id\": \"" NOTE_ID "\", \"operator\": {\"staffId\": \"cpi-017\", \"role\": "
	    "\"employment-counsellor\"}, \"recipient\": \"%s\", \"caseId\": \"" CASE "\", "
	    "\"note\": {\"referralId\": \"" MOTHER_REF "\", \"kind\": \"meeting-minutes\"}, "
	    "\"private\": {\"person\": {\"name\": \"Maria Rossi\", \"fiscalCode\": \"" MOTHER_FC
	    "\"}, \"notes\": "
	    "\"First interview held.\"}}",
	    it_party_ids[IT_SOCIAL]);
	it_outbox_put(n, IT_CPI, "note.json", note);
	if (!it_wait_occurrences(idx, "\"received\"", 1, 30000)) {
		it_show(n, "cpi.mantova.log");
		it_show(n, "social.mantova.log");
		fail_msg("the note was not indexed by the social services' agent");
	}
}

static int net_setup(void **state)
{
	it_net *n = it_net_new("privacy", NULL);
	*state = n;
	if (n == NULL || !it_broker_start(n))
		return -1;
	for (int p = IT_SOCIAL; p <= IT_ASST; p++)
		if (!it_agent_start(n, p))
			return -1;
	return 0;
}

/* The mother's answer: her referral (with its delivery to the job centre,
 * its index and checkpoint) and the note about her; nothing of her son. */
static void test_sar_mother(void **state)
{
	it_net *n = *state;
	char exe[1100], ini[1400], out_html[1400], *out = NULL;
	family_traffic(n);
	rete_exe(n, exe, sizeof(exe));
	agent_file(n, IT_SOCIAL, "agent.ini", ini, sizeof(ini));

	/* lower case and spaces as a person may write it */
	int rc = tu_run(&out, "%s sar --person 'rssmra85m41e897x' -c %s --json", exe, ini);
	assert_int_equal(rc, 0);
	json_t *ans = json_loads(out, 0, NULL);
	if (ans == NULL)
		fail_msg("not JSON: %s", out);
	json_t *msgs = json_object_get(ans, "messages");
	assert_int_equal(json_array_size(msgs), 2);
	assert_null(strstr(out, SON_REF));
	assert_null(strstr(out, SON_FC));
	assert_null(strstr(out, "asst.mantova"));
	assert_null(strstr(out, "Luca"));
	bool ref = false, got_note = false;
	size_t i;
	json_t *m;
	json_array_foreach(msgs, i, m)
	{
		const char *id = json_string_value(json_object_get(m, "id"));
		const char *dir = json_string_value(json_object_get(m, "direction"));
		json_t *dl = json_object_get(m, "deliveries");
		if (strcmp(id, MOTHER_REF) == 0) {
			ref = true;
			assert_string_equal(dir, "sent");
			assert_string_equal(json_string_value(json_object_get(m, "kind")),
					    "referral");
			assert_string_equal(json_string_value(json_object_get(m, "recipient")),
					    "cpi.mantova");
			assert_true(json_is_integer(json_object_get(m, "index")));
			assert_int_equal(json_array_size(dl), 1);
			json_t *d = json_array_get(dl, 0);
			assert_string_equal(json_string_value(json_object_get(d, "to")),
					    "cpi.mantova");
			assert_true(json_is_string(json_object_get(d, "deliveredAt")));
			assert_true(json_integer_value(json_object_get(d, "deliveryIndex")) >
				    json_integer_value(json_object_get(m, "index")));
		} else if (strcmp(id, NOTE_ID) == 0) {
			got_note = true;
			assert_string_equal(dir, "received");
			assert_string_equal(json_string_value(json_object_get(m, "sender")),
					    "cpi.mantova");
			assert_string_equal(json_string_value(json_object_get(m, "referral")),
					    MOTHER_REF);
			assert_int_equal(json_array_size(dl), 1);
		}
	}
	assert_true(ref);
	assert_true(got_note);
	json_decref(ans);
	free(out);

	/* once the agent's witness has verified a checkpoint past the
	 * delivery, the answer says which checkpoint covers each entry */
	int64_t end = it_mono_ms() + it_scaled_ms(30000);
	bool covered = false;
	while (!covered && it_mono_ms() < end) {
		assert_int_equal(
		    tu_run(&out, "%s sar --person " MOTHER_FC " -c %s --json", exe, ini), 0);
		ans = json_loads(out, 0, NULL);
		free(out);
		json_array_foreach(json_object_get(ans, "messages"), i, m)
		{
			json_t *d = json_array_get(json_object_get(m, "deliveries"), 0);
			if (strcmp(json_string_value(json_object_get(m, "id")), MOTHER_REF) == 0 &&
			    json_is_integer(json_object_get(m, "checkpoint")) &&
			    json_is_integer(json_object_get(d, "checkpoint")) &&
			    json_integer_value(json_object_get(d, "checkpoint")) >
				json_integer_value(json_object_get(d, "deliveryIndex")))
				covered = true;
		}
		assert_true(
		    json_is_integer(json_object_get(json_object_get(ans, "checkpoint"), "size")) ||
		    json_is_null(json_object_get(ans, "checkpoint")));
		json_decref(ans);
		if (!covered)
			it_nap(200); /* the witness asks every 2 s: poll its store */
	}
	assert_true(covered);

	/* the text answer says the size of the checkpoint that covers each
	 * entry, in Italian and in English (it printed "coperta dal
	 * checkpoint verificato di dimensione)" with no size) */
	int64_t cp_size = 0;
	assert_int_equal(tu_run(&out, "%s sar --person " MOTHER_FC " -c %s --json", exe, ini), 0);
	ans = json_loads(out, 0, NULL);
	free(out);
	json_array_foreach(json_object_get(ans, "messages"), i, m)
	{
		if (strcmp(json_string_value(json_object_get(m, "id")), MOTHER_REF) == 0)
			cp_size = json_integer_value(json_object_get(m, "checkpoint"));
	}
	json_decref(ans);
	assert_true(cp_size > 0);
	const char *sar_langs[] = {"it", "en"};
	const char *cover_fmt[] = {"coperta dal checkpoint verificato di dimensione %lld)",
				   "covered by the verified checkpoint of size %lld)"};
	for (int l = 0; l < 2; l++) {
		char want[160];
		rc = tu_run(&out, "%s sar --person " MOTHER_FC " -c %s --lang %s", exe, ini,
			    sar_langs[l]);
		assert_int_equal(rc, 0);
		snprintf(want, sizeof(want), cover_fmt[l], (long long)cp_size);
		if (strstr(out, want) == NULL)
			fail_msg("the text answer (%s) does not say the checkpoint's size "
				 "('%s'): %s",
				 sar_langs[l], want, out);
		free(out);
	}

	/* the son's answer holds his referral alone */
	rc = tu_run(&out, "%s sar --person " SON_FC " -c %s --json", exe, ini);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, SON_REF));
	assert_null(strstr(out, MOTHER_REF));
	assert_null(strstr(out, NOTE_ID));
	free(out);

	/* by the person's id in the case system: the referral, which carried
	 * it (the note named her by fiscal code only); with both, both */
	rc = tu_run(&out, "%s sar --person-id P-0042 -c %s --json", exe, ini);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, MOTHER_REF));
	assert_null(strstr(out, NOTE_ID));
	assert_null(strstr(out, SON_REF));
	free(out);
	rc =
	    tu_run(&out, "%s sar --person " MOTHER_FC " --person-id P-0042 -c %s --json", exe, ini);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, MOTHER_REF));
	assert_non_null(strstr(out, NOTE_ID));
	assert_int_equal(text_occurrences(out, "\"direction\""), 2);
	assert_null(strstr(out, SON_REF));
	free(out);

	/* the job centre answers for what it received: the referral only */
	char cpi_ini[1400];
	agent_file(n, IT_CPI, "agent.ini", cpi_ini, sizeof(cpi_ini));
	rc = tu_run(&out, "%s sar --person " MOTHER_FC " -c %s --json --lang en", exe, cpi_ini);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, MOTHER_REF));
	assert_non_null(strstr(out, "\"direction\": \"received\""));
	free(out);

	/* the printable page, Italian and English: no script, nothing fetched */
	const char *langs[] = {"it", "en"};
	const char *say[] = {"Risposta alla richiesta di accesso", "Answer to a subject-access"};
	for (int l = 0; l < 2; l++) {
		snprintf(out_html, sizeof(out_html), "%s/sar-%s.html", n->dir, langs[l]);
		rc = tu_run(&out, "%s sar --person " MOTHER_FC " -c %s --html %s --lang %s", exe,
			    ini, out_html, langs[l]);
		assert_int_equal(rc, 0);
		free(out);
		/* the page names the person and her services: for the
		 * operator alone, like the agent's own files */
		struct stat pst;
		assert_int_equal(stat(out_html, &pst), 0);
		if ((pst.st_mode & 077) != 0)
			fail_msg("%s has mode %o: others can read a subject-access answer",
				 out_html, (unsigned)(pst.st_mode & 0777));
		char *page = tu_read_file(out_html, NULL);
		assert_non_null(page);
		assert_non_null(strstr(page, say[l]));
		assert_non_null(strstr(page, MOTHER_REF));
		assert_non_null(strstr(page, NOTE_ID));
		assert_non_null(strstr(page, "cpi.mantova"));
		assert_null(strstr(page, SON_REF));
		assert_null(strstr(page, "<script"));
		assert_null(strstr(page, "src="));
		assert_null(strstr(page, "href="));
		assert_null(strstr(page, "http"));
		free(page);
	}

	/* the index holds pseudonyms only, under a key of mode 0600 */
	char path[1400];
	agent_file(n, IT_SOCIAL, "data/persons.jsonl", path, sizeof(path));
	assert_int_equal(tu_occurrences(path, MOTHER_FC), 0);
	assert_int_equal(tu_occurrences(path, SON_FC), 0);
	assert_int_equal(tu_occurrences(path, "Rossi"), 0);
	struct stat st;
	agent_file(n, IT_SOCIAL, "data/privacy.key", path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 32);

	/* the job centre's update of the mother's referral, with no sealed
	 * part: it concerns her (her referral), and her alone */
	it_outbox_put(n, IT_CPI, "update.json",
		      "{\"id\": \"" UPDATE_ID "\", \"operator\": {\"staffId\": \"cpi-017\", "
		      "\"role\": \"employment-counsellor\"}, \"recipient\": \"social.mantova\", "
		      "\"caseId\": \"" CASE "\", \"update\": {\"referralId\": \"" MOTHER_REF
		      "\", \"status\": \"accepted\"}}");
	agent_file(n, IT_SOCIAL, "data/persons.jsonl", path, sizeof(path));
	if (!it_wait_occurrences(path, UPDATE_ID, 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("the update of the mother's referral (no sealed part) is not in %s: "
			 "her answer would leave it out",
			 path);
	}
	rc = tu_run(&out, "%s sar --person " MOTHER_FC " -c %s --json", exe, ini);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, UPDATE_ID));
	assert_null(strstr(out, SON_REF));
	free(out);
	rc = tu_run(&out, "%s sar --person " SON_FC " -c %s --json", exe, ini);
	assert_int_equal(rc, 0);
	assert_null(strstr(out, UPDATE_ID));
	free(out);
	agent_file(n, IT_CPI, "data/persons.jsonl", path, sizeof(path));
	assert_true(it_wait_occurrences(path, UPDATE_ID, 1, 30000));
	rc = tu_run(&out, "%s sar --person " MOTHER_FC " -c %s --json", exe, cpi_ini);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, UPDATE_ID));
	free(out);

	/* a person id is the sending agency's own: the job centre's note
	 * about its person P-0042 (someone else in its case system) is not
	 * the social services' P-0042, and never in her answer */
	it_outbox_put(n, IT_CPI, "other.json",
		      "{\"id\": \"" OTHER_NOTE "\", \"operator\": {\"staffId\": \"cpi-017\", "
		      "\"role\": \"employment-counsellor\"}, \"recipient\": \"social.mantova\", "
		      "\"caseId\": \"mn-2026-0999\", \"note\": {\"kind\": \"meeting-minutes\"}, "
		      "\"private\": {\"person\": {\"name\": \"Anna Verdi\", \"personId\": "
		      "\"P-0042\"}, \"notes\": \"Interview held.\"}}");
	agent_file(n, IT_SOCIAL, "data/persons.jsonl", path, sizeof(path));
	if (!it_wait_occurrences(path, OTHER_NOTE, 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("the job centre's note was not indexed in %s", path);
	}
	rc = tu_run(&out, "%s sar --person-id P-0042 -c %s --json", exe, ini);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, MOTHER_REF));
	if (strstr(out, OTHER_NOTE) != NULL)
		fail_msg("the mother's answer (--person-id P-0042) lists the job centre's note "
			 "about its own P-0042: %s",
			 out);
	free(out);

	/* the Italian text: each participle agrees with the noun it
	 * qualifies (l'aggiornamento ricevuto, consegnato; la segnalazione
	 * inviata; la nota ricevuta); "coperta" goes with "voce" */
	rc = tu_run(&out, "%s sar --person " MOTHER_FC " -c %s", exe, ini);
	assert_int_equal(rc, 0);
	const char *agree[] = {"aggiornamento " UPDATE_ID ", ricevuto da cpi.mantova",
			       "segnalazione " MOTHER_REF ", inviata a cpi.mantova",
			       "nota " NOTE_ID ", ricevuta da cpi.mantova"};
	for (size_t k = 0; k < sizeof(agree) / sizeof(agree[0]); k++)
		if (strstr(out, agree[k]) == NULL)
			fail_msg("the Italian answer lacks '%s': %s", agree[k], out);
	const char *upd = strstr(out, "aggiornamento " UPDATE_ID);
	const char *next = upd != NULL ? strstr(upd + 1, "\n- ") : NULL;
	const char *deliv = upd != NULL ? strstr(upd, "consegnato a social.mantova") : NULL;
	if (deliv == NULL || (next != NULL && deliv > next))
		fail_msg("the update's delivery is not 'consegnato a social.mantova': %s", out);
	assert_null(strstr(out, "aggiornamento " UPDATE_ID ", ricevuta"));
	free(out);

	/* a sar without a person is a usage error */
	rc = tu_run(&out, "%s sar -c %s", exe, ini);
	assert_int_equal(rc, 2);
	free(out);

	/* what can never match (not 16 letters and digits, nor an 11-digit
	 * temporary code with its check digit) is refused (exit 2, saying what is accepted), never
	 * answered "nothing concerns her": a typo would give a false
	 * negative. Spaces and lower case are fine, and what message check
	 * accepts is accepted (test_sar_every_code). */
	char *big = malloc(100001);
	assert_non_null(big);
	memset(big, 'A', 100000);
	big[100000] = '\0';
	const char *refused[] = {"NOBODY",
				 "RSSMRA85M41E897",
				 "RSSMRA85M41E897XX",
				 "RSSMRA-85M41E897",
				 "RSSMRA85M41E897\xc3\xa9",
				 "1234567890",
				 "12345678901",
				 "\xff\xfe",
				 big};
	char big_file[1400];
	snprintf(big_file, sizeof(big_file), "%s/big-person.txt", n->dir);
	for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
		/* through a file: 100,000 characters exceed tu_run's command */
		assert_int_equal(tu_write_file(big_file, refused[k], strlen(refused[k])), 0);
		rc = tu_run(&out, "%s sar --person \"$(cat %s)\" -c %s", exe, big_file, ini);
		if (rc != 2 || strstr(out, "fiscal code") == NULL ||
		    strstr(out, "Nessuna comunicazione") != NULL)
			fail_msg("sar --person '%.40s' (%zu bytes): exit %d, expected 2 and a "
				 "sentence about the fiscal code: %.300s",
				 refused[k], strlen(refused[k]), rc, out);
		assert_null(strstr(out, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
		free(out);
	}
	free(big);
	/* the sentence counts characters, not bytes: the é is the 7th */
	rc = tu_run(&out,
		    "%s sar --person 'RSSMRA\xc3\xa9"
		    "5M41E897X' -c %s",
		    exe, ini);
	if (rc != 2 || strstr(out, "character 7 ") == NULL)
		fail_msg("sar --person 'RSSMRA\xc3\xa9"
			 "5M41E897X': exit %d, expected 2 naming its "
			 "character 7: %s",
			 rc, out);
	free(out);
	rc = tu_run(&out, "%s sar --person 'rssmra 85m41 e897x' -c %s --json", exe, ini);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, MOTHER_REF));
	free(out);
	/* a person id longer than any a message may carry matches nothing */
	rc = tu_run(&out, "%s sar --person-id %0300d -c %s", exe, 7, ini);
	assert_int_equal(rc, 2);
	free(out);
}

/* referral_case_doc: a referral from the social services to the job
 * centre for case case_id whose sealed part names a person by fiscal code
 * fc, into buf. */
static void referral_case_doc(char *buf, size_t len, const char *id, const char *case_id,
			      const char *fc)
{
	snprintf(buf, len,
		 "{\"id\": \"%s\", \"operator\": {\"staffId\": \"as-0042\", \"role\": "
		 "\"social-worker\"}, \"recipient\": \"%s\", \"caseId\": \"%s\", "
		 "\"referral\": {\"service\": \"%s\", \"priority\": \"routine\", \"reasonCode\": "
		 "\"long-term-unemployment\", \"consent\": {\"basis\": \"consent\", \"givenAt\": "
		 "\"2026-11-20T09:30:00Z\", \"reference\": \"CONS-2026-0901\"}, \"ageBand\": "
		 "\"adult\"}, \"private\": {\"person\": {\"name\": \"Persona di prova\", "
		 "\"fiscalCode\": \"%s\"}}}",
		 id, it_party_ids[IT_CPI], case_id, it_service[IT_CPI], fc);
}

/* referral_doc: referral_case_doc for case mn-2026-0901. */
static void referral_doc(char *buf, size_t len, const char *id, const char *fc)
{
	referral_case_doc(buf, len, id, "mn-2026-0901", fc);
}

/* check_accepts: does `rete message check` (the agent's own check: the
 * outbox mapping, then the validation as a draft) accept the referral
 * naming fc? */
static bool check_accepts(const char *fc)
{
	char doc[2048];
	Rete__Message *msg = NULL;
	Rete__Private *priv = NULL;
	rete_problems p = {0};
	referral_doc(doc, sizeof(doc), "social-2026-p1", fc);
	json_t *j = json_loads(doc, 0, NULL);
	if (j == NULL)
		return false; /* not even JSON (a quote, a control character) */
	rete_err e = rete_json_load_outbox(NULL, j, &msg, &priv, &p);
	if (e == RETE_OK)
		rete_validate_message(msg, priv, RETE_VALIDATE_DRAFT, &p);
	bool ok = e == RETE_OK && p.n == 0;
	json_decref(j);
	if (msg != NULL)
		protobuf_c_message_free_unpacked(&msg->base, NULL);
	if (priv != NULL)
		protobuf_c_message_free_unpacked(&priv->base, NULL);
	rete_problems_free(&p);
	return ok;
}

/* rnd: a small deterministic generator (xorshift64), so that a failure
 * names a code that fails again on the next run. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* temporary_ok: are the 11 characters at fc digits whose last is the
 * check digit of the first ten (a partita IVA's: the digits in even places
 * doubled, less 9 when over 9; the sum's complement to a multiple of 10)?
 * The test's own reckoning, against proto/validate.c's. */
static bool temporary_ok(const char *fc)
{
	int sum = 0;
	if (strlen(fc) != 11 || strspn(fc, "0123456789") != 11)
		return false;
	for (int i = 0; i < 10; i++) {
		int d = fc[i] - '0';
		sum += i % 2 == 0 ? d : (2 * d > 9 ? 2 * d - 9 : 2 * d);
	}
	return (10 - sum % 10) % 10 == fc[10] - '0';
}

/* Every fiscalCode `rete message check` accepts (so every one an agent
 * seals and indexes) is accepted by `rete sar --person`, as written or in
 * lower case with spaces; the codes of foreigners without a fiscal code
 * (STP, ENI), omocodia, an O typed for a zero and the 11-digit temporary
 * code (codice fiscale provvisorio) are answered end to end; a temporary
 * code with a wrong check digit is refused by message check (the agent
 * puts the message in failed/ saying so) and by sar, both naming the
 * check digit; what can never match is refused with the sentence. */
static void test_sar_every_code(void **state)
{
	it_net *n = *state;
	char exe[1100], ini[1400], doc[2048], path[1600], *out = NULL;
	rete_exe(n, exe, sizeof(exe));
	agent_file(n, IT_SOCIAL, "agent.ini", ini, sizeof(ini));

	/* end to end: sealed, delivered, indexed, and answered */
	static const struct {
		const char *fc, *id, *asked;
	} sealed[] = {
	    {"STP0300150000123", "social-2026-stp", "stp 0300150000123"},
	    {"ENI0300150000123", "social-2026-eni", "eni0300150000123"},
	    {"RSSMRA85M41E89TX", "social-2026-omo", "rssmra85m41e89tx"},
	    {"RSSMRA8OA41H501U", "social-2026-o0", "RSSMRA8OA41H501U"},
	    {"12345678903", "social-2026-tmp", "123 456 789 03"},
	};
	for (size_t k = 0; k < sizeof(sealed) / sizeof(sealed[0]); k++) {
		assert_true(check_accepts(sealed[k].fc));
		referral_doc(doc, sizeof(doc), sealed[k].id, sealed[k].fc);
		snprintf(path, sizeof(path), "%s.json", sealed[k].id);
		it_outbox_put(n, IT_SOCIAL, path, doc);
	}
	for (size_t k = 0; k < sizeof(sealed) / sizeof(sealed[0]); k++) {
		char sent[1300];
		snprintf(path, sizeof(path), "%s/%s.json.receipt.json",
			 it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent)), sealed[k].id);
		if (!it_wait_occurrences(path, "\"index\"", 1, 30000)) {
			it_show(n, "social.mantova.log");
			fail_msg("no receipt for %s (%s)", sealed[k].id, path);
		}
		int rc =
		    tu_run(&out, "%s sar --person '%s' -c %s --json", exe, sealed[k].asked, ini);
		if (rc != 0 || strstr(out, sealed[k].id) == NULL)
			fail_msg("sar --person '%s' (sealed as %s): exit %d, expected 0 and %s: "
				 "%.400s",
				 sealed[k].asked, sealed[k].fc, rc, sealed[k].id, out);
		free(out);
	}

	/* a temporary code with a wrong check digit (a digit mistyped): the
	 * agent refuses the message into failed/, saying so; sar refuses the
	 * code too, with the same reason */
	assert_false(check_accepts("12345678901"));
	referral_doc(doc, sizeof(doc), "social-2026-tmp-bad", "12345678901");
	it_outbox_put(n, IT_SOCIAL, "tmp-bad.json", doc);
	char failed[1300];
	snprintf(path, sizeof(path), "%s/tmp-bad.json.error.json",
		 it_spool(n, IT_SOCIAL, "failed", failed, sizeof(failed)));
	if (!it_wait_occurrences(path, "{", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("tmp-bad.json was not refused into failed/ (%s)", path);
	}
	char *err = tu_read_file(path, NULL);
	if (err == NULL || strstr(err, "check digit") == NULL)
		fail_msg("failed/tmp-bad.json.error.json does not name the check digit: %.600s",
			 err ? err : "(none)");
	free(err);
	int rc = tu_run(&out, "%s sar --person 12345678901 -c %s --json", exe, ini);
	if (rc != 2 || strstr(out, "check digit") == NULL)
		fail_msg("sar --person 12345678901: exit %d, expected 2 and a sentence naming the "
			 "check digit: %.400s",
			 rc, out);
	free(out);

	/* the property, over generated codes: 16 letters and digits (as
	 * message check takes them, capitals) and 11 digits with their check
	 * digit are accepted however they are written; anything else that
	 * message check refuses (11 digits with a wrong check digit too) is
	 * refused with the sentence */
	static const char alnum[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	static const char other[] = "-./_,;:+*'\xc3\xa9@#";
	uint64_t seed = 0x5eed2026c0de11ULL;
	for (int t = 0; t < 280; t++) {
		char fc[40], asked[100];
		size_t len = t < 160 ? 16 : t < 240 ? rnd(&seed) % 22 : 11;
		for (size_t i = 0; i < len; i++)
			fc[i] = alnum[rnd(&seed) % 36];
		fc[len] = '\0';
		if (t >= 200 && len > 0) /* a character no code has */
			fc[rnd(&seed) % len] = other[rnd(&seed) % (sizeof(other) - 1)];
		if ((t >= 160 && t < 200 && rnd(&seed) % 4 == 0) || t >= 240) { /* all digits */
			for (size_t i = 0; i < len; i++)
				fc[i] = (char)('0' + rnd(&seed) % 10);
		}
		/* half of the 11-digit ones given their right check digit */
		for (char d = '0'; t >= 240 && t % 2 == 0 && !temporary_ok(fc) && d <= '9'; d++)
			fc[10] = d;
		/* an empty fiscalCode is no fiscal code (message check lets
		 * it be left out): it names nobody */
		bool accepted = len > 0 && check_accepts(fc);
		if (len == 16 && strspn(fc, alnum) == 16 && !accepted)
			fail_msg("message check refuses '%s'", fc); /* the premise */
		/* the premise for 11 digits: the check digit decides */
		if (len == 11 && strspn(fc, "0123456789") == 11 && accepted != temporary_ok(fc))
			fail_msg("message check %s the 11 digits '%s', whose check digit is %s",
				 accepted ? "accepts" : "refuses", fc,
				 temporary_ok(fc) ? "right" : "wrong");
		/* as a person may write it: lower case, spaces */
		size_t a = 0;
		for (size_t i = 0; i < len; i++) {
			if (i > 0 && rnd(&seed) % 5 == 0)
				asked[a++] = ' ';
			asked[a++] = rnd(&seed) % 2 ? (char)tolower((unsigned char)fc[i]) : fc[i];
		}
		asked[a] = '\0';
		/* through a file: the generated characters include quotes */
		snprintf(path, sizeof(path), "%s/asked.txt", n->dir);
		assert_int_equal(tu_write_file(path, asked, strlen(asked)), 0);
		rc = tu_run(&out, "%s sar --person \"$(cat %s)\" -c %s --json", exe, path, ini);
		if (accepted && rc != 0)
			fail_msg(
			    "message check accepts '%s', but sar --person '%s' exits %d: %.300s",
			    fc, asked, rc, out);
		if (!accepted && (rc != 2 || strstr(out, "fiscal code") == NULL))
			fail_msg("message check refuses '%s', but sar --person '%s' exits %d "
				 "without the sentence: %.300s",
				 fc, asked, rc, out);
		free(out);
	}
}

/* A case system that numbers its cases by the person's temporary fiscal
 * code (11 digits with their check digit), or writes a fiscal code in
 * groups, gets the file back in failed/ with code personal-data and the
 * sentence, never quoting the value; nothing reaches the log (session 13,
 * rev-hostile finding 3). A case id of 11 digits whose last is not their
 * check digit goes through. */
static void test_codes_in_case_id(void **state)
{
	it_net *n = *state;
	char doc[2048], path[1600], failed[1300], sent[1300];
	static const struct {
		const char *file, *case_id, *want;
	} refused[] = {
	    {"cid-temporary.json", "98765432103", "temporary fiscal code"},
	    {"cid-groups.json", "RSS-MRA-85M41-E897X", "fiscal code"},
	};
	for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
		char id[64];
		snprintf(id, sizeof(id), "social-2026-cid-%zu", k);
		referral_case_doc(doc, sizeof(doc), id, refused[k].case_id, "98765432103");
		it_outbox_put(n, IT_SOCIAL, refused[k].file, doc);
	}
	/* the near miss goes through */
	referral_case_doc(doc, sizeof(doc), "social-2026-cid-ok", "98765432104", "98765432103");
	it_outbox_put(n, IT_SOCIAL, "cid-ok.json", doc);
	snprintf(path, sizeof(path), "%s/cid-ok.json.receipt.json",
		 it_spool(n, IT_SOCIAL, "sent", sent, sizeof(sent)));
	if (!it_wait_occurrences(path, "\"index\"", 1, 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("no receipt for a case id of 11 digits with a wrong check digit (%s)",
			 path);
	}
	for (size_t k = 0; k < sizeof(refused) / sizeof(refused[0]); k++) {
		snprintf(path, sizeof(path), "%s/%s.error.json",
			 it_spool(n, IT_SOCIAL, "failed", failed, sizeof(failed)), refused[k].file);
		if (!it_wait_occurrences(path, "{", 1, 30000)) {
			it_show(n, "social.mantova.log");
			fail_msg("caseId %s: %s was not refused into failed/ (%s)",
				 refused[k].case_id, refused[k].file, path);
		}
		json_t *e = tu_load_json(path);
		assert_non_null(e);
		const char *code = json_string_value(json_object_get(e, "code"));
		const char *field = json_string_value(json_object_get(e, "field"));
		const char *error = json_string_value(json_object_get(e, "error"));
		if (code == NULL || strcmp(code, "personal-data") != 0 || field == NULL ||
		    strcmp(field, "caseId") != 0 || error == NULL ||
		    strstr(error, refused[k].want) == NULL ||
		    strstr(error, "private.person.fiscalCode") == NULL ||
		    strstr(error, refused[k].case_id) != NULL)
			fail_msg("failed/%s.error.json: expected code personal-data, field caseId "
				 "and a sentence saying '%s' without the value: %s %s %.600s",
				 refused[k].file, refused[k].want, code ? code : "-",
				 field ? field : "-", error ? error : "-");
		json_decref(e);
	}
}

/* count_program: lines of the access record at path by program whose
 * "what" contains what (NULL: any). */
static size_t count_program(const char *path, const char *program, const char *what)
{
	size_t n = 0;
	char *text = tu_read_file(path, NULL);
	if (text == NULL)
		return 0;
	for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
		json_t *o = json_loads(line, 0, NULL);
		const char *p = json_string_value(json_object_get(o, "program"));
		const char *w = json_string_value(json_object_get(o, "what"));
		if (p && strcmp(p, program) == 0 && (what == NULL || (w && strstr(w, what))) &&
		    json_is_string(json_object_get(o, "at")) &&
		    json_is_string(json_object_get(o, "who")))
			n++;
		json_decref(o);
	}
	free(text);
	return n;
}

/* Every kind of read leaves one line in the reading program's record. */
static void test_access_records(void **state)
{
	it_net *n = *state;
	char exe[1100], ini[1400], cli_log[1400], audit_ini[1400], audit_log[1400], *out = NULL;
	rete_exe(n, exe, sizeof(exe));
	snprintf(cli_log, sizeof(cli_log), "%s/cli-access.log", n->dir);

	int rc =
	    tu_run(&out, "RETE_ACCESS_LOG=%s %s audit log %s --case " CASE, cli_log, exe, n->data);
	assert_int_equal(rc, 0);
	free(out);
	assert_int_equal(count_program(cli_log, "rete audit log", "--case " CASE), 1);

	rc = tu_run(&out, "RETE_ACCESS_LOG=%s %s audit timeline %s --case " CASE, cli_log, exe,
		    n->data);
	assert_int_equal(rc, 0);
	free(out);
	assert_int_equal(count_program(cli_log, "rete audit timeline", CASE), 1);

	rc = tu_run(&out,
		    "RETE_ACCESS_LOG=%s %s report --store %s --from 2026-01-01 --to 2030-12-31",
		    cli_log, exe, n->data);
	assert_int_equal(rc, 0);
	free(out);
	assert_int_equal(count_program(cli_log, "rete report", "--store"), 1);

	/* an evidence bundle is a read of the log too: recorded with the
	 * message it is about (codes only) */
	char bundle[1400];
	snprintf(bundle, sizeof(bundle), "%s/mother.evidence.json", n->dir);
	rc =
	    tu_run(&out, "RETE_ACCESS_LOG=%s %s evidence export %s " MOTHER_REF " --store %s -o %s",
		   cli_log, exe, it_party_ids[IT_SOCIAL], n->data, bundle);
	if (rc != 0)
		fail_msg("evidence export: %s", out);
	free(out);
	assert_int_equal(count_program(cli_log, "rete evidence export", MOTHER_REF), 1);

	/* sar: in the agency's record (its agent.ini), the person as the
	 * agency's pseudonym, never the fiscal code */
	agent_file(n, IT_SOCIAL, "agent.ini", ini, sizeof(ini));
	char agency_log[1400];
	agent_file(n, IT_SOCIAL, "data/access.log", agency_log, sizeof(agency_log));
	size_t before = count_program(agency_log, "rete sar", "subject access for person ");
	rc = tu_run(&out, "%s sar --person " MOTHER_FC " -c %s", exe, ini);
	assert_int_equal(rc, 0);
	free(out);
	assert_int_equal(count_program(agency_log, "rete sar", "subject access for person "),
			 before + 1);
	assert_int_equal(tu_occurrences(agency_log, MOTHER_FC), 0);
	assert_int_equal(tu_occurrences(agency_log, "\"party\":\"social.mantova\""), before + 1);

	/* a remote read: the auditor's timeline at a distance is recorded by
	 * the auditor's rete (audit.ini's [privacy] access_log) and by the
	 * broker that served the entries, naming the auditor */
	snprintf(audit_ini, sizeof(audit_ini), "%s/audit.ini", n->dir);
	snprintf(audit_log, sizeof(audit_log), "%s/auditor-access.log", n->dir);
	char text[1500];
	snprintf(text, sizeof(text),
		 "[client]\nid = audit.region\nkey = keys/audit.region.key\nbroker = %s\n"
		 "broker_key = keys/" IT_BROKER_ID ".pub\n\n[privacy]\naccess_log = "
		 "auditor-access.log\naccess_keep = 24mo\n",
		 n->listen);
	assert_int_equal(tu_write_file(audit_ini, text, strlen(text)), 0);
	rc = tu_run(&out, "%s audit timeline -c %s --case " CASE, exe, audit_ini);
	if (rc != 0)
		fail_msg("remote timeline: %s", out);
	free(out);
	assert_int_equal(count_program(audit_log, "rete audit timeline", CASE), 1);
	char broker_log[1400];
	snprintf(broker_log, sizeof(broker_log), "%s.access.log", n->data);
	assert_true(count_program(broker_log, "rete-broker", "entries from 0") >= 1);
	assert_true(tu_occurrences(broker_log, "\"who\":\"audit.region\"") >= 1);
	/* the other remote reads: the snapshot (a report at a distance), a
	 * referral (rete status), and the witnesses' proofs */
	rc = tu_run(&out, "%s report -c %s --from 2026-01-01 --to 2030-12-31", exe, audit_ini);
	if (rc != 0)
		fail_msg("remote report: %s", out);
	free(out);
	assert_int_equal(count_program(audit_log, "rete report", "-c"), 1);
	rc = tu_run(&out, "%s status -c %s " MOTHER_REF, exe, ini);
	if (rc != 0)
		fail_msg("rete status: %s", out);
	free(out);
	/* an evidence bundle at a distance asks the broker an inclusion proof
	 * (the agents' witnesses ask consistency proofs only) */
	snprintf(bundle, sizeof(bundle), "%s/mother.remote.evidence.json", n->dir);
	rc = tu_run(&out, "%s evidence export %s " MOTHER_REF " -c %s -o %s", exe,
		    it_party_ids[IT_SOCIAL], audit_ini, bundle);
	if (rc != 0)
		fail_msg("remote evidence export: %s", out);
	free(out);
	const char *served[][2] = {
	    {"snapshot of the referrals", "audit.region"},
	    {"referral " MOTHER_REF, "social.mantova"},
	    {"inclusion proof of entry", "audit.region"},
	    {"consistency proof", "social.mantova"},
	};
	for (size_t i = 0; i < sizeof(served) / sizeof(served[0]); i++) {
		char who[80];
		snprintf(who, sizeof(who), "\"who\":\"%s\",\"what\":\"%s", served[i][1],
			 served[i][0]);
		if (tu_occurrences(broker_log, who) == 0)
			fail_msg("the broker's access record has no line %s", who);
	}

	/* a [privacy] key a coord.ini cannot take is refused, and no read */
	snprintf(text, sizeof(text),
		 "[client]\nid = audit.region\nkey = keys/audit.region.key\nbroker = %s\n"
		 "broker_key = keys/" IT_BROKER_ID ".pub\n\n[privacy]\nkeep_inbox = 30d\n",
		 n->listen);
	assert_int_equal(tu_write_file(audit_ini, text, strlen(text)), 0);
	rc = tu_run(&out, "%s audit timeline -c %s --case " CASE, exe, audit_ini);
	assert_int_equal(rc, 2);
	assert_non_null(strstr(out, "keep_inbox"));
	free(out);
	rc = tu_run(&out, "%s --check-config -c %s", exe, audit_ini);
	assert_int_equal(rc, 2);
	assert_non_null(strstr(out, "[privacy] keep_inbox: belongs in an agent.ini"));
	free(out);
}

static void put_aged(it_net *n, int p, const char *sub, const char *name, int days)
{
	char dir[1300], path[1500];
	it_spool(n, p, sub, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	assert_int_equal(tu_write_file(path, "{}\n", 3), 0);
	it_set_age(path, days);
}

static bool spool_has(it_net *n, int p, const char *sub, const char *name)
{
	char dir[1300], path[1500];
	it_spool(n, p, sub, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return tu_exists(path);
}

/* Retention: files past keep_* are erased at the agent's scan (an .ack of
 * the case system restarts the count), index records past keep_records
 * too, and each erasure is in the agent's access record. */
static void test_retention(void **state)
{
	(void)state;
	it_net *n = it_net_new("retention", NULL);
	assert_non_null(n);
	char path[1500], dir[1300];
	/* the spool folders and files exist before the agent starts */
	it_spool(n, IT_SOCIAL, "", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/agents", n->dir);
	mkdir(path, 0755);
	snprintf(path, sizeof(path), "%s/agents/%s", n->dir, it_party_ids[IT_SOCIAL]);
	mkdir(path, 0755);
	mkdir(dir, 0755);
	const char *subs[] = {"outbox", "sent", "failed", "inbox"};
	for (int i = 0; i < 4; i++)
		mkdir(it_spool(n, IT_SOCIAL, subs[i], path, sizeof(path)), 0755);
	put_aged(n, IT_SOCIAL, "inbox", "000000000001-referral.json", 40);
	put_aged(n, IT_SOCIAL, "inbox", "000000000002-referral.json", 40);
	put_aged(n, IT_SOCIAL, "inbox", "000000000002-referral.json.ack", 2);
	put_aged(n, IT_SOCIAL, "inbox", "000000000003-referral.json", 1);
	put_aged(n, IT_SOCIAL, "sent", "old.json", 40);
	put_aged(n, IT_SOCIAL, "sent", "old.json.receipt.json", 40);
	/* receipted 40 days ago, still waiting for its delivery: its
	 * retention has not started */
	it_spool(n, IT_SOCIAL, "sent", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/pending.json", dir);
	assert_int_equal(tu_write_file(path, "{\"id\": \"pending-1\"}\n", 20), 0);
	it_set_age(path, 40);
	put_aged(n, IT_SOCIAL, "sent", "pending.json.receipt.json", 40);
	put_aged(n, IT_SOCIAL, "failed", "bad.json", 31);
	put_aged(n, IT_SOCIAL, "failed", "bad.json.error.json", 31);
	put_aged(n, IT_SOCIAL, "failed", "new.json", 29);
	/* two index records: one 40 days old, one of today */
	agent_file(n, IT_SOCIAL, "data", path, sizeof(path));
	mkdir(path, 0700);
	char idx[1500], text[1024];
	agent_file(n, IT_SOCIAL, "data/persons.jsonl", idx, sizeof(idx));
	int64_t now = rete_now_ms();
	snprintf(text, sizeof(text),
		 "{\"at\":%lld,\"persons\":[\"aa\"],\"dir\":\"sent\",\"sender\":\"social.mantova\","
		 "\"recipient\":\"cpi.mantova\",\"id\":\"old-1\",\"kind\":\"referral\"}\n"
		 "{\"at\":%lld,\"persons\":[\"bb\"],\"dir\":\"sent\",\"sender\":\"social.mantova\","
		 "\"recipient\":\"cpi.mantova\",\"id\":\"new-1\",\"kind\":\"referral\"}\n"
		 "{\"at\":%lld,\"persons\":[\"cc\"],\"dir\":\"sent\",\"sender\":\"social.mantova\","
		 "\"recipient\":\"cpi.mantova\",\"id\":\"pending-1\",\"kind\":\"referral\"}\n",
		 (long long)(now - 40LL * 86400000), (long long)now,
		 (long long)(now - 40LL * 86400000));
	assert_int_equal(tu_write_file(idx, text, strlen(text)), 0);

	assert_true(it_broker_start(n));
	/* a first start without retention makes the store (and erases
	 * nothing); then an old inbox file gets a hook not run yet */
	put_aged(n, IT_SOCIAL, "inbox", "000000000004-referral.json", 40);
	assert_true(it_agent_start(n, IT_SOCIAL));
	char keyfile[1500];
	agent_file(n, IT_SOCIAL, "data/privacy.key", keyfile, sizeof(keyfile));
	int64_t until = it_mono_ms() + it_scaled_ms(30000);
	while (!tu_exists(keyfile) && it_mono_ms() < until)
		it_nap(50); /* the agent makes its key at start */
	assert_true(tu_exists(keyfile));
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	assert_true(spool_has(n, IT_SOCIAL, "inbox", "000000000001-referral.json"));
	uint8_t at4[8] = {0, 0, 0, 0, 0, 0, 0, 4};
	agent_file(n, IT_SOCIAL, "data", path, sizeof(path));
	tu_raw_put(path, "hooks", "000000000004-referral.json", 26, at4, sizeof(at4));
	tu_raw_put(path, "held", "pending-1", 9, at4, sizeof(at4)); /* not delivered */

	assert_true(it_agent_start_ex(n, IT_SOCIAL,
				      "\n[privacy]\nkeep_inbox = 30d\nkeep_sent = 30d\n"
				      "keep_failed = 30d\nkeep_records = 30d\n"));
	char alog[1500];
	agent_file(n, IT_SOCIAL, "data/access.log", alog, sizeof(alog));
	if (!it_wait_occurrences(alog, "person-index record of message social.mantova/old-1", 1,
				 30000)) {
		it_show(n, "social.mantova.log");
		fail_msg("no erasure of the old index record in %s", alog);
	}
	assert_false(spool_has(n, IT_SOCIAL, "inbox", "000000000001-referral.json"));
	assert_true(spool_has(n, IT_SOCIAL, "inbox", "000000000002-referral.json"));
	assert_true(spool_has(n, IT_SOCIAL, "inbox", "000000000002-referral.json.ack"));
	assert_true(spool_has(n, IT_SOCIAL, "inbox", "000000000003-referral.json"));
	assert_true(spool_has(n, IT_SOCIAL, "inbox", "000000000004-referral.json"));
	assert_int_equal(tu_occurrences(alog, "erased inbox/000000000004"), 0);
	assert_false(spool_has(n, IT_SOCIAL, "sent", "old.json"));
	assert_false(spool_has(n, IT_SOCIAL, "sent", "old.json.receipt.json"));
	assert_false(spool_has(n, IT_SOCIAL, "failed", "bad.json"));
	if (!spool_has(n, IT_SOCIAL, "sent", "pending.json"))
		fail_msg("sent/pending.json was erased though its delivery never came");
	assert_true(spool_has(n, IT_SOCIAL, "sent", "pending.json.receipt.json"));
	assert_int_equal(tu_occurrences(alog, "sent/pending.json"), 0);
	assert_false(spool_has(n, IT_SOCIAL, "failed", "bad.json.error.json"));
	assert_true(spool_has(n, IT_SOCIAL, "failed", "new.json"));
	const char *erased[] = {"erased inbox/000000000001-referral.json",
				"erased sent/old.json:", "erased sent/old.json.receipt.json",
				"erased failed/bad.json:", "erased failed/bad.json.error.json"};
	for (size_t i = 0; i < sizeof(erased) / sizeof(erased[0]); i++)
		if (count_program(alog, "rete-agent", erased[i]) != 1)
			fail_msg("'%s' is not recorded once in %s", erased[i], alog);
	assert_int_equal(tu_occurrences(alog, "erased inbox/000000000002"), 0);
	assert_int_equal(tu_occurrences(alog, "erased inbox/000000000003"), 0);
	assert_int_equal(tu_occurrences(alog, "failed/new.json"), 0);
	assert_int_equal(tu_occurrences(idx, "old-1"), 0);
	assert_int_equal(tu_occurrences(idx, "new-1"), 1);
	/* the record of a message still waiting for its delivery is kept:
	 * its retention counts from the delivery */
	if (tu_occurrences(idx, "pending-1") != 1)
		fail_msg("the person-index record of pending-1 (not delivered) was erased");

	/* a bad retention is refused at the start, with the key and the forms */
	bool bad = false;
	assert_int_equal(it_stop(&n->agent_pid[IT_SOCIAL], SIGTERM, it_wait_ms()), 0);
	char exe[1200], ini[1400], *out = NULL;
	snprintf(exe, sizeof(exe), "%s/rete-agent", n->bin);
	it_write_agent_ini_ex(n, IT_SOCIAL, "\n[privacy]\nkeep_inbox = 3wd\n");
	agent_file(n, IT_SOCIAL, "agent.ini", ini, sizeof(ini));
	int rc = tu_run(&out, "timeout 20 %s -c %s", exe, ini);
	assert_int_equal(rc, 2);
	assert_non_null(strstr(out, "keep_inbox"));
	assert_non_null(strstr(out, "24mo"));
	free(out);
	it_net_free(&n, false, &bad);
	assert_false(bad);
}

/* blob_of: is a sealed part kept for log entry index in the broker's store
 * (database "blobs")? Read beside the running broker (read-only). */
static bool blob_of(it_net *n, uint64_t index)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint8_t key[8];
	for (int i = 0; i < 8; i++)
		key[i] = (uint8_t)(index >> (56 - 8 * i));
	MDB_val k = {8, key}, v;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 32);
	mdb_env_set_mapsize(env, 0);
	assert_int_equal(mdb_env_open(env, n->data, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "blobs", 0, &dbi), 0);
	bool have = mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size > 0;
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return have;
}

/* receipt_index: the log index of sent/NAME's receipt (-1: none yet). */
static int64_t receipt_index(it_net *n, int p, const char *name, int ms)
{
	char dir[1300], path[1500];
	it_spool(n, p, "sent", dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s.receipt.json", dir, name);
	int64_t end = it_mono_ms() + it_scaled_ms(ms);
	while (!tu_exists(path) && it_mono_ms() < end)
		it_nap(50); /* the agent moves the file when the receipt comes */
	json_t *r = tu_load_json(path);
	json_t *v = r ? json_object_get(r, "index") : NULL;
	int64_t idx = -1;
	if (json_is_integer(v))
		idx = json_integer_value(v);
	else if (json_is_string(v))
		idx = strtoll(json_string_value(v), NULL, 10);
	json_decref(r);
	return idx;
}

/* The broker keeps a sealed part only while its entry waits for its
 * recipient: gone once acknowledged, and gone when it expires. */
static void test_broker_blobs(void **state)
{
	(void)state;
	it_net *n = it_net_new("blobs", NULL);
	assert_non_null(n);
	assert_true(it_broker_start(n));
	assert_true(it_agent_start(n, IT_SOCIAL));
	assert_true(it_agent_start(n, IT_CPI)); /* the health service stays away */
	char text[1024];
	const char *fmt =
	    "{\"id\": \"%s\", \"operator\": {\"staffId\": \"as-0042\", \"role\": "
	    "\"social-worker\"}, \"recipient\": \"%s\", \"caseId\": \"" CASE "\", \"referral\": "
	    "{\"service\": \"%s\", \"priority\": \"routine\", \"reasonCode\": \"r-1\", "
	    "\"consent\": {\"basis\": \"consent\", \"givenAt\": \"2026-11-20T09:30:00Z\", "
	    "\"reference\": \"CONS-1\"}, \"ageBand\": \"adult\"}, \"private\": {\"person\": "
	    "{\"name\": \"Maria Rossi\", \"fiscalCode\": \"" MOTHER_FC "\"}}}";
	snprintf(text, sizeof(text), fmt, "blob-1", it_party_ids[IT_CPI], it_service[IT_CPI]);
	it_outbox_put(n, IT_SOCIAL, "to-cpi.json", text);
	snprintf(text, sizeof(text), fmt, "blob-2", it_party_ids[IT_ASST], it_service[IT_ASST]);
	it_outbox_put(n, IT_SOCIAL, "to-asst.json", text);
	int64_t delivered = receipt_index(n, IT_SOCIAL, "to-cpi.json", 30000);
	int64_t waiting = receipt_index(n, IT_SOCIAL, "to-asst.json", 30000);
	assert_true(delivered >= 0 && waiting >= 0);

	/* delivered: the job centre's ack removed it */
	char idx[1400];
	agent_file(n, IT_SOCIAL, "data/persons.jsonl", idx, sizeof(idx));
	assert_true(it_wait_occurrences(idx, "\"delivered\"", 1, 30000));
	assert_false(blob_of(n, (uint64_t)delivered));
	/* waiting for the health service (expiry 5 days): kept */
	assert_true(blob_of(n, (uint64_t)waiting));

	/* the broker started again with an expiry of 1 s: the entry expires
	 * at the next scan, the sender gets its not-delivered notice, and the
	 * sealed part is gone with it */
	assert_int_equal(it_stop(&n->broker_pid, SIGTERM, it_wait_ms()), 0);
	n->expiry = "1s";
	assert_int_equal(it_write_ini(n), 0);
	assert_true(it_broker_start(n));
	char inbox[1300];
	it_spool(n, IT_SOCIAL, "inbox", inbox, sizeof(inbox));
	int64_t end = it_mono_ms() + it_scaled_ms(30000);
	while (tu_count_suffix(inbox, "-notice.json") == 0 && it_mono_ms() < end)
		it_nap(50); /* the agent writes the notice when it comes */
	if (tu_count_suffix(inbox, "-notice.json") == 0) {
		it_show(n, "broker.log");
		fail_msg("no not-delivered notice for the referral to the health service");
	}
	assert_false(blob_of(n, (uint64_t)waiting));
	bool bad = false;
	it_net_free(&n, false, &bad);
	assert_false(bad);
}

int main(void)
{
	const struct CMUnitTest family[] = {
	    cmocka_unit_test(test_sar_mother),
	    cmocka_unit_test(test_sar_every_code),
	    cmocka_unit_test(test_codes_in_case_id),
	    cmocka_unit_test(test_access_records),
	};
	const struct CMUnitTest alone[] = {
	    cmocka_unit_test(test_retention),
	    cmocka_unit_test(test_broker_blobs),
	};
	int rc = cmocka_run_group_tests(family, net_setup, it_teardown);
	return rc + cmocka_run_group_tests(alone, NULL, NULL);
}
