package store

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// RedisConnection says where Redis is and how to reach it. The gateway's
// `redis` configuration and the commands' Redis flags (`caddy advcaptcha
// pool`, `extract`, `model`) are this one type, so a command reaches every
// Redis the gateway can: with one address a single node, with several a
// Cluster, with MasterName the addresses are Sentinels.
type RedisConnection struct {
	// Addresses of the Redis node, the Cluster nodes or the Sentinels, as
	// host:port. The gateway replaces placeholders such as
	// {env.REDIS_ADDR}.
	Addresses []string `json:"addresses,omitempty"`
	// MasterName is the Sentinel master name; set it to use Sentinel.
	MasterName string `json:"master_name,omitempty"`
	// Cluster forces Cluster mode with a single configuration endpoint.
	Cluster bool `json:"cluster,omitempty"`
	// Username for Redis ACLs. Placeholders are replaced.
	Username string `json:"username,omitempty"`
	// Password for Redis (or the user). Placeholders are replaced, so it
	// can come from {env.REDIS_PASSWORD} rather than the config file.
	Password string `json:"password,omitempty"`
	// SentinelPassword authenticates to the Sentinels.
	SentinelPassword string `json:"sentinel_password,omitempty"`
	// DB selects the database (single node and Sentinel only).
	DB int `json:"db,omitempty"`
	// TLS connects with TLS. ServerName defaults to the address's host.
	TLS *RedisTLS `json:"tls,omitempty"`
	// KeyPrefix starts every key; the gateway's default is "advc:".
	KeyPrefix string `json:"key_prefix,omitempty"`
}

// RedisTLS configures TLS to Redis.
type RedisTLS struct {
	// ServerName to verify; default the address's host.
	ServerName string `json:"server_name,omitempty"`
	// CAFile is a PEM file of the CA certificates to trust for Redis
	// (default: the system's).
	CAFile string `json:"ca_file,omitempty"`
	// InsecureSkipVerify disables certificate verification. Testing only.
	InsecureSkipVerify bool `json:"insecure_skip_verify,omitempty"`
}

// Replaced is c with replace applied to the settings that may hold
// placeholders (addresses, username and passwords).
func (c RedisConnection) Replaced(replace func(string) string) RedisConnection {
	addrs := make([]string, len(c.Addresses))
	for i, a := range c.Addresses {
		addrs[i] = replace(a)
	}
	c.Addresses = addrs
	c.Username, c.Password, c.SentinelPassword = replace(c.Username), replace(c.Password), replace(c.SentinelPassword)
	return c
}

// Options are the options of a Redis store connected as c, with base's
// windows; the timeouts and pool size are left for the caller. The TLS CA
// file is read here.
func (c RedisConnection) Options(base Options) (RedisOptions, error) {
	ro := RedisOptions{
		Options:          base,
		Addrs:            c.Addresses,
		MasterName:       c.MasterName,
		Cluster:          c.Cluster,
		Username:         c.Username,
		Password:         c.Password,
		SentinelPassword: c.SentinelPassword,
		DB:               c.DB,
		KeyPrefix:        c.KeyPrefix,
	}
	if c.TLS == nil {
		return ro, nil
	}
	ro.TLS = &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.TLS.ServerName,
		InsecureSkipVerify: c.TLS.InsecureSkipVerify, //nolint:gosec // operator's explicit choice, documented as testing only
	}
	if f := c.TLS.CAFile; f != "" {
		pem, err := os.ReadFile(f)
		if err != nil {
			return ro, fmt.Errorf("redis tls ca_file: %w", err)
		}
		ro.TLS.RootCAs = x509.NewCertPool()
		if !ro.TLS.RootCAs.AppendCertsFromPEM(pem) {
			return ro, fmt.Errorf("redis tls ca_file %s: no PEM certificate in it", f)
		}
	}
	return ro, nil
}
