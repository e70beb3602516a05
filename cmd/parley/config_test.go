package main

import (
	"flag"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/delivery/indexer"
)

// notSettings are the config fields no flag sets, and why.
var notSettings = map[string]string{
	"Blobs.Logger":    "a dependency handed in by serve, not a setting",
	"Gateway.MaxBody": "API.md fixes request bodies and WebSocket frames at 64 KiB",
}

// parseConfig parses args and env the way run does, without validating.
func parseConfig(t *testing.T, args []string, env map[string]string) config {
	t.Helper()
	var cfg config
	fs := flag.NewFlagSet("parley serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg.registerFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	if err := applyEnv(fs, func(k string) string { return env[k] }); err != nil {
		t.Fatalf("%v: %v", env, err)
	}
	cfg.paceEmbeddedIndex(fs)
	cfg.compose()
	return cfg
}

// sampleValue is a value for f other than its default.
func sampleValue(f *flag.Flag) string {
	switch f.Name {
	case "dev-auth":
		return "false"
	case "cassandra.address-map":
		return "10.0.0.1:9042=127.0.0.1:19042"
	}
	g, ok := f.Value.(flag.Getter)
	if !ok { // a list (flag.Func)
		return "one.example:1,two.example:2"
	}
	switch v := g.Get().(type) {
	case bool:
		return fmt.Sprint(!v)
	case int:
		return fmt.Sprint(v + 3)
	case int64:
		return fmt.Sprint(v + 3)
	case float64:
		return fmt.Sprint(v + 1.5)
	case time.Duration:
		return (v + 7*time.Second).String()
	case string:
		return "sample-" + f.Name
	}
	panic(fmt.Sprintf("flag %s: no sample for %T", f.Name, g.Get()))
}

// leaves lists the fields of v that are not structs, by dotted path.
func leaves(v reflect.Value, prefix string, out map[string]reflect.Value) {
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		path := prefix + f.Name
		if f.Type.Kind() == reflect.Struct {
			leaves(v.Field(i), path+".", out)
			continue
		}
		out[path] = v.Field(i)
	}
}

func TestEveryConfigFieldIsSetByAFlagAndItsEnvironmentTwin(t *testing.T) {
	var cfg config
	fs := flag.NewFlagSet("parley serve", flag.ContinueOnError)
	cfg.registerFlags(fs)
	base := map[string]reflect.Value{}
	leaves(reflect.ValueOf(parseConfig(t, nil, nil)), "", base)

	for _, via := range []string{"flag", "environment"} {
		t.Run(via, func(t *testing.T) {
			set := map[string]bool{}
			fs.VisitAll(func(f *flag.Flag) {
				v := sampleValue(f)
				var got config
				if via == "flag" {
					got = parseConfig(t, []string{"--" + f.Name + "=" + v}, nil)
				} else {
					got = parseConfig(t, nil, map[string]string{envName(f.Name): v})
				}
				after := map[string]reflect.Value{}
				leaves(reflect.ValueOf(got), "", after)
				changed := 0
				for path, b := range base {
					if !reflect.DeepEqual(b.Interface(), after[path].Interface()) {
						set[path] = true
						changed++
					}
				}
				if changed == 0 {
					t.Errorf("%s %s=%s sets no config field", via, f.Name, v)
				}
			})
			for path := range base {
				if !set[path] && notSettings[path] == "" {
					t.Errorf("no %s sets %s", via, path)
				}
			}
		})
	}
}

// --sequencer.batches is bounded: a member of the embedded log hands out
// at least one batch at a time and at most maxSequencerBatches.
func TestSequencerBatchesIsBounded(t *testing.T) {
	// By default several partitions' batches are out at once, so that
	// their synced commits share the disk's flushes.
	if got := parseConfig(t, nil, nil).SequencerBatches; got != 4 {
		t.Errorf("default --sequencer.batches %d, want 4", got)
	}
	checkBounds(t, "sequencer.batches", []string{"0", "-1", fmt.Sprint(maxSequencerBatches + 1)}, []string{"1", "8", fmt.Sprint(maxSequencerBatches)})
}

// checkBounds checks that validate refuses --name with each of bad,
// naming the flag, and takes each of good.
func checkBounds(t *testing.T, name string, bad, good []string) {
	t.Helper()
	for _, v := range bad {
		cfg := parseConfig(t, []string{"--" + name + "=" + v}, nil)
		if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("--%s=%s: validate = %v, want an error naming the flag", name, v, err)
		}
	}
	for _, v := range good {
		cfg := parseConfig(t, []string{"--" + name + "=" + v}, nil)
		if err := cfg.validate(); err != nil {
			t.Errorf("--%s=%s: %v", name, v, err)
		}
	}
}

// --gc.min-heap-mib defaults to defaultGCMinHeapMiB, takes 0 for Go's own
// pacing, and refuses a negative or absurd size by name.
func TestGCMinHeapIsBounded(t *testing.T) {
	if cfg := parseConfig(t, nil, nil); cfg.GCMinHeapMiB != defaultGCMinHeapMiB {
		t.Errorf("default --gc.min-heap-mib %d, want %d", cfg.GCMinHeapMiB, defaultGCMinHeapMiB)
	}
	checkBounds(t, "gc.min-heap-mib", []string{"-1", fmt.Sprint(maxGCMinHeapMiB + 1)}, []string{"0", "64", fmt.Sprint(maxGCMinHeapMiB)})
}

// The embedded index paces the indexer at embeddedIndexInterval unless
// --indexer.interval or its environment twin says otherwise, even to the
// package default; Elasticsearch keeps the package default.
func TestIndexerIntervalDefaultsByIndex(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want time.Duration
	}{
		{"embedded", nil, nil, embeddedIndexInterval},
		{"embedded, flag", []string{"--indexer.interval=100ms"}, nil, 100 * time.Millisecond},
		{"embedded, environment", nil, map[string]string{"PARLEY_INDEXER_INTERVAL": "0s"}, 0},
		{"elasticsearch", []string{"--elasticsearch.urls=http://127.0.0.1:9200"}, nil, indexer.DefaultInterval},
	} {
		if got := parseConfig(t, tc.args, tc.env).Indexer.Interval; got != tc.want {
			t.Errorf("%s: interval %v, want %v", tc.name, got, tc.want)
		}
	}
	if embeddedIndexInterval > indexer.MaxInterval {
		t.Errorf("embedded interval %v beyond the indexer's %v", embeddedIndexInterval, indexer.MaxInterval)
	}
}
