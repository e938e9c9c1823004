#!/usr/bin/env bash
# Regenerates captcha/voice/*.wav, the spoken characters of the audio
# captcha, with CMU Flite (Debian's flite; BSD-style licence, see
# captcha/voice/LICENSE-flite.txt) and its "kal" voice: 8 kHz, 16-bit mono.
set -euo pipefail
cd "$(dirname "$0")/../captcha/voice"
command -v flite >/dev/null || apt-get install -y -qq flite >/dev/null
say() { flite -voice kal -t "$2" -o "$1.wav"; }
for d in 2:two 3:three 4:four 5:five 6:six 7:seven 8:eight 9:nine \
	a:ay b:bee c:see d:dee e:ee f:eff g:gee h:aitch j:jay k:kay m:em n:en p:pee q:queue \
	r:are s:ess t:tee u:you v:vee w:"double you" x:ex y:why z:zee; do
	say "${d%%:*}" "${d#*:}"
done
cp /usr/share/doc/flite/copyright LICENSE-flite.txt
