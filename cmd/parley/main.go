// Command parley is Parley's server: `parley` or `parley serve`.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if err != errHelp {
			fmt.Fprintln(os.Stderr, "parley:", err)
			os.Exit(1)
		}
	}
}
