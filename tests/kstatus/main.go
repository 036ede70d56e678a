// Command kstatus evaluates objects the way Flux does, for eiam-operator's GitOps tests:
//
//	kstatus eval < objects.json        computes kstatus (sigs.k8s.io/cli-utils/pkg/kstatus) for each object of
//	                                   a JSON array or a Kubernetes List and prints one JSON result per line:
//	                                   {"name": ..., "status": "Current|InProgress|Failed|...", "message": ...}
//	kstatus eval-flux KUSTOMIZATION < objects.json
//	                                   the same through the healthCheckExprs of a Flux Kustomization file, with
//	                                   Flux's own evaluator (github.com/fluxcd/pkg/runtime/cel), as
//	                                   kustomize-controller does for custom resources it has expressions for
//	kstatus validate-flux FILE...      strictly decodes every Flux object in the YAML files into the Flux API Go
//	                                   types (unknown or misspelt fields fail), so the examples stay valid
//	                                   without Flux's CRDs installed.
//
// Flux's kustomize-controller and helm-controller compute health with this same package.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	helmv2 "github.com/fluxcd/helm-controller/api/v2"
	kustomizev1 "github.com/fluxcd/kustomize-controller/api/v1"
	"github.com/fluxcd/pkg/apis/kustomize"
	fluxcel "github.com/fluxcd/pkg/runtime/cel"
	sourcev1 "github.com/fluxcd/source-controller/api/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "eval":
		err = eval(os.Stdin, os.Stdout, nil)
	case "eval-flux":
		if len(os.Args) != 3 {
			usage()
		}
		var exprs []kustomize.CustomHealthCheck
		exprs, err = healthCheckExprs(os.Args[2])
		if err == nil {
			err = eval(os.Stdin, os.Stdout, exprs)
		}
	case "validate-flux":
		err = validateFlux(os.Args[2:], os.Stdout)
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kstatus: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: kstatus eval < objects.json | kstatus eval-flux KUSTOMIZATION < objects.json | kstatus validate-flux FILE...")
	os.Exit(2)
}

type result struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message"`
}

// healthCheckExprs reads spec.healthCheckExprs of the Flux Kustomization in file.
func healthCheckExprs(file string) ([]kustomize.CustomHealthCheck, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var k kustomizev1.Kustomization
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(k.Spec.HealthCheckExprs) == 0 {
		return nil, fmt.Errorf("%s: no spec.healthCheckExprs", file)
	}
	return k.Spec.HealthCheckExprs, nil
}

// fluxStatus evaluates u with the expressions for its kind, as kustomize-controller does.
func fluxStatus(u *unstructured.Unstructured, exprs []kustomize.CustomHealthCheck) (*status.Result, error) {
	for _, check := range exprs {
		if check.APIVersion != u.GetAPIVersion() || check.Kind != u.GetKind() {
			continue
		}
		evaluator, err := fluxcel.NewStatusEvaluator(&check.HealthCheckExpressions)
		if err != nil {
			return nil, err
		}
		result, err := evaluator.Evaluate(context.Background(), u)
		if err != nil {
			// kustomize-controller's status poller reports a reader error as Unknown and keeps waiting: the
			// object is not healthy (for example no status yet, so the expressions cannot be evaluated).
			return &status.Result{Status: status.UnknownStatus, Message: err.Error()}, nil
		}
		return &status.Result{Status: status.Status(result.Status), Message: result.Message}, nil
	}
	return nil, fmt.Errorf("no healthCheckExprs entry for %s %s", u.GetAPIVersion(), u.GetKind())
}

func eval(in io.Reader, out io.Writer, exprs []kustomize.CustomHealthCheck) error {
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	// apimachinery's JSON decoding keeps integers int64, as the API machinery (and kstatus) expects.
	var objects []map[string]any
	if err := utiljson.Unmarshal(data, &objects); err != nil {
		var list struct {
			Items []map[string]any `json:"items"`
		}
		if err2 := utiljson.Unmarshal(data, &list); err2 != nil || list.Items == nil {
			return fmt.Errorf("stdin is neither a JSON array of objects nor a List: %v", err)
		}
		objects = list.Items
	}
	enc := json.NewEncoder(out)
	for _, object := range objects {
		u := &unstructured.Unstructured{Object: object}
		var res *status.Result
		if exprs == nil {
			res, err = status.Compute(u)
		} else {
			res, err = fluxStatus(u, exprs)
		}
		if err != nil {
			return fmt.Errorf("compute status of %s/%s: %w", u.GetNamespace(), u.GetName(), err)
		}
		if err := enc.Encode(result{Name: u.GetName(), Status: res.Status.String(), Message: res.Message}); err != nil {
			return err
		}
	}
	return nil
}

func validateFlux(files []string, out io.Writer) error {
	if len(files) == 0 {
		return errors.New("validate-flux needs at least one file")
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := reader.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
				Metadata   struct {
					Name string `json:"name"`
				} `json:"metadata"`
			}
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			var target any
			switch meta.APIVersion + "/" + meta.Kind {
			case kustomizev1.GroupVersion.String() + "/Kustomization":
				target = &kustomizev1.Kustomization{}
			case helmv2.GroupVersion.String() + "/HelmRelease":
				target = &helmv2.HelmRelease{}
			case sourcev1.GroupVersion.String() + "/GitRepository":
				target = &sourcev1.GitRepository{}
			default:
				// Not a Flux object (for example a plain kustomize file): the API server tests cover it.
				continue
			}
			if err := yaml.UnmarshalStrict(doc, target); err != nil {
				return fmt.Errorf("%s: %s %s: %w", file, meta.Kind, meta.Metadata.Name, err)
			}
			fmt.Fprintf(out, "valid %s %s %s\n", meta.APIVersion, meta.Kind, meta.Metadata.Name)
		}
	}
	return nil
}
