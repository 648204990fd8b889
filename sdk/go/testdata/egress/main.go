// A Go plugin answering get_egress_path_config (ABI 1.2), built and run by the SDK's tests.
package main

import (
	"time"

	wasmta "github.com/wasmta/wasmta/sdk/go"
)

func init() {
	wasmta.OnGetEgressPathConfig(func(s wasmta.EgressSite) (*wasmta.EgressPathConfig, error) {
		switch s.RoutingDomain {
		case "smarthost.test":
			return &wasmta.EgressPathConfig{ConnectionLimit: 1, EHLODomain: "out." + s.RoutingDomain,
				SMTPAuthPlainUsername: "relay-user", SMTPAuthPlainPassword: "smarthost", SourceAddress: "127.0.0.9"}, nil
		case "timeouts.test":
			// The fields every SDK has: the port and the delivery client's timeouts.
			return &wasmta.EgressPathConfig{SMTPPort: 2525, ConnectTimeout: 1500 * time.Millisecond,
				CommandTimeout: time.Minute, DataTimeout: 10 * time.Minute, IdleTimeout: 90 * time.Second}, nil
		case "typo.test":
			return wasmta.RawEgressPathConfig([]byte(`{"conection_limit": 1}`)), nil
		}
		return nil, nil // no opinion
	})
}

func main() {}
