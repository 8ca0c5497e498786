// fake-cri: kubelet's own fake CRI runtime (k8s.io/kubernetes/pkg/kubelet/cri/remote/fake) served on a
// unix socket. It answers RuntimeReady and NetworkReady, so a real kubelet registers its Node and posts
// Ready without running containers. tests/kube/build.sh copies this file to cmd/fake-cri/main.go of the
// kubernetes source tree and builds it with the rest.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	fake "k8s.io/kubernetes/pkg/kubelet/cri/remote/fake"
)

func main() {
	endpoint := flag.String("listen", "unix:///run/fake-cri/fake-cri.sock", "the CRI endpoint to serve")
	flag.Parse()
	runtime := fake.NewFakeRemoteRuntime()
	if err := runtime.Start(*endpoint); err != nil {
		fmt.Fprintln(os.Stderr, "fake-cri:", err)
		os.Exit(1)
	}
	fmt.Println("fake-cri serving", *endpoint)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
	runtime.Stop()
}
