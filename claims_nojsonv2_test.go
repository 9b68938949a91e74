//go:build !goexperiment.jsonv2

package keygate

// unmarshalV2 is nil without GOEXPERIMENT=jsonv2: encoding/json/v2 is not
// there to compare against.
func unmarshalV2() func([]byte, any) error { return nil }
