package caddycommand

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/pflag"

	"github.com/advcaptcha/advcaptcha/captchapool"
	"github.com/advcaptcha/advcaptcha/internal/secretkey"
	"github.com/advcaptcha/advcaptcha/modelregistry"
)

// secretEnv holds the gateway's secret for the commands that write what
// the gateways verify (pool entries, published model versions).
const secretEnv = "ADVCAPTCHA_SECRET"

// secretFlags take the gateway's secret (the Caddyfile's `secret`): pool
// entries and published model versions carry a MAC keyed from it, and the
// gateways drop what does not verify.
type secretFlags struct{ secrets []string }

func (s *secretFlags) register(f *pflag.FlagSet) {
	f.StringArrayVar(&s.secrets, "secret", nil, "the gateway's secret, as its secret directive (repeatable: the first signs, all verify); default: the environment variable "+secretEnv+", which unlike a flag does not show in the process list")
}

// errNoSecret is returned by commands that need the secret and were given
// none.
var errNoSecret = errors.New("needs the gateway's secret (the Caddyfile's `secret`): set " + secretEnv + " or --secret; gateways drop pool entries and refuse model versions not signed with it")

// values are the secrets given, or errNoSecret.
func (s *secretFlags) values() ([][]byte, error) {
	list := s.secrets
	if len(list) == 0 {
		if v := os.Getenv(secretEnv); v != "" {
			list = []string{v}
		}
	}
	if len(list) == 0 {
		return nil, errNoSecret
	}
	out := make([][]byte, len(list))
	for i, v := range list {
		if len(v) < secretkey.MinSecretLen {
			return nil, fmt.Errorf("secret %d is %d bytes; the gateway's is at least %d", i+1, len(v), secretkey.MinSecretLen)
		}
		out[i] = []byte(v)
	}
	return out, nil
}

// poolKeys sign pool entries.
func (s *secretFlags) poolKeys() (*secretkey.Keys, error) {
	v, err := s.values()
	if err != nil {
		return nil, err
	}
	return captchapool.Keys(v...)
}

// modelKeys sign and verify published model versions.
func (s *secretFlags) modelKeys() (*secretkey.Keys, error) {
	v, err := s.values()
	if err != nil {
		return nil, err
	}
	return modelregistry.Keys(v...)
}
