// crds.go installs CustomResourceDefinitions before the controller manager starts. The garbage
// collector discovers resource types at start and only every 30 s afterwards; CRDs that exist
// before it starts are collected from the first second, as in a cluster where the operator's
// chart was installed earlier. The Rust harness still applies crds/ itself (server-side apply),
// so a control plane started without --crds works too, only with slower GC for new types.
package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
)

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// applyCRDs server-side applies every CustomResourceDefinition in dir/*.yaml and waits until
// each one is Established. A missing directory is not an error: crds/ may not exist yet.
func applyCRDs(ctx context.Context, client dynamic.Interface, dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var names []string
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var obj unstructured.Unstructured
			if err := decoder.Decode(&obj.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			if obj.Object == nil {
				continue // empty document between "---" separators
			}
			if obj.GetKind() != "CustomResourceDefinition" {
				return nil, fmt.Errorf("%s: expected only CustomResourceDefinitions, found kind %q", file, obj.GetKind())
			}
			if _, err := client.Resource(crdResource).Apply(ctx, obj.GetName(), &obj,
				metav1.ApplyOptions{FieldManager: "eiam-testenv", Force: true}); err != nil {
				return nil, fmt.Errorf("apply %s from %s: %w", obj.GetName(), file, err)
			}
			names = append(names, obj.GetName())
		}
	}
	for _, name := range names {
		err := wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			crd, err := client.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, nil
			}
			conditions, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
			for _, c := range conditions {
				cond, _ := c.(map[string]any)
				if cond["type"] == "Established" && cond["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return nil, fmt.Errorf("CRD %s not Established: %w", name, err)
		}
	}
	return names, nil
}

func joinOrNone(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}
