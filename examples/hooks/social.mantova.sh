#!/usr/bin/env bash
# social.mantova.sh — the social services' side of the demo story: when the
# clinic rejects the son's referral, the son is re-referred to the family
# centre's group for teenagers, linked to the first referral.
. "$(dirname "$0")/common.sh"
hook_once
if [ "$(field .kind)" = update ] && [ "$(field .message.update.status)" = rejected ] &&
	[ "$(field .sender)" = asst.mantova ]; then
	send <<JSON
{"operator": {"staffId": "as-0042", "role": "social-worker"},
 "recipient": "family.mantova", "caseId": "$(field .message.caseId)",
 "referral": {"service": "teen-group", "priority": "urgent",
   "reasonCode": "school-withdrawal",
   "consent": {"basis": "guardian-consent", "givenAt": "2026-11-20T09:35:00Z",
               "reference": "CONS-2026-0413"},
   "ageBand": "14-18", "previousReferral": "$(field .message.update.referralId)"},
 "private": {"person": {"name": "Luca Bianchi", "fiscalCode": "BNCLCU10T12E897Q",
                        "personId": "SM-P-000418"},
   "reason": "The clinic has no capacity; a peer group may help him return to school."}}
JSON
fi
hook_done
