package raftstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	badger "github.com/dgraph-io/badger/v4"
)

// slogAdapter implements badger.Logger on top of an *slog.Logger.
type slogAdapter struct {
	l *slog.Logger
}

var _ badger.Logger = slogAdapter{}

// newBadgerLogger adapts l for badger. A nil l yields a nil badger.Logger,
// which badger treats as "do not log" without formatting anything.
func newBadgerLogger(l *slog.Logger) badger.Logger {
	if l == nil {
		return nil
	}
	return slogAdapter{l: l.With("component", "badger")}
}

func (a slogAdapter) Errorf(format string, args ...any) {
	a.log(slog.LevelError, format, args)
}

func (a slogAdapter) Warningf(format string, args ...any) {
	a.log(slog.LevelWarn, format, args)
}

func (a slogAdapter) Infof(format string, args ...any) {
	a.log(slog.LevelInfo, format, args)
}

func (a slogAdapter) Debugf(format string, args ...any) {
	a.log(slog.LevelDebug, format, args)
}

// log formats only when the level is enabled; badger's lines often carry a
// trailing newline, which slog does not want.
func (a slogAdapter) log(level slog.Level, format string, args []any) {
	ctx := context.Background()
	if !a.l.Enabled(ctx, level) {
		return
	}
	a.l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, args...)))
}
