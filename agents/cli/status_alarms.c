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

static json_t *alarm_list(agent_db *db)
{
	char *text = alarm_meta(db, AGENT_META_DELIVERY_ALARMS);
	json_t *arr = text ? json_loads(text, 0, NULL) : NULL;
	free(text);
	if (arr != NULL && !json_is_array(arr)) {
		json_decref(arr);
		arr = NULL;
	}
	return arr;
}

static const char *field(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "?";
}

void status_alarms_print(agent_db *db, const char *id, FILE *out)
{
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
