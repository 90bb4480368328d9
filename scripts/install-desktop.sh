#!/usr/bin/env bash
# Install vol3d's desktop entry, icon and MIME types for the current user, so that a
# double-click on a .nii, .nii.gz or .nrrd file opens vol3d.
#
#   scripts/install-desktop.sh [PATH_TO_vol3d]    (make install-desktop passes the venv's)
#   scripts/install-desktop.sh --uninstall
#
# Honours XDG_DATA_HOME (default ~/.local/share). The desktop database, MIME database
# and icon cache are refreshed with whichever of the freedesktop tools are installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
res="$here/resources"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
apps="$data/applications"
mime="$data/mime"
icons="$data/icons/hicolor"
types=(application/x-nifti1 application/x-nifti1-gz application/x-nrrd)

have() { command -v "$1" >/dev/null 2>&1; }

refresh() {
    if have update-mime-database; then update-mime-database "$mime" >/dev/null 2>&1 || true; fi
    if have update-desktop-database; then update-desktop-database -q "$apps" || true; fi
    if have gtk-update-icon-cache; then gtk-update-icon-cache -q -f -t "$icons" >/dev/null 2>&1 || true; fi
}

# copy to a temporary name beside the target, then rename: never a half-written file
put() {  # put SRC DEST
    mkdir -p "$(dirname "$2")"
    local tmp="$2.tmp.$$"
    cp "$1" "$tmp" && chmod 644 "$tmp" && mv -f "$tmp" "$2"
}

if [[ "${1:-}" == "--uninstall" ]]; then
    rm -f "$apps/vol3d.desktop" "$mime/packages/vol3d.xml" \
          "$icons/scalable/apps/vol3d.svg" "$icons/256x256/apps/vol3d.png"
    refresh
    echo "vol3d desktop integration removed from $data"
    exit 0
fi

exe="${1:-}"
if [[ -z "$exe" ]]; then
    exe="$(command -v vol3d || true)"
    [[ -n "$exe" ]] || exe="$here/.venv/bin/vol3d"
fi
if [[ ! -x "$exe" ]]; then
    echo "install-desktop: $exe is not an executable vol3d (run 'make run' or 'pip install -e .' first)" >&2
    exit 1
fi
exe="$(cd "$(dirname "$exe")" && pwd)/$(basename "$exe")"
# the desktop entry spec needs escaping for these inside a quoted Exec argument; refuse them
if [[ "$exe" == *[\"\`\$\\]* ]]; then
    echo "install-desktop: cannot write a desktop entry for a path containing \" \` \$ or \\: $exe" >&2
    exit 1
fi

tmp_entry="$(mktemp)"
trap 'rm -f "$tmp_entry"' EXIT
sed -e "s|^Exec=vol3d |Exec=\"$exe\" |" -e "s|^TryExec=vol3d\$|TryExec=$exe|" "$res/vol3d.desktop" >"$tmp_entry"
put "$tmp_entry" "$apps/vol3d.desktop"
put "$res/vol3d-mime.xml" "$mime/packages/vol3d.xml"
put "$res/vol3d.svg" "$icons/scalable/apps/vol3d.svg"
put "$res/vol3d.png" "$icons/256x256/apps/vol3d.png"
refresh
if have xdg-mime; then
    xdg-mime default vol3d.desktop "${types[@]}" || true
fi
echo "vol3d desktop entry installed in $apps (runs $exe)"
for tool in update-mime-database update-desktop-database xdg-mime; do
    have "$tool" || echo "  note: $tool not found; the file manager picks the changes up on its next start"
done
