package caddymodule

import (
	"net/http"
	"time"
)

// waitRetry is how long a client is asked to wait when the adversarial pool
// is empty (fallback wait): long enough for a worker to make a captcha
// (about a second of CPU each) and short enough for a person.
const waitRetry = 5 * time.Second

// serveWait answers a request for a captcha while the pool is empty under
// fallback wait: 503 with Retry-After, an HTML page that goes on by itself
// to retry (a grant for the captcha it is waiting for), or for JSON
// clients {"decision":"challenge","retry_after":N,"retry":URL}.
func (v *visit) serveWait(w http.ResponseWriter, retry string) error {
	return writeWaitPage(w, v.r, int(waitRetry/time.Second), retry)
}
