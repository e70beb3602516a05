package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is the release this build is, set at link time for releases
// (-ldflags "-X main.version=v0.4.0"); CHANGELOG.md lists them. A build
// installed with `go install …@vX` reports its module version instead.
var version = "v0.4.0-dev"

// commit and buildDate are set at link time by `make build` (-X
// main.commit=… -X main.buildDate=…); without them the Go toolchain's VCS
// stamp stands in, when the build has one.
var (
	commit    = ""
	buildDate = ""
)

// versionLine is what `parley version` prints: version, commit and date.
func versionLine() string {
	v, rev, date, dirty := version, commit, buildDate, false
	if bi, ok := debug.ReadBuildInfo(); ok {
		if mv := bi.Main.Version; mv != "" && mv != "(devel)" {
			v = mv
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if rev == "" {
					rev = s.Value
				}
			case "vcs.time":
				if date == "" {
					date = s.Value
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if rev == "" {
		rev = "unknown"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "+dirty"
	}
	if date == "" {
		date = "unknown"
	}
	return fmt.Sprintf("parley %s (commit %s, built %s, %s %s/%s)", v, rev, date, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
