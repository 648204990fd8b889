// A Go plugin answering get_egress_path_config (ABI 1.2), built and run by the SDK's tests.
package main

import wasmta "github.com/wasmta/wasmta/sdk/go"

func init() {
	wasmta.OnGetEgressPathConfig(func(s wasmta.EgressSite) (*wasmta.EgressPathConfig, error) {
		switch s.RoutingDomain {
		case "smarthost.test":
			return &wasmta.EgressPathConfig{ConnectionLimit: 1, EHLODomain: "out." + s.RoutingDomain,
				SMTPAuthPlainUsername: "relay-user", SMTPAuthPlainPassword: "smarthost", SourceAddress: "127.0.0.9"}, nil
		case "typo.test":
			return wasmta.RawEgressPathConfig([]byte(`{"conection_limit": 1}`)), nil
		}
		return nil, nil // no opinion
	})
}

func main() {}
