//go:build linux

package main

import "golang.org/x/sys/unix"

// clockUnsynchronised reports whether the kernel says the system clock is
// not synchronised (no NTP discipline): TOTP codes depend on it.
func clockUnsynchronised() (bool, error) {
	var tx unix.Timex // Modes 0: read only
	state, err := unix.Adjtimex(&tx)
	if err != nil {
		return false, err
	}
	return state == unix.TIME_ERROR || tx.Status&unix.STA_UNSYNC != 0, nil
}
