/* status_alarms.c — the alarms `rete status` shows (see status_alarms.h). */
#include "status_alarms.h"

#include <string.h>

/* alarm_meta reads meta key of db as text (malloc'd, NUL-terminated), or
 * NULL when there is none. */
static char *alarm_meta(agent_db *db, const char *key)
{
	rete_buf v = {0};
	char *text = NULL;
	if (db != NULL && agent_db_get(db, AGENT_DB_META, key, strlen(key), &v, NULL) == RETE_OK &&
	    v.len > 0)
		text = strndup((const char *)v.data, v.len);
	rete_buf_free(&v);
	return text;
}

/* meta_json reads meta key of db as JSON of the type wanted (an array, or
 * an object), or NULL when there is none or it is of another type. */
static json_t *meta_json(agent_db *db, const char *key, json_type want)
{
	char *text = alarm_meta(db, key);
	json_t *j = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	if (j != NULL && json_typeof(j) != want) {
		json_decref(j);
		j = NULL;
	}
	return j;
}

static json_t *alarm_list(agent_db *db)
{
	return meta_json(db, AGENT_META_DELIVERY_ALARMS, JSON_ARRAY);
}

static const char *field(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "?";
}

/* accepted_record: the operator's acceptance of a log epoch (meta
 * AGENT_META_EPOCH_ACCEPTED, rete-agent --accept-epoch), or NULL. */
static json_t *accepted_record(agent_db *db)
{
	return meta_json(db, AGENT_META_EPOCH_ACCEPTED, JSON_OBJECT);
}

static void accepted_print(agent_db *db, const char *id, FILE *out)
{
	json_t *o = accepted_record(db);
	if (o == NULL)
		return;
	json_t *d = json_object_get(o, "dropped"), *t = json_object_get(o, "taken");
	fprintf(out,
		"%s: log epoch %" JSON_INTEGER_FORMAT " was accepted by the operator (%s, at %s, "
		"rete-agent --accept-epoch) after a witness alarm on its restore; the baseline "
		"dropped: epoch %" JSON_INTEGER_FORMAT ", size %" JSON_INTEGER_FORMAT ", root %s; ",
		id, json_integer_value(json_object_get(o, "epoch")), field(o, "by"), field(o, "at"),
		json_integer_value(json_object_get(d, "epoch")),
		json_integer_value(json_object_get(d, "size")), field(d, "root"));
	if (t != NULL)
		fprintf(out,
			"the checkpoint of size %" JSON_INTEGER_FORMAT
			", root %s, became the witness's baseline at %s\n",
			json_integer_value(json_object_get(t, "size")), field(t, "root"),
			field(t, "at"));
	else
		fprintf(out, "the agent takes the next checkpoint of that epoch it verifies as "
			     "its baseline (not yet)\n");
	json_decref(o);
}

void status_alarms_print(agent_db *db, const char *id, FILE *out)
{
	accepted_print(db, id, out);
	char *witness = alarm_meta(db, "alarm");
	if (witness != NULL)
		fprintf(
		    out,
		    "%s: WITNESS ALARM: %s (kept in the agent's store since; keep data/ and tell "
		    "the network's auditors: docs/agent.md, \"Witness\")\n",
		    id, witness);
	free(witness);
	json_t *arr = alarm_list(db), *a;
	size_t i;
	json_array_foreach(arr, i, a)
	{
		bool refused = strcmp(field(a, "kind"), "delivery-refused") == 0;
		fprintf(out,
			"%s: DELIVERY ALARM: the broker logged a %s to %s that %s did not sign "
			"(entry %s): %s; message %s (log entry %s) is kept as not yet %s (said at "
			"%s; docs/agent.md, \"Delivery receipts\")\n",
			id, refused ? "refusal of delivery" : "delivery", field(a, "recipient"),
			field(a, "recipient"), field(a, "entry"), field(a, "why"),
			field(a, "messageId"), field(a, "deliveredIndex"),
			refused ? "answered" : "delivered", field(a, "at"));
	}
	json_decref(arr);
}

void status_alarms_json(agent_db *db, json_t *doc)
{
	json_t *acc = accepted_record(db);
	if (acc != NULL)
		json_object_set_new(doc, "epochAccepted", acc);
	char *witness = alarm_meta(db, "alarm");
	if (witness != NULL)
		json_object_set_new(doc, "witnessAlarm", json_string(witness));
	free(witness);
	json_t *arr = alarm_list(db);
	if (arr != NULL && json_array_size(arr) > 0)
		json_object_set_new(doc, "deliveryAlarms", arr);
	else
		json_decref(arr);
}
