// Package debugui is the bridge's debugger page: one HTML page, a style sheet and a small
// vanilla script, embedded so the page works offline and needs no build step.
package debugui

import (
	"embed"
	"net/http"
)

//go:embed index.html style.css app.js
var files embed.FS

// Handler serves the page at "/" and its assets by name. Mount it under a prefix with
// http.StripPrefix; the page finds /schema and /ws relative to its own address.
func Handler() http.Handler {
	fs := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "+
			"base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		fs.ServeHTTP(w, r)
	})
}
