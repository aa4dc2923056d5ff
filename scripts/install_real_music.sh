#!/usr/bin/env bash
# Real recorded music (plain mixtures, no stems) from Debian game-soundtrack packages, as
#   data/real/<package>/<path under the package's music folder>
# for diffariff.data.mixtures.load_mixtures("data/real"). Idempotent: run it again at any time.
#   1. Installs the packages below when they are missing and we are root; otherwise prints the
#      apt-get command and goes on with the ones that are installed.
#   2. Links only the music: for each package, the files under its music folder whose names match
#      its pattern (sound effects, speech and jingles shipped beside the music are not linked; the
#      rule of each package is in MUSIC below). Music packed in a .pk3 (a zip file) is extracted
#      instead (a symlink cannot point into an archive). Links whose target is gone are removed.
#   3. Links each package's /usr/share/doc/PKG/copyright as data/real/<package>/COPYRIGHT (for
#      attribution; CC-BY and CC-BY-SA music asks for it).
# The adapter also skips files shorter than 10 s (e.g. two drascula jingles of 7 and 9 s).
# Never add these here; they are reserved for held-out evaluation: wesnoth-*-music,
# fretsonfire-songs-*, musescore-general-soundfont*.
set -euo pipefail
cd "$(dirname "$0")/.."

# Package -- licence of its music, from /usr/share/doc/PKG/copyright (each one allows use,
# modification and redistribution; none forbids training on it).
PACKAGES=(
  hyperrogue-music       # music/: CC-BY-SA-3.0 (Shawn Parrotte, Lincoln Domina, Will Savino), rest GPL-2+
  singularity-music      # CC-BY-SA 3.0 (Max McCracken)
  planetblupi-music-ogg  # GPL-3+ (EPSITEC SA / Mathieu Schroeter); the adapter holds it out as test_ood
  drascula-music         # Drascula licence (Alcachofa Soft; free redistribution, modification allowed)
  pushover-data          # GPL-3+ (music by Roberto Lorenz)
  warzone2100-music      # GPL-2+; aftermath soundtrack CC-BY-SA-3.0 or GPL-2+ (albums/*/license.txt)
  asc-music              # GPL-2+ (Michael Kievernagel); 22.05 kHz mp3, no content above 11 kHz
  nexuiz-music           # GPL-2+ (Alientrap); in music.pk3
  ufoai-music            # GPL-2+, CC-BY-3.0, CC-BY-SA-3.0 or public domain per file; in 0music.pk3
)
# Packages looked at and left out: openttd-openmsx (MIDI only), fb-music-high (.xm module),
# tomatoes-data (.it module; a game's data, one tune), xblast-tnt-musics (headerless .raw files).

# Package -> "music folder or .pk3|regex a music file's path under it matches|regex it must not
# match" (extended regexes, bash =~). Only files passing both are used. Rules beyond "the music folder":
#   hyperrogue-music  music/ only (sounds/ beside it holds 84 sound effects)
#   drascula-music    audio/track*.ogg (de/ en/ es/ fr/ it/ are symlinks to the same files)
#   pushover-data     themes/*.ogg, the level music (the package holds no other audio)
#   warzone2100-music every *.opus except menu.opus and original_soundtrack/track3.opus, whose
#                     remakes (aftermath_soundtrack/menu_enhanced, track3_enhanced) are kept: a piece
#                     and its remake must not fall on both sides of the train / test split
#   nexuiz-music      sound/cdtracks/*.ogg except thunder.ogg (an 11 kHz thunder effect, not music)
#   ufoai-music       music/*.ogg except dynamictest-* (two cut-outs of other tracks)
declare -A MUSIC=(
  [hyperrogue-music]='/usr/share/hyperrogue/music|^[^/]+\.ogg$|'
  [singularity-music]='/usr/share/games/singularity/music|\.ogg$|'
  [planetblupi-music-ogg]='/usr/share/planetblupi/music|^[^/]+\.ogg$|'
  [drascula-music]='/usr/share/scummvm/drascula/audio|^track[0-9]+\.ogg$|'
  [pushover-data]='/usr/share/pushover/themes|^[^/]+\.ogg$|'
  [warzone2100-music]='/usr/share/games/warzone2100/music|\.opus$|^menu\.opus$|^albums/original_soundtrack/track3\.opus$'
  [asc-music]='/usr/share/games/asc/music|^[^/]+\.mp3$|'
  [nexuiz-music]='/usr/share/games/nexuiz/data/music.pk3|^sound/cdtracks/[^/]+\.ogg$|/thunder\.ogg$'
  [ufoai-music]='/usr/share/games/ufoai/base/0music.pk3|^music/[^/]+\.ogg$|/dynamictest-[^/]*$'
)
RESERVED='^(wesnoth-.*-music|fretsonfire-songs-.*|musescore-general-soundfont.*)$'
DEST=data/real

