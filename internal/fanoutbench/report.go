package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

func printRows(out io.Writer, c *config, rows []*row) {
	if c.asJSON {
		enc := json.NewEncoder(out)
		for _, r := range rows {
			_ = enc.Encode(r)
		}
		for _, r := range ratios(rows) {
			_ = enc.Encode(r)
		}
		return
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tround\ttokens\tsubs\tp50 ms\tp90 ms\tp99 ms\tmax ms\tdelivered\tmissing\tdup\tdeliv/s\tCPU-s server\tbackend\tload\tdeliv/server-CPU-s\tupstreams\tpublish max ms\t")
	for _, r := range rows {
		up := "-"
		if r.Upstreams != nil {
			up = fmt.Sprintf("%.0f", *r.Upstreams)
		}
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t%d\t%d\t%.0f\t%.2f\t%.2f\t%.2f\t%.0f\t%s\t%.0f\t\n",
			r.Server, r.Round, r.Tokens, r.Subs, r.P50, r.P90, r.P99, r.Max, r.Delivered, r.Missing, r.Dups, r.PerSec,
			r.CPU.Server, r.CPU.Backend, r.CPU.Load, r.PerCPU, up, r.PubMax)
	}
	tw.Flush()
	for _, r := range rows {
		if r.FirstErr != "" {
			fmt.Fprintf(out, "%s round %s: %d publish errors, %d connections lost; first: %s\n", r.Server, r.Round, r.PubErrors, r.Closed, r.FirstErr)
		}
	}
	for _, r := range ratios(rows) {
		fmt.Fprintf(out, "bridge/centrifugo: p99 %.2f×, deliveries per server CPU-s %.2f×\n", r.P99, r.PerCPU)
	}
}

// ratio compares the bridge's row with Centrifugo's (the "all" rows when there are rounds).
type ratio struct {
	Kind   string  `json:"kind"` // "ratio"
	P50    float64 `json:"p50_bridge_over_centrifugo"`
	P99    float64 `json:"p99_bridge_over_centrifugo"`
	PerCPU float64 `json:"deliveries_per_server_cpu_s_bridge_over_centrifugo"`
}

func ratios(rows []*row) []ratio {
	var b, c *row
	for _, r := range rows {
		switch {
		case r.Server == "bridge" && (b == nil || r.Round == "all"):
			b = r
		case r.Server == "centrifugo" && (c == nil || r.Round == "all"):
			c = r
		}
	}
	if b == nil || c == nil || c.P99 == 0 || c.PerCPU == 0 || c.P50 == 0 {
		return nil
	}
	return []ratio{{Kind: "ratio", P50: b.P50 / c.P50, P99: b.P99 / c.P99, PerCPU: b.PerCPU / c.PerCPU}}
}

func printIdle(out io.Writer, c *config, rows []*idleRow) {
	if c.asJSON {
		enc := json.NewEncoder(out)
		for _, r := range rows {
			_ = enc.Encode(r)
		}
		return
	}
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "server\tround\ttokens\tconns\tRSS before MiB\tRSS after MiB\tKiB/conn\tstable\tbackend KiB/conn\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%d\t%.1f\t%.1f\t%.1f\t%v\t%s\t\n", r.Server, r.Round, r.Tokens, r.Conns,
			float64(r.RSSBefore)/1024, float64(r.RSSAfter)/1024, r.PerConn, r.Stable, strings.TrimSpace(fmt.Sprintf("%.1f", r.BackendPerCon)))
	}
	tw.Flush()
}
