package e2e

import (
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// No Docker engine runs where the tests run, so the compose file is checked
// for what can be checked: it parses, every variable the services read is
// set and read by them, and users, passwords, hosts and ports agree.

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       map[string]string `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

var defaultRef = regexp.MustCompile(`\$\{[A-Z_]+:-([^}]*)\}`)

// resolve replaces ${VAR:-default} with its default, as compose does when VAR is unset.
func resolve(s string) string { return defaultRef.ReplaceAllString(s, "$1") }

func loadCompose(t *testing.T) composeFile {
	t.Helper()
	raw, err := os.ReadFile("../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	for name, s := range c.Services {
		for k, v := range s.Environment {
			s.Environment[k] = resolve(v)
		}
		c.Services[name] = s
	}
	return c
}

// readsEnv lists the environment variables a binary's command reads, from its --help.
func readsEnv(t *testing.T, bin, cmd string) map[string]bool {
	t.Helper()
	out, _ := exec.Command(bin, cmd, "--help").CombinedOutput()
	vars := map[string]bool{}
	for _, m := range regexp.MustCompile(`\[\$([A-Z0-9_]+)\]`).FindAllStringSubmatch(string(out), -1) {
		vars[m[1]] = true
	}
	if len(vars) == 0 {
		t.Fatalf("%s %s --help lists no environment variables:\n%s", bin, cmd, out)
	}
	return vars
}

func TestComposeIsConsistent(t *testing.T) {
	c := loadCompose(t)
	kafka := c.Services["kafka"].Environment
	appServices := 0
	for name, s := range c.Services {
		target := s.Build["target"]
		if target == "" {
			if s.Image == "" {
				t.Errorf("service %s has neither image nor build", name)
			}
			continue
		}
		appServices++
		bin := map[string]string{"sender": bins.sender, "receiver": bins.receiver}[target]
		if bin == "" || len(s.Command) != 1 {
			t.Errorf("service %s: build target %q / command %v", name, target, s.Command)
			continue
		}
		reads := readsEnv(t, bin, s.Command[0])
		for k := range s.Environment {
			if !reads[k] {
				t.Errorf("service %s sets %s, which %s %s does not read (typo?)", name, k, target, s.Command[0])
			}
		}
		dbVar := strings.ToUpper(target) + "_DATABASE_URL"
		checkDatabaseURL(t, c, name, s.Environment[dbVar])
		if reads["KAFKA_BROKERS"] {
			checkKafkaClient(t, name, s.Environment, kafka)
		}
		if s.Command[0] != "migrate" {
			if dep, ok := s.DependsOn[target+"-migrate"]; !ok || dep.Condition != "service_completed_successfully" {
				t.Errorf("service %s does not wait for %s-migrate to complete", name, target)
			}
		}
		checkPortsAndHealth(t, name, target, s)
	}
	if appServices < 5 {
		t.Errorf("found %d sender/receiver services, want migrate ×2, sender-api, sender-relay, receiver", appServices)
	}
}

func checkDatabaseURL(t *testing.T, c composeFile, service, raw string) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		t.Errorf("service %s: database url %q does not parse", service, raw)
		return
	}
	dbSvc, ok := c.Services[u.Hostname()]
	if !ok {
		t.Errorf("service %s: database host %q is not a compose service", service, u.Hostname())
		return
	}
	pw, _ := u.User.Password()
	e := dbSvc.Environment
	if u.User.Username() != e["POSTGRES_USER"] || pw != e["POSTGRES_PASSWORD"] || strings.TrimPrefix(u.Path, "/") != e["POSTGRES_DB"] {
		t.Errorf("service %s: database url user/password/db do not match service %s", service, u.Hostname())
	}
}

func checkKafkaClient(t *testing.T, service string, env, kafka map[string]string) {
	t.Helper()
	props, err := os.ReadFile("../deploy/kafka/server.properties")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(props), "advertised.listeners=SASL_PLAINTEXT://"+env["KAFKA_BROKERS"]) {
		t.Errorf("service %s: KAFKA_BROKERS=%s is not the broker's advertised SASL listener", service, env["KAFKA_BROKERS"])
	}
	if env["KAFKA_SASL_USERNAME"] != kafka["KAFKA_APP_USER"] || env["KAFKA_SASL_PASSWORD"] != kafka["KAFKA_APP_PASSWORD"] {
		t.Errorf("service %s: SCRAM user/password differ from the user the broker creates", service)
	}
	if !strings.Contains(string(props), "sasl.enabled.mechanisms="+env["KAFKA_SASL_MECHANISM"]) {
		t.Errorf("service %s: mechanism %s is not enabled on the broker", service, env["KAFKA_SASL_MECHANISM"])
	}
}

func checkPortsAndHealth(t *testing.T, service, target string, s composeService) {
	t.Helper()
	addr := s.Environment[strings.ToUpper(target)+"_HTTP_ADDR"]
	if addr == "" || s.Command[0] != "serve" {
		return
	}
	port := addr[strings.LastIndex(addr, ":")+1:]
	if len(s.Ports) != 1 || !strings.HasSuffix(s.Ports[0], ":"+port) {
		t.Errorf("service %s listens on %s but publishes %v", service, addr, s.Ports)
	}
	hc := strings.Join(s.Healthcheck.Test, " ")
	if !strings.Contains(hc, " healthcheck ") || !strings.Contains(hc, ":"+port+"/healthz") {
		t.Errorf("service %s: health check %q does not ask the service's own port", service, hc)
	}
}
