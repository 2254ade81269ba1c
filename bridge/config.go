package bridge

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// fileConfig is the bridge's configuration file (docs/security.md):
//
//	{
//	  "permissions": {
//	    "default": "allow_any",
//	    "streams": {
//	      "choices": {
//	        "default": "is_authenticated",
//	        "actions": {"retrieve": "allow_any", "list": "allow_any"}
//	      }
//	    }
//	  },
//	  "int64_as_number": true,
//	  "upstream_per_identity": ["orders"]
//	}
//
// int64_as_number is WithInt64AsNumber; the command's -int64-as-number flag, when given,
// overrides it. upstream_per_identity is WithUpstreamPerIdentity.
type fileConfig struct {
	Int64AsNumber       *bool    `json:"int64_as_number"`
	UpstreamPerIdentity []string `json:"upstream_per_identity"`
	Permissions         *struct {
		Default string `json:"default"`
		Streams map[string]struct {
			Default string            `json:"default"`
			Actions map[string]string `json:"actions"`
		} `json:"streams"`
	} `json:"permissions"`
}

// Config is the bridge's configuration file, parsed: what each key sets, for a program
// that wants to inspect or adjust it before passing Option to New.
type Config struct {
	// Policy is "permissions": the configured permissions (WithPolicy). Without the key it is
	// the zero Policy: allow any.
	Policy Policy
	// Int64AsNumber is "int64_as_number" (WithInt64AsNumber); nil when the file does not set
	// it, leaving the option as it is.
	Int64AsNumber *bool
	// UpstreamPerIdentity is "upstream_per_identity": the streams whose subscriptions have
	// one upstream Subscribe stream per forwarded identity (WithUpstreamPerIdentity).
	UpstreamPerIdentity []string
}

// Option is the options of the file: WithPolicy(c.Policy), WithInt64AsNumber when the
// file sets it, and WithUpstreamPerIdentity(c.UpstreamPerIdentity...). An option given after
// it to New overrides it.
func (c *Config) Option() Option {
	pol, n, per := c.Policy, c.Int64AsNumber, c.UpstreamPerIdentity
	return optionFunc(func(o *options) {
		WithPolicy(pol).apply(o)
		if n != nil {
			o.int64AsNumber = *n
		}
		WithUpstreamPerIdentity(per...).apply(o)
	})
}

// ConfigError is ParseConfig's error, naming the key at fault.
type ConfigError struct {
	// Key is the dotted path of the key, e.g. "permissions.streams.questions.default"; empty
	// when the file is not a JSON object of the known keys.
	Key string
	// Err says what is wrong.
	Err error
}

// Error is "configuration: key: reason".
func (e *ConfigError) Error() string {
	if e.Key == "" {
		return "configuration: " + e.Err.Error()
	}
	return "configuration: " + e.Key + ": " + e.Err.Error()
}

// Unwrap returns Err.
func (e *ConfigError) Unwrap() error { return e.Err }

// ParseConfig reads the bridge's JSON configuration file (docs/security.md). Unknown keys
// and invalid permissions are a *ConfigError, so that a typo never silently leaves a stream
// open.
func ParseConfig(data []byte) (*Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var fc fileConfig
	if err := dec.Decode(&fc); err != nil {
		return nil, &ConfigError{Err: err}
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &ConfigError{Err: errors.New("data after the JSON object")}
	}
	cfg := &Config{Int64AsNumber: fc.Int64AsNumber, UpstreamPerIdentity: fc.UpstreamPerIdentity}
	for i, s := range fc.UpstreamPerIdentity {
		if s == "" {
			return nil, &ConfigError{Key: fmt.Sprintf("upstream_per_identity[%d]", i), Err: errors.New("empty stream name")}
		}
	}
	p := fc.Permissions
	if p == nil {
		return cfg, nil
	}
	parse := func(key, s string) (Permission, error) {
		if s == "" {
			return nil, nil
		}
		perm, err := ParsePermission(s)
		if err != nil {
			return nil, &ConfigError{Key: key, Err: err}
		}
		return perm, nil
	}
	pol := &cfg.Policy
	var err error
	if pol.Default, err = parse("permissions.default", p.Default); err != nil {
		return nil, err
	}
	if len(p.Streams) > 0 {
		pol.Streams = make(map[string]StreamPolicy, len(p.Streams))
	}
	for name, st := range p.Streams {
		var sp StreamPolicy
		if sp.Default, err = parse("permissions.streams."+name+".default", st.Default); err != nil {
			return nil, err
		}
		for action, text := range st.Actions {
			key := "permissions.streams." + name + ".actions." + action
			perm, err := parse(key, text)
			if err != nil {
				return nil, err
			}
			if perm == nil {
				return nil, &ConfigError{Key: key, Err: errors.New("empty permission")}
			}
			if sp.Actions == nil {
				sp.Actions = make(map[string]Permission)
			}
			sp.Actions[action] = perm
		}
		pol.Streams[name] = sp
	}
	return cfg, nil
}

// checkPolicy warns about configured streams the catalog does not have: most likely typos.
func (s *Server) checkPolicy(cat *catalog) {
	for name := range s.opts.security.policy.Streams {
		if cat.streams[name] == nil {
			s.opts.logger.Warn("the permissions configuration names a stream no backend serves", "stream", name)
		}
	}
	for name := range s.opts.perIdentity {
		if cat.streams[name] == nil {
			s.opts.logger.Warn("upstream_per_identity names a stream no backend serves", "stream", name)
		}
	}
}
