#!/usr/bin/env bash
# Install mgap as users do, from a built wheel into a clean venv (no -e), and start every
# entry point: every module imports, the CLI answers, the demo runs and the TUI draws.
# Run from the repository root: bash .ci/wheel_check.sh
set -euo pipefail
repo=$(pwd)
work=$(mktemp -d)
socket="mgap-wheel-$$"
cleanup() {
    tmux -L "$socket" kill-server 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

python3 -m pip wheel -q --no-deps -w "$work/dist" "$repo"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$work"/dist/mgap-*.whl
cd "$work"  # away from the checkout, whose mgap/ folder would shadow the installed package
py="$work/venv/bin/python"
mgap="$work/venv/bin/mgap"

"$py" - <<'PY'
import importlib
import pkgutil

import mgap

names = [m.name for m in pkgutil.walk_packages(mgap.__path__, "mgap.")]
for name in names:
    importlib.import_module(name)
assert "mgap.engine.attention.report" in names and "mgap.tui.app" in names, names
print(f"wheel: {len(names)} modules import from {mgap.__file__}")
PY
"$mgap" --version
"$mgap" attention --help >/dev/null
MGAP_STORE_DIR="$work/stores" "$mgap" demo --quick --no-tui >/dev/null

# the TUI's first frame, in a real terminal
tmux -L "$socket" new-session -d -x 100 -y 30 \
    "cd '$work' && NO_COLOR=1 MGAP_CONFIG='$work/none.toml' '$mgap' tui --store-dir '$work/stores'"
for _ in $(seq 1 60); do
    if tmux -L "$socket" capture-pane -p | grep -q "Stores"; then
        echo "wheel: the TUI started"
        exit 0
    fi
    sleep 1
done
tmux -L "$socket" capture-pane -p
echo "wheel: the TUI showed no Stores pane in 60 s" >&2
exit 1
