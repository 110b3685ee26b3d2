#!/usr/bin/env bash
# test_witness_fork_pin.sh — the forks a declared restore's link check must
# catch although the directory entry check cannot (rev-final s16, findings
# 1 and 4) or that a refused pin question must not switch off (rev-pin s17,
# finding 2): test_witness_fork_restore.sh's scenarios dirchange, nowdir,
# honestdir and pinrefused (described there), run apart from its others.
FORK_SCENARIOS="dirchange nowdir honestdir pinrefused" exec bash "$(dirname "$0")/test_witness_fork_restore.sh"
