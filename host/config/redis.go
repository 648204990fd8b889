package config

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// RedisConfig is the [redis] table: with url set, nodes that share a cluster_name share their
// rate limits, connection limits and admin rules through that Redis; without it, everything
// is local to the node (docs/cluster.md).
type RedisConfig struct {
	// URL is redis://host:port/db or rediss://… (TLS); "" = no cluster, everything local.
	URL string `toml:"url"`
	// Password is the NAME of a secret in [secrets]; a password inside the URL is refused so
	// that it never sits in a config file that is shown or logged.
	Password string `toml:"password"`
	// Username is the Redis ACL user (Redis 6+); "" = the default user.
	Username string `toml:"username"`
	// ClusterName namespaces every key, so clusters can share one Redis.
	ClusterName string `toml:"cluster_name"`
	// NodeName identifies this node in the cluster; "" = hostname.
	NodeName string `toml:"node_name"`
	// OnUnavailable says what limits do while Redis cannot be reached: "fail_open" uses local
	// limits scaled by the node count last seen, "fail_closed" defers deliveries. Reception
	// never depends on Redis.
	OnUnavailable string `toml:"on_unavailable"`
	// PoolSize is the most connections to Redis this node opens.
	PoolSize int `toml:"pool_size"`
	// DialTimeout bounds a connection attempt; Timeout bounds one command (read and write).
	DialTimeout Duration `toml:"dial_timeout"`
	Timeout     Duration `toml:"timeout"`
	// LeaseTTL is how long a connection's place under a shared connection_limit lasts without
	// renewal (renewed every LeaseTTL/3 while the connection lives): a node that dies frees
	// its places within it.
	LeaseTTL Duration `toml:"lease_ttl"`
	// TLSCAFile is a PEM file of the certificate authorities a rediss:// server's certificate
	// must chain to; "" = the system's roots.
	TLSCAFile string `toml:"tls_ca_file"`
}

// Redis on_unavailable policies.
const (
	FailOpen   = "fail_open"
	FailClosed = "fail_closed"
)

// Enabled reports whether the node is part of a cluster.
func (r RedisConfig) Enabled() bool { return r.URL != "" }

func (c *Config) validateRedis(md toml.MetaData) error {
	r := c.Redis
	switch r.OnUnavailable {
	case FailOpen, FailClosed:
	default:
		return keyErr("redis.on_unavailable", "%q: use %q or %q", r.OnUnavailable, FailOpen, FailClosed)
	}
	if r.PoolSize < 1 || r.PoolSize > 10000 {
		return keyErr("redis.pool_size", "%d: use 1 to 10000", r.PoolSize)
	}
	if r.DialTimeout <= 0 {
		return keyErr("redis.dial_timeout", "must be positive")
	}
	if r.Timeout <= 0 {
		return keyErr("redis.timeout", "must be positive")
	}
	if r.LeaseTTL < Duration(300*time.Millisecond) || r.LeaseTTL > Duration(time.Hour) {
		return keyErr("redis.lease_ttl", "%s: use 300ms to 1h", time.Duration(r.LeaseTTL))
	}
	if r.ClusterName == "" || strings.ContainsAny(r.ClusterName, " \t\r\n{}") {
		return keyErr("redis.cluster_name", "%q: must be non-empty, without spaces or braces", r.ClusterName)
	}
	if strings.ContainsAny(r.NodeName, " \t\r\n{}:") {
		return keyErr("redis.node_name", "%q: no spaces, braces or colons", r.NodeName)
	}
	if r.URL == "" {
		// These keys serve only a cluster (their reference values are commented out): set
		// without url they would be accepted and do nothing.
		for _, k := range []string{"password", "username", "node_name", "tls_ca_file"} {
			if md.IsDefined("redis", k) {
				return keyErr("redis."+k, "is set but redis.url is not: without url the node is in no cluster and this key does nothing")
			}
		}
		return nil
	}
	u, err := url.Parse(r.URL)
	if err != nil {
		return keyErr("redis.url", "%v", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return keyErr("redis.url", "scheme %q: use redis:// or rediss://", u.Scheme)
	}
	if u.Host == "" {
		return keyErr("redis.url", "names no host")
	}
	if _, set := u.User.Password(); set {
		return keyErr("redis.url", "has a password: put it in [secrets] and name that secret in redis.password")
	}
	if u.User != nil {
		// The client is given redis.username, not the URL's: one taken here would be dropped.
		return keyErr("redis.url", "has a user name: put it in redis.username")
	}
	if db := strings.Trim(u.Path, "/"); db != "" {
		if n, err := strconv.Atoi(db); err != nil || n < 0 || n > 15 {
			return keyErr("redis.url", "database %q: use a number 0-15", db)
		}
	}
	if len(u.Query()) > 0 {
		return keyErr("redis.url", "query parameters are not supported: use the [redis] keys")
	}
	if r.TLSCAFile != "" {
		if u.Scheme != "rediss" {
			return keyErr("redis.tls_ca_file", "is for a rediss:// url (TLS); redis.url is %s://", u.Scheme)
		}
		if _, err := LoadCAFile(r.TLSCAFile); err != nil {
			return keyErr("redis.tls_ca_file", "%v", err)
		}
	}
	if r.Password != "" {
		if _, ok := c.Secrets[r.Password]; !ok {
			return keyErr("redis.password", "no secret named %q in [secrets] (the value is the NAME of a secret, not the password)", r.Password)
		}
	}
	return nil
}

// String describes the config without secrets (for logs).
func (r RedisConfig) String() string {
	return fmt.Sprintf("redis %s cluster=%s node=%s", r.URL, r.ClusterName, r.NodeName)
}

// LoadCAFile reads a PEM file of CA certificates into a pool; it fails when the file holds
// none.
func LoadCAFile(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return p, nil
}
