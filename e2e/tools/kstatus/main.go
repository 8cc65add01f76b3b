// Command kstatus computes the kstatus of Kubernetes objects with the kstatus
// library itself (sigs.k8s.io/cli-utils/pkg/kstatus/status, what kpt, Flux's
// health checks and `kubectl wait`-like tools use), and prints one JSON line
// per object: {"status": "Current"|"InProgress"|"Failed"|..., "message": ...}.
//
//	kstatus < OBJECTS.json   (one object, or a JSON array of them)
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

func main() {
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var objects []json.RawMessage
	if err := json.Unmarshal(input, &objects); err != nil {
		objects = []json.RawMessage{input}
	}
	out := json.NewEncoder(os.Stdout)
	for i, raw := range objects {
		// The same decoder client-go uses for unstructured objects (integers as int64).
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(raw); err != nil {
			fmt.Fprintf(os.Stderr, "object %d: %v\n", i, err)
			os.Exit(2)
		}
		r := result{}
		if computed, err := status.Compute(u); err != nil {
			r.Error = err.Error()
		} else {
			r.Status, r.Message = computed.Status.String(), computed.Message
		}
		if err := out.Encode(r); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
