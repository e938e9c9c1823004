package captcha

import (
	"bytes"
	"embed"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
)

// voiceFiles are the spoken characters, generated with CMU Flite (licence
// beside them; scripts/make-voice.sh remakes them): 8 kHz, 16-bit mono.
//
//go:embed voice/*.wav
var voiceFiles embed.FS

// AudioSampleRate is the sample rate of audio captchas.
const AudioSampleRate = 8000

var (
	voiceOnce sync.Once
	voices    map[byte][]float64
	voiceErr  error
)

func loadVoices() (map[byte][]float64, error) {
	voiceOnce.Do(func() {
		voices = map[byte][]float64{}
		entries, err := voiceFiles.ReadDir("voice")
		if err != nil {
			voiceErr = err
			return
		}
		for _, e := range entries {
			name := e.Name()
			if len(name) != len("x.wav") {
				continue
			}
			b, err := voiceFiles.ReadFile("voice/" + name)
			if err != nil {
				voiceErr = err
				return
			}
			pcm, rate, err := decodeWAV(b)
			if err != nil || rate != AudioSampleRate {
				voiceErr = fmt.Errorf("voice %s: %v (rate %d)", name, err, rate)
				return
			}
			voices[name[0]] = trimSilence(pcm)
		}
	})
	return voices, voiceErr
}

// RenderAudio reads text out as a WAV file: each character spoken at a
// slightly different speed and loudness, with random pauses, over noise
// and the murmur of other characters, so that speech recognisers have a
// harder time than people. The same (text, seed) gives the same bytes.
func RenderAudio(text string, seed uint64) ([]byte, error) {
	vs, err := loadVoices()
	if err != nil {
		return nil, err
	}
	if text == "" || len(text) > 32 {
		return nil, errors.New("audio: text must be 1–32 characters")
	}
	rng := newRand(seed, 3)
	sec := func(s float64) int { return int(s * AudioSampleRate) }
	var out []float64
	out = append(out, make([]float64, sec(0.4+0.4*rng.Float64()))...)
	for i := 0; i < len(text); i++ {
		v, ok := vs[text[i]]
		if !ok {
			return nil, fmt.Errorf("audio: no voice for %q", text[i])
		}
		out = append(out, scaled(resample(v, 0.9+0.22*rng.Float64()), 0.7+0.3*rng.Float64())...)
		out = append(out, make([]float64, sec(0.35+0.55*rng.Float64()))...)
	}
	// Murmur: other characters, quiet, anywhere.
	keys := make([]byte, 0, len(vs))
	for _, c := range []byte(DefaultCharset) {
		if _, ok := vs[c]; ok {
			keys = append(keys, c)
		}
	}
	for n := 3 + rng.IntN(3); n > 0; n-- {
		v := resample(vs[keys[rng.IntN(len(keys))]], 0.8+0.4*rng.Float64())
		at := rng.IntN(max(1, len(out)-len(v)))
		g := 0.12 + 0.12*rng.Float64()
		for i, x := range v {
			if at+i < len(out) {
				out[at+i] += g * x
			}
		}
	}
	noise := 0.02 + 0.03*rng.Float64()
	peak := 0.0
	for i := range out {
		out[i] += noise * (2*rng.Float64() - 1)
		peak = math.Max(peak, math.Abs(out[i]))
	}
	if peak > 0 {
		scaled(out, 0.9/peak)
	}
	return encodeWAV(out), nil
}

func scaled(x []float64, g float64) []float64 {
	for i := range x {
		x[i] *= g
	}
	return x
}

// resample changes speed (and pitch) by factor: > 1 is faster.
func resample(x []float64, factor float64) []float64 {
	n := int(float64(len(x)) / factor)
	out := make([]float64, n)
	for i := range out {
		p := float64(i) * factor
		j := int(p)
		if j+1 >= len(x) {
			out[i] = x[len(x)-1]
			continue
		}
		t := p - float64(j)
		out[i] = x[j]*(1-t) + x[j+1]*t
	}
	return out
}

func trimSilence(x []float64) []float64 {
	const floor = 0.02
	a, b := 0, len(x)
	for a < b && math.Abs(x[a]) < floor {
		a++
	}
	for b > a && math.Abs(x[b-1]) < floor {
		b--
	}
	return x[a:b]
}

// decodeWAV reads 16-bit mono PCM WAV.
func decodeWAV(b []byte) ([]float64, int, error) {
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, 0, errors.New("not a WAV file")
	}
	rate := 0
	for p := 12; p+8 <= len(b); {
		id, size := string(b[p:p+4]), int(binary.LittleEndian.Uint32(b[p+4:p+8]))
		body := b[p+8 : min(len(b), p+8+size)]
		switch id {
		case "fmt ":
			if len(body) < 16 || binary.LittleEndian.Uint16(body[0:2]) != 1 || binary.LittleEndian.Uint16(body[2:4]) != 1 || binary.LittleEndian.Uint16(body[14:16]) != 16 {
				return nil, 0, errors.New("not 16-bit mono PCM")
			}
			rate = int(binary.LittleEndian.Uint32(body[4:8]))
		case "data":
			pcm := make([]float64, len(body)/2)
			for i := range pcm {
				pcm[i] = float64(int16(binary.LittleEndian.Uint16(body[2*i:]))) / 32768
			}
			return pcm, rate, nil
		}
		p += 8 + size + size%2
	}
	return nil, 0, errors.New("no data chunk")
}

// encodeWAV writes 16-bit mono PCM at AudioSampleRate.
func encodeWAV(x []float64) []byte {
	var buf bytes.Buffer
	data := 2 * len(x)
	buf.WriteString("RIFF")
	binary.Write(&buf, binary.LittleEndian, uint32(36+data))
	buf.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(AudioSampleRate), uint32(2 * AudioSampleRate), uint16(2), uint16(16)} {
		binary.Write(&buf, binary.LittleEndian, v)
	}
	buf.WriteString("data")
	binary.Write(&buf, binary.LittleEndian, uint32(data))
	s := make([]byte, 2*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint16(s[2*i:], uint16(int16(math.Round(math.Max(-1, math.Min(1, v))*32767))))
	}
	buf.Write(s)
	return buf.Bytes()
}
