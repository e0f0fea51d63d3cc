#!/usr/bin/env bash
# Take the screenshot of evatag shown in the README and the AppStream metadata.
#
# What it does:
#   1. starts a virtual X server (Xvfb, 1440x900, 24-bit) on a free display;
#   2. builds a small photo library in a temporary folder: the photos of
#      tests/fixtures/photos plus crops, mirror images and recoloured copies of them
#      (20 photos);
#   3. runs target/release/evatag with the tiny test model (tests/fixtures/models/eva_tiny)
#      on the CPU, with a throwaway HOME, settings and cache, and Mesa's software OpenGL;
#   4. makes the window fill the screen, waits until every photo is tagged (the screen
#      stops changing), selects a photo with the keyboard so that the details panel shows
#      it with its five labels, then finds the photos that look like it (the strip under
#      the grid);
#   5. saves a screenshot of the whole screen, reduced to a 256-colour PNG, then opens
#      the photo in the viewer (Enter) and saves that as OUT-viewer.png, then the
#      Duplicates view (Escape, D) as OUT-duplicates.png; closes the app and the X server.
#
# The test model has random weights: the labels it gives are real ImageNet classes, with
# real probabilities, but they do not describe the photos.
#
# Requirements (Debian/Ubuntu):
#   apt-get install xvfb x11-apps imagemagick xdotool libgl1-mesa-dri
#   and the release binary: cargo build --release
#   pngquant, when installed, is used to make the PNG smaller.
#
# Usage:
#   packaging/screenshot.sh [OUT.png]        # default: assets/screenshot.png
#
# Environment:
#   EVATAG_BIN   the evatag executable (default: target/release/evatag); a Windows
#                evatag.exe runs under wine (64-bit) in a throwaway prefix, which shows
#                the Windows build's window:
#                EVATAG_BIN=target/x86_64-pc-windows-gnu/debug/evatag.exe packaging/screenshot.sh OUT.png
#   KEEP_TEMP=1  keep the temporary folder (photos, cache, app log) and print its path
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/assets/screenshot.png}"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac # relative to where the script was started
cd "$root"
binary="${EVATAG_BIN:-target/release/evatag}"
model="tests/fixtures/models/eva_tiny"
fixtures="tests/fixtures/photos"
width=1440
height=900

die() { echo "screenshot.sh: $*" >&2; exit 1; }

for tool in Xvfb xdotool convert import xwd; do
    command -v "$tool" >/dev/null ||
        die "$tool not found (apt-get install xvfb x11-apps imagemagick xdotool libgl1-mesa-dri)"
done
[ -x "$binary" ] || die "no executable at $binary (run 'cargo build --release')"
# The window's X class: the app id, or under wine the executable's name.
window_class=org.evatag.Evatag
runner=()
case "$binary" in
*.exe)
    command -v wine >/dev/null || die "wine not found, which runs $binary (apt-get install wine wine64)"
    window_class="$(basename "$binary")"
    runner=(wine)
    ;;
esac
[ -f "$model/model.safetensors" ] || die "the test model is missing: $model"

started=$SECONDS
tmp="$(mktemp -d "${TMPDIR:-/tmp}/evatag-screenshot.XXXXXX")"
xvfb_pid=""
app_pid=""

