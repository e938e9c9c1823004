package caddymodule

import (
	"embed"
	"encoding/json"
	"net/http"
	"path"
	"reflect"
	"sort"

	"golang.org/x/text/language"
)

// pageText is the text of the challenge pages in one language. Adding a
// language is adding one file, assets/i18n/<tag>.json, with these keys.
type pageText struct {
	Lang         string `json:"lang"`
	Title        string `json:"title"`
	Instructions string `json:"instructions"`
	SliderLabel  string `json:"slider_label"`
	Checking     string `json:"checking"`
	Again        string `json:"again"`
	Refused      string `json:"refused"`
	NetworkError string `json:"network_error"`
	NoScript     string `json:"noscript"`

	CaptchaIntro    string `json:"captcha_intro"`
	CaptchaAlt      string `json:"captcha_alt"`
	AnswerLabel     string `json:"answer_label"`
	Submit          string `json:"submit"`
	AudioLabel      string `json:"audio_label"`
	AnotherImage    string `json:"another_image"`
	Expires         string `json:"expires"` // with one %d: seconds
	ErrExpired      string `json:"err_expired"`
	ErrBroken       string `json:"err_broken"`
	ErrOtherBrowser string `json:"err_other_browser"`
	ErrWrong        string `json:"err_wrong"`
}

//go:embed assets/i18n/*.json
var i18nFiles embed.FS

// translations holds every embedded language; the first tag (English) is
// the fallback.
var translations = func() struct {
	tags    []language.Tag
	texts   []pageText
	matcher language.Matcher
} {
	entries, err := i18nFiles.ReadDir("assets/i18n")
	if err != nil {
		panic(err) // embedded at build time: cannot fail at run time
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Slice(names, func(i, j int) bool { return names[i] == "en.json" || (names[j] != "en.json" && names[i] < names[j]) })
	var out struct {
		tags    []language.Tag
		texts   []pageText
		matcher language.Matcher
	}
	for _, n := range names {
		b, _ := i18nFiles.ReadFile(path.Join("assets/i18n", n))
		var t pageText
		if err := json.Unmarshal(b, &t); err != nil {
			panic("assets/i18n/" + n + ": " + err.Error())
		}
		if missing := t.missing(); missing != "" {
			panic("assets/i18n/" + n + ": no " + missing)
		}
		out.tags = append(out.tags, language.MustParse(t.Lang))
		out.texts = append(out.texts, t)
	}
	out.matcher = language.NewMatcher(out.tags)
	return out
}()

// textFor picks the page language from Accept-Language.
func textFor(r *http.Request) *pageText {
	prefs, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err != nil || len(prefs) == 0 {
		return &translations.texts[0]
	}
	_, i, conf := translations.matcher.Match(prefs...)
	if conf == language.No {
		return &translations.texts[0]
	}
	return &translations.texts[i]
}

// missing names the first empty text, so an incomplete translation fails
// at start-up (and in the tests), not in front of a visitor.
func (t *pageText) missing() string {
	v := reflect.ValueOf(*t)
	for i := 0; i < v.NumField(); i++ {
		if v.Field(i).String() == "" {
			return v.Type().Field(i).Tag.Get("json")
		}
	}
	return ""
}
