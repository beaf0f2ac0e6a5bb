package uploads

import (
	"context"
	"log/slog"

	expslog "golang.org/x/exp/slog"
)

// tusLogger adapts Airlock's log/slog logger to the golang.org/x/exp/slog
// logger tusd takes. tusd logs every request and chunk at Info; those lines
// go to Debug, and a client's dropped connection (BodyReadError, logged by
// tusd as an error) to Info: it is what pausing an upload looks like.
func tusLogger(l *slog.Logger) *expslog.Logger {
	return expslog.New(tusLogHandler{h: l.Handler()})
}

type tusLogHandler struct{ h slog.Handler }

func tusLevel(msg string, l expslog.Level) slog.Level {
	switch {
	case msg == "BodyReadError":
		return slog.LevelInfo
	case l == expslog.LevelInfo:
		return slog.LevelDebug
	}
	return slog.Level(l)
}

func (t tusLogHandler) Enabled(ctx context.Context, l expslog.Level) bool {
	// The message is not known here: ask for the lowest level a line of l
	// may be logged at.
	lowest := slog.Level(l)
	switch l {
	case expslog.LevelInfo:
		lowest = slog.LevelDebug
	case expslog.LevelError:
		lowest = slog.LevelInfo
	}
	return t.h.Enabled(ctx, lowest)
}

func (t tusLogHandler) Handle(ctx context.Context, r expslog.Record) error {
	level := tusLevel(r.Message, r.Level)
	if !t.h.Enabled(ctx, level) {
		return nil
	}
	out := slog.NewRecord(r.Time, level, "tus: "+r.Message, r.PC)
	r.Attrs(func(a expslog.Attr) bool {
		out.AddAttrs(convertAttr(a))
		return true
	})
	return t.h.Handle(ctx, out)
}

func (t tusLogHandler) WithAttrs(attrs []expslog.Attr) expslog.Handler {
	conv := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		conv[i] = convertAttr(a)
	}
	return tusLogHandler{h: t.h.WithAttrs(conv)}
}

func (t tusLogHandler) WithGroup(name string) expslog.Handler {
	return tusLogHandler{h: t.h.WithGroup(name)}
}

// convertAttr turns an x/exp/slog attribute into a log/slog one.
func convertAttr(a expslog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() == expslog.KindGroup {
		group := v.Group()
		conv := make([]any, len(group))
		for i, g := range group {
			conv[i] = convertAttr(g)
		}
		return slog.Group(a.Key, conv...)
	}
	return slog.Any(a.Key, v.Any())
}
