package config

import (
	"fmt"
	"time"
)

// Duration is a time.Duration written in TOML as a string such as "3s",
// "500ms" or "2m" (time.ParseDuration syntax). A bare number is refused: it
// would silently mean nanoseconds.
type Duration time.Duration

// Duration returns d as a time.Duration.
func (d Duration) Duration() time.Duration { return time.Duration(d) }

// String formats d like time.Duration does ("1m30s").
func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalText parses a time.ParseDuration string.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := time.ParseDuration(string(text))
	if err != nil {
		return fmt.Errorf("invalid duration %q: want a number and a unit, such as \"3s\", \"500ms\" or \"2m\"", text)
	}
	*d = Duration(v)
	return nil
}

// MarshalText formats d as UnmarshalText reads it.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }
