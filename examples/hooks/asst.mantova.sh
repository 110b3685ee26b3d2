#!/usr/bin/env bash
# asst.mantova.sh — the family counselling clinic's side of the demo story:
# it has no capacity and rejects the referral, with the reason: the code in
# the log, the sentence behind it sealed for social services alone.
. "$(dirname "$0")/common.sh"
hook_once
if [ "$(field .kind)" = referral ]; then
	send <<JSON
{"operator": {"staffId": "cf-003", "role": "psychologist"},
 "recipient": "$(field .sender)", "caseId": "$(field .message.caseId)",
 "update": {"referralId": "$(field .message.id)", "status": "rejected",
   "statusReason": {"code": "lack-of-capacity"}},
 "private": {"statusText": "No psychologist free for new cases before February."}}
JSON
fi
hook_done
