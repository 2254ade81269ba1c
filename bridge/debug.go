package bridge

import (
	"net/http"

	"github.com/wsbridge/wsbridge/bridge/debugui"
)

// WithDebugPage serves the interactive debugger page at /debug/: it connects to /ws of the
// same origin, lists the streams from /schema and sends frames typed in the browser. Default
// false. Never enable it in production: anyone who can load the page can call every action
// with whatever token they type.
func WithDebugPage(on bool) Option {
	return optionFunc(func(o *options) { o.debugPage = on })
}

// addToolRoutes registers /schema (unless switched off) and /debug/ (when switched on).
func (s *Server) addToolRoutes() {
	if !s.opts.schemaOff {
		s.mux.Handle("/schema", &schemaHandler{srv: s})
	}
	if s.opts.debugPage {
		s.mux.Handle("/debug/", http.StripPrefix("/debug", debugui.Handler()))
	}
}
