package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The built binary, shared by every test of this package that runs the
// real program (end-to-end tests, benchmarks).
var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// TestMain removes the built binary when the tests are done.
func TestMain(m *testing.M) {
	code := m.Run()
	if binaryPath != "" {
		os.RemoveAll(filepath.Dir(binaryPath))
	}
	os.Exit(code)
}

// backroomBinary builds cmd/backroom once per test binary and returns its
// path.
func backroomBinary(tb testing.TB) string {
	tb.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "backroom-bin-")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "backroom")
		out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput()
		if err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		tb.Fatal(binaryErr)
	}
	return binaryPath
}

// requireTool fails (under CI=true) or skips (elsewhere) when a program the
// test drives is not installed.
func requireTool(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		tb.Fatalf("%s is required (CI=true): install it (.ci/run does)", name)
	}
	tb.Skipf("%s not installed", name)
	return ""
}

// freePort returns a loopback address with a port nobody listens on.
func freePort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a `backroom serve` process.
type proc struct {
	cmd      *exec.Cmd
	SSHAddr  string
	HTTPAddr string
	log      *syncBuffer
	done     chan struct{}
	exitErr  error
}

// startBackroom runs `backroom serve --data dataDir` with env added to a
// minimal environment, on free loopback ports, and waits until both
// listeners answer (/readyz and the SSH banner).
func startBackroom(tb testing.TB, dataDir string, env ...string) *proc {
	tb.Helper()
	bin := backroomBinary(tb)
	p := &proc{SSHAddr: freePort(tb), HTTPAddr: freePort(tb), log: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, "serve", "--data", dataDir, "--ssh-addr", p.SSHAddr, "--http-addr", p.HTTPAddr)
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	p.cmd.Stdout = p.log
	p.cmd.Stderr = p.log
	p.cmd.Dir = filepath.Dir(dataDir)
	if err := p.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() { p.exitErr = p.cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() { p.Kill() })
	if err := p.waitReady(10 * time.Second); err != nil {
		tb.Fatalf("backroom did not become ready: %v\nlog:\n%s", err, p.log.String())
	}
	return p
}

// waitReady polls until /readyz is 200 and the SSH port answers with a
// banner.
func (p *proc) waitReady(limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return fmt.Errorf("exited: %v", p.exitErr)
		default:
		}
		if resp, err := client.Get("http://" + p.HTTPAddr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && sshBanner(p.SSHAddr) {
				return nil
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %s", limit)
}

func sshBanner(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "SSH-2.0-")
}

// Stop sends SIGTERM and waits for the process to exit.
func (p *proc) Stop(tb testing.TB) {
	tb.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.Kill()
		tb.Fatalf("backroom did not stop on SIGTERM\nlog:\n%s", p.log.String())
	}
}

// Kill sends SIGKILL (a crash) and waits.
func (p *proc) Kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// Pid is the process id.
func (p *proc) Pid() int { return p.cmd.Process.Pid }

// Log is everything the process printed so far.
func (p *proc) Log() string { return p.log.String() }