for pkg in "${PACKAGES[@]}"; do
  if [[ $pkg =~ $RESERVED ]]; then
    echo "install_real_music: $pkg is reserved for held-out evaluation; remove it from PACKAGES" >&2
    exit 2
  fi
  [[ -n ${MUSIC[$pkg]:-} ]] || { echo "install_real_music: no MUSIC rule for $pkg" >&2; exit 2; }
done

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
command -v unzip >/dev/null || missing+=(unzip)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "install_real_music: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "install_real_music: not root; install the missing packages with:" >&2
    echo "  sudo apt-get install ${missing[*]}" >&2
    echo "install_real_music: going on with the packages already installed" >&2
  fi
fi

mkdir -p "$DEST"
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg -s "$pkg" >/dev/null 2>&1; then
    echo "install_real_music: $pkg is not installed; skipped"
    continue
  fi
  IFS='|' read -r base include exclude <<<"${MUSIC[$pkg]}"
  out="$DEST/$pkg"
  mkdir -p "$out"
  if [[ $base == *.pk3 ]]; then
    # Extract once per package version; a stamp file (hidden, so the adapter ignores it) records it.
    stamp="$out/.extracted-$(dpkg-query -W -f='${Version}' "$pkg")"
    if [ ! -f "$stamp" ]; then
      tmp=$(mktemp -d "$DEST/.extract-XXXXXX")
      while IFS= read -r member; do
        if [[ $member =~ $include ]] && { [ -z "$exclude" ] || ! [[ $member =~ $exclude ]]; }; then
          unzip -q -o -j "$base" "$member" -d "$tmp"
        fi
      done < <(unzip -Z1 "$base")
      find "$out" -maxdepth 1 \( -name '*.ogg' -o -name '.extracted-*' \) -delete
      find "$tmp" -maxdepth 1 -type f -exec mv -t "$out" {} +
      rmdir "$tmp"
      touch "$stamp"
    fi
    count=$(find "$out" -maxdepth 1 -type f -name '*.ogg' | wc -l)
  else
    find "$out" -type l -delete                        # relink from scratch: rules may have changed
    count=0
    while IFS= read -r file; do
      rel=${file#"$base"/}
      [[ -f $file && $rel =~ $include ]] || continue
      [ -n "$exclude" ] && [[ $rel =~ $exclude ]] && continue
      mkdir -p "$out/$(dirname "$rel")"
      ln -sfn "$file" "$out/$rel"
      count=$((count + 1))
    done < <(dpkg -L "$pkg" | grep -F "$base/" | sort)
  fi
  ln -sfn "/usr/share/doc/$pkg/copyright" "$out/COPYRIGHT"
  find "$out" -mindepth 1 -type d -empty -delete
  echo "install_real_music: $pkg: $count music files in $out"
done
echo "install_real_music: done; load with diffariff.data.mixtures.load_mixtures(\"$DEST\")"
