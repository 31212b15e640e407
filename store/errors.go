package store

import (
	"errors"
	"fmt"
)

// Code classifies an Error so that each edge can map it to its own answer
// (an exit status, a status line, an HTTP status).
type Code string

// Error codes.
const (
	CodeInvalid   Code = "invalid"   // the input is wrong; the message says what is valid
	CodeNotFound  Code = "not_found" // the thing named does not exist
	CodeConflict  Code = "conflict"  // the change would break a rule (e.g. the last admin)
	CodeForbidden Code = "forbidden" // the actor may not do this
	CodeInternal  Code = "internal"  // anything else; details are logged, not shown
)

// Error carries a code and a message that is safe to show to a staff
// member. The wrapped error, if any, is for logs only.
type Error struct {
	Code Code
	Msg  string
	Err  error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of err, CodeInternal for errors that are not
// an *Error, and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns a message that is safe to show: the Error's own
// message (never its wrapped error), or a generic one for anything else.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return "internal error (details are in the server log)"
}
