#!/usr/bin/env bash
# cpi.mantova.sh — the job centre's side of the demo story: a referral for
# employment orientation is accepted, an appointment booked, the service
# agreement ("patto di servizio") signed and recorded, and the referral
# completed with a successful outcome.
. "$(dirname "$0")/common.sh"
hook_once
kind=$(field .kind)
service=$(field .message.referral.service)
if [ "$kind" != referral ] || [ "$service" != employment-orientation ]; then
	hook_done
	exit 0
fi
ref=$(field .message.id)
case_id=$(field .message.caseId)
from=$(field .sender)
op='{"staffId": "cpi-017", "role": "employment-counsellor"}'

update() { # STATUS EXTRA-JSON-FIELDS [EXTRA-TOP-LEVEL-FIELDS]
	send <<JSON
{"operator": $op, "recipient": "$from", "caseId": "$case_id",
 "update": {"referralId": "$ref", "status": "$1" $2} ${3:-}}
JSON
}

update accepted ''
update in-progress ', "businessStatus": "appointment-booked"'
agreement=$(printf 'Patto di servizio - case %s\nSigned at the job centre.\n' "$case_id" | base64 -w0)
send <<JSON
{"operator": $op, "recipient": "$from", "caseId": "$case_id",
 "note": {"referralId": "$ref", "kind": "service-agreement"},
 "private": {"notes": "The signed service agreement is attached.",
   "attachments": [{"name": "patto-di-servizio.txt", "mediaType": "text/plain",
                    "content": "$agreement"}]}}
JSON
update in-progress ', "businessStatus": "patto-di-servizio-signed"'
# the outcome's code in the log, the comment sealed for social services
update completed ', "outcome": {"result": "successful"}' \
	', "private": {"outcomeText": "Enrolled in a training course."}'
hook_done
