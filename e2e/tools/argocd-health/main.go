// Command argocd-health runs an Argo CD resource health script the way Argo CD
// runs it, and prints Argo CD's verdict as one JSON line.
//
//	argocd-health [-open-libs] SCRIPT.lua < OBJECTS.json
//
// stdin holds one Kubernetes object or a JSON array of them; stdout gets one
// line per object: {"status": ..., "message": ...}, or {"error": ...} when Argo
// CD would fail to evaluate the script (it then reports the resource Unknown).
//
// The Lua state is set up as Argo CD's own util/lua package does it
// (github.com/argoproj/argo-cd, util/lua/lua.go, VM.runLua): gopher-lua (Lua
// 5.1) with lua.Options{SkipOpenLibs: !useOpenLibs}; then, whatever useOpenLibs
// says, only the package, base and table libraries are opened, plus a "safe" os
// library with time and date only (util/lua/oslib_safe.go); the object is the
// global `obj`, converted as util/lua's decodeValue does (JSON null -> nil,
// numbers -> Lua numbers); the script runs under a 1 s deadline; a returned
// table is the health, whose status must be one of Argo CD's health codes.
// Without `resource.customizations.useOpenLibs.<group_kind>: "true"` in
// argocd-cm, string, math, io, os (beyond the safe subset), coroutine and debug
// are not there: `string.format` fails with "attempt to index a non-table
// object(nil) with key 'format'".
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

type health struct {
	Status  string `json:"status,omitempty"`
	Message string `json:"message,omitempty"`
	Error   string `json:"error,omitempty"`
}

// Argo CD's health codes (gitops-engine pkg/health): anything else is Unknown
// with "Lua returned an invalid health status".
var validStatus = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

func main() {
	openLibs := flag.Bool("open-libs", false, "as with resource.customizations.useOpenLibs.<group_kind>: \"true\"")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health [-open-libs] SCRIPT.lua < OBJECTS.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	input, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	objects, err := decodeObjects(input)
	if err != nil {
		fmt.Fprintln(os.Stderr, "stdin:", err)
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, object := range objects {
		if err := out.Encode(run(object, string(script), *openLibs)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// decodeObjects reads one object or an array of them. Numbers are decoded the
// way Kubernetes' unstructured decoder does (integers as int64, others float64),
// which is what Argo CD's cache holds.
func decodeObjects(input []byte) ([]map[string]any, error) {
	decoder := json.NewDecoder(bytes.NewReader(input))
	decoder.UseNumber()
	var value any
	if err := decoder.Decode(&value); err != nil {
		return nil, err
	}
	value = numbers(value)
	switch v := value.(type) {
	case map[string]any:
		return []map[string]any{v}, nil
	case []any:
		objects := make([]map[string]any, 0, len(v))
		for i, item := range v {
			object, ok := item.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("item %d is not an object", i)
			}
			objects = append(objects, object)
		}
		return objects, nil
	}
	return nil, fmt.Errorf("neither an object nor an array")
}

func numbers(value any) any {
	switch v := value.(type) {
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	case []any:
		for i := range v {
			v[i] = numbers(v[i])
		}
	case map[string]any:
		for k := range v {
			v[k] = numbers(v[k])
		}
	}
	return value
}

func run(object map[string]any, script string, openLibs bool) health {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, openSafeOs},
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return health{Error: err.Error()}
		}
	}
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), safeOs))
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, object))
	if err := l.DoString(script); err != nil {
		return health{Error: err.Error()}
	}
	returned := l.Get(-1)
	table, ok := returned.(*lua.LTable)
	if !ok {
		return health{Error: fmt.Sprintf("expect table output from Lua script, not %s", returned.Type())}
	}
	result := health{}
	if status, ok := table.RawGetString("status").(lua.LString); ok {
		result.Status = string(status)
	}
	switch message := table.RawGetString("message").(type) {
	case lua.LString:
		result.Message = string(message)
	case lua.LNumber:
		// Argo CD encodes the table to JSON and decodes it into a struct whose
		// message is a string: a number there is an error.
		return health{Error: "message is a number, not a string"}
	}
	if !validStatus[result.Status] {
		return health{Status: "Unknown", Message: "Lua returned an invalid health status"}
	}
	return result
}

// The safe os subset Argo CD exposes: os.time and os.date only (no exit,
// execute, getenv, remove, ...). Paved's scripts use neither; these exist so
// that a script which does behaves here as in Argo CD.
var safeOs = map[string]lua.LGFunction{
	"time": func(l *lua.LState) int {
		l.Push(lua.LNumber(time.Now().Unix()))
		return 1
	},
	"date": func(l *lua.LState) int {
		l.Push(lua.LString(time.Now().UTC().Format(time.RFC3339)))
		return 1
	},
}

func openSafeOs(l *lua.LState) int {
	l.Push(l.RegisterModule(lua.OsLibName, safeOs))
	return 1
}

// toLua converts a decoded JSON value as Argo CD's decodeValue does.
func toLua(l *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		array := l.CreateTable(len(v), 0)
		for _, item := range v {
			array.Append(toLua(l, item))
		}
		return array
	case map[string]any:
		table := l.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(l, item))
		}
		return table
	}
	return lua.LNil
}
