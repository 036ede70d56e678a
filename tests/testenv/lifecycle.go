// lifecycle.go decides when the control plane stops: on SIGTERM/SIGINT, when the process that
// started it is gone (--parent-pid), or when its stdin closes (--exit-on-stdin-close). The last
// two make sure a test run that crashes, panics or is SIGKILLed never leaves a control plane
// behind: the harness keeps a pipe to our stdin that the kernel closes when it dies.
package main

import (
	"errors"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// stopReasons returns a channel that yields the first reason to shut down.
func stopReasons(parentPID int, watchStdin bool) <-chan string {
	reasons := make(chan string, 4)

	signals := make(chan os.Signal, 2)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	go func() {
		sig := <-signals
		reasons <- "received " + sig.String()
	}()

	if parentPID > 0 {
		go func() {
			// When the parent is our direct parent, reparenting is the exact signal (a dead
			// parent may linger as a zombie, which kill(pid, 0) still reports as alive).
			direct := os.Getppid() == parentPID
			for range time.Tick(250 * time.Millisecond) {
				if direct && os.Getppid() != parentPID {
					reasons <- "parent process exited"
					return
				}
				if !direct && errors.Is(syscall.Kill(parentPID, 0), syscall.ESRCH) {
					reasons <- "parent process exited"
					return
				}
			}
		}()
	}

	if watchStdin {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			reasons <- "stdin closed"
		}()
	}
	return reasons
}
