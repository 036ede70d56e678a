// Command kubectl is upstream kubectl (k8s.io/kubernetes/cmd/kubectl, same three lines), built from the
// k8s.io/kubectl module pinned in ../go.mod so that tests run the README's kubectl commands with a known
// client instead of whatever the machine has.
package main

import (
	_ "k8s.io/client-go/plugin/pkg/client/auth" // client auth plugins, as upstream
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	command := cmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		util.CheckErr(err)
	}
}