stop() { # PID: end the process, politely first
    local pid="$1"
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 20); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    stop "$app_pid"
    if ((${#runner[@]})); then wineserver --kill 2>/dev/null || true; fi
    stop "$xvfb_pid"
    if [ "${KEEP_TEMP:-0}" = 1 ]; then
        echo "screenshot.sh: temporary files kept in $tmp" >&2
    else
        rm -rf "$tmp"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. A virtual X server on a free display ---------------------------------------------
display=""
for n in $(seq 90 140); do
    [ -e "/tmp/.X$n-lock" ] || [ -e "/tmp/.X11-unix/X$n" ] && continue
    Xvfb ":$n" -screen 0 "${width}x${height}x24" -nolisten tcp >"$tmp/xvfb.log" 2>&1 &
    xvfb_pid=$!
    for _ in $(seq 50); do
        [ -e "/tmp/.X11-unix/X$n" ] && break
        kill -0 "$xvfb_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$xvfb_pid" 2>/dev/null && [ -e "/tmp/.X11-unix/X$n" ]; then
        display=":$n"
        break
    fi
    wait "$xvfb_pid" 2>/dev/null || true # lost a race for this display: try the next one
    xvfb_pid=""
done
[ -n "$display" ] || die "could not start Xvfb (see $tmp/xvfb.log)"
export DISPLAY="$display"

# --- 2. A photo library ------------------------------------------------------------------
photos="$tmp/Pictures"
mkdir -p "$photos"
f="$fixtures"
cp "$f/astronaut_portrait.jpg" "$f/camera_landscape.png" "$f/cat_landscape.jpg" \
    "$f/coffee_landscape.jpg" "$f/rocket_portrait.png" "$photos/"
closeup=(-gravity center -crop 62%x62%+0+0 +repage)
convert "$f/astronaut_portrait.jpg" "${closeup[@]}" "$photos/astronaut_closeup.jpg"
convert "$f/astronaut_portrait.jpg" -flop -modulate 100,80 "$photos/astronaut_mirror.jpg"
convert "$f/astronaut_portrait.jpg" -resize 60% "$photos/astronaut_small.jpg"
convert "$f/camera_landscape.png" "${closeup[@]}" "$photos/camera_closeup.jpg"
convert "$f/camera_landscape.png" -colorspace sRGB -type TrueColor -sepia-tone 80% "$photos/camera_sepia.jpg"
convert "$f/cat_landscape.jpg" "${closeup[@]}" "$photos/cat_closeup.jpg"
convert "$f/cat_landscape.jpg" -modulate 70,90 "$photos/cat_dim.jpg"
convert "$f/cat_landscape.jpg" -flop "$photos/cat_mirror.jpg"
convert "$f/cat_landscape.jpg" -gravity center -crop 300x300+0+0 +repage "$photos/cat_square.jpg"
convert "$f/coffee_landscape.jpg" "${closeup[@]}" "$photos/coffee_closeup.jpg"
convert "$f/coffee_landscape.jpg" -rotate 90 "$photos/coffee_rotated.jpg"
convert "$f/coffee_landscape.jpg" -modulate 105,130,96 "$photos/coffee_warm.jpg"
convert "$f/rocket_portrait.png" "${closeup[@]}" "$photos/rocket_closeup.jpg"
convert "$f/rocket_portrait.png" -flop "$photos/rocket_mirror.jpg"
convert "$f/rocket_portrait.png" -resize 50% "$photos/rocket_small.jpg"
count=$(find "$photos" -type f | wc -l)

# --- 3. The app, with nothing of the user's --------------------------------------------
mkdir -p "$tmp/home" "$tmp/cache"
library="$photos"
if ((${#runner[@]})); then
    # A wine prefix of its own, and the photos' folder as Windows names it (on drive Z:).
    # shellcheck source=tests/windows/wine.sh
    source tests/windows/wine.sh
    new_prefix "$tmp/wine"
    library="$(winepath -w "$photos")"
fi
HOME="$tmp/home" \
    XDG_DATA_HOME="$tmp/home/.local/share" \
    XDG_CONFIG_HOME="$tmp/home/.config" \
    XDG_CACHE_HOME="$tmp/home/.cache" \
    EVATAG_CACHE_DIR="$tmp/cache" \
    LIBGL_ALWAYS_SOFTWARE=1 \
    RUST_LOG=error \
    "${runner[@]}" "$binary" --model-dir "$model" --device cpu "$library" >"$tmp/evatag.log" 2>&1 &
app_pid=$!

window=""
for _ in $(seq 150); do
    window="$(xdotool search --onlyvisible --class "$window_class" 2>/dev/null | head -n1 || true)"
    [ -n "$window" ] && break
    kill -0 "$app_pid" 2>/dev/null || { cat "$tmp/evatag.log" >&2; die "evatag exited early"; }
    sleep 0.2
done
[ -n "$window" ] || { cat "$tmp/evatag.log" >&2; die "no evatag window after 30 s"; }

# No window manager runs, so the window sits at the top left corner: make it the screen.
xdotool windowmove "$window" 0 0 windowsize "$window" "$width" "$height"

shot() { # FILE: the whole screen
    xwd -root -silent | convert xwd:- "$1"
}

# Waits until the screen has not changed for STABLE polls in a row, and at least
# MIN seconds; gives up after MAX seconds. Spinners and progress bars keep changing the
# screen while the model loads and the photos are tagged.
settle() { # MIN STABLE MAX
    local min="$1" stable="$2" max="$3" begin=$SECONDS last="" same=0 now
    while [ $((SECONDS - begin)) -lt "$max" ]; do
        sleep 0.5
        now="$(xwd -root -silent | md5sum)"
        if [ "$now" = "$last" ]; then same=$((same + 1)); else same=0; fi
        last="$now"
        if [ "$same" -ge "$stable" ] && [ $((SECONDS - begin)) -ge "$min" ]; then
            return 0
        fi
    done
    echo "screenshot.sh: the screen was still changing after $max s, going on" >&2
}

# --- 4. Wait for the tags, pick a photo, find similar ones --------------------------------
settle 4 4 60

# The keyboard picks the photo, as a person could: Home selects the first photo in name
# order, and cat_landscape.jpg is the tenth; S finds the photos that look like it.
xdotool windowfocus --sync "$window" 2>/dev/null || xdotool windowfocus "$window"
xdotool mousemove $((width / 2)) $((height - 12))
xdotool key Home
xdotool key --delay 120 Right Right Right Right Right Right Right Right Right
settle 1 2 10
xdotool key s
settle 1 2 10

# Park the pointer on the status bar so that nothing shows a hover state.
xdotool mousemove $((width / 2)) $((height - 12))
settle 1 2 5

# --- 5. The screenshots ------------------------------------------------------------------
# Reduced to 256 colours (pngquant when installed).
save() { # FROM TO
    mkdir -p "$(dirname "$2")"
    if command -v pngquant >/dev/null; then
        pngquant --force --speed 1 --quality 70-95 --output "$2" -- "$1" ||
            convert "$1" -colors 256 -strip "PNG8:$2"
    else
        convert "$1" -colors 256 -strip "PNG8:$2"
    fi
}

shot "$tmp/full.png"
save "$tmp/full.png" "$out"

# The viewer: Enter opens the selected photo as large as the window allows.
viewer_out="${out%.png}-viewer.png"
xdotool key Return
settle 1 2 10
shot "$tmp/viewer.png"
save "$tmp/viewer.png" "$viewer_out"

# The Duplicates view: Escape closes the viewer, D compares the photos.
duplicates_out="${out%.png}-duplicates.png"
xdotool key Escape
settle 1 2 10
xdotool key d
settle 2 3 20
shot "$tmp/duplicates.png"
save "$tmp/duplicates.png" "$duplicates_out"

echo "screenshot.sh: ${out#"$root"/}, ${viewer_out#"$root"/} and ${duplicates_out#"$root"/} ($count photos, ${width}x${height}, $(du -k "$out" | cut -f1) KiB, $((SECONDS - started)) s)"
