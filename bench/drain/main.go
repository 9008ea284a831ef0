// Command drain is `kubectl drain` with its client's request rate as a flag: the same library
// code (k8s.io/kubectl/pkg/drain, the release the built kubectl comes from) and the same options
// the bench gives kubectl, with rest.Config QPS and Burst set instead of client-go's 5 and 10.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/kubectl/pkg/drain"
)

func main() {
	podSelector := flag.String("pod-selector", "", "label selector of the pods to drain")
	qps := flag.Float64("qps", 5, "client requests per second (client-go's default is 5)")
	burst := flag.Int("burst", 10, "client burst (client-go's default is 10)")
	timeout := flag.Duration("timeout", 300*time.Second, "give up after this long")
	ignoreDaemonSets := flag.Bool("ignore-daemonsets", false, "as kubectl drain's flag")
	deleteEmptyDirData := flag.Bool("delete-emptydir-data", false, "as kubectl drain's flag")
	force := flag.Bool("force", false, "as kubectl drain's flag")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: drain [--qps N --burst N] [kubectl drain flags] NODE")
		os.Exit(2)
	}
	node := flag.Arg(0)
	config, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		fail(err)
	}
	config.QPS = float32(*qps)
	config.Burst = *burst
	client, err := kubernetes.NewForConfig(config)
	if err != nil {
		fail(err)
	}
	// As kubectl drain builds its Helper (pkg/cmd/drain) from the same flags.
	helper := &drain.Helper{
		Ctx:                  context.Background(),
		Client:               client,
		GracePeriodSeconds:   -1,
		EvictErrorRetryDelay: 5 * time.Second,
		ChunkSize:            500,
		Force:                *force,
		IgnoreAllDaemonSets:  *ignoreDaemonSets,
		DeleteEmptyDirData:   *deleteEmptyDirData,
		PodSelector:          *podSelector,
		Timeout:              *timeout,
		Out:                  os.Stdout,
		ErrOut:               os.Stderr,
	}
	n, err := client.CoreV1().Nodes().Get(context.Background(), node, metav1.GetOptions{})
	if err != nil {
		fail(err)
	}
	if err := drain.RunCordonOrUncordon(helper, n, true); err != nil {
		fail(err)
	}
	if err := drain.RunNodeDrain(helper, node); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "drain:", err)
	os.Exit(1)
}
