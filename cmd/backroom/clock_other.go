//go:build !linux

package main

import "errors"

// clockUnsynchronised cannot tell on this system.
func clockUnsynchronised() (bool, error) {
	return false, errors.New("clock synchronisation state is not available on this system")
}
