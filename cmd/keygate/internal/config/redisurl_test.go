package config_test

import (
	"strings"
	"testing"

	"github.com/keygate/keygate/cmd/keygate/internal/config"
)

// TestValidateRedisURL: config check's message for a Redis URL it cannot
// use says what to write, and never quotes a part of the password (which
// holds / ? # when generated as base64, and then breaks the URL apart).
func TestValidateRedisURL(t *testing.T) {
	const secret = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		url  string
		want string
	}{
		{"redis://:abc/defSECRET@127.0.0.1:6379/0", "percent-encode"},
		{"redis://:SECRET#pw@127.0.0.1:6379/0", "percent-encode"},
		{"redis://:SECRET?pw@127.0.0.1:6379/0", "percent-encode"},
		{"redis://u:SECRET/pw@127.0.0.1:6379/0", "percent-encode"},
		{"redis://u:1234/SECRET@127.0.0.1:6379/0", "percent-encode"},
		{"redis://:SE%zzCRET@127.0.0.1:6379/0", "percent-encode"},
		{"127.0.0.1:6379", "has no scheme; write redis://127.0.0.1:6379"},
		{"localhost:6379", "has no scheme; write redis://localhost:6379"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			yaml := valid + "cluster:\n  redis: {url: \"" + tt.url + "\"}\n  secret: " + secret + "\n"
			f, err := config.Load("f.yaml", []byte(yaml), env(nil))
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			err = f.Validate()
			if err == nil {
				t.Fatalf("Validate = nil; want an error about the URL")
			}
			if strings.Contains(err.Error(), "SECRET") {
				t.Errorf("Validate = %v; it quotes the password", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v; want %q", err, tt.want)
			}
		})
	}
}
