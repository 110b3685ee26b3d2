#!/usr/bin/env bash
# test_witness_fork_pin.sh — the forks a declared restore's link check must
# catch although the directory entry check cannot (rev-final s16, findings
# 1 and 4): test_witness_fork_restore.sh's scenarios dirchange, nowdir and
# honestdir (described there), run apart to keep each test near 2 minutes.
FORK_SCENARIOS="dirchange nowdir honestdir" exec bash "$(dirname "$0")/test_witness_fork_restore.sh"
