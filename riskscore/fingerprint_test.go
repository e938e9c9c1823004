package riskscore

import (
	"encoding/json"
	"math"
	"testing"
)

func findings(fp Fingerprint, headerUA string) map[string]FingerprintFinding {
	out := map[string]FingerprintFinding{}
	for _, f := range JudgeFingerprint(&fp, headerUA) {
		out[f.Name] = f
	}
	return out
}

func TestJudgeFingerprint(t *testing.T) {
	linuxChrome := "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	person := Fingerprint{UA: chromeWin, Languages: []string{"en-GB"}, Screen: []float64{1920, 1080}, Plugins: 5, Chrome: true,
		GLRenderer: "ANGLE (NVIDIA, NVIDIA GeForce RTX 3060 Direct3D11 vs_5_0 ps_5_0, D3D11)"}
	if f := findings(person, chromeWin); len(f) != 0 {
		t.Fatalf("a person's browser: %v", f)
	}
	for name, tc := range map[string]struct {
		fp      func(Fingerprint) Fingerprint
		ua      string
		want    string
		certain bool
	}{
		"webdriver":     {func(f Fingerprint) Fingerprint { f.Webdriver = true; return f }, chromeWin, "webdriver", true},
		"JS UA differs": {func(f Fingerprint) Fingerprint { return f }, linuxChrome, "ua_contradiction", true},
		"headless UA":   {func(f Fingerprint) Fingerprint { f.UA = headless; return f }, headless, "headless", true},
		"SwiftShader": {func(f Fingerprint) Fingerprint {
			f.GLRenderer = "ANGLE (Google, Vulkan 1.3.0 (SwiftShader Device))"
			return f
		}, chromeWin, "software_gpu", false},
		"Apple GPU on Linux": {func(f Fingerprint) Fingerprint { f.UA = linuxChrome; f.GLRenderer = "Apple M2"; return f }, linuxChrome, "gpu_contradiction", false},
		"no languages":       {func(f Fingerprint) Fingerprint { f.Languages = nil; return f }, chromeWin, "no_languages", false},
		"impossible screen":  {func(f Fingerprint) Fingerprint { f.Screen = []float64{0, 0}; return f }, chromeWin, "impossible_screen", false},
		"no plugins":         {func(f Fingerprint) Fingerprint { f.Plugins = 0; return f }, chromeWin, "no_plugins", false},
	} {
		f := findings(tc.fp(person), tc.ua)
		got, ok := f[tc.want]
		if !ok || got.Certain != tc.certain {
			t.Errorf("%s: findings %v, want %s (certain %v)", name, f, tc.want, tc.certain)
		}
	}
}

// FuzzFingerprint: any JSON the page's script could be made to send is
// judged without a panic, with finite points and a stable id.
func FuzzFingerprint(f *testing.F) {
	f.Add([]byte(`{"ua":"Mozilla/5.0","languages":["en"],"screen":[1920,1080],"plugins":5,"chrome":true}`), "Mozilla/5.0")
	f.Add([]byte(`{"webdriver":true,"screen":[-1,1e308],"window":[0],"cores":-4,"uaData":{"brands":["\"a\";v=1"],"platform":""}}`), "")
	f.Add([]byte(`{"worker":{"ua":"x","languages":null},"glRenderer":"SwiftShader","notification":"denied","notificationQuery":"granted"}`), "\xff")
	f.Fuzz(func(t *testing.T, body []byte, headerUA string) {
		var fp Fingerprint
		if json.Unmarshal(body, &fp) != nil {
			return
		}
		for _, fd := range JudgeFingerprint(&fp, headerUA) {
			if math.IsNaN(fd.Points) || math.IsInf(fd.Points, 0) || fd.Name == "" {
				t.Fatalf("finding %+v for %s", fd, body)
			}
		}
		if id := fp.StableID(); id == "" || id != fp.StableID() {
			t.Fatalf("stable id %q", id)
		}
	})
}
