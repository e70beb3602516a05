package verify

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// The manifests under deploy/kubernetes are held to the Kubernetes API and
// to the parley binary: every object decodes strictly (an unknown or
// misspelt field fails), and every container's flags and environment pass
// `parley check-config`, which refuses unknown flags and warns of PARLEY_
// variables that no flag has (a warning fails here too).

const manifestDir = "../kubernetes"

// kustomization is the part of kustomize's Kustomization these manifests
// use; anything else in the file fails the strict decode.
type kustomization struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors"`
	} `json:"labels"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	} `json:"images"`
	Resources []string `json:"resources"`
}

// strict decodes YAML into v, refusing fields v does not have.
func strict(doc []byte, v any) error {
	j, err := yaml.YAMLToJSON(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// manifests are the decoded objects of a kustomization, by kind.
type manifests struct {
	deployments  []*appsv1.Deployment
	services     []*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	hpas         []*autoscalingv2.HorizontalPodAutoscaler
	pdbs         []*policyv1.PodDisruptionBudget
	ingresses    []*networkingv1.Ingress
	namespaces   []*corev1.Namespace
	kustomize    kustomization
	objectsCount int
}

func loadManifests(t *testing.T) *manifests {
	t.Helper()
	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	raw, err := os.ReadFile(filepath.Join(manifestDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := strict(raw, &m.kustomize); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if m.kustomize.Kind != "Kustomization" || m.kustomize.APIVersion != "kustomize.config.k8s.io/v1beta1" {
		t.Fatalf("kustomization.yaml is %s %s", m.kustomize.APIVersion, m.kustomize.Kind)
	}
	// Every YAML file of the folder is a resource, and every resource a file.
	files, _ := filepath.Glob(filepath.Join(manifestDir, "*.yaml"))
	listed := map[string]bool{}
	for _, r := range m.kustomize.Resources {
		listed[r] = true
	}
	for _, f := range files {
		base := filepath.Base(f)
		if base != "kustomization.yaml" && !listed[base] {
			t.Errorf("%s is not in kustomization.yaml's resources", base)
		}
	}
	for _, r := range m.kustomize.Resources {
		b, err := os.ReadFile(filepath.Join(manifestDir, r))
		if err != nil {
			t.Errorf("resource %s: %v", r, err)
			continue
		}
		for i, doc := range splitDocs(b) {
			if err := m.add(doc); err != nil {
				t.Errorf("%s document %d: %v", r, i+1, err)
			}
		}
	}
	return m
}

func splitDocs(b []byte) [][]byte {
	var out [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			out = append(out, []byte(d))
		}
	}
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// add decodes one document strictly into the type its apiVersion and kind name.
func (m *manifests) add(doc []byte) error {
	var u unstructured.Unstructured
	if err := yaml.Unmarshal(doc, &u.Object); err != nil {
		return err
	}
	gvk := u.GroupVersionKind()
	var target any
	switch gvk.GroupVersion().String() + "/" + gvk.Kind {
	case "apps/v1/Deployment":
		d := &appsv1.Deployment{}
		m.deployments, target = append(m.deployments, d), d
	case "v1/Service":
		s := &corev1.Service{}
		m.services, target = append(m.services, s), s
	case "v1/ConfigMap":
		c := &corev1.ConfigMap{}
		target = c
		defer func() { m.configMaps[c.Name] = c }()
	case "v1/Secret":
		s := &corev1.Secret{}
		target = s
		defer func() { m.secrets[s.Name] = s }()
	case "v1/Namespace":
		n := &corev1.Namespace{}
		m.namespaces, target = append(m.namespaces, n), n
	case "autoscaling/v2/HorizontalPodAutoscaler":
		h := &autoscalingv2.HorizontalPodAutoscaler{}
		m.hpas, target = append(m.hpas, h), h
	case "policy/v1/PodDisruptionBudget":
		p := &policyv1.PodDisruptionBudget{}
		m.pdbs, target = append(m.pdbs, p), p
	case "networking.k8s.io/v1/Ingress":
		i := &networkingv1.Ingress{}
		m.ingresses, target = append(m.ingresses, i), i
	default:
		return fmt.Errorf("unexpected object %s %s (add its type to the test)", gvk.GroupVersion(), gvk.Kind)
	}
	m.objectsCount++
	if err := strict(doc, target); err != nil {
		return fmt.Errorf("%s %s: %w", gvk.Kind, u.GetName(), err)
	}
	return nil
}

func (m *manifests) deployment(t *testing.T, role string) *appsv1.Deployment {
	t.Helper()
	for _, d := range m.deployments {
		if d.Labels["app.kubernetes.io/component"] == role {
			return d
		}
	}
	t.Fatalf("no Deployment for role %s", role)
	return nil
}

func (m *manifests) service(t *testing.T, name string) *corev1.Service {
	t.Helper()
	for _, s := range m.services {
		if s.Name == name {
			return s
		}
	}
	t.Fatalf("no Service %s", name)
	return nil
}

// TestAdminPeersReachEveryNode: the admin view's peers name a headless
// Service that selects the pods of every Deployment, on the port they
// listen on.
func TestAdminPeersReachEveryNode(t *testing.T) {
	m := loadManifests(t)
	peers := m.configMaps["parley-config"].Data["PARLEY_ADMIN_PEERS"]
	host, port, ok := strings.Cut(peers, ":")
	if !ok {
		t.Fatalf("PARLEY_ADMIN_PEERS %q", peers)
	}
	svc := m.service(t, host)
	if svc.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("Service %s is not headless: its name would resolve to one virtual IP, not every node", host)
	}
	for _, d := range m.deployments {
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("Service %s misses %s's pods", host, d.Name)
		}
		c := d.Spec.Template.Spec.Containers[0]
		_, listen, _ := strings.Cut(flagValue(c.Args, "addr"), ":")
		if listen != port {
			t.Errorf("%s listens on %s, the peers name port %s", d.Name, listen, port)
		}
	}
}

// TestStrictDecodeRefusesUnknownFields: the decoder the manifests pass
// would catch a misspelt field.
func TestStrictDecodeRefusesUnknownFields(t *testing.T) {
	var d appsv1.Deployment
	err := strict([]byte("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n"), &d)
	if err == nil || !strings.Contains(err.Error(), "replica") {
		t.Fatalf("a misspelt field decoded: %v", err)
	}
	var c corev1.Container
	if err := strict([]byte("name: x\nreadinesProbe: {}\n"), &c); err == nil {
		t.Fatal("a misspelt probe decoded")
	}
}

// TestExtraManifestsDecodeStrictly: the manifests kept beside the base
// (extra/, listed by an overlay or once their role exists) are valid too.
func TestExtraManifestsDecodeStrictly(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(manifestDir, "extra", "*.yaml"))
	m := &manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range splitDocs(b) {
			if err := m.add(doc); err != nil {
				t.Errorf("%s document %d: %v", filepath.Base(f), i+1, err)
			}
		}
	}
}

// TestManifestsDecodeStrictly: every object of the kustomization is a
// valid object of its type, and the set is complete.
func TestManifestsDecodeStrictly(t *testing.T) {
	m := loadManifests(t)
	if len(m.services) != 2 || len(m.hpas) != 1 || len(m.pdbs) != 1 || len(m.ingresses) != 1 || len(m.configMaps) != 1 || len(m.secrets) != 1 {
		t.Errorf("want two Services and one each of HPA, PDB, Ingress, ConfigMap, Secret; have %d %d %d %d %d %d",
			len(m.services), len(m.hpas), len(m.pdbs), len(m.ingresses), len(m.configMaps), len(m.secrets))
	}
	roles := map[string]bool{}
	for _, d := range m.deployments {
		roles[d.Labels["app.kubernetes.io/component"]] = true
	}
	for _, r := range []string{"gateway", "sequencer", "indexer", "media", "push"} {
		if !roles[r] {
			t.Errorf("no Deployment runs the %s role", r)
		}
	}
	t.Logf("%d objects", m.objectsCount)
}

// TestDeploymentsAreWiredAndProbed: each Deployment selects its own pods,
// runs the role its label names, and probes /healthz (liveness) and
// /readyz (readiness; a gateway's leaves out index and blobs) on the port
// the container listens on.
func TestDeploymentsAreWiredAndProbed(t *testing.T) {
	m := loadManifests(t)
	for _, d := range m.deployments {
		sel := labels.SelectorFromSet(d.Spec.Selector.MatchLabels)
		if !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("%s: selector %v does not match its pods %v", d.Name, d.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
		}
		role := d.Labels["app.kubernetes.io/component"]
		if len(d.Spec.Template.Spec.Containers) != 1 {
			t.Errorf("%s: %d containers", d.Name, len(d.Spec.Template.Spec.Containers))
			continue
		}
		c := d.Spec.Template.Spec.Containers[0]
		if got := flagValue(c.Args, "roles"); got != role {
			t.Errorf("%s: --roles %q, labelled %q", d.Name, got, role)
		}
		if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
			t.Errorf("%s: liveness probe is not GET /healthz", d.Name)
		}
		// Gateways route on readiness without search and attachments
		// (docs/operations.md, "Which probe to route on").
		wantReady := "/readyz"
		if role == "gateway" {
			wantReady = "/readyz?except=index,blobs"
		}
		if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != wantReady {
			t.Errorf("%s: readiness probe is not GET %s", d.Name, wantReady)
		}
		listen := flagValue(c.Args, "addr")
		_, port, _ := strings.Cut(listen, ":")
		for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
			if p == nil || p.HTTPGet == nil {
				continue
			}
			if !portMatches(c, p.HTTPGet.Port.String(), port) {
				t.Errorf("%s: probe port %s is not the port parley listens on (%s)", d.Name, p.HTTPGet.Port.String(), listen)
			}
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil && m.configMaps[ef.ConfigMapRef.Name] == nil {
				t.Errorf("%s: envFrom names ConfigMap %s, which is not in the manifests", d.Name, ef.ConfigMapRef.Name)
			}
			if ef.SecretRef != nil && m.secrets[ef.SecretRef.Name] == nil {
				t.Errorf("%s: envFrom names Secret %s, which is not in the manifests", d.Name, ef.SecretRef.Name)
			}
		}
	}
}

// portMatches: port (a name or a number) is a port of c that is want.
func portMatches(c corev1.Container, port, want string) bool {
	for _, p := range c.Ports {
		if (p.Name == port || strconv.Itoa(int(p.ContainerPort)) == port) && strconv.Itoa(int(p.ContainerPort)) == want {
			return true
		}
	}
	return false
}

// flagValue returns the value of --name in args ("--name v" or "--name=v").
func flagValue(args []string, name string) string {
	for i, a := range args {
		a = strings.TrimLeft(a, "-")
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// TestGatewayIsScaledProtectedAndExposed: the HPA and the PDB act on the
// gateway Deployment, the Service selects the gateway pods on the port
// they listen on, and the Ingress routes to the Service with the timeouts
// and unbuffered proxying WebSocket, SSE and long-poll need.
func TestGatewayIsScaledProtectedAndExposed(t *testing.T) {
	m := loadManifests(t)
	gw := m.deployment(t, "gateway")
	pods := labels.Set(gw.Spec.Template.Labels)
	svc := m.service(t, "parley-gateway")
	for _, other := range m.deployments {
		if other != gw && labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(other.Spec.Template.Labels)) {
			t.Errorf("the gateway Service also selects %s's pods", other.Name)
		}
	}
	hpa := m.hpas[0]
	if hpa.Spec.ScaleTargetRef.Kind != "Deployment" || hpa.Spec.ScaleTargetRef.Name != gw.Name || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 {
		t.Errorf("HPA targets %v (min %v), want Deployment %s with at least 2", hpa.Spec.ScaleTargetRef, hpa.Spec.MinReplicas, gw.Name)
	}
	pdb := m.pdbs[0]
	if !labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(pods) {
		t.Errorf("PDB selector %v misses the gateway pods", pdb.Spec.Selector.MatchLabels)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(pods) {
		t.Errorf("Service selector %v misses the gateway pods", svc.Spec.Selector)
	}
	_, listen, _ := strings.Cut(flagValue(gw.Spec.Template.Spec.Containers[0].Args, "addr"), ":")
	for _, p := range svc.Spec.Ports {
		if !portMatches(gw.Spec.Template.Spec.Containers[0], p.TargetPort.String(), listen) {
			t.Errorf("Service port %s targets %s, not the gateway's %s", p.Name, p.TargetPort.String(), listen)
		}
	}
	ing := m.ingresses[0]
	for _, rule := range ing.Spec.Rules {
		for _, p := range rule.HTTP.Paths {
			b := p.Backend.Service
			if b == nil || b.Name != svc.Name {
				t.Errorf("Ingress path %s goes to %v, not Service %s", p.Path, b, svc.Name)
				continue
			}
			found := false
			for _, sp := range svc.Spec.Ports {
				found = found || (b.Port.Name != "" && b.Port.Name == sp.Name) || (b.Port.Number != 0 && b.Port.Number == sp.Port)
			}
			if !found {
				t.Errorf("Ingress backend port %v is not a port of Service %s", b.Port, svc.Name)
			}
		}
	}
	ann := ing.Annotations
	for _, k := range []string{"proxy-read-timeout", "proxy-send-timeout"} {
		v, err := strconv.Atoi(ann["nginx.ingress.kubernetes.io/"+k])
		if err != nil || v < 120 {
			t.Errorf("Ingress %s = %q: must be well above the 55 s long-poll and the 25 s heartbeats", k, ann["nginx.ingress.kubernetes.io/"+k])
		}
	}
	if ann["nginx.ingress.kubernetes.io/proxy-buffering"] != "off" {
		t.Error("Ingress must not buffer responses: SSE events and long-poll answers would be held back")
	}
	if len(ing.Spec.TLS) == 0 {
		t.Error("Ingress has no TLS")
	}
}

// TestEveryContainerConfigurationPassesCheckConfig: each container's
// arguments and environment (its ConfigMap and Secret resolved) are given
// to `parley check-config`, which must accept them: a flag or variable
// Parley does not have, or a value it refuses, fails here.
func TestEveryContainerConfigurationPassesCheckConfig(t *testing.T) {
	m := loadManifests(t)
	bin := parleyBinary(t)
	checked := 0
	for _, d := range m.deployments {
		spec := d.Spec.Template.Spec
		for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
			if len(c.Args) == 0 || (c.Args[0] != "serve" && c.Args[0] != "migrate") {
				t.Errorf("%s/%s: args %v do not start with serve or migrate", d.Name, c.Name, c.Args)
				continue
			}
			env, err := m.containerEnv(c)
			if err != nil {
				t.Errorf("%s/%s: %v", d.Name, c.Name, err)
				continue
			}
			var names []string
			for k := range env {
				if !strings.HasPrefix(k, "PARLEY_") {
					t.Errorf("%s/%s: environment variable %s is not a Parley setting", d.Name, c.Name, k)
				}
				names = append(names, k)
			}
			sort.Strings(names)
			out, err := checkConfig(bin, c.Args[1:], env)
			if err != nil {
				t.Errorf("%s/%s: parley check-config %s with %s: %v\n%s", d.Name, c.Name, strings.Join(c.Args[1:], " "), strings.Join(names, ", "), err, out)
			}
			checked++
		}
	}
	if checked < 5 {
		t.Fatalf("only %d containers checked", checked)
	}
}

// containerEnv resolves a container's environment from the manifests.
func (m *manifests) containerEnv(c corev1.Container) (map[string]string, error) {
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		switch {
		case ef.ConfigMapRef != nil:
			cm := m.configMaps[ef.ConfigMapRef.Name]
			if cm == nil {
				return nil, fmt.Errorf("no ConfigMap %s", ef.ConfigMapRef.Name)
			}
			for k, v := range cm.Data {
				env[ef.Prefix+k] = v
			}
		case ef.SecretRef != nil:
			s := m.secrets[ef.SecretRef.Name]
			if s == nil {
				return nil, fmt.Errorf("no Secret %s", ef.SecretRef.Name)
			}
			for k, v := range s.Data {
				env[ef.Prefix+k] = string(v)
			}
			for k, v := range s.StringData {
				env[ef.Prefix+k] = v
			}
		}
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			r := e.ValueFrom.ConfigMapKeyRef
			cm := m.configMaps[r.Name]
			if cm == nil {
				return nil, fmt.Errorf("%s: no ConfigMap %s", e.Name, r.Name)
			}
			v, ok := cm.Data[r.Key]
			if !ok {
				return nil, fmt.Errorf("%s: ConfigMap %s has no key %s", e.Name, r.Name, r.Key)
			}
			env[e.Name] = v
		case e.ValueFrom.SecretKeyRef != nil:
			r := e.ValueFrom.SecretKeyRef
			s := m.secrets[r.Name]
			if s == nil {
				return nil, fmt.Errorf("%s: no Secret %s", e.Name, r.Name)
			}
			v, ok := s.StringData[r.Key]
			if !ok {
				b, ok2 := s.Data[r.Key]
				if !ok2 {
					return nil, fmt.Errorf("%s: Secret %s has no key %s", e.Name, r.Name, r.Key)
				}
				v = string(b)
			}
			env[e.Name] = v
		default:
			return nil, fmt.Errorf("%s: unsupported valueFrom", e.Name)
		}
	}
	return env, nil
}

// TestEveryPodIsScrapedOnItsMetricsPort: every Deployment's pods carry
// the prometheus.io annotations a Prometheus on Kubernetes discovers
// them by, naming the port parley listens on and /metrics, and no
// Service carries them (a pod scraped as a pod and as an endpoint would
// count twice).
func TestEveryPodIsScrapedOnItsMetricsPort(t *testing.T) {
	m := loadManifests(t)
	for _, d := range m.deployments {
		a := d.Spec.Template.Annotations
		c := d.Spec.Template.Spec.Containers[0]
		_, port, _ := strings.Cut(flagValue(c.Args, "addr"), ":")
		if a["prometheus.io/scrape"] != "true" {
			t.Errorf("%s: pods not annotated prometheus.io/scrape: \"true\" (%v)", d.Name, a)
		}
		if a["prometheus.io/port"] != port || !portMatches(c, a["prometheus.io/port"], port) {
			t.Errorf("%s: prometheus.io/port %q, parley listens on %q", d.Name, a["prometheus.io/port"], port)
		}
		if a["prometheus.io/path"] != "/metrics" {
			t.Errorf("%s: prometheus.io/path %q, want /metrics", d.Name, a["prometheus.io/path"])
		}
	}
	for _, s := range m.services {
		for k := range s.Annotations {
			if strings.HasPrefix(k, "prometheus.io/") {
				t.Errorf("Service %s is annotated %s: its pods would be scraped twice", s.Name, k)
			}
		}
	}
}

// optIn matches a commented-out setting of a ConfigMap: "  # PARLEY_X: v".
var optIn = regexp.MustCompile(`(?m)^(\s+)#\s*(PARLEY_[A-Z0-9_]+:\s*\S.*)$`)

