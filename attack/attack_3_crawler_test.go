package attack

import (
	"fmt"
	"net/http"
	"os"
	"testing"
)

// (e) A client claiming to be Googlebot from an address whose
// forward-confirmed reverse DNS is *.bc.googleusercontent.com — any Google
// Cloud VM has one. The gateway resolves names from a private /etc/hosts.
func TestAttackCrawlerImpostor(t *testing.T) {
	hosts, err := os.ReadFile("/etc/hosts")
	if err != nil {
		hosts = []byte("127.0.0.1 localhost\n")
	}
	const impostor, control = "127.0.0.77", "127.0.0.66"
	hosts = append(hosts, []byte("\n"+impostor+" crawl-1.bc.googleusercontent.com\n"+
		control+" crawl-66-249-66-1.googlebot.com\n")...)
	gw := sharedGateway(t, "crawler", gatewayOptions{Extra: []string{"adversarial off"}, Hosts: string(hosts)})
	claim := func(ip string) int {
		c := &http.Client{Transport: transportFrom(ip), Timeout: requestTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		passed := 0
		for i := 0; i < 20; i++ {
			req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/products/%d", gw.base, i), nil)
			req.Header.Set("User-Agent", googlebotUA)
			r, err := send(c, req)
			if err != nil {
				t.Fatal(err)
			}
			if classify(r) == outAllowed {
				passed++
			}
		}
		return passed
	}
	passed := claim(impostor)
	real := claim(control)
	fig := fmt.Sprintf("%d/20", passed)
	figures.set("crawler", fig)
	t.Logf("attack crawler impostor: %s passed as Googlebot from crawl-1.bc.googleusercontent.com (control, crawl-66-249-66-1.googlebot.com: %d/20)", fig, real)
	if passed > 0 {
		t.Errorf("a Googlebot claim from a *.bc.googleusercontent.com address passed %d/20: only the engines' crawler hostnames (and published ranges) may verify a crawler", passed)
	}
	if real == 0 && passed == 0 {
		t.Logf("note: the googlebot.com control did not pass either (the gateway may now also require Google's published ranges, which 127.0.0.66 is not in)")
	}
}

// Redirect payloads: return paths a browser would resolve off-site (or back
// into the gateway's own routes), in every place the gateway takes a return
// and hands it back.
