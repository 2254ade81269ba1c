package bridge

import (
	"bytes"
	"encoding/json"
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
//	  "int64_as_number": true
//	}
//
// int64_as_number is WithInt64AsNumber; the command's -int64-as-number flag, when given,
// overrides it.
type fileConfig struct {
	Int64AsNumber *bool `json:"int64_as_number"`
	Permissions   *struct {
		Default string `json:"default"`
		Streams map[string]struct {
			Default string            `json:"default"`
			Actions map[string]string `json:"actions"`
		} `json:"streams"`
	} `json:"permissions"`
}

// ParseConfig reads the bridge's JSON configuration file and returns the options it sets.
// Unknown keys and invalid permissions are errors, so that a typo never silently leaves a
// stream open.
func ParseConfig(data []byte) (Option, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var fc fileConfig
	if err := dec.Decode(&fc); err != nil {
		return nil, fmt.Errorf("configuration: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("configuration: data after the JSON object")
	}
	var pol Policy
	if p := fc.Permissions; p != nil {
		parse := func(where, s string) (Permission, error) {
			if s == "" {
				return nil, nil
			}
			perm, err := ParsePermission(s)
			if err != nil {
				return nil, fmt.Errorf("configuration: %s: %v", where, err)
			}
			return perm, nil
		}
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
				perm, err := parse("permissions.streams."+name+".actions."+action, text)
				if err != nil {
					return nil, err
				}
				if perm == nil {
					return nil, fmt.Errorf("configuration: permissions.streams.%s.actions.%s: empty permission", name, action)
				}
				if sp.Actions == nil {
					sp.Actions = make(map[string]Permission)
				}
				sp.Actions[action] = perm
			}
			pol.Streams[name] = sp
		}
	}
	opt := WithPolicy(pol)
	if n := fc.Int64AsNumber; n != nil {
		policy := opt
		opt = optionFunc(func(o *options) {
			policy.apply(o)
			o.int64AsNumber = *n
		})
	}
	return opt, nil
}

// checkPolicy warns about configured streams the catalog does not have: most likely typos.
func (s *Server) checkPolicy(cat *catalog) {
	for name := range s.opts.security.policy.Streams {
		if cat.streams[name] == nil {
			s.opts.logger.Warn("the permissions configuration names a stream no backend serves", "stream", name)
		}
	}
}