// TestOptInSettingsOfTheConfigMapPassCheckConfig: the settings
// configmap.yaml offers commented out (tracing among them) decode and
// pass `parley check-config` on every container once uncommented, so
// opting in takes deleting a "#", nothing more.
func TestOptInSettingsOfTheConfigMapPassCheckConfig(t *testing.T) {
	m := loadManifests(t)
	raw, err := os.ReadFile(filepath.Join(manifestDir, "configmap.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range optIn.FindAllStringSubmatch(string(raw), -1) {
		name, _, _ := strings.Cut(g[2], ":")
		names = append(names, name)
	}
	if !slices.Contains(names, "PARLEY_OTEL_ENDPOINT") {
		t.Fatalf("configmap.yaml offers %v commented out, not PARLEY_OTEL_ENDPOINT", names)
	}
	cm := &corev1.ConfigMap{}
	if err := strict([]byte(optIn.ReplaceAllString(string(raw), "$1$2")), cm); err != nil {
		t.Fatalf("configmap.yaml with its opt-in settings uncommented: %v", err)
	}
	for _, n := range names {
		if _, ok := cm.Data[n]; !ok {
			t.Errorf("%s uncommented is not a key of the ConfigMap", n)
		}
	}
	m.configMaps[cm.Name] = cm
	bin := parleyBinary(t)
	for _, d := range m.deployments {
		spec := d.Spec.Template.Spec
		for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
			env, err := m.containerEnv(c)
			if err != nil {
				t.Fatalf("%s/%s: %v", d.Name, c.Name, err)
			}
			if env["PARLEY_OTEL_ENDPOINT"] == "" {
				t.Errorf("%s/%s does not get the ConfigMap's PARLEY_OTEL_ENDPOINT", d.Name, c.Name)
			}
			if out, err := checkConfig(bin, c.Args[1:], env); err != nil {
				t.Errorf("%s/%s: parley check-config with %v opted in: %v\n%s", d.Name, c.Name, names, err, out)
			}
		}
	}
}
