package argocd

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"

	"github.com/rapport-dev/rapport/test/utils"
)

// Health is what a health.lua returns (Argo CD's health.HealthStatus).
type Health struct {
	Status  string
	Message string
}

// healthStatuses are the statuses Argo CD accepts from a health script; any
// other reads as Unknown there, and is an error here.
var healthStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true,
}

// Action is one entry of what a discovery.lua returns.
type Action struct {
	Disabled    bool
	DisplayName string
	IconClass   string
}

// Script reads a customization from config/argocd, e.g. "health.lua",
// "actions/discovery.lua", "actions/pause/action.lua".
func Script(name string) (string, error) {
	b, err := os.ReadFile(filepath.Join(utils.RepoRoot(), "config", "argocd", filepath.FromSlash(name)))
	if err != nil {
		return "", fmt.Errorf("read Argo CD customization: %w", err)
	}
	return string(b), nil
}

// RunHealth runs a health script against obj.
func RunHealth(script string, obj map[string]any) (Health, error) {
	v, err := run(script, obj)
	if err != nil {
		return Health{}, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return Health{}, fmt.Errorf("health script returned %T, want a table with status and message", v)
	}
	h := Health{}
	h.Status, _ = m["status"].(string)
	h.Message, _ = m["message"].(string)
	if !healthStatuses[h.Status] {
		return h, fmt.Errorf("health script returned status %q: Argo CD would read it as Unknown", h.Status)
	}
	return h, nil
}

// RunDiscovery runs an action discovery script against obj and returns the
// actions by name.
func RunDiscovery(script string, obj map[string]any) (map[string]Action, error) {
	v, err := run(script, obj)
	if err != nil {
		return nil, err
	}
	out := map[string]Action{}
	if arr, ok := v.([]any); ok && len(arr) == 0 {
		return out, nil // an empty table: no actions
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("discovery script returned %T, want a table of actions by name", v)
	}
	for name, a := range m {
		fields, _ := a.(map[string]any) // {} decodes as []: an enabled action without fields
		act := Action{}
		act.Disabled, _ = fields["disabled"].(bool)
		act.DisplayName, _ = fields["displayName"].(string)
		act.IconClass, _ = fields["iconClass"].(string)
		out[name] = act
	}
	return out, nil
}

// RunAction runs an action script against obj and returns the object it
// returns, with the empty objects that became empty arrays on the way out
// of Lua restored, as Argo CD does before it patches the live object.
func RunAction(script string, obj map[string]any) (map[string]any, error) {
	v, err := run(script, obj)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("action script returned %T, want the modified object", v)
	}
	restoreEmptyObjects(m, obj)
	return m, nil
}

// run executes script in a state like Argo CD's and returns its value.
func run(script string, obj map[string]any) (any, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for name, open := range map[string]lua.LGFunction{
		lua.LoadLibName: lua.OpenPackage, lua.BaseLibName: lua.OpenBase, lua.TabLibName: lua.OpenTable,
	} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(open), NRet: 0, Protect: true}, lua.LString(name)); err != nil {
			return nil, fmt.Errorf("open lua library %q: %w", name, err)
		}
	}
	l.PreloadModule(lua.OsLibName, func(l *lua.LState) int {
		l.Push(l.SetFuncs(l.NewTable(), map[string]lua.LGFunction{"time": osTime, "date": osDate}))
		return 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, fmt.Errorf("run lua: %w", err)
	}
	return fromLua(l.Get(-1))
}

// toLua converts a JSON-like Go value (unstructured content) to Lua.
func toLua(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case bool:
		return lua.LBool(x)
	case string:
		return lua.LString(x)
	case int64:
		return lua.LNumber(x)
	case int32:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case float64:
		return lua.LNumber(x)
	case []any:
		t := l.CreateTable(len(x), 0)
		for _, item := range x {
			t.Append(toLua(l, item))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(x))
		for k, item := range x {
			t.RawSetString(k, toLua(l, item))
		}
		return t
	}
	return lua.LNil
}

// fromLua converts a Lua value back as Argo CD's JSON encoding reads it: a
// table with keys 1..n is an array, an empty table an empty array, any
// other table an object; integral numbers are integers.
func fromLua(v lua.LValue) (any, error) {
	switch x := v.(type) {
	case *lua.LNilType:
		return nil, nil
	case lua.LBool:
		return bool(x), nil
	case lua.LString:
		return string(x), nil
	case lua.LNumber:
		f := float64(x)
		if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), nil
		}
		return f, nil
	case *lua.LTable:
		return tableFromLua(x)
	}
	return nil, fmt.Errorf("lua value of type %s has no JSON form", v.Type())
}

func tableFromLua(t *lua.LTable) (any, error) {
	if n := t.MaxN(); n > 0 || t.Len() == 0 && isEmpty(t) {
		arr := make([]any, 0, n)
		for i := 1; i <= n; i++ {
			item, err := fromLua(t.RawGetInt(i))
			if err != nil {
				return nil, err
			}
			arr = append(arr, item)
		}
		return arr, nil
	}
	m := map[string]any{}
	var err error
	t.ForEach(func(k, item lua.LValue) {
		if err != nil {
			return
		}
		key, ok := k.(lua.LString)
		if !ok {
			err = fmt.Errorf("lua table key %v is not a string", k)
			return
		}
		m[string(key)], err = fromLua(item)
	})
	return m, err
}

func isEmpty(t *lua.LTable) bool {
	k, _ := t.Next(lua.LNil)
	return k == lua.LNil
}

// restoreEmptyObjects puts back the empty objects of before that the Lua
// round trip turned into empty arrays (Argo CD's cleanReturnedObj).
func restoreEmptyObjects(after, before map[string]any) {
	for k, old := range before {
		switch nv := after[k].(type) {
		case map[string]any:
			if om, ok := old.(map[string]any); ok {
				restoreEmptyObjects(nv, om)
			}
		case []any:
			switch ov := old.(type) {
			case map[string]any:
				if len(nv) == 0 {
					after[k] = ov
				}
			case []any:
				for i := range nv {
					if i < len(ov) {
						nm, ok1 := nv[i].(map[string]any)
						om, ok2 := ov[i].(map[string]any)
						if ok1 && ok2 {
							restoreEmptyObjects(nm, om)
						}
					}
				}
			}
		}
	}
}

// osTime is os.time() of Argo CD's safe os module, without arguments.
func osTime(l *lua.LState) int {
	if l.GetTop() != 0 {
		l.RaiseError("os.time with a table is not supported by this test harness")
	}
	l.Push(lua.LNumber(time.Now().Unix()))
	return 1
}

// osDate is os.date(format) of Argo CD's safe os module: a leading "!"
// means UTC; %Y %m %d %H %M %S are supported.
func osDate(l *lua.LState) int {
	f := l.CheckString(1)
	t := time.Now()
	if strings.HasPrefix(f, "!") {
		t, f = t.UTC(), f[1:]
	}
	r := strings.NewReplacer("%Y", "2006", "%m", "01", "%d", "02", "%H", "15", "%M", "04", "%S", "05")
	l.Push(lua.LString(t.Format(r.Replace(f))))
	return 1
}
