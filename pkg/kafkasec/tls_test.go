package kafkasec_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/invoicesync/invoicesync/pkg/kafkasec"
)

const (
	tlsUser     = "tls-user"
	tlsPassword = "tls-secret"
	tlsTopic    = "tls-topic"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// serverCert issues a certificate for 127.0.0.1 signed by ca.
func (ca *testCA) serverCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// writeFile writes data to a new file in a per-test directory.
func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsBroker starts an embedded broker that speaks only TLS (certificate
// signed by ca) with SCRAM-SHA-512 on, and returns its address.
func tlsBroker(t *testing.T, ca *testCA) string {
	t.Helper()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.EnableSASL(),
		kfake.Superuser(kafkasec.MechanismSCRAMSHA512, tlsUser, tlsPassword),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{ca.serverCert(t)}, MinVersion: tls.VersionTLS12}),
		kfake.SeedTopics(1, tlsTopic),
	)
	if err != nil {
		t.Fatalf("start TLS broker: %v", err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

func tlsConfig(addr, caFile string) kafkasec.Config {
	return kafkasec.Config{
		Brokers:     []string{addr},
		Mechanism:   kafkasec.MechanismSCRAMSHA512,
		Username:    tlsUser,
		Password:    tlsPassword,
		TLS:         true,
		CAFile:      caFile,
		DialTimeout: 5 * time.Second,
	}
}

func TestTLSWithCAFileChecksProducesAndReads(t *testing.T) {
	ca := newTestCA(t, "invoicesync test CA")
	addr := tlsBroker(t, ca)
	conn, err := kafkasec.New(tlsConfig(addr, writeFile(t, "ca.pem", ca.pem)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Check(ctx); err != nil {
		t.Fatalf("Check over TLS with the right CA: %v", err)
	}

	cl, err := conn.NewClient(kgo.DefaultProduceTopic(tlsTopic), kgo.ConsumeTopics(tlsTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := conn.ProduceSync(ctx, cl, &kgo.Record{Key: []byte("k"), Value: []byte("over tls")}); err != nil {
		t.Fatalf("write over TLS: %v", err)
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err(); err != nil {
		t.Fatalf("read over TLS: %v", err)
	}
	recs := fs.Records()
	if len(recs) != 1 || string(recs[0].Value) != "over tls" {
		t.Fatalf("read %v, want one record %q", recs, "over tls")
	}
}

func TestTLSWithWrongCAFailsOnTheCertificate(t *testing.T) {
	addr := tlsBroker(t, newTestCA(t, "broker CA"))
	other := newTestCA(t, "some other CA")
	conn, err := kafkasec.New(tlsConfig(addr, writeFile(t, "other-ca.pem", other.pem)))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = conn.Check(ctx)
	if err == nil {
		t.Fatal("Check succeeded against a broker whose certificate the CA file does not sign")
	}
	t.Logf("Check with the wrong CA: %v", err)
	if errors.Is(err, kafkasec.ErrAuthentication) {
		t.Fatalf("Check = %v: a certificate failure reported as an authentication failure", err)
	}
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) && !strings.Contains(err.Error(), "x509") {
		t.Fatalf("Check = %v, want an x509 certificate error", err)
	}
	if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("error %q does not mention the certificate", err)
	}
}

func TestTLSWithNonPEMCAFileFailsAtNew(t *testing.T) {
	caFile := writeFile(t, "not-a-ca.pem", []byte("this is not a certificate\n"))
	_, err := kafkasec.New(tlsConfig("127.0.0.1:9093", caFile))
	if err == nil {
		t.Fatal("New accepted a CA file with no PEM certificate")
	}
	if !strings.Contains(err.Error(), caFile) {
		t.Errorf("error %q does not name the CA file %s", err, caFile)
	}
}
