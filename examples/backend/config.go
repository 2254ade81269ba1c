package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// config is the command line, each flag defaulting to its environment variable.
type config struct {
	grpcAddr string
	httpAddr string // "" disables REST
	db       string
	natsURL  string // "" means the in-memory broker
}

// parseConfig parses args over the environment that lookupEnv reads. Its
// errors are one line naming the flag; -h yields flag.ErrHelp after the
// usage is written to usage.
func parseConfig(args []string, lookupEnv func(string) (string, bool), usage io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by the caller, on one line
	envOf := map[string]string{}
	str := func(p *string, name, env, def, help string) {
		if v, ok := lookupEnv(env); ok {
			def = v
		}
		envOf[name] = env
		fs.StringVar(p, name, def, fmt.Sprintf("%s (env %s)", help, env))
	}
	str(&c.grpcAddr, "grpc-addr", "BACKEND_ADDR", "127.0.0.1:9090", "gRPC listen address")
	str(&c.httpAddr, "http-addr", "BACKEND_HTTP_ADDR", "127.0.0.1:9091", "REST listen address; empty disables REST")
	str(&c.db, "db", "BACKEND_DB", "data/polls.db", "SQLite database file; its directory is created")
	str(&c.natsURL, "nats-url", "BACKEND_NATS_URL", "", "NATS server URL(s) for events across replicas; empty: in-process events")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(usage)
			fmt.Fprintln(usage, "Usage of backend:")
			fs.PrintDefaults()
		}
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}

	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	invalid := func(name, value string, err error) error {
		if !set[name] {
			name += " (from " + envOf[name] + ")"
		}
		return fmt.Errorf("invalid -%s %q: %v", name, value, err)
	}
	if err := checkAddr(c.grpcAddr); err != nil {
		return c, invalid("grpc-addr", c.grpcAddr, err)
	}
	if c.httpAddr != "" {
		if err := checkAddr(c.httpAddr); err != nil {
			return c, invalid("http-addr", c.httpAddr, err)
		}
	}
	if c.db == "" {
		return c, invalid("db", c.db, errors.New("must not be empty"))
	}
	if c.natsURL != "" {
		if err := checkNATSURL(c.natsURL); err != nil {
			return c, invalid("nats-url", c.natsURL, err)
		}
	}
	return c, nil
}

// checkAddr accepts host:port with a numeric port.
func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "address "+addr+": "))
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("bad port %q", port)
	}
	return nil
}

// checkNATSURL accepts what nats.Connect does: a comma-separated list of
// URLs, the scheme defaulting to nats://.
func checkNATSURL(s string) error {
	for u := range strings.SplitSeq(s, ",") {
		u = strings.TrimSpace(u)
		if !strings.Contains(u, "://") {
			u = "nats://" + u
		}
		p, err := url.Parse(u)
		if err != nil {
			return err
		}
		if p.Host == "" {
			return fmt.Errorf("no host in %q", u)
		}
	}
	return nil
}
