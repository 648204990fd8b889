//go:build race

package plugin

// raceEnabled: the race detector is on (sync.Pool then drops items at random by design).
const raceEnabled = true
