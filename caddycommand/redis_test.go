package caddycommand

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"

	"github.com/advcaptcha/advcaptcha/internal/redistest"
)

// TestRedisFlagsReachATLSACLRedis: the commands reach a Redis over TLS, as
// an ACL user, in another database, as the gateway's redis block can.
func TestRedisFlagsReachATLSACLRedis(t *testing.T) {
	srv, caFile := redistest.StartTLS(t)
	ctx := context.Background()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	admin := redis.NewClient(&redis.Options{Addr: srv.Addr, TLSConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}})
	defer admin.Close()
	if err := admin.Do(ctx, "ACL", "SETUSER", "pooler", "on", ">pooler-password", "~*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	t.Setenv(redisPasswordEnv, "pooler-password")
	open := func(args ...string) error {
		var rf redisFlags
		f := pflag.NewFlagSet("test", pflag.ContinueOnError)
		rf.register(f)
		if err := f.Parse(args); err != nil {
			t.Fatal(err)
		}
		st, err := rf.open()
		if err != nil {
			return err
		}
		defer st.Close()
		return st.PutOnce(ctx, "probe", []byte("x"), time.Minute)
	}
	if err := open("--redis", srv.Addr, "--tls", "--tls-server-name", "127.0.0.1", "--tls-ca-file", caFile,
		"--username", "pooler", "--db", "3", "--prefix", "acl:"); err != nil {
		t.Fatalf("over TLS as an ACL user: %v", err)
	}
	db3 := redis.NewClient(&redis.Options{Addr: srv.Addr, DB: 3, TLSConfig: admin.Options().TLSConfig})
	defer db3.Close()
	if n, err := db3.Exists(ctx, "acl:probe").Result(); err != nil || n != 1 {
		t.Fatalf("acl:probe in db 3: %d, %v", n, err)
	}
	// Without the CA the certificate is refused; without TLS nothing
	// answers; another user's password is wrong.
	if err := open("--redis", srv.Addr, "--tls", "--username", "pooler"); err == nil {
		t.Error("connected without trusting the CA")
	}
	// The gateway's redis block, read with --config: the password from
	// its env placeholder, the rest as written.
	t.Setenv(redisPasswordEnv, "")
	t.Setenv("GATEWAY_REDIS_PASSWORD", "pooler-password")
	gateway := writeCaddyfile(t, "redis "+srv.Addr+" {\n\ttls 127.0.0.1\n\ttls_ca_file "+caFile+
		"\n\tusername pooler\n\tpassword {env.GATEWAY_REDIS_PASSWORD}\n\tdb 3\n\tkey_prefix acl2:\n}")
	if err := open("--config", gateway); err != nil {
		t.Fatalf("with the gateway's redis block: %v", err)
	}
	if n, err := db3.Exists(ctx, "acl2:probe").Result(); err != nil || n != 1 {
		t.Fatalf("acl2:probe in db 3: %d, %v", n, err)
	}
	// Flags given replace what it says.
	if err := open("--config", gateway, "--prefix", "acl3:"); err != nil {
		t.Fatal(err)
	}
	if n, err := db3.Exists(ctx, "acl3:probe").Result(); err != nil || n != 1 {
		t.Fatalf("acl3:probe in db 3: %d, %v", n, err)
	}
	t.Setenv(redisPasswordEnv, "wrong")
	if err := open("--redis", srv.Addr, "--tls", "--tls-ca-file", caFile, "--tls-server-name", "127.0.0.1", "--username", "pooler"); err == nil {
		t.Error("connected with a wrong password")
	}
}
