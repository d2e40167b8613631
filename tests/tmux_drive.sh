#!/usr/bin/env bash
# Drive the real `mgap tui` in an 80x24 tmux window, as a person over SSH would,
# asserting on what `tmux capture-pane` shows.
#
#   tests/tmux_drive.sh              browse a store: gap, categories, retrieval, help, resize
#   MGAP_TMUX_EXTRACT=1 tests/...    first extract a store from the TUI (random-init
#                                    open_clip on the synthetic set; minutes on a busy CPU)
#
# Exit 0 when every step showed what it should; otherwise 1 with the last screen.
set -euo pipefail

PYTHON=${PYTHON:-python}
WORK=$(mktemp -d)
SOCKET="mgap-drive-$$"
SESSION=tui
STORES="$WORK/stores"
export NO_COLOR=1 MGAP_CONFIG="$WORK/none.toml" XDG_CACHE_HOME="$WORK/cache"

cleanup() {
    tmux -L "$SOCKET" kill-server 2>/dev/null || true
    rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$SOCKET"  # the server leaves its socket behind
    rm -rf "$WORK"
}
trap cleanup EXIT

screen() { tmux -L "$SOCKET" capture-pane -p -t "$SESSION"; }
keys() { tmux -L "$SOCKET" send-keys -t "$SESSION" "$@"; }

fail() {
    echo "tmux_drive: FAILED: $*" >&2
    echo "---- last screen ----" >&2
    screen >&2 || true
    exit 1
}

# wait_for TEXT [SECONDS]: poll the screen until TEXT appears
wait_for() {
    local text=$1 limit=${2:-30} waited=0
    until screen | grep -qF -- "$text"; do
        sleep 0.25
        waited=$((waited + 1))
        [ "$waited" -ge $((limit * 4)) ] && fail "'$text' did not appear within ${limit}s"
    done
    echo "tmux_drive: ok: $text (${SECONDS}s)"
}

# a store with categories, the way a finished extraction leaves one
mkdir -p "$STORES"
"$PYTHON" - "$STORES/demo.h5" <<'PY'
import sys
import numpy as np
from mgap.store.build import store_from_arrays

rng = np.random.default_rng(0)
n, d = 90, 16
primary = np.arange(n) % 3
X = rng.normal(size=(n, d)) + np.eye(d)[0] * np.array([0.2, 1.0, 2.5])[primary][:, None]
Y = X + rng.normal(size=(n, d)) * 0.5 + np.eye(d)[1] * 1.5
store_from_arrays(
    sys.argv[1], image_embeddings=X, text_embeddings=Y,
    category_names=["cat", "dog", "car"], supercategories=["animal", "animal", "vehicle"],
    primary=primary, labels=np.eye(3, dtype=bool)[primary],
    provenance={"model": "demo", "dataset": "synthetic", "split": "test"},
)
PY

# keys a person types after looking at the screen: wait for what a step opens, then type
tmux -L "$SOCKET" new-session -d -s "$SESSION" -x 80 -y 24 \
    "$PYTHON -m mgap tui --store-dir '$STORES'; echo TUI-EXITED-\$?; sleep 60"

wait_for "1 Models" 60
wait_for "tab Pane"

if [ "${MGAP_TMUX_EXTRACT:-0}" = 1 ]; then
    keys /
    sleep 1
    keys "open_clip:ViT-S-32-alt@random" Enter
    wait_for "picked: open_clip:ViT-S-32-alt@random"
    keys 2
    wait_for "synthetic"
    keys Space l
    wait_for "limit (images; empty = all)"
    keys 8 Enter
    wait_for "picked: synthetic:test[:8]"
    keys e
    wait_for "3 Jobs"
    wait_for "synthetic-test__open_clip-ViT-S-32-alt-random.h5" 120
    wait_for "complete" 900
    keys 4
    wait_for "synthetic-test__open_clip-ViT-S-32-alt-random.h5"
fi

keys 4
wait_for "demo.h5"
wait_for "complete"
# the Stores list is sorted by name: demo.h5 comes first
keys Home Space Enter
wait_for "demo.h5 (1/1)"
wait_for "L2M" 60
wait_for "all rows"
keys Down
wait_for "cat (category)"
keys Down
wait_for "dog (category)"
keys Enter
wait_for "dog · worst by pair"
wait_for "retrieved" 60
keys Down
keys Escape
wait_for "dog (category)"
keys v
wait_for "image→text" 60
keys v
keys m
wait_for "scatter: umap"
keys "?"
wait_for "results.method"
keys Escape
tmux -L "$SOCKET" resize-window -t "$SESSION" -x 70 -y 20
wait_for "The terminal is 70×20"
tmux -L "$SOCKET" resize-window -t "$SESSION" -x 80 -y 24
wait_for "dog (category)"
keys q
wait_for "TUI-EXITED-0"
echo "tmux_drive: all steps passed"
