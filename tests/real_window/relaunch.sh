#!/usr/bin/env bash
# The real window keeps its state through a logout. Under a virtual X server (Xvfb), the
# evatag binary is given a folder of 24 photos, one of them named in Latin-1 (not UTF-8), and
# the tiny test model's folder; once every photo is tagged it gets SIGTERM, as at a logout.
# Checked then:
#   - it saves and exits within 10 s;
#   - library.json holds all 24 photos with their labels, the Latin-1 one by its bytes;
#   - library.json remembers the folder, settings.json the model folder.
# Relaunched with no arguments and no network (HF_HUB_OFFLINE=1), its log must show the 24
# photos restored with their labels, the folder and the model folder, and the model ready;
# after a second SIGTERM the saved files still hold everything.
#
# Usage: tests/real_window/relaunch.sh [EVATAG_BINARY]   (default: target/debug/evatag)
# Needs: Xvfb and Mesa's software OpenGL (apt-get install xvfb libgl1-mesa-dri), python3.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
binary="$(realpath "${1:-$root/target/debug/evatag}")"
model="$root/tests/fixtures/models/eva_tiny"
die() { echo "relaunch.sh: $*" >&2; exit 1; }
[ -x "$binary" ] || die "no binary at $binary (cargo build)"
command -v Xvfb >/dev/null || die "Xvfb not found (apt-get install xvfb libgl1-mesa-dri)"

tmp="$(mktemp -d)"
xvfb_pid=""
app_pid=""
cleanup() {
    [ -n "$app_pid" ] && kill -9 "$app_pid" 2>/dev/null || true
    [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

for n in $(seq 90 120); do
    [ -e "/tmp/.X11-unix/X$n" ] && continue
    Xvfb ":$n" -screen 0 1280x800x24 -nolisten tcp >"$tmp/xvfb.log" 2>&1 &
    xvfb_pid=$!
    for _ in $(seq 50); do [ -e "/tmp/.X11-unix/X$n" ] && break; sleep 0.1; done
    if kill -0 "$xvfb_pid" 2>/dev/null && [ -e "/tmp/.X11-unix/X$n" ]; then
        export DISPLAY=":$n"
        break
    fi
    xvfb_pid=""
done
[ -n "$xvfb_pid" ] || die "no X server could be started"

# A user of our own: settings, data and cache under the temporary folder.
export HOME="$tmp/home" XDG_CONFIG_HOME="$tmp/home/.config" XDG_DATA_HOME="$tmp/home/.local/share"
export XDG_CACHE_HOME="$tmp/home/.cache" LIBGL_ALWAYS_SOFTWARE=1 RUST_LOG=evatag=info
unset EVATAG_CACHE_DIR
photos="$tmp/photos"
mkdir -p "$HOME" "$photos"
i=0
while [ "$i" -lt 23 ]; do
    for photo in "$root"/tests/fixtures/photos/*; do
        [ "$i" -lt 23 ] || break
        cp "$photo" "$photos/p$(printf %02d "$i")-$(basename "$photo")"
        i=$((i + 1))
    done
done
cp "$root/tests/fixtures/photos/cat_landscape.jpg" "$photos/$(printf 'caf\xe9-latin1.jpg')"

library="$XDG_DATA_HOME/evatag/library.json"
settings="$XDG_CONFIG_HOME/evatag/settings.json"
log="$XDG_DATA_HOME/evatag/evatag.log"

# Prints how many photos library.json holds and how many have labels, and whether the
# Latin-1 one is among the tagged, by its bytes.
count_saved() {
    python3 - "$library" <<'PY'
import json, sys
try:
    photos = json.load(open(sys.argv[1]))["photos"]
except (OSError, ValueError, KeyError, TypeError):
    print("0 0 no"); sys.exit()
tagged = [p for p in photos if p.get("labels")]
latin1 = any(bytes.fromhex(p.get("path_bytes", "")).endswith(b"caf\xe9-latin1.jpg") for p in tagged)
print(len(photos), len(tagged), "yes" if latin1 else "no")
PY
}

stop_app() {
    kill -TERM "$app_pid"
    for _ in $(seq 100); do kill -0 "$app_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$app_pid" 2>/dev/null && die "still running 10 s after SIGTERM"
    wait "$app_pid" || true
    app_pid=""
}

"$binary" --model-dir "$model" --device cpu "$photos" >"$tmp/first.out" 2>&1 &
app_pid=$!
saved=""
for _ in $(seq 240); do
    kill -0 "$app_pid" 2>/dev/null || die "the app ended early: $(cat "$tmp/first.out")"
    saved="$(count_saved)"
    [ "$saved" = "24 24 yes" ] && break
    sleep 0.5
done
[ "$saved" = "24 24 yes" ] || die "library.json after 2 minutes: $saved (photos, tagged, Latin-1 one tagged)"
stop_app
[ "$(count_saved)" = "24 24 yes" ] || die "library.json after SIGTERM: $(count_saved)"
python3 - "$settings" "$library" "$photos" "$model" <<'PY' || die "the folder or the model is not remembered: $(cat "$settings")"
import json, sys
settings, library = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
assert library["folders"] == [sys.argv[3]], library["folders"]
assert settings["model_dir"] == sys.argv[4], settings["model_dir"]
PY

# The relaunch, with nothing on the command line and no network; its log lines are those
# after the first run's.
first_lines="$(wc -l <"$log")"
relaunch_log() { tail -n "+$((first_lines + 1))" "$log"; }
HF_HUB_OFFLINE=1 "$binary" >"$tmp/second.out" 2>&1 &
app_pid=$!
ready=""
for _ in $(seq 120); do
    kill -0 "$app_pid" 2>/dev/null || die "the relaunched app ended early: $(cat "$tmp/second.out")"
    if relaunch_log | grep -q 'model: Ready'; then ready=yes; break; fi
    sleep 0.5
done
[ -n "$ready" ] || die "the relaunched app did not load the remembered model: $(relaunch_log | tail -5)"
restored="$(relaunch_log | grep 'restored')"
case "$restored" in
    *"restored 24 photos (24 tagged), folders [\"$photos\"], model Dir(\"$model\")"*) ;;
    *) die "the relaunch restored: $restored" ;;
esac
sleep 3
stop_app
[ "$(count_saved)" = "24 24 yes" ] || die "library.json after the relaunch: $(count_saved)"
echo "relaunch.sh: 24 photos (one named in Latin-1) tagged, saved at SIGTERM, restored with their labels, folder and model"
