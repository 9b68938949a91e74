package redistest

import "testing"

func TestStartKillRestart(t *testing.T) {
	s := Start(t)
	if err := s.ping(); err != nil {
		t.Fatalf("ping after Start: %v", err)
	}
	s.Kill()
	if err := s.ping(); err == nil {
		t.Fatal("ping answered after Kill")
	}
	s.Restart()
	if err := s.ping(); err != nil {
		t.Fatalf("ping after Restart: %v", err)
	}
}
