package bridge

import "errors"

// Validate checks options as New does, without dialing a backend or starting anything, for
// deploy pipelines (the command's -check-config): an option out of range is New's
// *OptionError; a backend target gRPC cannot use is an error naming it.
func Validate(opts ...Option) error {
	o := defaultOptions()
	for _, opt := range opts {
		opt.apply(&o)
	}
	if err := o.validate(); err != nil {
		return err
	}
	for _, b := range o.backends {
		// As New dials: grpc.NewClient parses the target and picks its resolver; it
		// connects only on the first call, which Close forestalls.
		cc, _, err := dialBackend(b) // dial.go
		if err != nil {
			return errors.New("backend " + b.Target + ": " + err.Error())
		}
		_ = cc.Close()
	}
	return nil
}
