#!/usr/bin/env bash
# Validate the Linux desktop integration files of evatag.
#
#   packaging/linux/check.sh
#
# Needs desktop-file-validate and appstreamcli
# (Debian/Ubuntu: apt-get install desktop-file-utils appstream).
# Exits non-zero when a validator reports an error or a warning, or is missing.
set -uo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
app_id=org.evatag.Evatag
desktop="$here/$app_id.desktop"
metainfo="$here/$app_id.metainfo.xml"
status=0

for tool in desktop-file-validate appstreamcli; do
    if ! command -v "$tool" >/dev/null; then
        echo "check.sh: $tool not found (apt-get install desktop-file-utils appstream)" >&2
        exit 2
    fi
done

echo "== desktop-file-validate $app_id.desktop"
# Exits non-zero on errors only; warnings fail this check too. Hints are allowed.
if ! output="$(desktop-file-validate "$desktop" 2>&1)"; then
    status=1
fi
[ -n "$output" ] && echo "$output"
if grep -qE '(error|warning):' <<<"$output"; then
    status=1
fi

echo "== appstreamcli validate --no-net $app_id.metainfo.xml"
# Exits non-zero on errors and warnings; infos and pedantic notes are allowed.
if ! appstreamcli validate --no-net "$metainfo"; then
    status=1
fi

if [ "$status" -eq 0 ]; then
    echo "check.sh: all Linux metadata valid"
else
    echo "check.sh: validation FAILED" >&2
fi
exit "$status"
