package main

// docker-compose.yml puts nginx (deploy/compose/nginx.conf) in front of
// two gateways. There is no Docker engine on the machines that test
// Parley, so this test runs the same nginx configuration natively, with
// the compose service names pointed at two real gateway processes on the
// real engines: every transport, load balancing and a dead gateway are
// tried through it.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/parleychat/parley/internal/testutil"
)

// nginxBinary installs (deploy/local/nginx) and returns nginx.
func nginxBinary(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("../../deploy/local/nginx").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("deploy/local/nginx: %v\n%s", err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// startNginx runs deploy/compose/nginx.conf with gateway-1 and gateway-2
// standing for the given gateways, and returns its URL.
func startNginx(t *testing.T, gateway1, gateway2 string) string {
	t.Helper()
	bin := nginxBinary(t)
	conf, err := os.ReadFile("../../deploy/compose/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	site := string(conf)
	for name, url := range map[string]string{"gateway-1:8080": gateway1, "gateway-2:8080": gateway2} {
		if !strings.Contains(site, name) {
			t.Fatalf("nginx.conf no longer names %s", name)
		}
		site = strings.ReplaceAll(site, name, strings.TrimPrefix(url, "http://"))
	}
	if !strings.Contains(site, "listen 80;") {
		t.Fatal("nginx.conf no longer listens on 80")
	}
	site = strings.Replace(site, "listen 80;", "listen "+addr+";", 1)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "default.conf"), []byte(site), 0o644); err != nil {
		t.Fatal(err)
	}
	// What the nginx image's own nginx.conf provides around conf.d.
	main := fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    include %[1]s/default.conf;
}
`, dir)
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "nginx.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", "stderr", "-g", "daemon off;")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("nginx: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("--- nginx log\n%s", tail(logPath, 30))
		}
	})
	testutil.Eventually(t, 10*time.Second, func() error {
		select {
		case <-exited:
			t.Fatalf("nginx exited:\n%s", tail(logPath, 20))
		default:
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return fmt.Errorf("nginx does not listen on %s:\n%s", addr, tail(logPath, 20))
		}
		c.Close()
		return nil
	})
	return "http://" + addr
}

// sendsCounted reads parley_sends_total from a gateway's /metrics.
func sendsCounted(t *testing.T, gateway string) int {
	t.Helper()
	res, err := http.Get(gateway + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "parley_sends_total" {
			n, _ := strconv.ParseFloat(f[1], 64)
			return int(n)
		}
	}
	return 0
}

func TestComposeNginxFrontsBothGateways(t *testing.T) {
	c := newCluster(t, 8)
	c.start("sequencer", "sequencer")
	g1 := c.start("gateway-1", "gateway")
	g2 := c.start("gateway-2", "gateway")
	front := &server{t: t, url: startNginx(t, g1.url, g2.url)}

	// The web client and the API share nginx's one origin.
	res, err := http.Get(front.url + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(strings.ToLower(string(page)), "<html") {
		t.Fatalf("web client through nginx: %d %.100s", res.StatusCode, page)
	}
	alice, bob := front.signIn(t, "alice"), front.signIn(t, "bob")
	cid := front.createGroup(t, alice, "through nginx", "bob")

	// Every transport through nginx: WebSocket upgrade, SSE and a long
	// poll, each passed on as events come (nothing buffered until the end).
	streams := map[string]stream{}
	for _, tr := range transports {
		streams[tr], _ = front.connect(t, tr, bob, "")
	}
	const n = 20
	for i := range n {
		front.send(t, alice, cid, fmt.Sprint("n", i), fmt.Sprint("n", i))
	}
	var last map[string]any
	for _, tr := range transports {
		got := collect(t, streams[tr], n, "message.created")
		for i, m := range got {
			if textOf(m) != fmt.Sprint("n", i) {
				t.Fatalf("%s through nginx: event %d is %q", tr, i, textOf(m))
			}
		}
		last = got[n-1]
	}
	// nginx spread the sends over both gateways.
	s1, s2 := sendsCounted(t, g1.url), sendsCounted(t, g2.url)
	if s1 == 0 || s2 == 0 || s1+s2 != n {
		t.Fatalf("sends per gateway: %d and %d of %d; nginx should balance them", s1, s2, n)
	}

	// A gateway dies: nginx takes every request to the other one, and a
	// client resumes through nginx from its cursor, missing nothing.
	g1.kill()
	for i := range n {
		if r := front.do(t, "POST", "/v1/conversations/"+cid+"/messages", alice, map[string]string{"text": fmt.Sprint("after ", i), "client_id": fmt.Sprint("a", i)}); r.status != 201 {
			t.Fatalf("send %d through nginx with gateway-1 dead: %d %s", i, r.status, r.body)
		}
	}
	for _, tr := range transports {
		st, _ := front.connect(t, tr, bob, last["cursor"].(string))
		got := collect(t, st, n, "message.created")
		for i, m := range got {
			if textOf(m) != fmt.Sprint("after ", i) {
				t.Fatalf("%s resumed through nginx: event %d is %q", tr, i, textOf(m))
			}
		}
		expectQuiet(t, st, 300*time.Millisecond)
		st.close()
	}
}
