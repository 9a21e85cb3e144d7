// A CoreDNS with only the plugins the node mode's cluster DNS uses. CoreDNS's own
// main imports every plugin (cloud DNS providers and their SDKs included), which
// triples the build; the documented way to trim it is a main that registers the
// wanted plugins (their init functions) and lists them, in chain order, in
// dnsserver.Directives.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func init() {
	// The order of upstream's core/dnsserver/zdirectives.go, restricted to the plugins above.
	dnsserver.Directives = []string{"bind", "ready", "health", "errors", "log", "cache", "kubernetes", "forward"}
}

func main() { coremain.Run() }
