#!/usr/bin/env bash
# family.mantova.sh — the family centre's side of the demo story: it
# accepts a place in its group for teenagers; the parenting-support referral
# is left unanswered (it becomes overdue, for the coordinator to see).
. "$(dirname "$0")/common.sh"
hook_once
if [ "$(field .kind)" = referral ] && [ "$(field .message.referral.service)" = teen-group ]; then
	send <<JSON
{"operator": {"staffId": "fc-011", "role": "educator"},
 "recipient": "$(field .sender)", "caseId": "$(field .message.caseId)",
 "update": {"referralId": "$(field .message.id)", "status": "accepted"}}
JSON
fi
hook_done
