// Command parley is Parley's server: `parley` or `parley serve`.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if err != errHelp {
			// One line, whatever the error joins (errors.Join uses newlines).
			fmt.Fprintln(os.Stderr, "parley:", strings.ReplaceAll(err.Error(), "\n", "; "))
			var coded interface{ ExitCode() int }
			if errors.As(err, &coded) {
				os.Exit(coded.ExitCode())
			}
			os.Exit(1)
		}
	}
}
