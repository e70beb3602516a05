package verify

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"sigs.k8s.io/yaml"
)

// docker-compose.yml cannot run here (no Docker engine), so it is loaded
// with compose-go, the loader Docker Compose itself uses: schema
// validation, interpolation, merges and the consistency checks (networks,
// volumes, depends_on) all run, so a file Docker would reject fails here.
// Each parley service's command and environment then pass `parley
// check-config`.

func loadCompose(t *testing.T, file string) (*types.Project, error) {
	t.Helper()
	abs, err := filepath.Abs(file)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs, Content: b}},
		Environment: types.Mapping{},
	}
	return loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("parley", true)
	})
}

func TestComposeFileLoadsWithComposeGo(t *testing.T) {
	p, err := loadCompose(t, filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	bin := parleyBinary(t)
	parleys := 0
	for name, s := range p.Services {
		if len(s.Command) == 0 || s.Command[0] != "serve" {
			continue
		}
		parleys++
		env := map[string]string{}
		for k, v := range s.Environment {
			if v == nil {
				t.Errorf("%s: %s has no value", name, k)
				continue
			}
			env[k] = *v
		}
		if out, err := checkConfig(bin, s.Command[1:], env); err != nil {
			t.Errorf("%s: parley check-config %s: %v\n%s", name, strings.Join(s.Command[1:], " "), err, out)
		}
	}
	if parleys < 4 {
		t.Fatalf("only %d parley services in docker-compose.yml", parleys)
	}
}

// TestComposeLoaderRefusesWhatDockerWould: the loader this test relies on
// refuses an unknown service key and a dependency on a missing service.
func TestComposeLoaderRefusesWhatDockerWould(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown key":        "services:\n  a:\n    image: x\n    restarts: always\n",
		"missing dependency": "services:\n  a:\n    image: x\n    depends_on: [b]\n",
		"bad port":           "services:\n  a:\n    image: x\n    ports: [\"80:eighty\"]\n",
	} {
		f := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yml")
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := loadCompose(t, f); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}

// TestComposeRunsPrometheusAndGrafana: Prometheus scrapes every Parley
// service of docker-compose.yml and loads the alert rules; Grafana is
// provisioned with the data source and the dashboard; every file they
// mount exists.
func TestComposeRunsPrometheusAndGrafana(t *testing.T) {
	p, err := loadCompose(t, filepath.Join("..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	mounts := map[string]map[string]string{} // service -> target -> source
	for _, name := range []string{"prometheus", "grafana"} {
		s, ok := p.Services[name]
		if !ok {
			t.Fatalf("docker-compose.yml has no %s service", name)
		}
		mounts[name] = map[string]string{}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("%s mounts %s, which is missing: %v", name, v.Source, err)
			}
			mounts[name][v.Target] = v.Source
		}
	}
	for target, want := range map[string]string{
		"/etc/prometheus/prometheus.yml": "deploy/prometheus/prometheus.yml",
		"/etc/prometheus/alerts.yml":     "deploy/prometheus/alerts.yml",
	} {
		if !strings.HasSuffix(mounts["prometheus"][target], want) {
			t.Errorf("prometheus: %s is %q, want %s", target, mounts["prometheus"][target], want)
		}
	}
	for target, want := range map[string]string{
		"/etc/grafana/provisioning":               "deploy/grafana/provisioning",
		"/var/lib/grafana/dashboards/parley.json": "deploy/grafana/parley.json",
	} {
		if !strings.HasSuffix(mounts["grafana"][target], want) {
			t.Errorf("grafana: %s is %q, want %s", target, mounts["grafana"][target], want)
		}
	}

	var cfg struct {
		RuleFiles     []string `json:"rule_files"`
		ScrapeConfigs []struct {
			JobName       string `json:"job_name"`
			StaticConfigs []struct {
				Targets []string `json:"targets"`
			} `json:"static_configs"`
		} `json:"scrape_configs"`
	}
	b, err := os.ReadFile(mounts["prometheus"]["/etc/prometheus/prometheus.yml"])
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	if len(cfg.RuleFiles) != 1 || cfg.RuleFiles[0] != "/etc/prometheus/alerts.yml" {
		t.Errorf("prometheus.yml loads rules %v, want the mounted alerts.yml", cfg.RuleFiles)
	}
	scraped := map[string]bool{}
	for _, sc := range cfg.ScrapeConfigs {
		if sc.JobName != "parley" {
			continue
		}
		for _, st := range sc.StaticConfigs {
			for _, tg := range st.Targets {
				scraped[tg] = true
			}
		}
	}
	for name, s := range p.Services {
		if len(s.Command) > 0 && s.Command[0] == "serve" && !scraped[name+":8080"] {
			t.Errorf("Prometheus does not scrape %s:8080 (job parley)", name)
		}
	}
}
