package mqttcore

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
)

// parseUplinkURL checks the uplink URL and fills in the default port
// (1883, 8883, 80, 443) and, for WebSocket, the path "/mqtt".
func parseUplinkURL(raw string) (*url.URL, bool, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, false, fmt.Errorf("uplink url: %w", err)
	}
	scheme := strings.ToLower(u.Scheme)
	var port string
	var secure bool
	switch scheme {
	case "mqtt":
		port = "1883"
	case "mqtts":
		port, secure = "8883", true
	case "ws":
		port = "80"
	case "wss":
		port, secure = "443", true
	default:
		return nil, false, fmt.Errorf("uplink url %q: scheme must be mqtt, mqtts, ws or wss", u.Redacted())
	}
	if u.Hostname() == "" {
		return nil, false, fmt.Errorf("uplink url %q: no host", u.Redacted())
	}
	if u.User != nil {
		return nil, false, fmt.Errorf("uplink url %q: put credentials in username/password, not in the url", u.Redacted())
	}
	u.Scheme = scheme
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), port)
	}
	if scheme == "mqtt" || scheme == "mqtts" {
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, false, fmt.Errorf("uplink url %q: mqtt/mqtts urls take no path", u.Redacted())
		}
		u.Path = ""
	} else if u.Path == "" {
		u.Path = "/mqtt"
	}
	return u, secure, nil
}

// uplinkTLSConfig returns the TLS configuration for mqtts/wss: the system
// roots plus caFile, and the client certificate for mTLS (read again at
// every handshake, so a renewed certificate is picked up on reconnect).
func uplinkTLSConfig(caFile, certFile, keyFile string) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("uplink ca_file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("uplink ca_file %s: no PEM certificate found", caFile)
		}
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("uplink: cert_file and key_file must be set together")
	}
	if certFile != "" {
		if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
			return nil, fmt.Errorf("uplink client certificate: %w", err)
		}
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			cert, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				return nil, fmt.Errorf("uplink client certificate: %w", err)
			}
			return &cert, nil
		}
	}
	return cfg, nil
}
