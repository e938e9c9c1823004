package captcha

import (
	"bytes"
	"testing"
)

func TestAudioEveryCharacterHasAVoice(t *testing.T) {
	vs, err := loadVoices()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []byte(DefaultCharset) {
		if len(vs[c]) < AudioSampleRate/10 {
			t.Errorf("voice for %q: %d samples", c, len(vs[c]))
		}
	}
}

func TestAudioDeterministicAndWellFormed(t *testing.T) {
	a, err := RenderAudio("k7x2m", 9)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := RenderAudio("k7x2m", 9)
	c, _ := RenderAudio("k7x2m", 10)
	if !bytes.Equal(a, b) || bytes.Equal(a, c) {
		t.Fatal("not deterministic per seed")
	}
	pcm, rate, err := decodeWAV(a)
	if err != nil || rate != AudioSampleRate {
		t.Fatalf("decode: %v rate %d", err, rate)
	}
	// Five spoken characters with pauses: a few seconds, not silence.
	if secs := float64(len(pcm)) / AudioSampleRate; secs < 2.5 || secs > 12 {
		t.Fatalf("%.1f s", secs)
	}
	if _, err := RenderAudio("", 1); err == nil {
		t.Fatal("empty text accepted")
	}
	if _, err := RenderAudio("ab!", 1); err == nil {
		t.Fatal("character without a voice accepted")
	}
}

func FuzzDecodeWAV(f *testing.F) {
	a, _ := RenderAudio("ab", 1)
	f.Add(a)
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEfmt \xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = decodeWAV(b)
	})
}
