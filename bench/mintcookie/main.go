// Command mintcookie prints a Cookie header value with a valid device and
// clearance cookie for a secret and User-Agent, so the load benchmark can
// measure cleared clients.
package main

import (
	"crypto/rand"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/advcaptcha/advcaptcha/clearance"
)

func main() {
	secret := flag.String("secret", "", "the gateway's secret")
	ua := flag.String("ua", "", "the User-Agent the clearance is bound to")
	flag.Parse()
	keys, err := clearance.NewKeys([]byte(*secret))
	if err != nil {
		fmt.Fprintln(os.Stderr, "mintcookie:", err)
		os.Exit(2)
	}
	id, dc, err := keys.NewDevice(rand.Reader)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mintcookie:", err)
		os.Exit(1)
	}
	fmt.Printf("advc_device=%s; advc_clearance=%s\n", dc, keys.IssueClearance(id, *ua, time.Now().Add(time.Hour)))
}
