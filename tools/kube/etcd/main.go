// Command etcd is upstream etcd's server at the version the pinned Kubernetes requires
// (go.etcd.io/etcd/server/v3 in go.mod), built by build.sh next to the control plane.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
