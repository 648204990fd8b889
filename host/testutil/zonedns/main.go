// Command zonedns serves a zone file over DNS on a loopback address, for the load harness
// (docs/performance.md): the relay under test resolves through it, never the machine's resolver.
//
//	go run ./host/testutil/zonedns -listen 127.0.0.1:5353 -zone bench.zone
package main

import (
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/wasmta/wasmta/host/testutil"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:5353", "loopback ip:port to serve on (UDP and TCP)")
	zone := flag.String("zone", "", "zone file (origin .)")
	flag.Parse()
	ap, err := netip.ParseAddrPort(*listen)
	if err != nil || !ap.Addr().IsLoopback() {
		fmt.Fprintln(os.Stderr, "zonedns: -listen must be a loopback ip:port")
		os.Exit(2)
	}
	text, err := os.ReadFile(*zone)
	if err != nil {
		fmt.Fprintln(os.Stderr, "zonedns:", err)
		os.Exit(1)
	}
	s, err := testutil.ServeDNSAt(string(text), *listen)
	if err != nil {
		fmt.Fprintln(os.Stderr, "zonedns:", err)
		os.Exit(1)
	}
	fmt.Println("zonedns serving on", s.Addr)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	s.Stop()
}
