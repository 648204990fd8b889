package queue

import (
	"testing"
	"time"
)

func TestDelayDoublesAndCaps(t *testing.T) {
	def := Config{RetryInterval: 20 * time.Minute, MaxAge: 7 * 24 * time.Hour}
	// KumoMTA's calc_due_defaults: 20m, 40m, 80m, 160m, 320m, 640m.
	for i, want := range []time.Duration{20, 40, 80, 160, 320, 640} {
		if got := Delay(def, i+1); got != want*time.Minute {
			t.Errorf("attempt %d: %s, want %s", i+1, got, want*time.Minute)
		}
	}
	capped := def
	capped.MaxRetryInterval = time.Hour
	for i, want := range []time.Duration{20, 40, 60, 60, 60} {
		if got := Delay(capped, i+1); got != want*time.Minute {
			t.Errorf("capped attempt %d: %s, want %s", i+1, got, want*time.Minute)
		}
	}
	if got := Delay(def, 200); got <= 0 {
		t.Fatalf("huge attempt count overflowed: %s", got)
	}
}

func TestJitterBounded(t *testing.T) {
	cfg := Config{RetryInterval: 20 * time.Minute}
	for range 1000 {
		if j := jitter(cfg); j < -30*time.Second || j > 30*time.Second {
			t.Fatalf("jitter %s outside ±30s", j)
		}
	}
	if j := jitter(Config{RetryInterval: time.Second}); j < -25*time.Millisecond || j > 25*time.Millisecond {
		t.Fatalf("jitter %s for 1s interval", j)
	}
}
